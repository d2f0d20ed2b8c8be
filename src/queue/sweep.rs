//! A sweep on disk: `sweeps/<sweep-id>/sweep.json` names its members' run folders, each an
//! ordinary run of the experiment whose `launch.json` records the keys it sets otherwise.
//! Making one prepares every member's folder and hands them all to the executor at once (a
//! job array on Slurm).

use crate::config::Experiment;
use crate::config::sweep::{self, Goal, Overrides, Summary};
use crate::runs::{self, RunInfo, State, Status};
use crate::workspace::Workspace;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DIR: &str = "sweeps";
pub const RECORD: &str = "sweep.json";

/// `sweep.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub experiment: String,
    pub experiment_file: PathBuf,
    pub created: f64,
    pub metric: String,
    pub goal: Goal,
    /// Which of a member's values ranks it (records from before this key: the last).
    #[serde(default)]
    pub summary: Summary,
    /// `local` or `slurm`, and what submitting said.
    pub executor: String,
    pub submitted: String,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// From 1.
    pub index: usize,
    pub run: PathBuf,
    pub overrides: Overrides,
}

/// Why a sweep was not made.
#[derive(Debug)]
pub enum Refused {
    /// More members than the sweep's `max_members`: ask before making them.
    Confirm {
        members: usize,
        max: usize,
    },
    Error(String),
}

impl From<String> for Refused {
    fn from(e: String) -> Self {
        Refused::Error(e)
    }
}

/// The members' overrides of the experiment's `[sweep]`.
pub fn plan(exp: &Experiment) -> Result<Vec<Overrides>, String> {
    let s = exp.sweep.as_ref().ok_or_else(|| {
        format!(
            "{} has no [sweep] table; add one (see the README's Sweeps section)",
            exp.name()
        )
    })?;
    sweep::expand(s)
}

/// Makes the sweep's record and member folders, and submits them; also says how many
/// started at once.
pub fn start(
    ws: &Workspace,
    exp: &Experiment,
    file: &Path,
    confirmed: bool,
) -> Result<(Record, usize), Refused> {
    let members = plan(exp)?;
    let s = exp.sweep.as_ref().expect("plan checked the sweep");
    if members.len() > s.max_members && !confirmed {
        return Err(Refused::Confirm {
            members: members.len(),
            max: s.max_members,
        });
    }
    // What would stop every member at its start (a base model not trained yet, say) stops
    // the sweep before it makes anything.
    if let Some(first) = members.first() {
        let member = sweep::apply(exp, first)?;
        crate::runs::exec::preflight(ws, &member)?;
    }
    let dir = new_sweep_dir(&ws.root, exp.name()).map_err(|e| e.to_string())?;
    let id = dir
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let n = members.len();
    let mut record = Record {
        id: id.clone(),
        experiment: exp.name().into(),
        experiment_file: file.to_path_buf(),
        created: runs::now(),
        metric: s.metric.clone(),
        goal: s.goal(),
        summary: s.summary,
        executor: ws.settings.executor.to_string(),
        submitted: String::new(),
        members: Vec::new(),
    };
    for (i, overrides) in members.into_iter().enumerate() {
        let req = super::Request {
            experiment: exp,
            file,
            overrides: overrides.clone(),
            sweep: Some((id.clone(), i + 1)),
        };
        let message = format!("queued: member {} of {n} of sweep {id}", i + 1);
        let run = super::prepare(ws, &req, &message).map_err(|e| e.to_string())?;
        record.members.push(Member {
            index: i + 1,
            run,
            overrides,
        });
    }
    write(&dir, &record)?;
    let dirs: Vec<PathBuf> = record.members.iter().map(|m| m.run.clone()).collect();
    let started = match super::submit(ws, &dirs, Some(&dir)) {
        Ok(said) => {
            record.submitted = said.message;
            said.started
        }
        Err(e) => {
            // Nothing waits for runs that were never handed over; the folders say why.
            for d in &dirs {
                super::mark_unsubmitted(d, &e);
            }
            record.submitted = format!("failed: {e}");
            write(&dir, &record)?;
            return Err(Refused::Error(e));
        }
    };
    write(&dir, &record)?;
    Ok((record, started))
}

fn write(dir: &Path, record: &Record) -> Result<(), String> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    crate::atomic::write_atomically(&dir.join(RECORD), &json)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn new_sweep_dir(root: &Path, experiment: &str) -> std::io::Result<PathBuf> {
    runs::new_dated_dir(&root.join(DIR), &format!("{experiment}-"))
}

/// The record of sweep `id`; `None` when it is missing, and with a warning when unreadable.
pub fn read(root: &Path, id: &str) -> Option<Record> {
    let path = root.join(DIR).join(id).join(RECORD);
    let bytes = std::fs::read(&path).ok()?;
    serde_json::from_slice(&bytes)
        .map_err(|err| tracing::warn!("{}: {err}", path.display()))
        .ok()
}

/// The sweeps of a workspace, newest first; unreadable records are skipped with a warning.
pub fn list(root: &Path) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(root.join(DIR)) else {
        return Vec::new();
    };
    let mut out: Vec<Record> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| read(root, &e.file_name().to_string_lossy()))
        .collect();
    out.sort_by(|a, b| b.created.total_cmp(&a.created));
    out
}

/// What ranks a sweep's members, in words: `eval_loss`, or `best eval_loss`.
pub fn ranked_by(metric: &str, summary: Summary) -> String {
    match summary {
        Summary::Last => metric.to_string(),
        Summary::Best => format!("best {metric}"),
    }
}

/// A member's value of the metric that ranks it, from its status: the last one, or the best
/// evaluation.
pub fn metric_of(status: &Status, metric: &str, summary: Summary) -> Option<f64> {
    match (metric, summary) {
        ("eval_loss", Summary::Last) => status.evals.eval_loss,
        ("eval_accuracy", Summary::Last) => status.evals.eval_accuracy,
        ("eval_loss", Summary::Best) => status.evals.best_eval_loss,
        ("eval_accuracy", Summary::Best) => status.evals.best_eval_accuracy,
        ("loss", _) => status.loss,
        _ => None,
    }
    .filter(|v| v.is_finite())
}

/// One row of a sweep's ranking.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked {
    /// 1 for the best; `None` until the member has a value.
    pub rank: Option<usize>,
    pub member: usize,
    pub run: String,
    pub dir: PathBuf,
    /// `None` when the member's run is gone (moved to the trash, or deleted).
    pub state: Option<State>,
    pub value: Option<f64>,
    pub overrides: String,
}

impl Ranked {
    /// The state in words: `removed` for a member whose run is gone.
    pub fn state_name(&self) -> String {
        self.state.map_or("removed".into(), |s| s.to_string())
    }
}

/// The members ranked by the sweep's metric (best first; members without a value last, in
/// member order).
pub fn rank(record: &Record, runs: &[RunInfo]) -> Vec<Ranked> {
    let mut rows: Vec<Ranked> = record
        .members
        .iter()
        .map(|m| {
            let info = runs.iter().find(|r| r.dir == m.run);
            let status = info.and_then(|r| r.status.as_ref().ok());
            Ranked {
                rank: None,
                member: m.index,
                run: super::run_name(&m.run),
                dir: m.run.clone(),
                state: info.map(|r| r.state),
                value: status.and_then(|s| metric_of(s, &record.metric, record.summary)),
                overrides: sweep::describe(&m.overrides),
            }
        })
        .collect();
    let better = |a: f64, b: f64| match record.goal {
        Goal::Min => a.total_cmp(&b),
        Goal::Max => b.total_cmp(&a),
    };
    rows.sort_by(|a, b| match (a.value, b.value) {
        (Some(x), Some(y)) => better(x, y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member.cmp(&b.member),
    });
    for (i, r) in rows.iter_mut().enumerate() {
        if r.value.is_some() {
            r.rank = Some(i + 1);
        }
    }
    rows
}
