//! A safetensors file as a table: tensors sharing their first dimension are columns, one row per
//! index of that dimension (e.g. `x: [N, 64]`, `y: [N]`).

use super::{Cell, Column, RowCount, Table};
use crate::dtype::{DType, for_each_value};
use crate::error::{Error, Result};
use crate::stats::with_bytes;
use crate::tensor::TensorInfo;
use std::path::{Path, PathBuf};

pub struct TensorTable {
    pub path: PathBuf,
    pub columns: Vec<Column>,
    pub rows: u64,
    tensors: Vec<TensorInfo>,
}

impl TensorTable {
    pub fn open(path: &Path) -> Result<TensorTable> {
        let h = crate::safetensors::read_header(path)?;
        // The most common leading dimension decides the rows.
        let mut counts: Vec<(u64, usize)> = Vec::new();
        for t in h
            .tensors
            .iter()
            .filter(|t| !t.shape.is_empty() && t.dtype.decodable())
        {
            match counts.iter_mut().find(|(d, _)| *d == t.shape[0]) {
                Some(c) => c.1 += 1,
                None => counts.push((t.shape[0], 1)),
            }
        }
        let rows = counts
            .iter()
            .max_by_key(|(d, c)| (*c, *d))
            .map(|(d, _)| *d)
            .ok_or_else(|| {
                Error::new(path, "", "no tensors with a first dimension to use as rows")
            })?;
        let tensors: Vec<TensorInfo> = h
            .tensors
            .into_iter()
            .filter(|t| t.shape.first() == Some(&rows) && t.dtype.decodable())
            .collect();
        let columns = tensors
            .iter()
            .map(|t| {
                let rest: Vec<String> = t.shape[1..].iter().map(u64::to_string).collect();
                let dtype = if rest.is_empty() {
                    t.dtype.name().to_string()
                } else {
                    format!("{} [{}]", t.dtype.name(), rest.join("×"))
                };
                Column {
                    name: t.name.clone(),
                    dtype,
                }
            })
            .collect();
        Ok(TensorTable {
            path: path.into(),
            columns,
            rows,
            tensors,
        })
    }
}

impl Table for TensorTable {
    fn format(&self) -> &'static str {
        "safetensors"
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn rows(&self) -> RowCount {
        RowCount::Exact(self.rows)
    }

    fn for_each_row(
        &mut self,
        start: u64,
        limit: u64,
        f: &mut dyn FnMut(Vec<Cell>) -> bool,
    ) -> Result<()> {
        let end = (start + limit).min(self.rows);
        if start >= end {
            return Ok(());
        }
        // Decode the page's slice of every column, then hand out rows.
        let mut cols: Vec<Vec<Cell>> = Vec::new();
        for t in &self.tensors {
            let per = (t.numel() / self.rows.max(1)) as usize;
            let ebytes = t.bytes / t.numel().max(1);
            let is_int = t.dtype.name().starts_with('I')
                || t.dtype.name().starts_with('U')
                || t.dtype.name() == "BOOL";
            let cells = with_bytes(t, |b| {
                let slice = &b
                    [(start * per as u64 * ebytes) as usize..(end * per as u64 * ebytes) as usize];
                let mut vals = Vec::with_capacity(slice.len());
                for_each_value(t.dtype, slice, |v| vals.push(v));
                vals.chunks(per.max(1))
                    .map(|c| match c {
                        [v] if is_int => Cell::Int(*v as i64),
                        [v] if t.dtype == DType::F64 => Cell::Float(*v),
                        [v] => Cell::Narrow(*v, t.dtype),
                        _ => {
                            let head: Vec<String> =
                                c.iter().take(4).map(|v| format!("{v:.3}")).collect();
                            Cell::Text(format!(
                                "[{}{}] ({} values)",
                                head.join(", "),
                                if c.len() > 4 { ", …" } else { "" },
                                c.len()
                            ))
                        }
                    })
                    .collect::<Vec<_>>()
            })?;
            cols.push(cells);
        }
        for r in 0..(end - start) as usize {
            if !f(cols
                .iter()
                .map(|c| c.get(r).cloned().unwrap_or(Cell::Null))
                .collect())
            {
                break;
            }
        }
        Ok(())
    }
}
