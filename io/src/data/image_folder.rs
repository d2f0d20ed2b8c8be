//! Image folders: one subfolder per class holding PNG or JPEG files. Listing reads names only;
//! images are decoded when samples are asked for.

use super::{Cell, Column, ImageSample, RowCount, Table};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Thumbnails are at most this many pixels on a side.
const THUMB: u32 = 64;
/// Folders larger than this are listed up to here.
const MAX_FILES: usize = 2_000_000;

pub struct ImageFolder {
    pub path: PathBuf,
    pub columns: Vec<Column>,
    /// (class, file) pairs, sorted by class then name.
    pub files: Vec<(String, PathBuf)>,
    skipped: Vec<PathBuf>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

impl ImageFolder {
    pub fn open(dir: &Path) -> Result<ImageFolder> {
        let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        classes.sort();
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for class in &classes {
            let name = class.file_name().unwrap().to_string_lossy().into_owned();
            let mut entries: Vec<PathBuf> = std::fs::read_dir(class)
                .map_err(|e| Error::io(class, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            for p in entries {
                if files.len() >= MAX_FILES {
                    break;
                }
                if is_image(&p) {
                    files.push((name.clone(), p));
                } else {
                    skipped.push(p);
                }
            }
        }
        if files.is_empty() {
            let problem = if classes.is_empty() {
                "not an image folder: it has no subfolders (one per class) and descent does not \
                 read loose files as a dataset"
                    .to_string()
            } else {
                format!("no PNG or JPEG files in its {} subfolders", classes.len())
            };
            return Err(Error::new(dir, "", problem));
        }
        let columns = vec![
            Column {
                name: "file".into(),
                dtype: "text".into(),
            },
            Column {
                name: "class".into(),
                dtype: "text".into(),
            },
            Column {
                name: "bytes".into(),
                dtype: "int".into(),
            },
        ];
        Ok(ImageFolder {
            path: dir.into(),
            columns,
            files,
            skipped,
        })
    }
}

impl Table for ImageFolder {
    fn format(&self) -> &'static str {
        "image folder"
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn rows(&self) -> RowCount {
        RowCount::Exact(self.files.len() as u64)
    }

    fn for_each_row(
        &mut self,
        start: u64,
        limit: u64,
        f: &mut dyn FnMut(Vec<Cell>) -> bool,
    ) -> Result<()> {
        for (class, p) in self.files.iter().skip(start as usize).take(limit as usize) {
            let rel = p
                .strip_prefix(&self.path)
                .unwrap_or(p)
                .display()
                .to_string();
            let bytes = std::fs::metadata(p).map_or(Cell::Null, |m| Cell::Int(m.len() as i64));
            if !f(vec![Cell::Text(rel), Cell::Text(class.clone()), bytes]) {
                break;
            }
        }
        Ok(())
    }

    /// Decodes the first images of each class in turn; undecodable files become notes.
    fn images(&self, max: usize) -> (Vec<ImageSample>, Vec<String>) {
        let mut notes = Vec::new();
        if let Some(first) = self.skipped.first() {
            notes.push(format!(
                "{} non-image files skipped, e.g. {}",
                self.skipped.len(),
                first.strip_prefix(&self.path).unwrap_or(first).display()
            ));
        }
        let mut out = Vec::new();
        let mut classes: Vec<&str> = self.files.iter().map(|(c, _)| c.as_str()).collect();
        classes.dedup();
        // Round-robin over classes so every class shows when there is room.
        let per: Vec<Vec<&PathBuf>> = classes
            .iter()
            .map(|c| {
                self.files
                    .iter()
                    .filter(|(k, _)| k == c)
                    .map(|(_, p)| p)
                    .take(max)
                    .collect()
            })
            .collect();
        let mut round = 0;
        while out.len() < max && per.iter().any(|v| v.len() > round) {
            for (c, files) in classes.iter().zip(&per) {
                if out.len() >= max {
                    break;
                }
                if let Some(p) = files.get(round) {
                    match image::open(p) {
                        Ok(img) => {
                            let t = img.thumbnail(THUMB, THUMB).to_rgb8();
                            out.push(ImageSample {
                                label: c.to_string(),
                                width: t.width(),
                                height: t.height(),
                                rgb: t.into_raw(),
                            });
                        }
                        Err(e) => notes.push(format!("{}: cannot decode: {e}", p.display())),
                    }
                }
            }
            round += 1;
        }
        (out, notes)
    }
}
