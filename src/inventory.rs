//! What a workspace can look at besides its configs: local data files and the repositories in
//! the Hugging Face hub cache. Listing only — reading their contents is the panes' business.

use std::path::{Path, PathBuf};

/// Listing stops here so a huge folder cannot stall a rescan.
const MAX_ENTRIES: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// Bytes for a file; `None` for a folder.
    pub bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// Every run folder under the workspace's runs folder.
    pub runs: Vec<crate::runs::RunInfo>,
    pub data_dir: PathBuf,
    pub data_files: Vec<Entry>,
    pub hub_cache: Option<PathBuf>,
    /// `org/name` of each cached model repository.
    pub hub_models: Vec<String>,
    pub hub_datasets: Vec<String>,
    /// Complete checkpoints of every run, newest step first within each run.
    pub checkpoints: Vec<RunCheckpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCheckpoint {
    pub experiment: String,
    pub run_id: String,
    pub step: u64,
    pub dir: PathBuf,
}

impl Inventory {
    pub fn scan(runs_dir: &Path, data_dir: PathBuf, hub_cache: Option<PathBuf>) -> Inventory {
        let data_files = list_dir(&data_dir);
        let (hub_models, hub_datasets) = hub_cache
            .as_deref()
            .map(|c| (hub_repos(c, "models--"), hub_repos(c, "datasets--")))
            .unwrap_or_default();
        let runs = crate::runs::list_runs(runs_dir);
        let checkpoints = runs
            .iter()
            .flat_map(|r| {
                crate::runs::checkpoint::list(&r.dir)
                    .into_iter()
                    .rev()
                    .map(|(step, dir)| RunCheckpoint {
                        experiment: r.experiment.clone(),
                        run_id: r.id.clone(),
                        step,
                        dir,
                    })
            })
            .collect();
        Inventory {
            runs,
            data_dir,
            data_files,
            hub_cache,
            hub_models,
            hub_datasets,
            checkpoints,
        }
    }
}

fn list_dir(dir: &Path) -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = rd
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .take(MAX_ENTRIES)
        .map(|e| {
            let meta = e.metadata().ok();
            Entry {
                name: e.file_name().to_string_lossy().into_owned(),
                bytes: meta.filter(|m| m.is_file()).map(|m| m.len()),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Repositories in a `huggingface_hub` cache: folders named `models--org--name`.
fn hub_repos(cache: &Path, prefix: &str) -> Vec<String> {
    let mut repos: Vec<String> = list_dir(cache)
        .into_iter()
        .filter(|e| e.bytes.is_none())
        .filter_map(|e| {
            e.name
                .strip_prefix(prefix)
                .map(|r| r.replacen("--", "/", 1))
        })
        .collect();
    repos.sort();
    repos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_data_files_and_hub_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("images")).unwrap();
        std::fs::write(data.join("train.csv"), "a,b\n1,2\n").unwrap();
        std::fs::write(data.join(".hidden"), "x").unwrap();
        let hub = dir.path().join("hub");
        std::fs::create_dir_all(hub.join("models--org--tiny-model")).unwrap();
        std::fs::create_dir_all(hub.join("datasets--org--tiny-set")).unwrap();
        std::fs::write(hub.join("version.txt"), "1").unwrap();

        let inv = Inventory::scan(&dir.path().join("runs"), data, Some(hub));
        let names: Vec<_> = inv.data_files.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["images", "train.csv"]);
        assert_eq!(inv.data_files[1].bytes, Some(8));
        assert_eq!(inv.hub_models, ["org/tiny-model"]);
        assert_eq!(inv.hub_datasets, ["org/tiny-set"]);
    }

    #[test]
    fn missing_folders_list_nothing() {
        let inv = Inventory::scan(
            Path::new("/nonexistent/runs"),
            "/nonexistent/data".into(),
            Some("/nonexistent/hub".into()),
        );
        assert!(inv.data_files.is_empty() && inv.hub_models.is_empty());
    }
}
