"""descent's denoisers (models/src/diffusion/net.rs) ported to PyTorch, reading the
exported unet/ folder: for the parity check against diffusers' schedulers and for timing."""
import json, math, torch
from safetensors.torch import load_file

class Net(torch.nn.Module):
    def __init__(self, folder):
        super().__init__()
        self.cfg = json.load(open(f"{folder}/unet/config.json"))
        self.w = load_file(f"{folder}/unet/diffusion_pytorch_model.safetensors")
        self.e = self.cfg["embed_dim"]

    def lin(self, name, x):
        return x @ self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def conv(self, name, x):
        w = self.w[f"{name}.weight"]
        return torch.nn.functional.conv2d(x, w, self.w[f"{name}.bias"], padding=w.shape[-1] // 2)

    def gn(self, name, x):
        c = x.shape[1]
        g = next(g for g in [8, 4, 2, 1] if c % g == 0)
        return torch.nn.functional.group_norm(x, g, self.w[f"{name}.weight"], self.w[f"{name}.bias"], 1e-5)

    def res(self, name, x, emb):
        h = self.conv(f"{name}.conv1", torch.nn.functional.silu(self.gn(f"{name}.norm1", x)))
        h = h + self.lin(f"{name}.time_emb_proj", torch.nn.functional.silu(emb))[:, :, None, None]
        h = self.conv(f"{name}.conv2", torch.nn.functional.silu(self.gn(f"{name}.norm2", h)))
        skip = self.conv(f"{name}.conv_shortcut", x) if f"{name}.conv_shortcut.weight" in self.w else x
        return h + skip

    def forward(self, x, t, cls):
        half = self.e // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
        args = t.to(torch.float64)[:, None] * freqs[None]
        temb = torch.cat([args.sin(), args.cos()], 1).float()
        temb = self.lin("time_embedding.linear_2", torch.nn.functional.silu(self.lin("time_embedding.linear_1", temb)))
        emb = temb + self.w["class_embedding.weight"][cls]
        if self.cfg["arch"] == "mlp":
            h = self.lin("input", x.flatten(1))
            for i in range(len(self.cfg["hidden"])):
                h = torch.nn.functional.silu(self.lin(f"layers.{i}.linear", h) + self.lin(f"layers.{i}.emb", emb))
            return self.lin("output", h).reshape(x.shape)
        h = self.conv("conv_in", x)
        skips = []
        for i in range(len(self.cfg["channels"])):
            if i > 0:
                h = torch.nn.functional.avg_pool2d(h, 2)
            h = self.res(f"down.{i}", h, emb)
            skips.append(h)
        h = self.res("mid", h, emb)
        n = len(self.cfg["channels"])
        for k, i in enumerate(reversed(range(n))):
            h = self.res(f"up.{i}", torch.cat([h, skips.pop()], 1), emb)
            if k + 1 < n:
                h = torch.nn.functional.interpolate(h, scale_factor=2, mode="nearest")
        return self.conv("conv_out", torch.nn.functional.silu(self.gn("norm_out", h)))
