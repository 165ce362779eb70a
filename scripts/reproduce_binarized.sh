#!/usr/bin/env bash
# {0,1} topology reproduction (docs/binarized_topology.md) on Fashion-MNIST: every config in
# configs/reproduce/binarized/ (ours with four norms, some also for 60 epochs, at Adam 3e-3, with
# AdamW (decay 0.04, cosine) or trained at on = 2; the float MLP on binarized and raw input;
# edge-popup keeping 50/10/3%), then the table (with the NOR criterion and the circuit under
# class-symmetric ties) and plots of scripts/plot_binarized.py. About 4 minutes per 20-epoch run on 2 cores, 10 per 60-epoch one.
# Resumable: finished runs are kept, interrupted ones resume.
#   scripts/reproduce_binarized.sh [OUT_DIR] [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/reproduce/binarized}
shift || true
exp=./build/exp
[ -x "$exp" ] || cmake --build build --target exp
mkdir -p "$out"
for cfg in configs/reproduce/binarized/*.yaml; do
  name=$(basename "$cfg" .yaml)
  dir="$out/$name"
  if h5dump -a /complete "$dir/results.h5" 2>/dev/null | grep -q "(0): 1"; then continue; fi
  if [ -d "$dir" ]; then
    "$exp" run --resume "$dir" > "$dir.log" 2>&1 || { echo "failed: $dir (see $dir.log)"; exit 1; }
  else
    "$exp" run "$cfg" hydra.run.dir="$dir" "$@" > "$dir.log" 2>&1 || { echo "failed: $dir (see $dir.log)"; exit 1; }
  fi
  echo "done: $dir"
done
/usr/bin/python3 scripts/plot_binarized.py "$out"
