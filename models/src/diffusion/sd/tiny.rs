//! A tiny random Stable Diffusion pipeline in diffusers' layout, the configuration of
//! diffusers' own pipeline tests (UNet blocks 32/64, cross-attention width 32; VAE 32/64; a
//! 5-layer CLIP text encoder of width 32 over a vocabulary of 1,000). Tests sample it; it is
//! no model of anything.

use super::clip::{ClipConfig, TextEncoder};
use super::configs::{self, Json};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
use candle_transformers::models::stable_diffusion::vae::AutoEncoderKL;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// Words the tiny tokenizer has whole (the rest go by characters).
const WORDS: &[&str] = &[
    "photo", "cat", "dog", "of", "the", "blurry", "red", "blue", "digit",
];

/// GPT-2's byte-to-character table, as CLIP's vocabulary uses it.
pub fn bytes_to_unicode() -> Vec<char> {
    let mut keep: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = keep.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !keep.contains(&b) {
            keep.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in keep.iter().zip(&chars) {
        table[*b as usize] = char::from_u32(*c).expect("valid");
    }
    table
}

/// `vocab.json` and `merges.txt` of a CLIP-style BPE vocabulary: the byte characters, the
/// same with `</w>`, merges building each of [`WORDS`], and the two special tokens.
fn vocabulary() -> (BTreeMap<String, usize>, String) {
    let bytes = bytes_to_unicode();
    let mut order: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
    order.extend(bytes.iter().map(|c| format!("{c}</w>")));
    let mut merges = vec!["#version: 0.2".to_string()];
    for w in WORDS {
        let chars: Vec<String> = w.chars().map(String::from).collect();
        let n = chars.len();
        let mut left = chars[0].clone();
        for (i, c) in chars.iter().enumerate().skip(1) {
            let right = if i == n - 1 {
                format!("{c}</w>")
            } else {
                c.clone()
            };
            let line = format!("{left} {right}");
            left = format!("{left}{right}");
            if !merges.contains(&line) {
                merges.push(line);
                order.push(left.clone());
            }
        }
    }
    order.push("<|startoftext|>".into());
    order.push("<|endoftext|>".into());
    let vocab = order.into_iter().enumerate().map(|(i, t)| (t, i)).collect();
    (vocab, merges.join("\n") + "\n")
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), String> {
    std::fs::write(path, serde_json::to_string_pretty(v).expect("json"))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the pipeline into `dir` (created), its scheduler predicting `prediction`
/// (`epsilon` or `v_prediction`).
pub fn write(dir: &Path, prediction: &str) -> Result<(), String> {
    let mk = |sub: &str| {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok::<_, String>(d)
    };
    let (u, v, t, tok, s) = (
        mk("unet")?,
        mk("vae")?,
        mk("text_encoder")?,
        mk("tokenizer")?,
        mk("scheduler")?,
    );
    write_json(
        &dir.join("model_index.json"),
        &json!({
            "_class_name": super::PIPELINE_CLASS,
            "_diffusers_version": "0.42.1",
            "feature_extractor": [null, null],
            "requires_safety_checker": false,
            "safety_checker": [null, null],
            "scheduler": ["diffusers", "DDIMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }),
    )?;
    write_json(
        &u.join("config.json"),
        &json!({
            "_class_name": "UNet2DConditionModel",
            "block_out_channels": [32, 64],
            "layers_per_block": 2,
            "sample_size": 32,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
            "cross_attention_dim": 32,
            "attention_head_dim": 8,
            "norm_num_groups": 32,
        }),
    )?;
    write_json(
        &v.join("config.json"),
        &json!({
            "_class_name": "AutoencoderKL",
            "block_out_channels": [32, 64],
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
            "latent_channels": 4,
            "layers_per_block": 1,
            "norm_num_groups": 32,
            "scaling_factor": 0.18215,
        }),
    )?;
    write_json(
        &t.join("config.json"),
        &json!({
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            "bos_token_id": 0,
            "eos_token_id": 2,
            "pad_token_id": 1,
            "hidden_size": 32,
            "intermediate_size": 37,
            "layer_norm_eps": 1e-5,
            "num_attention_heads": 4,
            "num_hidden_layers": 5,
            "vocab_size": 1000,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
        }),
    )?;
    let (vocab, merges) = vocabulary();
    write_json(&tok.join("vocab.json"), &json!(vocab))?;
    std::fs::write(tok.join("merges.txt"), merges).map_err(|e| e.to_string())?;
    write_json(
        &tok.join("tokenizer_config.json"),
        &json!({
            "tokenizer_class": "CLIPTokenizer",
            "model_max_length": 77,
            "bos_token": "<|startoftext|>",
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
        }),
    )?;
    write_json(
        &s.join("scheduler_config.json"),
        &json!({
            "_class_name": "DDIMScheduler",
            "num_train_timesteps": 1000,
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "clip_sample": false,
            "set_alpha_to_one": false,
            "steps_offset": 1,
            "prediction_type": prediction,
            "timestep_spacing": "leading",
        }),
    )?;
    // Random weights under the names diffusers and transformers use: build each network
    // on a VarMap and save what it created.
    let dev = Device::Cpu;
    let save = |vm: &VarMap, path: &Path| {
        vm.save(path)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let unet = configs::unet(&Json::read(&u.join("config.json"))?)?;
    let vm = VarMap::new();
    UNet2DConditionModel::new(
        VarBuilder::from_varmap(&vm, DType::F32, &dev),
        4,
        4,
        false,
        unet.config,
    )
    .map_err(|e| e.to_string())?;
    save(&vm, &u.join("diffusion_pytorch_model.safetensors"))?;
    let vae = configs::vae(&Json::read(&v.join("config.json"))?)?;
    let vm = VarMap::new();
    AutoEncoderKL::new(
        VarBuilder::from_varmap(&vm, DType::F32, &dev),
        3,
        3,
        vae.config,
    )
    .map_err(|e| e.to_string())?;
    save(&vm, &v.join("diffusion_pytorch_model.safetensors"))?;
    let clip = ClipConfig::read(&Json::read(&t.join("config.json"))?)?;
    let vm = VarMap::new();
    TextEncoder::new(VarBuilder::from_varmap(&vm, DType::F32, &dev), &clip)
        .map_err(|e| e.to_string())?;
    save(&vm, &t.join("model.safetensors"))
}
