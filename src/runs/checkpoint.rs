//! Checkpoints: `checkpoints/step-N/{model,optimizer}.safetensors` plus `state.json`, written
//! into a temp folder, fsynced and renamed into place, so a crash or a full disk leaves the
//! previous checkpoints intact. Only the newest `keep` are kept.

use super::CHECKPOINTS;
use descent_models::train::Engine;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `state.json`: what else a resumed run needs. The batch order is a function of (seed,
/// step), so no RNG state is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub step: u64,
    pub seed: u64,
    /// The peak learning rate in force (it may have been changed while running).
    pub peak_lr: f64,
    /// Steps the run is set to take (it may have been changed while running).
    pub total_steps: u64,
    /// Last control command applied, so a resumed run does not apply it again.
    pub control_acked: u64,
    pub time: f64,
    /// The run's evaluations so far (the latest and the best), so that a resumed run's
    /// status and a sweep ranked by the best evaluation carry on from them; absent in
    /// checkpoints written before these were kept.
    #[serde(default, flatten)]
    pub evals: super::Evals,
}

fn step_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step-{step}"))
}

fn fsync(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

pub fn write(
    trainer: &dyn Engine,
    run_dir: &Path,
    state: &CheckpointState,
    keep: usize,
) -> Result<PathBuf, String> {
    let root = run_dir.join(CHECKPOINTS);
    let tmp = root.join(format!(".tmp-step-{}", state.step));
    let final_dir = step_dir(&root, state.step);
    let result = (|| -> Result<(), String> {
        let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
        std::fs::create_dir_all(&root).map_err(io)?;
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(io)?;
        trainer
            .save(&tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        std::fs::write(tmp.join("state.json"), json).map_err(io)?;
        // Every file the engine wrote, not only the weights.
        for f in std::fs::read_dir(&tmp).map_err(io)? {
            fsync(&f.map_err(io)?.path()).map_err(io)?;
        }
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(io)?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(io)?;
        fsync(&root).map_err(io)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    prune(&root, keep);
    Ok(final_dir)
}

/// Complete checkpoints, oldest first.
pub fn list(run_dir: &Path) -> Vec<(u64, PathBuf)> {
    let root = run_dir.join(CHECKPOINTS);
    let Ok(rd) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join("state.json")
                .is_file()
                .then(|| (step, e.path()))
        })
        .collect();
    out.sort();
    out
}

pub fn read_state(dir: &Path) -> Result<CheckpointState, String> {
    let p = dir.join("state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

fn prune(root: &Path, keep: usize) {
    let all = list(root.parent().unwrap_or(root));
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, dir) in &all[..excess] {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            tracing::warn!("cannot remove old checkpoint {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint keeps the run's evaluations; one written before they were kept still
    /// reads, with none.
    #[test]
    fn state_json_carries_the_evaluations_and_older_ones_still_read() {
        let old = r#"{"step":170,"seed":1,"peak_lr":0.05,"total_steps":170,"control_acked":0,"time":1.0}"#;
        let state: CheckpointState = serde_json::from_str(old).unwrap();
        assert_eq!(state.evals, super::super::Evals::default());
        let mut with = state.clone();
        with.evals.record(Some(0.3), Some(0.9));
        with.evals.record(Some(0.4), Some(0.8));
        let text = serde_json::to_string(&with).unwrap();
        let back: CheckpointState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, with);
        assert_eq!(back.evals.best_eval_accuracy, Some(0.9));
    }
}
