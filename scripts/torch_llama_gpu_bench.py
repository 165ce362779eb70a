"""Eager PyTorch on the protocol of tests/bench/serving/bench_engine_cuda.cpp, for
bench/engine_cuda.sh: a Llama-2-7B-shaped bf16 model with random weights on the GPU (the
Hugging Face layer structure: separate q/k/v/gate/up projections, RoPE, SDPA attention over a
static KV cache), milliseconds per decode step at batch 1, 8 and 32 over 512-token contexts and
for a 4096-token prefill, printed as one JSON object.
  python3 scripts/torch_llama_gpu_bench.py [LAYERS]"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

LAYERS = int(sys.argv[1]) if len(sys.argv) > 1 else 32
H, I, HEADS, VOCAB, EPS, THETA = 4096, 11008, 32, 32000, 1e-5, 10000.0
D = H // HEADS
CONTEXT, STEPS, PREFILL = 512, 32, 4096
dev, dt = "cuda", torch.bfloat16
torch.manual_seed(0)


def weight(rows, cols):
    return (torch.rand(rows, cols, device=dev, dtype=dt) * 2 - 1) / math.sqrt(cols)


ones = lambda: torch.ones(H, device=dev, dtype=dt)
layers = [dict(ln1=ones(), q=weight(H, H), k=weight(H, H), v=weight(H, H), o=weight(H, H), ln2=ones(),
               gate=weight(I, H), up=weight(I, H), down=weight(H, I)) for _ in range(LAYERS)]
embedding, lm_head, final_norm = weight(VOCAB, H), weight(VOCAB, H), ones()
inv_freq = 1.0 / THETA ** (torch.arange(0, D, 2, device=dev, dtype=torch.float32) / D)


def rms(x, w):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)).to(dt) * w


def rotate(x, cos, sin):
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def forward(tokens, start, kc, vc):
    batch, t = tokens.shape
    x = F.embedding(tokens, embedding)
    angle = torch.arange(start, start + t, device=dev, dtype=torch.float32)[:, None] * inv_freq
    cos, sin = torch.cat([angle.cos()] * 2, -1).to(dt), torch.cat([angle.sin()] * 2, -1).to(dt)
    for l, p in enumerate(layers):
        h = rms(x, p["ln1"])
        q, k, v = (F.linear(h, p[n]).view(batch, t, HEADS, D).transpose(1, 2) for n in ("q", "k", "v"))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        kc[l][:, :, start:start + t] = k
        vc[l][:, :, start:start + t] = v
        a = F.scaled_dot_product_attention(q, kc[l][:, :, :start + t], vc[l][:, :, :start + t], is_causal=t > 1)
        x = x + F.linear(a.transpose(1, 2).reshape(batch, t, H), p["o"])
        h = rms(x, p["ln2"])
        x = x + F.linear(F.silu(F.linear(h, p["gate"])) * F.linear(h, p["up"]), p["down"])
    return F.linear(rms(x[:, -1], final_norm), lm_head)


def cache(batch, length):
    return ([torch.zeros(batch, HEADS, length, D, device=dev, dtype=dt) for _ in range(LAYERS)],
            [torch.zeros(batch, HEADS, length, D, device=dev, dtype=dt) for _ in range(LAYERS)])


def decode_ms(batch):
    kc, vc = cache(batch, CONTEXT + STEPS + 3)
    tok = torch.full((batch, 1), 2, device=dev, dtype=torch.long)
    for s in range(3):
        forward(tok, CONTEXT + s, kc, vc).float().cpu()
    t0 = time.perf_counter()
    for s in range(3, STEPS + 3):
        forward(tok, CONTEXT + s, kc, vc).float().cpu()  # logits to the host, as the engine does
    return (time.perf_counter() - t0) / STEPS * 1e3


def prefill_ms():
    kc, vc = cache(1, PREFILL)
    tok = (torch.arange(PREFILL, device=dev) * 7919 % VOCAB)[None]
    forward(tok, 0, kc, vc).float().cpu()
    t0 = time.perf_counter()
    for _ in range(3):
        forward(tok, 0, kc, vc).float().cpu()
    return (time.perf_counter() - t0) / 3 * 1e3


with torch.inference_mode():
    out = {"decode_b1_ms": decode_ms(1), "decode_b8_ms": decode_ms(8), "decode_b32_ms": decode_ms(32),
           "prefill_4096_ms": prefill_ms(), "torch": torch.__version__}
print(json.dumps(out))
