//! Hugging Face JSON files read with messages that name the file and the key: the
//! components' `config.json`, and the special tokens of `tokenizer_config.json`.

use serde_json::Value;
use std::path::Path;

/// A special token's text in `tokenizer_config.json`: a string or `{"content": …}`.
pub fn special_token(config: &Value, key: &str) -> Option<String> {
    let v = config.get(key)?;
    v.as_str()
        .or_else(|| v.get("content").and_then(|c| c.as_str()))
        .map(String::from)
}

/// A `config.json` (or any JSON object file), parsed, with its path for messages.
pub struct Json {
    pub path: String,
    pub value: Value,
}

impl Json {
    pub fn read(path: &Path) -> Result<Json, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Json::parse(&text, &path.display().to_string())
    }

    /// `text` as the file `path` holds it.
    pub fn parse(text: &str, path: &str) -> Result<Json, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("{path}: {e}"))?;
        if !value.is_object() {
            return Err(format!("{path}: expected a JSON object"));
        }
        Ok(Json {
            path: path.to_string(),
            value,
        })
    }

    /// The value of `key`, null counting as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// `FILE: "KEY": WHY`.
    pub fn err(&self, key: &str, why: impl std::fmt::Display) -> String {
        format!("{}: \"{key}\": {why}", self.path)
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| self.err(key, format!("expected a whole number, found {v}"))),
        }
    }

    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize, String> {
        Ok(self.opt_usize(key)?.unwrap_or(default))
    }

    pub fn usize(&self, key: &str) -> Result<usize, String> {
        self.opt_usize(key)?.ok_or_else(|| self.err(key, "missing"))
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.err(key, format!("expected a number, found {v}"))),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err(key, format!("expected true or false, found {v}"))),
        }
    }

    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> Result<&'a str, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.err(key, format!("expected a string, found {v}"))),
        }
    }

    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        let v = self.get(key).ok_or_else(|| self.err(key, "missing"))?;
        v.as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(String::from)).collect())
            .ok_or_else(|| self.err(key, format!("expected a list of strings, found {v}")))
    }

    pub(crate) fn usizes(&self, key: &str) -> Result<Vec<usize>, String> {
        let v = self.get(key).ok_or_else(|| self.err(key, "missing"))?;
        v.as_array()
            .and_then(|a| a.iter().map(|n| n.as_u64().map(|n| n as usize)).collect())
            .filter(|a: &Vec<usize>| !a.is_empty())
            .ok_or_else(|| self.err(key, format!("expected a list of whole numbers, found {v}")))
    }

    /// A whole number for every block, or one for all (`default` when absent).
    pub(crate) fn per_block(
        &self,
        key: &str,
        blocks: usize,
        default: usize,
    ) -> Result<Vec<usize>, String> {
        match self.get(key) {
            None => Ok(vec![default; blocks]),
            Some(Value::Array(_)) => {
                let v = self.usizes(key)?;
                if v.len() != blocks {
                    return Err(self.err(key, format!("{} values for {blocks} blocks", v.len())));
                }
                Ok(v)
            }
            Some(_) => Ok(vec![self.usize(key)?; blocks]),
        }
    }

    /// Refuses `key` unless it is absent, null or `ok`.
    pub(crate) fn only(&self, key: &str, ok: &Value, what: &str) -> Result<(), String> {
        match self.get(key) {
            Some(v) if v != ok => Err(self.err(
                key,
                format!(
                    "{v} is not supported ({what}); descent runs Stable Diffusion 1.x/2.x UNets"
                ),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn class_name(&self, want: &[&str]) -> Result<(), String> {
        match self.get("_class_name").and_then(Value::as_str) {
            Some(c) if want.contains(&c) => Ok(()),
            Some(c) => Err(self.err(
                "_class_name",
                format!("{c}; expected {}", want.join(" or ")),
            )),
            None => Err(self.err("_class_name", "missing")),
        }
    }
}
