#!/usr/bin/env bash
# DynaQuant's cost to training in the Fashion-MNIST run (goal: compression time < 1% of training
# time). Runs the reproduction's MLP config (ε = 0.01, 40 checkpoints, 10 failures) with the
# compression overlapped with training (the default) and waited for, side by side with the same
# training storing uncompressed checkpoints, ROUNDS times interleaved, twice: training on one
# thread (the compression gets the other cores, as the paper's GPU training leaves the CPU to
# it) and on every core (the compression competes with training). Prints, from within each run,
# the training loop's waits on compression and the slowdown of the steps taken beside it.
#   bench/dynaquant_overhead.sh [ROUNDS] [extra overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
shift || true
exp=./build/exp
[ -x "$exp" ] || cmake --build build --target exp
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
declare -A configs=(
  [uncompressed]="configs/reproduce/dynaquant/mlp_none.yaml compression.overlap=false"
  [overlapped]="configs/reproduce/dynaquant/mlp_dynaquant_eps0.01.yaml compression.overlap=true"
  [waited]="configs/reproduce/dynaquant/mlp_dynaquant_eps0.01.yaml compression.overlap=false"
)
threads_list="1 $(nproc)"
for threads in $threads_list; do
  for ((r = 0; r < rounds; ++r)); do
    for name in uncompressed overlapped waited; do
      run="$out/t$threads-$name-$r"
      # shellcheck disable=SC2086
      OMP_NUM_THREADS=$threads "$exp" run ${configs[$name]} hydra.run.dir="$run" "$@" > "$run.log" 2>&1 ||
        { cat "$run.log"; exit 1; }
    done
  done
done
/usr/bin/python3 - "$out" "$rounds" "$threads_list" <<'PY'
import sys
sys.path.insert(0, "scripts")
from results import load
out, rounds, threads_list = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
print(f"DynaQuant overhead, Fashion-MNIST MLP, ε = 0.01, {rounds} round(s); medians over rounds")
print("  in-run: waits = the loop waiting on compression; contention = how much slower the steps beside a")
print("  compression were than those alone, times their count; share = (waits + contention) / loop")
keys = ("train_seconds", "compression_stall_seconds", "compression_contention_seconds", "compression_seconds",
        "compression_time_share")
for threads in threads_list:
    print(f"training on {threads} thread(s)")
    rows = {}
    for name in ("uncompressed", "overlapped", "waited"):
        runs = [load(f"{out}/t{threads}-{name}-{r}").summary for r in range(rounds)]
        rows[name] = [sorted(s.get(k, 0.0) for s in runs)[len(runs) // 2] for k in keys]
    base = rows["uncompressed"][0]
    print(f"  {'run':<14}{'steps s':>9}{'waits s':>9}{'cont. s':>9}{'work s':>9}{'share':>8}{'loop / uncompressed steps':>28}")
    for name, (steps, waits, contention, work, share) in rows.items():
        print(f"  {name:<14}{steps:>9.2f}{waits:>9.2f}{contention:>9.2f}{work:>9.2f}{100 * share:>7.2f}%"
              f"{(steps + waits) / base:>27.3f}x")
print("goal: compression time < 1% of training time (share). The last column compares separate runs,")
print("so it carries the host's run-to-run noise; the uncompressed run waits on its checkpoints'")
print("validation evaluations (the quality columns every baseline reports).")
PY
