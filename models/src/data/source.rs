//! Training data from files: tables (CSV, TSV, JSON Lines, Parquet), safetensors, IDX pairs
//! and image folders, read through descent-io.
//!
//! Tables: every column but the target is a numeric feature. The target is a class label when
//! it is not numeric, or when it holds only integers with at most [`MAX_INTEGER_CLASSES`]
//! distinct values; otherwise it is a regression target.

use super::{Dataset, Targets};
use descent_io::data::{self as io, Cell, Dataset as Table};
use std::collections::BTreeMap;
use std::path::Path;

pub const MAX_INTEGER_CLASSES: usize = 256;

/// Loads `path` for training; `target` names the label column or tensor (tables and
/// safetensors; default: a column called label, class, target, y …).
pub fn load_source(path: &Path, target: Option<&str>) -> Result<Dataset, String> {
    let table = io::open(path).map_err(|e| e.to_string())?;
    let name = path
        .file_name()
        .map_or("data".into(), |n| n.to_string_lossy().into_owned());
    let d = match table {
        Table::Idx(_) => idx(path)?,
        Table::Images(f) => images(path, &f.files)?,
        Table::Tensors(_) => tensors(path, target)?,
        mut t => rows(path, &mut t, target)?,
    };
    let d = Dataset { name, ..d };
    d.check().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(d)
}

fn rows(path: &Path, t: &mut Table, target: Option<&str>) -> Result<Dataset, String> {
    let file = path.display();
    let columns: Vec<String> = t.columns().iter().map(|c| c.name.clone()).collect();
    let ti = t.label_column(target).ok_or_else(|| match target {
        Some(name) => format!(
            "{file}: no column named {name:?}; the columns are {}",
            columns.join(", ")
        ),
        None => format!(
            "{file}: set data.target to the column to predict; the columns are {}",
            columns.join(", ")
        ),
    })?;
    let mut inputs = Vec::new();
    let mut raw_targets = Vec::new();
    let mut problem = None;
    let mut row = 0u64;
    t.for_each_row(0, u64::MAX, &mut |cells: Vec<Cell>| {
        row += 1;
        for (i, c) in cells.iter().enumerate() {
            if i == ti {
                raw_targets.push(c.text().trim().to_string());
                continue;
            }
            // A column typed as text from its first rows may still hold numbers here.
            let v = c.as_f64().or_else(|| match c {
                Cell::Text(t) => t.trim().parse().ok(),
                _ => None,
            });
            match v {
                Some(v) => inputs.push(v as f32),
                None => {
                    problem = Some(format!(
                        "{file}: data row {row}: column {:?} holds {:?}, which is not a number",
                        columns[i],
                        c.text()
                    ));
                    return false;
                }
            }
        }
        true
    })
    .map_err(|e| e.to_string())?;
    if let Some(p) = problem {
        return Err(p);
    }
    if raw_targets.is_empty() {
        return Err(format!("{file}: no data rows"));
    }
    let feature_names: Vec<String> = columns
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != ti)
        .map(|(_, h)| h.clone())
        .collect();
    Ok(Dataset {
        name: String::new(),
        inputs,
        input_shape: vec![feature_names.len()],
        targets: targets(&raw_targets),
        feature_names,
    })
}

/// An IDX images file and its labels file; u8 pixels are scaled to [0, 1].
fn idx(path: &Path) -> Result<Dataset, String> {
    let images = io::read_idx(path).map_err(|e| e.to_string())?;
    let labels_path = io::labels_for(path).ok_or_else(|| {
        format!(
            "{}: no labels file beside it (expected the name with \"images\" → \"labels\" and idx3 → idx1)",
            path.display()
        )
    })?;
    let labels = io::read_idx(&labels_path).map_err(|e| e.to_string())?;
    if labels.len() != images.len() {
        return Err(format!(
            "{}: {} labels for {} images",
            labels_path.display(),
            labels.len(),
            images.len()
        ));
    }
    let scale = if images.kind == 0x08 {
        1.0 / 255.0
    } else {
        1.0
    };
    let n = images.len() * images.item();
    let inputs = (0..n).map(|i| (images.value(i) * scale) as f32).collect();
    let raw: Vec<String> = (0..labels.len())
        .map(|i| labels.value(i).to_string())
        .collect();
    let mut input_shape: Vec<usize> = images.dims[1..].to_vec();
    if input_shape.len() == 2 {
        input_shape.insert(0, 1);
    }
    let feature_names = (0..images.item()).map(|i| format!("x{i}")).collect();
    Ok(Dataset {
        name: String::new(),
        inputs,
        input_shape,
        targets: targets(&raw),
        feature_names,
    })
}

/// An image folder: every image must have the same size; grey when all are grey, else RGB.
fn images(dir: &Path, files: &[(String, std::path::PathBuf)]) -> Result<Dataset, String> {
    let mut decoded = Vec::with_capacity(files.len());
    for (class, p) in files {
        let img = image::open(p).map_err(|e| format!("{}: cannot decode: {e}", p.display()))?;
        decoded.push((class.clone(), p, img));
    }
    let (w, h) = (decoded[0].2.width(), decoded[0].2.height());
    let grey = decoded
        .iter()
        .all(|(_, _, i)| i.color().channel_count() <= 2);
    let c = if grey { 1 } else { 3 };
    let mut inputs = Vec::with_capacity(files.len() * (w * h) as usize * c);
    for (_, p, img) in &decoded {
        if (img.width(), img.height()) != (w, h) {
            return Err(format!(
                "{}: {}×{} pixels, but {} is {w}×{h}; an image folder trains when all images have one size",
                p.display(),
                img.width(),
                img.height(),
                decoded[0].1.display()
            ));
        }
        if grey {
            inputs.extend(img.to_luma8().pixels().map(|p| p.0[0] as f32 / 255.0));
        } else {
            // Channels first, as the CNN expects.
            let rgb = img.to_rgb8();
            for ch in 0..3 {
                inputs.extend(rgb.pixels().map(|p| p.0[ch] as f32 / 255.0));
            }
        }
    }
    let raw: Vec<String> = decoded.iter().map(|(c, ..)| c.clone()).collect();
    let _ = dir;
    Ok(Dataset {
        name: String::new(),
        inputs,
        input_shape: vec![c, h as usize, w as usize],
        targets: class_targets(&raw),
        feature_names: (0..c * (w * h) as usize).map(|i| format!("x{i}")).collect(),
    })
}

/// A safetensors file: the target tensor (1-D) and every other tensor with the same first
/// dimension, flattened per row, as features.
fn tensors(path: &Path, target: Option<&str>) -> Result<Dataset, String> {
    let h = descent_io::safetensors::read_header(path).map_err(|e| e.to_string())?;
    let t = h
        .tensors
        .iter()
        .find(|t| match target {
            Some(n) => t.name == n,
            None => io::LABEL_NAMES
                .iter()
                .any(|n| t.name.eq_ignore_ascii_case(n)),
        })
        .ok_or_else(|| {
            let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
            format!(
                "{}: set data.target to the label tensor; the tensors are {}",
                path.display(),
                names.join(", ")
            )
        })?;
    let n = *t
        .shape
        .first()
        .ok_or_else(|| format!("{}: tensor {:?} is a scalar", path.display(), t.name))?;
    let values = |t: &descent_io::tensor::TensorInfo| -> Result<Vec<f64>, String> {
        descent_io::stats::values(t)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "{}: tensor {:?} ({}) cannot be decoded",
                    path.display(),
                    t.name,
                    t.dtype.name()
                )
            })
    };
    let raw: Vec<String> = values(t)?.iter().map(|v| v.to_string()).collect();
    let features: Vec<_> = h
        .tensors
        .iter()
        .filter(|x| x.name != t.name && x.shape.first() == Some(&n))
        .collect();
    if features.is_empty() {
        return Err(format!(
            "{}: no feature tensors with first dimension {n}",
            path.display()
        ));
    }
    let per: Vec<usize> = features
        .iter()
        .map(|f| (f.numel() / n.max(1)) as usize)
        .collect();
    let cols: Vec<Vec<f64>> = features
        .iter()
        .map(|f| values(f))
        .collect::<Result<_, _>>()?;
    let width: usize = per.iter().sum();
    let mut inputs = Vec::with_capacity(n as usize * width);
    for r in 0..n as usize {
        for (c, k) in cols.iter().zip(&per) {
            inputs.extend(c[r * k..(r + 1) * k].iter().map(|&v| v as f32));
        }
    }
    let input_shape = if features.len() == 1 && features[0].shape.len() == 4 {
        features[0].shape[1..].iter().map(|&d| d as usize).collect()
    } else {
        vec![width]
    };
    Ok(Dataset {
        name: String::new(),
        inputs,
        input_shape,
        targets: targets(&raw),
        feature_names: (0..width).map(|i| format!("x{i}")).collect(),
    })
}

fn class_targets(raw: &[String]) -> Targets {
    let names: Vec<String> = raw
        .iter()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let index: BTreeMap<&String, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n, i as u32))
        .collect();
    Targets::Classes {
        labels: raw.iter().map(|v| index[v]).collect(),
        names,
    }
}

fn targets(raw: &[String]) -> Targets {
    let ints: Option<Vec<i64>> = raw.iter().map(|s| s.parse().ok()).collect();
    let floats: Option<Vec<f32>> = raw.iter().map(|s| s.parse().ok()).collect();
    match (ints, floats) {
        (Some(ints), _)
            if ints.iter().collect::<std::collections::BTreeSet<_>>().len()
                <= MAX_INTEGER_CLASSES =>
        {
            // Sort integer classes numerically, not as text.
            let mut distinct: Vec<i64> = ints.clone();
            distinct.sort();
            distinct.dedup();
            let labels = ints
                .iter()
                .map(|v| distinct.binary_search(v).expect("present") as u32)
                .collect();
            Targets::Classes {
                labels,
                names: distinct.iter().map(|v| v.to_string()).collect(),
            }
        }
        (_, Some(values)) => Targets::Values(values),
        _ => class_targets(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn string_and_integer_targets_are_classes_and_floats_are_values() {
        let (_d, p) = write("a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n");
        let d = load_source(&p, Some("label")).unwrap();
        assert_eq!(d.inputs, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            d.targets,
            Targets::Classes {
                labels: vec![0, 1, 0],
                names: vec!["cat".into(), "dog".into()]
            }
        );
        let (_d, p) = write("y,x\n10,1\n2,2\n");
        let Targets::Classes { names, labels } = load_source(&p, Some("y")).unwrap().targets else {
            panic!()
        };
        assert_eq!(
            (names, labels),
            (vec!["2".to_string(), "10".into()], vec![1, 0])
        );
        let (_d, p) = write("x,y\n1,0.5\n2,1.5\n");
        assert_eq!(
            load_source(&p, Some("y")).unwrap().targets,
            Targets::Values(vec![0.5, 1.5])
        );
    }

    #[test]
    fn bad_files_name_the_place_and_problem() {
        let (_d, p) = write("a,y\n1,0\nx,1\n");
        let e = load_source(&p, Some("y")).unwrap_err();
        assert!(
            e.ends_with("t.csv: data row 2: column \"a\" holds \"x\", which is not a number"),
            "{e}"
        );
        let (_d, p) = write("a,y\n1,0\n1,2,3\n");
        assert!(
            load_source(&p, Some("y"))
                .unwrap_err()
                .contains("t.csv: line 3: the row has 3 fields but the header has 2")
        );
        let (_d, p) = write("a,y\n1,0\n");
        assert!(
            load_source(&p, Some("label"))
                .unwrap_err()
                .contains("no column named \"label\"; the columns are a, y")
        );
        let (_d, p) = write("a,y\n");
        assert!(
            load_source(&p, Some("y"))
                .unwrap_err()
                .contains("no data rows")
        );
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn idx_pairs_train_as_images() {
        let dir = tempfile::tempdir().unwrap();
        let imgs = dir.path().join("train-images-idx3-ubyte");
        io::write_idx_u8(&imgs, &[2, 2, 2], &[0, 255, 0, 255, 255, 0, 255, 0]).unwrap();
        io::write_idx_u8(&dir.path().join("train-labels-idx1-ubyte"), &[2], &[3, 1]).unwrap();
        let d = load_source(&imgs, None).unwrap();
        assert_eq!(d.input_shape, [1, 2, 2]);
        assert_eq!(d.inputs, [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(
            d.targets,
            Targets::Classes {
                labels: vec![1, 0],
                names: vec!["1".into(), "3".into()]
            }
        );
        std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte")).unwrap();
        assert!(
            load_source(&imgs, None)
                .unwrap_err()
                .contains("no labels file")
        );
    }

    #[test]
    fn image_folders_train_channels_first_and_need_one_size() {
        let dir = tempfile::tempdir().unwrap();
        for (class, v) in [("a", 0u8), ("b", 255)] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            image::RgbImage::from_pixel(3, 2, image::Rgb([v, 0, 255]))
                .save(dir.path().join(class).join("0.png"))
                .unwrap();
        }
        let d = load_source(dir.path(), None).unwrap();
        assert_eq!(d.input_shape, [3, 2, 3]);
        assert_eq!(&d.inputs[..6], &[0.0; 6], "red plane of class a");
        assert_eq!(&d.inputs[12..18], &[1.0; 6], "blue plane");
        assert_eq!(d.targets.classes(), Some(2));
        image::RgbImage::from_pixel(4, 2, image::Rgb([1, 2, 3]))
            .save(dir.path().join("b/1.png"))
            .unwrap();
        let e = load_source(dir.path(), None).unwrap_err();
        assert!(
            e.contains("1.png: 4×2 pixels") && e.contains("one size"),
            "{e}"
        );
    }

    #[test]
    fn safetensors_features_and_label_tensor() {
        use descent_io::dtype::DType;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.safetensors");
        let x: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let y: Vec<u8> = [0i64, 1, 0].iter().flat_map(|v| v.to_le_bytes()).collect();
        descent_io::safetensors::write(
            &p,
            &[("x", DType::F32, &[3, 2], &x), ("y", DType::I64, &[3], &y)],
        )
        .unwrap();
        let d = load_source(&p, None).unwrap();
        assert_eq!(d.input_shape, [2]);
        assert_eq!(d.inputs, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(d.targets.classes(), Some(2));
    }

    #[test]
    fn json_lines_tables_train_with_a_conventional_label() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(
            &p,
            "{\"a\": 1, \"label\": \"x\"}\n{\"a\": 2.5, \"label\": \"y\"}\n",
        )
        .unwrap();
        let d = load_source(&p, None).unwrap();
        assert_eq!(d.inputs, [1.0, 2.5]);
        assert_eq!(d.feature_names, ["a"]);
    }
}
