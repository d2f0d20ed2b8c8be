"""A tiny Stable Diffusion pipeline written by diffusers' own save_pretrained, sampled by
diffusers from a fixed starting noise, for descent's parity check (not run in CI).

    python sd_pipeline.py OUT_DIR [THREADS] [NOISE_SCALE]

writes OUT_DIR/pipeline (the folder descent opens), OUT_DIR/noise.safetensors, and
OUT_DIR/diffusers-{ddim,euler}-{erf,tanh}.safetensors (final latents, 10 steps, w = 7.5;
"tanh": diffusers' GEGLU patched to candle's tanh GELU), and prints
the prompt's token ids and the time of one UNet step (batch 2, as CFG) for the speed ratio.
The configuration is diffusers' pipeline tests' (shared notes, section 6)."""

import json
import sys
import time
from pathlib import Path

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler,
                       StableDiffusionPipeline, UNet2DConditionModel)
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

PROMPT = "a photo of a cat"
NEGATIVE = "blurry"
WORDS = ["photo", "cat", "dog", "of", "the", "blurry", "red", "blue", "digit"]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_vocab(d: Path):
    chars = [bytes_to_unicode()[b] for b in range(256)]
    order = chars + [c + "</w>" for c in chars]
    merges = []
    for w in WORDS:
        left = w[0]
        for i, c in enumerate(w[1:], 1):
            right = c + "</w>" if i == len(w) - 1 else c
            line = f"{left} {right}"
            left = left + right
            if line not in merges:
                merges.append(line)
                order.append(left)
    order += ["<|startoftext|>", "<|endoftext|>"]
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(order)}))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=32,
                                in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=32)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, hidden_size=32,
                                        intermediate_size=37, layer_norm_eps=1e-05,
                                        num_attention_heads=4, num_hidden_layers=5,
                                        pad_token_id=1, vocab_size=1000))
    # diffusers' initialisation leaves much of the UNet at zero (its output convolution
    # among others), so its prediction is nearly constant; NOISE_SCALE (default 0.2) adds
    # noise to every weight so that a mismatch anywhere would show. 0: as diffusers made it.
    bump = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
    with torch.no_grad():
        for p in list(unet.parameters()) + list(text.parameters()):
            p.add_(torch.randn_like(p) * bump)
    tok_dir = out / "vocab"
    write_vocab(tok_dir)
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"),
                              model_max_length=77)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer,
                                   scheduler=sched, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(out / "pipeline")
    pipe = StableDiffusionPipeline.from_pretrained(out / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    print("tokens", tokenizer(PROMPT, padding="max_length", max_length=77).input_ids[:8])
    g = torch.Generator().manual_seed(1234)
    noise = torch.randn((2, 4, 32, 32), generator=g)
    save_file({"noise": noise}, out / "noise.safetensors")
    config = pipe.scheduler.config
    for gelu in ["erf", "tanh"]:
        # candle's UNet computes GEGLU with the tanh GELU; diffusers with erf. The second
        # pass patches diffusers to candle's, to tell that apart from everything else.
        if gelu == "tanh":
            import diffusers.models.activations as act
            act.GEGLU.gelu = lambda self, gate: torch.nn.functional.gelu(gate, approximate="tanh")
        for name, cls in [("ddim", DDIMScheduler), ("euler", EulerDiscreteScheduler)]:
            pipe.scheduler = cls.from_config(config)
            lat = pipe([PROMPT] * 2, negative_prompt=[NEGATIVE] * 2, num_inference_steps=10,
                       guidance_scale=7.5, latents=noise.clone(), output_type="latent").images
            save_file({"samples": lat.contiguous()}, out / f"diffusers-{name}-{gelu}.safetensors")
            print(name, gelu, "final latents max |x|", lat.abs().max().item())
    # One UNet step at CFG's batch of 2 samples (4 rows), as descent's sample loop calls it.
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    x = torch.randn(4, 4, 32, 32)
    ctx = torch.randn(4, 77, 32)
    with torch.no_grad():
        for _ in range(3):
            pipe.unet(x, 500, ctx)
        t0 = time.perf_counter()
        reps = 20
        for _ in range(reps):
            pipe.unet(x, 500, ctx)
        print(f"unet step (4 rows) {1000 * (time.perf_counter() - t0) / reps:.2f} ms")


if __name__ == "__main__":
    main()
