//! Runs on disk. A run is an OS process (`descent run`) writing into its own folder:
//!
//! ```text
//! runs/<experiment>/<run-id>/
//!   config.toml      the experiment as it started
//!   status.json      state, step, pid, host, device, heartbeat — replaced atomically
//!   metrics.jsonl    append-only: one record per training step and per evaluation
//!   events.jsonl     append-only: start, resume, pause, lr, checkpoint, nan, finish…
//!   control.jsonl    commands for the run (pause, resume, stop, checkpoint, lr), acked in
//!                    status.json
//!   checkpoints/step-N/  model.safetensors, optimizer.safetensors, state.json
//!   stdout.log       the process's output when detached
//!   launch.json      a queued run or sweep member: its experiment file and overrides
//!   job.json         the Slurm job that runs it
//! ```
//!
//! Anything that reads a run (the TUI, `descent runs`, `descent ctl`) only reads these files,
//! so runs started from another terminal, or before the TUI opened, look the same.

pub mod checkpoint;
pub mod control;
pub mod exec;
pub mod export;
pub mod launch;
pub mod memory;
pub mod probes;
pub mod process;
pub mod records;
pub mod spawn;
pub mod supervise;
pub mod trash;

use crate::atomic::write_atomically;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const STATUS: &str = "status.json";
pub const METRICS: &str = "metrics.jsonl";
pub const EVENTS: &str = "events.jsonl";
/// GRPO: one line per step with every rollout (prompt, completion, rewards, advantage, kept).
pub const ROLLOUTS: &str = descent_models::rl::grpo::ROLLOUTS_FILE;
pub const CONTROL: &str = "control.jsonl";
pub const CONFIG: &str = "config.toml";
pub const CHECKPOINTS: &str = "checkpoints";
pub const STDOUT: &str = "stdout.log";

/// A run on another host, whose process cannot be checked from here, has died when its
/// heartbeat (rewritten every 0.5 s, paused or not) is older than this.
pub const REMOTE_STALE_SECS: f64 = 120.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for a slot of the local queue, or for Slurm to start its job.
    Queued,
    Starting,
    Running,
    Paused,
    Stopped,
    Finished,
    Failed,
}

impl State {
    pub fn is_live(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Paused)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// A run's evaluations: the latest values and the best so far, the best for sweeps that
/// rank by them. In `status.json` and each checkpoint's `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evals {
    #[serde(default)]
    pub eval_loss: Option<f64>,
    #[serde(default)]
    pub eval_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_eval_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_eval_accuracy: Option<f64>,
}

impl Evals {
    /// An evaluation's results: the latest values, and the best so far (NaNs are never best).
    pub fn record(&mut self, loss: Option<f64>, accuracy: Option<f64>) {
        self.eval_loss = loss;
        self.eval_accuracy = accuracy;
        let keep = |best: Option<f64>, v: Option<f64>, better: fn(f64, f64) -> bool| match (
            best,
            v.filter(|v| v.is_finite()),
        ) {
            (Some(b), Some(v)) if better(v, b) => Some(v),
            (None, v) => v,
            (b, _) => b,
        };
        self.best_eval_loss = keep(self.best_eval_loss, loss, |v, b| v < b);
        self.best_eval_accuracy = keep(self.best_eval_accuracy, accuracy, |v, b| v > b);
    }
}

/// `status.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub experiment: String,
    pub run_id: String,
    pub state: State,
    pub step: u64,
    pub total_steps: u64,
    pub pid: u32,
    /// What tells the run's process apart from a later one with the same pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<process::Stamp>,
    pub host: String,
    pub device: String,
    /// Unix seconds.
    pub started_at: f64,
    pub heartbeat: f64,
    #[serde(default)]
    pub loss: Option<f64>,
    /// The latest and the best evaluations (lowest loss, highest accuracy).
    #[serde(flatten)]
    pub evals: Evals,
    #[serde(default)]
    pub lr: Option<f64>,
    #[serde(default)]
    pub examples_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    #[serde(default)]
    pub steps_per_s: Option<f64>,
    /// The id of the last control command applied.
    #[serde(default)]
    pub control_acked: u64,
    /// Why the run paused or failed, in words.
    #[serde(default)]
    pub message: Option<String>,
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Status {
    /// The status of a run that waits to be started by the queue or by Slurm; no process
    /// is its own yet.
    pub fn queued(experiment: &str, run_id: &str, total_steps: u64, message: String) -> Status {
        Status {
            state: State::Queued,
            pid: 0,
            process: None,
            message: Some(message),
            ..Status::starting(experiment, run_id, total_steps)
        }
    }

    /// The status of a run that is just starting in this process.
    pub fn starting(experiment: &str, run_id: &str, total_steps: u64) -> Status {
        Status {
            experiment: experiment.into(),
            run_id: run_id.into(),
            state: State::Starting,
            step: 0,
            total_steps,
            pid: std::process::id(),
            process: process::own_stamp(),
            host: this_host().to_string(),
            device: String::new(),
            started_at: now(),
            heartbeat: now(),
            loss: None,
            evals: Evals::default(),
            lr: None,
            examples_per_s: None,
            tokens_per_s: None,
            steps_per_s: None,
            control_acked: 0,
            message: None,
        }
    }

    pub fn read(run_dir: &Path) -> Result<Status, String> {
        let p = run_dir.join(STATUS);
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    }

    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomically(&run_dir.join(STATUS), &json)
    }

    /// The state a reader should believe: a live state whose process is gone is `failed`
    /// (killed, crashed, the machine rebooted), at once. On the run's own host the process
    /// itself is checked ([`process::check`]: the pid exists, is no zombie, and is the same
    /// process); for a run on another machine (a shared filesystem) a heartbeat silent for
    /// [`REMOTE_STALE_SECS`] is taken as death.
    pub fn effective_state(&self) -> State {
        self.liveness().0
    }

    /// [`Status::effective_state`], with why a live-looking run is dead.
    pub fn liveness(&self) -> (State, Option<String>) {
        if !self.state.is_live() {
            return (self.state, None);
        }
        let dead = if this_host() == self.host {
            match process::check(self.pid, self.process.as_ref()) {
                process::Verdict::Dead(why) => Some(why),
                process::Verdict::Alive | process::Verdict::Unverified => None,
            }
        } else {
            let silent = now() - self.heartbeat;
            (silent > REMOTE_STALE_SECS).then(|| {
                format!(
                    "no heartbeat from {} for {:.0} s",
                    self.host,
                    silent.max(0.0)
                )
            })
        };
        match dead {
            Some(why) => (State::Failed, Some(why)),
            None => (self.state, None),
        }
    }
}

/// This machine's host name, read once: it is compared for every run on every rescan.
pub fn this_host() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| sysinfo::System::host_name().unwrap_or_default())
}

/// One run folder found on disk.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub dir: PathBuf,
    pub experiment: String,
    pub id: String,
    pub status: Result<Status, String>,
    /// [`Status::effective_state`] when the folder was read (`Failed` when unreadable).
    pub state: State,
    /// Why a run whose status says it is live is taken as dead.
    pub died: Option<String>,
    /// How a queued run or sweep member was asked for (`launch.json`).
    pub launch: Option<launch::Launch>,
    /// Its Slurm job (`job.json`).
    pub job: Option<launch::Job>,
}

impl RunInfo {
    /// Why the run failed or paused, in words: why its process is taken as dead, else what
    /// its status says (a recorded failure, a NaN pause), else why the status is unreadable.
    pub fn reason(&self) -> Option<String> {
        match (&self.died, &self.status) {
            (Some(why), _) => Some(format!("the process died: {why}")),
            (None, Ok(s)) => s.message.clone(),
            (None, Err(e)) => Some(e.clone()),
        }
    }
}

/// Every run under `runs_dir`, newest first within each experiment.
pub fn list_runs(runs_dir: &Path) -> Vec<RunInfo> {
    let mut out = Vec::new();
    let Ok(experiments) = std::fs::read_dir(runs_dir) else {
        return out;
    };
    let mut experiments: Vec<_> = experiments
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    experiments.sort();
    // Dot folders (the trash among them) hold no experiment's runs.
    let listed = |p: &PathBuf| p.is_dir() && !name_of(p).starts_with('.');
    for exp_dir in experiments.into_iter().filter(listed) {
        let Ok(runs) = std::fs::read_dir(&exp_dir) else {
            continue;
        };
        let mut runs: Vec<PathBuf> = runs
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join(STATUS).is_file() || p.join(CONFIG).is_file())
            .collect();
        runs.sort_by_cached_key(|p| id_order(&name_of(p)));
        runs.reverse();
        for dir in runs {
            let status = Status::read(&dir);
            let (state, died) = status
                .as_ref()
                .map_or((State::Failed, None), Status::liveness);
            out.push(RunInfo {
                launch: launch::Launch::read(&dir).ok().flatten(),
                job: launch::Job::read(&dir).ok().flatten(),
                experiment: name_of(&exp_dir),
                id: name_of(&dir),
                state,
                died,
                status,
                dir,
            });
        }
    }
    out
}

/// Run ids in the order they were made: `20261202-024442-10` after `…-9` (a sweep makes
/// many in one second), and `…-2` after the plain `20261202-024442`.
fn id_order(id: &str) -> (String, u64) {
    match id.rsplit_once('-') {
        Some((base, n)) if base.len() == 15 && n.chars().all(|c| c.is_ascii_digit()) => {
            (base.to_string(), n.parse().unwrap_or(0))
        }
        _ => (id.to_string(), 1),
    }
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A run named by its folder or by its id (`<run-id>` or `<experiment>/<run-id>`).
pub fn find_run(runs_dir: &Path, name: &str) -> Result<PathBuf, String> {
    let as_path = Path::new(name);
    if as_path.join(STATUS).is_file() || as_path.join(CONFIG).is_file() {
        return Ok(as_path.to_path_buf());
    }
    let matches: Vec<RunInfo> = list_runs(runs_dir)
        .into_iter()
        .filter(|r| r.id == name || format!("{}/{}", r.experiment, r.id) == name)
        .collect();
    match matches.len() {
        1 => Ok(matches[0].dir.clone()),
        0 => Err(format!(
            "no run {name:?}: not a run folder, and no run with that id under {}",
            runs_dir.display()
        )),
        _ => Err(format!(
            "{name:?} names {} runs; say EXPERIMENT/RUN-ID: {}",
            matches.len(),
            matches
                .iter()
                .map(|r| format!("{}/{}", r.experiment, r.id))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Like [`find_run`], and an experiment's name also names its newest run.
pub fn find_run_or_newest(runs_dir: &Path, name: &str) -> Result<PathBuf, String> {
    if !Path::new(name).exists()
        && let Some(newest) = list_runs(runs_dir)
            .into_iter()
            .find(|r| r.experiment == name)
    {
        return Ok(newest.dir);
    }
    find_run(runs_dir, name)
}

/// A fresh, unused run id from the local time, e.g. `20261128-142501`.
pub fn new_run_dir(runs_dir: &Path, experiment: &str) -> std::io::Result<PathBuf> {
    new_dated_dir(&runs_dir.join(experiment), "")
}

/// A new folder in `parent` named `PREFIX` and the local time, with `-2`, `-3`, … when
/// others were made in the same second (run folders, sweep folders).
pub fn new_dated_dir(parent: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    let base = format!("{prefix}{}", chrono::Local::now().format("%Y%m%d-%H%M%S"));
    std::fs::create_dir_all(parent)?;
    for n in 1.. {
        let id = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = parent.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(host: String, pid: u32, silent_for: f64) -> Status {
        Status {
            state: State::Running,
            pid,
            host,
            heartbeat: now() - silent_for,
            ..Status::starting("e", "r", 10)
        }
    }

    #[test]
    fn the_best_evaluation_is_kept_past_worse_and_nan_ones() {
        let mut e = Evals::default();
        for (loss, acc) in [(0.5, 0.8), (0.3, 0.7), (f64::NAN, 0.9), (0.4, 0.6)] {
            e.record(Some(loss), Some(acc));
        }
        assert_eq!((e.eval_loss, e.eval_accuracy), (Some(0.4), Some(0.6)));
        assert_eq!(
            (e.best_eval_loss, e.best_eval_accuracy),
            (Some(0.3), Some(0.9))
        );
    }

    #[test]
    fn a_local_run_is_judged_by_its_process_and_a_remote_one_by_its_heartbeat() {
        let here = this_host().to_string();
        let me = std::process::id();
        // Our own process: a quiet heartbeat alone does not make a local run dead.
        assert_eq!(
            status(here.clone(), me, 60.0).effective_state(),
            State::Running
        );
        // A pid that cannot exist is dead at once, however fresh the heartbeat.
        let (state, why) = status(here.clone(), i32::MAX as u32, 0.0).liveness();
        assert_eq!(state, State::Failed);
        assert!(why.unwrap().contains("gone"));
        // Our pid, but recorded with another start time: the pid was reused.
        let mut reused = status(here, me, 0.0);
        if let Some(p) = reused.process.as_mut() {
            p.start_ticks += 1;
            assert_eq!(reused.effective_state(), State::Failed);
        }
        // On another host the pid means nothing: only a long silence does.
        assert_eq!(
            status("elsewhere".into(), 1, 60.0).effective_state(),
            State::Running
        );
        let (state, why) = status("elsewhere".into(), 1, 600.0).liveness();
        assert_eq!(state, State::Failed);
        assert!(why.unwrap().contains("no heartbeat from elsewhere"));
    }

    #[test]
    fn runs_made_in_one_second_keep_their_order() {
        let mut ids = vec![
            "20261202-024442-10",
            "20261202-024443",
            "20261202-024442-2",
            "20261202-024442",
            "20261202-024442-9",
        ];
        ids.sort_by_cached_key(|id| id_order(id));
        assert_eq!(
            ids,
            [
                "20261202-024442",
                "20261202-024442-2",
                "20261202-024442-9",
                "20261202-024442-10",
                "20261202-024443"
            ]
        );
    }

    #[test]
    fn ended_runs_keep_their_state() {
        let s = Status {
            state: State::Finished,
            pid: i32::MAX as u32,
            ..Status::starting("e", "r", 10)
        };
        assert_eq!(s.liveness(), (State::Finished, None));
    }
}
