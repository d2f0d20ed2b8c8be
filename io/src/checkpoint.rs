//! Opening a checkpoint, whatever it is: a safetensors file, a sharded index, a GGUF file, a
//! Hugging Face model folder, a diffusers pipeline folder or a descent run checkpoint.

use crate::error::{Error, Result};
use crate::safety::{PICKLE_REFUSAL, is_pickle};
use crate::tensor::TensorInfo;
use crate::{gguf, safetensors};
use std::path::{Path, PathBuf};

pub const INDEX: &str = "model.safetensors.index.json";

#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub format: String,
    /// Key facts, in display order: architecture, layers, parameter count …
    pub summary: Vec<(String, String)>,
    /// Free-form metadata from the file (safetensors `__metadata__`, GGUF key/values).
    pub metadata: Vec<(String, String)>,
    pub tensors: Vec<TensorInfo>,
}

impl Checkpoint {
    pub fn params(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::numel).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

pub fn open(path: &Path) -> Result<Checkpoint> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mut ck = if meta.is_dir() {
        open_folder(path)?
    } else if is_pickle(path) {
        return Err(Error::new(path, "", PICKLE_REFUSAL));
    } else if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".index.json"))
    {
        let h = safetensors::read_sharded(path)?;
        let shards: std::collections::BTreeSet<_> = h.tensors.iter().map(|t| &t.file).collect();
        let summary = vec![("shards".into(), shards.len().to_string())];
        with_tensors(path, "safetensors (sharded)", summary, h)
    } else if sniff(path)? == *b"GGUF" {
        let h = gguf::read_header(path)?;
        let metadata: Vec<(String, String)> = h
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.display()))
            .collect();
        let pick = |key: &str| {
            metadata
                .iter()
                .find(|(k, _)| k.ends_with(key))
                .map(|(_, v)| v.clone())
        };
        let mut summary = vec![("GGUF version".into(), h.version.to_string())];
        for (label, key) in [
            ("architecture", "general.architecture"),
            ("name", "general.name"),
            ("layers", ".block_count"),
            ("hidden size", ".embedding_length"),
            ("heads", ".attention.head_count"),
            ("context", ".context_length"),
        ] {
            if let Some(v) = pick(key) {
                summary.push((label.into(), v.trim_matches('"').to_string()));
            }
        }
        let mut types: Vec<(&str, usize)> = Vec::new();
        for t in &h.tensors {
            match types.iter_mut().find(|(n, _)| *n == t.dtype.name()) {
                Some(e) => e.1 += 1,
                None => types.push((t.dtype.name(), 1)),
            }
        }
        let types: Vec<String> = types.iter().map(|(n, c)| format!("{n} ×{c}")).collect();
        summary.push(("tensor types".into(), types.join(", ")));
        Checkpoint {
            path: path.into(),
            format: "GGUF".into(),
            summary,
            metadata,
            tensors: h.tensors,
        }
    } else {
        let h = safetensors::read_header(path)?;
        with_tensors(path, "safetensors", Vec::new(), h)
    };
    ck.summary
        .push(("tensors".into(), ck.tensors.len().to_string()));
    ck.summary
        .push(("parameters".into(), human_count(ck.params())));
    Ok(ck)
}

fn sniff(path: &Path) -> Result<[u8; 4]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut b = [0u8; 4];
    let n = f.read(&mut b).map_err(|e| Error::io(path, e))?;
    if n == 0 {
        return Err(Error::new(path, "", "the file is empty"));
    }
    Ok(b)
}

fn with_tensors(
    path: &Path,
    format: &str,
    summary: Vec<(String, String)>,
    h: safetensors::Header,
) -> Checkpoint {
    Checkpoint {
        path: path.into(),
        format: format.into(),
        summary,
        metadata: h.metadata.into_iter().collect(),
        tensors: h.tensors,
    }
}

/// The weights of a folder: a sharded index, or every `.safetensors` file in it.
fn folder_weights(dir: &Path) -> Result<Option<safetensors::Header>> {
    let index = dir.join(INDEX);
    if index.exists() {
        return safetensors::read_sharded(&index).map(Some);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Ok(None);
    }
    let mut all = safetensors::Header {
        tensors: Vec::new(),
        metadata: Default::default(),
    };
    for f in &files {
        let h = safetensors::read_header(f)?;
        all.tensors.extend(h.tensors);
        all.metadata.extend(h.metadata);
    }
    Ok(Some(all))
}

fn has_pickles(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| rd.filter_map(|e| e.ok()).any(|e| is_pickle(&e.path())))
}

fn open_folder(dir: &Path) -> Result<Checkpoint> {
    if dir.join("model_index.json").exists() {
        return crate::hf_folder::diffusers(dir);
    }
    let weights = folder_weights(dir)?;
    let Some(h) = weights else {
        // A GGUF repository: one or more quantisations of the same model side by side.
        let mut ggufs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .collect();
        ggufs.sort();
        if let Some(first) = ggufs.first() {
            let mut ck = open(first)?;
            if ggufs.len() > 1 {
                let others: Vec<String> = ggufs[1..]
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
                ck.summary
                    .insert(0, ("other GGUF files".into(), others.join(", ")));
            }
            return Ok(ck);
        }
        let problem = if has_pickles(dir) {
            format!("only pickle weights here; {PICKLE_REFUSAL}")
        } else {
            "no .safetensors, sharded index or GGUF weights in this folder".into()
        };
        return Err(Error::new(dir, "", problem));
    };
    let hf = dir.join("config.json").exists();
    if dir.join("state.json").exists() && dir.join("model.safetensors").exists() {
        // A descent run checkpoint: the optimizer state sits beside the model (and a language
        // model's is a Hugging Face folder too).
        let mut summary = if hf {
            crate::hf_folder::model_summary(dir)?
        } else {
            Vec::new()
        };
        summary.extend(descent_state(dir));
        let model: Vec<TensorInfo> = h
            .tensors
            .iter()
            .filter(|t| t.file.ends_with("model.safetensors"))
            .cloned()
            .collect();
        let optim = h.tensors.len() - model.len();
        summary.push(("optimizer tensors".into(), optim.to_string()));
        return Ok(Checkpoint {
            path: dir.into(),
            format: if hf {
                "descent run checkpoint (Hugging Face model folder)".into()
            } else {
                "descent run checkpoint".into()
            },
            summary,
            metadata: h.metadata.into_iter().collect(),
            tensors: model,
        });
    }
    if hf {
        let summary = crate::hf_folder::model_summary(dir)?;
        return Ok(with_tensors(dir, "Hugging Face model folder", summary, h));
    }
    Ok(with_tensors(dir, "safetensors folder", Vec::new(), h))
}

fn descent_state(dir: &Path) -> Vec<(String, String)> {
    let Ok(text) = crate::safety::read_json_text(&dir.join("state.json")) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text) else {
        return vec![("state.json".into(), "unreadable".into())];
    };
    // Bookkeeping for the control channel means nothing to a reader of the checkpoint.
    map.iter()
        .filter(|(k, v)| !v.is_object() && !v.is_array() && k.as_str() != "control_acked")
        .map(|(k, v)| {
            let text = match (k.as_str(), v.as_f64()) {
                ("time", Some(t)) => utc(t),
                _ => v.as_str().map_or_else(|| v.to_string(), str::to_string),
            };
            (k.clone(), text)
        })
        .collect()
}

/// Seconds since 1970 as `YYYY-MM-DD HH:MM:SS UTC` (days to civil date after H. Hinnant).
fn utc(secs: f64) -> String {
    let s = secs.floor() as i64;
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// 1234567 → "1.23M".
pub fn human_count(n: u64) -> String {
    let f = n as f64;
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.2}K", f / 1e3),
        1_000_000..1_000_000_000 => format!("{:.2}M", f / 1e6),
        _ => format!("{:.2}B", f / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn pickles_are_refused_with_a_pointer_to_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pytorch_model.bin");
        std::fs::write(&p, b"\x80\x02}q\x00.").unwrap();
        let e = open(&p).unwrap_err().to_string();
        assert!(e.contains("pickle") && e.contains("safetensors"), "{e}");
        let e = open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("only pickle weights"), "{e}");
    }

    #[test]
    fn a_folder_of_gguf_files_opens_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let w = 1f32.to_le_bytes();
        for name in ["m-Q8_0.gguf", "m-F32.gguf"] {
            gguf::write(&dir.path().join(name), &[], &[("t", DType::F32, &[1], &w)]).unwrap();
        }
        let ck = open(dir.path()).unwrap();
        assert_eq!(ck.format, "GGUF");
        assert!(ck.path.ends_with("m-F32.gguf"));
        assert!(
            ck.summary
                .contains(&("other GGUF files".into(), "m-Q8_0.gguf".into()))
        );
    }

    #[test]
    fn unix_times_read_as_utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_843_327.48), "2026-11-28 05:22:07 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn empty_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, b"").unwrap();
        assert!(open(&p).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn descent_checkpoints_show_model_tensors_and_step() {
        let dir = tempfile::tempdir().unwrap();
        let one: Vec<u8> = 1f32.to_le_bytes().to_vec();
        safetensors::write(
            &dir.path().join("model.safetensors"),
            &[("l0.w", DType::F32, &[1], &one)],
        )
        .unwrap();
        safetensors::write(
            &dir.path().join("optimizer.safetensors"),
            &[("m.l0.w", DType::F32, &[1], &one)],
        )
        .unwrap();
        std::fs::write(dir.path().join("state.json"), r#"{"step": 40}"#).unwrap();
        let ck = open(dir.path()).unwrap();
        assert_eq!(ck.format, "descent run checkpoint");
        assert_eq!(ck.tensors.len(), 1);
        assert!(ck.summary.contains(&("step".into(), "40".into())));
        assert!(
            ck.summary
                .contains(&("optimizer tensors".into(), "1".into()))
        );
        // A language model's checkpoint is a Hugging Face folder too: its config is read,
        // and the optimizer's tensors are still not the model's.
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "llama", "num_hidden_layers": 4}"#,
        )
        .unwrap();
        let ck = open(dir.path()).unwrap();
        assert_eq!(
            ck.format,
            "descent run checkpoint (Hugging Face model folder)"
        );
        assert_eq!(ck.tensors.len(), 1);
        assert!(ck.summary.contains(&("step".into(), "40".into())));
    }
}
