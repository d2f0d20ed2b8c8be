"""diffusers' side of models/examples/sd_probe.rs: the prompt's token ids and embedding, and
one UNet evaluation at t = 981, compared with what descent wrote.

    python sd_probe.py PIPELINE NOISE DESCENT_OUT PROMPT"""
import sys

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

pipe = StableDiffusionPipeline.from_pretrained(sys.argv[1])
ours = load_file(sys.argv[3])
x = load_file(sys.argv[2])["noise"]
ids = pipe.tokenizer([sys.argv[4], ""], padding="max_length", max_length=77, truncation=True,
                     return_tensors="pt").input_ids
print("tokens", ids[0, :8].tolist())
with torch.no_grad():
    emb = pipe.text_encoder(ids)[0]
    eps = pipe.unet(x, 981, emb[:1].expand(x.shape[0], -1, -1)).sample
for name, theirs in [("embeds", emb), ("eps", eps)]:
    d = (ours[name] - theirs).abs()
    print(f"{name}: max |diff| {d.max().item():.3e}, max |value| {theirs.abs().max().item():.3e}")
