"""diffusers' side of the UNet step timing in models/examples/sd_probe.rs: one evaluation at
CFG's batch for 2 samples (4 rows of latents, a 77-token context), t = 500, mean of 20 after
3 warm-ups, on the pipeline sd_pipeline.py wrote (not run in CI).

    THREADS=2 python sd_unet_step.py PIPELINE"""
import os
import sys
import time

import torch
from diffusers import UNet2DConditionModel

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
unet = UNet2DConditionModel.from_pretrained(f"{sys.argv[1]}/unet").eval()
c = unet.config
x = torch.randn(4, c.in_channels, c.sample_size, c.sample_size)
ctx = torch.randn(4, 77, c.cross_attention_dim)
with torch.no_grad():
    for _ in range(3):
        unet(x, 500, ctx)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        unet(x, 500, ctx)
print(f"unet step (4 rows, diffusers) {1000 * (time.perf_counter() - t0) / reps:.2f} ms")
