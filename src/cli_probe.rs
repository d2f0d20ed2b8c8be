//! `descent probe`: probes computed on demand for a run's checkpoint (the Hessian spectrum),
//! and `descent probe scores`: a run's EL2N scores.

use crate::config::{self, Experiment, Kind};
use crate::runs::{self, CONFIG, checkpoint, exec};
use crate::workspace::Workspace;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use descent_models::device;
use descent_models::train::Trainer;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ProbeCommand {
    /// The Hessian's spectral density at a checkpoint by stochastic Lanczos quadrature on
    /// finite-difference Hessian–vector products; writes RUN/hessian/step-N.json
    Hessian(HessianArgs),
    /// A run's EL2N scores (the mean over each example's visits in the window): a histogram
    /// and the hardest examples
    Scores {
        /// A run folder, a run id, EXPERIMENT/RUN-ID, or an experiment (all its runs, averaged)
        run: String,
        #[arg(long, short)]
        workspace: Option<PathBuf>,
        /// How many of the hardest examples to list
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
}

#[derive(Args, Debug)]
pub struct HessianArgs {
    /// A run folder, a run id, EXPERIMENT/RUN-ID, or an experiment (its newest run)
    pub run: String,
    #[arg(long, short)]
    pub workspace: Option<PathBuf>,
    /// The checkpoint's step (default: the newest)
    #[arg(long)]
    pub step: Option<u64>,
    /// Lanczos steps per probe vector (PyHessian's default is 100)
    #[arg(long, default_value_t = 80)]
    pub lanczos_steps: usize,
    /// Rademacher probe vectors (their densities are averaged)
    #[arg(long, default_value_t = 1)]
    pub vectors: usize,
    /// Training examples in the fixed batch the loss is taken on
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Finite-difference step relative to max(1, ‖θ‖)
    #[arg(long, default_value_t = 1e-3)]
    pub radius: f64,
}

pub fn probe(c: ProbeCommand) -> anyhow::Result<ExitCode> {
    match c {
        ProbeCommand::Hessian(a) => hessian(a),
        ProbeCommand::Scores {
            run,
            workspace,
            top,
        } => scores(&run, workspace, top),
    }
}

fn open(given: Option<&std::path::Path>) -> anyhow::Result<Workspace> {
    Workspace::open(&crate::demo::resolve_workspace(given)?)
}

fn hessian(a: HessianArgs) -> anyhow::Result<ExitCode> {
    if a.lanczos_steps < 2 || a.vectors < 1 || a.batch < 1 {
        bail!("--lanczos-steps must be at least 2, --vectors and --batch at least 1");
    }
    if !(a.radius > 0.0 && a.radius <= 0.1) {
        bail!("--radius must be in (0, 0.1]");
    }
    let ws = open(a.workspace.as_deref())?;
    let dir = runs::find_run_or_newest(&ws.settings.runs_path(&ws.root), &a.run)
        .map_err(anyhow::Error::msg)?;
    let cfg = dir.join(CONFIG);
    let exp = Experiment::parse(&cfg, &config::read_text(&cfg).map_err(anyhow::Error::msg)?)
        .map_err(|e| anyhow::anyhow!("{}", e[0]))?;
    if exp.kind != Kind::Supervised {
        bail!(
            "{}: the Hessian probe reads supervised runs; this one is kind = \"{}\"",
            dir.display(),
            exp.kind
        );
    }
    let all = checkpoint::list(&dir);
    let (step, ckpt) = match a.step {
        Some(s) => all.into_iter().find(|c| c.0 == s).with_context(|| {
            let have: Vec<String> = checkpoint::list(&dir)
                .iter()
                .map(|c| c.0.to_string())
                .collect();
            format!(
                "{} has no checkpoint at step {s}; it has: {}",
                dir.display(),
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            )
        })?,
        None => all
            .into_iter()
            .next_back()
            .with_context(|| format!("{} has no checkpoint yet", dir.display()))?,
    };
    let chosen =
        device::resolve(exp.device.unwrap_or(ws.settings.device)).map_err(anyhow::Error::msg)?;
    let data = exec::load_data(&ws, &exp)?;
    let mut trainer = Trainer::new(data, exec::train_spec(&ws, &exp)?, chosen.device)?;
    trainer
        .load(&ckpt, step)
        .with_context(|| format!("loading {}", ckpt.display()))?;
    eprintln!(
        "{} at step {step}: {} parameters; {} Lanczos steps × {} vector(s) on {} examples…",
        dir.display(),
        trainer.net.parameter_count(),
        a.lanczos_steps,
        a.vectors,
        a.batch.min(trainer.split().train.len())
    );
    let s = trainer.spectrum(a.lanczos_steps, a.vectors, a.batch, a.radius)?;
    let path = runs::probes::write_spectrum(&dir, &s)?;
    let (lo, hi) = descent_models::probes::hessian::node_range(&s.runs);
    println!(
        "λmax {:.6} (power iteration; largest Ritz value {hi:.6}), λmin {lo:.6}, trace ≈ {:.6}",
        s.lambda_max, s.trace
    );
    println!(
        "{} Ritz values above λmax/10{}; {} gradient evaluations",
        s.outliers(),
        s.classes
            .map_or(String::new(), |c| format!(" (the data have {c} classes)")),
        s.gradients
    );
    let mut top: Vec<(f64, f64)> = s.runs[0]
        .nodes
        .iter()
        .copied()
        .zip(s.runs[0].weights.iter().copied())
        .collect();
    top.sort_by(|x, y| y.0.total_cmp(&x.0));
    println!(
        "largest Ritz values (weight): {}",
        top.iter()
            .take(12)
            .map(|(n, w)| format!("{n:.4} ({w:.1e})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn scores(run: &str, workspace: Option<PathBuf>, top: usize) -> anyhow::Result<ExitCode> {
    let ws = open(workspace.as_deref())?;
    let (means, used) = runs::probes::scores_for(&ws.settings.runs_path(&ws.root), run)
        .map_err(anyhow::Error::msg)?;
    let scored: Vec<(usize, f64)> = means
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, (*m)?)))
        .collect();
    println!(
        "EL2N of {} examples, the mean over {} run(s): {}",
        scored.len(),
        used.len(),
        used.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let bins = 10;
    let mut hist = vec![0usize; bins];
    for (_, m) in &scored {
        hist[((m / std::f64::consts::SQRT_2 * bins as f64) as usize).min(bins - 1)] += 1;
    }
    let most = *hist.iter().max().unwrap_or(&1) as f64;
    for (i, c) in hist.iter().enumerate() {
        let lo = i as f64 * std::f64::consts::SQRT_2 / bins as f64;
        println!(
            "{lo:>5.2} {c:>7} {}",
            "█".repeat((*c as f64 / most.max(1.0) * 40.0).round() as usize)
        );
    }
    let mut hard = scored.clone();
    hard.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    println!(
        "hardest: {}",
        hard.iter()
            .take(top)
            .map(|(r, m)| format!("row {r} ({m:.3})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
