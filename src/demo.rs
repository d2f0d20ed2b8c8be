//! Which workspace to open, and the bundled demo workspace embedded in the binary.

use crate::atomic::write_atomically;
use crate::config::Settings;
use crate::workspace::{EXPERIMENTS_DIR, LOGS_DIR};
use anyhow::Context;
use include_dir::{Dir, DirEntry, include_dir};
use std::path::{Path, PathBuf};

static DEMO: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/workspaces/demo");

/// The workspace to open: the one given, else the one holding the current folder, else the
/// bundled demo.
pub fn resolve_workspace(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    if let Some(ws) = cwd.ancestors().find(|d| d.join(Settings::FILE).is_file()) {
        return Ok(ws.to_path_buf());
    }
    let dir = dirs::data_dir()
        .context("no data directory for the demo workspace (is $HOME set?)")?
        .join("descent")
        .join("demo");
    unpack_demo(&dir)?;
    Ok(dir)
}

/// Writes the bundled demo into `dir`, adding only files that are missing so the user's edits
/// survive; run and log folders are never part of the bundle.
pub fn unpack_demo(dir: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    collect(&DEMO, &mut files);
    for f in files {
        let rel = f.path();
        if rel.starts_with("runs") || rel.starts_with(LOGS_DIR) {
            continue;
        }
        let target = dir.join(rel);
        if target.exists() {
            continue;
        }
        let parent = target.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        write_atomically(&target, f.contents())
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    std::fs::create_dir_all(dir.join(EXPERIMENTS_DIR))?;
    Ok(())
}

fn collect<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => collect(d, out),
            DirEntry::File(f) => out.push(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspace;

    #[test]
    fn the_demo_unpacks_into_a_valid_workspace_and_keeps_user_edits() {
        let dir = tempfile::tempdir().unwrap();
        let ws_dir = dir.path().join("demo");
        unpack_demo(&ws_dir).unwrap();
        let ws = Workspace::open(&ws_dir).unwrap();
        assert!(ws.errors().is_empty(), "{:?}", ws.errors());
        assert!(ws.experiments.len() >= 5);

        let edited = ws_dir.join("descent.toml");
        std::fs::write(&edited, "threads = 1\n").unwrap();
        unpack_demo(&ws_dir).unwrap();
        assert_eq!(std::fs::read_to_string(&edited).unwrap(), "threads = 1\n");
    }
}
