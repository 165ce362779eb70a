#!/usr/bin/env bash
# Training throughput of the topology experiments against the same models in PyTorch (Debian's
# python3-torch), side by side in one run with the same thread count: one Fashion-MNIST epoch of
# the 784-1024-1024-10 {0,1} net (STE, tanh, hard invert, Adam, clip) and of the dense float MLP,
# in samples/s; and test-set evaluation of a net at 0.5% active weights, sparse vs dense.
#   bench/binarized_train.sh [THREADS] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
samples=${2:-60000}
data=/usr/share/datasets/fashion-mnist
[ -x build/tests/bench/networks/bench_topology ] || cmake --build build --target bench_topology
ours=$(./build/tests/bench/networks/bench_topology "$data" "$threads" "$samples")
# PyTorch's best setting here: its own intra-op threads over single-threaded OpenBLAS calls.
torch=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 scripts/torch_mlp_bench.py "$data" "$threads" "$samples")
/usr/bin/python3 - "$ours" "$torch" "$threads" "$samples" <<'PY'
import json, sys
ours, torch, threads, samples = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"topology training benchmark, {threads} threads, {samples} Fashion-MNIST samples, batch 200")
print(f"  {'':<12}{'exp samples/s':>15}{'PyTorch samples/s':>19}{'ratio':>8}   goal")
for k, goal in [("binarized", ""), ("float_mlp", ">= 1x")]:
    print(f"  {k:<12}{ours[k]:>15.0f}{torch[k]:>19.0f}{ours[k] / torch[k]:>7.2f}x   {goal}")
r = ours["dense_eval_s"] / ours["sparse_eval_s"]
print(f"  evaluation of 10k test images at {ours['active_share'] * 100:.2f}% active weights: dense "
      f"{ours['dense_eval_s'] * 1e3:.1f} ms, sparse {ours['sparse_eval_s'] * 1e3:.1f} ms, {r:.1f}x (goal >= 10x)")
PY
