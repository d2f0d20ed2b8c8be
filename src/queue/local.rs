//! This machine's queue: runs wait in `queue/queue.json` for a slot (cores or GPUs, per
//! `[queue]` in descent.toml) and start, in order, when one frees.
//!
//! Whoever changes the queue holds `queue.lock` (flock) while reading and rewriting it: the
//! TUI's `r`, `descent run --queue`, `descent sweep`, `descent queue move|cancel` and the
//! dispatcher. A run that is handed a slot is recorded with its process (pid and start
//! stamp); the slot is free again as soon as that process is gone, however it ended — so a
//! run killed with SIGKILL, or lost with the machine, holds nothing. Runs started outside the
//! queue (`descent run` in a terminal) count too: each live one on this host holds the cores
//! a run takes.
//!
//! The dispatcher (`descent queue serve`, one per workspace by `dispatcher.lock`) looks once
//! a second while runs wait, and exits when none do. The queue is files, so it outlives the
//! TUI and a reboot: the TUI, `descent queue` and every submission start a dispatcher again
//! when runs wait and none is running.

use super::slots::{self, Held, Machine, Slot, Wait};
use crate::atomic::write_atomically;
use crate::config::{Settings, SlotKind};
use crate::runs::process::{self, Stamp};
use crate::runs::{self, State, Status, spawn};
use crate::workspace::Workspace;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

const QUEUE: &str = "queue.json";
const QUEUE_LOCK: &str = "queue.lock";
const DISPATCHER_LOCK: &str = "dispatcher.lock";
const DISPATCHER_LOG: &str = "dispatcher.log";
/// How often the dispatcher looks for free slots.
const TICK: Duration = Duration::from_secs(1);

/// `queue.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// Run folders in the order they start.
    pub waiting: Vec<PathBuf>,
    /// Runs the queue started, with the slots they hold while their process lives.
    pub started: Vec<Started>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub run: PathBuf,
    /// The `descent run` process that supervises the run for its whole life.
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<Stamp>,
    pub slot: Slot,
    pub at: f64,
}

impl Started {
    fn alive(&self) -> bool {
        !matches!(
            process::check(self.pid, self.stamp.as_ref()),
            process::Verdict::Dead(_)
        )
    }
}

/// Holds an exclusive flock on `path` while it lives; `None` when another holds it and
/// `wait` is false.
struct Lock(#[allow(dead_code)] File);

fn lock(path: &Path, wait: bool) -> std::io::Result<Option<Lock>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let op = libc::LOCK_EX | if wait { 0 } else { libc::LOCK_NB };
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        return Ok(Some(Lock(file)));
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Reads `queue.json` under the lock, lets `f` change it, and writes it back if it changed.
pub fn with_queue<T>(root: &Path, f: impl FnOnce(&mut Queue) -> T) -> Result<T, String> {
    let dir = root.join(super::DIR);
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(&dir).map_err(io)?;
    let _held = lock(&dir.join(QUEUE_LOCK), true).map_err(io)?;
    let path = dir.join(QUEUE);
    let before = read(&path)?;
    let mut q = before.clone();
    let out = f(&mut q);
    if q != before {
        let json = serde_json::to_vec_pretty(&q).map_err(|e| e.to_string())?;
        write_atomically(&path, &json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(out)
}

/// The queue as it is on disk, without locking (for looking only).
pub fn read_queue(root: &Path) -> Result<Queue, String> {
    read(&root.join(super::DIR).join(QUEUE))
}

fn read(path: &Path) -> Result<Queue, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a queue file ({e}); move it away to start an empty queue",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Queue::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Adds prepared run folders at the end of the queue and starts what fits at once; returns
/// how many of them started. A dispatcher is started for the rest.
pub fn enqueue(ws: &Workspace, dirs: &[PathBuf]) -> Result<usize, String> {
    let settings = ws.settings.clone();
    let started = with_queue(&ws.root, |q| {
        q.waiting.extend(dirs.iter().cloned());
        let now = start_ready(&ws.root, &settings, q);
        now.iter().filter(|d| dirs.contains(d)).count()
    })?;
    ensure_dispatcher(&ws.root)?;
    Ok(started)
}

/// The slots held now: by runs the queue started whose process lives and whose status has
/// not ended (the others are dropped from `q`: a stopped run's process may take a moment to
/// exit, and holds nothing meanwhile), and by other live runs on this host.
fn held(root: &Path, settings: &Settings, q: &mut Queue, machine_cores: usize) -> Vec<Held> {
    q.started.retain(|s| {
        let ended =
            Status::read(&s.run).is_ok_and(|st| !st.state.is_live() && st.state != State::Queued);
        s.alive() && !ended
    });
    let mut held: Vec<Held> = q
        .started
        .iter()
        .map(|s| Held {
            run: super::run_name(&s.run),
            slot: s.slot.clone(),
        })
        .collect();
    let cores = slots::cores_per_run(&settings.queue, settings.threads, machine_cores);
    for r in runs::list_runs(&settings.runs_path(root)) {
        let here = r.status.as_ref().is_ok_and(|s| s.host == runs::this_host());
        if r.state.is_live() && here && !q.started.iter().any(|s| s.run == r.dir) {
            held.push(Held {
                run: format!("{}/{}", r.experiment, r.id),
                slot: Slot { cores, gpu: None },
            });
        }
    }
    held
}

fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts the waiting runs that fit, in order; writes why the others wait into their
/// status. Returns the folders started.
fn start_ready(root: &Path, settings: &Settings, q: &mut Queue) -> Vec<PathBuf> {
    let cores = machine_cores();
    let gpus = match settings.queue.slots {
        SlotKind::Gpus => crate::system::gpu_facts(),
        SlotKind::Cores => Ok(Vec::new()),
    };
    let machine = Machine { cores, gpus: &gpus };
    let mut held = held(root, settings, q, cores);
    let need = slots::cores_per_run(&settings.queue, settings.threads, cores);
    let mut started = Vec::new();
    let mut blocked: Option<String> = None;
    let mut position = 0;
    let waiting = std::mem::take(&mut q.waiting);
    for dir in waiting {
        // A run started by other means, cancelled or deleted no longer waits.
        let Ok(status) = Status::read(&dir) else {
            continue;
        };
        if status.state != State::Queued {
            continue;
        }
        position += 1;
        let place = match &blocked {
            Some(ahead) => Err(Wait::Busy(ahead.clone())),
            None => slots::place(&settings.queue, &machine, &held, need),
        };
        let message = match place {
            Ok(slot) => match start(root, &dir, &slot) {
                Ok(s) => {
                    held.push(Held {
                        run: super::run_name(&dir),
                        slot,
                    });
                    q.started.push(s);
                    started.push(dir);
                    continue;
                }
                Err(e) => format!("the queue could not start it: {e}"),
            },
            Err(Wait::Busy(why)) => {
                // Runs start in order: the rest wait behind the first that cannot start.
                blocked.get_or_insert_with(|| why.clone());
                format!("queued, {position} in line: {why}")
            }
            Err(Wait::Never(why)) => format!("queued, but it cannot start: {why}"),
        };
        set_message(&dir, status, message);
        q.waiting.push(dir);
    }
    started
}

/// Records why a run waits in its status, when that changed.
fn set_message(dir: &Path, mut status: Status, message: String) {
    if status.message.as_deref() == Some(message.as_str()) {
        return;
    }
    status.message = Some(message);
    if let Err(e) = status.write(dir) {
        tracing::warn!("{}: {e}", dir.display());
    }
}

/// Starts a queued run in the slot it was handed.
fn start(root: &Path, dir: &Path, slot: &Slot) -> std::io::Result<Started> {
    // Said before the run's own process writes its status (after would race it).
    if let Ok(status) = Status::read(dir) {
        let what = match slot.gpu {
            Some(g) => format!("starting on GPU {g}, a slot the queue handed it"),
            None => format!("starting on {} cores the queue handed it", slot.cores),
        };
        set_message(dir, status, what);
    }
    let args = vec![
        "run".to_string(),
        "--resume".into(),
        dir.display().to_string(),
        "--workspace".into(),
        root.display().to_string(),
    ];
    let env: Vec<(&str, String)> = slot
        .gpu
        .map(|g| ("CUDA_VISIBLE_DEVICES", g.to_string()))
        .into_iter()
        .collect();
    let pid = spawn::spawn_session_with(&args, root, &dir.join(runs::STDOUT), &env)?;
    Ok(Started {
        run: dir.to_path_buf(),
        pid,
        stamp: process::stamp_of(pid),
        slot: slot.clone(),
        at: runs::now(),
    })
}

/// Starts a dispatcher when runs wait and none is running.
pub fn ensure_dispatcher(root: &Path) -> Result<(), String> {
    let q = read_queue(root)?;
    if q.waiting.is_empty() {
        return Ok(());
    }
    let dir = root.join(super::DIR);
    let free = lock(&dir.join(DISPATCHER_LOCK), false)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .is_some();
    // The lock is let go here; if two start, the second finds it held and ends.
    if free {
        let args = vec![
            "queue".to_string(),
            "serve".into(),
            "--workspace".into(),
            root.display().to_string(),
        ];
        spawn::spawn_session(&args, root, &dir.join(DISPATCHER_LOG))
            .map_err(|e| format!("cannot start the queue's dispatcher: {e}"))?;
    }
    Ok(())
}

/// Whether a dispatcher holds the workspace's queue now.
pub fn dispatcher_running(root: &Path) -> bool {
    let path = root.join(super::DIR).join(DISPATCHER_LOCK);
    path.exists() && matches!(lock(&path, false), Ok(None))
}

/// `descent queue serve`: starts waiting runs as slots free until none wait. Returns at
/// once when another dispatcher has the queue.
pub fn serve(root: &Path) -> Result<(), String> {
    let dir = root.join(super::DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let Some(_only) =
        lock(&dir.join(DISPATCHER_LOCK), false).map_err(|e| format!("{}: {e}", dir.display()))?
    else {
        return Ok(());
    };
    println!(
        "dispatcher for {} (pid {})",
        root.display(),
        std::process::id()
    );
    loop {
        // descent.toml is read each time, so a change of [queue] applies without a restart.
        let settings = settings_of(root)?;
        let (started, waiting) = with_queue(root, |q| {
            let s = start_ready(root, &settings, q);
            (s, q.waiting.len())
        })?;
        for d in started {
            println!("started {}", super::run_name(&d));
        }
        if waiting == 0 {
            println!("no run waits; the dispatcher ends");
            return Ok(());
        }
        std::thread::sleep(TICK);
    }
}

fn settings_of(root: &Path) -> Result<Settings, String> {
    let path = root.join(Settings::FILE);
    if !path.is_file() {
        return Ok(Settings::default());
    }
    let text = crate::config::read_text(&path).map_err(|e| e.to_string())?;
    Settings::parse(&path, &text).map_err(|e| {
        e.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Moves a waiting run to `position` (from 1; past the end means last).
pub fn move_to(root: &Path, dir: &Path, position: usize) -> Result<usize, String> {
    with_queue(root, |q| {
        let i = q
            .waiting
            .iter()
            .position(|d| d == dir)
            .ok_or_else(|| format!("{} is not waiting in the queue", super::run_name(dir)))?;
        let d = q.waiting.remove(i);
        let at = position.saturating_sub(1).min(q.waiting.len());
        q.waiting.insert(at, d);
        Ok(at + 1)
    })?
}

/// Takes a waiting run out of the queue and marks it cancelled; false when it was not
/// waiting here.
pub fn cancel(root: &Path, dir: &Path) -> Result<bool, String> {
    let was = with_queue(root, |q| {
        let before = q.waiting.len();
        q.waiting.retain(|d| d != dir);
        q.waiting.len() != before
    })?;
    if was {
        super::mark_cancelled(dir, "cancelled while queued; R starts it after all")?;
    }
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(run: &str, pid: u32, stamp: Option<Stamp>) -> Started {
        Started {
            run: run.into(),
            pid,
            stamp,
            slot: Slot {
                cores: 1,
                gpu: None,
            },
            at: 0.0,
        }
    }

    #[test]
    fn a_run_whose_process_died_holds_no_slot() {
        let root = tempfile::tempdir().unwrap();
        let settings = Settings {
            threads: 1,
            ..Settings::default()
        };
        // A child that has exited (and been reaped) is gone; this process lives.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let mut q = Queue {
            waiting: Vec::new(),
            started: vec![
                started("/w/runs/e/alive", me, process::stamp_of(me)),
                started("/w/runs/e/dead", dead, None),
            ],
        };
        let held = held(root.path(), &settings, &mut q, 2);
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].run, "e/alive");
        assert_eq!(q.started.len(), 1, "the dead run's claim is dropped");
        // Our pid, but recorded with another start: the pid was reused by another process.
        let mut reused = process::stamp_of(me);
        if let Some(s) = reused.as_mut() {
            s.start_ticks += 1;
            let mut q = Queue {
                waiting: Vec::new(),
                started: vec![started("/w/runs/e/reused", me, reused.clone())],
            };
            assert!(held_by(root.path(), &settings, &mut q).is_empty());
        }
    }

    fn held_by(root: &Path, settings: &Settings, q: &mut Queue) -> Vec<Held> {
        held(root, settings, q, 2)
    }

    #[test]
    fn the_queue_file_survives_and_a_corrupt_one_is_named() {
        let root = tempfile::tempdir().unwrap();
        with_queue(root.path(), |q| q.waiting.push("/w/runs/e/1".into())).unwrap();
        with_queue(root.path(), |q| q.waiting.push("/w/runs/e/2".into())).unwrap();
        let q = read_queue(root.path()).unwrap();
        assert_eq!(q.waiting.len(), 2);
        assert_eq!(
            move_to(root.path(), Path::new("/w/runs/e/2"), 1).unwrap(),
            1
        );
        assert_eq!(
            read_queue(root.path()).unwrap().waiting[0],
            Path::new("/w/runs/e/2")
        );
        assert!(move_to(root.path(), Path::new("/w/runs/e/9"), 1).is_err());
        let path = root.path().join("queue/queue.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = read_queue(root.path()).unwrap_err();
        assert!(
            e.contains("queue.json") && e.contains("move it away"),
            "{e}"
        );
        // Nothing is written over a queue that cannot be read.
        assert!(with_queue(root.path(), |q| q.waiting.clear()).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }
}
