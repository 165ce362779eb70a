#!/usr/bin/env bash
# DynaQuant reproduction (docs/dynaquant.md) on Fashion-MNIST: the MLP 784-256-128-10
# trained 20 epochs with a checkpoint every half epoch and 10 failures, under every config in
# configs/reproduce/dynaquant/ (the epsilon sweep, the uncompressed reference, the baselines and
# the delta ablation), then scripts/plot_dynaquant.py's table and plots. About a minute per run on
# one core. Finished runs are kept; an interrupted one resumes where it stopped.
#   scripts/reproduce_dynaquant.sh [OUT_DIR] [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/reproduce/dynaquant}
shift || true
exp=./build/exp
# Training on one thread leaves the other cores to the compression, which overlaps with it
# (compression.overlap) as the paper's GPU training leaves the CPU to it; with training on every
# core the compression competes for them (bench/dynaquant_overhead.sh measures both).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -x "$exp" ] || cmake --build build --target exp
mkdir -p "$out"
for cfg in configs/reproduce/dynaquant/*.yaml; do
  name=$(basename "$cfg" .yaml)
  dir="$out/$name"
  if h5dump -a /complete "$dir/results.h5" 2>/dev/null | grep -q "(0): 1"; then continue; fi
  if compgen -G "$dir/checkpoints/*.ckpt" > /dev/null; then
    "$exp" run --resume "$dir" > "$dir.log" 2>&1 || { echo "failed: $dir (see $dir.log)"; exit 1; }
  else
    rm -rf "$dir"
    "$exp" run "$cfg" hydra.run.dir="$dir" "$@" > "$dir.log" 2>&1 || { echo "failed: $dir (see $dir.log)"; exit 1; }
  fi
  echo "done: $dir"
done
/usr/bin/python3 scripts/plot_dynaquant.py "$out"
