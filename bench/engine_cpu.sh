#!/usr/bin/env bash
# Engine CPU throughput against the same model run eagerly in PyTorch (Debian's python3-torch
# with OpenBLAS), side by side in one run with the same thread count: decode tokens/s at batch 1,
# 8 and 32 and prefill tokens/s at 512 tokens for the ~110M-parameter Llama (hidden 768, 12
# layers, 12 heads, FFN 2048, vocab 32000, f32), plus batch-1 decode as a fraction of this
# machine's measured memory bandwidth (STREAM triad).
#   bench/engine_cpu.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
[ -x build/tests/bench/serving/bench_engine ] || cmake --build build --target bench_engine exp
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./build/exp run configs/experiment/make_model.yaml output_dir="$out/model" hydra.run.dir="$out/run" > /dev/null 2>&1
ours=$(./build/tests/bench/serving/bench_engine "$out/model" "$threads")
# PyTorch's best setting here: its own intra-op threads over single-threaded OpenBLAS calls
# (letting both spawn threads oversubscribes the cores and halves its speed).
torch=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/torch_llama_bench.py "$out/model" "$threads")
/usr/bin/python3 - "$ours" "$torch" "$threads" <<'PY'
import json, sys
ours, torch, threads = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
goals = {"decode_b1": 2.0, "decode_b8": None, "decode_b32": 1.5, "prefill_512": 1.3}
print(f"engine CPU benchmark, {threads} threads, ~110M-parameter Llama (f32)")
print(f"  {'':<14}{'exp tok/s':>12}{'PyTorch tok/s':>16}{'ratio':>9}   goal")
for k, g in goals.items():
    r = ours[k] / torch[k]
    print(f"  {k:<14}{ours[k]:>12.1f}{torch[k]:>16.1f}{r:>8.2f}x   {'>= %.1fx' % g if g else ''}")
print(f"  memory bandwidth (triad): {ours['triad_gbps']:.1f} GB/s; batch-1 decode moves "
      f"{ours['b1_bandwidth_fraction'] * 100:.0f}% of it (goal >= 80%)")
PY
