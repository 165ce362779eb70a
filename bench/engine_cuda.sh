#!/usr/bin/env bash
# The CUDA engine against eager PyTorch on the same card, side by side in one run: a
# Llama-2-7B-shaped bf16 model with random weights (hidden 4096, MLP 11008, 32 layers, 32 heads,
# vocab 32000), milliseconds per decode step at batch 1, 8 and 32 (512-token contexts) and for a
# 4096-token prefill. Prints batch-1 decode against the time to read the weights once at the
# card's measured copy rate (goal <= 1.3x) and the prefill's FLOP rate against cuBLAS's bf16
# GEMM rate measured in the same run (goal >= 60%).
#   bench/engine_cuda.sh [LAYERS]       (BENCH=path/to/bench_engine_cuda, PYTHON=python with CUDA torch)
set -euo pipefail
cd "$(dirname "$0")/.."
layers=${1:-32}
bench=${BENCH:-build/tests/bench/serving/bench_engine_cuda}
python=${PYTHON:-python3}
[ -x "$bench" ] || cmake --build build --target bench_engine_cuda
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
ours=$("$bench" --layers "$layers")
torch=$("$python" scripts/torch_llama_gpu_bench.py "$layers")
"$python" - "$ours" "$torch" "$card" <<'PY'
import json, sys
ours, torch, card = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
print(f"engine CUDA benchmark, {card}, Llama-2-7B shape ({ours['layers']} layers, bf16, random weights); "
      f"PyTorch {torch['torch']} eager")
print(f"  {'':<22}{'exp ms':>10}{'PyTorch ms':>12}{'speed-up':>10}")
for k in ("decode_b1_ms", "decode_b8_ms", "decode_b32_ms", "prefill_4096_ms"):
    print(f"  {k[:-3]:<22}{ours[k]:>10.2f}{torch[k]:>12.2f}{torch[k] / ours[k]:>9.2f}x")
floor = ours["weight_bytes"] / ours["copy_bytes_per_s"] * 1e3
print(f"  decode floor: {ours['weight_bytes'] / 1e9:.2f} GB of weights at the measured copy rate "
      f"{ours['copy_bytes_per_s'] / 1e12:.2f} TB/s = {floor:.2f} ms; batch-1 step / floor = "
      f"{ours['decode_b1_ms'] / floor:.2f} (goal <= 1.3)")
print(f"  one-row matrix-vector products over a layer's weights: ours {ours['gemv_bytes_per_s'] / 1e12:.2f} TB/s, "
      f"cuBLAS {ours['cublas_gemv_bytes_per_s'] / 1e12:.2f} TB/s")
for name, key in (("4096-token prefill", "prefill_layer_ms"), ("batch-1 decode step", "decode_b1_layer_ms")):
    ops = ours[key]
    print(f"  one layer of a {name}, op by op (ms): " + ", ".join(f"{k} {v:.4f}" for k, v in ops.items())
          + f"; sum {sum(ops.values()):.3f}, x{ours['layers']} layers = {sum(ops.values()) * ours['layers']:.2f}")
print(f"  forward passes replayed as CUDA graphs: {ours['graph_replays']}")
rate = ours["prefill_flops"] / (ours["prefill_4096_ms"] / 1e3)
print(f"  prefill: {ours['prefill_flops'] / 1e12:.1f} TFLOP in {ours['prefill_4096_ms']:.1f} ms = {rate / 1e12:.0f} TFLOP/s, "
      f"{rate / ours['gemm_flops_per_s'] * 100:.0f}% of cuBLAS's bf16 GEMM rate "
      f"{ours['gemm_flops_per_s'] / 1e12:.0f} TFLOP/s (goal >= 60%)")
PY
