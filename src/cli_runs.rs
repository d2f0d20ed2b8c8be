//! The run subcommands: `run`, `runs`, `ctl`, `schedule refine`.

use crate::config::{self, Experiment};
use crate::runs::control::{self, Command as Ctl};
use crate::runs::exec::{self, Source};
use crate::runs::{self, State, Status, spawn};
use crate::workspace::Workspace;
use crate::{demo, logging};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use descent_models::device::DeviceSpec;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Experiment name (or path to its .toml); optional with --resume
    pub experiment: Option<String>,
    /// Workspace folder (default: the one holding the current folder, else the demo)
    #[arg(long, short)]
    pub workspace: Option<PathBuf>,
    /// Start the run in the background and return; it survives the terminal closing
    #[arg(long)]
    pub detach: bool,
    /// Continue a run from its last checkpoint, in its own folder
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<String>,
    /// auto | cpu | cuda | cuda:N | metal (default: the experiment's, else the workspace's)
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// The run folder to write into (used by --detach for the background process)
    #[arg(long, hide = true)]
    pub run_dir: Option<PathBuf>,
    /// Train in this process (the supervising `descent run` starts its worker so)
    #[arg(long, hide = true)]
    pub worker: bool,
    /// Hand the run to the workspace's executor (descent.toml): the local queue, which
    /// starts it when a slot is free, or Slurm
    #[arg(long, conflicts_with_all = ["detach", "run_dir", "worker"])]
    pub queue: bool,
}

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// A run folder, a run id, or EXPERIMENT/RUN-ID
    pub run: String,
    /// pause | resume | stop | checkpoint | lr
    pub command: String,
    /// The learning rate, for `lr`
    pub value: Option<f64>,
    /// Workspace folder, to find run ids (default: as for the TUI)
    #[arg(long, short)]
    pub workspace: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("format").required(true).args(["csv", "tensorboard"]))]
pub struct ExportArgs {
    /// Runs: a run folder, a run id, EXPERIMENT/RUN-ID, an experiment's name (every run of
    /// it) or a sweep's id (its members); several go into one CSV, led by experiment and run
    /// columns
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<String>,
    /// CSV, one row per training step and evaluation (to --out, else standard output)
    #[arg(long)]
    pub csv: bool,
    /// A TensorBoard event file per run (into --out, else RUN/tensorboard/; with several
    /// runs, into --out/EXPERIMENT/RUN-ID/, so that TensorBoard names them)
    #[arg(long)]
    pub tensorboard: bool,
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[arg(long, short)]
    pub workspace: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// The refined schedule (Defazio et al. 2023) from a finished run's gradient norms;
    /// prints it and saves it as refined-schedule.csv in the run folder
    Refine {
        /// A run folder, a run id, or EXPERIMENT/RUN-ID
        run: String,
        #[arg(long, short)]
        workspace: Option<PathBuf>,
    },
}

fn open_workspace(given: Option<&Path>) -> anyhow::Result<Workspace> {
    Workspace::open(&demo::resolve_workspace(given)?)
}

/// The experiment `name` (a name or a .toml path), with the file it came from.
pub(crate) fn find_experiment(ws: &Workspace, name: &str) -> anyhow::Result<Source> {
    let as_path = Path::new(name);
    let file = if name.ends_with(".toml") && as_path.is_file() {
        std::fs::canonicalize(as_path)?
    } else {
        let f = ws.experiment(name).with_context(|| {
            let names: Vec<String> = ws.experiments.values().map(|f| f.name()).collect();
            format!(
                "no experiment {name:?} in {}; there are: {}",
                ws.root.display(),
                names.join(", ")
            )
        })?;
        f.path.clone()
    };
    let text = config::read_text(&file).map_err(anyhow::Error::msg)?;
    let experiment = Experiment::parse(&file, &text).map_err(|errors| {
        anyhow::anyhow!(
            "{} is not valid:\n{}",
            file.display(),
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    Ok(Source {
        path: file,
        experiment,
    })
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    logging::init_cli();
    let ws_dir = match (&args.workspace, &args.experiment) {
        (Some(w), _) => Some(w.clone()),
        (None, Some(e)) if e.ends_with(".toml") && Path::new(e).is_file() => {
            let abs = std::fs::canonicalize(e)?;
            abs.ancestors()
                .find(|d| d.join(config::Settings::FILE).is_file())
                .map(Path::to_path_buf)
        }
        _ => None,
    };
    let ws = open_workspace(ws_dir.as_deref())?;
    // SAFETY: before any thread pool exists; nothing else runs yet.
    unsafe { descent_models::configure_cpu_threads(ws.settings.threads) };
    let runs_dir = ws.settings.runs_path(&ws.root);
    let (dir, resume) = match (&args.resume, &args.run_dir) {
        (Some(r), _) => (
            runs::find_run(&runs_dir, r).map_err(anyhow::Error::msg)?,
            true,
        ),
        (None, Some(d)) => (d.clone(), false),
        (None, None) => (PathBuf::new(), false),
    };
    // A queued run or sweep member names its experiment file; one that never started
    // starts now, in the folder prepared for it.
    let launch = if resume {
        runs::launch::Launch::read(&dir).map_err(anyhow::Error::msg)?
    } else {
        None
    };
    let never_started = resume && !dir.join(runs::CONFIG).is_file();
    let name = match (&args.experiment, resume, &launch) {
        (Some(n), ..) => n.clone(),
        (None, true, Some(l)) => l.experiment_file.display().to_string(),
        (None, true, None) => Status::read(&dir)
            .map(|s| s.experiment)
            .or_else(|_| {
                dir.parent()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or("no name")
            })
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot tell which experiment {} belongs to: {e}",
                    dir.display()
                )
            })?,
        (None, false, _) => bail!("name an experiment to run, or --resume RUN_DIR"),
    };
    let source = find_experiment(&ws, &name)?;
    if args.queue {
        return crate::cli_queue::queue_run(&ws, &source, resume.then_some(dir.as_path()));
    }
    let resume = resume && !never_started;
    if args.worker {
        return match exec::execute(&ws, source, &dir, args.device, resume)? {
            State::Finished | State::Stopped => Ok(ExitCode::SUCCESS),
            _ => Ok(ExitCode::from(1)),
        };
    }
    if !resume {
        exec::preflight(&ws, &source.experiment).map_err(anyhow::Error::msg)?;
    }
    if resume && let Ok(s) = Status::read(&dir) {
        let state = s.effective_state();
        if state.is_live() {
            bail!(
                "run {}/{} is {state} (pid {}); it cannot be resumed twice",
                s.experiment,
                s.run_id,
                s.pid
            );
        }
        // A finished run continues only when the experiment now asks for more steps.
        if state == State::Finished && source.experiment.train.steps <= s.total_steps {
            bail!(
                "run {}/{} has finished all its {} steps; raise train.steps in {} to continue it",
                s.experiment,
                s.run_id,
                s.total_steps,
                source.path.display()
            );
        }
    }
    let dir = if dir.as_os_str().is_empty() {
        runs::new_run_dir(&runs_dir, source.experiment.name())?
    } else {
        dir
    };
    if args.detach {
        let mut extra = Vec::new();
        if let Some(d) = args.device {
            extra.extend(["--device".to_string(), d.to_string()]);
        }
        if resume {
            extra.extend(["--resume".to_string(), dir.display().to_string()]);
        }
        let pid =
            spawn::spawn_detached(&ws.root, &source.path.display().to_string(), &dir, &extra)?;
        println!(
            "started {} (pid {pid}); output in {}",
            dir.display(),
            dir.join(runs::STDOUT).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("run folder {}", dir.display());
    let mut worker: Vec<std::ffi::OsString> = vec![
        "run".into(),
        source.path.clone().into(),
        "--workspace".into(),
        ws.root.clone().into(),
        "--worker".into(),
    ];
    worker.extend(if resume {
        ["--resume".into(), dir.clone().into()]
    } else {
        ["--run-dir".into(), dir.clone().into()]
    });
    if let Some(d) = args.device {
        worker.extend(["--device".into(), d.to_string().into()]);
    }
    let code = runs::supervise::run(&worker, &dir)
        .with_context(|| format!("cannot start the training process for {}", dir.display()))?;
    Ok(ExitCode::from(code))
}

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub action: Option<RunsAction>,
    /// Workspace folder (default: as for the TUI)
    #[arg(long, short, global = true)]
    pub workspace: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum RunsAction {
    /// Move runs (not live or queued ones) to RUNS/.trash/EXPERIMENT/RUN-ID, out of every
    /// list; move one back to restore it, `rm -rf RUNS/.trash` to free the space
    Rm {
        /// A run folder, a run id, or EXPERIMENT/RUN-ID
        #[arg(required = true, value_name = "RUN")]
        runs: Vec<String>,
    },
}

pub fn runs(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let ws = open_workspace(args.workspace.as_deref())?;
    if let Some(RunsAction::Rm { runs: names }) = &args.action {
        return remove_runs(&ws, names);
    }
    let all = runs::list_runs(&ws.settings.runs_path(&ws.root));
    if all.is_empty() {
        println!("no runs in {}", ws.settings.runs_path(&ws.root).display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<40} {:<9} {:>13} {:>10} {:>10} {:>7}  DEVICE",
        "RUN", "STATE", "STEP", "LOSS", "EVAL LOSS", "ACC"
    );
    for r in all {
        let name = format!("{}/{}", r.experiment, r.id);
        match &r.status {
            Ok(s) => {
                let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
                println!(
                    "{name:<40} {:<9} {:>13} {:>10} {:>10} {:>7}  {}",
                    r.state.to_string(),
                    format!("{}/{}", s.step, s.total_steps),
                    f(s.loss),
                    f(s.evals.eval_loss),
                    s.evals
                        .eval_accuracy
                        .map_or("-".into(), |a| format!("{:.1}%", a * 100.0)),
                    s.device
                );
                // Why a run failed or paused, on a line of its own.
                let why = matches!(r.state, State::Failed | State::Paused | State::Queued)
                    .then(|| r.reason())
                    .flatten();
                if let Some(why) = why {
                    let first = why.lines().next().unwrap_or("");
                    println!("  └ {}", descent_panes::truncate_right(first, 110));
                }
            }
            Err(e) => println!("{name:<40} unreadable: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `descent runs rm`: each run to the trash, or why not; non-zero when any stayed.
fn remove_runs(ws: &Workspace, names: &[String]) -> anyhow::Result<ExitCode> {
    let runs_dir = ws.settings.runs_path(&ws.root);
    let all = runs::list_runs(&runs_dir);
    let mut failed = false;
    for name in names {
        let moved = runs::find_run(&runs_dir, name).and_then(|dir| {
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            let info = all
                .iter()
                .find(|r| std::fs::canonicalize(&r.dir).is_ok_and(|d| d == dir))
                .ok_or_else(|| {
                    format!(
                        "{} is not a run under {}",
                        dir.display(),
                        runs_dir.display()
                    )
                })?;
            let bytes = runs::trash::size_of(&info.dir);
            let to = runs::trash::trash(&runs_dir, info)?;
            Ok((format!("{}/{}", info.experiment, info.id), bytes, to))
        });
        match moved {
            Ok((run, bytes, to)) => println!(
                "moved {run} ({}) to {}",
                descent_panes::human_bytes(bytes),
                to.display()
            ),
            Err(e) => {
                eprintln!("descent: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let ws = open_workspace(args.workspace.as_deref())?;
    let dir =
        runs::find_run(&ws.settings.runs_path(&ws.root), &args.run).map_err(anyhow::Error::msg)?;
    let command = match (args.command.as_str(), args.value) {
        ("pause", None) => Ctl::Pause,
        ("resume", None) => Ctl::Resume,
        ("stop", None) => Ctl::Stop,
        ("checkpoint", None) => Ctl::Checkpoint,
        ("lr", Some(value)) => Ctl::Lr { value },
        ("lr", None) => bail!("lr needs a value, e.g. `descent ctl {} lr 3e-4`", args.run),
        (c, Some(_)) if c != "lr" => bail!("{c} takes no value"),
        (c, _) => {
            bail!("unknown command {c:?}; expected pause, resume, stop, checkpoint or lr VALUE")
        }
    };
    let id = control::send(&dir, command).map_err(anyhow::Error::msg)?;
    match control::wait_ack(&dir, id, Duration::from_secs(5)) {
        Ok(s) => {
            println!(
                "{command}: acknowledged by {}/{} (state {}, step {})",
                s.experiment, s.run_id, s.state, s.step
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{command}: sent, but {e}");
            Ok(ExitCode::from(1))
        }
    }
}

pub fn schedule(c: ScheduleCommand) -> anyhow::Result<ExitCode> {
    let ScheduleCommand::Refine { run, workspace } = c;
    let ws = open_workspace(workspace.as_deref())?;
    let dir = runs::find_run(&ws.settings.runs_path(&ws.root), &run).map_err(anyhow::Error::msg)?;
    let (shape, family) = exec::refined_shape(&dir)?;
    let peak = shape.iter().position(|&v| v == 1.0).unwrap_or(0);
    let mut csv = String::from("step,lr_fraction\n");
    for (i, v) in shape.iter().enumerate() {
        csv += &format!("{i},{v}\n");
    }
    let out = dir.join("refined-schedule.csv");
    crate::atomic::write_atomically(&out, csv.as_bytes())?;
    println!(
        "refined schedule from {} ({} steps, {:?} weights): peak at step {peak}, ends at 0",
        dir.display(),
        shape.len(),
        family
    );
    let n = shape.len();
    for k in 0..=10 {
        let i = (k * (n - 1)) / 10;
        let bar = "█".repeat((shape[i] * 40.0).round() as usize);
        println!("{i:>8} {:>6.3} {bar}", shape[i]);
    }
    println!(
        "saved {}; use it with schedule = {{ name = \"refined\", from_run = \"{run}\" }}",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    use crate::runs::export;
    let ws = open_workspace(args.workspace.as_deref())?;
    let dirs = runs_named(&ws, &args.runs).map_err(anyhow::Error::msg)?;
    if args.csv {
        match &args.out {
            Some(path) => {
                let mut buf = Vec::new();
                let n = export::write_csv(&dirs, &mut buf).map_err(anyhow::Error::msg)?;
                crate::atomic::write_atomically(path, &buf)?;
                eprintln!(
                    "wrote {n} rows of {} runs to {}",
                    dirs.len(),
                    path.display()
                );
            }
            None => {
                export::write_csv(&dirs, &mut std::io::stdout().lock())
                    .map_err(anyhow::Error::msg)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let several = dirs.len() > 1;
    for dir in &dirs {
        let out = match &args.out {
            Some(out) if several => out.join(crate::queue::run_name(dir)),
            Some(out) => out.clone(),
            None => dir.join("tensorboard"),
        };
        let path = export::write_tensorboard(dir, &out).map_err(anyhow::Error::msg)?;
        println!("wrote {}", path.display());
    }
    // The folder whose tree holds every file written, for TensorBoard's --logdir.
    let logdir = match &args.out {
        Some(out) => out.clone(),
        None if several => common_parent(&dirs),
        None => dirs[0].join("tensorboard"),
    };
    println!("view with `tensorboard --logdir {}`", logdir.display());
    Ok(ExitCode::SUCCESS)
}

/// The run folders `names` stand for, in order and each once: a run (see
/// [`runs::find_run`]), a sweep's id (its members) or an experiment's name (its runs).
fn runs_named(ws: &Workspace, names: &[String]) -> Result<Vec<PathBuf>, String> {
    let runs_dir = ws.settings.runs_path(&ws.root);
    let mut out: Vec<PathBuf> = Vec::new();
    for name in names {
        let found = match runs::find_run(&runs_dir, name) {
            Ok(dir) => vec![dir],
            Err(not_a_run) => {
                let of_experiment: Vec<PathBuf> = runs::list_runs(&runs_dir)
                    .into_iter()
                    .filter(|r| r.experiment == *name)
                    .map(|r| r.dir)
                    .collect();
                match crate::queue::sweep::read(&ws.root, name) {
                    Some(sweep) => {
                        // Members moved to the trash (or deleted) are passed over, and said.
                        let (here, gone): (Vec<PathBuf>, Vec<PathBuf>) = sweep
                            .members
                            .into_iter()
                            .map(|m| m.run)
                            .partition(|d| d.is_dir());
                        if !gone.is_empty() {
                            eprintln!("{name}: {} removed member(s) left out", gone.len());
                        }
                        here
                    }
                    None if !of_experiment.is_empty() => of_experiment,
                    None => {
                        return Err(format!(
                            "{not_a_run}; nor is it a sweep id or an experiment with runs"
                        ));
                    }
                }
            }
        };
        for dir in found {
            // A run named twice (by its folder and in its sweep, say) is exported once.
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            if !out.contains(&dir) {
                out.push(dir);
            }
        }
    }
    Ok(out)
}

/// The deepest folder that holds all of `dirs`.
fn common_parent(dirs: &[PathBuf]) -> PathBuf {
    let mut common = dirs[0].clone();
    while !dirs.iter().all(|d| d.starts_with(&common)) && common.pop() {}
    common
}
