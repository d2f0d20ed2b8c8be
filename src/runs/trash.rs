//! Removing a run: its folder moves, whole, to `<runs>/.trash/<experiment>/<run-id>`, out of
//! every list but still on disk, so that a wrong key costs nothing (move it back to restore
//! it; `rm -rf <runs>/.trash` frees the space). A run that is live or waits in the queue is
//! refused: it would go on writing where nobody looks.

use super::{RunInfo, State};
use std::path::{Path, PathBuf};

/// The trash folder under the runs folder; list_runs passes over it (and every dot folder).
pub const TRASH: &str = ".trash";

/// Moves `run` into the trash; returns where it went.
pub fn trash(runs_dir: &Path, run: &RunInfo) -> Result<PathBuf, String> {
    let name = format!("{}/{}", run.experiment, run.id);
    match run.state {
        State::Queued => return Err(format!("{name} waits in the queue: cancel it first (s)")),
        s if s.is_live() => return Err(format!("{name} is {s}: stop it first (s)")),
        _ => {}
    }
    let parent = runs_dir.join(TRASH).join(&run.experiment);
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    // A run trashed before under the same id (another workspace's copy, say) is kept too.
    let mut to = parent.join(&run.id);
    for n in 2.. {
        if !to.exists() {
            break;
        }
        to = parent.join(format!("{}-trashed-{n}", run.id));
    }
    // One rename on one filesystem: the run is wholly here or wholly there.
    std::fs::rename(&run.dir, &to)
        .map_err(|e| format!("moving {} to {}: {e}", run.dir.display(), to.display()))?;
    Ok(to)
}

/// The bytes of the files under `dir`, for saying what a removal would free.
pub fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size_of(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::list_runs;

    fn run_in(runs: &Path, id: &str, state: &str) -> PathBuf {
        let dir = runs.join("mlp").join(id);
        std::fs::create_dir_all(dir.join("checkpoints/step-10")).unwrap();
        std::fs::write(
            dir.join("checkpoints/step-10/model.safetensors"),
            [0u8; 100],
        )
        .unwrap();
        std::fs::write(dir.join("config.toml"), "name = \"mlp\"\n").unwrap();
        let status = serde_json::json!({
            "experiment": "mlp", "run_id": id, "state": state, "step": 10, "total_steps": 10,
            "pid": 0, "host": "elsewhere", "device": "cpu", "started_at": 0.0, "heartbeat": 0.0,
        });
        std::fs::write(dir.join("status.json"), status.to_string()).unwrap();
        dir
    }

    #[test]
    fn a_finished_run_moves_whole_and_leaves_the_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path();
        let dir = run_in(runs, "20261203-101500", "finished");
        let bytes = size_of(&dir);
        assert!(bytes > 100, "{bytes}");
        let info = list_runs(runs).remove(0);
        let to = trash(runs, &info).unwrap();
        assert_eq!(to, runs.join(".trash/mlp/20261203-101500"));
        assert!(!dir.exists());
        assert_eq!(size_of(&to), bytes, "nothing lost on the way");
        assert!(list_runs(runs).is_empty(), "the trash is not listed");
        // The same id again does not overwrite the first.
        run_in(runs, "20261203-101500", "stopped");
        let again = trash(runs, &list_runs(runs).remove(0)).unwrap();
        assert_eq!(again, runs.join(".trash/mlp/20261203-101500-trashed-2"));
        assert!(to.join("checkpoints/step-10/model.safetensors").is_file());
    }

    #[test]
    fn a_queued_run_is_refused_and_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = run_in(tmp.path(), "20261203-101500", "queued");
        let info = list_runs(tmp.path()).remove(0);
        let err = trash(tmp.path(), &info).unwrap_err();
        assert!(err.contains("cancel it first"), "{err}");
        assert!(dir.join("status.json").is_file());
    }
}
