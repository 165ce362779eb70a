#!/usr/bin/env bash
# `exp serve` under load: 64 concurrent streaming clients (the metron experiment) against a tiny
# model on loopback. Prints, per generated token, the engine's step time, the server's own time
# on the engine thread outside the step (admission, detokenising, stop checks, routing to
# streams), the client-observed mean time between tokens, and the client's parsing time per
# token. Goals (issue 26): server overhead < 1 ms per token beyond the step; client < 50 µs.
# Usage: bench/serve_overhead.sh [REQUESTS=512]
set -euo pipefail
cd "$(dirname "$0")/.."
exp=./build/exp
[ -x "$exp" ] || { echo "build first: cmake -S . -B build -G Ninja && cmake --build build" >&2; exit 2; }
n=${1:-512}
out=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$out"' EXIT
source scripts/serve_helpers.sh
make_text_model "$out/model" model.hidden_size=128 model.intermediate_size=256 model.num_hidden_layers=2 \
  model.num_attention_heads=4 model.num_key_value_heads=2 model.max_position_embeddings=1024
start_exp_serve "$out/model" "$out/serve.log"
"$exp" run configs/experiment/metron.yaml endpoint="http://127.0.0.1:$port/v1" hydra.run.dir="$out/metron" \
  max_concurrency=64 workload.num_requests="$n" workload.qps=1000 workload.lengths=fixed workload.prompt_tokens=64 \
  workload.decode_tokens=64 > "$out/metron.out" 2>&1
curl -s "http://127.0.0.1:$port/metrics" > "$out/metrics"
/usr/bin/python3 - "$out" <<'PY'
import sys, h5py, numpy as np
out = sys.argv[1]
m = dict(l.split() for l in open(f"{out}/metrics") if l.strip())
steps, tokens = float(m["exp_engine_steps_total"]), float(m["exp_tokens_total"])
step_s, loop_s = float(m["exp_engine_step_seconds_total"]), float(m["exp_server_loop_seconds_total"])
with h5py.File(f"{out}/metron/results.h5") as f:
    s = dict(f["summary"].attrs)
    tbt = f["serving/requests"]  # per-request columns
    cols = {k: tbt[k][()] for k in tbt.keys()}
print(f"requests {int(s['requests_ok'])} ok of {int(s['requests_ok'] + s['requests_http_error'] + s['requests_broken'])}, "
      f"{int(tokens)} tokens in {int(steps)} engine steps ({tokens/steps:.1f} tokens/step)")
print(f"engine step               {1e3*step_s/steps:8.3f} ms/step")
print(f"server loop outside step  {1e3*loop_s/steps:8.3f} ms/step  = {1e6*loop_s/tokens:7.1f} us/token   (goal < 1000 us/token)")
print(f"ratio server loop / engine step (same run): {loop_s/step_s:.4f}")
tpot = cols.get("tpot_s")
if tpot is not None:
    mean_tpot = float(np.mean(tpot[np.isfinite(tpot)]))
    print(f"client mean TPOT          {1e3*mean_tpot:8.3f} ms/token: {1e3*(mean_tpot - step_s/steps):.3f} ms beyond the mean step")
print(f"client parsing            {s['client_parse_us_per_token']:8.1f} us/token   (goal < 50 us/token); "
      f"ratio to the engine step per token: {s['client_parse_us_per_token']*1e-6/(step_s/tokens):.4f}")
PY
