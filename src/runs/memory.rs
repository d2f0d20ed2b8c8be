//! Whether a run's estimated memory ([`descent_models::memory::Footprint`]) fits the device it
//! is about to use: RAM for the CPU (what the OS counts as available, or a cgroup's limit
//! when lower), the free memory of the chosen GPU for CUDA (NVML). Every kind of run asks
//! here before it builds its model; `descent check` asks too and warns at half.

use descent_models::memory::{Footprint, Place};
use descent_panes::human_bytes as human;
use std::path::Path;

/// Memory that can be had now.
#[derive(Clone, Debug, PartialEq)]
pub struct Available {
    /// Host RAM.
    pub ram: u64,
    /// (label, free bytes) of the GPU the run will use; `None` for a CPU run.
    pub gpu: Option<(String, u64)>,
}

impl Available {
    /// What is free for a run on the device `label` (`cpu`, `cuda:N`, `metal:N`).
    pub fn now(label: &str) -> Result<Available, String> {
        let ram = free_ram()?;
        let gpu = match label.strip_prefix("cuda:") {
            Some(n) => {
                let n: usize = n.parse().map_err(|_| format!("bad device label {label}"))?;
                Some((label.to_string(), gpu_free(n)?))
            }
            // Metal shares the host's memory; the CPU is the host.
            None => None,
        };
        Ok(Available { ram, gpu })
    }
}

fn free_ram() -> Result<u64, String> {
    let mut sys = sysinfo::System::new().map_err(|e| format!("cannot read memory: {e}"))?;
    sys.refresh_memory();
    let mut free = sys.available_memory();
    if let Some(limits) = sys.cgroup_limits() {
        free = free.min(limits.free_memory);
    }
    Ok(free)
}

/// Free memory of CUDA device `ordinal`. CUDA numbers the devices `CUDA_VISIBLE_DEVICES`
/// lists (indices or UUIDs) in that order; NVML numbers all of them.
fn gpu_free(ordinal: usize) -> Result<u64, String> {
    let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("NVML: {e}"))?;
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let entry = visible
        .as_deref()
        .map(|v| v.split(',').map(str::trim).nth(ordinal).map(String::from));
    let device = match entry {
        None => nvml.device_by_index(ordinal as u32),
        Some(None) => {
            return Err(format!(
                "cuda:{ordinal} is not among CUDA_VISIBLE_DEVICES={}",
                visible.unwrap_or_default()
            ));
        }
        Some(Some(e)) => match e.parse::<u32>() {
            Ok(i) => nvml.device_by_index(i),
            Err(_) => nvml.device_by_uuid(e.as_str()),
        },
    }
    .map_err(|e| format!("NVML cannot open cuda:{ordinal}: {e}"))?;
    Ok(device
        .memory_info()
        .map_err(|e| format!("NVML cannot read cuda:{ordinal}'s memory: {e}"))?
        .free)
}

/// Need against what is there, per memory.
#[derive(Clone, Debug, PartialEq)]
struct Fit {
    /// (memory in words, bytes needed, bytes available), RAM first.
    memories: Vec<(String, u64, u64)>,
}

impl Fit {
    fn of(fp: &Footprint, avail: &Available) -> Fit {
        let memories = match &avail.gpu {
            None => vec![("RAM".to_string(), fp.total(), avail.ram)],
            Some((label, free)) => vec![
                ("RAM".to_string(), fp.bytes(Place::Host), avail.ram),
                (format!("{label} memory"), fp.bytes(Place::Device), *free),
            ],
        };
        Fit { memories }
    }

    /// The memories where more is needed than `share` of what is available.
    fn over(&self, share: f64) -> Vec<&(String, u64, u64)> {
        self.memories
            .iter()
            .filter(|(_, need, have)| *need as f64 > *have as f64 * share)
            .collect()
    }

    fn describe(&self, share: f64, fp: &Footprint) -> String {
        let short: Vec<String> = self
            .over(share)
            .iter()
            .map(|(what, need, have)| {
                format!(
                    "about {} of {what} at its peak, {} available",
                    human(*need),
                    human(*have)
                )
            })
            .collect();
        let parts: Vec<String> = fp
            .parts
            .iter()
            .filter(|p| p.bytes > 0)
            .map(|p| format!("{} {}", p.what, human(p.bytes)))
            .collect();
        let largest = fp
            .largest
            .as_ref()
            .map_or(String::new(), |(name, shape, b)| {
                format!("; the largest tensor is {name} ({shape}, {})", human(*b))
            });
        format!("{} ({}){largest}", short.join(" and "), parts.join(", "))
    }
}

/// Refuses a run whose estimate exceeds what its device has: the message names the file,
/// the estimate and its parts, what is available, and `drivers` (the settings that set the
/// size, as `key = value`).
pub fn ensure_fits(
    file: &Path,
    fp: &Footprint,
    avail: &Available,
    drivers: &[String],
) -> Result<(), String> {
    match shortfall(fp, avail) {
        None => Ok(()),
        Some(need) => Err(format!(
            "{}: the run would need {need}. The size comes from {}; make the model or the batch \
             smaller, or use a device with more memory",
            file.display(),
            drivers.join(", ")
        )),
    }
}

/// What `fp` needs beyond what is available, in words (each memory short, and the parts),
/// or `None` when it fits: for messages of any kind of job.
pub fn shortfall(fp: &Footprint, avail: &Available) -> Option<String> {
    let fit = Fit::of(fp, avail);
    (!fit.over(1.0).is_empty()).then(|| fit.describe(1.0, fp))
}

/// For `descent check`: a warning when the estimate exceeds half of what is available now.
pub fn warning(
    file: &Path,
    fp: &Footprint,
    avail: &Available,
    drivers: &[String],
) -> Option<String> {
    let fit = Fit::of(fp, avail);
    if fit.over(0.5).is_empty() {
        return None;
    }
    let verdict = if fit.over(1.0).is_empty() {
        "more than half of what is free now"
    } else {
        "more than is free now: the run would be refused"
    };
    Some(format!(
        "{}: warning: the run would need {} — {verdict}; set by {}",
        file.display(),
        fit.describe(0.5, fp),
        drivers.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use descent_models::memory::{Part, Phase};

    fn footprint(device: u64, host: u64) -> Footprint {
        Footprint {
            parts: vec![
                Part {
                    what: "weights".into(),
                    bytes: device,
                    place: Place::Device,
                    phase: Phase::Always,
                },
                Part {
                    what: "dataset".into(),
                    bytes: host,
                    place: Place::Host,
                    phase: Phase::Always,
                },
            ],
            largest: Some(("fc0.weight".into(), "64 × 100000000".into(), device)),
        }
    }

    #[test]
    fn a_cpu_run_counts_every_part_against_ram() {
        let fp = footprint(30 << 30, 1 << 20);
        let avail = Available {
            ram: 20 << 30,
            gpu: None,
        };
        let drivers = ["model.hidden = [100000000]".to_string()];
        let err =
            ensure_fits(Path::new("experiments/huge.toml"), &fp, &avail, &drivers).unwrap_err();
        assert_eq!(
            err,
            "experiments/huge.toml: the run would need about 30.0 GiB of RAM at its peak, \
             20.0 GiB available (weights 30.0 GiB, dataset 1.0 MiB); the largest tensor is fc0.weight \
             (64 × 100000000, 30.0 GiB). The size comes from model.hidden = [100000000]; make \
             the model or the batch smaller, or use a device with more memory"
        );
        let roomy = Available {
            ram: 50 << 30,
            gpu: None,
        };
        assert!(ensure_fits(Path::new("x.toml"), &fp, &roomy, &drivers).is_ok());
        let warn = warning(Path::new("x.toml"), &fp, &roomy, &drivers).unwrap();
        assert!(warn.contains("more than half"), "{warn}");
        assert!(warning(Path::new("x.toml"), &footprint(1, 1), &roomy, &drivers).is_none());
    }

    #[test]
    fn a_gpu_run_counts_device_parts_against_the_gpu_and_the_rest_against_ram() {
        let fp = footprint(10 << 30, 1 << 30);
        let gpu = |free: u64| Available {
            ram: 4 << 30,
            gpu: Some(("cuda:0".into(), free)),
        };
        assert!(ensure_fits(Path::new("x.toml"), &fp, &gpu(16 << 30), &[]).is_ok());
        let err = ensure_fits(Path::new("x.toml"), &fp, &gpu(8 << 30), &[]).unwrap_err();
        assert!(
            err.contains("about 10.0 GiB of cuda:0 memory at its peak, 8.0 GiB available"),
            "{err}"
        );
        assert!(!err.contains("of RAM"), "RAM is enough: {err}");
    }

    #[test]
    fn this_machine_reports_some_ram() {
        assert!(Available::now("cpu").unwrap().ram > 0);
        assert!(Available::now("cuda:x").is_err());
    }

    #[test]
    fn a_sampling_batch_too_big_for_the_device_is_a_shortfall_in_words() {
        // 1M weights and 4,096 rows of 10,000 activation elements: about 160 MB.
        let fp = descent_models::memory::sampling(1_000_000, 4, 10_000, 64, 4096);
        let small = Available {
            ram: 100 << 20,
            gpu: None,
        };
        let need = shortfall(&fp, &small).unwrap();
        assert!(
            need.contains("of RAM at its peak, 100.0 MiB available"),
            "{need}"
        );
        assert!(need.contains("activations of a batch of 4096"), "{need}");
        let roomy = Available {
            ram: 1 << 30,
            gpu: None,
        };
        assert!(shortfall(&fp, &roomy).is_none());
    }
}
