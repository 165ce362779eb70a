#!/usr/bin/python3
"""An independent Llama forward pass in PyTorch (Debian's python3-torch, run with /usr/bin/python3)
over a Hugging Face folder (config.json + model.safetensors, or shards listed in
model.safetensors.index.json), written from the Hugging Face modeling semantics: RMSNorm,
rotate-half RoPE (with Llama-3 scaling; rope_theta/rope_scaling as transformers 4 writes them or
rope_parameters as transformers 5 does), grouped-query attention, SwiGLU, and the optional bias
terms (attention_bias, mlp_bias). Prints the last token's logits of a prompt as JSON, for
comparison with exp's engine.

    /usr/bin/python3 scripts/torch_llama_reference.py MODEL_DIR 1,2,3,4
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        raw = data[a:b]
        if e["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype=np.float32)
        elif e["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: unsupported dtype {e['dtype']}")
        out[name] = torch.from_numpy(arr.copy()).reshape(e["shape"])
    return out


def load_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if not os.path.exists(index):
        return load_safetensors(os.path.join(model_dir, "model.safetensors"))
    out = {}
    for shard in sorted(set(json.load(open(index))["weight_map"].values())):
        out.update(load_safetensors(os.path.join(model_dir, shard)))
    return out


def rope_settings(cfg):
    """(theta, llama3 scaling or None) from either config layout."""
    rp = cfg.get("rope_parameters")
    if rp:
        theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
        scaling = rp
    else:
        theta = cfg.get("rope_theta", 10000.0)
        scaling = cfg.get("rope_scaling")
    kind = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if kind not in ("default", "llama3"):
        raise ValueError(f"rope_type {kind} is not implemented by this reference")
    return theta, scaling if kind == "llama3" else None


def inv_freq(cfg, d):
    theta, rs = rope_settings(cfg)
    f = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    if rs:
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wl = 2 * math.pi / f
        scaled = torch.where(wl > old / lo, f / factor, f)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wl < old / hi) & ~(wl > old / lo)
        f = torch.where(medium, smoothed, scaled)
    return f


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def forward(model_dir, tokens):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = load_checkpoint(model_dir)

    def linear(h, name):  # a projection with its bias when the checkpoint has one
        y = h @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    d, eps = H // nh, cfg.get("rms_norm_eps", 1e-5)
    T = len(tokens)
    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    freqs = torch.outer(torch.arange(T).float(), inv_freq(cfg, d))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)
        q = linear(h, p + "self_attn.q_proj").view(T, nh, d).transpose(0, 1)
        k = linear(h, p + "self_attn.k_proj").view(T, nkv, d).transpose(0, 1)
        v = linear(h, p + "self_attn.v_proj").view(T, nkv, d).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(nh // nkv, dim=0), v.repeat_interleave(nh // nkv, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d) + mask, dim=-1) @ v
        x = x + linear(att.transpose(0, 1).reshape(T, H), p + "self_attn.o_proj")
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = torch.nn.functional.silu(linear(h, p + "mlp.gate_proj")) * linear(h, p + "mlp.up_proj")
        x = x + linear(g, p + "mlp.down_proj")
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return (rmsnorm(x[-1], w["model.norm.weight"], eps) @ head.T).tolist()


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(forward(sys.argv[1], [int(t) for t in sys.argv[2].split(",")])))
