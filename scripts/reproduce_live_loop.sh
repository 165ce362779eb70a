#!/usr/bin/env bash
# The loop closed, in part (docs/serving_text.md): the same requests (workload lengths and Poisson
# arrivals, seed 0, every request to its max_tokens) served by the engine in-process
# (engine_serve) and by `exp serve` measured from the client by the metron experiment over HTTP
# on loopback. The gap between the two columns is what a client sees beyond the engine: HTTP,
# server-sent events, detokenising, the client's own clock. Usage: scripts/reproduce_live_loop.sh [QPS=4]
set -euo pipefail
cd "$(dirname "$0")/.."
exp=./build/exp
[ -x "$exp" ] || { echo "build first: cmake -S . -B build -G Ninja && cmake --build build" >&2; exit 2; }
qps=${1:-4}
out=${OUT:-results/live_loop}
rm -rf "$out"; mkdir -p "$out"
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null || true' EXIT
ref=build/tokenizer_reference
[ -f $ref/reference.json ] || scripts/tokenizer_reference.sh $ref tests/serving/data/tokenizer_texts.json >/dev/null
model=(model.hidden_size=256 model.intermediate_size=768 model.num_hidden_layers=4 model.num_attention_heads=8
       model.num_key_value_heads=4 model.max_position_embeddings=1024)
work=(workload.num_requests=64 workload.lengths=uniform workload.min_tokens=32 workload.max_tokens=256
      workload.arrivals=poisson workload.qps=$qps)
"$exp" run configs/experiment/make_model.yaml output_dir="$out/model" hydra.run.dir="$out/make" "${model[@]}" > /dev/null
cp $ref/llama2/tokenizer.json $ref/llama2/tokenizer_config.json "$out/model/"
"$exp" run configs/experiment/engine_serve.yaml model_dir="$out/model" hydra.run.dir="$out/engine" "${work[@]}" \
  scheduler.max_num_seqs=64 > "$out/engine.log" 2>&1
"$exp" serve model_dir="$out/model" port=0 scheduler.max_num_seqs=64 > "$out/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "/v1" "$out/serve.log" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o "127.0.0.1:[0-9]*" "$out/serve.log" | cut -d: -f2)
"$exp" run configs/experiment/metron.yaml endpoint="http://127.0.0.1:$port/v1" hydra.run.dir="$out/metron" "${work[@]}" \
  > "$out/metron.log" 2>&1
/usr/bin/python3 - "$out" <<'PY'
import sys, h5py
out = sys.argv[1]
def summary(name):
    with h5py.File(f"{out}/{name}/results.h5") as f:
        return dict(f["summary"].attrs)
e, m = summary("engine"), summary("metron")
print(f"{'metric':24} {'engine (in-process)':>20} {'exp serve + metron':>20} {'difference':>12}")
for k in ["p50_ttft_s", "p99_ttft_s", "p50_tbt_s", "p99_tbt_s", "p50_tpot_s", "p50_e2e_s", "p99_e2e_s", "fluidity_index"]:
    a, b = float(e[k]), float(m[k])
    unit = "" if k == "fluidity_index" else " ms"
    scale = 1 if k == "fluidity_index" else 1e3
    print(f"{k:24} {scale*a:17.3f}{unit:3} {scale*b:17.3f}{unit:3} {scale*(b-a):+9.3f}{unit}")
print(f"requests: engine {int(e['requests'] if 'requests' in e else 64)}, metron ok {int(m['requests_ok'])}, "
      f"failed {int(m['requests_http_error'] + m['requests_broken'])}")
PY
