#!/usr/bin/env bash
# Tensor parallelism on CPU (issue: process groups): batch-1 decode of the ~110M-parameter Llama
# (make_model's default, f32) as a user runs it — `exp run engine_serve` — at TP = 1 on one
# thread (the baseline), TP = 1 on every core, and TP = 2 as two threads of one process and as
# two `mpirun` ranks, each rank one thread. Prints decode tokens/s (1 / median TBT) and the ratio
# to the baseline, side by side in one run: the four run in turn, ROUNDS times, and each reports
# its median (this machine's speed drifts by 30% over a minute; interleaving shares the drift).
# Goal: TP = 2 on 2 cores >= 1.6x the baseline.
#   bench/tensor_parallel.sh [DECODE_TOKENS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
tokens=${1:-200}
rounds=${2:-3}
exp=./build/exp
[ -x "$exp" ] || { echo "build first: cmake -S . -B build -G Ninja && cmake --build build" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$exp" run configs/experiment/make_model.yaml output_dir="$out/model" hydra.run.dir="$out/made" > /dev/null 2>&1
echo "{\"prompt\": [$(seq -s, 1 16)], \"max_tokens\": $tokens}" > "$out/prompt.jsonl"

serve() {  # name, launcher prefix (or ""), OMP threads, tensor_parallel
  local name=$1 launcher=$2 threads=$3 tp=$4
  OMP_NUM_THREADS=$threads $launcher "$exp" run configs/experiment/engine_serve.yaml model_dir="$out/model" \
    prompts_file="$out/prompt.jsonl" deployment.tensor_parallel="$tp" hydra.run.dir="$out/$name" > "$out/$name.out" 2>&1
  awk '/p50_tbt_s/ {printf "%.2f", 1 / $2}' "$out/$name.out"
}

echo "tensor-parallel decode, batch 1, ~110M Llama f32, $tokens tokens, median of $rounds rounds ($(nproc) cores, $(date -u +%F))"
rows=("tp1_1thread||1|1|TP=1, 1 thread (baseline)" "tp1_all_cores||$(nproc)|1|TP=1, $(nproc) threads"
      "tp2_threads||1|2|TP=2, threads of one process" "tp2_mpirun|mpirun --allow-run-as-root --oversubscribe -np 2|1|2|TP=2, mpirun -np 2")
declare -A rates
for ((r = 0; r < rounds; r++)); do
  for row in "${rows[@]}"; do
    IFS='|' read -r name launcher threads tp label <<< "$row"
    rates[$name]+="$(serve "$name$r" "$launcher" "$threads" "$tp") "
  done
done
median() { tr ' ' '\n' <<< "$1" | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
base=$(median "${rates[tp1_1thread]}")
for row in "${rows[@]}"; do
  IFS='|' read -r name launcher threads tp label <<< "$row"
  rate=$(median "${rates[$name]}")
  printf "  %-32s %8s tok/s  %5.2fx   (runs: %s)\n" "$label" "$rate" "$(echo "$rate / $base" | bc -l)" "${rates[$name]% }"
done
echo "goal: TP=2 on 2 cores >= 1.6x the baseline"
