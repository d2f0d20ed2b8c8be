//! GGUF (v2 and v3) headers: metadata key/values and tensor infos, read from a memory map so
//! only the header pages are touched. Every count and length is checked against the bytes left
//! before anything is allocated.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{TensorInfo, numel};
use std::path::Path;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's limit on tensor rank.
const MAX_DIMS: u32 = 4;
/// Nested arrays deeper than this are refused (real files use one level).
const MAX_ARRAY_DEPTH: u32 = 4;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Text(String),
    Array {
        kind: &'static str,
        len: u64,
        head: Vec<Value>,
    },
}

impl Value {
    /// Short text for a table cell: long arrays show their length and first items.
    pub fn display(&self) -> String {
        match self {
            Value::Int(v) => v.to_string(),
            Value::UInt(v) => v.to_string(),
            Value::Float(v) => format!("{v}"),
            Value::Bool(v) => v.to_string(),
            Value::Text(s) if s.chars().count() > 80 => {
                let head: String = s.chars().take(77).collect();
                format!("{head:?}… ({} chars)", s.chars().count())
            }
            Value::Text(s) => format!("{s:?}"),
            Value::Array { kind, len, head } => {
                let items: Vec<String> = head.iter().map(Value::display).collect();
                let more = if *len as usize > head.len() {
                    ", …"
                } else {
                    ""
                };
                format!("[{len} × {kind}: {}{more}]", items.join(", "))
            }
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(v) => Some(*v),
            Value::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
}

pub fn read_header(path: &Path) -> Result<Header> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and only read through slices with checked bounds; a file
    // truncated by another process while mapped would SIGBUS, as with any mmap reader.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    parse(path, &map)
}

/// Parses a whole file held in memory (or mapped).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Header> {
    let mut c = Cursor {
        path,
        bytes,
        pos: 0,
    };
    if c.take(4, "magic")? != MAGIC {
        return Err(Error::new(
            path,
            "byte 0",
            "not a GGUF file (no \"GGUF\" magic)",
        ));
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(Error::new(
            path,
            "byte 4",
            format!("GGUF version {version}; descent reads versions 2 and 3"),
        ));
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;
    // Each key/value takes at least 12 bytes and each tensor info at least 24.
    c.check_count(n_kv, 12, "metadata count")?;
    c.check_count(n_tensors, 24, "tensor count")?;
    let mut metadata = Vec::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key {i}"))?;
        let kind = c.u32(&format!("type of {key:?}"))?;
        let value = c.value(kind, &key, 0)?;
        metadata.push((key, value));
    }
    let alignment = metadata
        .iter()
        .find(|(k, _)| k == "general.alignment")
        .and_then(|(_, v)| v.as_u64())
        .unwrap_or(DEFAULT_ALIGNMENT);
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(Error::new(
            path,
            "general.alignment",
            format!("{alignment} is not a power of two"),
        ));
    }
    let mut tensors = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = c.string(&format!("tensor {i} name"))?;
        let place = format!("tensor {name:?}");
        let n_dims = c.u32(&place)?;
        if n_dims > MAX_DIMS {
            return Err(Error::new(
                path,
                place,
                format!("{n_dims} dimensions (ggml allows {MAX_DIMS})"),
            ));
        }
        let shape: Vec<u64> = (0..n_dims).map(|_| c.u64(&place)).collect::<Result<_>>()?;
        let kind = c.u32(&place)?;
        let dtype = ggml_type(kind)
            .ok_or_else(|| Error::new(path, &place, format!("unknown ggml type {kind}")))?;
        let offset = c.u64(&place)?;
        let bytes = numel(&shape)
            .and_then(|n| dtype.bytes_for(n))
            .ok_or_else(|| {
                Error::new(
                    path,
                    &place,
                    format!("shape {shape:?} does not fit {}", dtype.name()),
                )
            })?;
        if offset % alignment != 0 {
            return Err(Error::new(
                path,
                &place,
                format!("offset {offset} is not a multiple of {alignment}"),
            ));
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            shape,
            file: path.to_path_buf(),
            offset,
            bytes,
        });
    }
    let data_start = c.pos.div_ceil(alignment as usize) as u64 * alignment;
    for t in &mut tensors {
        let end = data_start
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.bytes))
            .unwrap_or(u64::MAX);
        if end > bytes.len() as u64 {
            return Err(Error::new(
                path,
                format!("tensor {:?}", t.name),
                format!(
                    "its data ends at byte {end} but the file has only {} bytes (truncated?)",
                    bytes.len()
                ),
            ));
        }
        t.offset += data_start;
    }
    Ok(Header {
        version,
        metadata,
        tensors,
    })
}

/// ggml type ids and their block layouts (elements per block, bytes per block).
fn ggml_type(id: u32) -> Option<DType> {
    let q = |name, block, bytes| DType::Quant { name, block, bytes };
    Some(match id {
        0 => DType::F32,
        1 => DType::F16,
        2 => q("Q4_0", 32, 18),
        3 => q("Q4_1", 32, 20),
        6 => q("Q5_0", 32, 22),
        7 => q("Q5_1", 32, 24),
        8 => q("Q8_0", 32, 34),
        9 => q("Q8_1", 32, 36),
        10 => q("Q2_K", 256, 84),
        11 => q("Q3_K", 256, 110),
        12 => q("Q4_K", 256, 144),
        13 => q("Q5_K", 256, 176),
        14 => q("Q6_K", 256, 210),
        15 => q("Q8_K", 256, 292),
        16 => q("IQ2_XXS", 256, 66),
        17 => q("IQ2_XS", 256, 74),
        18 => q("IQ3_XXS", 256, 98),
        19 => q("IQ1_S", 256, 50),
        20 => q("IQ4_NL", 32, 18),
        21 => q("IQ3_S", 256, 110),
        22 => q("IQ2_S", 256, 82),
        23 => q("IQ4_XS", 256, 136),
        24 => DType::I8,
        25 => DType::I16,
        26 => DType::I32,
        27 => DType::I64,
        28 => DType::F64,
        29 => q("IQ1_M", 256, 56),
        30 => DType::BF16,
        34 => q("TQ1_0", 256, 54),
        35 => q("TQ2_0", 256, 66),
        _ => return None,
    })
}

/// The ggml type id of a dtype (for writing test files).
pub fn ggml_id(dtype: DType) -> Option<u32> {
    (0..64).find(|&id| ggml_type(id) == Some(dtype))
}

struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(Error::new(
                self.path,
                format!("byte {}", self.pos),
                format!("{what} needs {n} bytes but only {left} are left (truncated?)"),
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn check_count(&self, n: u64, min_bytes: u64, what: &str) -> Result<()> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_bytes) > left {
            return Err(Error::new(
                self.path,
                format!("byte {}", self.pos),
                format!("{what} {n} cannot fit in the {left} bytes left"),
            ));
        }
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let at = self.pos;
        let raw = self.take(n, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| {
            Error::new(
                self.path,
                format!("byte {at}"),
                format!("{what} is not UTF-8"),
            )
        })
    }

    fn value(&mut self, kind: u32, key: &str, depth: u32) -> Result<Value> {
        let w = |n: u64, c: &mut Self| -> Result<&'a [u8]> { c.take(n, key) };
        Ok(match kind {
            0 => Value::UInt(w(1, self)?[0] as u64),
            1 => Value::Int(w(1, self)?[0] as i8 as i64),
            2 => Value::UInt(u16::from_le_bytes(w(2, self)?.try_into().unwrap()) as u64),
            3 => Value::Int(i16::from_le_bytes(w(2, self)?.try_into().unwrap()) as i64),
            4 => Value::UInt(self.u32(key)? as u64),
            5 => Value::Int(i32::from_le_bytes(w(4, self)?.try_into().unwrap()) as i64),
            6 => Value::Float(f32::from_le_bytes(w(4, self)?.try_into().unwrap()) as f64),
            7 => Value::Bool(w(1, self)?[0] != 0),
            8 => Value::Text(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(Error::new(self.path, key, "arrays nested too deeply"));
                }
                let item = self.u32(key)?;
                let len = self.u64(key)?;
                self.check_count(len, item_min_bytes(item), key)?;
                let mut head = Vec::new();
                for i in 0..len {
                    let v = self.value(item, key, depth + 1)?;
                    if i < 4 {
                        head.push(v);
                    }
                }
                Value::Array {
                    kind: type_name(item),
                    len,
                    head,
                }
            }
            10 => Value::UInt(self.u64(key)?),
            11 => Value::Int(i64::from_le_bytes(w(8, self)?.try_into().unwrap())),
            12 => Value::Float(f64::from_le_bytes(w(8, self)?.try_into().unwrap())),
            _ => {
                return Err(Error::new(
                    self.path,
                    format!("metadata {key:?}"),
                    format!("unknown value type {kind}"),
                ));
            }
        })
    }
}

fn item_min_bytes(kind: u32) -> u64 {
    match kind {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}

fn type_name(kind: u32) -> &'static str {
    match kind {
        0 => "u8",
        1 => "i8",
        2 => "u16",
        3 => "i16",
        4 => "u32",
        5 => "i32",
        6 => "f32",
        7 => "bool",
        8 => "string",
        9 => "array",
        10 => "u64",
        11 => "i64",
        12 => "f64",
        _ => "unknown",
    }
}

/// Writes a GGUF v3 file (tests and fixtures): string and u32 metadata, tensors as given.
pub fn write(
    path: &Path,
    metadata: &[(&str, &str)],
    tensors: &[(&str, DType, &[u64], &[u8])],
) -> std::io::Result<()> {
    let mut out = Vec::new();
    let s = |out: &mut Vec<u8>, t: &str| {
        out.extend((t.len() as u64).to_le_bytes());
        out.extend(t.as_bytes());
    };
    out.extend(MAGIC);
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        s(&mut out, k);
        out.extend(8u32.to_le_bytes());
        s(&mut out, v);
    }
    let mut offset = 0u64;
    for (name, dtype, shape, data) in tensors {
        s(&mut out, name);
        out.extend((shape.len() as u32).to_le_bytes());
        shape.iter().for_each(|d| out.extend(d.to_le_bytes()));
        out.extend(ggml_id(*dtype).expect("a ggml type").to_le_bytes());
        out.extend(offset.to_le_bytes());
        offset += (data.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
    }
    out.resize(
        out.len().div_ceil(DEFAULT_ALIGNMENT as usize) * DEFAULT_ALIGNMENT as usize,
        0,
    );
    for (i, (.., data)) in tensors.iter().enumerate() {
        if i > 0 {
            out.resize(
                out.len().div_ceil(DEFAULT_ALIGNMENT as usize) * DEFAULT_ALIGNMENT as usize,
                0,
            );
        }
        out.extend_from_slice(data);
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
        let p = dir.join("m.gguf");
        let w: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let q8 = DType::Quant {
            name: "Q8_0",
            block: 32,
            bytes: 34,
        };
        let qd = vec![0u8; 68];
        write(
            &p,
            &[("general.architecture", "llama"), ("general.name", "tiny")],
            &[
                ("token_embd.weight", DType::F32, &[8, 8], &w),
                ("blk.0.ffn.weight", q8, &[64], &qd),
            ],
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        (p, bytes)
    }

    #[test]
    fn reads_metadata_and_tensor_infos() {
        let dir = tempfile::tempdir().unwrap();
        let (p, bytes) = sample(dir.path());
        let h = read_header(&p).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(
            h.metadata[0],
            ("general.architecture".into(), Value::Text("llama".into()))
        );
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[1].dtype.name(), "Q8_0");
        assert_eq!(h.tensors[1].bytes, 68);
        let t = &h.tensors[0];
        let first = f32::from_le_bytes(bytes[t.offset as usize + 4..][..4].try_into().unwrap());
        assert_eq!(first, 1.0);
    }

    #[test]
    fn truncated_and_flipped_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let (p, bytes) = sample(dir.path());
        for cut in [0, 3, 7, 20, 60, bytes.len() / 2, bytes.len() - 1] {
            let e = parse(&p, &bytes[..cut]).unwrap_err().to_string();
            assert!(e.starts_with(&p.display().to_string()), "{e}");
        }
        for i in 0..bytes.len().min(400) {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = parse(&p, &b);
        }
        let mut v2 = bytes.clone();
        v2[4] = 2; // v2 has the same layout (v3 added big-endian files)
        assert_eq!(parse(&p, &v2).unwrap().version, 2);
        let mut v1 = bytes.clone();
        v1[4] = 1;
        assert!(
            parse(&p, &v1)
                .unwrap_err()
                .to_string()
                .contains("version 1")
        );
        let mut huge = bytes.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            parse(&p, &huge)
                .unwrap_err()
                .to_string()
                .contains("cannot fit")
        );
    }
}
