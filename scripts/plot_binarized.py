#!/usr/bin/python3
"""Table and plots for the {0,1}-topology reproduction (run with Debian's /usr/bin/python3).

    /usr/bin/python3 scripts/plot_binarized.py OUT_DIR

OUT_DIR holds one run directory per configs/reproduce/binarized/*.yaml (as
scripts/reproduce_binarized.sh lays them out). Writes OUT_DIR/table.md (our rows next to the
published comparison points of docs/binarized_topology.md, labelled by dataset) and three figures:
accuracy_vs_constant_weight.png, accuracy_vs_active_share.png, nor_agreement.png.
"""
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import load_runs  # noqa: E402

# docs/binarized_topology.md: published points (MNIST unless stated; none on Fashion-MNIST).
PUBLISHED = [
    ("WANN (best shared weight)", "MNIST", "~92%", "evolved topology"),
    ("Supermask, trained (FCN)", "MNIST", "98.0%", "11-93% kept"),
    ("Signed supermask (FCN)", "MNIST", "97.48%", "3.77% kept"),
    ("Edge-popup", "MNIST", "see §3.5", "Fashion-MNIST est. 8-10 points below MNIST"),
]


def main():
    out = sys.argv[1]
    runs = load_runs(out)
    base = runs.get("float_mlp_binarized")
    base_acc = base.summary["test_accuracy"] if base else None

    lines = ["| run (Fashion-MNIST) | test acc. | vs float MLP on binarized input | active weights | "
             "NOR criterion (lowest layer past the first) | circuit acc., random ties (ceiling, tie share) | flat `on` range |",
             "|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        s = r.summary
        gap = f"{(s['test_accuracy'] - base_acc) * 100:+.1f} pts" if base_acc is not None else ""
        circuit = (f"{s['circuit_accuracy'] * 100:.1f}% ({s['circuit_accuracy_ceiling'] * 100:.1f}%, "
                   f"{s['circuit_tie_share'] * 100:.0f}%)" if "circuit_accuracy_ceiling" in s else "")
        nor = (f"{'met' if s['nor_criterion_met'] else 'not met'}: {s['nor_agreement_min'] * 100:.2f}% "
               f"({s['nor_share_at_99_min'] * 100:.0f}% of units at 99%)" if "nor_criterion_met" in s else "")
        flat = f"{s['flat_on_min']:.1f}-{s['flat_on_max']:.1f}" if "flat_on_min" in s else ""
        lines.append(f"| {name} | {s['test_accuracy'] * 100:.2f}% | {gap} | {s['active_share'] * 100:.2f}% | "
                     f"{nor} | {circuit} | {flat} |")
    lines += ["", "| published (docs/binarized_topology.md) | dataset | accuracy | note |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in PUBLISHED]
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    ours = {n: r for n, r in runs.items() if "/sweep" in r.tables and len(r.tables["/sweep"])}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in ours.items():
        sw = r.tables["/sweep"]
        last = sw[sw.epoch == sw.epoch.max()]
        ax.plot(last.on, last.test_accuracy * 100, label=name)
    ax.set_xlabel("constant weight `on`")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Weight invariance (Fashion-MNIST)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "accuracy_vs_constant_weight.png"), dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in runs.items():
        s = r.summary
        marker = "o" if name.startswith("ours") else ("s" if name.startswith("edge") else "^")
        ax.scatter(s["active_share"] * 100, s["test_accuracy"] * 100, marker=marker, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("active weights (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs active share (Fashion-MNIST)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "accuracy_vs_active_share.png"), dpi=120)

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / max(1, len(ours))
    for i, (name, r) in enumerate(ours.items()):
        nor = r.tables["/nor"]
        ax.bar(nor.layer + i * width, nor.agreement * 100, width=width, label=name)
    ax.set_xlabel("layer")
    ax.set_ylabel("NOR agreement (%), varying units on a path to an output")
    ax.set_title("Units acting as NOR over their active inputs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "nor_agreement.png"), dpi=120)


if __name__ == "__main__":
    main()
