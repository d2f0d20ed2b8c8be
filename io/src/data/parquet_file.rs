//! Parquet through arrow-rs: the footer gives the schema and row count; a page reads only the
//! row groups it overlaps.

use super::{Cell, Column, RowCount, Table};
use crate::dtype::DType;
use crate::error::{Error, Result};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};

pub struct ParquetTable {
    pub path: PathBuf,
    pub columns: Vec<Column>,
    pub rows: u64,
    /// Rows in each row group, to find the groups a page overlaps.
    groups: Vec<u64>,
}

impl ParquetTable {
    pub fn open(path: &Path) -> Result<ParquetTable> {
        let b = builder(path)?;
        let meta = b.metadata();
        let groups: Vec<u64> = meta
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as u64)
            .collect();
        let columns = b
            .schema()
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                dtype: type_name(f.data_type()),
            })
            .collect();
        Ok(ParquetTable {
            path: path.into(),
            columns,
            rows: meta.file_metadata().num_rows().max(0) as u64,
            groups,
        })
    }
}

impl Table for ParquetTable {
    fn format(&self) -> &'static str {
        "Parquet"
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
        let (mut first, mut before) = (0, 0u64);
        while first < self.groups.len() && before + self.groups[first] <= start {
            before += self.groups[first];
            first += 1;
        }
        if first == self.groups.len() {
            return Ok(());
        }
        let reader = builder(&self.path)?
            .with_row_groups((first..self.groups.len()).collect())
            .with_offset((start - before) as usize)
            .with_limit(limit as usize)
            .with_batch_size(limit.clamp(1, 8192) as usize)
            .build()
            .map_err(|e| Error::new(&self.path, "", e.to_string()))?;
        for batch in reader {
            let batch = batch.map_err(|e| Error::new(&self.path, "data page", e.to_string()))?;
            let cols: Vec<Vec<Cell>> = batch.columns().iter().map(|c| cells(c.as_ref())).collect();
            for r in 0..batch.num_rows() {
                if !f(cols.iter().map(|c| c[r].clone()).collect()) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        Error::new(
            path,
            "footer",
            format!("{e} (not Parquet, or the footer is damaged)"),
        )
    })
}

fn type_name(t: &DataType) -> String {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "int".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "int".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "float".into(),
        DataType::Boolean => "bool".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        other => other.to_string(),
    }
}

/// One column of a batch as cells: numbers stay numbers, the rest is arrow's display text.
fn cells(a: &dyn Array) -> Vec<Cell> {
    let n = a.len();
    let null = |i: usize| a.is_null(i);
    let cast = |to: &DataType| arrow::compute::cast(a, to).ok();
    match type_name(a.data_type()).as_str() {
        "int" => {
            if let Some(c) = cast(&DataType::Int64) {
                let v = c.as_primitive::<Int64Type>();
                return (0..n)
                    .map(|i| {
                        if null(i) {
                            Cell::Null
                        } else {
                            Cell::Int(v.value(i))
                        }
                    })
                    .collect();
            }
        }
        "float" => {
            // Narrower floats keep their type, so 5.1 stored as f32 shows as 5.1.
            let narrow = match a.data_type() {
                DataType::Float32 => Some(DType::F32),
                DataType::Float16 => Some(DType::F16),
                _ => None,
            };
            if let Some(c) = cast(&DataType::Float64) {
                let v = c.as_primitive::<Float64Type>();
                return (0..n)
                    .map(|i| match (null(i), narrow) {
                        (true, _) => Cell::Null,
                        (false, Some(t)) => Cell::Narrow(v.value(i), t),
                        (false, None) => Cell::Float(v.value(i)),
                    })
                    .collect();
            }
        }
        "bool" => {
            let v = a.as_boolean();
            return (0..n)
                .map(|i| {
                    if null(i) {
                        Cell::Null
                    } else {
                        Cell::Bool(v.value(i))
                    }
                })
                .collect();
        }
        _ => {}
    }
    match ArrayFormatter::try_new(a, &FormatOptions::default()) {
        Ok(fmt) => (0..n)
            .map(|i| {
                if null(i) {
                    Cell::Null
                } else {
                    Cell::Text(fmt.value(i).to_string())
                }
            })
            .collect(),
        Err(e) => vec![Cell::Text(format!("<{e}>")); n],
    }
}
