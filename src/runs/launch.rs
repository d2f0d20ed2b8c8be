//! What a run was asked to be, written in its folder before it starts, so that whoever starts
//! it later — the local queue's dispatcher, a Slurm job on a node — starts the same run:
//!
//! - `launch.json`: the experiment file, the keys a sweep member sets otherwise, its sweep;
//! - `job.json`: the Slurm job that runs it, when Slurm does.
//!
//! A run with neither was started directly (`descent run`, `r` with a free slot and no queue).

use crate::atomic::write_atomically;
use crate::config::sweep::Overrides;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const LAUNCH: &str = "launch.json";
pub const JOB: &str = "job.json";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// The experiment file the run starts from (live edits are read from it too).
    pub experiment_file: PathBuf,
    /// Keys set otherwise than in the file (a sweep member's), applied over it.
    #[serde(default, skip_serializing_if = "Overrides::is_empty")]
    pub overrides: Overrides,
    /// The sweep it belongs to, and its place there (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<usize>,
    /// Unix seconds when it was queued.
    pub queued_at: f64,
}

/// The Slurm job of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Slurm's job id (of the array, for a sweep).
    pub job_id: String,
    /// The run's task in the array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<usize>,
    /// The batch script submitted.
    pub script: PathBuf,
    pub submitted_at: f64,
}

impl Job {
    /// `12` or `12_3`, as squeue and scancel name it.
    pub fn slurm_id(&self) -> String {
        match self.task {
            Some(t) => format!("{}_{t}", self.job_id),
            None => self.job_id.clone(),
        }
    }
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomically(path, &json)
}

impl Launch {
    pub fn read(run_dir: &Path) -> Result<Option<Launch>, String> {
        read(&run_dir.join(LAUNCH))
    }
    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        write(&run_dir.join(LAUNCH), self)
    }
}

impl Job {
    pub fn read(run_dir: &Path) -> Result<Option<Job>, String> {
        read(&run_dir.join(JOB))
    }
    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        write(&run_dir.join(JOB), self)
    }
}
