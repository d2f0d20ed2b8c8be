//! The queue and sweep subcommands: `sweep`, `sweeps`, `queue`, and `run --queue`.

use crate::queue::{self, local, slurm, sweep};
use crate::runs::control::{self, Command as Ctl};
use crate::runs::exec::Source;
use crate::runs::launch::Job;
use crate::runs::{self, State, Status};
use crate::workspace::Workspace;
use crate::{demo, logging};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Experiment name (or path to its .toml) with a [sweep] table
    pub experiment: String,
    /// List the members and their overrides; make and start nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Start a sweep larger than its max_members without asking
    #[arg(long, short)]
    pub yes: bool,
    #[arg(long, short)]
    pub workspace: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SweepsArgs {
    /// A sweep id: its members ranked by the sweep's metric (default: every sweep)
    pub sweep: Option<String>,
    #[arg(long, short)]
    pub workspace: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: Option<QueueCommand>,
    #[arg(long, short, global = true)]
    pub workspace: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// The waiting runs in order, why they wait, and the slots held (the default)
    List,
    /// Move a waiting run to POSITION (1 starts next)
    Move { run: String, position: usize },
    /// Cancel waiting runs, or stop started ones (after their checkpoint; scancel on Slurm):
    /// runs, or a sweep id for all its members
    Cancel {
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Start waiting runs as slots free (started for you; ends when nothing waits)
    #[command(hide = true)]
    Serve,
}

fn open(given: Option<&Path>) -> anyhow::Result<Workspace> {
    Workspace::open(&demo::resolve_workspace(given)?)
}

pub fn sweep_cmd(args: SweepArgs) -> anyhow::Result<ExitCode> {
    logging::init_cli();
    let ws = open(args.workspace.as_deref())?;
    let source = crate::cli_runs::find_experiment(&ws, &args.experiment)?;
    let exp = &source.experiment;
    let members = sweep::plan(exp).map_err(anyhow::Error::msg)?;
    let s = exp.sweep.as_ref().expect("plan checked the sweep");
    if args.dry_run {
        println!(
            "{}: {} member(s), ranked by {} ({}); executor {}",
            exp.name(),
            members.len(),
            sweep::ranked_by(&s.metric, s.summary),
            s.goal(),
            ws.settings.executor
        );
        for (i, m) in members.iter().enumerate() {
            println!("{:>5}  {}", i + 1, crate::config::sweep::describe(m));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut confirmed = args.yes;
    loop {
        match sweep::start(&ws, exp, &source.path, confirmed) {
            Ok((record, _)) => {
                println!(
                    "sweep {}: {} member(s) of {}; {}",
                    record.id,
                    record.members.len(),
                    record.experiment,
                    record.submitted
                );
                println!(
                    "follow it with `descent sweeps {}` or in the TUI",
                    record.id
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(sweep::Refused::Confirm { members, max }) => {
                let ask =
                    format!("the sweep has {members} members, more than its max_members = {max}");
                if !std::io::stdin().is_terminal() {
                    bail!("{ask}; pass --yes to start them all, or raise max_members");
                }
                eprint!("{ask}. Start all {members}? [y/N] ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    println!("nothing started");
                    return Ok(ExitCode::from(1));
                }
                confirmed = true;
            }
            Err(sweep::Refused::Error(e)) => bail!("{e}"),
        }
    }
}

pub fn sweeps_cmd(args: SweepsArgs) -> anyhow::Result<ExitCode> {
    let ws = open(args.workspace.as_deref())?;
    let all = sweep::list(&ws.root);
    let runs = runs::list_runs(&ws.settings.runs_path(&ws.root));
    let Some(id) = args.sweep else {
        if all.is_empty() {
            println!("no sweeps in {}", ws.root.join(sweep::DIR).display());
        }
        for r in &all {
            let ranked = sweep::rank(r, &runs);
            let count = |s: State| ranked.iter().filter(|m| m.state == Some(s)).count();
            let best = ranked
                .first()
                .and_then(|b| {
                    b.value
                        .map(|v| format!("best {} {v:.4} ({})", r.metric, b.overrides))
                })
                .unwrap_or_else(|| format!("no {} yet", r.metric));
            println!(
                "{:<36} {:>3} members: {} finished, {} running, {} queued — {best}",
                r.id,
                r.members.len(),
                count(State::Finished),
                count(State::Running) + count(State::Starting),
                count(State::Queued)
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let r = all
        .iter()
        .find(|r| r.id == id)
        .with_context(|| format!("no sweep {id:?} in {}", ws.root.join(sweep::DIR).display()))?;
    println!(
        "sweep {} of {} — ranked by {} ({})",
        r.id,
        r.experiment,
        sweep::ranked_by(&r.metric, r.summary),
        r.goal
    );
    println!(
        "{:>4}  {:<34} {:<9} {:>10}  OVERRIDES",
        "RANK", "RUN", "STATE", r.metric
    );
    for m in sweep::rank(r, &runs) {
        println!(
            "{:>4}  {:<34} {:<9} {:>10}  {}",
            m.rank.map_or("-".into(), |k| k.to_string()),
            m.run,
            m.state_name(),
            m.value.map_or("-".into(), |v| format!("{v:.4}")),
            m.overrides
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `descent run EXPERIMENT --queue`, or `descent run --resume RUN --queue`.
pub fn queue_run(
    ws: &Workspace,
    source: &Source,
    resume: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let dir = match resume {
        Some(dir) => queue::requeue(dir).map_err(anyhow::Error::msg)?,
        None => {
            crate::runs::exec::preflight(ws, &source.experiment).map_err(anyhow::Error::msg)?;
            let req = queue::Request {
                experiment: &source.experiment,
                file: &source.path,
                overrides: Default::default(),
                sweep: None,
            };
            queue::prepare(ws, &req, "queued")?
        }
    };
    let said = queue::submit(ws, std::slice::from_ref(&dir), None).map_err(|e| {
        queue::mark_unsubmitted(&dir, &e);
        anyhow::anyhow!("{e}")
    })?;
    println!("{}: {}", queue::run_name(&dir), said.message);
    Ok(ExitCode::SUCCESS)
}

pub fn queue_cmd(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let ws = open(args.workspace.as_deref())?;
    match args.command.unwrap_or(QueueCommand::List) {
        QueueCommand::Serve => {
            local::serve(&ws.root).map_err(anyhow::Error::msg)?;
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::List => list(&ws),
        QueueCommand::Move { run, position } => {
            let dir = runs::find_run(&ws.settings.runs_path(&ws.root), &run)
                .map_err(anyhow::Error::msg)?;
            let at = local::move_to(&ws.root, &dir, position).map_err(anyhow::Error::msg)?;
            println!("{} is now {at} in line", queue::run_name(&dir));
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Cancel { runs: names } => {
            let mut failed = false;
            for dir in resolve(&ws, &names)? {
                match cancel(&ws, &dir) {
                    Ok(said) => println!("{}: {said}", queue::run_name(&dir)),
                    Err(e) => {
                        failed = true;
                        eprintln!("{}: {e}", queue::run_name(&dir));
                    }
                }
            }
            Ok(ExitCode::from(u8::from(failed)))
        }
    }
}

/// Runs named by run ids or folders, or by a sweep id (all its members).
fn resolve(ws: &Workspace, names: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let sweeps = sweep::list(&ws.root);
    let mut out = Vec::new();
    for n in names {
        if let Some(s) = sweeps.iter().find(|s| &s.id == n) {
            out.extend(s.members.iter().map(|m| m.run.clone()));
        } else {
            out.push(
                runs::find_run(&ws.settings.runs_path(&ws.root), n).map_err(anyhow::Error::msg)?,
            );
        }
    }
    Ok(out)
}

fn list(ws: &Workspace) -> anyhow::Result<ExitCode> {
    local::ensure_dispatcher(&ws.root).map_err(anyhow::Error::msg)?;
    let q = local::read_queue(&ws.root).map_err(anyhow::Error::msg)?;
    let all = runs::list_runs(&ws.settings.runs_path(&ws.root));
    let info = |d: &Path| all.iter().find(|r| r.dir == d);
    println!(
        "executor {}; local dispatcher {}",
        ws.settings.executor,
        if local::dispatcher_running(&ws.root) {
            "running"
        } else {
            "not running (nothing waits)"
        }
    );
    let held: Vec<&local::Started> = q
        .started
        .iter()
        .filter(|s| info(&s.run).is_some_and(|r| r.state.is_live()))
        .collect();
    if q.waiting.is_empty() && held.is_empty() {
        println!("the local queue is empty");
    }
    for (i, d) in q.waiting.iter().enumerate() {
        let why = info(d)
            .and_then(|r| r.status.as_ref().ok())
            .and_then(|s| s.message.clone())
            .unwrap_or_default();
        println!("{:>4}  {:<40} {why}", i + 1, queue::run_name(d));
    }
    for s in held {
        let slot = match s.slot.gpu {
            Some(g) => format!("GPU {g}"),
            None => format!("{} cores", s.slot.cores),
        };
        println!(
            " run  {:<40} holds {slot} (pid {})",
            queue::run_name(&s.run),
            s.pid
        );
    }
    // Runs on Slurm, with what Slurm says of them.
    let on_slurm: Vec<(&runs::RunInfo, &Job)> = all
        .iter()
        .filter_map(|r| r.job.as_ref().map(|j| (r, j)))
        .filter(|(r, _)| r.state.is_live() || r.state == State::Queued)
        .collect();
    if !on_slurm.is_empty() {
        let ids: Vec<String> = on_slurm.iter().map(|(_, j)| j.slurm_id()).collect();
        let states = slurm::states(&ids);
        for (r, j) in on_slurm {
            let id = j.slurm_id();
            let said = match &states {
                Ok(m) => m
                    .get(&id)
                    .map_or(format!("slurm {id}: not in squeue"), |s| s.describe(&id)),
                Err(e) => format!("slurm {id}: {e}"),
            };
            println!(
                " job  {:<40} {:<9} {said}",
                format!("{}/{}", r.experiment, r.id),
                r.state.to_string()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Cancels a waiting run or stops a started one; on Slurm, scancels its job once the run
/// has saved its checkpoint.
pub fn cancel(ws: &Workspace, dir: &Path) -> Result<String, String> {
    let s = Status::read(dir)?;
    let job = Job::read(dir)?;
    let state = s.effective_state();
    if state == State::Queued {
        return match &job {
            Some(j) => {
                let id = j.slurm_id();
                slurm::cancel(&id)?;
                queue::mark_cancelled(dir, &format!("cancelled while pending in Slurm ({id})"))?;
                Ok(format!("scancel {id}: cancelled before it started"))
            }
            None => {
                if local::cancel(&ws.root, dir)? {
                    Ok("cancelled; it had not started".into())
                } else {
                    queue::mark_cancelled(dir, "cancelled; it was in no queue")?;
                    Ok("it was in no queue; marked cancelled".into())
                }
            }
        };
    }
    if !state.is_live() {
        return Ok(format!("already {state}"));
    }
    let id = control::send(dir, Ctl::Stop)?;
    let Some(j) = job else {
        return Ok("stop sent; the run saves a checkpoint and stops".into());
    };
    // The job ends by itself when the run stops; scancel in case it does not in time.
    control::wait_ack(dir, id, Duration::from_secs(30))?;
    let t0 = Instant::now();
    while Status::read(dir).is_ok_and(|s| s.effective_state().is_live())
        && t0.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let jid = j.slurm_id();
    match slurm::cancel(&jid) {
        Ok(()) => Ok(format!("stopped after its checkpoint; scancel {jid}")),
        Err(e) => Ok(format!("stopped after its checkpoint; scancel {jid}: {e}")),
    }
}
