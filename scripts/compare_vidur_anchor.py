#!/usr/bin/python3
"""The simulator against Vidur itself on Vidur's own 2,000 requests (data/vidur/anchor_2000/):
replays requests.csv under Sarathi (chunk 512) and vLLM (4096 batched tokens) with the
deployment Vidur ran (Llama-2-70B, A100, TP2 x PP2, cap 128), and prints P50/P90/P99 of TTFT,
TBT, E2E, normalized E2E, scheduling delay and decode time per token, and the iteration count,
beside Vidur's, twice:

- on the measured profiles (our predictor: the profiled medians, interpolated), and
- on Vidur's random forest (scripts/vidur_forest_profile.py: forests fitted as Vidur fits them,
  their predictions written as profiles), as the median over several fits, because a forest is
  random and Vidur sets no seed: the spread between fits is printed too.

The difference between the two columns is what Vidur's forest adds to the profile; the
residue by operator (forest against profiled median) is printed at the end.

    /usr/bin/python3 scripts/compare_vidur_anchor.py [OUT_DIR] [--check] [--fresh] [--seeds N] [--exp PATH]

Runs already in OUT_DIR (default results/vidur_anchor) are reused; --fresh starts from an empty
OUT_DIR. --check exits 1 unless every figure on the forest is within 3% of Vidur's (the test
`VidurAnchor.ReplayAgreesWithVidurWithinThreePercent` runs it, label slow, ~1.5 min).

Vidur's outputs hold no iteration count: it is estimated the same way on both sides, as the
tokens all batches processed (Σ prompt + output − 1 over the requests) over the mean of the
101-point CDF of tokens per batch (Vidur's plots/batch_num_tokens.csv, our /batch_cdf). TBT is
Vidur's decode_token_execution_plus_preemption_time CDF against our /cdf tbt_s. "Decode time per
token" is Vidur's decode_time_execution_plus_preemption_normalized against our
decode_time_normalized_s (decode time / N; Metron's TPOT, our tpot_s, divides by N - 1).
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vidur_forest_profile as forest  # noqa: E402  (the deployment, profiles and operators it fits)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANCHOR = os.path.join(ROOT, "data", "vidur", "anchor_2000")
RUNS = {
    "sarathi_c512_n2000": ["scheduler=sarathi_serve", "scheduler.chunk_size=512"],
    "vllm_n2000": ["scheduler=vllm", "scheduler.max_batched_tokens=4096", "scheduler.quirks.padded_prefill_tokens=true"],
}
# (our column in /serving/requests, Vidur's column in request_metrics.csv, name)
REQUEST_METRICS = [
    ("ttft_s", "prefill_e2e_time", "TTFT"),
    ("e2e_s", "request_e2e_time", "E2E"),
    ("normalized_e2e_s", "request_e2e_time_normalized", "normalized E2E"),
    ("scheduling_delay_s", "request_scheduling_delay", "scheduling delay"),
    ("decode_time_normalized_s", "decode_time_execution_plus_preemption_normalized", "decode time per token"),
]
TOLERANCE = 0.03
EXP = os.path.join(ROOT, "build", "exp")


def simulate(run_dir, overrides):
    if not os.path.exists(os.path.join(run_dir, "results.h5")):
        cmd = [EXP, "run", os.path.join(ROOT, "configs/bench/vidur_llama70b_a100.yaml"),
               "workload.num_requests=2000", "workload.lengths=trace", "workload.arrivals=trace",
               "workload.shuffle_trace=false", f"workload.trace_file={os.path.join(ANCHOR, 'requests.csv')}",
               "scheduler.max_num_seqs=128", "metrics.store_batches=true", f"hydra.run.dir={run_dir}"] + overrides
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with h5py.File(os.path.join(run_dir, "results.h5"), "r") as f:
        requests = pd.DataFrame({k: f["serving/requests"][k][()] for k in f["serving/requests"].keys()})
        cdf = pd.DataFrame({k: f["serving/cdf"][k][()] for k in f["serving/cdf"].keys()})
        batch_cdf = pd.DataFrame({k: f["serving/batch_cdf"][k][()] for k in f["serving/batch_cdf"].keys()})
        batches = pd.DataFrame({k: f["serving/batches"][k][()] for k in ("num_prefill_tokens", "num_decodes")})
    return requests, cdf, batch_cdf, batches


def batch_tokens(requests):
    # Every prompt token once, every output token but the first (it comes with the prompt's last chunk).
    return float((requests["num_prefill_tokens"] + requests["num_decode_tokens"] - 1).sum())


def iterations(total_tokens, cdf_tokens):
    return total_tokens / np.trapz(np.asarray(cdf_tokens, dtype=float), dx=0.01)


def figures_ours(run):
    requests, cdf, batch_cdf, _ = run
    out = {}
    for col, _, label in REQUEST_METRICS:
        for q in (50, 90, 99):
            out[(label, f"P{q}")] = float(np.percentile(requests[col], q))
    for q in (50, 90, 99):
        out[("TBT", f"P{q}")] = float(cdf["tbt_s"].iloc[q])
    return out, batch_cdf["num_tokens"].to_numpy()


def figures_vidur(name, trace):
    vidur = pd.read_csv(os.path.join(ANCHOR, name, "request_metrics.csv"))
    out = {}
    for _, vcol, label in REQUEST_METRICS:
        for q in (50, 90, 99):
            out[(label, f"P{q}")] = float(np.percentile(vidur[vcol], q))
    tbt = pd.read_csv(os.path.join(ANCHOR, name, "plots", "decode_token_execution_plus_preemption_time.csv"))
    for q in (50, 90, 99):
        out[("TBT", f"P{q}")] = float(tbt.iloc[q, 2])
    tokens = pd.read_csv(os.path.join(ANCHOR, name, "plots", "batch_num_tokens.csv")).iloc[:, 2].to_numpy()
    out[("iterations", "")] = iterations(batch_tokens(trace), tokens)
    return out


def residue_over_batches(batches, forest_dir):
    """Per token-level operator and collective: the forest's time summed over a run's batches
    against the profile's (the profiled medians, duplicates averaged, linear between points, as our
    predictor reads them), both at the batch's tokens rounded up to 8 as the lookups are made."""
    tokens = ((batches["num_prefill_tokens"] + batches["num_decodes"] + 7) // 8 * 8).to_numpy(dtype=float)
    bytes_per_token = forest.MODEL["n_embd"] * 2.0
    rows = []
    mlp = pd.read_csv(forest.MLP)
    mlp = mlp[(mlp.n_embd == forest.MODEL["n_embd"]) & (mlp.num_tensor_parallel_workers == forest.TP)]
    forest_mlp = pd.read_csv(os.path.join(forest_dir, "compute", forest.PROFILE_NAME, "mlp.csv")).set_index("num_tokens")
    tables = [(op, mlp, "num_tokens", forest_mlp, 1.0) for op in forest.TOKEN_OPS]
    for name in ("all_reduce", "send_recv"):
        net = pd.read_csv(os.path.join(forest.NETWORK, f"{name}.csv"))
        net = net[(net.collective == name) & (net.devices_per_node == 2) & (net.num_workers == 2)]
        forest_net = pd.read_csv(os.path.join(forest_dir, "network", f"{name}.csv"))
        forest_net["num_tokens"] = forest_net["size"] / bytes_per_token
        tables.append((name, net, "size", forest_net.set_index("num_tokens"), bytes_per_token))
    for op, profile, xcol, fitted, scale in tables:
        col = f"time_stats.{op}.median"
        curve = profile.groupby(xcol)[col].mean()
        prof = np.interp(tokens * scale, curve.index.to_numpy(dtype=float), curve.to_numpy())
        fore = fitted[col].reindex(tokens).to_numpy()
        rows.append({"operator": op, "profile_ms": prof.sum(), "forest_ms": fore.sum(),
                     "forest_vs_profile_pct": 100 * (fore.sum() / prof.sum() - 1)})
    return pd.DataFrame(rows)


def main():
    global EXP
    args = sys.argv[1:]
    options = {}
    for flag in ("--seeds", "--exp"):
        if flag in args:
            i = args.index(flag)
            options[flag] = args[i + 1]
            del args[i:i + 2]
    check, fresh = "--check" in args, "--fresh" in args
    args = [a for a in args if a not in ("--check", "--fresh")]
    seeds = int(options.get("--seeds", 3))
    EXP = options.get("--exp", EXP)
    out = args[0] if args else os.path.join(ROOT, "results", "vidur_anchor")
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    trace = pd.read_csv(os.path.join(ANCHOR, "requests.csv"))

    forests = []
    for seed in range(seeds):
        d = os.path.join(out, f"forest_seed{seed}")
        if not os.path.exists(os.path.join(d, "residue.csv")):
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "vidur_forest_profile.py"), d, "--seed", str(seed)],
                           check=True, stdout=subprocess.DEVNULL)
        forests.append(d)

    worst = 0.0
    residues = {}
    for name, overrides in RUNS.items():
        vidur = figures_vidur(name, trace)
        profile_run = simulate(os.path.join(out, name, "profile"), overrides)
        residues[name] = residue_over_batches(profile_run[3], forests[0])
        profile, profile_tokens = figures_ours(profile_run)
        profile[("iterations", "")] = iterations(batch_tokens(trace), profile_tokens)
        per_seed = []
        for seed, d in enumerate(forests):
            fig, tokens = figures_ours(simulate(os.path.join(out, name, f"forest_seed{seed}"), overrides + [
                f"hardware.profile_dir={d}/compute", f"hardware.network_dir={d}/network"]))
            fig[("iterations", "")] = iterations(batch_tokens(trace), tokens)
            per_seed.append(fig)
        print(f"\n{name} ({len(trace)} requests; forest: median of {len(forests)} fits, and their spread)")
        print(f"  {'metric':<22}{'q':>4}{'Vidur':>11}{'profile':>11}{'error':>8}{'forest':>11}{'error':>8}   spread")
        for key, v in vidur.items():
            errs = [(f[key] - v) / v for f in per_seed]
            med = float(np.median([f[key] for f in per_seed]))
            err = (med - v) / v
            worst = max(worst, abs(err))
            p_err = (profile[key] - v) / v
            num = lambda x: f"{x:>11.0f}" if x >= 1000 else f"{x:>11.4f}"  # noqa: E731 (counts, then seconds)
            print(f"  {key[0]:<22}{key[1]:>4}{num(v)}{num(profile[key])}{100 * p_err:>7.1f}%{num(med)}"
                  f"{100 * err:>7.1f}%   {100 * min(errs):+.1f}..{100 * max(errs):+.1f}%")
    print(f"\nlargest |error| on the forest (median of fits): {100 * worst:.1f}% (limit {100 * TOLERANCE:.0f}%)")
    residue = pd.read_csv(os.path.join(forests[0], "residue.csv"))
    print("\nVidur's forest against the profiled medians at the profiled points, by operator (seed 0):")
    print(residue.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    for name, table in residues.items():
        print(f"\nThe same over the batches of {name} on the profile (per layer, summed over batches; seed 0):")
        print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if check and worst > TOLERANCE:
        sys.exit(f"FAIL: a figure on the forest is {100 * worst:.1f}% from Vidur's (limit {100 * TOLERANCE:.0f}%)")


if __name__ == "__main__":
    main()
