#!/usr/bin/env bash
# Singularity's overheads on our logical-rank trainer (docs/parallelism.md), for the float MLP
# 784-1024-1024-10 on Fashion-MNIST (binarized input, TRAIN_SAMPLES samples, one epoch), as a
# user runs it — `exp run binarized_topology network.method=float_mlp`:
#   - plain training: 1 logical rank on 1 thread, batch 200 (the baseline);
#   - L = 8 logical ranks time-sliced on 1 worker (replica splicing; goal < 3% over plain at the
#     same global batch): at batch 200 (shards of 25 rows) and at batch 1600 (shards of 200 rows,
#     against plain training at batch 1600) — a shard's fixed costs (a full-size weight gradient
#     written and added, the weights packed for each small GEMM) are what slicing adds;
#   - L = 2 on 1 worker (the same job as the next rows, resized to P = 1), on 2 worker threads,
#     and on 2 processes (`mpirun -np 2`, goal ≥ 1.7× plain);
#   - the machine's ceiling for two workers: two independent plain runs at once, their combined
#     rate against one alone (memory bandwidth and caches shared by the cores bound any 2-worker
#     speedup by it), and the slower run's rate doubled (a synchronous job waits for its slower
#     worker every step, so this is the bound for the 2-worker rows);
#   - the checkpoint against a raw dump of the parameters and optimizer moments;
#   - preempt-to-resume: SIGTERM to exit 75, and `--resume` to its first step.
# The stop vote rides in the gradient exchange (one byte; no collective of its own), so its cost
# is inside the 2-process row. Training seconds (the optimizer steps) come from each run's
# summary; every configuration runs ROUNDS times, interleaved, and reports its median seconds.
# A row's ratio to its baseline is taken within each round (runs seconds apart share the
# machine's drift, which moves a whole script run by several percent here) and reported as the
# median of the rounds' ratios, with their lowest and highest.
#   scripts/reproduce_singularity.sh [TRAIN_SAMPLES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-20000}
rounds=${2:-3}
exp=./build/exp
[ -x "$exp" ] || { echo "build first: cmake -S . -B build -G Ninja && cmake --build build" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common="configs/experiment/binarized_topology.yaml network.method=float_mlp train.epochs=1 eval.sweep_every=0"
base="$common data.train_subset=$samples train.checkpoint_every=0"

train() {  # name, launcher prefix (or ""), logical ranks, workers, batch -> training seconds
  local name=$1 launcher=$2 ranks=$3 workers=$4 batch=$5
  rm -rf "${out:?}/$name"
  # A process gets a core per worker thread (its optimizer and gradient sum use them too).
  OMP_NUM_THREADS=$workers $launcher "$exp" run $base train.logical_ranks="$ranks" train.workers="$workers" \
    train.batch_size="$batch" hydra.run.dir="$out/$name" > "$out/$name.out" 2>&1
  awk '/^ *train_seconds/ {print $2}' "$out/$name.out"
}

# Two plain runs side by side -> two times one run "would take" at twice a run's rate: the pair's
# combined throughput (their mean seconds / 2), and the slower run's (its seconds / 2).
pair() {
  local a b
  rm -rf "${out:?}"/pair_a "${out:?}"/pair_b
  OMP_NUM_THREADS=1 "$exp" run $base train.logical_ranks=1 train.workers=1 hydra.run.dir="$out/pair_a" > "$out/pair_a.out" 2>&1 &
  OMP_NUM_THREADS=1 "$exp" run $base train.logical_ranks=1 train.workers=1 hydra.run.dir="$out/pair_b" > "$out/pair_b.out" 2>&1
  wait
  a=$(awk '/^ *train_seconds/ {print $2}' "$out/pair_a.out")
  b=$(awk '/^ *train_seconds/ {print $2}' "$out/pair_b.out")
  awk -v a="$a" -v b="$b" 'BEGIN {print (a + b) / 4, (a > b ? a : b) / 2}'
}

echo "Singularity-style overheads, float MLP 784-1024-1024-10, $samples samples, $rounds rounds ($(nproc) cores, $(date -u +%F))"
mpirun="mpirun --allow-run-as-root --oversubscribe -np 2"
# name|launcher|logical ranks|workers|batch|baseline row|label
rows=("plain||1|1|200|plain|plain: 1 logical rank, 1 thread (baseline)"
      "sliced||8|1|200|plain|L = 8 time-sliced on 1 worker"
      "plain1600||1|1|1600|plain1600|plain, batch 1600 (baseline of the next row)"
      "sliced1600||8|1|1600|plain1600|L = 8 time-sliced on 1 worker, batch 1600"
      "resized||2|1|200|plain|L = 2 on 1 worker (the next rows' job at P = 1)"
      "threads||2|2|200|plain|L = 2 on 2 worker threads"
      "mpirun|$mpirun|2|1|200|plain|L = 2 on 2 processes (mpirun)")
declare -A times
for ((r = 0; r < rounds; r++)); do
  for row in "${rows[@]}"; do
    IFS='|' read -r name launcher ranks workers batch baseline label <<< "$row"
    times[$name]+="$(train "$name" "$launcher" "$ranks" "$workers" "$batch") "
  done
  read -r mean slower <<< "$(pair)"
  times[pair]+="$mean "
  times[pair_slower]+="$slower "
done
# A row's seconds (median) and its per-round ratios to its baseline (median, lowest, highest).
report() {  # label, seconds per round, the baseline's seconds per round (space-separated)
  awk -v l="$1" -v t="$2" -v p="$3" '
  function sort(a, n,   i, j, v) { for (i = 2; i <= n; ++i) { v = a[i]; for (j = i - 1; j > 0 && a[j] > v; --j) a[j + 1] = a[j]; a[j + 1] = v } }
  BEGIN {
    n = split(t, ts, " "); split(p, ps, " ")
    for (i = 1; i <= n; ++i) { s[i] = ts[i] + 0; r[i] = ps[i] / ts[i] }
    sort(s, n); sort(r, n)
    printf "%-46s %9.3f %9.3fx %8.3f-%.3fx\n", l, s[int((n + 1) / 2)], r[int((n + 1) / 2)], r[1], r[n] }'
}
printf "%-46s %9s %10s %15s\n" "configuration" "train s" "vs baseline" "rounds' range"
for row in "${rows[@]}"; do
  IFS='|' read -r name launcher ranks workers batch baseline label <<< "$row"
  report "$label" "${times[$name]}" "${times[$baseline]}"
done
report "ceiling: 2 plain runs at once, per run / 2" "${times[pair]}" "${times[plain]}"
report "ceiling in step: the slower of the 2 / 2" "${times[pair_slower]}" "${times[plain]}"

# Checkpoint size against the raw bytes of the parameters and Adam's two moments (f32).
"$exp" run $common data.train_subset=$samples train.checkpoint_every=5 train.logical_ranks=2 hydra.run.dir="$out/ckpt" > /dev/null 2>&1
ckpt=$(ls -S "$out"/ckpt/checkpoints/*.ckpt | head -1)
params=$((784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10))
awk -v c="$(stat -c %s "$ckpt")" -v p="$params" 'BEGIN {
  printf "checkpoint %.1f MB; raw parameters %.1f MB, with Adam moments %.1f MB: %.3fx the raw state\n",
         c / 1e6, 4 * p / 1e6, 12 * p / 1e6, c / (12 * p) }'

# Preempt to resume: SIGTERM once the run is past its first checkpoint, to exit 75; then the
# resumed run's start to its first step (the log's "resumed at" line).
now() { date +%s.%N; }
rm -rf "$out/pre"
"$exp" run $common train.checkpoint_every=20 train.logical_ranks=2 \
  hydra.run.dir="$out/pre" > "$out/pre.out" 2>&1 &
pid=$!
until ls "$out"/pre/checkpoints/*.ckpt > /dev/null 2>&1; do sleep 0.05; done
t0=$(now)
kill -TERM $pid
wait $pid || true
t1=$(now)
"$exp" run --resume "$out/pre" > "$out/resume.out" 2>&1 &
rpid=$!
until grep -q "resumed at" "$out/resume.out" 2> /dev/null; do sleep 0.01; done
t2=$(now)
kill -TERM $rpid; wait $rpid || true
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
  printf "preempt to resume: SIGTERM to exit %.2f s, --resume to its first step %.2f s, %.2f s in all\n", b - a, c - b, c - a }'
