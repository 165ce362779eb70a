#!/usr/bin/python3
"""Profiles as Vidur's random forest sees them: fits one forest per operator on the same profile
rows, features and targets as Vidur's predictor (microsoft/vidur,
vidur/execution_time_predictor/sklearn_execution_time_predictor.py), predicts on Vidur's own
prediction grid, and writes the predictions as profile files our simulator reads like any other
(mlp.csv, attention.csv, all_reduce.csv, send_recv.csv). A simulation on them looks every operator
up where Vidur does and gets the forest's number, so comparing it with a simulation on the measured
profiles isolates what the forest itself adds (the "residue"). Also writes residue.csv: per
operator, the forest's prediction against the profiled median at every profiled point.

    /usr/bin/python3 scripts/vidur_forest_profile.py OUT_DIR [--search] [--seed N]

Without --search every forest uses the corner of Vidur's grid that fits the data most closely
(750 trees, depth 32, min_samples_split 2), in about a minute; --search runs Vidur's own 10-fold
grid search over n_estimators {250, 500, 750} x max_depth {8, 16, 32} x min_samples_split
{2, 5, 10} scored by mean absolute percentage error (Vidur's reports ~19 minutes on 2 cores).
Either way the forest is random (Vidur sets no seed; --seed picks ours, 0 by default), and
metrics simulated on two fits differ by about 1% (scheduling delay by more: see
docs/vidur_agreement.md).
The deployment is the anchor's: Llama-2-70B, A100, TP2, PP2, block 16 (data/vidur/anchor_2000).
"""
import os
import sys

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "vidur")
PROFILE_NAME = "meta-llama/Llama-2-70b-hf"  # the model's folder under a device's profiles
MLP = os.path.join(DATA, "profiling/compute/a100", PROFILE_NAME, "mlp.csv")
ATTENTION = os.path.join(DATA, "historical/acb95f6/profiling/a100/attention.csv")
NETWORK = os.path.join(DATA, "profiling/network/a100_pairwise_nvlink")
MODEL = dict(n_head=64, n_kv_head=8, n_embd=8192, n_expanded_embd=28672, vocab_size=32000, block_size=16)
TP, MAX_TOKENS, MAX_BATCH, KV_GRANULARITY, MAX_CHUNK = 2, 4096, 128, 64, 4096
TOKEN_OPS = ["attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "mlp_act", "input_layernorm",
             "post_attention_layernorm", "attn_rope", "add"]


def mape(y_true, y_pred):
    # Vidur's scorer: percentage error, 0 where both are 0 and 100 where only the truth is.
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    err = np.zeros_like(y_true, dtype=float)
    nz = y_true != 0
    err[nz] = np.abs((y_true[nz] - y_pred[nz]) / y_true[nz]) * 100
    err[~nz] = np.where(y_pred[~nz] == 0, 0, 100)
    return float(np.mean(err))


SEED = 0


def fit(df, features, target, search):
    x, y = df[features], df[target]
    if not search:
        return RandomForestRegressor(n_estimators=750, max_depth=32, min_samples_split=2, random_state=SEED,
                                     n_jobs=-1).fit(x, y)
    grid = GridSearchCV(RandomForestRegressor(random_state=SEED),
                        {"n_estimators": [250, 500, 750], "max_depth": [8, 16, 32], "min_samples_split": [2, 5, 10]},
                        scoring=make_scorer(mape, greater_is_better=False), cv=10 if len(df) >= 10 else 2, n_jobs=-1)
    grid.fit(x, y)
    print(f"  {target}: {grid.best_params_}", file=sys.stderr)
    return grid.best_estimator_


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    global SEED
    out, search = sys.argv[1], "--search" in sys.argv[2:]
    if "--seed" in sys.argv[2:]:
        SEED = int(sys.argv[sys.argv.index("--seed") + 1])
    compute = os.path.join(out, "compute", PROFILE_NAME)  # read as <profile_dir>/<model's profile_name>
    os.makedirs(compute, exist_ok=True)
    os.makedirs(os.path.join(out, "network"), exist_ok=True)
    residue = []

    def note(op, df, features, target, model):
        pred = model.predict(df[features])
        truth = df[target].to_numpy()
        nz = truth != 0
        rel = (pred[nz] - truth[nz]) / truth[nz]
        residue.append({"operator": op, "points": int(len(df)), "mean_signed_pct": 100 * float(np.mean(rel)) if nz.any() else 0.0,
                        "mean_abs_pct": 100 * float(np.mean(np.abs(rel))) if nz.any() else 0.0,
                        "max_abs_pct": 100 * float(np.max(np.abs(rel))) if nz.any() else 0.0})

    # Token-level operators: rows of this model's shape at TP2, feature num_tokens.
    mlp = pd.read_csv(MLP).drop_duplicates()
    mlp = mlp[(mlp.n_head == MODEL["n_head"]) & (mlp.n_kv_head == MODEL["n_kv_head"]) & (mlp.n_embd == MODEL["n_embd"])
              & (mlp.n_expanded_embd == MODEL["n_expanded_embd"]) & (mlp.num_tensor_parallel_workers == TP)]
    tokens = pd.DataFrame({"num_tokens": np.arange(1, MAX_TOKENS + 1)})
    table = pd.DataFrame({"n_head": MODEL["n_head"], "n_kv_head": MODEL["n_kv_head"], "n_embd": MODEL["n_embd"],
                          "n_expanded_embd": MODEL["n_expanded_embd"], "num_tensor_parallel_workers": TP,
                          "num_tokens": tokens.num_tokens})
    for op in TOKEN_OPS:
        target = f"time_stats.{op}.median"
        df = mlp.assign(**{target: mlp[target].fillna(0)}) if target in mlp else mlp.assign(**{target: 0.0})
        model = fit(df, ["num_tokens"], target, search)
        note(op, df, ["num_tokens"], target, model)
        table[target] = model.predict(tokens)
    table.to_csv(os.path.join(compute, "mlp.csv"), index=False)

    # Attention: prefill on (kv_cache_size, prefill_chunk_size²), decode on (batch_size, kv_cache_size).
    att = pd.read_csv(ATTENTION).drop_duplicates()
    att = att[(att.n_embd == MODEL["n_embd"]) & (att.n_q_head == MODEL["n_head"]) & (att.n_kv_head == MODEL["n_kv_head"])
              & (att.block_size == MODEL["block_size"]) & (att.num_tensor_parallel_workers == TP)].copy()
    att["prefill_chunk_size_squared"] = att.prefill_chunk_size ** 2
    prefill, decode = att[att.prefill_chunk_size > 0], att[att.prefill_chunk_size == 0]
    pre_model = fit(prefill, ["kv_cache_size", "prefill_chunk_size_squared"], "time_stats.attn_prefill.median", search)
    dec_model = fit(decode, ["batch_size", "kv_cache_size"], "time_stats.attn_decode.median", search)
    note("attn_prefill", prefill, ["kv_cache_size", "prefill_chunk_size_squared"], "time_stats.attn_prefill.median", pre_model)
    note("attn_decode", decode, ["batch_size", "kv_cache_size"], "time_stats.attn_decode.median", dec_model)
    kv = np.arange(0, MAX_TOKENS + 1, KV_GRANULARITY)
    chunk = np.arange(1, MAX_CHUNK + 1)
    pk, pc = np.meshgrid(kv, chunk, indexing="ij")
    pre_x = pd.DataFrame({"kv_cache_size": pk.ravel(), "prefill_chunk_size_squared": pc.ravel() ** 2})
    batch = np.arange(1, MAX_BATCH + 1)
    db, dk = np.meshgrid(batch, kv, indexing="ij")
    dec_x = pd.DataFrame({"batch_size": db.ravel(), "kv_cache_size": dk.ravel()})
    common = {"n_embd": MODEL["n_embd"], "n_q_head": MODEL["n_head"], "n_kv_head": MODEL["n_kv_head"],
              "num_tensor_parallel_workers": TP}
    rows_pre = pd.DataFrame({**common, "batch_size": 1, "prefill_chunk_size": pc.ravel(), "kv_cache_size": pk.ravel(),
                             "is_prefill": "True", "time_stats.attn_prefill.median": pre_model.predict(pre_x),
                             "time_stats.attn_decode.median": 0.0})
    rows_dec = pd.DataFrame({**common, "batch_size": db.ravel(), "prefill_chunk_size": 0, "kv_cache_size": dk.ravel(),
                             "is_prefill": "False", "time_stats.attn_prefill.median": 0.0,
                             "time_stats.attn_decode.median": dec_model.predict(dec_x)})
    pd.concat([rows_pre, rows_dec]).to_csv(os.path.join(compute, "attention.csv"), index=False)

    # Collectives on num_tokens = bytes / (2 · embedding); written back at those byte sizes.
    for name, per_node, workers in (("all_reduce", TP, TP), ("send_recv", 2, 2)):
        net = pd.read_csv(os.path.join(NETWORK, f"{name}.csv")).drop_duplicates()
        net = net[(net.collective == name) & (net.devices_per_node == per_node)
                  & ((net.num_workers == workers) if name == "all_reduce" else True)].copy()
        net["num_tokens"] = net["size"] / MODEL["n_embd"] / 2
        target = f"time_stats.{name}.median"
        model = fit(net, ["num_tokens"], target, search)
        note(name, net, ["num_tokens"], target, model)
        pd.DataFrame({"num_workers": workers, "devices_per_node": per_node,
                      "size": tokens.num_tokens * MODEL["n_embd"] * 2,
                      target: model.predict(tokens)}).to_csv(os.path.join(out, "network", f"{name}.csv"), index=False)

    pd.DataFrame(residue).to_csv(os.path.join(out, "residue.csv"), index=False)
    print(pd.DataFrame(residue).to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
