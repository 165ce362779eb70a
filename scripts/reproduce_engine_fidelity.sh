#!/usr/bin/env bash
# Simulator fidelity on this project's engine (the engine issue's experiment): makes a small
# random-weight Llama (hidden 256, 4 layers, GQA 4/2, vocab 2000), profiles the engine, finds
# its capacity in the simulator, and serves 200 requests at 50% and 85% of it on both.
#   scripts/reproduce_engine_fidelity.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/reproduce/engine_fidelity}
shift || true
exp=./build/exp
[ -x "$exp" ] || cmake --build build --target exp
mkdir -p "$out"
"$exp" run configs/experiment/make_model.yaml model.hidden_size=256 model.num_hidden_layers=4 \
  model.num_attention_heads=4 model.num_key_value_heads=2 model.intermediate_size=640 model.vocab_size=2000 \
  model.max_position_embeddings=1024 output_dir="$out/model" hydra.run.dir="$out/make_model" > /dev/null
"$exp" run configs/experiment/engine_fidelity.yaml model_dir="$out/model" profile.repetitions=15 \
  hydra.run.dir="$out/fidelity" "$@" | tee "$out/table.txt"
