//! Where a trained denoiser lives on disk, and opening one to sample.
//!
//! A finished run exports a diffusers-style folder, `model/`: `model_index.json`,
//! `unet/config.json` + `unet/diffusion_pytorch_model.safetensors`, and
//! `scheduler/scheduler_config.json`. Checkpoints keep `denoiser.json` and
//! `scheduler_config.json` beside their `model.safetensors`, so any checkpoint samples too.

use super::net::Denoiser;
use super::schedule::{NoiseConfig, SamplerKind};
use super::{DENOISER_CLASS, SavedModel, scheduler_config};
use candle_core::Device;
use std::path::{Path, PathBuf};

/// The exported folder inside a run.
pub const MODEL_DIR: &str = "model";
const CKPT_MODEL: &str = "denoiser.json";
const CKPT_SCHEDULER: &str = "scheduler_config.json";
const WEIGHTS: &str = "diffusion_pytorch_model.safetensors";

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

fn model_json(saved: &SavedModel) -> String {
    serde_json::to_string_pretty(saved).expect("serialisable")
}

/// The two configs a checkpoint keeps beside its weights.
pub fn write_configs(dir: &Path, saved: &SavedModel, noise: &NoiseConfig) -> Result<(), String> {
    write_synced(&dir.join(CKPT_MODEL), model_json(saved).as_bytes())?;
    let sched = scheduler_config::write(noise, noise.default_sampler.unwrap_or(SamplerKind::Ddim));
    write_synced(&dir.join(CKPT_SCHEDULER), sched.as_bytes())
}

/// Writes the diffusers-style folder at `dir` through a temp folder and a rename.
pub fn write_folder(
    dir: &Path,
    net: &Denoiser,
    saved: &SavedModel,
    noise: &NoiseConfig,
) -> Result<(), String> {
    crate::folder::replace_atomically(dir, |tmp| {
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        for sub in ["unet", "scheduler"] {
            std::fs::create_dir_all(tmp.join(sub)).map_err(|e| io(tmp, e))?;
        }
        let sampler = noise.default_sampler.unwrap_or(SamplerKind::Ddim);
        let index = serde_json::json!({
            "_class_name": "DescentDiffusionPipeline",
            "_diffusers_version": "0.31.0",
            "scheduler": ["diffusers", sampler.class_name()],
            "unet": ["descent", DENOISER_CLASS],
        });
        write_synced(
            &tmp.join("model_index.json"),
            serde_json::to_string_pretty(&index)
                .expect("json")
                .as_bytes(),
        )?;
        write_synced(&tmp.join("unet/config.json"), model_json(saved).as_bytes())?;
        let weights = tmp.join("unet").join(WEIGHTS);
        candle_core::safetensors::save(&net.weights(), &weights)
            .map_err(|e| format!("{}: {e}", weights.display()))?;
        write_synced(
            &tmp.join("scheduler/scheduler_config.json"),
            scheduler_config::write(noise, sampler).as_bytes(),
        )
    })
}

/// A denoiser opened for sampling.
pub struct Opened {
    pub net: Denoiser,
    pub saved: SavedModel,
    /// The noise schedule, the keys of its file descent does not use, and its class.
    pub scheduler: scheduler_config::ReadConfig,
    /// The weights file read.
    pub weights: PathBuf,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The files of a model folder: (model config, scheduler config, weights).
fn files(path: &Path) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    if path.join("model_index.json").is_file() {
        let unet = path.join("unet").join("config.json");
        if !unet.is_file() {
            return Err(format!(
                "{}: the pipeline has no unet/config.json (model_index.json lists the components)",
                path.display()
            ));
        }
        Ok((
            unet,
            path.join("scheduler").join("scheduler_config.json"),
            path.join("unet").join(WEIGHTS),
        ))
    } else if path.join(CKPT_MODEL).is_file() {
        Ok((
            path.join(CKPT_MODEL),
            path.join(CKPT_SCHEDULER),
            path.join("model.safetensors"),
        ))
    } else {
        Err(format!(
            "{}: not a diffusion checkpoint; expected a diffusers folder (model_index.json, \
             unet/, scheduler/) or a descent diffusion checkpoint (denoiser.json and \
             model.safetensors)",
            path.display()
        ))
    }
}

/// What a model folder's config says, without reading its weights.
pub enum Config {
    /// One of descent's denoisers.
    Denoiser(SavedModel),
    /// A Stable Diffusion pipeline (see [`super::sd`]).
    StableDiffusion(Box<super::sd::Inspected>),
    /// A model of another class (`_class_name`), e.g. an SDXL UNet.
    Other(String),
}

/// Reads the model config of a folder `open` would open.
pub fn config(path: &Path) -> Result<Config, String> {
    if super::sd::is_pipeline(path) {
        return Ok(Config::StableDiffusion(Box::new(super::sd::inspect(path)?)));
    }
    let (model, _, _) = files(path)?;
    let text = read(&model)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", model.display()))?;
    match value.get("_class_name").and_then(|v| v.as_str()) {
        Some(DENOISER_CLASS) => {}
        Some(other) => return Ok(Config::Other(other.to_string())),
        None => return Err(format!("{}: no _class_name", model.display())),
    }
    let saved: SavedModel =
        serde_json::from_value(value).map_err(|e| format!("{}: {e}", model.display()))?;
    saved
        .spec
        .check()
        .map_err(|e| format!("{}: {e}", model.display()))?;
    Ok(Config::Denoiser(saved))
}

/// Opens a diffusers-style folder written by descent, or a descent diffusion checkpoint.
pub fn open(path: &Path, device: &Device) -> Result<Opened, String> {
    open_config(path, config(path)?, device)
}

/// [`open`] with the folder's config already read by [`config`].
pub fn open_config(path: &Path, config: Config, device: &Device) -> Result<Opened, String> {
    let (model, sched, weights) = files(path)?;
    let saved = match config {
        Config::Denoiser(saved) => saved,
        Config::StableDiffusion(_) => {
            return Err(format!(
                "{}: a Stable Diffusion pipeline; open it with sd::inspect and sd::Pipeline::load",
                path.display()
            ));
        }
        Config::Other(class) => {
            return Err(format!(
                "{}: a {class} — descent samples the denoisers it trains ({DENOISER_CLASS}) \
                 and Stable Diffusion 1.x/2.x pipelines ({})",
                model.display(),
                super::sd::PIPELINE_CLASS
            ));
        }
    };
    if !sched.is_file() {
        return Err(format!("{}: missing (the noise schedule)", sched.display()));
    }
    let file = sched.display().to_string();
    let scheduler = scheduler_config::read(&read(&sched)?, &file)?;
    let net = Denoiser::new(saved.spec.clone(), 0, device).map_err(|e| e.to_string())?;
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .map_err(|e| format!("{}: {e}", weights.display()))?;
    net.load_weights(&tensors)
        .map_err(|e| format!("{}: {e}", weights.display()))?;
    Ok(Opened {
        net,
        saved,
        scheduler,
        weights,
    })
}
