//! Facts about the machine for the System pane, gathered on a background thread so that NVML
//! (slow to load) and device probing never stall the UI.

use descent_models::device::{self, DeviceSpec};
use descent_panes::{GpuProcess, GpuRow, GpuView, SystemView};
use nvml_wrapper::Nvml;
use std::sync::mpsc::{self, Sender};

/// Starts the sampler. Each `()` sent on the returned channel produces one fresh
/// [`SystemView`] through `on_sample`; the thread ends when that returns false or the
/// channel closes.
pub fn spawn(
    threads_setting: usize,
    mut on_sample: impl FnMut(SystemView) -> bool + Send + 'static,
) -> Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("system-sampler".into())
        .spawn(move || {
            let mut sampler = Sampler::new(threads_setting);
            if !on_sample(sampler.sample()) {
                return;
            }
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                if !on_sample(sampler.sample()) {
                    return;
                }
            }
        })
        .expect("spawning the system sampler");
    tx
}

struct Sampler {
    sys: Option<sysinfo::System>,
    nvml: Result<Nvml, String>,
    facts: SystemView,
    /// CPU use is a difference between two readings; the first sample has none.
    samples: usize,
}

impl Sampler {
    fn new(threads_setting: usize) -> Sampler {
        let mut sys = sysinfo::System::new().ok();
        if let Some(s) = sys.as_mut() {
            s.refresh_cpu_all();
        }
        let (cpus, cpu_brand) = sys.as_ref().map_or((0, String::new()), |s| {
            let brand = s.cpus().first().map(|c| c.brand().trim().to_string());
            (s.cpus().len(), brand.unwrap_or_default())
        });
        let auto = device::resolve(DeviceSpec::Auto);
        let (auto_device, auto_reason) = match auto {
            Ok(c) => (c.label, c.reason),
            Err(e) => ("cpu".into(), e),
        };
        let built = device::backends_built();
        let threads = match threads_setting {
            0 => format!(
                "{} (one per core; set threads in descent.toml)",
                candle_threads()
            ),
            n => format!("{n} (threads in descent.toml)"),
        };
        let facts = SystemView {
            host: sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into()),
            os: sysinfo::System::long_os_version().unwrap_or_else(|_| "unknown".into()),
            cpu_brand,
            cpus,
            auto_device,
            auto_reason,
            backends_built: if built.is_empty() {
                "cpu only (no cuda or metal feature)".into()
            } else {
                format!("cpu, {}", built.join(", "))
            },
            threads,
            ..SystemView::default()
        };
        let nvml = Nvml::init().map_err(|e| nvml_reason(&e));
        Sampler {
            sys,
            nvml,
            facts,
            samples: 0,
        }
    }

    fn sample(&mut self) -> SystemView {
        let mut v = self.facts.clone();
        if let Some(sys) = self.sys.as_mut() {
            sys.refresh_cpu_usage();
            sys.refresh_memory();
            v.cpu_usage = (self.samples > 0).then(|| sys.global_cpu_usage());
            v.mem_used = sys.used_memory();
            v.mem_total = sys.total_memory();
            v.swap_used = sys.used_swap();
            v.swap_total = sys.total_swap();
        }
        if let Ok(l) = sysinfo::System::load_average() {
            v.load_avg = [l.one, l.five, l.fifteen];
        }
        self.samples += 1;
        v.gpus = match &self.nvml {
            Err(why) => GpuView::Unavailable(why.clone()),
            Ok(nvml) => gpus(nvml),
        };
        v
    }
}

fn candle_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn nvml_reason(e: &nvml_wrapper::error::NvmlError) -> String {
    use nvml_wrapper::error::NvmlError as E;
    match e {
        E::LibloadingError(_) | E::LibraryNotFound => {
            "The NVIDIA management library (libnvidia-ml) is not installed: no NVIDIA driver on \
             this machine."
                .into()
        }
        E::DriverNotLoaded => "The NVIDIA driver is installed but not loaded.".into(),
        E::NoPermission => "Not permitted to query the NVIDIA driver.".into(),
        other => format!("NVML could not start: {other}"),
    }
}

/// The GPUs NVML sees now, for the queue's GPU slots; why there are none otherwise.
pub fn gpu_facts() -> Result<Vec<GpuRow>, String> {
    let nvml = Nvml::init().map_err(|e| nvml_reason(&e))?;
    match gpus(&nvml) {
        GpuView::Gpus { gpus, .. } => Ok(gpus),
        GpuView::Unavailable(why) => Err(why),
        GpuView::Probing => Err("NVML has not answered".into()),
    }
}

fn gpus(nvml: &Nvml) -> GpuView {
    let count = match nvml.device_count() {
        Ok(0) => return GpuView::Unavailable("The NVIDIA driver reports no GPUs.".into()),
        Ok(n) => n,
        Err(e) => return GpuView::Unavailable(format!("NVML cannot count GPUs: {e}")),
    };
    let driver = nvml.sys_driver_version().unwrap_or_else(|_| "?".into());
    let gpus = (0..count)
        .filter_map(|i| nvml.device_by_index(i).ok().map(|d| (i, d)))
        .map(|(index, d)| {
            let mem = d.memory_info().ok();
            let processes = d
                .running_compute_processes()
                .unwrap_or_default()
                .into_iter()
                .map(|p| GpuProcess {
                    pid: p.pid,
                    name: std::fs::read_to_string(format!("/proc/{}/comm", p.pid))
                        .map(|s| s.trim().to_string())
                        .unwrap_or_else(|_| "?".into()),
                    mem_used: match p.used_gpu_memory {
                        nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(b),
                        nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
                    },
                })
                .collect();
            GpuRow {
                index,
                name: d.name().unwrap_or_else(|_| "NVIDIA GPU".into()),
                util_percent: d.utilization_rates().ok().map(|u| u.gpu),
                mem_used: mem.as_ref().map_or(0, |m| m.used),
                mem_total: mem.as_ref().map_or(0, |m| m.total),
                temperature_c: d
                    .temperature(nvml_wrapper::enum_wrappers::device::TemperatureSensor::Gpu)
                    .ok(),
                power_w: d.power_usage().ok().map(|mw| mw as f64 / 1000.0),
                processes,
            }
        })
        .collect();
    GpuView::Gpus { driver, gpus }
}
