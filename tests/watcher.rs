//! The workspace watcher against a real folder: editors' atomic saves, bursts of edits,
//! invalid edits, deletes and re-creates, and the polling fallback.

use descent::watcher::{self, Update, WatchMode};
use descent::workspace::Workspace;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Generous: CI machines are slow. The watcher normally answers in a fraction of a second.
const PATIENCE: Duration = Duration::from_secs(10);

fn experiment(lr: f64) -> String {
    format!(
        "kind = \"supervised\"\n[data]\nsource = \"builtin:digits\"\n[model]\narch = \"mlp\"\n\
         [optim]\nlr = {lr}\n[train]\nsteps = 100\n"
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    updates: Receiver<Update>,
}

impl Fixture {
    fn new(poll: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("experiments")).unwrap();
        std::fs::write(root.join("descent.toml"), "").unwrap();
        std::fs::write(root.join("experiments/a.toml"), experiment(0.1)).unwrap();
        let ws = Workspace::open(&root).unwrap();
        let root = ws.root.clone();
        let (tx, updates) = mpsc::channel();
        watcher::spawn(ws, poll, move |u| tx.send(u).is_ok());
        let f = Fixture {
            _dir: dir,
            root,
            updates,
        };
        let first = f.wait_for("the initial state", |_| true);
        assert_eq!(
            first.mode,
            if poll {
                WatchMode::Poll
            } else {
                WatchMode::Notify
            }
        );
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The first update satisfying `pred`, failing the test after [`PATIENCE`].
    fn wait_for(&self, what: &str, pred: impl Fn(&Workspace) -> bool) -> Update {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.updates.recv_timeout(left) {
                Ok(u) if pred(&u.workspace) => return u,
                Ok(u) => last = Some(u),
                Err(_) => break,
            }
        }
        panic!("timed out waiting for {what}; last update: {last:#?}");
    }
}

fn lr(ws: &Workspace, file: &Path) -> Option<f64> {
    ws.experiments.get(file)?.good.as_ref().map(|e| e.optim.lr)
}

/// What vim and most editors do: write a temp file, then rename it over the original.
fn atomic_save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn an_atomic_rename_save_is_seen() {
    let f = Fixture::new(false);
    let a = f.path("experiments/a.toml");
    atomic_save(&a, &experiment(0.5));
    f.wait_for("lr 0.5", |ws| lr(ws, &a) == Some(0.5));
    // The watch survives the inode change: a second save is seen too.
    atomic_save(&a, &experiment(0.25));
    f.wait_for("lr 0.25", |ws| lr(ws, &a) == Some(0.25));
}

#[test]
fn a_burst_of_edits_ends_at_the_last_one() {
    let f = Fixture::new(false);
    let a = f.path("experiments/a.toml");
    for i in 1..=30 {
        std::fs::write(&a, experiment(i as f64 / 100.0)).unwrap();
    }
    let u = f.wait_for("the last edit", |ws| lr(ws, &a) == Some(0.3));
    assert!(u.workspace.errors().is_empty());
}

#[test]
fn an_invalid_edit_keeps_the_last_good_version_until_fixed() {
    let f = Fixture::new(false);
    let a = f.path("experiments/a.toml");
    std::fs::write(&a, experiment(0.1).replace("steps = 100", "steps = = 100")).unwrap();
    let u = f.wait_for("the error", |ws| !ws.errors().is_empty());
    let errors = u.workspace.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].position, Some((9, 9)));
    assert_eq!(
        lr(&u.workspace, &a),
        Some(0.1),
        "the last good version stays in force"
    );

    std::fs::write(&a, experiment(0.2)).unwrap();
    f.wait_for("the fix", |ws| {
        ws.errors().is_empty() && lr(ws, &a) == Some(0.2)
    });
}

#[test]
fn files_appear_disappear_and_come_back() {
    let f = Fixture::new(false);
    let b = f.path("experiments/b.toml");
    std::fs::write(&b, experiment(0.3)).unwrap();
    f.wait_for("b to appear", |ws| lr(ws, &b) == Some(0.3));
    std::fs::remove_file(&b).unwrap();
    f.wait_for("b to go", |ws| !ws.experiments.contains_key(&b));
    std::fs::write(&b, experiment(0.4)).unwrap();
    f.wait_for("b to come back", |ws| lr(ws, &b) == Some(0.4));
}

#[test]
fn rewriting_identical_content_reports_nothing() {
    let f = Fixture::new(false);
    let a = f.path("experiments/a.toml");
    std::fs::write(&a, experiment(0.1)).unwrap();
    // Let that write's events be handled on their own before the next change.
    std::thread::sleep(Duration::from_secs(1));
    // Then a real change: the first update after the identical write must be this one.
    std::fs::write(f.path("experiments/c.toml"), experiment(0.7)).unwrap();
    let c = f.path("experiments/c.toml");
    let u = f.updates.recv_timeout(PATIENCE).expect("an update");
    assert_eq!(
        lr(&u.workspace, &c),
        Some(0.7),
        "the identical rewrite made no update"
    );
}

#[test]
fn a_deleted_workspace_is_reported_and_its_return_is_watched() {
    let f = Fixture::new(false);
    std::fs::remove_dir_all(&f.root).unwrap();
    let u = f.wait_for("the workspace to go", |ws| ws.unavailable.is_some());
    assert_eq!(
        u.workspace.experiments.len(),
        1,
        "the last good configs are kept"
    );

    std::fs::create_dir_all(f.path("experiments")).unwrap();
    std::fs::write(f.path("descent.toml"), "").unwrap();
    std::fs::write(f.path("experiments/a.toml"), experiment(0.9)).unwrap();
    let a = f.path("experiments/a.toml");
    f.wait_for("the workspace to return", |ws| {
        ws.unavailable.is_none() && lr(ws, &a) == Some(0.9)
    });
    // The new folder is watched, not just polled by the heartbeat.
    atomic_save(&a, &experiment(0.8));
    f.wait_for("an edit in the new folder", |ws| lr(ws, &a) == Some(0.8));
}

#[test]
fn polling_sees_the_same_changes() {
    let f = Fixture::new(true);
    let a = f.path("experiments/a.toml");
    atomic_save(&a, &experiment(0.6));
    f.wait_for("lr 0.6", |ws| lr(ws, &a) == Some(0.6));
    std::fs::remove_file(&a).unwrap();
    f.wait_for("a to go", |ws| ws.experiments.is_empty());
}
