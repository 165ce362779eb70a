#!/usr/bin/env bash
# Builds a fuzzer of tests/fuzz with clang (libFuzzer + ASan + UBSan) and runs it for SECONDS
# (default 60) on its seed corpus (tests/fuzz/corpus/FUZZER). Exits non-zero if it finds a
# crash; the input that found it lands in OUT/artifacts — add it to the corpus as
# regression-*. Used by the `slow` tests.
#   scripts/run_fuzzer.sh [SECONDS] [OUT] [FUZZER]   FUZZER: config_fuzzer (default) or model_files_fuzzer
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
out=${2:-$root/build-fuzz}
fuzzer=${3:-config_fuzzer}
cmake -S "$root/tests/fuzz" -B "$out" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$out" --target "$fuzzer" >/dev/null
mkdir -p "$out/corpus-$fuzzer" "$out/artifacts"
cp "$root/tests/fuzz/corpus/$fuzzer"/* "$out/corpus-$fuzzer/"
cd "$out"
"./$fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/artifacts/" -print_final_stats=1 "corpus-$fuzzer" 2>&1 | tail -n 15
