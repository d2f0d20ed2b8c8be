//! Choosing the candle device.
//!
//! candle's `Device::cuda_if_available` only checks the `cuda` cargo feature, so a CUDA build
//! on a machine without a usable GPU would fail to start. [`resolve`] tries each backend this
//! binary was built with and falls back to the CPU, saying why.

use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A device as configs and the CLI name it: `auto`, `cpu`, `cuda`, `cuda:N` or `metal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            "metal" => Ok(DeviceSpec::Metal),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| {
                    format!("unknown device {s:?}; expected auto, cpu, cuda, cuda:N or metal")
                }),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal => f.write_str("metal"),
        }
    }
}

/// A device that was opened, with a human account of how it was chosen.
#[derive(Clone, Debug)]
pub struct Chosen {
    pub device: Device,
    /// `cpu`, `cuda:0`, `metal:0`.
    pub label: String,
    /// Why this one, e.g. "built without cuda or metal support".
    pub reason: String,
}

/// The GPU backends compiled into this binary.
pub fn backends_built() -> Vec<&'static str> {
    let mut b = Vec::new();
    if cfg!(feature = "cuda") {
        b.push("cuda");
    }
    if cfg!(feature = "metal") {
        b.push("metal");
    }
    b
}

/// Opens the device `spec` names. `auto` never fails: without a usable GPU it is the CPU.
/// An explicit GPU that cannot be opened is an error that says why.
pub fn resolve(spec: DeviceSpec) -> Result<Chosen, String> {
    let cpu = |reason: String| Chosen {
        device: Device::Cpu,
        label: "cpu".into(),
        reason,
    };
    match spec {
        DeviceSpec::Cpu => Ok(cpu("asked for".into())),
        DeviceSpec::Cuda(n) => open_cuda(n),
        DeviceSpec::Metal => open_metal(),
        DeviceSpec::Auto => {
            let mut tried = Vec::new();
            if cfg!(feature = "cuda") {
                match open_cuda(0) {
                    Ok(c) => return Ok(c),
                    Err(e) => tried.push(e),
                }
            }
            if cfg!(feature = "metal") {
                match open_metal() {
                    Ok(c) => return Ok(c),
                    Err(e) => tried.push(e),
                }
            }
            Ok(cpu(if tried.is_empty() {
                "built without cuda or metal support".into()
            } else {
                format!("no usable GPU ({})", tried.join("; "))
            }))
        }
    }
}

fn open_cuda(n: usize) -> Result<Chosen, String> {
    if !cfg!(feature = "cuda") {
        return Err(format!(
            "cuda:{n} asked for, but this binary was built without the `cuda` feature \
             (rebuild with `cargo build --release --features cuda`)"
        ));
    }
    Device::new_cuda(n)
        .map(|device| Chosen {
            device,
            label: format!("cuda:{n}"),
            reason: "first usable CUDA GPU".into(),
        })
        .map_err(|e| format!("cuda:{n} cannot be opened: {e}"))
}

fn open_metal() -> Result<Chosen, String> {
    if !cfg!(feature = "metal") {
        return Err(
            "metal asked for, but this binary was built without the `metal` feature \
                    (rebuild with `cargo build --release --features metal`)"
                .into(),
        );
    }
    Device::new_metal(0)
        .map(|device| Chosen {
            device,
            label: "metal:0".into(),
            reason: "Apple GPU".into(),
        })
        .map_err(|e| format!("metal cannot be opened: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings_round_trip() {
        for s in ["auto", "cpu", "cuda:0", "cuda:3", "metal"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(0)));
        assert!(
            "tpu"
                .parse::<DeviceSpec>()
                .unwrap_err()
                .contains("unknown device")
        );
    }

    #[test]
    fn auto_never_fails_and_cpu_is_cpu() {
        let auto = resolve(DeviceSpec::Auto).unwrap();
        if backends_built().is_empty() {
            assert_eq!(auto.label, "cpu");
            assert!(auto.reason.contains("built without"));
        }
        assert!(matches!(
            resolve(DeviceSpec::Cpu).unwrap().device,
            Device::Cpu
        ));
    }

    #[test]
    #[cfg(not(feature = "cuda"))]
    fn an_explicit_gpu_without_the_feature_says_how_to_get_it() {
        let e = resolve(DeviceSpec::Cuda(1)).unwrap_err();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
