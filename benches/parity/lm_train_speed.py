"""transformers' side of models/examples/lm_train_bench.rs: one training step (forward,
next-token cross-entropy, backward, AdamW) on a folder's configuration with fresh weights.

    THREADS=2 [STEPS=5] python lm_train_speed.py DIR BATCH SEQ

The median of the steps after the first two."""
import os
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
cfg = AutoConfig.from_pretrained(sys.argv[1])
batch, seq = int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(cfg).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
ids = torch.randint(0, cfg.vocab_size, (batch, seq + 1))
x, y = ids[:, :-1], ids[:, 1:]
times = []
for i in range(int(os.environ.get("STEPS", "5"))):
    t0 = time.perf_counter()
    logits = model(x).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
    t_fwd = time.perf_counter() - t0
    loss.backward()
    t_bwd = time.perf_counter() - t0 - t_fwd
    opt.step()
    opt.zero_grad()
    dt = time.perf_counter() - t0
    if i < 5:
        print(f"step {i}: loss {loss.item():.4f}, {dt:.3f} s (forward {t_fwd:.3f}, "
              f"backward {t_bwd:.3f}, AdamW {dt - t_fwd - t_bwd:.3f})")
    if i >= 2:
        times.append(dt)
times.sort()
print(f"transformers train step, batch {batch} x {seq}: median {times[len(times) // 2]:.3f} s")
