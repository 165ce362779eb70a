#!/usr/bin/env bash
# Simulator fidelity on this project's engine (the engine issue's experiment): makes a
# random-weight Llama of 33M parameters (hidden 512, 8 layers, GQA 8/4, vocab 8000; a forward
# reads 117 MB of f32 weights, several times the last-level cache, so decoding reads them from
# memory as LLM serving does on any hardware), profiles the engine, finds its capacity in the
# simulator, and serves 200 requests at 50% and 85% of it in the simulator and five times on the
# engine, then reports against the restated criterion (about 7 minutes, 2 cores).
#   scripts/reproduce_engine_fidelity.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/reproduce/engine_fidelity}
shift || true
exp=./build/exp
[ -x "$exp" ] || cmake --build build --target exp
mkdir -p "$out"
"$exp" run configs/experiment/make_model.yaml model.hidden_size=512 model.num_hidden_layers=8 \
  model.num_attention_heads=8 model.num_key_value_heads=4 model.intermediate_size=1536 model.vocab_size=8000 \
  model.max_position_embeddings=1024 output_dir="$out/model" hydra.run.dir="$out/make_model" > /dev/null
"$exp" run configs/experiment/engine_fidelity.yaml model_dir="$out/model" profile.repetitions=5 \
  hydra.run.dir="$out/fidelity" "$@" | tee "$out/table.txt"
