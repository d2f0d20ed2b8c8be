//! Starting a run as a detached process: its own session (so closing the terminal, the TUI or
//! the SSH connection does not signal it), output to the run's `stdout.log`.

use super::STDOUT;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Starts `descent run` for `experiment` in the workspace `root`, writing into `run_dir`
/// (already created). Returns the child's pid.
pub fn spawn_detached(
    root: &Path,
    experiment: &str,
    run_dir: &Path,
    extra: &[String],
) -> std::io::Result<u32> {
    let mut args: Vec<String> = vec!["run".into(), experiment.into(), "--workspace".into()];
    args.push(root.display().to_string());
    args.push("--run-dir".into());
    args.push(run_dir.display().to_string());
    args.extend(extra.iter().cloned());
    spawn_session(&args, root, &run_dir.join(STDOUT))
}

/// Starts this executable with `args` in `cwd`, in a session of its own (so closing the
/// terminal, the TUI or the SSH connection does not signal it), output appended to `log`.
/// Returns the child's pid. Also used for sampling jobs.
pub fn spawn_session(args: &[String], cwd: &Path, log: &Path) -> std::io::Result<u32> {
    spawn_session_with(args, cwd, log, &[])
}

/// [`spawn_session`] with variables set in the child's environment (the queue's
/// `CUDA_VISIBLE_DEVICES`).
pub fn spawn_session_with(
    args: &[String],
    cwd: &Path,
    log: &Path,
    env: &[(&str, String)],
) -> std::io::Result<u32> {
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .envs(env.iter().map(|(k, v)| (k, v)));
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    // Reap it when it ends: an exited child nobody waits for stays a zombie for as long as
    // this process lives (the TUI can live for days), and a zombie still has its pid.
    std::thread::spawn(move || child.wait());
    Ok(pid)
}
