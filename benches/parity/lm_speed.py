"""Generation speed of transformers on a model of SmolLM2-135M's configuration (random
weights written by transformers itself), f32, for BENCHMARKS.md side by side with
models/examples/lm_bench.rs (not run in CI).

    python lm_speed.py write DIR          # the model folder both tools read
    THREADS=2 python lm_speed.py run DIR  # prefill and generation tokens/s

Also prints a memory-copy bandwidth (numpy, 1 GiB) for the batch-1 bound. DEVICE=cuda runs
on a GPU in bf16, as models/examples/lm_bench.rs does with DEVICE=cuda."""
import os
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                    num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
                    tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)

if sys.argv[1] == "write":
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M)).save_pretrained(sys.argv[2])
    sys.exit(0)

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
DEV = os.environ.get("DEVICE", "cpu")
GPU = DEV != "cpu"
model = LlamaForCausalLM.from_pretrained(
    sys.argv[2], dtype=torch.bfloat16 if GPU else torch.float32).to(DEV).eval()
g = torch.Generator().manual_seed(0)


def sync():
    if GPU:
        torch.cuda.synchronize()


with torch.no_grad():
    prompt = torch.randint(3, 49152, (1, 256), generator=g).to(DEV)
    model(prompt[:, :16])
    sync()
    t0 = time.perf_counter()
    model(prompt)
    sync()
    dt = time.perf_counter() - t0
    print(f"transformers prefill 256 tokens: {256 / dt:.1f} tokens/s")
    for batch in [1, 8]:
        ids = torch.randint(3, 49152, (batch, 32), generator=g).to(DEV)
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0)
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False,
                       pad_token_id=0)
        sync()
        dt = time.perf_counter() - t0
        print(f"transformers batch {batch}, 32-token prompt, 64 new tokens: "
              f"{batch * 64 / dt:.1f} tokens/s ({dt:.2f} s)")
if GPU:
    sys.exit(0)
import numpy as np
a = np.ones(1 << 28, dtype=np.float32)
b = np.empty_like(a)
np.copyto(b, a)
t0 = time.perf_counter()
for _ in range(3):
    np.copyto(b, a)
dt = (time.perf_counter() - t0) / 3
print(f"copy bandwidth: {2 * a.nbytes / dt / 1e9:.1f} GB/s (read + write)")
