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
    /// Where queued runs and sweeps go: this machine's queue, or a Slurm cluster.
    pub executor: Executor,
    pub queue: QueueSettings,
    pub slurm: SlurmSettings,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    #[default]
    Local,
    Slurm,
}

impl std::fmt::Display for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Executor::Local => "local",
            Executor::Slurm => "slurm",
        })
    }
}

/// `[queue]`: the slots of this machine's queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// `cores`: a run takes `threads` cores (all of them when threads = 0); `gpus`: a run
    /// takes one GPU that no other process uses.
    pub slots: SlotKind,
    /// The cores the queue hands out; 0 means every core of the machine.
    pub cores: usize,
    /// The GPUs the queue hands out, by index; empty means every GPU NVML sees.
    pub gpus: Vec<u32>,
    /// A GPU counts as free only with at least this fraction of its memory free.
    pub gpu_free_memory: f64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            slots: SlotKind::Cores,
            cores: 0,
            gpus: Vec::new(),
            gpu_free_memory: 0.9,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    #[default]
    Cores,
    Gpus,
}

/// `[slurm]`: how runs are submitted with `executor = "slurm"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSettings {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// The time limit of each run, as sbatch takes it (`1:00:00`, `2-00:00:00`).
    pub time: Option<String>,
    pub gpus_per_run: u32,
    /// CPUs per run; 0 means `threads`, else 1.
    pub cpus_per_run: u32,
    /// Memory per run, as sbatch takes it (`8G`).
    pub mem: Option<String>,
    /// Further `#SBATCH` lines, e.g. `["--qos=high", "--constraint=a100"]`.
    pub extra: Vec<String>,
    /// Let Slurm requeue a preempted or failed node's job; it resumes from its checkpoint.
    pub requeue: bool,
    /// How many members of a sweep may run at once (`--array=…%N`); 0: no limit.
    pub max_parallel: u32,
    /// The `descent` executable on the nodes; default: this one (a shared filesystem).
    pub descent: Option<PathBuf>,
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            partition: None,
            account: None,
            time: None,
            gpus_per_run: 0,
            cpus_per_run: 0,
            mem: None,
            extra: Vec::new(),
            requeue: true,
            max_parallel: 0,
            descent: None,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: DeviceSpec::Auto,
            threads: 0,
            runs_dir: "runs".into(),
            data_dir: "data".into(),
            hub_cache: None,
            executor: Executor::Local,
            queue: QueueSettings::default(),
            slurm: SlurmSettings::default(),
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
        let q = &self.queue;
        if !(q.gpu_free_memory > 0.0 && q.gpu_free_memory <= 1.0) {
            v.push(Violation::new(
                &["queue", "gpu_free_memory"],
                "must be in (0, 1]: the fraction of a GPU's memory that must be free",
            ));
        }
        let sl = &self.slurm;
        // A value with a newline would end the #SBATCH line and start a shell command.
        let one_line = |s: &str| !s.contains(['\n', '\r']) && !s.trim().is_empty();
        for (key, value) in [
            ("partition", &sl.partition),
            ("account", &sl.account),
            ("time", &sl.time),
            ("mem", &sl.mem),
        ] {
            if value
                .as_deref()
                .is_some_and(|s| !one_line(s) || s.contains(' '))
            {
                v.push(Violation::new(
                    &["slurm", key],
                    "must be one word on one line, as sbatch takes it",
                ));
            }
        }
        if sl.extra.iter().any(|e| !one_line(e) || !e.starts_with('-')) {
            v.push(Violation::new(
                &["slurm", "extra"],
                "each entry is one sbatch option on one line, e.g. \"--qos=high\"",
            ));
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
