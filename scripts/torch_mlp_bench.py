#!/usr/bin/env python3
"""PyTorch side of bench/binarized_train.sh: one epoch of Fashion-MNIST training for the
784-1024-1024-10 {0,1}-topology net (STE, tanh, hard invert, Adam, clip) and for the dense float
MLP of the same shape, eagerly, with the given thread count. Prints one JSON object of samples/s.

    torch_mlp_bench.py DATA_DIR THREADS [SAMPLES]
"""
import gzip
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load(data_dir, samples):
    with gzip.open(f"{data_dir}/train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)[:samples]
    with gzip.open(f"{data_dir}/train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8)[:samples]
    x = torch.from_numpy((x.astype(np.float32) / 255.0 >= 0.5).astype(np.float32))
    return x, torch.from_numpy(y.astype(np.int64))


def binarized_epoch(x, y, batch):
    torch.manual_seed(0)
    ws = [torch.bernoulli(torch.full((o, i), 0.001)).requires_grad_() for i, o in [(784, 1024), (1024, 1024), (1024, 10)]]
    opt = torch.optim.Adam(ws, lr=1e-3)
    for b in range(0, len(y), batch):
        h = x[b:b + batch]
        for w in ws:
            wb = w + ((w.abs() >= 0.5).float() - w).detach()  # straight-through
            h = 1.0 - torch.tanh(h @ wb.t())
        loss = F.nll_loss(F.log_softmax(h, dim=1), y[b:b + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for w in ws:
                w.clamp_(0.0, 1.0)


def float_epoch(x, y, batch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                                torch.nn.ReLU(), torch.nn.Linear(1024, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for b in range(0, len(y), batch):
        loss = F.nll_loss(F.log_softmax(model(x[b:b + batch]), dim=1), y[b:b + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()


def main():
    data_dir, threads = sys.argv[1], int(sys.argv[2])
    samples = int(sys.argv[3]) if len(sys.argv) > 3 else 60000
    torch.set_num_threads(threads)
    x, y = load(data_dir, samples)
    out = {}
    for name, fn in [("binarized", binarized_epoch), ("float_mlp", float_epoch)]:
        t0 = time.perf_counter()
        fn(x, y, 200)
        out[name] = len(y) / (time.perf_counter() - t0)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
