//! IDX, the MNIST format: two zero bytes, a type byte, a rank byte, big-endian u32 dimensions,
//! then big-endian data. Gzipped files (`.gz`) are inflated in memory. An images file is paired
//! with its labels file by name (`train-images-idx3-ubyte` ↔ `train-labels-idx1-ubyte`).

use super::{Cell, Column, ImageSample, RowCount, Table};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Refuse to inflate more than this (a corrupt or hostile gzip header cannot exhaust memory).
const MAX_BYTES: u64 = 4 << 30;

pub struct Idx {
    pub dims: Vec<usize>,
    /// Type byte: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64.
    pub kind: u8,
    data: Vec<u8>,
}

impl Idx {
    fn elem(&self) -> usize {
        match self.kind {
            0x08 | 0x09 => 1,
            0x0B => 2,
            0x0C | 0x0D => 4,
            _ => 8,
        }
    }

    /// Element `i` as f64.
    pub fn value(&self, i: usize) -> f64 {
        let e = self.elem();
        let b = &self.data[i * e..(i + 1) * e];
        match self.kind {
            0x08 => b[0] as f64,
            0x09 => b[0] as i8 as f64,
            0x0B => i16::from_be_bytes([b[0], b[1]]) as f64,
            0x0C => i32::from_be_bytes(b.try_into().unwrap()) as f64,
            0x0D => f32::from_be_bytes(b.try_into().unwrap()) as f64,
            _ => f64::from_be_bytes(b.try_into().unwrap()),
        }
    }

    pub fn len(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements per item (28·28 for MNIST images, 1 for labels).
    pub fn item(&self) -> usize {
        self.dims.iter().skip(1).product()
    }
}

pub fn read_idx(path: &Path) -> Result<Idx> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut data = Vec::new();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let res = if gz {
        flate2::read::GzDecoder::new(file)
            .take(MAX_BYTES)
            .read_to_end(&mut data)
    } else {
        std::io::BufReader::new(file)
            .take(MAX_BYTES)
            .read_to_end(&mut data)
    };
    res.map_err(|e| {
        Error::new(
            path,
            "",
            format!("cannot read{}: {e}", if gz { " (gzip)" } else { "" }),
        )
    })?;
    if data.len() < 4 || data[0] != 0 || data[1] != 0 {
        return Err(Error::new(
            path,
            "byte 0",
            "not an IDX file (it must start with two zero bytes)",
        ));
    }
    let kind = data[2];
    if !matches!(kind, 0x08 | 0x09 | 0x0B | 0x0C | 0x0D | 0x0E) {
        return Err(Error::new(
            path,
            "byte 2",
            format!("unknown IDX element type 0x{kind:02x}"),
        ));
    }
    let rank = data[3] as usize;
    if rank == 0 || data.len() < 4 + 4 * rank {
        return Err(Error::new(
            path,
            "byte 3",
            format!("rank {rank} with only {} bytes of header", data.len()),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(data[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let mut idx = Idx {
        dims,
        kind,
        data: Vec::new(),
    };
    let want = idx
        .dims
        .iter()
        .try_fold(idx.elem(), |a, &d| a.checked_mul(d));
    let have = data.len() - 4 - 4 * rank;
    if want != Some(have) {
        return Err(Error::new(
            path,
            "data",
            format!(
                "dimensions {:?} need {} bytes but the file holds {have} (truncated?)",
                idx.dims,
                want.map_or("too many".into(), |w| w.to_string())
            ),
        ));
    }
    data.drain(..4 + 4 * rank);
    idx.data = data;
    Ok(idx)
}

/// `…images-idx3-ubyte[.gz]` → the labels file beside it, if present.
pub fn labels_for(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    if !name.contains("images") {
        return None;
    }
    let labels = name.replace("images", "labels").replace("idx3", "idx1");
    let p = images.with_file_name(labels);
    p.exists().then_some(p)
}

pub struct IdxTable {
    pub path: PathBuf,
    pub labels_path: Option<PathBuf>,
    pub columns: Vec<Column>,
    data: Idx,
    labels: Option<Idx>,
}

impl IdxTable {
    pub fn open(path: &Path) -> Result<IdxTable> {
        let data = read_idx(path)?;
        let labels_path = labels_for(path);
        let labels = labels_path.as_deref().map(read_idx).transpose()?;
        if let (Some(l), Some(lp)) = (&labels, &labels_path)
            && l.len() != data.len()
        {
            return Err(Error::new(
                lp,
                "",
                format!(
                    "{} labels for {} images in {}",
                    l.len(),
                    data.len(),
                    path.display()
                ),
            ));
        }
        let shape: Vec<String> = data.dims.iter().skip(1).map(usize::to_string).collect();
        let mut columns = vec![Column {
            name: if data.dims.len() > 1 {
                "image".into()
            } else {
                "value".into()
            },
            dtype: if shape.is_empty() {
                "int".into()
            } else {
                format!("{} {}", type_name(data.kind), shape.join("×"))
            },
        }];
        if labels.is_some() {
            columns.push(Column {
                name: "label".into(),
                dtype: "int".into(),
            });
        }
        Ok(IdxTable {
            path: path.into(),
            labels_path,
            columns,
            data,
            labels,
        })
    }
}

impl Table for IdxTable {
    fn format(&self) -> &'static str {
        "IDX"
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn rows(&self) -> RowCount {
        RowCount::Exact(self.data.len() as u64)
    }

    fn for_each_row(
        &mut self,
        start: u64,
        limit: u64,
        f: &mut dyn FnMut(Vec<Cell>) -> bool,
    ) -> Result<()> {
        let item = self.data.item();
        for i in (start as usize..self.data.len()).take(limit as usize) {
            let first = if self.data.dims.len() == 1 {
                Cell::Int(self.data.value(i) as i64)
            } else {
                let vals: Vec<f64> = (0..item).map(|j| self.data.value(i * item + j)).collect();
                let mean = vals.iter().sum::<f64>() / item.max(1) as f64;
                Cell::Text(format!("{} values, mean {mean:.1}", item))
            };
            let mut row = vec![first];
            if let Some(l) = &self.labels {
                row.push(Cell::Int(l.value(i) as i64));
            }
            if !f(row) {
                break;
            }
        }
        Ok(())
    }

    /// Rank-3 data (N×H×W) as grey images, scaled to 0–255.
    fn images(&self, max: usize) -> (Vec<ImageSample>, Vec<String>) {
        if self.data.dims.len() != 3 {
            return (Vec::new(), Vec::new());
        }
        let (h, w) = (self.data.dims[1], self.data.dims[2]);
        let samples = (0..self.data.len().min(max))
            .map(|i| {
                let vals: Vec<f64> = (0..h * w).map(|j| self.data.value(i * h * w + j)).collect();
                let (lo, hi) = vals
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
                let rgb = vals
                    .iter()
                    .flat_map(|v| [((v - lo) * scale) as u8; 3])
                    .collect();
                let label = self
                    .labels
                    .as_ref()
                    .map_or(format!("#{i}"), |l| format!("{}", l.value(i)));
                ImageSample {
                    label,
                    width: w as u32,
                    height: h as u32,
                    rgb,
                }
            })
            .collect();
        (samples, Vec::new())
    }
}

fn type_name(kind: u8) -> &'static str {
    match kind {
        0x08 => "u8",
        0x09 => "i8",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        _ => "f64",
    }
}

/// Writes an IDX file of u8 values (tests and fixtures).
pub fn write_u8(path: &Path, dims: &[u32], data: &[u8]) -> std::io::Result<()> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
    out.extend_from_slice(data);
    std::fs::write(path, out)
}
