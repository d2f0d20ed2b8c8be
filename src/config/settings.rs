//! `descent.toml`: the workspace's defaults.

use super::{ConfigError, Violation};
pub use descent_models::device::DeviceSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The workspace defaults in `descent.toml`. Relative paths are relative to the workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Default device for experiments that do not name one.
    pub device: DeviceSpec,
    /// CPU threads for numerics; 0 means one per core.
    pub threads: usize,
    pub runs_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The Hugging Face hub cache; unset means `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub hub_cache: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: DeviceSpec::Auto,
            threads: 0,
            runs_dir: "runs".into(),
            data_dir: "data".into(),
            hub_cache: None,
        }
    }
}

impl Settings {
    pub const FILE: &'static str = "descent.toml";

    pub fn parse(path: &Path, text: &str) -> Result<Settings, Vec<ConfigError>> {
        super::parse(path, text, Settings::validate)
    }

    fn validate(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        if self.threads > 4096 {
            v.push(Violation::new(
                &["threads"],
                "must be at most 4096 (0 = one per core)",
            ));
        }
        for (key, p) in [("runs_dir", &self.runs_dir), ("data_dir", &self.data_dir)] {
            if p.as_os_str().is_empty() {
                v.push(Violation::new(&[key], "must not be empty"));
            }
        }
        v
    }

    /// `runs_dir` resolved against the workspace root.
    pub fn runs_path(&self, root: &Path) -> PathBuf {
        root.join(&self.runs_dir)
    }

    pub fn data_path(&self, root: &Path) -> PathBuf {
        root.join(&self.data_dir)
    }

    /// The hub cache the workspace uses: its own setting, else the one `huggingface_hub` uses.
    pub fn hub_cache_path(&self, root: &Path) -> Option<PathBuf> {
        if let Some(p) = &self.hub_cache {
            return Some(root.join(p));
        }
        crate::sources::default_hub_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, Vec<ConfigError>> {
        Settings::parse(Path::new("descent.toml"), text)
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn bad_device_is_placed_at_its_value() {
        let e = parse("threads = 2\ndevice = \"tpu\"\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].position, Some((2, 10)));
        assert!(e[0].message.contains("`device`"), "{}", e[0].message);
        assert!(
            e[0].message.contains("unknown device \"tpu\""),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("device = \"cpu\"\nthreds = 2\n").unwrap_err();
        assert_eq!(e[0].position, Some((2, 1)));
        assert!(
            e[0].message.contains("unknown field `threds`"),
            "{}",
            e[0].message
        );
    }
}
