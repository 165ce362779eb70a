#!/usr/bin/env bash
# Mnemosyne's speed goal for the simulator: one 10M-token request with 256 decodes among 1,000 short
# chat requests (the Azure conversation trace), Llama-3-8B on 16 KV-parallel H200s with Mnemosyne's
# scheduler (adaptive 30 ms chunks, space sharing), simulates in < 10 s on these cores. The event
# count grows with chunks (~300,000 of at most a few hundred tokens against 10M of context), not
# tokens. Whole-process wall time, median of ROUNDS, beside the same run without the long request.
#   bench/mnemosyne_sim.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
exp=./build/exp
[ -x "$exp" ] || { echo "build first: cmake -S . -B build -G Ninja && cmake --build build" >&2; exit 2; }
rounds=${1:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 - "$out" <<'PY'
import csv, sys
rows = [(float(r["arrived_at"]), int(r["num_prefill_tokens"]), int(r["num_decode_tokens"]))
        for _, r in zip(range(1000), csv.DictReader(open("data/vidur/processed_traces/splitwise_conv.csv")))]
for name, extra in (("short", []), ("long", [(20.0, 10_000_000, 256)])):
    with open(f"{sys.argv[1]}/{name}.csv", "w") as f:
        f.write("arrived_at,num_prefill_tokens,num_decode_tokens\n")
        f.writelines(f"{t:g},{p},{d}\n" for t, p, d in sorted(rows + extra))
PY
run() {  # name requests -> seconds
  /usr/bin/time -f "%e" -o "$out/$1.time" "$exp" run configs/reproduce/mnemosyne/mixed.yaml '~schedulers' \
    +scheduler=sarathi_serve scheduler.adaptive_chunking.enabled=true scheduler.adaptive_chunking.target_batch_time_s=0.03 \
    model.max_model_len=10000256 workload.max_tokens=10000256 deployment.kv_parallel=16 \
    deployment.max_num_tokens_per_kvp_group=655360 workload.trace_file="$out/$1.csv" workload.num_requests="$2" \
    hydra.run.dir="$out/run_$1_$3" > /dev/null 2>&1
  cat "$out/$1.time"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
echo "Mnemosyne simulator benchmark ($(nproc) cores, $(date -u +%F)), $rounds rounds"
short=(); long=()
for i in $(seq "$rounds"); do
  short+=("$(run short 1000 "$i")")
  long+=("$(run long 1001 "$i")")
done
s=$(printf "%s\n" "${short[@]}" | median); l=$(printf "%s\n" "${long[@]}" | median)
printf "1,000 short requests:                   %6.2f s (baseline)\n" "$s"
printf "the same + one 10M-token request:       %6.2f s = %.1fx the baseline (goal < 10 s)\n" "$l" "$(echo "$l / $s" | bc -l)"
