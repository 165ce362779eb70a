#!/usr/bin/python3
"""Plots for serving results (run with Debian's /usr/bin/python3; matplotlib, h5py).

    /usr/bin/python3 scripts/plot_serving.py RUN_DIR [--out DIR]

From a serving_sim run: CDFs of TTFT, TBT, normalized latency and scheduling delay, one line per
scheduler, P50/P90/P99 marked (ttft_cdf.png, tbt_cdf.png, normalized_e2e_cdf.png,
scheduling_delay_cdf.png). From a capacity search: capacity_bars.png and, when it holds the
probes, throughput_latency.png. From a config search: pareto.png. From any run with per-request
rows (/serving/requests): Metron's ttft_violin.png (TTFT by prompt length) and, with per-token
rows (metrics.store_tokens=true), its stall plot tokens_vs_time.png (tokens generated against
time for the request with the longest gap, beside a steady one).
"""
import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import h5py  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CDFS = [
    ("ttft_s", "TTFT (s)", "ttft_cdf.png", False),
    ("tbt_s", "time between tokens (s)", "tbt_cdf.png", True),
    ("normalized_e2e_s", "normalized end-to-end latency (s/token)", "normalized_e2e_cdf.png", False),
    ("scheduling_delay_s", "scheduling delay (s)", "scheduling_delay_cdf.png", False),
]


def cdf_groups(f):
    """(label, group) for every serving CDF table in the file."""
    out = []
    if "serving" not in f:
        return out
    s = f["serving"]
    if "cdf" in s:
        out.append(("", s["cdf"]))
    for name in s:
        if isinstance(s[name], h5py.Group) and "cdf" in s[name]:
            out.append((name, s[name]["cdf"]))
    return out


def plot_cdfs(f, out):
    groups = cdf_groups(f)
    written = []
    for col, label, fname, logx in CDFS:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, g in groups:
            q, v = g["quantile"][()], g[col][()]
            line, = ax.plot(v, q, label=name or "run")
            for p, m in ((0.5, "o"), (0.9, "s"), (0.99, "^")):
                ax.plot(np.interp(p, q, v), p, m, color=line.get_color())
        if logx:
            ax.set_xscale("symlog", linthresh=1e-3)
        ax.set_xlabel(label)
        ax.set_ylabel("fraction of " + ("tokens" if col == "tbt_s" else "requests"))
        ax.set_title(label.split(" (")[0] + " CDF (markers: P50, P90, P99)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, fname), dpi=120)
        plt.close(fig)
        written.append(fname)
    return written


def plot_capacity(f, out):
    if "capacity" not in f or "results" not in f["capacity"]:
        return []
    g = f["capacity"]["results"]
    names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("systems", [])]
    qps = g["capacity_qps"][()]
    names = [names[i] for i in g["system_index"][()]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(range(len(qps)), qps)
    ax.set_xticks(range(len(qps)), names, rotation=20)
    ax.set_ylabel("capacity (QPS under the SLO)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "capacity_bars.png"), dpi=120)
    plt.close(fig)
    written = ["capacity_bars.png"]
    if "probes" in f["capacity"]:
        p = f["capacity"]["probes"]
        fig, ax = plt.subplots(figsize=(6, 4))
        sysid, q, ttft, tbt = p["system_index"][()], p["qps"][()], p["p99_ttft_s"][()], p["p99_tbt_s"][()]
        for i, name in enumerate(names):
            m = sysid == i
            order = np.argsort(q[m])
            ax.plot(q[m][order], tbt[m][order], "o-", label=f"{name} P99 TBT")
            ax.plot(q[m][order], ttft[m][order], "x--", label=f"{name} P99 TTFT")
        ax.set_yscale("log")
        ax.set_xlabel("offered load (QPS)")
        ax.set_ylabel("latency (s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "throughput_latency.png"), dpi=120)
        plt.close(fig)
        written.append("throughput_latency.png")
    return written


def plot_pareto(f, out):
    if "search" not in f or "points" not in f["search"]:
        return []
    g = f["search"]["points"]
    cost, qps = g["qps_per_dollar"][()], g["capacity_qps"][()]
    pareto = g["pareto"][()].astype(bool)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(g["gpus"][()], qps, c="lightgray", label="configurations")
    ax.scatter(g["gpus"][()][pareto], qps[pareto], c="C3", label="Pareto frontier (QPS/$)")
    ax.set_xlabel("GPUs")
    ax.set_ylabel("capacity (QPS)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "pareto.png"), dpi=120)
    plt.close(fig)
    del cost
    return ["pareto.png"]


def plot_violin(f, out):
    """Metron's ttft_violin_plot: TTFT by prompt length, prompts grouped by powers of two."""
    if "serving/requests" not in f:
        return []
    r = f["serving/requests"]
    keep = r["ignored"][()] == 0
    ttft, prompt = r["ttft_s"][()][keep], r["prefill_tokens"][()][keep]
    if len(ttft) < 2:
        return []
    bucket = np.floor(np.log2(np.maximum(prompt, 1))).astype(int)
    keys = sorted(set(bucket.tolist()))
    data = [ttft[bucket == k] for k in keys]
    fig, ax = plt.subplots(figsize=(max(5, len(keys) * 0.9), 4))
    ax.violinplot(data, showmedians=True)
    ax.set_xticks(range(1, len(keys) + 1), [f"{2**k}-{2**(k+1)-1}" for k in keys], rotation=30)
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("TTFT (s)")
    ax.set_title("TTFT by prompt length")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ttft_violin.png"), dpi=120)
    plt.close(fig)
    return ["ttft_violin.png"]


def plot_stalls(f, out):
    """Metron's stall plot: tokens generated against time since arrival, for the request with the
    longest gap between tokens beside a typical one (the median longest gap): a stall is a flat step."""
    if "serving/tokens" not in f or "serving/requests" not in f:
        return []
    t = f["serving/tokens"]
    ids, times, gaps = t["request_id"][()], t["emit_time_s"][()], t["tbt_s"][()]
    if len(ids) == 0:
        return []
    req = f["serving/requests"]
    arrival = dict(zip(req["request_id"][()].tolist(), req["arrival_s"][()].tolist()))
    worst_gap = {}
    for i, g in zip(ids.tolist(), gaps.tolist()):
        worst_gap[i] = max(worst_gap.get(i, 0.0), g)
    worst = max(worst_gap, key=worst_gap.get)
    ranked = sorted(worst_gap, key=worst_gap.get)
    steady = ranked[len(ranked) // 2]
    fig, ax = plt.subplots(figsize=(6, 4))
    for rid, label in [(worst, "longest stall"), (steady, "median longest gap")]:
        sel = ids == rid
        x = np.concatenate([[0.0], np.sort(times[sel]) - arrival.get(rid, 0.0)])
        ax.step(x, np.arange(len(x)), where="post", label=f"request {rid} ({label})")
    ax.set_xlabel("time since arrival (s)")
    ax.set_ylabel("tokens generated")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "tokens_vs_time.png"), dpi=120)
    plt.close(fig)
    return ["tokens_vs_time.png"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--out", help="folder for the PNGs (default: the run folder)")
    a = ap.parse_args()
    path = os.path.join(a.run, "results.h5") if os.path.isdir(a.run) else a.run
    out = a.out or os.path.dirname(os.path.abspath(path))
    with h5py.File(path, "r") as f:
        written = plot_cdfs(f, out) if cdf_groups(f) else []
        written += plot_capacity(f, out) + plot_pareto(f, out) + plot_violin(f, out) + plot_stalls(f, out)
    if not written:
        print(f"{path}: no serving tables to plot", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(os.path.join(out, w) for w in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
