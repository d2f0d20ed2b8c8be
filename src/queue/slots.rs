//! Slot accounting for the local queue: what a run needs, what is held, and where the next
//! run fits — or, in words, why it waits. Pure functions of their inputs, so every case is
//! tested without a busy machine.

use crate::config::{QueueSettings, SlotKind};
use descent_panes::GpuRow;
use serde::{Deserialize, Serialize};

/// What a started run holds until its process ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub cores: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
}

/// A slot held by a live run, named for the messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub run: String,
    pub slot: Slot,
}

/// Why the next run does not start now.
#[derive(Clone, Debug, PartialEq)]
pub enum Wait {
    /// It starts when a run ends.
    Busy(String),
    /// It cannot start on this machine as configured, whatever ends.
    Never(String),
}

/// The machine as the queue sees it.
pub struct Machine<'a> {
    pub cores: usize,
    /// NVML's GPUs, or why there are none.
    pub gpus: &'a Result<Vec<GpuRow>, String>,
}

/// The cores a run takes: `threads`, or every core the queue has when threads = 0.
pub fn cores_per_run(settings: &QueueSettings, threads: usize, machine_cores: usize) -> usize {
    let total = total_cores(settings, machine_cores);
    if threads == 0 { total } else { threads }
}

fn total_cores(settings: &QueueSettings, machine_cores: usize) -> usize {
    if settings.cores == 0 {
        machine_cores.max(1)
    } else {
        settings.cores
    }
}

/// Where a run needing `cores` fits beside `held`, or why it waits.
pub fn place(
    settings: &QueueSettings,
    machine: &Machine,
    held: &[Held],
    cores: usize,
) -> Result<Slot, Wait> {
    match settings.slots {
        SlotKind::Cores => place_cores(settings, machine.cores, held, cores),
        SlotKind::Gpus => place_gpu(settings, machine.gpus, held),
    }
}

fn place_cores(
    settings: &QueueSettings,
    machine_cores: usize,
    held: &[Held],
    cores: usize,
) -> Result<Slot, Wait> {
    let total = total_cores(settings, machine_cores);
    if cores > total {
        return Err(Wait::Never(format!(
            "needs {cores} cores (threads in descent.toml) and the queue has {total} \
             ([queue] cores); lower threads or raise cores"
        )));
    }
    let used: usize = held.iter().map(|h| h.slot.cores).sum();
    if used + cores > total {
        return Err(Wait::Busy(format!(
            "waiting for {cores} free core{}: {used} of {total} held by {}",
            if cores == 1 { "" } else { "s" },
            names(held)
        )));
    }
    Ok(Slot { cores, gpu: None })
}

fn place_gpu(
    settings: &QueueSettings,
    gpus: &Result<Vec<GpuRow>, String>,
    held: &[Held],
) -> Result<Slot, Wait> {
    let gpus = match gpus {
        Ok(g) if !g.is_empty() => g,
        Ok(_) => {
            return Err(Wait::Never(
                "[queue] slots = \"gpus\", and NVML sees no GPU".into(),
            ));
        }
        Err(why) => {
            return Err(Wait::Never(format!(
                "[queue] slots = \"gpus\", but there are no GPUs to hand out: {why}"
            )));
        }
    };
    let allowed: Vec<&GpuRow> = gpus
        .iter()
        .filter(|g| settings.gpus.is_empty() || settings.gpus.contains(&g.index))
        .collect();
    if allowed.is_empty() {
        return Err(Wait::Never(format!(
            "[queue] gpus = {:?} names none of the GPUs NVML sees ({})",
            settings.gpus,
            gpus.iter()
                .map(|g| g.index.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut why = Vec::new();
    for g in allowed {
        if let Some(h) = held.iter().find(|h| h.slot.gpu == Some(g.index)) {
            why.push(format!("GPU {} runs {}", g.index, h.run));
            continue;
        }
        if let Some(p) = g.processes.first() {
            why.push(format!(
                "GPU {} is used by pid {} ({})",
                g.index, p.pid, p.name
            ));
            continue;
        }
        let free = 1.0 - g.mem_used as f64 / (g.mem_total.max(1) as f64);
        if free < settings.gpu_free_memory {
            why.push(format!(
                "GPU {} has {:.0}% of its memory free, under [queue] gpu_free_memory = {}",
                g.index,
                free * 100.0,
                settings.gpu_free_memory
            ));
            continue;
        }
        return Ok(Slot {
            cores: 0,
            gpu: Some(g.index),
        });
    }
    Err(Wait::Busy(format!(
        "waiting for a free GPU: {}",
        why.join("; ")
    )))
}

fn names(held: &[Held]) -> String {
    match held.len() {
        0 => "nothing".into(),
        1..=3 => held
            .iter()
            .map(|h| h.run.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        n => format!("{}, {} and {} more", held[0].run, held[1].run, n - 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use descent_panes::GpuProcess;

    fn held(run: &str, cores: usize, gpu: Option<u32>) -> Held {
        Held {
            run: run.into(),
            slot: Slot { cores, gpu },
        }
    }

    fn cores(n: usize) -> QueueSettings {
        QueueSettings {
            cores: n,
            ..QueueSettings::default()
        }
    }

    const NO_GPUS: Result<Vec<GpuRow>, String> = Ok(Vec::new());

    #[test]
    fn runs_take_cores_until_none_are_left() {
        let s = cores(4);
        let m = Machine {
            cores: 64,
            gpus: &NO_GPUS,
        };
        assert_eq!(
            place(&s, &m, &[], 2),
            Ok(Slot {
                cores: 2,
                gpu: None
            })
        );
        let busy = [held("a/1", 2, None), held("a/2", 1, None)];
        assert_eq!(place(&s, &m, &busy, 1).unwrap().cores, 1);
        let Err(Wait::Busy(why)) = place(&s, &m, &busy, 2) else {
            panic!("two cores cannot fit in one")
        };
        assert_eq!(why, "waiting for 2 free cores: 3 of 4 held by a/1, a/2");
        // A run larger than the queue never starts, and says what to change.
        let Err(Wait::Never(why)) = place(&s, &m, &[], 8) else {
            panic!()
        };
        assert!(
            why.contains("needs 8 cores") && why.contains("has 4"),
            "{why}"
        );
    }

    #[test]
    fn threads_zero_takes_the_whole_queue() {
        let s = cores(0);
        assert_eq!(cores_per_run(&s, 0, 2), 2);
        assert_eq!(cores_per_run(&s, 1, 2), 1);
        assert_eq!(cores_per_run(&cores(6), 0, 2), 6);
    }

    fn gpu(index: u32, used: u64, processes: Vec<GpuProcess>) -> GpuRow {
        GpuRow {
            index,
            name: "H100".into(),
            mem_used: used,
            mem_total: 100,
            processes,
            ..GpuRow::default()
        }
    }

    #[test]
    fn a_gpu_is_free_when_no_run_and_no_process_has_it_and_its_memory_is_free() {
        let s = QueueSettings {
            slots: SlotKind::Gpus,
            ..QueueSettings::default()
        };
        let other = GpuProcess {
            pid: 4242,
            name: "python".into(),
            mem_used: None,
        };
        let facts = Ok(vec![
            gpu(0, 0, Vec::new()),
            gpu(1, 50, vec![other]),
            gpu(2, 30, Vec::new()),
            gpu(3, 1, Vec::new()),
        ]);
        let m = Machine {
            cores: 8,
            gpus: &facts,
        };
        assert_eq!(place(&s, &m, &[], 1).unwrap().gpu, Some(0));
        let mine = [held("a/1", 0, Some(0))];
        assert_eq!(place(&s, &m, &mine, 1).unwrap().gpu, Some(3));
        let all = [held("a/1", 0, Some(0)), held("a/2", 0, Some(3))];
        let Err(Wait::Busy(why)) = place(&s, &m, &all, 1) else {
            panic!()
        };
        assert!(why.contains("GPU 0 runs a/1"), "{why}");
        assert!(why.contains("GPU 1 is used by pid 4242 (python)"), "{why}");
        assert!(why.contains("GPU 2 has 70% of its memory free"), "{why}");
        // Only the GPUs the settings name are handed out.
        let only = QueueSettings {
            gpus: vec![3],
            ..s.clone()
        };
        assert_eq!(place(&only, &m, &[], 1).unwrap().gpu, Some(3));
        let none = QueueSettings {
            gpus: vec![7],
            ..s.clone()
        };
        assert!(matches!(place(&none, &m, &[], 1), Err(Wait::Never(_))));
        let no_nvml = Err("no NVIDIA driver".to_string());
        let m = Machine {
            cores: 8,
            gpus: &no_nvml,
        };
        let Err(Wait::Never(why)) = place(&s, &m, &[], 1) else {
            panic!()
        };
        assert!(why.contains("no NVIDIA driver"), "{why}");
    }
}
