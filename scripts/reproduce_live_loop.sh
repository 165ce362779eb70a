#!/usr/bin/env bash
# The loop closed (docs/serving_text.md): the same requests — the workload's lengths and Poisson
# arrivals, seed 0, every request to its max_tokens — three ways:
#   simulator  the engine's own operator profile predicting them (engine_fidelity);
#   engine     the engine serving them in-process (engine_fidelity, the same run);
#   live       `exp serve` serving them over loopback HTTP, measured from the client by metron.
# The loads are engine_fidelity's: fractions of the simulated capacity. The gap between the engine
# and the live column is what a client sees beyond the engine (HTTP, server-sent events,
# detokenising, the client's clock); the gap between simulator and engine is the predictor's.
# Usage: scripts/reproduce_live_loop.sh [OUT_DIR]   (about 3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
exp=./build/exp
[ -x "$exp" ] || { echo "build first: cmake -S . -B build -G Ninja && cmake --build build" >&2; exit 2; }
out=${1:-results/live_loop}
rm -rf "$out"; mkdir -p "$out"
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null || true' EXIT
source scripts/serve_helpers.sh
make_text_model "$out/model" model.hidden_size=256 model.intermediate_size=768 model.num_hidden_layers=4 \
  model.num_attention_heads=8 model.num_key_value_heads=4 model.max_position_embeddings=1024
work=(workload.num_requests=100 workload.lengths=uniform workload.min_tokens=32 workload.max_tokens=384
      workload.prefill_to_decode=3.0 workload.arrivals=poisson seed=0)
sched=(scheduler.chunk_size=256 scheduler.max_num_seqs=32 kv_blocks=1024)
"$exp" run configs/experiment/engine_fidelity.yaml model_dir="$out/model" hydra.run.dir="$out/fidelity" "${work[@]}" \
  "${sched[@]}" fidelity.engine_runs=2 fidelity.calibration_requests=60 profile.repetitions=3 > "$out/fidelity.log" 2>&1
start_exp_serve "$out/model" "$out/serve.log" "${sched[@]}"
qps_list=$(/usr/bin/python3 -c "
import h5py, numpy as np
with h5py.File('$out/fidelity/results.h5') as f:
    print(' '.join(f'{q:.6g}' for q in sorted(set(f['fidelity/errors/qps'][()].tolist()))))")
for qps in $qps_list; do
  curl -s "http://127.0.0.1:$port/metrics" > "$out/metrics_before_$qps"
  "$exp" run configs/experiment/metron.yaml endpoint="http://127.0.0.1:$port/v1" hydra.run.dir="$out/live_$qps" \
    "${work[@]}" workload.qps="$qps" > "$out/live_$qps.log" 2>&1
  curl -s "http://127.0.0.1:$port/metrics" > "$out/metrics_after_$qps"
done
/usr/bin/python3 - "$out" $qps_list <<'PY'
import sys, h5py, numpy as np
out, qps_list = sys.argv[1], sys.argv[2:]
with h5py.File(f"{out}/fidelity/results.h5") as f:
    e = f["fidelity/errors"]
    names = [n.decode() if isinstance(n, bytes) else n for n in e.attrs["metrics"]]
    rows = list(zip(e["load_fraction"][()], e["qps"][()], e["metric_index"][()], e["engine"][()], e["simulator"][()]))
def live(qps, metric):
    q, name = metric.split("_", 1)
    with h5py.File(f"{out}/live_{qps}/results.h5") as f:
        cdf = f["serving/cdf"]
        # 101 rows at 1% steps, one column per metric
        return float(cdf[name][()][int(q[1:])])
print(f"{'load':>5} {'QPS':>6} {'metric':22} {'simulator':>10} {'engine':>10} {'live':>10}  {'live - engine':>13}")
for frac, qps, mi, eng, sim in rows:
    q = next(x for x in qps_list if abs(float(x) - qps) < 1e-3 * qps)
    lv = live(q, names[mi])
    print(f"{frac:5.2f} {qps:6.2f} {names[mi]:22} {1e3*sim:8.2f}ms {1e3*eng:8.2f}ms {1e3*lv:8.2f}ms  {1e3*(lv-eng):+10.2f}ms")
# Where the gap comes from: the engine's own iterations, in-process and inside exp serve (its
# /metrics), and the server's time outside them.
def metrics(path):
    return {k: float(v) for k, v in (l.split() for l in open(path) if l.strip())}
with h5py.File(f"{out}/fidelity/results.h5") as f:
    for frac in sorted(set(r[0] for r in rows)):
        it = f[f"fidelity/iterations_{100*frac:.0f}pct/measured_s"][()]
        q = next(x for x in qps_list if abs(float(x) - next(r[1] for r in rows if r[0] == frac)) < 1e-3 * float(x))
        a, b = metrics(f"{out}/metrics_before_{q}"), metrics(f"{out}/metrics_after_{q}")
        steps = b["exp_engine_steps_total"] - a["exp_engine_steps_total"]
        step_s = b["exp_engine_step_seconds_total"] - a["exp_engine_step_seconds_total"]
        loop_s = b["exp_server_loop_seconds_total"] - a["exp_server_loop_seconds_total"]
        print(f"load {frac:.2f}: mean iteration in-process {1e3*it.mean():.2f} ms ({len(it)}), inside exp serve "
              f"{1e3*step_s/steps:.2f} ms ({int(steps)}), server loop outside the step {1e3*loop_s/steps:.3f} ms")
PY
