//! What Slurm says of the runs it holds, for the Runs pane: a thread that asks `squeue` (then
//! `sacct`, `scontrol`) every few seconds for the jobs of runs that are queued or live, so
//! the UI thread never waits on a cluster's controller.

use crate::queue::slurm::{self, JobState};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often Slurm is asked while there are jobs to follow.
const EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Shared {
    /// The job ids (`12`, `12_3`) to ask about.
    wanted: Vec<String>,
    /// The latest answers, or why Slurm could not be asked.
    answer: Option<Result<HashMap<String, JobState>, String>>,
}

/// The follower; cheap to hold when no run is on Slurm (no thread until one is).
#[derive(Default)]
pub struct Jobs {
    shared: Arc<Mutex<Shared>>,
    started: bool,
}

impl Jobs {
    /// Sets the jobs to follow; `wake` is called after each answer.
    pub fn follow(&mut self, ids: Vec<String>, wake: impl Fn() + Send + 'static) {
        let empty = ids.is_empty();
        if let Ok(mut s) = self.shared.lock() {
            s.wanted = ids;
        }
        if empty || self.started {
            return;
        }
        self.started = true;
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("slurm-jobs".into())
            .spawn(move || {
                loop {
                    let ids = shared.lock().map(|s| s.wanted.clone()).unwrap_or_default();
                    if !ids.is_empty() {
                        let answer = slurm::states(&ids);
                        if let Ok(mut s) = shared.lock() {
                            s.answer = Some(answer);
                        }
                        wake();
                    }
                    std::thread::sleep(EVERY);
                }
            });
        if spawned.is_err() {
            self.started = false;
        }
    }

    /// What Slurm last said of job `id`, in words; `None` before the first answer.
    pub fn describe(&self, id: &str) -> Option<String> {
        let s = self.shared.lock().ok()?;
        match s.answer.as_ref()? {
            Ok(states) => Some(states.get(id).map_or_else(
                || format!("slurm {id}: not in squeue"),
                |st| st.describe(id),
            )),
            Err(e) => Some(format!("slurm {id}: {e}")),
        }
    }

    /// Whether Slurm last said job `id` still waits or runs.
    pub fn active(&self, id: &str) -> Option<bool> {
        let s = self.shared.lock().ok()?;
        match s.answer.as_ref()? {
            Ok(states) => Some(states.get(id).is_some_and(|st| slurm::is_active(&st.state))),
            Err(_) => None,
        }
    }
}
