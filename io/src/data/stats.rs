//! Per-column statistics and the class histogram, over a bounded scan of the rows.

use super::{Cell, DISTINCT_CAP, Dataset, ImageSample, RowCount, STATS_ROWS};
use crate::error::Result;
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
pub struct ColumnStats {
    pub name: String,
    pub dtype: String,
    pub nulls: u64,
    /// Numeric columns only.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// Distinct values, and whether counting stopped at the cap.
    pub distinct: usize,
    pub distinct_capped: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub format: String,
    pub rows: RowCount,
    /// Rows the statistics cover (all of them unless the file is larger than the scan).
    pub scanned: u64,
    pub columns: Vec<ColumnStats>,
    pub label: Option<String>,
    /// Classes by count, most frequent first (all of them, up to the distinct cap).
    pub classes: Vec<(String, u64)>,
    pub classes_capped: bool,
    pub images: Vec<ImageSample>,
    /// Things worth knowing: skipped files, a missing labels file …
    pub notes: Vec<String>,
}

#[derive(Default)]
struct Acc {
    nulls: u64,
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    distinct: HashMap<String, u64>,
    capped: bool,
}

impl Acc {
    fn add(&mut self, c: &Cell, cap: usize) {
        if *c == Cell::Null {
            self.nulls += 1;
            return;
        }
        if let Some(v) = c.as_f64().filter(|v| v.is_finite()) {
            if self.n == 0 {
                (self.min, self.max) = (v, v);
            }
            self.n += 1;
            let d = v - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (v - self.mean);
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        let key = c.text();
        if let Some(k) = self.distinct.get_mut(&key) {
            *k += 1;
        } else if self.distinct.len() < cap {
            self.distinct.insert(key, 1);
        } else {
            self.capped = true;
        }
    }
}

/// Scans up to [`STATS_ROWS`] rows; `label` names the class column (or a conventional name).
pub fn summarize(ds: &mut Dataset, label: Option<&str>, images: usize) -> Result<Summary> {
    let columns = ds.columns().to_vec();
    let label_col = ds.label_column(label);
    // Plain columns keep a smaller distinct set than the label column.
    let caps: Vec<usize> = (0..columns.len())
        .map(|i| {
            if Some(i) == label_col {
                DISTINCT_CAP
            } else {
                DISTINCT_CAP / 10
            }
        })
        .collect();
    let mut accs: Vec<Acc> = columns.iter().map(|_| Acc::default()).collect();
    let mut scanned = 0u64;
    ds.for_each_row(0, STATS_ROWS, &mut |row| {
        scanned += 1;
        for ((acc, c), cap) in accs.iter_mut().zip(&row).zip(&caps) {
            acc.add(c, *cap);
        }
        true
    })?;
    let (images, notes) = ds.images(images);
    let mut classes = Vec::new();
    let mut classes_capped = false;
    if let Some(i) = label_col {
        classes = accs[i]
            .distinct
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        classes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| natural(&a.0, &b.0)));
        classes_capped = accs[i].capped;
    }
    let numeric = |c: &str| {
        matches!(c, "int" | "float" | "bool")
            || c.starts_with('F')
            || c.starts_with('I')
            || c.starts_with('U')
    };
    let stats = columns
        .iter()
        .zip(accs)
        .map(|(c, a)| {
            let num = numeric(&c.dtype) && a.n > 0;
            ColumnStats {
                name: c.name.clone(),
                dtype: c.dtype.clone(),
                nulls: a.nulls,
                min: num.then_some(a.min),
                max: num.then_some(a.max),
                mean: num.then_some(a.mean),
                std: num.then(|| (a.m2 / a.n as f64).sqrt()),
                distinct: a.distinct.len(),
                distinct_capped: a.capped,
            }
        })
        .collect();
    Ok(Summary {
        format: ds.format().into(),
        rows: ds.rows(),
        scanned,
        columns: stats,
        label: label_col.map(|i| columns[i].name.clone()),
        classes,
        classes_capped,
        images,
        notes,
    })
}

/// "2" before "10" when both are numbers.
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}
