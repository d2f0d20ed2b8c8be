//! `descent sample`: sample a diffusion checkpoint with CFG, AG or LinearAG into a job folder.

use crate::sampling::{self, JobState, Params, SAMPLES_DIR, job};
use crate::workspace::Workspace;
use crate::{demo, logging};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A diffusion run (folder, id, EXPERIMENT/ID, or an experiment's name for its newest run),
    /// a checkpoint folder, a diffusers-style folder, or hub:ORG/NAME
    pub checkpoint: String,
    /// Workspace folder (default: the one holding the current folder, else the demo)
    #[arg(long, short)]
    pub workspace: Option<PathBuf>,
    /// The class of every sample (default: the classes in turn)
    #[arg(long)]
    pub class: Option<u32>,
    /// A text-to-image pipeline's prompt (cut to the tokenizer's length, and said)
    #[arg(long)]
    pub prompt: Option<String>,
    /// What guidance steers away from (the unconditional pass's text)
    #[arg(long, default_value = "")]
    pub negative_prompt: String,
    /// A pipeline's weights dtype: f32, f16 or bf16 (default: f32 on the CPU, f16 on a GPU)
    #[arg(long)]
    pub dtype: Option<String>,
    /// none | cfg | ag | linear-ag
    #[arg(long, default_value = "cfg")]
    pub guidance: String,
    /// Sample several modes from the same seeds, e.g. cfg,ag,linear-ag (overrides --guidance)
    #[arg(long, value_delimiter = ',')]
    pub compare: Vec<String>,
    /// Guidance scale w: ε = ε_u + w·(ε_c − ε_u)
    #[arg(long, default_value_t = 3.0, allow_hyphen_values = true)]
    pub scale: f64,
    /// Guidance rescale φ in [0, 1] (arXiv 2305.08891)
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub rescale: f64,
    /// AG's γ̄: guidance stops once cos(ε_c, ε_u) ≥ this
    #[arg(long, default_value_t = 0.99, allow_hyphen_values = true)]
    pub ag_threshold: f64,
    /// One cosine for the whole batch (the ComfyUI node's rule) instead of one per sample
    #[arg(long)]
    pub ag_per_batch: bool,
    /// What AG's cosine compares: eps (the model outputs) or x0 (the denoised estimates, as
    /// the ComfyUI node; at high noise the outputs are alike whatever the condition)
    #[arg(long, default_value = "eps", value_parser = parse_compare)]
    pub ag_compare: sampling::Compare,
    /// LinearAG's estimate of the skipped ε_u: cached (the last difference) or affine (fitted
    /// on calibration samples, saved beside the model)
    #[arg(long, default_value = "cached")]
    pub estimate: String,
    /// Sampling steps
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// ddpm | ddim | euler | euler-ancestral (default: the scheduler config's)
    #[arg(long)]
    pub sampler: Option<String>,
    /// DDIM's η (0: deterministic)
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub eta: f64,
    /// Sample i uses seed SEED + i (noise drawn on the CPU, the same on every device)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of samples
    #[arg(short, default_value_t = 16)]
    pub n: usize,
    /// The starting noise: a safetensors file with one tensor of shape [n, ...sample]
    #[arg(long)]
    pub noise: Option<PathBuf>,
    /// A supervised classifier run that judges each sample's class (accuracy in the report)
    #[arg(long)]
    pub judge: Option<String>,
    /// The job folder (default: samples/<time>-<experiment> in the workspace)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start in the background and print the job folder; it survives the terminal closing
    #[arg(long)]
    pub detach: bool,
    /// Print the report as JSON when done
    #[arg(long)]
    pub json: bool,
}

impl SampleArgs {
    pub fn params(&self) -> Params {
        Params {
            checkpoint: self.checkpoint.clone(),
            class: self.class,
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            dtype: self.dtype.clone(),
            modes: if self.compare.is_empty() {
                vec![self.guidance.clone()]
            } else {
                self.compare.iter().map(|s| s.trim().to_string()).collect()
            },
            scale: self.scale,
            rescale: self.rescale,
            ag_threshold: self.ag_threshold,
            ag_per_batch: self.ag_per_batch,
            ag_compare: self.ag_compare,
            estimate: self.estimate.clone(),
            steps: self.steps,
            sampler: self.sampler.clone(),
            eta: self.eta,
            seed: self.seed,
            n: self.n,
            noise: self.noise.clone(),
            judge: self.judge.clone(),
        }
    }
}

fn parse_compare(s: &str) -> Result<sampling::Compare, String> {
    match s {
        "eps" => Ok(sampling::Compare::Eps),
        "x0" => Ok(sampling::Compare::X0),
        _ => Err(format!("{s:?}: expected eps or x0")),
    }
}

pub fn compare_name(c: sampling::Compare) -> &'static str {
    match c {
        sampling::Compare::Eps => "eps",
        sampling::Compare::X0 => "x0",
    }
}

/// The label a job folder gets from its checkpoint: a run's experiment (from
/// `…/runs/EXPERIMENT/ID[/…]` or `EXPERIMENT/ID`), a hub repository's name, else the
/// folder's name.
pub fn label(checkpoint: &str) -> String {
    if let Some(repo) = checkpoint.strip_prefix("hub:") {
        return repo.rsplit('/').next().unwrap_or(repo).to_string();
    }
    let parts: Vec<&str> = checkpoint.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(i) = parts.iter().position(|p| *p == "runs")
        && let Some(exp) = parts.get(i + 1)
    {
        return exp.to_string();
    }
    match parts.as_slice() {
        [exp, _id]
            if !checkpoint.starts_with(['/', '.'])
                && !std::path::Path::new(checkpoint).exists() =>
        {
            exp.to_string()
        }
        [.., last] => last.to_string(),
        [] => "sample".into(),
    }
}

pub fn sample(args: SampleArgs) -> anyhow::Result<ExitCode> {
    logging::init_cli();
    let root = demo::resolve_workspace(args.workspace.as_deref())?;
    let ws = Workspace::open(&root)?;
    // SAFETY: before any thread pool exists; nothing else runs yet.
    unsafe { descent_models::configure_cpu_threads(ws.settings.threads) };
    let params = args.params();
    // Flag errors are reported before a folder is made.
    params.check().map_err(anyhow::Error::msg)?;
    let dir = match &args.out {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => sampling::new_job_dir(&ws.root.join(SAMPLES_DIR), &label(&args.checkpoint))
            .context("creating the job folder")?,
    };
    if args.detach {
        let pid = spawn(&ws.root, &args, &dir)?;
        println!("{}", dir.display());
        eprintln!(
            "sampling in the background (pid {pid}); progress in {}",
            dir.join(sampling::REPORT).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let report = job::execute(&ws, params, &dir, args.json);
    match report {
        Ok(r) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{}", dir.display());
            }
            Ok(if r.state == JobState::Finished {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(e) => Err(e.context(format!("sampling into {}", dir.display()))),
    }
}

/// Starts `descent sample … --out DIR` in a session of its own, output to the job's log.
pub fn spawn(
    root: &std::path::Path,
    args: &SampleArgs,
    dir: &std::path::Path,
) -> anyhow::Result<u32> {
    spawn_argv(root, &argv(&args.params()), dir)
}

/// The `descent sample` arguments that ask for `p` (without --workspace and --out).
pub fn argv(p: &Params) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "sample".into(),
        p.checkpoint.clone(),
        "--compare".into(),
        p.modes.join(","),
        "--scale".into(),
        p.scale.to_string(),
        "--rescale".into(),
        p.rescale.to_string(),
        "--ag-threshold".into(),
        p.ag_threshold.to_string(),
        "--ag-compare".into(),
        compare_name(p.ag_compare).into(),
        "--estimate".into(),
        p.estimate.clone(),
        "--steps".into(),
        p.steps.to_string(),
        "--eta".into(),
        p.eta.to_string(),
        "--seed".into(),
        p.seed.to_string(),
        "-n".into(),
        p.n.to_string(),
    ];
    let mut opt = |flag: &str, v: Option<String>| {
        if let Some(v) = v {
            argv.push(flag.into());
            argv.push(v);
        }
    };
    opt("--class", p.class.map(|c| c.to_string()));
    opt("--prompt", p.prompt.clone());
    opt(
        "--negative-prompt",
        (!p.negative_prompt.is_empty()).then(|| p.negative_prompt.clone()),
    );
    opt("--dtype", p.dtype.clone());
    opt("--sampler", p.sampler.clone());
    opt("--noise", p.noise.as_ref().map(|n| n.display().to_string()));
    opt("--judge", p.judge.clone());
    if p.ag_per_batch {
        argv.push("--ag-per-batch".into());
    }
    argv
}

/// Starts `descent ARGV… --workspace ROOT --out DIR` detached (see `runs::spawn`).
pub fn spawn_argv(
    root: &std::path::Path,
    argv: &[String],
    dir: &std::path::Path,
) -> anyhow::Result<u32> {
    let mut args = argv.to_vec();
    args.extend([
        "--workspace".to_string(),
        root.display().to_string(),
        "--out".to_string(),
        dir.display().to_string(),
    ]);
    let log = dir.join(sampling::LOG);
    crate::runs::spawn::spawn_session(&args, root, &log)
        .with_context(|| format!("starting descent sample (output to {})", log.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn job_folders_are_named_after_the_experiment() {
        assert_eq!(super::label("/ws/runs/toy/20261201-1/model"), "toy");
        assert_eq!(super::label("toy/20261201-1"), "toy");
        assert_eq!(super::label("/somewhere/my-pipeline/"), "my-pipeline");
        assert_eq!(super::label("hub:org/toy"), "toy");
    }
}
