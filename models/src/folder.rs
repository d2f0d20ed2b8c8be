//! Writing a whole folder so that readers see the old one or the new one, never half of one.

use std::path::Path;

/// Fills a temp folder beside `dir` with `fill`, fsyncs every file in it, and puts it in
/// place of `dir` (a previous `dir` is removed first). A failure leaves `dir` as it was.
pub fn replace_atomically(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let tmp = dir.with_extension("tmp");
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    fill(&tmp)?;
    sync_tree(&tmp)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))
}

fn sync_tree(dir: &Path) -> Result<(), String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fill_leaves_the_old_folder_and_a_good_one_replaces_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        replace_atomically(&dir, |t| {
            std::fs::create_dir_all(t.join("sub")).map_err(|e| e.to_string())?;
            std::fs::write(t.join("sub/a"), "1").map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("sub/a")).unwrap(), "1");
        let e = replace_atomically(&dir, |_| Err("disk full".into())).unwrap_err();
        assert_eq!(e, "disk full");
        assert_eq!(std::fs::read_to_string(dir.join("sub/a")).unwrap(), "1");
        replace_atomically(&dir, |t| {
            std::fs::write(t.join("b"), "2").map_err(|e| e.to_string())
        })
        .unwrap();
        assert!(!dir.join("sub").exists() && dir.join("b").is_file());
    }
}
