#!/usr/bin/python3
"""The same Llama run eagerly in PyTorch (Debian's python3-torch) with a KV cache, for
bench/engine_cpu.sh: decode tokens/s at batch 1, 8 and 32 after a 128-token prompt, and
prefill tokens/s for 512 tokens, with the given thread count. Prints one JSON object.

    /usr/bin/python3 scripts/torch_llama_bench.py MODEL_DIR THREADS
"""
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_llama_reference import inv_freq, load_safetensors, rmsnorm, rotate_half  # noqa: E402


class Llama:
    def __init__(self, model_dir):
        self.cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        c = self.cfg
        self.H, self.nh = c["hidden_size"], c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads") or self.nh
        self.d, self.eps = self.H // self.nh, c.get("rms_norm_eps", 1e-5)
        self.inv = inv_freq(c, self.d)
        self.head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    @torch.no_grad()
    def forward(self, tokens, cache, start):
        """tokens [B, T]; cache: per layer (K, V) [B, nkv, start, d] or None. Returns last logits."""
        B, T = tokens.shape
        x = self.w["model.embed_tokens.weight"][tokens]
        pos = torch.arange(start, start + T).float()
        freqs = torch.outer(pos, self.inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((T, start + T), float("-inf")).triu(start + 1)
        for l in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = rmsnorm(x, self.w[p + "input_layernorm.weight"], self.eps)
            q = (h @ self.w[p + "self_attn.q_proj.weight"].T).view(B, T, self.nh, self.d).transpose(1, 2)
            k = (h @ self.w[p + "self_attn.k_proj.weight"].T).view(B, T, self.nkv, self.d).transpose(1, 2)
            v = (h @ self.w[p + "self_attn.v_proj.weight"].T).view(B, T, self.nkv, self.d).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            if cache[l] is not None:
                k, v = torch.cat((cache[l][0], k), dim=2), torch.cat((cache[l][1], v), dim=2)
            cache[l] = (k, v)
            rep = self.nh // self.nkv
            kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            att = torch.softmax(q @ kk.transpose(2, 3) / math.sqrt(self.d) + mask, dim=-1) @ vv
            x = x + att.transpose(1, 2).reshape(B, T, self.H) @ self.w[p + "self_attn.o_proj.weight"].T
            h = rmsnorm(x, self.w[p + "post_attention_layernorm.weight"], self.eps)
            g = torch.nn.functional.silu(h @ self.w[p + "mlp.gate_proj.weight"].T) * (h @ self.w[p + "mlp.up_proj.weight"].T)
            x = x + g @ self.w[p + "mlp.down_proj.weight"].T
        return rmsnorm(x[:, -1], self.w["model.norm.weight"], self.eps) @ self.head.T


def decode_tok_s(m, batch, prompt, steps):
    cache = [None] * m.cfg["num_hidden_layers"]
    toks = torch.randint(0, m.cfg["vocab_size"], (batch, prompt))
    logits = m.forward(toks, cache, 0)
    t0 = time.perf_counter()
    for s in range(steps):
        nxt = logits.argmax(-1, keepdim=True)
        logits = m.forward(nxt, cache, prompt + s)
    return batch * steps / (time.perf_counter() - t0)


def prefill_tok_s(m, tokens, reps):
    toks = torch.randint(0, m.cfg["vocab_size"], (1, tokens))
    m.forward(toks, [None] * m.cfg["num_hidden_layers"], 0)
    t0 = time.perf_counter()
    for _ in range(reps):
        m.forward(toks, [None] * m.cfg["num_hidden_layers"], 0)
    return tokens * reps / (time.perf_counter() - t0)


if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[2]))
    m = Llama(sys.argv[1])
    print(json.dumps({"decode_b1": decode_tok_s(m, 1, 128, 64), "decode_b8": decode_tok_s(m, 8, 128, 32),
                      "decode_b32": decode_tok_s(m, 32, 128, 16), "prefill_512": prefill_tok_s(m, 512, 3)}))
