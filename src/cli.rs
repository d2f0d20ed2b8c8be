//! The command line. Every subcommand works without a terminal; with no subcommand, the TUI.

use crate::workspace::Workspace;
use crate::{demo, logging, tui};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "descent",
    version,
    about = "A keyboard-driven terminal workbench for gradient-based ML research",
    long_about = "A keyboard-driven terminal workbench for gradient-based ML research.\n\n\
        With no subcommand, opens the TUI on WORKSPACE: the given folder, else the workspace \
        holding the current folder (a folder with a descent.toml), else the bundled demo \
        workspace, unpacked on first use into your data directory.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Workspace folder (a folder holding descent.toml)
    pub workspace: Option<PathBuf>,
    /// Poll the workspace for changes instead of using file-system notifications
    /// (for network filesystems and containers where notifications do not arrive)
    #[arg(long)]
    pub poll: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate descent.toml and every experiment; exit non-zero on any error
    Check {
        /// Workspace folder (default: as for the TUI)
        workspace: Option<PathBuf>,
    },
    /// Train an experiment (a name in the workspace, or a path to its .toml file)
    Run(crate::cli_runs::RunArgs),
    /// List runs and their state; `runs rm RUN…` moves runs to the trash
    Runs(crate::cli_runs::RunsArgs),
    /// Control a running run: pause, resume, stop, checkpoint, lr VALUE
    Ctl(crate::cli_runs::CtlArgs),
    /// Export runs' metrics as CSV or TensorBoard event files
    Export(crate::cli_runs::ExportArgs),
    /// Learning-rate schedules
    #[command(subcommand)]
    Schedule(crate::cli_runs::ScheduleCommand),
    /// Look at datasets: builtin:NAME, hub:ORG/NAME or a path
    #[command(subcommand)]
    Data(crate::cli_inspect::DataCommand),
    /// Look at checkpoints: safetensors, GGUF, model and pipeline folders, run checkpoints
    #[command(subcommand)]
    Ckpt(crate::cli_inspect::CkptCommand),
    /// Download a model or dataset from the Hugging Face hub into the hub cache
    Pull(crate::hub::PullArgs),
    /// Sample a diffusion model with CFG, Adaptive Guidance or LinearAG (--compare for all)
    Sample(Box<crate::cli_sample::SampleArgs>),
    /// Gradient probes on demand: the Hessian spectrum of a checkpoint, a run's EL2N scores
    #[command(subcommand)]
    Probe(crate::cli_probe::ProbeCommand),
    /// Continue a prompt with a language model (Llama, Qwen2, Qwen3), streaming the tokens
    Generate(Box<crate::cli_generate::GenerateArgs>),
    /// Start the members of an experiment's [sweep] (each an ordinary run) on the executor
    Sweep(crate::cli_queue::SweepArgs),
    /// List sweeps, or one sweep's members ranked by its metric
    Sweeps(crate::cli_queue::SweepsArgs),
    /// The local queue and Slurm jobs: list, move, cancel
    Queue(crate::cli_queue::QueueArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_some() {
        // Headless output is often piped (`descent export … | head`): end quietly when the
        // reader goes away, as command-line tools do, instead of failing on EPIPE.
        // SAFETY: called before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Some(Command::Check { workspace }) => check(workspace.as_deref()),
        Some(Command::Run(args)) => crate::cli_runs::run(args),
        Some(Command::Runs(args)) => crate::cli_runs::runs(args),
        Some(Command::Ctl(args)) => crate::cli_runs::ctl(args),
        Some(Command::Schedule(c)) => crate::cli_runs::schedule(c),
        Some(Command::Export(args)) => crate::cli_runs::export(args),
        Some(Command::Data(c)) => crate::cli_inspect::data(c),
        Some(Command::Ckpt(c)) => crate::cli_inspect::ckpt(c),
        Some(Command::Pull(args)) => crate::hub::pull(args),
        Some(Command::Sample(args)) => crate::cli_sample::sample(*args),
        Some(Command::Generate(args)) => crate::cli_generate::generate(*args),
        Some(Command::Probe(c)) => crate::cli_probe::probe(c),
        Some(Command::Sweep(args)) => crate::cli_queue::sweep_cmd(args),
        Some(Command::Sweeps(args)) => crate::cli_queue::sweeps_cmd(args),
        Some(Command::Queue(args)) => crate::cli_queue::queue_cmd(args),
        None => open_tui(cli.workspace.as_deref(), cli.poll),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("descent: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn open_tui(workspace: Option<&Path>, poll: bool) -> anyhow::Result<ExitCode> {
    let root = demo::resolve_workspace(workspace)?;
    let ws = Workspace::open(&root)?;
    tui::run(ws, poll)?;
    Ok(ExitCode::SUCCESS)
}

/// `descent check`: every error as `file:line:col: message`, then a one-line verdict.
fn check(workspace: Option<&Path>) -> anyhow::Result<ExitCode> {
    logging::init_cli();
    let root = demo::resolve_workspace(workspace)?;
    let ws = Workspace::open(&root)?;
    let cwd = std::env::current_dir().unwrap_or_default();
    let errors = ws.errors();
    for e in &errors {
        println!("{}", e.display_relative(&cwd));
    }
    let total = ws.experiments.len();
    let valid = ws
        .experiments
        .values()
        .filter(|f| f.errors.is_empty())
        .count();
    // The memory estimate needs each experiment's data, so it is made for valid ones only.
    for f in ws.experiments.values().filter(|f| f.errors.is_empty()) {
        let Some(exp) = &f.good else { continue };
        let file = f.path.strip_prefix(&cwd).unwrap_or(&f.path);
        // A fine-tuning experiment whose base model is not trained yet is valid, and so is a
        // subset ranked by runs not made yet; say so.
        if let Err(e) = crate::runs::exec::preflight(&ws, exp) {
            println!("{}: note: not ready to run yet: {e}", file.display());
            continue;
        }
        if let Some(s) = &exp.sweep {
            let more = if s.size() > s.max_members {
                format!(
                    ", more than its max_members = {}: descent sweep asks first",
                    s.max_members
                )
            } else {
                String::new()
            };
            println!(
                "{}: note: [sweep] makes {} member(s){more}; see them with descent sweep {} --dry-run",
                file.display(),
                s.size(),
                exp.name()
            );
        }
        match crate::runs::exec::memory_warning(&ws, exp, file) {
            Ok(Some(w)) => println!("{w}"),
            Ok(None) => {}
            Err(e) => println!("{}: warning: no memory estimate: {e:#}", file.display()),
        }
    }
    let ws_path = ws.root.display();
    if errors.is_empty() {
        println!("{ws_path}: ok — descent.toml and {total} experiment(s) are valid");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{ws_path}: {} error(s); {valid} of {total} experiment(s) valid",
            errors.len()
        );
        Ok(ExitCode::from(1))
    }
}
