//! `descent run` keeps watch over its training process. The training happens in a child
//! process (the *worker*, `descent run … --worker`); this process waits for it and, when the
//! worker ends without recording an end itself — killed, aborted by a failed allocation,
//! crashed, interrupted — writes `failed` and the reason into `status.json` and
//! `events.jsonl`. A process cannot record its own abort or SIGKILL, so without this a run
//! that died that way would look alive until a reader noticed the process gone, and nobody
//! would know why it died.
//!
//! Signals that ask the run to end (SIGINT, SIGTERM, SIGHUP) are passed on to the worker, so
//! killing the pid `--detach` printed ends the run; on Linux the worker also dies with the
//! supervisor (`PR_SET_PDEATHSIG`), so the two are never separated.

use super::records::{Event, append};
use super::{EVENTS, Status, now};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

/// Lines of the worker's standard error kept to explain its end.
const TAIL_LINES: usize = 20;

static WORKER: AtomicI32 = AtomicI32::new(0);

extern "C" fn pass_on(signal: libc::c_int) {
    let pid = WORKER.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Runs `descent <worker_args>` for the run in `dir` and waits for it; returns its exit code.
pub fn run(worker_args: &[OsString], dir: &Path) -> std::io::Result<u8> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(worker_args).stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the supervisor is gone"));
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn()?;
    WORKER.store(child.id() as i32, Ordering::Relaxed);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only reads an atomic and calls kill.
        unsafe { libc::signal(signal, pass_on as *const () as libc::sighandler_t) };
    }
    // The worker's standard error passes through line by line; the last lines are kept.
    let stderr = child.stderr.take().expect("piped");
    let tail = std::thread::spawn(move || {
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let _ = std::io::stderr().write_all(&line);
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if !is_backtrace(&text) {
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text);
            }
            line.clear();
        }
        tail
    });
    let status = child.wait()?;
    let tail: Vec<String> = tail.join().unwrap_or_default().into();
    if let Ok(mut s) = Status::read(dir)
        && s.state.is_live()
    {
        let why = reason(status, &tail);
        s.state = super::State::Failed;
        s.message = Some(format!(
            "{why}; `descent run --resume {}` continues from the last checkpoint",
            dir.display()
        ));
        s.heartbeat = now();
        let _ = s.write(dir);
        let _ = append(
            &dir.join(EVENTS),
            &Event {
                time: now(),
                step: s.step,
                event: "fail".into(),
                message: why.clone(),
            },
        );
        eprintln!("descent: the run failed: {why}");
    }
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => 1,
    })
}

/// Whether a line of standard error belongs to a backtrace (its heading, frames, locations
/// and closing note), which says where a process died but not why.
fn is_backtrace(line: &str) -> bool {
    let t = line.trim_start();
    let frame = t
        .split_once(':')
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    frame
        || t.starts_with("at ")
        || t == "stack backtrace:"
        || t.starts_with("note: Some details are omitted")
}

/// Why the worker ended, from its exit status and the last lines (backtraces left out) it
/// wrote to standard error.
pub fn reason(status: ExitStatus, tail: &[String]) -> String {
    // A panic prints "thread 'main' (N) panicked at FILE:LINE:COL:" and its message below.
    let panic = tail
        .iter()
        .position(|l| l.contains("panicked at"))
        .map(|i| {
            let at = tail[i].split("panicked at ").nth(1).unwrap_or("");
            let msg = tail.get(i + 1).map_or("", String::as_str);
            format!("it panicked at {}: {msg}", at.trim_end_matches(':'))
        });
    // A failed allocation says so in one line; otherwise the last thing said.
    let last = tail
        .iter()
        .rev()
        .find(|l| l.contains("memory allocation of"))
        .or_else(|| {
            tail.iter()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("note: "))
        })
        .cloned();
    match (status.code(), status.signal()) {
        (Some(code), _) => match panic.or(last) {
            Some(why) => format!("the training process exited with code {code}: {why}"),
            None => format!("the training process exited with code {code}"),
        },
        (None, Some(libc::SIGKILL)) => "the training process was killed (SIGKILL: by a person, \
             or by the kernel when memory ran out — see `dmesg`)"
            .into(),
        (None, Some(libc::SIGABRT)) => match last {
            Some(why) => format!("the training process aborted: {why}"),
            None => "the training process aborted (SIGABRT)".into(),
        },
        (None, Some(libc::SIGINT)) => "the training process was interrupted (Ctrl-C)".into(),
        (None, Some(libc::SIGTERM)) => "the training process was terminated (SIGTERM)".into(),
        (None, Some(libc::SIGHUP)) => {
            "the training process was hung up on (SIGHUP: its terminal closed)".into()
        }
        (None, Some(sig)) => format!("the training process died of signal {sig}"),
        (None, None) => "the training process ended without an exit status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn the_reason_names_the_signal_or_the_last_words() {
        assert!(is_backtrace(
            "  12: descent_models::train::Trainer::evaluate"
        ));
        assert!(is_backtrace(
            "             at /work/main/models/src/train.rs:290:32"
        ));
        assert!(!is_backtrace("memory allocation of 800000000 bytes failed"));
        assert!(!is_backtrace(
            "thread 'main' (77) panicked at src/x.rs:3:5:"
        ));
        let abort = ExitStatus::from_raw(libc::SIGABRT);
        assert_eq!(
            reason(
                abort,
                &lines("memory allocation of 25600000000 bytes failed\nstep 3: eval loss 0.1")
            ),
            "the training process aborted: memory allocation of 25600000000 bytes failed"
        );
        let killed = reason(ExitStatus::from_raw(libc::SIGKILL), &[]);
        assert!(
            killed.contains("SIGKILL") && killed.contains("dmesg"),
            "{killed}"
        );
        let panicked = reason(
            ExitStatus::from_raw(101 << 8),
            &lines(
                "thread 'main' (77) panicked at src/x.rs:3:5:\nindex out of bounds\n\
                 note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            ),
        );
        assert_eq!(
            panicked,
            "the training process exited with code 101: it panicked at src/x.rs:3:5: index out of bounds"
        );
    }
}
