#!/usr/bin/env bash
# Installs what the project needs, builds `exp` and runs the quickstart experiment, printing
# its result table. Extra arguments are overrides, e.g. scripts/quickstart.sh train.lr=0.1
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build --target exp
exec ./build/exp run configs/quickstart.yaml "$@"
