//! safetensors headers, read without loading the data: an 8-byte little-endian header length,
//! a JSON header, then the tensor bytes. Also sharded checkpoints
//! (`model.safetensors.index.json` + shards).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{TensorInfo, numel};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The same cap as the reference implementation: a larger header is refused unread.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub tensors: Vec<TensorInfo>,
    /// The free-form `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

/// Reads the header of `path`, touching only its first bytes.
pub fn read_header(path: &Path) -> Result<Header> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut first = [0u8; 8];
    if len < 8 {
        return Err(Error::new(
            path,
            "byte 0",
            format!("{len} bytes is too short for a safetensors file (8-byte header length)"),
        ));
    }
    file.read_exact(&mut first)
        .map_err(|e| Error::io(path, e))?;
    let n = header_len(path, first, len)?;
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    parse_header(path, &header, len)
}

fn header_len(path: &Path, first: [u8; 8], file_len: u64) -> Result<u64> {
    let n = u64::from_le_bytes(first);
    if n > MAX_HEADER_BYTES {
        return Err(Error::new(
            path,
            "header length",
            format!("{n} bytes is over the {MAX_HEADER_BYTES}-byte cap; not a safetensors file?"),
        ));
    }
    if 8 + n > file_len {
        return Err(Error::new(
            path,
            "header length",
            format!(
                "the header claims {n} bytes but the file has only {file_len} (truncated or \
                 not safetensors)"
            ),
        ));
    }
    Ok(n)
}

/// Parses a whole file held in memory (used by the fuzz target and tests).
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Header> {
    let first: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::new(path, "byte 0", "too short for a safetensors file"))?;
    let n = header_len(path, first, bytes.len() as u64)?;
    parse_header(path, &bytes[8..8 + n as usize], bytes.len() as u64)
}

/// Checks every entry of the JSON header against the file: known dtype, byte range matching
/// the shape, ranges inside the file, no overlaps or gaps.
fn parse_header(path: &Path, header: &[u8], file_len: u64) -> Result<Header> {
    let data_start = 8 + header.len() as u64;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| Error::new(path, "header", format!("not a JSON object: {e}")))?;
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::with_capacity(json.len());
    for (name, v) in json {
        let place = || format!("tensor {name:?}");
        if name == "__metadata__" {
            let map = v
                .as_object()
                .ok_or_else(|| Error::new(path, "__metadata__", "not a JSON object"))?;
            for (k, v) in map {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                metadata.insert(k.clone(), text);
            }
            continue;
        }
        let dtype_text = v
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| Error::new(path, place(), "no \"dtype\" string"))?;
        let dtype = DType::from_safetensors(dtype_text)
            .ok_or_else(|| Error::new(path, place(), format!("unknown dtype {dtype_text:?}")))?;
        let shape: Vec<u64> = v
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
            .ok_or_else(|| Error::new(path, place(), "\"shape\" is not a list of whole numbers"))?;
        let offsets: Vec<u64> = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect())
            .filter(|o: &Vec<u64>| o.len() == 2)
            .ok_or_else(|| Error::new(path, place(), "\"data_offsets\" is not [begin, end]"))?;
        let (begin, end) = (offsets[0], offsets[1]);
        if end < begin {
            return Err(Error::new(
                path,
                place(),
                format!("data_offsets end {end} < begin {begin}"),
            ));
        }
        let want = numel(&shape)
            .and_then(|n| dtype.bytes_for(n))
            .ok_or_else(|| Error::new(path, place(), "shape is too large"))?;
        if end - begin != want {
            return Err(Error::new(
                path,
                place(),
                format!(
                    "{} bytes for shape {shape:?} of {dtype_text}, which needs {want}",
                    end - begin
                ),
            ));
        }
        if data_start + end > file_len {
            return Err(Error::new(
                path,
                place(),
                format!(
                    "its data ends at byte {} but the file has only {file_len} bytes (truncated?)",
                    data_start + end
                ),
            ));
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            shape,
            file: path.to_path_buf(),
            offset: data_start + begin,
            bytes: want,
        });
    }
    tensors.sort_by_key(|t| t.offset);
    let mut expect = data_start;
    for t in &tensors {
        if t.offset != expect {
            return Err(Error::new(
                path,
                format!("tensor {:?}", t.name),
                format!(
                    "starts at data byte {} where the previous tensor ended at {} (overlap or gap)",
                    t.offset - data_start,
                    expect - data_start
                ),
            ));
        }
        expect += t.bytes;
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Header { tensors, metadata })
}

/// A sharded checkpoint: the index maps each tensor to a shard file beside it.
pub fn read_sharded(index: &Path) -> Result<Header> {
    let text = crate::safety::read_json_text(index)?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::new(index, format!("line {}", e.line()), e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::new(index, "weight_map", "missing or not an object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut by_shard: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (tensor, shard) in map {
        let shard = shard.as_str().ok_or_else(|| {
            Error::new(
                index,
                format!("weight_map {tensor:?}"),
                "shard is not a string",
            )
        })?;
        crate::safety::check_relative(shard)
            .map_err(|p| Error::new(index, format!("weight_map {tensor:?}"), p))?;
        by_shard.entry(shard).or_default().push(tensor);
    }
    let mut tensors = Vec::new();
    let mut metadata = BTreeMap::new();
    for (shard, names) in by_shard {
        let file: PathBuf = dir.join(shard);
        if !file.exists() {
            return Err(Error::new(
                index,
                "weight_map",
                format!("names shard {shard:?}, which is missing"),
            ));
        }
        let h = read_header(&file)?;
        for name in names {
            if !h.tensors.iter().any(|t| t.name == name) {
                return Err(Error::new(
                    &file,
                    format!("tensor {name:?}"),
                    "the index places it in this shard but the shard does not hold it",
                ));
            }
        }
        tensors.extend(h.tensors);
        metadata.extend(h.metadata);
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Header { tensors, metadata })
}

/// Writes a safetensors file (tests, fixtures and benchmarks): tensors in the given order.
pub fn write(path: &Path, tensors: &[(&str, DType, &[u64], &[u8])]) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape, data) in tensors {
        let end = offset + data.len() as u64;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&header)?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset as usize);
    out.extend((json.len() as u64).to_le_bytes());
    out.extend(json);
    for (.., data) in tensors {
        out.extend_from_slice(data);
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_names_shapes_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let a = f32s(&[1.0; 6]);
        let b = f32s(&[2.0; 4]);
        write(
            &p,
            &[
                ("b.weight", DType::F32, &[2, 3], &a),
                ("a.bias", DType::F32, &[4], &b),
            ],
        )
        .unwrap();
        let h = read_header(&p).unwrap();
        let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a.bias", "b.weight"]);
        assert_eq!(h.tensors[1].shape, [2, 3]);
        assert_eq!(h.tensors[1].bytes, 24);
        let raw = std::fs::read(&p).unwrap();
        let t = &h.tensors[0];
        assert_eq!(
            &raw[t.offset as usize..(t.offset + t.bytes) as usize],
            &b[..]
        );
    }

    #[test]
    fn damaged_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        write(&p, &[("w", DType::F32, &[8], &f32s(&[0.5; 8]))]).unwrap();
        let full = std::fs::read(&p).unwrap();

        std::fs::write(&p, &full[..full.len() - 5]).unwrap();
        let e = read_header(&p).unwrap_err().to_string();
        assert!(
            e.contains("m.safetensors: tensor \"w\"") && e.contains("truncated"),
            "{e}"
        );

        let mut huge = full.clone();
        huge[..8].copy_from_slice(&(full.len() as u64 * 2).to_le_bytes());
        std::fs::write(&p, &huge).unwrap();
        let e = read_header(&p).unwrap_err().to_string();
        assert!(e.contains("header length") && e.contains("only"), "{e}");

        let mut flipped = full.clone();
        flipped[12] ^= 0x40;
        std::fs::write(&p, &flipped).unwrap();
        assert!(read_header(&p).is_err());

        std::fs::write(&p, b"").unwrap();
        let e = read_header(&p).unwrap_err().to_string();
        assert!(e.contains("too short"), "{e}");
    }

    #[test]
    fn sharded_index_needs_every_shard() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("s1.safetensors"),
            &[("a", DType::F32, &[1], &f32s(&[1.0]))],
        )
        .unwrap();
        write(
            &dir.path().join("s2.safetensors"),
            &[("b", DType::F32, &[1], &f32s(&[2.0]))],
        )
        .unwrap();
        let idx = dir.path().join("model.safetensors.index.json");
        std::fs::write(
            &idx,
            r#"{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}"#,
        )
        .unwrap();
        let h = read_sharded(&idx).unwrap();
        assert_eq!(h.tensors.len(), 2);
        assert!(h.tensors[1].file.ends_with("s2.safetensors"));

        std::fs::write(
            &idx,
            r#"{"weight_map": {"a": "s1.safetensors", "c": "s3.safetensors"}}"#,
        )
        .unwrap();
        let e = read_sharded(&idx).unwrap_err().to_string();
        assert!(e.contains("\"s3.safetensors\", which is missing"), "{e}");

        std::fs::write(&idx, r#"{"weight_map": {"a": "../s1.safetensors"}}"#).unwrap();
        let e = read_sharded(&idx).unwrap_err().to_string();
        assert!(e.contains(".."), "{e}");
    }
}
