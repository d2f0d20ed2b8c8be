"""A folder descent's pretraining wrote (a run checkpoint or its exported model/), loaded by
transformers: the chat template renders the same text, the tokenizer gives the same ids, and
greedy answers and their per-token log-probabilities agree with `descent generate --json`
(not run in CI).

    python pretrain_check.py DESCENT_BIN FOLDER PROMPT…
"""
import json
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

binary, folder, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
worst = 0.0
for prompt in prompts:
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False, output_scores=True,
                             return_dict_in_generate=True)
    new = out.sequences[0, ids.shape[1]:].tolist()
    logp = [torch.log_softmax(s[0].double(), -1)[t].item() for s, t in zip(out.scores, new)]
    ours = json.loads(subprocess.run(
        [binary, "generate", folder, "--chat", "--prompt", prompt, "--max-new-tokens", "8",
         "--json"], check=True, capture_output=True, text=True).stdout)
    c = ours["completions"][0] if "completions" in ours else ours
    assert ours["prompt"] == text, (ours["prompt"], text)
    assert ours["prompt_tokens"] == ids.shape[1], (ours["prompt_tokens"], ids.shape[1])
    # transformers stops at eos and keeps it; descent reports the tokens it kept too.
    same = c["tokens"] == new[:len(c["tokens"])]
    diff = max(abs(a - b) for a, b in zip(c["logprobs"], logp))
    worst = max(worst, diff)
    print(f"{prompt!r}: transformers {tok.decode(new, skip_special_tokens=True)!r}, "
          f"descent {c['completion']!r}, same tokens {same}, max |Δ log p| {diff:.2e}")
print(f"worst |Δ log p| {worst:.2e}")
