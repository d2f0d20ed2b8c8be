//! A tiny random Llama folder in the Hugging Face layout — config, safetensors, a word-level
//! `tokenizer.json`, a chat template, `generation_config.json` — for tests and for trying the
//! talk box where no model can be downloaded. Its weights are random: its replies are noise.

use serde_json::json;
use std::path::Path;

/// The tokenizer's words, in id order.
pub const WORDS: &[&str] = &[
    "<unk>",
    "<s>",
    "</s>",
    "a",
    "b",
    "c",
    "d",
    "e",
    "user",
    "system",
    "assistant",
    ":",
    "hi",
    "there",
    "one",
    "two",
    "three",
];

fn write(path: &Path, text: String) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn write_folder(dir: &Path) -> Result<(), String> {
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), json!(i)))
        .collect();
    super::write_random(
        dir,
        &json!({
            "model_type": "llama", "vocab_size": WORDS.len(), "hidden_size": 32,
            "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 32, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2,
        }),
    )?;
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    write(&dir.join("tokenizer.json"), tokenizer.to_string())?;
    write(
        &dir.join("tokenizer_config.json"),
        json!({
            "bos_token": "<s>", "eos_token": "</s>",
            "chat_template": "{% for m in messages %}{{ m.role }} : {{ m.content }} {% endfor %}{% if add_generation_prompt %}assistant : {% endif %}",
        })
        .to_string(),
    )?;
    write(
        &dir.join("generation_config.json"),
        json!({"eos_token_id": 2, "max_new_tokens": 6}).to_string(),
    )
}
