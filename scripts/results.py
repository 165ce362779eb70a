#!/usr/bin/python3
"""Read an exp run into pandas.

    /usr/bin/python3 scripts/results.py RUN_DIR_OR_RESULTS_H5 [--table /train/steps] [--csv OUT]

As a library (run with Debian's /usr/bin/python3, which has h5py and pandas):

    from results import load
    run = load("results/outputs/2026-11-26/10-00-00")
    run.summary            # dict of /summary attributes
    run.provenance         # dict of root attributes (git sha, seed, ...)
    run.config             # resolved config (YAML text)
    run.tables["/train/steps"]   # pandas.DataFrame, one column per dataset
    load_runs("results/reproduce/binarized")   # {run name: Run} for a reproduction folder
"""
import argparse
import os
import sys
from dataclasses import dataclass, field

import h5py
import pandas as pd


@dataclass
class Run:
    path: str
    complete: bool
    provenance: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    config: str = ""
    tables: dict = field(default_factory=dict)


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v


def load(path):
    if os.path.isdir(path):
        path = os.path.join(path, "results.h5")
    with h5py.File(path, "r") as f:
        run = Run(path=path, complete=int(f.attrs.get("complete", 0)) == 1)
        run.provenance = {k: _attr(v) for k, v in f.attrs.items()}
        if "summary" in f:
            run.summary = {k: _attr(v) for k, v in f["summary"].attrs.items()}
        if "config" in f:
            run.config = f["config"].asstr()[()]

        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                cols = {k: obj[k][()] for k in obj if isinstance(obj[k], h5py.Dataset) and obj[k].ndim == 1}
                if cols:
                    run.tables["/" + name] = pd.DataFrame(cols)

        f.visititems(visit)
    return run


def load_runs(out):
    """{name: Run} for every OUT/NAME/results.h5 (a reproduction script's layout), sorted by name."""
    runs = {}
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name, "results.h5")
        if os.path.exists(path):
            runs[name] = load(path)
    if not runs:
        sys.exit(f"no runs with results.h5 under {out}")
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--table", help="print this table (default: list tables)")
    ap.add_argument("--csv", help="write the table to this CSV file")
    args = ap.parse_args()
    run = load(args.path)
    if args.table:
        df = run.tables[args.table]
        if args.csv:
            df.to_csv(args.csv, index=False)
        else:
            print(df.to_string())
        return 0
    print(f"{run.path}: complete={run.complete}")
    for k, v in run.summary.items():
        print(f"  summary.{k} = {v}")
    for name, df in run.tables.items():
        print(f"  table {name}: {len(df)} rows, columns {list(df.columns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
