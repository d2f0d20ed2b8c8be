//! Hugging Face model folders (`config.json` + weights + tokenizer) and diffusers pipeline
//! folders (`model_index.json` naming one subfolder per component).

use crate::checkpoint::{Checkpoint, human_count, open};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

fn read_json(path: &Path) -> Result<Value> {
    let text = crate::safety::read_json_text(path)?;
    serde_json::from_str(&text).map_err(|e| {
        Error::new(
            path,
            format!("line {}, column {}", e.line(), e.column()),
            e.to_string(),
        )
    })
}

/// The first of `keys` present in `config`, as text (configs disagree on names: GPT-2 says
/// `n_layer`, Llama `num_hidden_layers`, T5 `num_layers`).
fn first(config: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| {
        let v = config
            .get(k)
            .or_else(|| config.get("text_config").and_then(|t| t.get(k)))?;
        Some(v.as_str().map_or_else(|| v.to_string(), str::to_string))
    })
}

/// `config.json` facts plus whether the tokenizer and a chat template are present.
pub fn model_summary(dir: &Path) -> Result<Vec<(String, String)>> {
    let config = read_json(&dir.join("config.json"))?;
    let mut out = Vec::new();
    let arch = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| first(&config, &["model_type"]));
    for (label, value) in [
        ("architecture", arch),
        ("model type", first(&config, &["model_type"])),
        (
            "layers",
            first(&config, &["num_hidden_layers", "n_layer", "num_layers"]),
        ),
        (
            "hidden size",
            first(&config, &["hidden_size", "n_embd", "d_model"]),
        ),
        ("heads", first(&config, &["num_attention_heads", "n_head"])),
        ("kv heads", first(&config, &["num_key_value_heads"])),
        ("vocabulary", first(&config, &["vocab_size"])),
        (
            "context",
            first(&config, &["max_position_embeddings", "n_positions"]),
        ),
        ("dtype", first(&config, &["torch_dtype", "dtype"])),
    ] {
        if let Some(v) = value {
            out.push((label.to_string(), v));
        }
    }
    let tokenizer = ["tokenizer.json", "tokenizer.model", "vocab.json"]
        .iter()
        .find(|f| dir.join(f).exists());
    out.push((
        "tokenizer".into(),
        tokenizer.map_or("absent".into(), |f| f.to_string()),
    ));
    let template_in_config = dir.join("tokenizer_config.json").exists()
        && read_json(&dir.join("tokenizer_config.json"))
            .ok()
            .is_some_and(|c| c.get("chat_template").is_some());
    let chat = template_in_config || dir.join("chat_template.jinja").exists();
    out.push((
        "chat template".into(),
        if chat { "present" } else { "absent" }.into(),
    ));
    Ok(out)
}

/// A diffusers pipeline: each component's tensors are prefixed with its folder name.
pub fn diffusers(dir: &Path) -> Result<Checkpoint> {
    let index_path = dir.join("model_index.json");
    let index = read_json(&index_path)?;
    let obj = index
        .as_object()
        .ok_or_else(|| Error::new(&index_path, "", "not a JSON object"))?;
    let mut summary = vec![(
        "pipeline".to_string(),
        obj.get("_class_name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    )];
    if let Some(v) = obj.get("_diffusers_version").and_then(Value::as_str) {
        summary.push(("diffusers version".into(), v.into()));
    }
    let mut tensors = Vec::new();
    for (name, spec) in obj.iter().filter(|(k, _)| !k.starts_with('_')) {
        let Some([library, class]) = spec.as_array().map(|a| a.as_slice()) else {
            continue;
        };
        let class = format!(
            "{} ({})",
            class.as_str().unwrap_or("?"),
            library.as_str().unwrap_or("?")
        );
        crate::safety::check_relative(name).map_err(|p| Error::new(&index_path, name, p))?;
        let sub = dir.join(name);
        let part = if !sub.is_dir() {
            "missing".to_string()
        } else if sub.join("config.json").exists()
            || sub.read_dir().is_ok_and(|mut r| {
                r.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "safetensors")))
            })
        {
            match open(&sub) {
                Ok(ck) => {
                    let params = ck.params();
                    for mut t in ck.tensors {
                        t.name = format!("{name}.{}", t.name);
                        tensors.push(t);
                    }
                    format!("{} parameters", human_count(params))
                }
                Err(e) if e.problem.contains("no .safetensors") => "configuration only".into(),
                Err(e) => return Err(e),
            }
        } else {
            "configuration only".into()
        };
        summary.push((name.clone(), format!("{class}: {part}")));
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Checkpoint {
        path: dir.into(),
        format: "diffusers pipeline folder".into(),
        summary,
        metadata: Vec::new(),
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use crate::checkpoint::open;
    use crate::dtype::DType;
    use crate::safetensors::write;

    #[test]
    fn hf_model_folder_summary() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("config.json"),
            r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 2,
               "hidden_size": 16, "num_attention_heads": 4, "vocab_size": 100, "torch_dtype": "bfloat16"}"#,
        )
        .unwrap();
        std::fs::write(d.join("tokenizer.json"), "{}").unwrap();
        std::fs::write(
            d.join("tokenizer_config.json"),
            r#"{"chat_template": "{{x}}"}"#,
        )
        .unwrap();
        let w = vec![0u8; 16 * 100 * 2];
        write(
            &d.join("model.safetensors"),
            &[("model.embed_tokens.weight", DType::BF16, &[100, 16], &w)],
        )
        .unwrap();
        let ck = open(d).unwrap();
        let get = |k: &str| {
            ck.summary
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("architecture"), Some("LlamaForCausalLM"));
        assert_eq!(get("layers"), Some("2"));
        assert_eq!(get("heads"), Some("4"));
        assert_eq!(get("vocabulary"), Some("100"));
        assert_eq!(get("dtype"), Some("bfloat16"));
        assert_eq!(get("tokenizer"), Some("tokenizer.json"));
        assert_eq!(get("chat template"), Some("present"));
        assert_eq!(get("parameters"), Some("1.60K"));
    }

    #[test]
    fn diffusers_folder_lists_components() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("model_index.json"),
            r#"{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
               "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", "DDIMScheduler"],
               "vae": ["diffusers", "AutoencoderKL"]}"#,
        )
        .unwrap();
        std::fs::create_dir_all(d.join("unet")).unwrap();
        std::fs::create_dir_all(d.join("scheduler")).unwrap();
        std::fs::write(d.join("scheduler/scheduler_config.json"), "{}").unwrap();
        let w = 1f32.to_le_bytes();
        write(
            &d.join("unet/diffusion_pytorch_model.safetensors"),
            &[("conv_in.weight", DType::F32, &[1], &w)],
        )
        .unwrap();
        let ck = open(d).unwrap();
        assert_eq!(ck.format, "diffusers pipeline folder");
        assert_eq!(ck.tensors[0].name, "unet.conv_in.weight");
        let get = |k: &str| {
            ck.summary
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("scheduler").unwrap(),
            "DDIMScheduler (diffusers): configuration only"
        );
        assert_eq!(get("vae").unwrap(), "AutoencoderKL (diffusers): missing");
        assert!(get("unet").unwrap().contains("1 parameters"));
    }
}
