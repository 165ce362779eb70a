#!/usr/bin/env bash
# Mnemosyne's layouts on the engine at small scale (docs/mnemosyne.md, "Engine fidelity"): the
# 33M-parameter Llama of scripts/reproduce_engine_fidelity.sh served by the CPU engine with its
# ranks as threads — one rank, KVP 2, PP 2, PP 2 with SPP, TP 2 × KVP 2, PP 2 × KVP 2 — next to
# the simulator's prediction from the engine's own profile (operators at each rank's thread count,
# and the ranks' collectives), each against the engine's spread over its runs of the same
# requests. KVP groups hold 256 tokens, so prompts of up to 384 span two. About 25 minutes on
# 2 cores; runs already in OUT are reused.
#   scripts/reproduce_engine_fidelity_layouts.sh [OUT_DIR] [extra overrides for every run]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/reproduce/engine_fidelity_layouts}
shift || true
exp=${EXP:-./build/exp}  # EXP: another build of exp
[ -x "$exp" ] || cmake --build build --target exp
mkdir -p "$out"
[ -f "$out/model/config.json" ] ||
  "$exp" run configs/experiment/make_model.yaml model.hidden_size=512 model.num_hidden_layers=8 \
    model.num_attention_heads=8 model.num_key_value_heads=4 model.intermediate_size=1536 model.vocab_size=8000 \
    model.max_position_embeddings=1024 output_dir="$out/model" hydra.run.dir="$out/make_model" > /dev/null
kvp="deployment.max_num_tokens_per_kvp_group=256"
declare -A layouts=(
  [tp1]=""
  [kvp2]="deployment.kv_parallel=2 $kvp"
  [pp2]="deployment.pipeline_parallel=2"
  [pp2_spp]="deployment.pipeline_parallel=2 deployment.sequence_pipeline_parallel=true"
  [tp2_kvp2]="deployment.tensor_parallel=2 deployment.kv_parallel=2 $kvp"
  [pp2_kvp2]="deployment.pipeline_parallel=2 deployment.kv_parallel=2 $kvp"
)
for name in tp1 kvp2 pp2 pp2_spp tp2_kvp2 pp2_kvp2; do
  [ -f "$out/$name/results.h5" ] && continue
  echo "== $name" >&2
  # shellcheck disable=SC2086
  "$exp" run configs/experiment/engine_fidelity.yaml model_dir="$out/model" profile.repetitions=3 \
    workload.num_requests=100 fidelity.engine_runs=3 ${layouts[$name]} hydra.run.dir="$out/$name" "$@" \
    > "$out/$name.txt" 2>&1 || { cat "$out/$name.txt" >&2; exit 1; }
done
/usr/bin/python3 - "$out" <<'PY'
import sys, h5py, numpy as np
out = sys.argv[1]
names = ["tp1", "kvp2", "pp2", "pp2_spp", "tp2_kvp2", "pp2_kvp2"]
print(f"{'layout':<10} {'capacity':>9} {'within':>7} {'median err':>10} {'worst err−spread':>16} {'iter ratio':>13}")
for n in names:
    with h5py.File(f"{out}/{n}/results.h5", "r") as f:
        s = f["/summary"].attrs
        e = f["/fidelity/errors"]
        over = max(float(a) - float(b) for a, b in zip(e["error_pct"][:], e["spread_pct"][:]))
        print(f"{n:<10} {s['simulated_capacity_qps']:>9.2f} {int(s['metrics_within_tolerance']):>4}/12 "
              f"{s['median_error_pct']:>9.1f}% {over:>15.1f}% "
              f"{s['iteration_time_ratio_min']:>6.3f}–{s['iteration_time_ratio_max']:.3f}")
PY
