#!/usr/bin/python3
"""The simulator against Vidur itself on Vidur's own 2,000 requests (data/vidur/anchor_2000/):
replays requests.csv under Sarathi (chunk 512) and vLLM (4096 batched tokens) with the
deployment Vidur ran (Llama-2-70B, A100, TP2 x PP2, cap 128), and prints every percentile of
TTFT, E2E, normalized E2E and scheduling delay beside Vidur's, with the relative error.

    /usr/bin/python3 scripts/compare_vidur_anchor.py [OUT_DIR]

Vidur's outputs hold no per-request TBT and no iteration count, so those are not compared here
(its decode-time CDF is: `decode time per token`, Vidur's decode_time_execution_plus_preemption
_normalized, against our column of the same definition, decode_time_normalized_s: decode time / N).
"""
import os
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANCHOR = os.path.join(ROOT, "data", "vidur", "anchor_2000")
RUNS = {
    "sarathi_c512_n2000": ["scheduler=sarathi_serve", "scheduler.chunk_size=512"],
    "vllm_n2000": ["scheduler=vllm", "scheduler.max_batched_tokens=4096", "scheduler.quirks.padded_prefill_tokens=true"],
}
# (our column, Vidur's column, name)
METRICS = [
    ("ttft_s", "prefill_e2e_time", "TTFT"),
    ("e2e_s", "request_e2e_time", "E2E"),
    ("normalized_e2e_s", "request_e2e_time_normalized", "normalized E2E"),
    ("scheduling_delay_s", "request_scheduling_delay", "scheduling delay"),
    ("decode_time_normalized_s", "decode_time_execution_plus_preemption_normalized", "decode time per token"),
]


def simulate(name, overrides, out):
    run_dir = os.path.join(out, name)
    if not os.path.exists(os.path.join(run_dir, "results.h5")):
        cmd = [os.path.join(ROOT, "build", "exp"), "run", os.path.join(ROOT, "configs/bench/vidur_llama70b_a100.yaml"),
               "workload.num_requests=2000", "workload.lengths=trace", "workload.arrivals=trace",
               "workload.shuffle_trace=false", f"workload.trace_file={os.path.join(ANCHOR, 'requests.csv')}",
               "scheduler.max_num_seqs=128", f"hydra.run.dir={run_dir}"] + overrides
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with h5py.File(os.path.join(run_dir, "results.h5"), "r") as f:
        g = f["serving/requests"]
        return pd.DataFrame({k: g[k][()] for k in g.keys()})


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "results", "vidur_anchor")
    worst = 0.0
    for name, overrides in RUNS.items():
        ours = simulate(name, overrides, out)
        vidur = pd.read_csv(os.path.join(ANCHOR, name, "request_metrics.csv"))
        print(f"\n{name}: {len(ours)} requests here, {len(vidur)} in Vidur")
        print(f"  {'metric':<24}{'q':>4}{'Vidur':>12}{'ours':>12}{'error':>9}")
        for col, vcol, label in METRICS:
            for q in (50, 90, 99):
                v = float(np.percentile(vidur[vcol], q))
                o = float(np.percentile(ours[col], q))
                err = (o - v) / v if v else 0.0
                worst = max(worst, abs(err))
                print(f"  {label:<24}{'P' + str(q):>4}{v:>12.4f}{o:>12.4f}{100 * err:>8.1f}%")
    print(f"\nlargest |error|: {100 * worst:.1f}%")


if __name__ == "__main__":
    main()
