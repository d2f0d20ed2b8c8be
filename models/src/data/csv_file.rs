//! Tables from CSV files: numeric feature columns and one named target column.
//!
//! The target is a class label when it is not numeric, or when it holds only integers with at
//! most [`MAX_INTEGER_CLASSES`] distinct values; otherwise it is a regression target.

use super::{Dataset, Targets};
use std::collections::BTreeMap;
use std::path::Path;

pub const MAX_INTEGER_CLASSES: usize = 256;

pub fn load_csv(path: &Path, target: &str) -> Result<Dataset, String> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| format!("{file}: {e}"))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{file}: cannot read the header: {e}"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let t = headers.iter().position(|h| h == target).ok_or_else(|| {
        format!(
            "{file}: no column named {target:?}; the columns are {}",
            headers.join(", ")
        )
    })?;
    let feature_names: Vec<String> = headers
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != t)
        .map(|(_, h)| h.clone())
        .collect();
    let mut inputs = Vec::new();
    let mut raw_targets = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format!("{file}: {e}"))?;
        let line = record.position().map_or(0, |p| p.line());
        for (i, field) in record.iter().enumerate() {
            if i == t {
                raw_targets.push(field.trim().to_string());
                continue;
            }
            let v: f32 = field.trim().parse().map_err(|_| {
                format!(
                    "{file}:{line}: column {:?} holds {field:?}, which is not a number",
                    headers[i]
                )
            })?;
            inputs.push(v);
        }
    }
    if raw_targets.is_empty() {
        return Err(format!("{file}: no data rows"));
    }
    let d = Dataset {
        name: path
            .file_name()
            .map_or("csv".into(), |n| n.to_string_lossy().into()),
        inputs,
        input_shape: vec![feature_names.len()],
        targets: targets(&raw_targets),
        feature_names,
    };
    d.check().map_err(|e| format!("{file}: {e}"))?;
    Ok(d)
}

fn targets(raw: &[String]) -> Targets {
    let ints: Option<Vec<i64>> = raw.iter().map(|s| s.parse().ok()).collect();
    let floats: Option<Vec<f32>> = raw.iter().map(|s| s.parse().ok()).collect();
    let class_values = |values: Vec<String>| {
        let names: Vec<String> = values
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
        let labels = values.iter().map(|v| index[v]).collect();
        Targets::Classes { labels, names }
    };
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
        _ => class_values(raw.to_vec()),
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
        let d = load_csv(&p, "label").unwrap();
        assert_eq!(d.inputs, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            d.targets,
            Targets::Classes {
                labels: vec![0, 1, 0],
                names: vec!["cat".into(), "dog".into()]
            }
        );
        let (_d, p) = write("y,x\n10,1\n2,2\n");
        let Targets::Classes { names, labels } = load_csv(&p, "y").unwrap().targets else {
            panic!()
        };
        assert_eq!(
            (names, labels),
            (vec!["2".to_string(), "10".into()], vec![1, 0])
        );
        let (_d, p) = write("x,y\n1,0.5\n2,1.5\n");
        assert_eq!(
            load_csv(&p, "y").unwrap().targets,
            Targets::Values(vec![0.5, 1.5])
        );
    }

    #[test]
    fn bad_files_name_the_place_and_problem() {
        let (_d, p) = write("a,y\n1,0\nx,1\n");
        let e = load_csv(&p, "y").unwrap_err();
        assert!(
            e.ends_with("t.csv:3: column \"a\" holds \"x\", which is not a number"),
            "{e}"
        );
        let (_d, p) = write("a,y\n1,0\n1,2,3\n");
        assert!(
            load_csv(&p, "y")
                .unwrap_err()
                .contains("found record with 3 fields")
        );
        let (_d, p) = write("a,y\n1,0\n");
        assert!(
            load_csv(&p, "label")
                .unwrap_err()
                .contains("no column named \"label\"; the columns are a, y")
        );
        let (_d, p) = write("a,y\n");
        assert!(load_csv(&p, "y").unwrap_err().contains("no data rows"));
    }
}
