//! `control.jsonl`: commands for a run. Writers append; the run reads new lines each step,
//! applies them, records an event, and acknowledges the command's id in `status.json`.

use super::records::{append, read_from};
use super::{CONTROL, State, Status};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Command {
    Pause,
    Resume,
    Stop,
    Checkpoint,
    /// Sets the peak learning rate; the schedule's shape continues from there.
    Lr {
        value: f64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub id: u64,
    pub time: f64,
    #[serde(flatten)]
    pub command: Command,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Pause => f.write_str("pause"),
            Command::Resume => f.write_str("resume"),
            Command::Stop => f.write_str("stop"),
            Command::Checkpoint => f.write_str("checkpoint"),
            Command::Lr { value } => write!(f, "lr {value}"),
        }
    }
}

/// Sends `command` to the run in `run_dir`; returns the command's id. Refuses runs that are
/// no longer running, so a command cannot sit unread forever.
pub fn send(run_dir: &Path, command: Command) -> Result<u64, String> {
    let status = Status::read(run_dir)?;
    let state = status.effective_state();
    if !state.is_live() {
        return Err(format!(
            "run {}/{} is {state}; there is nothing to control (resume it with `descent run --resume {}`)",
            status.experiment,
            status.run_id,
            run_dir.display()
        ));
    }
    if let Command::Lr { value } = command
        && !(value.is_finite() && value > 0.0)
    {
        return Err(format!("learning rate {value} must be a positive number"));
    }
    // Ids grow with time, so they stay increasing across writers without reading the file.
    let id = (super::now() * 1e6) as u64;
    let line = Line {
        id,
        time: super::now(),
        command,
    };
    append(&run_dir.join(CONTROL), &line)
        .map_err(|e| format!("{}: {e}", run_dir.join(CONTROL).display()))?;
    Ok(id)
}

/// Waits until the run acknowledges command `id`, up to `timeout`; returns its status then.
pub fn wait_ack(run_dir: &Path, id: u64, timeout: Duration) -> Result<Status, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = Status::read(run_dir)?;
        if s.control_acked >= id {
            return Ok(s);
        }
        if !s.effective_state().is_live() || Instant::now() > deadline {
            return Err(format!(
                "the run did not acknowledge the command within {} s (state {})",
                timeout.as_secs(),
                s.effective_state()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The run's side: new commands since the last read.
pub struct Reader {
    path: PathBuf,
    offset: u64,
    /// Commands at or below this id were applied before (a resumed run skips them).
    pub last_id: u64,
}

impl Reader {
    pub fn new(run_dir: &Path, last_id: u64) -> Reader {
        Reader {
            path: run_dir.join(CONTROL),
            offset: 0,
            last_id,
        }
    }

    pub fn poll(&mut self) -> Vec<Line> {
        let Ok((lines, offset, _)) = read_from::<Line>(&self.path, self.offset) else {
            return Vec::new();
        };
        self.offset = offset;
        let fresh: Vec<Line> = lines.into_iter().filter(|l| l.id > self.last_id).collect();
        if let Some(l) = fresh.last() {
            self.last_id = l.id;
        }
        fresh
    }
}

/// The state a run is in after a command.
pub fn next_state(state: State, c: Command) -> State {
    match (state, c) {
        (_, Command::Pause) => State::Paused,
        (State::Paused, Command::Resume) => State::Running,
        (_, Command::Stop) => State::Stopped,
        (s, _) => s,
    }
}
