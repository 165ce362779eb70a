#!/usr/bin/env bash
# Builds the config fuzzer with clang (libFuzzer + ASan + UBSan) and runs it for SECONDS
# (default 60) on the seed corpus. Exits non-zero if it finds a crash. Used by the `slow` test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
out=${2:-$root/build-fuzz}
cmake -S "$root/tests/fuzz" -B "$out" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$out" >/dev/null
mkdir -p "$out/corpus" "$out/artifacts"
cp "$root"/tests/fuzz/corpus/* "$out/corpus/"
cd "$out"
./config_fuzzer -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/artifacts/" -print_final_stats=1 corpus 2>&1 | tail -n 15
