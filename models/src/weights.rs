//! Weight files as Hugging Face folders hold them: `STEM.safetensors`, sharded behind
//! `STEM.safetensors.index.json`, or the `.fp16` variant; read with safetensors' own header.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::path::{Path, PathBuf};

/// The parameters a safetensors file holds, from its header alone.
pub fn header_params(path: &Path) -> Result<u64, String> {
    use std::io::Read;
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(|e| err(&e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| err(&"too short for a safetensors file (truncated download?)"))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(err(&format!(
            "a header of {len} bytes; not a safetensors file"
        )));
    }
    let mut head = vec![0u8; len as usize];
    f.read_exact(&mut head)
        .map_err(|_| err(&"the header is cut short (truncated download?)"))?;
    let json: serde_json::Value = serde_json::from_slice(&head).map_err(|e| err(&e))?;
    let obj = json
        .as_object()
        .ok_or_else(|| err(&"the header is not a JSON object"))?;
    Ok(obj
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| {
            v.get("shape")
                .and_then(|s| s.as_array())
                .map_or(0, |s| s.iter().filter_map(|d| d.as_u64()).product::<u64>())
        })
        .sum())
}

/// A component's weight files: `stem.safetensors`, its shards, or the fp16 variant.
pub fn files(dir: &Path, stem: &str) -> Result<Vec<PathBuf>, String> {
    for variant in ["", ".fp16"] {
        let single = dir.join(format!("{stem}{variant}.safetensors"));
        if single.is_file() {
            return Ok(vec![single]);
        }
        let index = dir.join(format!("{stem}.safetensors.index{variant}.json"));
        let index = if index.is_file() {
            index
        } else {
            dir.join(format!("{stem}{variant}.safetensors.index.json"))
        };
        if index.is_file() {
            let text =
                std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
            let j: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
            let map = j
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| format!("{}: no \"weight_map\"", index.display()))?;
            let mut files: Vec<PathBuf> = map
                .values()
                .filter_map(|v| v.as_str())
                .map(|f| dir.join(f))
                .collect();
            files.sort();
            files.dedup();
            if let Some(missing) = files.iter().find(|f| !f.is_file()) {
                return Err(format!(
                    "{}: missing (listed in {})",
                    missing.display(),
                    index.display()
                ));
            }
            return Ok(files);
        }
    }
    let bin = dir.join(format!("{stem}.bin"));
    Err(if bin.is_file() {
        format!(
            "{}: PyTorch pickle weights only; descent reads safetensors (convert them, or pull \
             a revision with {stem}.safetensors)",
            bin.display()
        )
    } else {
        format!("{}: no {stem}.safetensors", dir.display())
    })
}

/// All tensors of `files` behind one VarBuilder, converted to `dtype` on `device` as they are
/// fetched.
pub fn var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, String> {
    Ok(VarBuilder::from_tensors(load_all(files)?, dtype, device))
}

/// Every tensor of `files`, by name, on the CPU in its stored dtype.
pub fn load_all(
    files: &[PathBuf],
) -> Result<std::collections::HashMap<String, candle_core::Tensor>, String> {
    let mut all = std::collections::HashMap::new();
    for f in files {
        let t = candle_core::safetensors::load(f, &Device::Cpu)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        all.extend(t);
    }
    Ok(all)
}
