#!/usr/bin/python3
"""Mnemosyne's shapes on the simulator (docs/mnemosyne.md): Llama-3-8B (TP1) and Llama-3-70B
(TP8) on the H200 profiles.

  1. TTFT against the SPP degree for a 1M- and a 10M-token prompt (expected about 1/SPP);
  2. TBT against the KVP degree at 1M-10M tokens of context (about 1/KVP until the linear layers
     and the merge dominate);
  3. adaptive against fixed chunks: a 1M-token prefill beside 16 decoding requests;
  4. the smallest layout that serves a 10M-token request within a 30 ms P99 TBT, and its TTFT;
  5. a mixed workload: 1,000 chat requests and two 1M-token prompts, Sarathi-Serve with fixed
     chunks against adaptive chunks and against Mnemosyne's scheduler (space sharing).

Each run is `exp run configs/reproduce/mnemosyne/*.yaml` with overrides, in OUT/<name>/ (runs
already there are reused). Writes OUT/mnemosyne.md (the tables) and OUT/*.png (the plots).
  scripts/reproduce_mnemosyne.py OUT_DIR [--exp build/exp] [--quick]
"""
import argparse
import csv
import math
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs", "reproduce", "mnemosyne")
DECODES = 64
MODELS = {
    # Llama-3-70B's layers have Llama-2-70B's shapes (64/8 heads, 8192, 28672): its H200 profile times them.
    "llama3_70b": ["model=llama3_70b", "model.profile_name=meta-llama/Llama-2-70b-hf", "deployment.tensor_parallel=8"],
    "llama3_8b": ["model=llama3_8b"],
}
M = 1_000_000


def round_up(v, m):
    return (v + m - 1) // m * m


def layout(total_tokens, spp=1, kvp=1):
    """Overrides for a layout serving one request of `total_tokens` (prompt and decodes)."""
    o = [f"model.max_model_len={total_tokens}", f"workload.max_tokens={total_tokens}",
         f"deployment.pipeline_parallel={spp}", f"deployment.sequence_pipeline_parallel={'true' if spp > 1 else 'false'}",
         f"deployment.kv_parallel={kvp}"]
    # Each group holds an equal share, so a request of this length spans all of them.
    o.append(f"deployment.max_num_tokens_per_kvp_group={round_up(math.ceil(total_tokens / kvp), 16) if kvp > 1 else 1048576}")
    return o


class Runner:
    def __init__(self, out, exp):
        self.out, self.exp = out, exp

    def run(self, name, config, overrides):
        """The run's summary attributes (None if the layout cannot hold the request)."""
        d = os.path.join(self.out, name)
        results = os.path.join(d, "results.h5")
        if not os.path.exists(results):
            cmd = [self.exp, "run", os.path.join(CONFIGS, config)] + overrides + [f"hydra.run.dir={d}"]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
        with h5py.File(results, "r") as f:
            s = {k: v for k, v in f["summary"].attrs.items()}
        print(f"  {name}: " + ("does not fit" if s.get("kv_blocks_per_replica", 1) == 0 else
                                f"TTFT {s.get('p50_ttft_s', 0):.1f} s, TBT {s.get('p50_tbt_s', 0) * 1e3:.1f} ms, "
                                f"{s.get('wall_s', 0):.2f} s wall"), flush=True)
        return None if s.get("kv_blocks_per_replica", 1) == 0 else s

    def requests(self, name, group):
        with h5py.File(os.path.join(self.out, name, "results.h5"), "r") as f:
            t = f[group + "/requests"]
            return {k: t[k][:] for k in t.keys()}


def ttft_vs_spp(r, quick):
    rows = {}
    for model in MODELS:
        for ctx in ([M] if quick else [M, 10 * M]):
            # KVP to hold the KV: Llama-3-8B's H200 holds ~0.9M tokens per GPU at TP1, 70B's eight ~2.7M.
            kvp = (2 if ctx == M else 16) if model == "llama3_8b" else (1 if ctx == M else 4)
            for spp in (1, 2, 4, 8):
                s = r.run(f"spp_{model}_{ctx // M}M_spp{spp}_kvp{kvp}", "long_request.yaml",
                          MODELS[model] + layout(ctx + DECODES, spp, kvp) + [f"workload.prompt_tokens={ctx}"])
                rows[(model, ctx, spp)] = (kvp, s)
    return rows


def tbt_vs_kvp(r, quick):
    rows = {}
    for model in MODELS:
        for ctx in ([M, 4 * M] if quick else [M, 2 * M, 4 * M, 10 * M]):
            for kvp in (1, 2, 4, 8, 16):
                rows[(model, ctx, kvp)] = r.run(f"kvp_{model}_{ctx // M}M_kvp{kvp}", "long_request.yaml",
                                                MODELS[model] + layout(ctx + DECODES, 1, kvp) + [f"workload.prompt_tokens={ctx}"])
    return rows


def write_trace(path, rows):
    with open(path, "w") as f:
        f.write("arrived_at,num_prefill_tokens,num_decode_tokens\n")
        for t, p, d in sorted(rows):
            f.write(f"{t:g},{p},{d}\n")


def adaptive_vs_fixed(r):
    """A 1M-token prompt arriving while 16 requests decode (20,000 tokens each: their KV leaves room)."""
    trace = os.path.join(r.out, "adaptive_vs_fixed.csv")
    write_trace(trace, [(0.0, 256, 20000)] * 16 + [(1.0, M, DECODES)])
    total = 1_048_576
    base = MODELS["llama3_8b"] + layout(total, 1, 2) + [
        "workload.lengths=trace", "workload.arrivals=trace", f"workload.trace_file={trace}", "workload.num_requests=17",
        "scheduler.adaptive_chunking.long_prefill_share=0", "metrics.store_batches=true"]
    rows = {}
    for name, o in [("fixed 512", ["scheduler.adaptive_chunking.enabled=false", "scheduler.chunk_size=512"]),
                    ("fixed 2048", ["scheduler.adaptive_chunking.enabled=false", "scheduler.chunk_size=2048"]),
                    ("adaptive (30 ms)", [])]:
        tag = "chunks_" + name.split()[0] + (name.split()[1] if name.startswith("fixed") else "")
        r.run(tag, "long_request.yaml", base + o)
        q = r.requests(tag, "/serving")
        long = q["prefill_tokens"] == M
        # TBT of the short requests while the long prompt prefills: their decode time per token
        # up to the long prompt's first token.
        rows[name] = dict(ttft=float(q["ttft_s"][long][0]), tokens=tag)
    return rows


def short_tbt_during_prefill(r, tag):
    """P50 and P99 TBT of the decoding requests while the long prompt prefills: with one stage a
    decode's token comes at the end of each batch holding it, so its TBT is that batch's time
    (weighted by the decodes in the batch)."""
    with h5py.File(os.path.join(r.out, tag, "results.h5"), "r") as f:
        q = f["/serving/requests"]
        long = q["prefill_tokens"][:] == M
        start, end = float(q["arrival_s"][:][long][0]), float(q["first_token_s"][:][long][0])
        b = f["/serving/batches"]
        t0, dt, n = b["start_s"][:], b["time_s"][:], b["num_decodes"][:]
    m = (t0 >= start) & (t0 + dt <= end) & (n > 0)
    gaps = np.repeat(dt[m], n[m].astype(int))
    return np.percentile(gaps, 50), np.percentile(gaps, 99)


def smallest_for_10m(r, quick):
    rows = {}
    ctx = 10 * M
    for model in MODELS:
        found = None
        for kvp in (1, 2, 4, 8, 16, 32):
            for spp in (1, 2, 4, 8):
                s = r.run(f"smallest_{model}_spp{spp}_kvp{kvp}", "long_request.yaml",
                          MODELS[model] + layout(ctx + DECODES, spp, kvp) + [f"workload.prompt_tokens={ctx}"])
                if s is None:
                    continue
                tp = 8 if model == "llama3_70b" else 1
                gpus = tp * spp * kvp
                ok = s["p99_tbt_s"] <= 0.03
                rows.setdefault(model, []).append((gpus, spp, kvp, s["p99_tbt_s"], s["p50_ttft_s"], ok))
                if ok and (found is None or (gpus, s["p50_ttft_s"]) < (found[0], found[4])):
                    found = (gpus, spp, kvp, s["p99_tbt_s"], s["p50_ttft_s"])
            if quick and found:
                break
        rows[(model, "best")] = found
    return rows


def mixed(r):
    trace = os.path.join(r.out, "mixed.csv")
    with open(os.path.join(ROOT, "data", "vidur", "processed_traces", "splitwise_conv.csv")) as f:
        chat = [(float(x["arrived_at"]), int(x["num_prefill_tokens"]), int(x["num_decode_tokens"]))
                for _, x in zip(range(1000), csv.DictReader(f))]
    write_trace(trace, chat + [(20.0, M, DECODES), (90.0, M, DECODES)])
    r.run("mixed", "mixed.yaml", [f"workload.trace_file={trace}"])
    rows = {}
    for name in ("sarathi_serve", "adaptive", "mnemosyne"):
        q = r.requests("mixed", f"/serving/{name}")
        short = q["prefill_tokens"] < 100000
        e2e, ttft = q["e2e_s"][short], q["ttft_s"][short]
        rows[name] = dict(p50=np.median(e2e), p99=np.percentile(e2e, 99), ttft50=np.median(ttft),
                          ttft99=np.percentile(ttft, 99), long_ttft=q["ttft_s"][~short].tolist())
    return rows


def fmt_s(v):
    return "—" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--exp", default=os.path.join(ROOT, "build", "exp"))
    ap.add_argument("--quick", action="store_true", help="fewer contexts (a test's budget)")
    ap.add_argument("--check", action="store_true", help="exit 1 unless the shapes hold")
    ap.add_argument("--fresh", action="store_true", help="remove OUT's earlier runs first")
    a = ap.parse_args()
    if a.fresh and os.path.isdir(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out, exist_ok=True)
    r = Runner(a.out, a.exp)
    md = ["# Mnemosyne on the simulator (H200 profiles)", ""]

    spp = ttft_vs_spp(r, a.quick)
    md += ["## TTFT against the SPP degree (expected ≈ 1/SPP)", "",
           "| model | prompt | KVP | SPP 1 | SPP 2 | SPP 4 | SPP 8 | SPP 8 speed-up |", "|---|---|---|---|---|---|---|---|"]
    for (model, ctx) in sorted({(m, c) for m, c, _ in spp}, key=lambda k: (k[0], k[1])):
        kvp = spp[(model, ctx, 1)][0]
        t = [spp[(model, ctx, p)][1] for p in (1, 2, 4, 8)]
        cells = [fmt_s(x["p50_ttft_s"]) + " s" if x else "—" for x in t]
        up = f"{t[0]['p50_ttft_s'] / t[3]['p50_ttft_s']:.1f}×" if t[0] and t[3] else "—"
        md.append(f"| {model} | {ctx // M}M | {kvp} | " + " | ".join(cells) + f" | {up} |")

    kv = tbt_vs_kvp(r, a.quick)
    md += ["", "## Decode TBT against the KVP degree (expected ≈ 1/KVP until linear layers and the merge dominate)", "",
           "| model | context | KVP 1 | KVP 2 | KVP 4 | KVP 8 | KVP 16 |", "|---|---|---|---|---|---|---|"]
    for (model, ctx) in sorted({(m, c) for m, c, _ in kv}):
        cells = [f"{kv[(model, ctx, k)]['p50_tbt_s'] * 1e3:.1f} ms" if kv[(model, ctx, k)] else "does not fit"
                 for k in (1, 2, 4, 8, 16)]
        md.append(f"| {model} | {ctx // M}M | " + " | ".join(cells) + " |")

    chunks = adaptive_vs_fixed(r)
    md += ["", "## Adaptive against fixed chunks: a 1M-token prefill beside 16 decoding requests (Llama-3-8B, KVP 2)", "",
           "| chunks | prefill (TTFT) | others' TBT P50 | others' TBT P99 |", "|---|---|---|---|"]
    for name, v in chunks.items():
        v["p50"], v["p99"] = short_tbt_during_prefill(r, v["tokens"])
        md.append(f"| {name} | {fmt_s(v['ttft'])} s | {v['p50'] * 1e3:.1f} ms | {v['p99'] * 1e3:.1f} ms |")

    small = smallest_for_10m(r, a.quick)
    md += ["", "## The smallest layout serving a 10M-token request within a 30 ms P99 TBT", "",
           "| model | GPUs | layout | P99 TBT | TTFT |", "|---|---|---|---|---|"]
    for model in MODELS:
        f = small[(model, "best")]
        tp = 8 if model == "llama3_70b" else 1
        md.append(f"| {model} | {f[0]} | TP{tp} × SPP{f[1]} × KVP{f[2]} | {f[3] * 1e3:.1f} ms | {fmt_s(f[4])} s |"
                  if f else f"| {model} | — | none in the grid | — | — |")

    mx = mixed(r)
    md += ["", "## Mixed workload: 1,000 chat requests and two 1M-token prompts (Llama-3-8B, KVP 4)", "",
           "| scheduler | short requests' latency P50 | P99 | their TTFT P50 | P99 | the 1M prompts' TTFT |",
           "|---|---|---|---|---|---|"]
    for name, v in mx.items():
        md.append(f"| {name} | {fmt_s(v['p50'])} s | {fmt_s(v['p99'])} s | {fmt_s(v['ttft50'])} s | {fmt_s(v['ttft99'])} s | "
                  + ", ".join(fmt_s(x) + " s" for x in v["long_ttft"]) + " |")

    with open(os.path.join(a.out, "mnemosyne.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    plot(r, spp, kv)
    if a.check:
        failed = check(spp, kv, chunks, mx)
        for f in failed:
            print("SHAPE NOT MET:", f)
        sys.exit(1 if failed else 0)


def check(spp, kv, chunks, mx):
    """The shapes of §4.5, each a condition that can fail."""
    failed = []
    for (model, ctx, p), (_, s) in spp.items():
        one = spp[(model, ctx, 1)][1]
        if p > 1 and not (s and one and one["p50_ttft_s"] / s["p50_ttft_s"] > 0.85 * p):
            failed.append(f"TTFT of {model} at {ctx // M}M with SPP {p} is not ~1/{p} of SPP 1's")
    for (model, ctx, k), s in kv.items():
        # Where attention is a small share (70B at 1M) the merge's cost may outweigh a halved read.
        if k > 1 and s and kv[(model, ctx, k // 2)] and s["p50_tbt_s"] > kv[(model, ctx, k // 2)]["p50_tbt_s"] * 1.05:
            failed.append(f"TBT of {model} at {ctx // M}M grows by over 5% from KVP {k // 2} to {k}")
    s2, s16 = kv[("llama3_8b", M, 2)], kv[("llama3_8b", M, 16)]
    if not (s2 and s16 and s16["p50_tbt_s"] < 0.5 * s2["p50_tbt_s"]):
        failed.append("Llama-3-8B's TBT at 1M does not halve from KVP 2 to KVP 16")
    adaptive = chunks["adaptive (30 ms)"]
    for name, v in chunks.items():
        if name.startswith("fixed") and not adaptive["p99"] < v["p99"] / 4:
            failed.append(f"adaptive chunks' P99 TBT is not a quarter of {name}'s")
    if not (mx["mnemosyne"]["p50"] < mx["sarathi_serve"]["p50"] / 10 and mx["mnemosyne"]["p99"] < mx["sarathi_serve"]["p99"] / 10):
        failed.append("Mnemosyne's scheduler does not cut the short requests' P50 and P99 latency tenfold")
    return failed


def plot(r, spp, kv):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for (model, ctx) in sorted({(m, c) for m, c, _ in spp}):
        pts = [(p, spp[(model, ctx, p)][1]["p50_ttft_s"]) for p in (1, 2, 4, 8) if spp[(model, ctx, p)][1]]
        line = ax[0].plot([p for p, _ in pts], [t for _, t in pts], "o-", label=f"{model}, {ctx // M}M")[0]
        ax[0].plot([p for p, _ in pts], [pts[0][1] / p for p, _ in pts], ":", color=line.get_color(), lw=0.8)
    ax[0].set(xlabel="SPP degree", ylabel="TTFT (s)", title="TTFT vs SPP (dotted: 1/SPP)")
    for (model, ctx) in sorted({(m, c) for m, c, _ in kv}):
        pts = [(k, kv[(model, ctx, k)]["p50_tbt_s"] * 1e3) for k in (1, 2, 4, 8, 16) if kv[(model, ctx, k)]]
        ax[1].plot([k for k, _ in pts], [t for _, t in pts], "o-", label=f"{model}, {ctx // M}M")
    ax[1].axhline(30, color="grey", ls="--", lw=0.8)
    ax[1].set(xlabel="KVP degree", ylabel="decode TBT (ms)", title="TBT vs KVP (dashed: 30 ms)")
    for x, ticks in ((ax[0], [1, 2, 4, 8]), (ax[1], [1, 2, 4, 8, 16])):
        x.set(xscale="log", yscale="log")
        x.set_xticks(ticks, [str(t) for t in ticks])
        for axis in (x.xaxis, x.yaxis):
            axis.set_minor_formatter(NullFormatter())
        x.yaxis.set_major_formatter(ScalarFormatter())
        x.legend(fontsize=7)
    ax[1].set_yticks([5, 10, 20, 30, 40], ["5", "10", "20", "30", "40"])
    for name in ("sarathi_serve", "adaptive", "mnemosyne"):
        q = r.requests("mixed", f"/serving/{name}")
        e2e = np.sort(q["e2e_s"][q["prefill_tokens"] < 100000])
        ax[2].plot(e2e, np.arange(1, len(e2e) + 1) / len(e2e), label=name)
    ax[2].set(xscale="log", xlabel="short requests' latency (s)", ylabel="CDF", title="Mixed workload")
    ax[2].legend(fontsize=7)
    for x in ax:
        x.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(r.out, "mnemosyne.png"), dpi=110)


if __name__ == "__main__":
    main()
