"""Compares descent's final latents (`descent sample … --out DIR`, cfg/samples.safetensors)
with diffusers' (sd_pipeline.py).

    python sd_compare.py SD_PIPELINE_OUT DESCENT_DDIM_DIR DESCENT_EULER_DIR"""
import sys

from safetensors.torch import load_file

out, dirs = sys.argv[1], {"ddim": sys.argv[2], "euler": sys.argv[3]}
for name, d in dirs.items():
    ours = load_file(f"{d}/cfg/samples.safetensors")["samples"]
    for gelu in ["erf", "tanh"]:
        theirs = load_file(f"{out}/diffusers-{name}-{gelu}.safetensors")["samples"]
        diff = (ours - theirs).abs()
        print(f"{name:5} vs diffusers ({gelu} GEGLU): max |Δ| {diff.max().item():.2e}, "
              f"mean |Δ| {diff.mean().item():.2e}, max |x| {theirs.abs().max().item():.1f}, "
              f"max |Δ|/max |x| {(diff.max() / theirs.abs().max()).item():.1e}")
