#!/usr/bin/env bash
# DynaQuant codec throughput, one thread: encode and decode MB/s of fp32 weights for a synthetic
# 100M-parameter checkpoint chain against zstd level 3 on the same bytes, and the guided search's
# evaluation count against exhaustive search (goals: encode >= 200 MB/s, decode >= 500 MB/s).
#   bench/dynaquant_codec.sh [PARAMS] [CHECKPOINTS]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/tests/bench/compression/bench_codec ] || cmake --build build --target bench_codec
out=$(OMP_NUM_THREADS=1 ./build/tests/bench/compression/bench_codec "${1:-100000000}" "${2:-4}")
/usr/bin/python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"DynaQuant codec, {r['params'] / 1e6:.0f}M fp32 parameters, {r['checkpoints']} checkpoints (base + deltas), 1 thread")
print(f"  {'':<10}{'DynaQuant':>12}{'zstd -3':>10}{'ratio':>8}   goal")
print(f"  {'encode':<10}{r['encode_mb_s']:>9.0f} MB/s{r['zstd_encode_mb_s']:>6.0f} MB/s{r['encode_mb_s'] / r['zstd_encode_mb_s']:>6.2f}x   >= 200 MB/s")
print(f"  {'decode':<10}{r['decode_mb_s']:>9.0f} MB/s{r['zstd_decode_mb_s']:>6.0f} MB/s{r['decode_mb_s'] / r['zstd_decode_mb_s']:>6.2f}x   >= 500 MB/s")
print(f"  {'decode into the model':<22}{r['decode_into_mb_s']:>6.0f} MB/s   (a restore: no fresh output memory)")
print(f"  time in quantize: {100 * r['quantize_share']:.0f}% of encode; in dequantize: {100 * r['dequantize_share']:.0f}% of decode")
print(f"  compression ratio: DynaQuant {r['ratio']:.1f}x, zstd {r['zstd_ratio']:.2f}x")
print(f"  search: guided {r['guided_evaluations']:.1f} evaluations vs exhaustive {r['exhaustive_evaluations']:.0f}")
PY
