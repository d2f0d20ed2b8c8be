//! Datasets as pageable tables: a schema, rows fetched a page at a time (large files are never
//! loaded whole), per-column statistics over a bounded scan, a class histogram and image samples.

mod idx;
mod image_folder;
mod parquet_file;
mod stats;
mod tensors;
mod text;

pub use idx::{labels_for, read_idx, write_u8 as write_idx_u8};
pub use stats::{ColumnStats, Summary, summarize};

use crate::dtype::DType;
use crate::error::{Error, Result};
use std::path::Path;

/// Column (or tensor) names taken as the class label when none is named, in this order.
pub const LABEL_NAMES: [&str; 9] = [
    "label",
    "labels",
    "class",
    "target",
    "targets",
    "y",
    "category",
    "species",
    "diagnosis",
];

/// Statistics cover at most this many rows; the summary says when it stopped early.
pub const STATS_ROWS: u64 = 200_000;
/// Distinct values are counted exactly up to here, then reported as "at least".
pub const DISTINCT_CAP: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    /// A float of a narrower type (f32, f16, bf16, f8), its value held exactly; shown as the
    /// shortest text that reads back to the same value in that type.
    Narrow(f64, DType),
    Bool(bool),
    Text(String),
}

impl Cell {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(v) => Some(*v as f64),
            Cell::Float(v) | Cell::Narrow(v, _) => Some(*v),
            Cell::Bool(v) => Some(*v as u8 as f64),
            _ => None,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) => format!("{v}"),
            Cell::Narrow(v, t) => crate::dtype::shortest(*v, *t),
            Cell::Bool(v) => v.to_string(),
            Cell::Text(s) => s.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub dtype: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowCount {
    Exact(u64),
    /// Not known without reading the whole file; at least this many.
    AtLeast(u64),
}

impl std::fmt::Display for RowCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowCount::Exact(n) => write!(f, "{n}"),
            RowCount::AtLeast(n) => write!(f, "≥{n} (not counted to the end)"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImageSample {
    pub label: String,
    pub width: u32,
    pub height: u32,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
}

/// An open dataset. Cheap to open: only headers, footers or folder listings are read.
pub enum Dataset {
    Text(text::TextTable),
    Parquet(parquet_file::ParquetTable),
    Idx(idx::IdxTable),
    Images(image_folder::ImageFolder),
    Tensors(tensors::TensorTable),
    Memory(MemoryTable),
}

/// A table held in memory (built-in datasets).
pub struct MemoryTable {
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    pub label: Option<String>,
    pub images: Vec<ImageSample>,
}

/// What a file or folder holds, judged by its name and first bytes.
pub fn open(path: &Path) -> Result<Dataset> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Ok(Dataset::Images(image_folder::ImageFolder::open(path)?));
    }
    if meta.len() == 0 {
        return Err(Error::new(path, "", "the file is empty"));
    }
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().to_lowercase());
    let ext = name.rsplit('.').next().unwrap_or("");
    if crate::safety::is_pickle(path) {
        return Err(Error::new(path, "", crate::safety::PICKLE_REFUSAL));
    }
    Ok(match ext {
        "csv" => Dataset::Text(text::TextTable::open(path, text::Kind::Delimited(b','))?),
        "tsv" | "tab" => Dataset::Text(text::TextTable::open(path, text::Kind::Delimited(b'\t'))?),
        "jsonl" | "ndjson" => Dataset::Text(text::TextTable::open(path, text::Kind::JsonLines)?),
        "parquet" | "pq" => Dataset::Parquet(parquet_file::ParquetTable::open(path)?),
        "safetensors" => Dataset::Tensors(tensors::TensorTable::open(path)?),
        _ if name.contains("idx") || name.contains("-ubyte") => {
            Dataset::Idx(idx::IdxTable::open(path)?)
        }
        _ => {
            return Err(Error::new(
                path,
                "",
                "unrecognised dataset format; descent reads .csv, .tsv, .jsonl, .parquet, \
                 .safetensors, IDX (*-ubyte) files and image folders",
            ));
        }
    })
}

/// What every format provides; [`Dataset`] holds one of them.
pub trait Table: Send {
    fn format(&self) -> &'static str;
    fn path(&self) -> Option<&Path>;
    fn columns(&self) -> &[Column];
    fn rows(&self) -> RowCount;
    /// Calls `f` with rows from `start`, at most `limit`, until it returns false.
    fn for_each_row(
        &mut self,
        start: u64,
        limit: u64,
        f: &mut dyn FnMut(Vec<Cell>) -> bool,
    ) -> Result<()>;
    /// Up to `max` decoded images, and notes on what could not be decoded.
    fn images(&self, _max: usize) -> (Vec<ImageSample>, Vec<String>) {
        (Vec::new(), Vec::new())
    }
}

impl Table for MemoryTable {
    fn format(&self) -> &'static str {
        "built in"
    }

    fn path(&self) -> Option<&Path> {
        None
    }

    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn rows(&self) -> RowCount {
        RowCount::Exact(self.rows.len() as u64)
    }

    fn for_each_row(
        &mut self,
        start: u64,
        limit: u64,
        f: &mut dyn FnMut(Vec<Cell>) -> bool,
    ) -> Result<()> {
        for r in self.rows.iter().skip(start as usize).take(limit as usize) {
            if !f(r.clone()) {
                break;
            }
        }
        Ok(())
    }

    fn images(&self, max: usize) -> (Vec<ImageSample>, Vec<String>) {
        (self.images.iter().take(max).cloned().collect(), Vec::new())
    }
}

impl Dataset {
    pub fn table(&self) -> &dyn Table {
        match self {
            Dataset::Text(t) => t,
            Dataset::Parquet(t) => t,
            Dataset::Idx(t) => t,
            Dataset::Images(t) => t,
            Dataset::Tensors(t) => t,
            Dataset::Memory(t) => t,
        }
    }

    pub fn table_mut(&mut self) -> &mut dyn Table {
        match self {
            Dataset::Text(t) => t,
            Dataset::Parquet(t) => t,
            Dataset::Idx(t) => t,
            Dataset::Images(t) => t,
            Dataset::Tensors(t) => t,
            Dataset::Memory(t) => t,
        }
    }

    pub fn format(&self) -> &'static str {
        self.table().format()
    }

    pub fn path(&self) -> Option<&Path> {
        self.table().path()
    }

    pub fn columns(&self) -> &[Column] {
        self.table().columns()
    }

    pub fn rows(&self) -> RowCount {
        self.table().rows()
    }

    /// Up to `n` rows from row `start`.
    pub fn page(&mut self, start: u64, n: usize) -> Result<Vec<Vec<Cell>>> {
        let mut out = Vec::with_capacity(n);
        self.for_each_row(start, n as u64, &mut |r| {
            out.push(r);
            true
        })?;
        Ok(out)
    }

    /// Calls `f` with rows from `start`, at most `limit`, until it returns false.
    pub fn for_each_row(
        &mut self,
        start: u64,
        limit: u64,
        f: &mut dyn FnMut(Vec<Cell>) -> bool,
    ) -> Result<()> {
        self.table_mut().for_each_row(start, limit, f)
    }

    /// The column holding class labels: `hint` when given, else a conventional name.
    pub fn label_column(&self, hint: Option<&str>) -> Option<usize> {
        let cols = self.columns();
        if let Some(h) = hint {
            return cols.iter().position(|c| c.name == h);
        }
        if let Dataset::Memory(m) = self {
            return m
                .label
                .as_ref()
                .and_then(|l| cols.iter().position(|c| &c.name == l));
        }
        LABEL_NAMES
            .iter()
            .find_map(|n| cols.iter().position(|c| c.name.eq_ignore_ascii_case(n)))
    }

    /// A few decoded images (image folders, IDX images, built-ins with image inputs).
    pub fn images(&self, max: usize) -> (Vec<ImageSample>, Vec<String>) {
        self.table().images(max)
    }
}

/// The narrowest type that holds every value seen: int < float < text; bools stay bools.
pub(crate) fn infer(values: impl Iterator<Item = Option<String>>) -> &'static str {
    let mut kind = "";
    for v in values.flatten() {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        let this = if v.parse::<i64>().is_ok() {
            "int"
        } else if v.parse::<f64>().is_ok() {
            "float"
        } else if v == "true" || v == "false" {
            "bool"
        } else {
            "text"
        };
        kind = match (kind, this) {
            ("", t) => t,
            (a, b) if a == b => a,
            ("int", "float") | ("float", "int") => "float",
            _ => "text",
        };
    }
    if kind.is_empty() { "text" } else { kind }
}

/// Parses one text field as the column's type (falls back to text).
pub(crate) fn cell(field: &str, dtype: &str) -> Cell {
    let f = field.trim();
    if f.is_empty() {
        return Cell::Null;
    }
    let parsed = match dtype {
        "int" => f.parse().ok().map(Cell::Int),
        "float" => f.parse().ok().map(Cell::Float),
        "bool" => f.parse().ok().map(Cell::Bool),
        _ => None,
    };
    parsed.unwrap_or_else(|| Cell::Text(field.to_string()))
}
