"""Tiny random Llama, Qwen2 and Qwen3 models written by transformers' own save_pretrained,
with their logits and greedy continuation, for models/examples/lm_probe.rs (not run in CI).

    python lm_parity.py OUT_DIR        # then: cargo run -p descent-models --example lm_probe -- OUT_DIR/*

Each OUT_DIR/NAME holds the model folder and expected.safetensors: the prompt ids, the
logits at every position, and 16 greedy tokens.

    python lm_parity.py check DIR…     # folders descent saved (lm_probe --save): loaded by
                                       # transformers, compared with descent's logits"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

COMMON = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)

MODELS = {
    "llama": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=False)),
    "llama3-scaled": (LlamaConfig, LlamaForCausalLM, dict(
        tie_word_embeddings=True, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=False)),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(tie_word_embeddings=True, head_dim=32)),
}

if sys.argv[1] == "check":
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    for d in sys.argv[2:]:
        want = load_file(f"{d}/expected.safetensors")
        model = AutoModelForCausalLM.from_pretrained(d).eval()
        ids = want["ids"].unsqueeze(0)
        with torch.no_grad():
            logits = model(ids).logits[0]
            greedy = model.generate(ids, max_new_tokens=16, do_sample=False,
                                    eos_token_id=None, pad_token_id=0)[0, ids.shape[1]:]
        diff = (logits - want["logits"]).abs().max().item()
        same = torch.equal(greedy, want["greedy"])
        print(f"{d}: transformers loads it; max |logit diff| {diff:.2e}; greedy tokens "
              f"{'equal' if same else 'DIFFER'}")
    sys.exit(0)

out = Path(sys.argv[1])
prompt = torch.tensor([[1, 5, 17, 33, 8, 90, 41, 3, 60, 22, 7, 11]])
for name, (cfg_cls, model_cls, extra) in MODELS.items():
    torch.manual_seed(0)
    model = model_cls(cfg_cls(**COMMON, **extra)).eval()
    # transformers initialises with std 0.02: logits of about 1e-2 would hide a mismatch.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(10.0)
    d = out / name
    model.save_pretrained(d)
    with torch.no_grad():
        logits = model(prompt).logits[0]
        greedy = model.generate(prompt, max_new_tokens=16, do_sample=False,
                                eos_token_id=None, pad_token_id=0)[0, prompt.shape[1]:]
    save_file({"ids": prompt[0].to(torch.int64), "logits": logits.contiguous(),
               "greedy": greedy.to(torch.int64)}, d / "expected.safetensors")
    print(name, "max |logit|", logits.abs().max().item(), "greedy", greedy.tolist())
