"""Training-step time of the same models in PyTorch, for BENCHMARKS.md.

Mirrors models/examples/step_time.rs: AdamW (weight decay 0.01), clip_grad_norm_(1.0),
cross-entropy, median of N steps after 20 warm-up steps, forward/backward/optimizer split.
Usage: python3 benches/step_time.py [STEPS] (threads: torch.set_num_threads(2)).
"""
import sys
import time

import torch
from torch import nn

torch.set_num_threads(2)
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def mlp(widths):
    layers = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def measure(name, model, x, y):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(20):
        step()
    full, fwd, fb = [], [], []
    for _ in range(STEPS):
        t = time.perf_counter(); step(); full.append(time.perf_counter() - t)
    for _ in range(STEPS):
        t = time.perf_counter()
        with torch.no_grad():
            loss_fn(model(x), y)
        fwd.append(time.perf_counter() - t)
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        t = time.perf_counter(); loss_fn(model(x), y).backward(); fb.append(time.perf_counter() - t)
    full, fwd, fb = (median(v) * 1e3 for v in (full, fwd, fb))
    print(f"pytorch {name}: step {full:.3f} ms (forward {fwd:.3f}, backward {fb - fwd:.3f}, "
          f"optimizer+clip {full - fb:.3f})")


torch.manual_seed(0)
print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}")
measure("mlp 784-512-512-10 b128", mlp([784, 512, 512, 10]), torch.rand(128, 784), torch.randint(0, 10, (128,)))
measure("digits mlp 64-256-256-10 b128", mlp([64, 256, 256, 10]), torch.rand(128, 64), torch.randint(0, 10, (128,)))
measure("digits cnn 16-32 conv, 64 dense, b64", cnn(), torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,)))
