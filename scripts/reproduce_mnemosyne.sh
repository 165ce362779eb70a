#!/usr/bin/env bash
# Mnemosyne's shapes on the simulator (docs/mnemosyne.md): TTFT vs SPP, TBT vs KVP, adaptive vs
# fixed chunks, the smallest layout for a 10M-token request, and a mixed workload; tables in
# OUT/mnemosyne.md, plots in OUT/*.png. Runs already in OUT are reused.
#   scripts/reproduce_mnemosyne.sh [OUT_DIR] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/reproduce/mnemosyne}
shift || true
[ -x build/exp ] || cmake --build build --target exp
exec /usr/bin/python3 scripts/reproduce_mnemosyne.py "$out" --exp build/exp "$@"
