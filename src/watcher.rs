//! Keeps a [`Workspace`] current and reports each change.
//!
//! notify (behind a debouncer) only says *when* to look; [`Workspace::rescan`] decides *what*
//! changed by content hash. The watch is on the workspace folder, recursively — never on single
//! files, because editors save by writing a temp file and renaming it over the old one. When the
//! watcher cannot start, or `--poll` asks for it, a timer drives the same rescan instead.

use crate::inventory::Inventory;
use crate::workspace::{LOGS_DIR, Workspace};
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How long the debouncer gathers events before waking us: short enough that an edit shows
/// well within a second, long enough to coalesce an editor's write-rename-chmod burst.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How often the debouncer's own thread checks its queue: the main cost of an idle watcher.
const DEBOUNCE_TICK: Duration = Duration::from_millis(75);
/// Polling interval when there is no notify watcher.
const POLL: Duration = Duration::from_millis(500);
/// Even with a watcher, look every few seconds: it catches what inotify cannot see (network
/// filesystems, a workspace folder deleted and re-created) and re-arms the watch.
const HEARTBEAT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMode {
    Notify,
    Poll,
}

impl std::fmt::Display for WatchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WatchMode::Notify => "watching",
            WatchMode::Poll => "polling",
        })
    }
}

/// The state of the workspace after a change.
#[derive(Clone, Debug)]
pub struct Update {
    pub workspace: Workspace,
    pub inventory: Inventory,
    pub mode: WatchMode,
}

type FsWatcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Watches `ws` on a background thread. `on_change` gets the current state at once and after
/// every change; the thread ends when `on_change` returns false.
pub fn spawn(
    mut ws: Workspace,
    force_poll: bool,
    mut on_change: impl FnMut(Update) -> bool + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("workspace-watcher".into())
        .spawn(move || {
            let (wake_tx, wake) = mpsc::channel::<()>();
            let arm = |root: &Path| -> Option<FsWatcher> {
                if force_poll {
                    return None;
                }
                match start_watcher(root, wake_tx.clone()) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::warn!(
                            "cannot watch {} ({e}); polling every {} ms instead",
                            root.display(),
                            POLL.as_millis()
                        );
                        None
                    }
                }
            };
            let mut watcher = arm(&ws.root);
            let mut inventory = scan_inventory(&ws);
            let mode =
                |w: &Option<FsWatcher>| w.as_ref().map_or(WatchMode::Poll, |_| WatchMode::Notify);
            let mut last_mode = mode(&watcher);
            tracing::info!("{} {} for config changes", last_mode, ws.root.display());
            if !on_change(Update {
                workspace: ws.clone(),
                inventory: inventory.clone(),
                mode: last_mode,
            }) {
                return;
            }
            loop {
                // A missing workspace is polled so its return is noticed soon.
                let wait = match (&watcher, &ws.unavailable) {
                    (Some(_), None) => HEARTBEAT,
                    _ => POLL,
                };
                match wake.recv_timeout(wait) {
                    Ok(()) => while wake.try_recv().is_ok() {},
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                let was_unavailable = ws.unavailable.is_some();
                let mut changed = ws.rescan();
                if was_unavailable && ws.unavailable.is_none() {
                    // The folder may be a new one at the same path; the old watch died with it.
                    watcher = arm(&ws.root);
                }
                let now = scan_inventory(&ws);
                changed |= now != inventory;
                inventory = now;
                changed |= mode(&watcher) != last_mode;
                last_mode = mode(&watcher);
                if changed
                    && !on_change(Update {
                        workspace: ws.clone(),
                        inventory: inventory.clone(),
                        mode: last_mode,
                    })
                {
                    return;
                }
            }
        })
        .expect("spawning the watcher thread")
}

fn scan_inventory(ws: &Workspace) -> Inventory {
    Inventory::scan(
        &ws.settings.runs_path(&ws.root),
        ws.settings.data_path(&ws.root),
        ws.settings.hub_cache_path(&ws.root),
    )
}

/// Files a run appends to on every step; the UI tails them itself, and `status.json` (which
/// changes with them) is what wakes the watcher.
fn is_run_chatter(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(
        name,
        "metrics.jsonl" | "events.jsonl" | "control.jsonl" | "stdout.log"
    ) || name.starts_with(".status.json.tmp")
        || p.components().any(|c| c.as_os_str() == "checkpoints")
}

fn start_watcher(root: &Path, wake: mpsc::Sender<()>) -> notify::Result<FsWatcher> {
    let logs: PathBuf = root.join(LOGS_DIR);
    let mut debouncer = new_debouncer(
        DEBOUNCE,
        Some(DEBOUNCE_TICK),
        move |res: DebounceEventResult| {
            let relevant = match &res {
                // Reads are not changes, and our own rescans read every config: waking for them
                // would loop. Our log file is written on every change; waking for it is pointless.
                Ok(events) => events.iter().any(|e| {
                    !matches!(e.kind, notify::EventKind::Access(_))
                        && e.paths
                            .iter()
                            .any(|p| !p.starts_with(&logs) && !is_run_chatter(p))
                }),
                Err(_) => true,
            };
            if relevant {
                let _ = wake.send(());
            }
        },
    )?;
    debouncer.watch(root, RecursiveMode::Recursive)?;
    Ok(debouncer)
}
