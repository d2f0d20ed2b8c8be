//! Language models: the Llama, Qwen2 and Qwen3 decoders in differentiable ops, read from and
//! written to Hugging Face folders, and batched KV-cached generation.

pub mod bpe;
pub mod chat;
pub mod config;
pub mod corpus;
mod decode_attention;
pub mod few_rows;
pub mod generate;
mod host_ops;
pub mod model;
pub mod pretrain;
pub mod session;
pub mod tape;
pub mod tiny;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use config::LmConfig;
use model::Transformer;
use std::path::Path;

/// Reads a folder's `config.json`.
pub fn read_config(dir: &Path) -> Result<LmConfig, String> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    LmConfig::parse(&text, &path.display().to_string())
}

/// The dtype a model generates in on `device`: f32 on the CPU (its fast paths are f32), bf16
/// on a GPU (the dtype of the hub's checkpoints, with f32's range).
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    }
}

/// Opens a Hugging Face model folder (`config.json`, `model.safetensors` or its shards) with
/// the weights in `dtype` on `device`.
pub fn open(dir: &Path, dtype: DType, device: &Device) -> Result<Transformer, String> {
    let config = read_config(dir)?;
    let files = crate::weights::files(dir, "model")?;
    let vb = crate::weights::var_builder(&files, dtype, device)?;
    Transformer::new(&config, vb).map_err(|e| format!("{}: {e}", dir.display()))
}

/// A model of `config` with fresh weights in a VarMap (every weight a trainable `Var`),
/// initialised as transformers does: matrices normal(0, 0.02), biases zero, norms one. (candle-
/// nn's own initialisation draws the embedding from normal(0, 1): with tied embeddings the
/// first logits are in the hundreds and the first loss about 100.) Drawn from ChaCha8 seeded
/// `seed`, in the order of the weights' names, so a seed gives the same model everywhere.
pub fn init(
    config: &LmConfig,
    device: &Device,
    seed: u64,
) -> Result<(Transformer, VarMap), String> {
    init_with(config, device, seed, 0.02)
}

fn init_with(
    config: &LmConfig,
    device: &Device,
    seed: u64,
    std: f32,
) -> Result<(Transformer, VarMap), String> {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, device);
    let model = Transformer::new(config, vb).map_err(|e| e.to_string())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, std).expect("a valid normal");
    let mut vars: Vec<(String, candle_core::Var)> = vm
        .data()
        .lock()
        .expect("the varmap")
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        let shape = var.shape().clone();
        let fresh = if shape.rank() >= 2 {
            let vals: Vec<f32> = (0..shape.elem_count())
                .map(|_| normal.sample(&mut rng))
                .collect();
            candle_core::Tensor::from_vec(vals, shape, device)
        } else if name.ends_with(".bias") {
            candle_core::Tensor::zeros(shape, DType::F32, device)
        } else {
            continue;
        };
        var.set(&fresh.map_err(|e| e.to_string())?)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok((model, vm))
}

/// The trainable weights of a VarMap in name order (the optimizer's and the checkpoints'
/// order).
pub fn params(vars: &VarMap) -> Vec<crate::nn::Param> {
    let mut params: Vec<crate::nn::Param> = vars
        .data()
        .lock()
        .expect("the varmap")
        .iter()
        .map(|(n, v)| crate::nn::Param {
            name: n.clone(),
            var: v.clone(),
        })
        .collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    params
}

/// Writes `config` and random weights as a Hugging Face folder (for tests): ten times
/// transformers' spread, so that logits are of order one and a mismatch between two
/// implementations shows.
pub fn write_random(dir: &Path, config_json: &serde_json::Value) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = serde_json::to_string_pretty(config_json).expect("json");
    let path = dir.join("config.json");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    let config = LmConfig::parse(&text, &path.display().to_string())?;
    let (_, vm) = init_with(&config, &Device::Cpu, 0, 0.2)?;
    let out = dir.join("model.safetensors");
    vm.save(&out).map_err(|e| format!("{}: {e}", out.display()))
}

/// Saves a model built by [`init`] as a Hugging Face folder: `config.json` and
/// `model.safetensors` (PyTorch's `[out, in]` layout, the names transformers uses), through a
/// temp folder and a rename so that no half-written folder is left.
pub fn save(dir: &Path, config: &LmConfig, weights: &VarMap) -> Result<(), String> {
    crate::folder::replace_atomically(dir, |tmp| {
        let cfg = tmp.join("config.json");
        let text = serde_json::to_string_pretty(&config.to_json()).expect("json");
        std::fs::write(&cfg, text).map_err(|e| format!("{}: {e}", cfg.display()))?;
        let st = tmp.join("model.safetensors");
        weights
            .save(&st)
            .map_err(|e| format!("{}: {e}", st.display()))
    })
}
