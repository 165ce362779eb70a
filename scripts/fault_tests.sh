#!/usr/bin/env bash
# The reliability figures of the README: what happens to runs that are killed, stopped, starved
# of disk or run twice at once, counted over many cases. The regression tests of each promise are
# the `faults` tests (ctest -L faults, run in CI); this script measures at random points.
#   scripts/fault_tests.sh [CYCLES]       CYCLES kill/resume cycles per experiment (default 8)
# Needs root for the full-disk cases (tmpfs mounts); they are skipped, and said so, elsewhere.
set -uo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-8}
exp=$PWD/build/exp
[ -x "$exp" ] || cmake --build build --target exp
export OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'umount -l "$work/disk" 2>/dev/null; rm -rf "$work"' EXIT
c=configs/experiment
digits_topology="$c/binarized_topology.yaml data.dataset=digits network.layers=[64,64,10] train.epochs=12 train.batch_size=50 train.checkpoint_every=5 eval.sweep_every=0"
digits_dynaquant="$c/dynaquant.yaml data.dataset=digits network.layers=[64,32,10] data.validation=300 train.epochs=6 train.batch_size=32"
linear="$c/linear_regression.yaml train.steps=60000 train.checkpoint_every=500"

# The run's outcome as one line: the results tables and the summary, less what depends on
# timing (durations; which compressions had finished when a simulated failure struck).
fingerprint() {
  /usr/bin/python3 - "$1" <<'EOF'
import hashlib, sys, h5py
timing = ("second", "wall", "_s", "per_s", "on_disk_step", "real_failure", "beside", "failure_wait")
def timed(name):
    return any(t in name for t in timing)
f = h5py.File(sys.argv[1], "r")
h = hashlib.sha256()
def visit(name, obj):
    if isinstance(obj, h5py.Dataset) and "/" in name and not timed(name):
        h.update(name.encode()); h.update(obj[()].tobytes())
f.visititems(visit)
for k, v in sorted(f["summary"].attrs.items()):
    if not timed(k):
        h.update(k.encode()); h.update(str(v).encode())
print(h.hexdigest(), int(f.attrs.get("complete", 0)))
EOF
}

# Waits (at most 30 s) until a file matching the glob $1 exists.
wait_file() {
  for _ in $(seq 1 3000); do compgen -G "$1" > /dev/null && return 0; sleep 0.01; done
  return 1
}

# Kill/resume: each cycle kills a run with SIGKILL at a random moment, resumes it until it ends
# (killing it again at random once more), and compares it with an uninterrupted run.
kill_cycles() {
  local name=$1 args=$2 identical=0 ran=0
  "$exp" run $args hydra.run.dir="$work/$name-ref" > /dev/null 2>&1 || { echo "$name: reference run failed"; return; }
  local ref; ref=$(fingerprint "$work/$name-ref/results.h5")
  local t0 t1 span
  t0=$(date +%s%N); "$exp" run $args hydra.run.dir="$work/$name-timed" > /dev/null 2>&1; t1=$(date +%s%N)
  span=$(( (t1 - t0) / 1000000 ))
  for i in $(seq 1 "$cycles"); do
    local dir="$work/$name-$i"
    "$exp" run $args hydra.run.dir="$dir" > /dev/null 2>&1 & local pid=$!
    sleep "$(awk -v s="$span" -v r="$RANDOM" 'BEGIN { printf "%.3f", (0.1 + 0.8 * r / 32768) * s / 1000 }')"
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    for attempt in 1 2 3 4; do
      if [ ! -f "$dir/results.h5" ]; then rm -rf "$dir"; "$exp" run $args hydra.run.dir="$dir" > /dev/null 2>&1 & pid=$!
      else "$exp" run --resume "$dir" > /dev/null 2>&1 & pid=$!; fi
      if [ "$attempt" = 1 ]; then sleep "0.$((RANDOM % 5 + 1))"; kill -9 "$pid" 2>/dev/null; fi
      wait "$pid" 2>/dev/null && break
    done
    ran=$((ran + 1))
    [ "$(fingerprint "$dir/results.h5" 2>/dev/null)" = "$ref" ] && identical=$((identical + 1))
  done
  printf '%-34s %3d of %3d identical to the uninterrupted run\n' "kill -9 + resume: $name" "$identical" "$ran"
}

# SIGTERM: the run checkpoints and exits 75; the resumed run equals the uninterrupted one.
term_cycles() {
  local name=$1 args=$2 ok=0 ran=0
  local ref; ref=$(fingerprint "$work/$name-ref/results.h5")
  for i in $(seq 1 "$cycles"); do
    local dir="$work/$name-term-$i"
    "$exp" run $args hydra.run.dir="$dir" > /dev/null 2>&1 & local pid=$!
    # Once the run has started (its signal handlers are installed with its log), at a random moment.
    wait_file "$dir/*.log"; sleep "0.$((RANDOM % 5))"; kill -TERM "$pid"; wait "$pid"; local rc=$?
    "$exp" run --resume "$dir" > /dev/null 2>&1
    ran=$((ran + 1))
    [ "$rc" = 75 ] || [ "$rc" = 0 ] || continue
    [ "$(fingerprint "$dir/results.h5" 2>/dev/null)" = "$ref" ] && ok=$((ok + 1))
  done
  printf '%-34s %3d of %3d exit 75 and resume to the same result\n' "SIGTERM + resume: $name" "$ok" "$ran"
}

# Full disk: every experiment kind, on tmpfs mounts of 24 KiB (full before results.h5 exists),
# 40 and 96 KiB (full while results and files are written): exit 1 and no complete results.
full_disks() {
  mkdir -p "$work/disk"
  if ! mount -t tmpfs -o size=24k tmpfs "$work/disk" 2>/dev/null; then
    echo "full disk: skipped (mounting a tmpfs needs root with CAP_SYS_ADMIN)"; return
  fi
  umount "$work/disk"
  "$exp" run $c/make_model.yaml model.hidden_size=64 model.num_hidden_layers=2 model.num_attention_heads=4 \
    model.num_key_value_heads=2 model.intermediate_size=128 model.vocab_size=300 hydra.run.dir="$work/made" \
    output_dir="$work/model" > /dev/null 2>&1
  local m="model_dir=$work/model" grid="profile.num_tokens=[1,8,64] profile.prefill_chunks=[16,64] profile.prefill_kv=[0,128] profile.decode_batches=[1,4] profile.decode_kv=[32,256] profile.repetitions=1"
  local runs=("$c/serving_sim.yaml workload.num_requests=2000"
              "$c/capacity_search.yaml workload.num_requests=2000 capacity.max_iterations=2"
              "$c/config_search.yaml model=llama2_7b search.gpu_budget=1 search.tensor_parallel=[1] search.pipeline_parallel=[1] search.chunk_sizes=[512] search.batch_caps=[64] workload.num_requests=2000 capacity.max_iterations=2"
              "$linear" "$digits_topology" "$digits_dynaquant"
              "$c/make_model.yaml model.hidden_size=64 model.num_hidden_layers=2 model.num_attention_heads=4 model.num_key_value_heads=2 model.intermediate_size=128 model.vocab_size=300"
              "$c/engine_serve.yaml $m workload.num_requests=60 workload.max_tokens=64"
              "$c/engine_profile.yaml $m $grid"
              "$c/engine_fidelity.yaml $m $grid workload.num_requests=20 workload.max_tokens=128 fidelity.engine_runs=2")
  local cases=0 exit1=0 crashed=0 complete=0 fitted=0
  for run in "${runs[@]}"; do
    for kib in 24 40 96; do
      mount -t tmpfs -o size=${kib}k tmpfs "$work/disk"
      "$exp" run $run hydra.run.dir="$work/disk/x" > /dev/null 2> "$work/disk.err"; local rc=$?
      cases=$((cases + 1))
      if [ "$rc" = 0 ]; then fitted=$((fitted + 1))
      elif [ "$rc" = 1 ] && grep -q "No space left on device" "$work/disk.err"; then exit1=$((exit1 + 1))
      elif [ "$rc" -ge 128 ]; then crashed=$((crashed + 1)); fi
      if [ "$rc" != 0 ] && h5dump -a /complete "$work/disk/x/results.h5" 2>/dev/null | grep -q "(0): 1"; then complete=$((complete + 1)); fi
      umount "$work/disk"
    done
  done
  printf '%-34s %3d of %3d exit 1 naming the full disk (%d fitted), %d crashed, %d marked complete\n' \
    "full disk: 10 experiment kinds" "$exit1" "$((cases - fitted))" "$fitted" "$crashed" "$complete"
}

# Two resumes of one stopped run at once, HDF5 file locking off: one is refused (exit 2) and the
# other finishes with every row.
concurrent_resumes() {
  local refused=0 whole=0 ran=0
  export HDF5_USE_FILE_LOCKING=FALSE
  for i in $(seq 1 "$cycles"); do
    local dir="$work/twice-$i"
    "$exp" run $linear hydra.run.dir="$dir" > /dev/null 2>&1 & local pid=$!
    wait_file "$dir/checkpoints/ckpt-*"; kill -TERM "$pid"; wait "$pid"
    "$exp" run --resume "$dir" > /dev/null 2>&1 & local a=$!
    "$exp" run --resume "$dir" > /dev/null 2>&1 & local b=$!
    wait "$a"; local ra=$?; wait "$b"; local rb=$?
    ran=$((ran + 1))
    { [ "$ra" = 2 ] && [ "$rb" = 0 ]; } || { [ "$ra" = 0 ] && [ "$rb" = 2 ]; } && refused=$((refused + 1))
    local rows; rows=$(/usr/bin/python3 -c "import h5py; f = h5py.File('$dir/results.h5'); print(f['train/steps/step'].shape[0] if f.attrs.get('complete', 0) else -1)")
    [ "$rows" = 60000 ] && whole=$((whole + 1))
  done
  unset HDF5_USE_FILE_LOCKING
  printf '%-34s %3d of %3d: one refused (exit 2), the other complete; %d of %d with every row\n' \
    "two resumes at once" "$refused" "$ran" "$whole" "$ran"
}

echo "fault figures ($cycles cycles per case, $(nproc --all) cores, $(date -u +%Y-%m-%d))"
kill_cycles linear_regression "$linear"
kill_cycles binarized_topology "$digits_topology"
kill_cycles dynaquant "$digits_dynaquant"
term_cycles linear_regression "$linear"
term_cycles binarized_topology "$digits_topology"
concurrent_resumes
full_disks
