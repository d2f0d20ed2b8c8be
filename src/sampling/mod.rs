//! Sampling jobs: `descent sample` runs one in its own folder under the workspace's
//! `samples/` (request, progress and results in `report.json`, images or points per guidance
//! mode), so a job started from the TUI survives it. The Sampler pane reads these folders.

pub mod job;
pub mod render;

pub use descent_models::diffusion::sample::Compare;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The folder of sampling jobs inside a workspace.
pub const SAMPLES_DIR: &str = "samples";
pub const REPORT: &str = "report.json";
pub const LOG: &str = "stdout.log";

/// What to sample: everything `descent sample`'s flags say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// The checkpoint as given (a run, a folder, `hub:ORG/NAME`).
    pub checkpoint: String,
    /// A class index for every sample, or `None`: the classes in turn.
    pub class: Option<u32>,
    /// A text-to-image pipeline's prompt, and what guidance steers away from.
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub negative_prompt: String,
    /// The weights' dtype (`f32`, `f16`, `bf16`); `None`: f32 on the CPU, f16 on a GPU.
    #[serde(default)]
    pub dtype: Option<String>,
    /// The guidance modes, in order; CFG first when comparing.
    pub modes: Vec<String>,
    pub scale: f64,
    pub rescale: f64,
    pub ag_threshold: f64,
    /// AG's cosine over the whole batch (as the ComfyUI node) instead of per sample.
    pub ag_per_batch: bool,
    /// What AG's cosine compares: the model outputs or the denoised estimates.
    #[serde(default)]
    pub ag_compare: Compare,
    /// LinearAG's estimate: `cached` or `affine`.
    pub estimate: String,
    pub steps: usize,
    /// `None`: the scheduler config's class.
    pub sampler: Option<String>,
    pub eta: f64,
    pub seed: u64,
    pub n: usize,
    pub noise: Option<PathBuf>,
    /// A supervised run whose classifier judges the samples' classes.
    pub judge: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            checkpoint: String::new(),
            class: None,
            prompt: None,
            negative_prompt: String::new(),
            dtype: None,
            modes: vec!["cfg".into()],
            scale: 3.0,
            rescale: 0.0,
            ag_threshold: 0.99,
            ag_per_batch: false,
            ag_compare: Compare::Eps,
            estimate: "cached".into(),
            steps: 50,
            sampler: None,
            eta: 0.0,
            seed: 0,
            n: 16,
            noise: None,
            judge: None,
        }
    }
}

pub const MODES: &[&str] = &["none", "cfg", "ag", "linear-ag"];

impl Params {
    /// Checks the values no sampler can take, naming the flag.
    pub fn check(&self) -> Result<(), String> {
        if !(self.scale.is_finite() && self.scale >= 0.0) {
            return Err(format!("--scale {}: must be a number ≥ 0", self.scale));
        }
        if !(self.rescale.is_finite() && (0.0..=1.0).contains(&self.rescale)) {
            return Err(format!("--rescale {}: must be in [0, 1]", self.rescale));
        }
        if self.ag_threshold.is_nan() {
            return Err("--ag-threshold: must be a number (cosines lie in [-1, 1])".into());
        }
        if self.steps == 0 {
            return Err("--steps 0: at least one step is needed".into());
        }
        if self.n == 0 {
            return Err("-n 0: at least one sample is needed".into());
        }
        if self.n > 4096 {
            return Err(format!("-n {}: at most 4096 samples per job", self.n));
        }
        if self.modes.is_empty() {
            return Err("--compare: name at least one mode".into());
        }
        for m in &self.modes {
            if !MODES.contains(&m.as_str()) {
                return Err(format!(
                    "unknown guidance {m:?}; expected one of none, cfg, ag, linear-ag"
                ));
            }
        }
        if !["cached", "affine"].contains(&self.estimate.as_str()) {
            return Err(format!(
                "--estimate {:?}: expected cached or affine",
                self.estimate
            ));
        }
        if let Some(d) = &self.dtype
            && !["f32", "f16", "bf16"].contains(&d.as_str())
        {
            return Err(format!("--dtype {d:?}: expected f32, f16 or bf16"));
        }
        if self.prompt.is_some() && self.class.is_some() {
            return Err("--prompt and --class: a model takes one kind of condition".into());
        }
        if !(self.eta.is_finite() && self.eta >= 0.0) {
            return Err(format!("--eta {}: must be zero or positive", self.eta));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Finished,
    Failed,
}

/// One guidance mode's results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModeReport {
    pub guidance: String,
    pub nfe: Vec<u32>,
    pub nfe_total: u64,
    /// NFEs relative to CFG's on the same samples (1 when this is CFG).
    pub nfe_vs_cfg: Option<f64>,
    /// Per sample, the first step without an unconditional pass.
    pub stopped_at: Vec<Option<usize>>,
    /// `[step][sample]`: cos(ε_c, ε_u) where both were computed.
    pub cosines: Vec<Vec<Option<f64>>>,
    pub seconds: f64,
    /// Mean distance to the CFG sample of the same seed: pixels in [0, 1] (mean absolute
    /// difference) for images, Euclidean in data units for points.
    pub distance_to_cfg: Option<f64>,
    /// Share of samples the judge classifies as their requested class.
    pub judged_accuracy: Option<f64>,
    /// LinearAG's affine estimate: mean relative error on held-back calibration samples.
    pub estimate_error: Option<f64>,
    /// Files, relative to the job folder.
    pub grid: Option<String>,
    pub files: Vec<String>,
}

/// `report.json`: the request, the progress, and each mode's results.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub state: JobState,
    pub message: Option<String>,
    pub pid: u32,
    /// Tells this process apart from a later one given the same pid.
    #[serde(default)]
    pub process: Option<crate::runs::process::Stamp>,
    pub started: f64,
    pub finished: Option<f64>,
    pub params: Params,
    /// The checkpoint folder actually read.
    pub model_dir: Option<PathBuf>,
    pub sampler: Option<String>,
    pub sample_shape: Vec<usize>,
    /// The shape of the images written, where it is not `sample_shape` (a pipeline's VAE
    /// decodes its latents).
    #[serde(default)]
    pub image_shape: Vec<usize>,
    /// The weights' dtype.
    #[serde(default)]
    pub dtype: Option<String>,
    /// What the job changed of the request, e.g. a prompt cut to the tokenizer's length.
    #[serde(default)]
    pub notes: Vec<String>,
    pub class_names: Vec<String>,
    pub seeds: Vec<u64>,
    pub classes: Vec<u32>,
    /// Scheduler config keys read but not used.
    pub ignored_keys: Vec<String>,
    /// With `--judge`: the judge's accuracy on its own validation split.
    #[serde(default)]
    pub judge_val_accuracy: Option<f64>,
    pub done_steps: usize,
    pub total_steps: usize,
    pub modes: Vec<ModeReport>,
}

impl Report {
    pub fn read(dir: &Path) -> Result<Report, String> {
        let path = dir.join(REPORT);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::atomic::write_atomically(&dir.join(REPORT), &json)
    }

    /// The state, with a running job whose process is gone shown as failed.
    pub fn effective_state(&self) -> (JobState, Option<String>) {
        if self.state == JobState::Running
            && let crate::runs::process::Verdict::Dead(why) =
                crate::runs::process::check(self.pid, self.process.as_ref())
        {
            return (
                JobState::Failed,
                Some(format!("the sampling process died: {why}")),
            );
        }
        (self.state, self.message.clone())
    }
}

/// A job folder and what its report says (or why it cannot be read).
pub struct JobInfo {
    pub dir: PathBuf,
    pub id: String,
    pub report: Result<Report, String>,
}

/// The job folders under `samples_dir` as (id, folder), newest first.
pub fn job_dirs(samples_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(samples_dir) else {
        return Vec::new();
    };
    let mut jobs: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    jobs.sort_by(|a, b| b.0.cmp(&a.0));
    jobs
}

/// A fresh job folder name from the local time and the checkpoint's name.
pub fn new_job_dir(samples_dir: &Path, label: &str) -> std::io::Result<PathBuf> {
    let base = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    std::fs::create_dir_all(samples_dir)?;
    for n in 1.. {
        let id = if n == 1 {
            format!("{base}-{label}")
        } else {
            format!("{base}-{label}-{n}")
        };
        let dir = samples_dir.join(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("an unused name is always found")
}
