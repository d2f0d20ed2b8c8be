//! The probes' files in a run folder: EL2N scores in each checkpoint (`el2n.json`), the
//! opposing-signal probes (`opposing.jsonl`), Hessian spectra (`hessian/step-N.json`); and
//! `data.subset`, which ranks an experiment's training rows by another run's scores.

use super::checkpoint;
use crate::config::probes::{SubsetBy, SubsetConfig};
use descent_models::probes::el2n::{self, Keep, Scores, Subset};
use descent_models::probes::opposing::Probe;
use descent_models::probes::{EL2N_FILE, OPPOSING_FILE, Spectrum};
use std::path::{Path, PathBuf};

/// Where `descent probe hessian` writes its spectra.
pub const HESSIAN_DIR: &str = "hessian";

/// The EL2N scores of the run's newest checkpoint that has them, with its step.
pub fn el2n_of_run(run_dir: &Path) -> Result<Option<(u64, Scores)>, String> {
    for (step, dir) in checkpoint::list(run_dir).into_iter().rev() {
        let path = dir.join(EL2N_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let scores: Scores =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(Some((step, scores)));
    }
    Ok(None)
}

/// The scores `name` stands for: every run of the experiment `name` that has scores (their
/// mean, as the paper averages over runs), or the one run `name` (an id or folder). Also the
/// runs used.
pub fn scores_for(runs_dir: &Path, name: &str) -> Result<(Vec<Option<f64>>, Vec<PathBuf>), String> {
    let of_experiment: Vec<PathBuf> = super::list_runs(runs_dir)
        .into_iter()
        .filter(|r| r.experiment == name)
        .map(|r| r.dir)
        .collect();
    let dirs = if of_experiment.is_empty() {
        vec![super::find_run(runs_dir, name).map_err(|_| {
            format!("{name:?} has no runs: train it first (an experiment's name, or a run id)")
        })?]
    } else {
        of_experiment
    };
    let mut found = Vec::new();
    let mut used = Vec::new();
    for d in dirs {
        if let Some((_, s)) = el2n_of_run(&d)? {
            found.push(s);
            used.push(d);
        }
    }
    if found.is_empty() {
        return Err(format!(
            "{name:?} has no run with EL2N scores yet (they are saved with each checkpoint of a \
             supervised classification run): train it first"
        ));
    }
    Ok((el2n::average(&found)?, used))
}

/// The subset `[data.subset]` asks for, with its scores read.
pub fn subset_for(runs_dir: &Path, s: &SubsetConfig, seed: u64) -> Result<Subset, String> {
    Ok(match s.by {
        SubsetBy::Random => Subset {
            keep: Keep::Random {
                fraction: s.keep,
                seed: s.seed.unwrap_or(seed),
            },
            scores: Vec::new(),
        },
        SubsetBy::El2n => {
            let name = s.scores.as_deref().unwrap_or_default();
            let (scores, _) =
                scores_for(runs_dir, name).map_err(|e| format!("data.subset.scores: {e}"))?;
            Subset {
                keep: Keep::Top {
                    fraction: s.keep,
                    offset: s.offset,
                },
                scores,
            }
        }
    })
}

/// Appends the opposing-signal probes logged after byte `offset` of the run's
/// `opposing.jsonl` to `probes` (a resumed run's re-logged steps replace the earlier ones);
/// returns the offset read up to.
pub fn read_opposing(run_dir: &Path, offset: u64, probes: &mut Vec<Probe>) -> u64 {
    let path = run_dir.join(OPPOSING_FILE);
    let Ok((lines, next, _)) = super::records::read_from::<OpposingLine>(&path, offset) else {
        return offset;
    };
    for l in lines {
        probes.retain(|p| p.step < l.probe.step);
        probes.push(l.probe);
    }
    next
}

#[derive(serde::Deserialize)]
struct OpposingLine {
    probe: Probe,
}

/// The file a spectrum at `step` is written to.
pub fn spectrum_path(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join(HESSIAN_DIR).join(format!("step-{step}.json"))
}

/// Writes a spectrum atomically.
pub fn write_spectrum(run_dir: &Path, s: &Spectrum) -> anyhow::Result<PathBuf> {
    let path = spectrum_path(run_dir, s.step);
    std::fs::create_dir_all(path.parent().expect("in a folder"))?;
    crate::atomic::write_atomically(&path, &serde_json::to_vec_pretty(s)?)?;
    Ok(path)
}

/// The run's spectra, by step; unreadable files are skipped with a reason.
pub fn spectra_of_run(run_dir: &Path) -> Vec<Result<Spectrum, String>> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(HESSIAN_DIR)) else {
        return Vec::new();
    };
    let mut paths: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name
                .strip_prefix("step-")?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((step, e.path()))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|(_, p)| {
            let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}
