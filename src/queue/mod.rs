//! Runs that wait to start: this machine's queue ([`local`]) and Slurm ([`slurm`]).
//!
//! Either way a waiting run is a run folder already — `launch.json` (its experiment file and
//! overrides) and a `queued` status — so the Runs pane, `descent runs` and sweeps see it from
//! the moment it is asked for, and whoever starts it (the dispatcher, a Slurm job on a node)
//! runs `descent run --resume DIR`, which starts a folder that never ran and continues one
//! that did. The queue's own files are under `<workspace>/queue/`:
//!
//! ```text
//! queue/queue.json       the waiting runs in order, and the slots the started ones hold
//! queue/queue.lock       flock'd around every change of queue.json
//! queue/dispatcher.lock  flock'd by the one dispatcher (`descent queue serve`)
//! queue/dispatcher.log   its output
//! ```

pub mod local;
pub mod slots;
pub mod slurm;
pub mod sweep;

use crate::config::sweep::Overrides;
use crate::config::{Executor, Experiment};
use crate::runs::launch::Launch;
use crate::runs::{self, Status};
use crate::workspace::Workspace;
use std::path::{Path, PathBuf};

pub const DIR: &str = "queue";

/// A run to be made: the experiment as the member will run it, and how it was asked for.
pub struct Request<'a> {
    pub experiment: &'a Experiment,
    pub file: &'a Path,
    pub overrides: Overrides,
    pub sweep: Option<(String, usize)>,
}

/// Makes the folder of a run that is to wait: `launch.json` and a `queued` status.
pub fn prepare(ws: &Workspace, req: &Request, message: &str) -> std::io::Result<PathBuf> {
    let member = crate::config::sweep::apply(req.experiment, &req.overrides)
        .map_err(std::io::Error::other)?;
    let dir = runs::new_run_dir(&ws.settings.runs_path(&ws.root), req.experiment.name())?;
    let launch = Launch {
        experiment_file: req.file.to_path_buf(),
        overrides: req.overrides.clone(),
        sweep: req.sweep.as_ref().map(|(id, _)| id.clone()),
        member: req.sweep.as_ref().map(|(_, i)| *i),
        queued_at: runs::now(),
    };
    launch.write(&dir)?;
    let id = dir
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    Status::queued(member.name(), &id, member.train.steps, message.into()).write(&dir)?;
    Ok(dir)
}

/// What the executor did with the runs handed to it.
pub struct Submitted {
    /// How many started at once (the local queue, when slots were free).
    pub started: usize,
    /// In words.
    pub message: String,
}

/// Hands prepared run folders to the workspace's executor. `sweep_dir` is where a sweep's
/// batch script goes (a single run's goes in its folder).
pub fn submit(
    ws: &Workspace,
    dirs: &[PathBuf],
    sweep_dir: Option<&Path>,
) -> Result<Submitted, String> {
    match ws.settings.executor {
        Executor::Local => {
            let started = local::enqueue(ws, dirs)?;
            let waits = || {
                dirs.first()
                    .and_then(|d| Status::read(d).ok())
                    .and_then(|s| s.message)
                    .unwrap_or_else(|| "queued".into())
            };
            let message = match (dirs.len(), started) {
                (1, 1) => "started at once: a slot was free".to_string(),
                (1, _) => waits(),
                (n, s) => format!("{s} of {n} started at once; the rest wait for slots"),
            };
            Ok(Submitted { started, message })
        }
        Executor::Slurm => {
            let job = slurm::submit(ws, dirs, sweep_dir)?;
            let message = match dirs.len() {
                1 => format!("submitted to Slurm as job {job}"),
                n => format!("submitted to Slurm as job array {job} ({n} tasks)"),
            };
            Ok(Submitted {
                started: 0,
                message,
            })
        }
    }
}

/// The folder's run as `EXPERIMENT/RUN-ID`, for messages.
pub fn run_name(dir: &Path) -> String {
    let part = |p: Option<&Path>| {
        p.and_then(|p| p.file_name())
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    };
    format!("{}/{}", part(dir.parent()), part(Some(dir)))
}

/// Marks a run that never started as cancelled (kept: its folder says what was asked).
pub fn mark_cancelled(dir: &Path, why: &str) -> Result<(), String> {
    let mut s = Status::read(dir)?;
    if s.state != runs::State::Queued {
        return Ok(());
    }
    s.state = runs::State::Stopped;
    s.message = Some(why.into());
    s.heartbeat = runs::now();
    s.write(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Marks a run the executor refused as failed, with the executor's own message.
pub fn mark_unsubmitted(dir: &Path, why: &str) {
    if let Ok(mut s) = Status::read(dir) {
        s.state = runs::State::Failed;
        s.message = Some(format!("not submitted: {why}"));
        s.heartbeat = runs::now();
        let _ = s.write(dir);
    }
}

/// Makes an ended run wait again, to resume from its last checkpoint when started.
pub fn requeue(dir: &Path) -> Result<PathBuf, String> {
    let mut s = Status::read(dir)?;
    let state = s.effective_state();
    if state.is_live() || state == runs::State::Queued {
        return Err(format!(
            "{} is {state}; it cannot be queued again",
            run_name(dir)
        ));
    }
    s.state = runs::State::Queued;
    s.message = Some(format!("queued to resume from step {}", s.step));
    s.write(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir.to_path_buf())
}
