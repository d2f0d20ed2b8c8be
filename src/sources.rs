//! Naming what to inspect: `builtin:NAME`, `hub:ORG/NAME[/FILE]` (resolved in the hub cache),
//! or a path. Shared by the CLI, the panes and training.

use anyhow::{Context, bail};
use descent_io::data::{self, Cell, Column, Dataset, ImageSample, MemoryTable};
use descent_io::dtype::DType;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The hub cache `huggingface_hub` uses: `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn default_hub_cache() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("HF_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(home).join("hub"));
    }
    dirs::home_dir().map(|h| h.join(".cache/huggingface/hub"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    pub fn prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }
}

/// The snapshot folder of a cached repository at `refs/main` (else its newest snapshot).
pub fn hub_snapshot(cache: &Path, repo: &str, kind: RepoKind) -> anyhow::Result<PathBuf> {
    let dir = cache.join(format!("{}--{}", kind.prefix(), repo.replace('/', "--")));
    if !dir.is_dir() {
        bail!(
            "{repo} is not in the hub cache {}; fetch it with `descent pull {repo}{}`",
            cache.display(),
            if kind == RepoKind::Dataset {
                " --type dataset"
            } else {
                ""
            }
        );
    }
    if let Ok(commit) = std::fs::read_to_string(dir.join("refs/main")) {
        let snap = dir.join("snapshots").join(commit.trim());
        if snap.is_dir() {
            return Ok(snap);
        }
    }
    let newest = std::fs::read_dir(dir.join("snapshots"))
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path());
    newest.with_context(|| format!("{}: no snapshots in the cached repository", dir.display()))
}

/// `hub:org/name/sub/file` → (repo, file inside it).
fn split_hub(spec: &str) -> (String, Option<String>) {
    let mut parts = spec.splitn(3, '/');
    let org = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    (format!("{org}/{name}"), parts.next().map(str::to_string))
}

/// A path for a `hub:` or plain source; builtins are handled by the callers.
pub fn resolve(spec: &str, kind: RepoKind, hub_cache: Option<&Path>) -> anyhow::Result<PathBuf> {
    let Some(hub) = spec.strip_prefix("hub:") else {
        return Ok(PathBuf::from(spec));
    };
    let (repo, file) = split_hub(hub);
    let cache =
        hub_cache.context("no hub cache folder (set HF_HOME or hub_cache in descent.toml)")?;
    let snap = hub_snapshot(cache, &repo, kind)?;
    Ok(match file {
        Some(f) => {
            descent_io::safety::check_relative(&f).map_err(anyhow::Error::msg)?;
            snap.join(f)
        }
        None if kind == RepoKind::Dataset => first_data_file(&snap).with_context(|| {
            format!(
                "{}: no dataset files (CSV, JSON Lines, Parquet …)",
                snap.display()
            )
        })?,
        None => snap,
    })
}

/// The first table file in a dataset repository (sorted), searching subfolders.
fn first_data_file(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "parquet" | "csv" | "tsv" | "jsonl" | "ndjson"))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Every file below `dir`, subfolders included (symlinks to files count as files, as in a
/// hub snapshot).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out
}

/// Opens a dataset source: builtin, hub or path.
pub fn open_dataset(spec: &str, hub_cache: Option<&Path>) -> anyhow::Result<Dataset> {
    if let Some(name) = spec.strip_prefix("builtin:") {
        return builtin_table(name);
    }
    let path = resolve(spec, RepoKind::Dataset, hub_cache)?;
    Ok(data::open(&path)?)
}

/// A built-in dataset as a table: its features, its label, and images when its inputs are
/// images (the 8×8 digits).
pub fn builtin_table(name: &str) -> anyhow::Result<Dataset> {
    if descent_models::lm::corpus::is_builtin(name) {
        return corpus_table(name);
    }
    let d = descent_models::data::load_builtin(name, &BTreeMap::new(), 0)
        .map_err(anyhow::Error::msg)?;
    let mut columns: Vec<Column> = d
        .feature_names
        .iter()
        .map(|n| Column {
            name: n.clone(),
            dtype: "float".into(),
        })
        .collect();
    let f = d.features();
    use descent_models::data::Targets;
    let label: Vec<Cell> = match &d.targets {
        Targets::Classes { labels, names } => {
            columns.push(Column {
                name: "label".into(),
                dtype: "text".into(),
            });
            labels
                .iter()
                .map(|&l| Cell::Text(names[l as usize].clone()))
                .collect()
        }
        Targets::Values(v) => {
            columns.push(Column {
                name: "target".into(),
                dtype: "float".into(),
            });
            v.iter()
                .map(|&x| Cell::Narrow(x as f64, DType::F32))
                .collect()
        }
    };
    let rows: Vec<Vec<Cell>> = (0..d.len())
        .map(|i| {
            let mut r: Vec<Cell> = d.inputs[i * f..(i + 1) * f]
                .iter()
                .map(|&v| Cell::Narrow(v as f64, DType::F32))
                .collect();
            r.push(label[i].clone());
            r
        })
        .collect();
    let side = (f as f64).sqrt() as usize;
    let is_image = d.input_shape.len() == 3 || (name == "digits" && side * side == f);
    let images = if is_image {
        let (lo, hi) = d
            .inputs
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
        (0..d.len().min(24))
            .map(|i| ImageSample {
                label: label[i].text(),
                width: side as u32,
                height: side as u32,
                rgb: d.inputs[i * f..(i + 1) * f]
                    .iter()
                    .flat_map(|v| [((v - lo) * scale) as u8; 3])
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let has_label = matches!(d.targets, Targets::Classes { .. });
    Ok(Dataset::Memory(MemoryTable {
        name: name.into(),
        columns,
        rows,
        label: has_label.then(|| "label".into()),
        images,
    }))
}

/// A generated text corpus as a table: prompt and completion (or text) columns, drawn with
/// its default parameters from seed 0, as an experiment with seed 0 gets it.
fn corpus_table(name: &str) -> anyhow::Result<Dataset> {
    let examples = descent_models::lm::corpus::builtin(name, &BTreeMap::new(), 0)
        .map_err(anyhow::Error::msg)?;
    let text = |n: &str| Column {
        name: n.into(),
        dtype: "text".into(),
    };
    Ok(Dataset::Memory(MemoryTable {
        name: name.into(),
        columns: vec![text("prompt"), text("completion")],
        rows: examples
            .into_iter()
            .map(|e| vec![e.prompt.map_or(Cell::Null, Cell::Text), Cell::Text(e.text)])
            .collect(),
        label: None,
        images: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_builtin_text_corpus_opens_as_a_table_of_pairs() {
        let Dataset::Memory(t) = open_dataset("builtin:arithmetic", None).unwrap() else {
            panic!("a memory table");
        };
        assert_eq!(t.columns.len(), 2);
        assert_eq!(t.rows.len(), 10_000);
        let (p, c) = (t.rows[0][0].text(), t.rows[0][1].text());
        let (a, b) = p.split_once('+').unwrap();
        assert_eq!(
            (a.parse::<u32>().unwrap() + b.parse::<u32>().unwrap()).to_string(),
            c
        );
    }

    #[test]
    fn hub_sources_resolve_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("datasets--org--set");
        std::fs::create_dir_all(repo.join("snapshots/abc/data")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc").unwrap();
        std::fs::write(repo.join("snapshots/abc/data/train.parquet"), "x").unwrap();
        let p = resolve("hub:org/set", RepoKind::Dataset, Some(dir.path())).unwrap();
        assert!(p.ends_with("snapshots/abc/data/train.parquet"));
        let p = resolve(
            "hub:org/set/data/x.csv",
            RepoKind::Dataset,
            Some(dir.path()),
        )
        .unwrap();
        assert!(p.ends_with("abc/data/x.csv"));
        assert!(resolve("hub:org/set/../../x", RepoKind::Dataset, Some(dir.path())).is_err());
        let e = resolve("hub:org/none", RepoKind::Model, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("descent pull org/none"), "{e}");
    }

    #[test]
    fn digits_come_with_images_and_labels() {
        let mut d = builtin_table("digits").unwrap();
        let s = descent_io::data::summarize(&mut d, None, 8).unwrap();
        assert_eq!(s.classes.len(), 10);
        assert_eq!(s.images.len(), 8);
        assert_eq!(s.images[0].width, 8);
    }
}
