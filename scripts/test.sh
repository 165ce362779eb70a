#!/usr/bin/env bash
# Installs what the project needs, builds everything with warnings as errors (the CUDA sources
# too, wherever nvcc exists) and runs the whole test suite. Extra arguments go to ctest
# (e.g. -L unit, -LE slow). `EXP_SANITIZE=1 scripts/test.sh` runs it all under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
build=build
flags=(-DEXP_WERROR=ON)
if [ "${EXP_SANITIZE:-0}" = 1 ]; then
  # CUDA's runtime and ASan's shadow memory do not mix; the sanitizer build is CPU-only.
  build=build-asan
  flags+=(-DEXP_SANITIZE=ON -DEXP_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$build" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure -j2 "$@"
