import sys
from safetensors.torch import load_file
out = sys.argv[1]
for name in ["ddim", "euler"]:
    a = load_file(f"{out}/{name}-diffusers.safetensors")["samples"]
    b = load_file(f"{out}/{name}-descent/cfg/samples.safetensors")["samples"]
    d = (a - b).abs()
    rel = (d.max() / a.abs().max()).item()
    print(f"{name}: max |descent − diffusers| = {d.max():.3e} ({rel:.1e} of the largest value), mean = {d.mean():.3e}, range {a.min():.2f}…{a.max():.2f}")
    continue
    print(f"{name}: max |descent − diffusers| = {d.max():.3e}, mean = {d.mean():.3e}, range of samples {a.min():.2f}…{a.max():.2f}")
