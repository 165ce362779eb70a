#!/usr/bin/python3
"""Table and plots for the DynaQuant reproduction (run with Debian's /usr/bin/python3).

    /usr/bin/python3 scripts/plot_dynaquant.py OUT_DIR

OUT_DIR holds one run per configs/reproduce/dynaquant/*.yaml (scripts/reproduce_dynaquant.sh).
Writes OUT_DIR/table.md (ours next to the paper's targets, docs/dynaquant.md) and
ratio_over_training.png, accuracy_with_restores.png, ratio_vs_accuracy.png.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import load_runs  # noqa: E402


def main():
    out = sys.argv[1]
    # Only this experiment's runs (OUT_DIR may hold other things).
    runs = {n: r for n, r in load_runs(out).items() if "weights_ratio" in r.summary}
    # Each model's rows compare with its own uncompressed run (mlp_none, cnn_none).
    refs = {m: runs[f"{m}_none"].summary["test_accuracy"] for m in ("mlp", "cnn") if f"{m}_none" in runs}
    lines = ["| run (Fashion-MNIST, 10 restores; cnn_* = LeNet-5, others the MLP) | weights-only ratio | full-state ratio | peak ratio | "
             "test acc. | relative drop vs uncompressed | search evaluations | compression time share |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        s = r.summary
        ref_acc = refs.get(name.split("_")[0])
        drop = f"{(ref_acc - s['test_accuracy']) / ref_acc * 100:.2f}%" if ref_acc else ""
        lines.append(f"| {name} | {s['weights_ratio']:.1f}x | {s['full_state_ratio']:.2f}x | {s['peak_ratio']:.1f}x | "
                     f"{s['test_accuracy'] * 100:.2f}% | {drop} | {s['search_evaluations']} | "
                     f"{s['compression_time_share'] * 100:.1f}% |")
    lines += ["", "Paper (docs/dynaquant.md): 26-39x overall on large models, < 1% drop over 10 restores, peaks > 100x; "
              "project estimate for this MLP 10-25x overall, peaks > 50x."]
    # The one-shot bins table: mean fewest bins per allowed drop, over the checkpoints where every
    # quantizer met it.
    for name, r in runs.items():
        drops = sorted({k.rsplit("_", 1)[1] for k in r.summary if k.startswith("mean_bins_ours_drop_")}, key=float)
        if not drops:
            continue
        lines += ["", f"One-shot bins ({name}): mean fewest bins meeting the drop, no pruning; ours without "
                  "and with protection (fewest over the search's protect fractions)", "",
                  "| drop | ours (k-means) | ours, protected | per-tensor uniform | Check-N-Run adaptive uniform "
                  "| uniform / ours (unprotected / protected) | CNR / ours (unprotected / protected) |",
                  "|---|---|---|---|---|---|---|"]
        for d in drops:
            ours, prot, uni, cnr = (r.summary[f"mean_bins_{q}_drop_{d}"] for q in ("ours", "ours_protected", "uniform", "cnr"))
            lines.append(f"| {float(d) * 100:g}% | {ours:.1f} | {prot:.1f} | {uni:.1f} | {cnr:.1f} | "
                         f"{uni / ours:.2f}x / {uni / prot:.2f}x | {cnr / ours:.2f}x / {cnr / prot:.2f}x |")
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in runs.items():
        if name == "mlp_none":
            continue
        c = r.tables["/checkpoints"]
        ax.plot(c.step, c.ratio, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("weights-only compression ratio")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ratio_over_training.png"), dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in runs.items():
        e = r.tables["/epochs"]
        ax.plot(e.epoch, e.test_accuracy * 100, label=name, lw=2.5 if name == "mlp_none" else 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy with 10 restores")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "accuracy_with_restores.png"), dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in runs.items():
        s = r.summary
        ax.scatter(s["weights_ratio"], s["test_accuracy"] * 100, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("weights-only compression ratio")
    ax.set_ylabel("final test accuracy (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ratio_vs_accuracy.png"), dpi=120)


if __name__ == "__main__":
    main()
