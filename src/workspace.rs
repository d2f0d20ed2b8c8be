//! A workspace on disk: `descent.toml`, `experiments/*.toml`, and what lives beside them.
//!
//! [`Workspace::rescan`] is the one way the app learns about config changes: it re-reads the
//! files, compares content hashes, and keeps each file's last good parse while an edit is
//! invalid. The watcher only decides *when* to rescan.

use crate::config::{self, ConfigError, Experiment, Settings};
use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

pub const EXPERIMENTS_DIR: &str = "experiments";
/// Where the app's own log file goes, inside the workspace.
pub const LOGS_DIR: &str = "logs";

/// One experiment file and what we know of it.
#[derive(Clone, Debug)]
pub struct ExperimentFile {
    /// Absolute path.
    pub path: PathBuf,
    /// The last version that parsed and validated; it stays in force while the file is invalid.
    pub good: Option<Experiment>,
    /// Problems with the file as it is now on disk (empty when it is valid).
    pub errors: Vec<ConfigError>,
    hash: u64,
}

impl ExperimentFile {
    /// File name without `.toml`, the fallback when the experiment has no valid name yet.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn name(&self) -> String {
        self.good
            .as_ref()
            .map_or_else(|| self.stem(), |e| e.name().to_string())
    }
}

#[derive(Clone, Debug)]
pub struct Workspace {
    pub root: PathBuf,
    /// Last good settings (defaults until `descent.toml` has parsed once).
    pub settings: Settings,
    pub settings_errors: Vec<ConfigError>,
    /// Keyed by absolute path, so the order is the file order in `experiments/`.
    pub experiments: BTreeMap<PathBuf, ExperimentFile>,
    /// Set while the workspace folder itself cannot be read (deleted, unmounted, …).
    pub unavailable: Option<String>,
    settings_hash: Option<u64>,
}

impl Workspace {
    /// Opens the workspace at `root`, which must be a folder holding `descent.toml`.
    pub fn open(root: &Path) -> anyhow::Result<Workspace> {
        let meta = std::fs::metadata(root)
            .map_err(|e| anyhow::anyhow!("workspace {}: {e}", root.display()))?;
        anyhow::ensure!(
            meta.is_dir(),
            "workspace {}: not a folder (a workspace is a folder holding {})",
            root.display(),
            Settings::FILE
        );
        std::fs::read_dir(root).map_err(|e| {
            anyhow::anyhow!("workspace {}: cannot list the folder: {e}", root.display())
        })?;
        anyhow::ensure!(
            root.join(Settings::FILE).is_file(),
            "{} is not a descent workspace: it has no {}. Run `descent` with no argument for the \
             bundled demo, or create {} (it may be empty) to make this folder one",
            root.display(),
            Settings::FILE,
            root.join(Settings::FILE).display()
        );
        let root = std::fs::canonicalize(root)?;
        let mut ws = Workspace {
            root,
            settings: Settings::default(),
            settings_errors: Vec::new(),
            experiments: BTreeMap::new(),
            unavailable: None,
            settings_hash: None,
        };
        ws.rescan();
        Ok(ws)
    }

    pub fn experiments_dir(&self) -> PathBuf {
        self.root.join(EXPERIMENTS_DIR)
    }

    /// Every current config problem, settings first, then experiments in file order.
    pub fn errors(&self) -> Vec<ConfigError> {
        let mut all = self.settings_errors.clone();
        all.extend(
            self.experiments
                .values()
                .flat_map(|f| f.errors.iter().cloned()),
        );
        all.extend(self.duplicate_names());
        all
    }

    /// The experiment file called `name` (its experiment name, or its file name without
    /// `.toml`).
    pub fn experiment(&self, name: &str) -> Option<&ExperimentFile> {
        self.experiments
            .values()
            .find(|f| f.name() == name || f.stem() == name)
    }

    /// Experiments that are in force (their last good version), in file order.
    pub fn valid_experiments(&self) -> impl Iterator<Item = &Experiment> {
        self.experiments.values().filter_map(|f| f.good.as_ref())
    }

    /// Two files giving the same name would write into the same runs folder.
    fn duplicate_names(&self) -> Vec<ConfigError> {
        let mut seen: BTreeMap<String, &Path> = BTreeMap::new();
        let mut errors = Vec::new();
        for f in self.experiments.values() {
            let Some(exp) = &f.good else { continue };
            if let Some(first) = seen.get(exp.name()) {
                errors.push(ConfigError::whole_file(
                    &f.path,
                    format!(
                        "experiment name `{}` is also used by {}; names must be unique",
                        exp.name(),
                        first.file_name().unwrap_or_default().to_string_lossy()
                    ),
                ));
            } else {
                seen.insert(exp.name().to_string(), &f.path);
            }
        }
        errors
    }

    /// Re-reads the configs; returns whether anything the app shows changed.
    pub fn rescan(&mut self) -> bool {
        if let Err(e) = std::fs::read_dir(&self.root) {
            let msg = format!(
                "workspace folder {} is unavailable: {e}",
                self.root.display()
            );
            let changed = self.unavailable.as_ref() != Some(&msg);
            if changed {
                tracing::warn!("{msg}; keeping the last good configs");
            }
            self.unavailable = Some(msg);
            return changed;
        }
        let mut changed = self.unavailable.take().is_some();
        if changed {
            tracing::info!("workspace folder {} is back", self.root.display());
        }
        changed |= self.rescan_settings();
        changed |= self.rescan_experiments();
        changed
    }

    fn rescan_settings(&mut self) -> bool {
        let path = self.root.join(Settings::FILE);
        let read = if path.exists() {
            config::read_text(&path)
        } else {
            Err(ConfigError::whole_file(
                &path,
                "missing; the workspace keeps its last good settings until it is back",
            ))
        };
        let hash = content_hash(&read);
        if self.settings_hash == Some(hash) {
            return false;
        }
        self.settings_hash = Some(hash);
        match read
            .map_err(|e| vec![e])
            .and_then(|t| Settings::parse(&path, &t))
        {
            Ok(s) => {
                self.settings = s;
                self.settings_errors.clear();
                tracing::info!("loaded {}", path.display());
            }
            Err(errors) => {
                for e in &errors {
                    tracing::warn!("{e}");
                }
                self.settings_errors = errors;
            }
        }
        true
    }

    fn rescan_experiments(&mut self) -> bool {
        let on_disk = list_toml_files(&self.experiments_dir());
        let before = self.experiments.len();
        self.experiments.retain(|path, _| {
            let keep = on_disk.contains(path);
            if !keep {
                tracing::info!("experiment file {} removed", path.display());
            }
            keep
        });
        let mut changed = self.experiments.len() != before;
        for path in on_disk {
            let read = config::read_text(&path);
            let hash = content_hash(&read);
            if self.experiments.get(&path).is_some_and(|f| f.hash == hash) {
                continue;
            }
            changed = true;
            let parsed = read
                .map_err(|e| vec![e])
                .and_then(|t| Experiment::parse(&path, &t));
            let entry = self
                .experiments
                .entry(path.clone())
                .or_insert_with(|| ExperimentFile {
                    path: path.clone(),
                    good: None,
                    errors: Vec::new(),
                    hash,
                });
            entry.hash = hash;
            match parsed {
                Ok(exp) => {
                    tracing::info!("loaded experiment `{}` from {}", exp.name(), path.display());
                    entry.good = Some(exp);
                    entry.errors.clear();
                }
                Err(errors) => {
                    for e in &errors {
                        tracing::warn!("{e}");
                    }
                    if entry.good.is_some() {
                        tracing::warn!(
                            "{}: keeping the last good version until the file is fixed",
                            path.display()
                        );
                    }
                    entry.errors = errors;
                }
            }
        }
        changed
    }
}

/// `experiments/*.toml`, skipping hidden files (editor swap and backup files).
fn list_toml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && !p.is_dir()
        })
        .collect();
    files.sort();
    files
}

/// Hash of what a read produced (text or the reason it failed), so an unchanged file — or a
/// file that still fails the same way — is not re-parsed or re-reported.
fn content_hash(read: &Result<String, ConfigError>) -> u64 {
    let mut h = DefaultHasher::new();
    match read {
        Ok(text) => (0u8, text).hash(&mut h),
        Err(e) => (1u8, &e.message, e.position).hash(&mut h),
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXP: &str = "kind = \"supervised\"\n[data]\nsource = \"builtin:digits\"\n\
                       [model]\narch = \"mlp\"\n[train]\nsteps = 10\n";

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(EXPERIMENTS_DIR)).unwrap();
        std::fs::write(dir.path().join(Settings::FILE), "threads = 2\n").unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        (dir, ws)
    }

    #[test]
    fn two_files_with_one_name_are_an_error() {
        let (_d, mut ws) = workspace();
        let e = ws.experiments_dir();
        std::fs::write(e.join("a.toml"), format!("name = \"same\"\n{EXP}")).unwrap();
        std::fs::write(e.join("b.toml"), format!("name = \"same\"\n{EXP}")).unwrap();
        assert!(ws.rescan());
        let errors = ws.errors();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .contains("b.toml: experiment name `same` is also used by")
        );
    }

    #[test]
    fn bad_settings_keep_the_last_good_ones() {
        let (_d, mut ws) = workspace();
        assert_eq!(ws.settings.threads, 2);
        std::fs::write(ws.root.join(Settings::FILE), "threads = \"many\"\n").unwrap();
        assert!(ws.rescan());
        assert_eq!(ws.settings.threads, 2);
        assert_eq!(ws.settings_errors.len(), 1);
        std::fs::remove_file(ws.root.join(Settings::FILE)).unwrap();
        assert!(ws.rescan());
        assert!(ws.errors()[0].message.starts_with("missing;"));
        assert!(!ws.rescan(), "an unchanged problem is not a change");
    }

    #[test]
    fn hidden_and_non_toml_files_are_not_experiments() {
        let (_d, mut ws) = workspace();
        let e = ws.experiments_dir();
        std::fs::write(e.join(".a.toml.swp"), "junk").unwrap();
        std::fs::write(e.join("notes.md"), "junk").unwrap();
        std::fs::write(e.join("a.toml~"), "junk").unwrap();
        ws.rescan();
        assert!(ws.experiments.is_empty());
    }
}
