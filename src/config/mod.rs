//! Workspace and experiment configuration files: reading, parsing and validation.
//!
//! Every problem becomes a [`ConfigError`] that renders as `file:line:col: message`, with the
//! message naming the key it is about. Parsing is split in three steps so that each can say
//! where it failed: [`read_text`] (size, encoding), serde via `toml` (syntax, unknown keys,
//! types) and a schema-specific `validate` (ranges, cross-field rules).

mod experiment;
pub mod grpo;
mod locate;
pub mod probes;
mod settings;
pub mod sweep;

pub use experiment::{
    Activation, Arch, DataConfig, DataSource, Experiment, Kind, LmConfig, ModelConfig, OptimConfig,
    OptimName, ScheduleConfig, ScheduleName, TrainConfig,
};
pub use settings::{DeviceSpec, Executor, QueueSettings, Settings, SlotKind, SlurmSettings};

use std::fmt;
use std::path::{Path, PathBuf};

/// Config files larger than this are refused unread: a real config is a few hundred bytes, and a
/// multi-megabyte file in `experiments/` is almost certainly something saved there by mistake.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// One problem with one config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column (in characters) where the problem is, when it has a place.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl ConfigError {
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            position: None,
            message: message.into(),
        }
    }

    fn at(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            position: Some(line_col(text, offset)),
            message: message.into(),
        }
    }

    /// Renders with the file path shown relative to `base` when it lies inside it.
    pub fn display_relative(&self, base: &Path) -> String {
        let file = self.file.strip_prefix(base).unwrap_or(&self.file);
        format_error(file, self.position, &self.message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_error(&self.file, self.position, &self.message))
    }
}

impl std::error::Error for ConfigError {}

fn format_error(file: &Path, position: Option<(usize, usize)>, message: &str) -> String {
    match position {
        Some((line, col)) => format!("{}:{line}:{col}: {message}", file.display()),
        None => format!("{}: {message}", file.display()),
    }
}

/// 1-based (line, column) of a byte offset; columns count characters, as editors do.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let offset = (0..=offset)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Reads a config file as text, refusing what cannot be a config: too large, binary, not UTF-8.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let err = |m: String| ConfigError::whole_file(path, m);
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(err("is a folder, not a config file".into()));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(err(format!(
            "file is {} bytes; config files are limited to {} bytes — is this really a config?",
            meta.len(),
            MAX_CONFIG_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    text_from_bytes(path, bytes)
}

/// Checks that `bytes` are a text file: no NUL bytes and valid UTF-8.
pub fn text_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<String, ConfigError> {
    if let Some(i) = bytes.iter().position(|&b| b == 0) {
        let text = String::from_utf8_lossy(&bytes[..i]);
        return Err(ConfigError::at(
            path,
            &text,
            i,
            "binary file (contains a NUL byte); expected TOML text",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let text = String::from_utf8_lossy(&bytes[..valid]).into_owned();
        ConfigError::at(
            path,
            &text,
            valid,
            "invalid UTF-8; TOML files must be UTF-8 text",
        )
    })
}

/// A schema rule broken by a parsed value, placed by the key path it concerns.
#[derive(Debug)]
pub(crate) struct Violation {
    /// Key path, e.g. `["optim", "lr"]`.
    pub path: Vec<&'static str>,
    pub message: String,
}

impl Violation {
    pub fn new(path: &[&'static str], message: impl Into<String>) -> Self {
        Violation {
            path: path.to_vec(),
            message: message.into(),
        }
    }
}

/// Parses TOML text into `T` and validates it, turning every failure into positioned errors.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    validate: impl Fn(&T) -> Vec<Violation>,
) -> Result<T, Vec<ConfigError>> {
    let value: T = toml::from_str(text).map_err(|e| vec![serde_error(path, text, &e)])?;
    let violations = validate(&value);
    if violations.is_empty() {
        return Ok(value);
    }
    Err(violations
        .into_iter()
        .map(|v| {
            let offset = locate::span_of(text, &v.path).map_or(0, |s| s.start);
            let key = v.path.join(".");
            ConfigError::at(path, text, offset, format!("`{key}`: {}", v.message))
        })
        .collect())
}

fn serde_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return ConfigError::whole_file(path, message);
    };
    // Type errors from serde do not say which key they are about; find it from the span.
    let message = match locate::key_path_at(text, span.clone()) {
        Some(key) if !message.contains(&format!("`{key}`")) => format!("`{key}`: {message}"),
        _ => message,
    };
    ConfigError::at(path, text, span.start, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(text, text.find(" = 2").unwrap()), (2, 3));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn binary_and_invalid_utf8_are_refused_with_a_place() {
        let p = Path::new("x.toml");
        let e = text_from_bytes(p, b"a = 1\nb\0".to_vec()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.toml:2:2: binary file (contains a NUL byte); expected TOML text"
        );
        let e = text_from_bytes(p, b"a = \"\xff\"".to_vec()).unwrap_err();
        assert_eq!(e.position, Some((1, 6)));
        assert!(e.message.contains("UTF-8"));
    }
}
