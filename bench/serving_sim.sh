#!/usr/bin/env bash
# Simulator speed (issue: serving simulator, Performance). Runs the Vidur comparison workload
# (configs/bench/vidur_llama70b_a100.yaml: Llama-2-70B TP2xPP2 on A100, splitwise_conv, Poisson
# 1.5 QPS, Sarathi-Serve chunk 512, cap 128, seed 42) at 10k and 100k requests, then a
# 1,000,000-request single replica and a 128-replica cluster, printing simulated requests per
# second, peak memory, and the ratio to Vidur's time for 10k requests of this workload on this
# kind of machine (34.6 s in the issue's measurement, 23 s at its best, after 19 min of predictor
# fitting; Vidur itself cannot be installed here, so it is not rerun side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
exp=./build/exp
[ -x "$exp" ] || { echo "build first: cmake -S . -B build -G Ninja && cmake --build build" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
vidur_s=34.6      # Vidur's whole process for 10k requests (s), as the issue measured it
vidur_best_s=23   # its best run

# Whole-process wall time (start-up, config composition, profile loading, the loop, writing
# results.h5), as a user waits for it; the loop's own time is in the log line.
run() {  # name, overrides...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$out/$name.time" "$exp" run configs/bench/vidur_llama70b_a100.yaml \
    hydra.run.dir="$out/$name" "$@" > "$out/$name.out" 2> "$out/$name.err"
  local line wall rss n loop rate
  line=$(grep -o "[0-9]* requests, [0-9]* iterations in [0-9.]* s of wall time ([0-9]* simulated requests/s)" "$out/$name.err" | tail -1)
  read -r wall rss < "$out/$name.time"
  n=$(echo "$line" | awk '{print $1}'); loop=$(echo "$line" | awk '{print $6}')
  rate=$(echo "$n / $wall" | bc -l)
  printf "%-22s %8s requests %7.2f s process (loop %s s) %9.0f req/s %6.0f MiB peak" "$name" "$n" "$wall" "$loop" "$rate" \
    "$(echo "$rss / 1024" | bc -l)"
  if [ "$name" = "10k" ]; then
    printf "   %4.0fx Vidur's %s s (goal >= 100x; %.0fx its best %s s)" "$(echo "$vidur_s / $wall" | bc -l)" "$vidur_s" \
      "$(echo "$vidur_best_s / $wall" | bc -l)" "$vidur_best_s"
  fi
  printf "\n"
}

echo "serving simulator benchmark ($(nproc) cores, $(date -u +%F))"
/usr/bin/time -f "%e %M" -o "$out/help.time" "$exp" --help > /dev/null
read -r wall rss < "$out/help.time"
# /usr/bin/time counts in 10 ms steps: the median of 21 runs timed by bash's own clock instead.
help_s=$(for _ in $(seq 21); do
  t0=$EPOCHREALTIME; "$exp" --help > /dev/null; t1=$EPOCHREALTIME; echo "$t1 - $t0" | bc -l
done | sort -n | sed -n 11p)
printf "%-22s %7.3f s %6.1f MiB   (median of 21; goal < 0.030 s, < 20 MiB)\n" "exp --help" "$help_s" \
  "$(echo "$rss / 1024" | bc -l)"
run 1-request workload.num_requests=1
run 10k workload.num_requests=10000
run 10k-with-batch-rows workload.num_requests=10000 metrics.store_batches=true
run 100k workload.num_requests=100000
run 1M-single-replica workload.num_requests=1000000
run 128-replicas deployment.num_replicas=128 workload.num_requests=200000 workload.qps=192
echo "memory flat in finished requests: compare the peak of 10k, 100k and 1M above"
# Vidur-Search's space for Llama-2-70B (TP {1,2,4,8} x PP {1,2,4} x vLLM and Sarathi-Serve
# {256..4096} x caps {32,64,128}, a capacity search at each point); the Vidur paper reports about
# an hour on a CPU machine. Goal: under a minute here.
start=$(date +%s.%N)
"$exp" run configs/experiment/config_search.yaml hydra.run.dir="$out/search" > "$out/search.out" 2> "$out/search.err"
end=$(date +%s.%N)
points=$(grep -o "config search: [0-9]* points ([0-9]* runnable)" "$out/search.err" | head -1)
printf "%-28s %s in %.1f s (goal < 60 s; Vidur-Search: ~1 h)\n" "config search" "$points" "$(echo "$end - $start" | bc -l)"
