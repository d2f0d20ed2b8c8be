//! Is a run's process alive? On the run's own host the process itself is asked: its pid must
//! exist, must not be a zombie, and must be the process that wrote `status.json`. The kernel
//! reuses pids, so a run records its start time (clock ticks since boot, `/proc/PID/stat`
//! field 22) and the boot it belongs to (`/proc/sys/kernel/random/boot_id`), and both must
//! still match. Where `/proc` is missing (not Linux) only the pid's existence can be checked.

use serde::{Deserialize, Serialize};

/// What tells one process apart from a later one given the same pid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub boot_id: String,
    pub start_ticks: u64,
}

/// What the process table says about a pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// Gone, with the reason in words.
    Dead(String),
    /// A process with this pid exists but cannot be checked to be the run's (no `/proc`, or
    /// another user's process hidden by `hidepid`).
    Unverified,
}

/// This process's stamp, recorded in `status.json`; `None` where `/proc` is missing.
pub fn own_stamp() -> Option<Stamp> {
    stamp_of(std::process::id())
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The state letter (`R`, `S`, `Z`, …) and start time of a process, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    // `pid (comm) state …`: the command name may hold spaces and parentheses, so fields are
    // counted from the last `)`. After it come field 3 (state) … field 22 (starttime).
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The stamp of another process, for records of processes this one started.
pub fn stamp_of(pid: u32) -> Option<Stamp> {
    Some(Stamp {
        boot_id: boot_id()?,
        start_ticks: stat(pid)?.1,
    })
}

/// Whether a process with this pid exists at all (`kill(pid, 0)`: no signal is sent; EPERM
/// means it exists but belongs to someone else).
fn exists(pid: u32) -> bool {
    // Pids that do not fit a positive pid_t would name process groups: never "alive".
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => {
            (unsafe { libc::kill(p, 0) }) == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
        _ => false,
    }
}

/// Whether `pid` names a live process (not a zombie): for children this process started.
pub fn pid_alive(pid: u32) -> bool {
    !matches!(check(pid, None), Verdict::Dead(_))
}

/// Asks the process table whether `pid` is still the process that recorded `stamp`.
pub fn check(pid: u32, stamp: Option<&Stamp>) -> Verdict {
    if !exists(pid) {
        return Verdict::Dead(format!("process {pid} is gone"));
    }
    let Some((state, start)) = stat(pid) else {
        return Verdict::Unverified;
    };
    if matches!(state, 'Z' | 'X') {
        return Verdict::Dead(format!("process {pid} has exited (a zombie)"));
    }
    let Some(stamp) = stamp else {
        // A status written before runs recorded their stamp: existence is all there is.
        return Verdict::Alive;
    };
    if boot_id().is_some_and(|b| b != stamp.boot_id) {
        return Verdict::Dead("the machine has restarted since".into());
    }
    if start != stamp.start_ticks {
        return Verdict::Dead(format!("pid {pid} now belongs to another process"));
    }
    Verdict::Alive
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_under_its_own_stamp() {
        let me = own_stamp().expect("/proc is there on Linux");
        assert_eq!(check(std::process::id(), Some(&me)), Verdict::Alive);
        assert_eq!(check(std::process::id(), None), Verdict::Alive);
    }

    #[test]
    fn a_reused_pid_is_not_the_run() {
        let mut other = own_stamp().unwrap();
        other.start_ticks += 1;
        assert!(matches!(
            check(std::process::id(), Some(&other)),
            Verdict::Dead(why) if why.contains("another process")
        ));
        let mut rebooted = own_stamp().unwrap();
        rebooted.boot_id = "not-this-boot".into();
        assert!(matches!(
            check(std::process::id(), Some(&rebooted)),
            Verdict::Dead(why) if why.contains("restarted")
        ));
    }

    #[test]
    fn a_zombie_is_not_alive() {
        // A child that exits and is not waited for stays in the process table as a zombie.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stat(pid).is_some_and(|s| s.0 != 'Z') && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(exists(pid), "a zombie still answers kill(pid, 0)");
        assert!(matches!(check(pid, None), Verdict::Dead(why) if why.contains("zombie")));
        child.wait().unwrap();
        assert!(matches!(check(pid, None), Verdict::Dead(why) if why.contains("gone")));
    }

    #[test]
    fn command_names_with_spaces_and_parentheses_do_not_confuse_the_stat_parser() {
        let tail = (4..=21)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!("4242 (a) b (c)) Z {tail} 987654 0 0\n");
        assert_eq!(parse_stat(&line), Some(('Z', 987654)));
        assert_eq!(parse_stat("4242 (cut short) S 1 2"), None);
    }

    #[test]
    fn impossible_pids_are_dead() {
        assert!(matches!(check(0, None), Verdict::Dead(_)));
        assert!(matches!(check(u32::MAX, None), Verdict::Dead(_)));
    }
}
