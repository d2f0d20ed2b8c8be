//! Slurm: the batch script descent writes, `sbatch` to submit it (a sweep as one job array),
//! `squeue` (then `sacct`, then `scontrol`) for what Slurm says of each job, `scancel`.
//!
//! The job runs `descent run --resume RUN_DIR` on the node against the shared workspace: a
//! folder that never ran starts, one that ran continues from its last checkpoint — so a job
//! Slurm requeues after a preemption, or one submitted again after a scancel, resumes. The
//! batch shell is replaced by descent (`exec`), so the SIGTERM that Slurm sends before a
//! time limit (`--signal=B:TERM@120`), at preemption or at scancel reaches the run, which
//! saves a checkpoint and stops.

use crate::config::SlurmSettings;
use crate::runs::launch::Job;
use crate::runs::{self, Status};
use crate::workspace::Workspace;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The batch script's name, in a sweep's folder or a single run's.
pub const SCRIPT: &str = "job.sbatch";

/// Everything the script needs, apart from the settings.
pub struct Script<'a> {
    pub job_name: &'a str,
    pub root: &'a Path,
    pub descent: &'a Path,
    pub runs: &'a [PathBuf],
    /// Slurm's `--output` pattern.
    pub output: &'a Path,
    /// descent.toml's `threads`, for the CPUs per run when the settings leave it open.
    pub threads: usize,
}

/// A word for bash in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The batch script for one run or, with several, a job array of them.
pub fn script(settings: &SlurmSettings, s: &Script) -> String {
    let mut lines = vec!["#!/bin/bash".to_string()];
    let mut opt = |o: String| lines.push(format!("#SBATCH {o}"));
    opt(format!("--job-name={}", s.job_name));
    opt(format!("--output={}", s.output.display()));
    opt("--open-mode=append".into());
    let cpus = match (settings.cpus_per_run, s.threads) {
        (0, 0) => 1,
        (0, t) => t as u32,
        (c, _) => c,
    };
    opt(format!("--cpus-per-task={cpus}"));
    if let Some(p) = &settings.partition {
        opt(format!("--partition={p}"));
    }
    if let Some(a) = &settings.account {
        opt(format!("--account={a}"));
    }
    if let Some(t) = &settings.time {
        opt(format!("--time={t}"));
    }
    if settings.gpus_per_run > 0 {
        opt(format!("--gres=gpu:{}", settings.gpus_per_run));
    }
    if let Some(m) = &settings.mem {
        opt(format!("--mem={m}"));
    }
    opt(if settings.requeue {
        "--requeue".into()
    } else {
        "--no-requeue".into()
    });
    // Before the time limit kills it, the run gets two minutes to save a checkpoint.
    opt("--signal=B:TERM@120".into());
    if s.runs.len() > 1 {
        let limit = match settings.max_parallel {
            0 => String::new(),
            n => format!("%{n}"),
        };
        opt(format!("--array=0-{}{limit}", s.runs.len() - 1));
    }
    for e in &settings.extra {
        opt(e.clone());
    }
    lines.push(String::new());
    lines.push("# Written by descent: each task runs, or resumes, one prepared run folder.".into());
    lines.push("set -eu".into());
    lines.push("runs=(".into());
    for r in s.runs {
        lines.push(format!("  {}", quote(&r.display().to_string())));
    }
    lines.push(")".into());
    lines.push("run=\"${runs[${SLURM_ARRAY_TASK_ID:-0}]}\"".into());
    lines.push(format!(
        "exec {} run --resume \"$run\" --workspace {}",
        quote(&s.descent.display().to_string()),
        quote(&s.root.display().to_string())
    ));
    lines.push(String::new());
    lines.join("\n")
}

fn command_error(program: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "{program} is not installed here, or not on PATH: executor = \"slurm\" in \
             descent.toml needs Slurm's commands (sbatch, squeue, scancel) on this machine"
        )
    } else {
        format!("cannot run {program}: {e}")
    }
}

/// Runs a Slurm command; its stdout, or its own message when it refuses.
fn slurm(program: &str, args: &[&str], cwd: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd.output().map_err(|e| command_error(program, &e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(format!(
        "{program} refused ({}): {}",
        out.status,
        if said.is_empty() { "no message" } else { &said }
    ))
}

/// Submits prepared run folders: one job, or a job array for several. Returns the job id.
pub fn submit(
    ws: &Workspace,
    dirs: &[PathBuf],
    sweep_dir: Option<&Path>,
) -> Result<String, String> {
    let first = dirs.first().ok_or("nothing to submit")?;
    let home = sweep_dir.unwrap_or(first);
    let descent = match &ws.settings.slurm.descent {
        Some(p) => ws.root.join(p),
        None => std::env::current_exe().map_err(|e| format!("where is descent? {e}"))?,
    };
    let experiment = first
        .parent()
        .and_then(|p| p.file_name())
        .map_or("run".into(), |n| n.to_string_lossy().into_owned());
    let output = home.join(if dirs.len() > 1 {
        "slurm-%A_%a.out"
    } else {
        "slurm-%j.out"
    });
    let text = script(
        &ws.settings.slurm,
        &Script {
            job_name: &format!("descent-{experiment}"),
            root: &ws.root,
            descent: &descent,
            runs: dirs,
            output: &output,
            threads: ws.settings.threads,
        },
    );
    let path = home.join(SCRIPT);
    crate::atomic::write_atomically(&path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let path_s = path.display().to_string();
    let out = slurm("sbatch", &["--parsable", &path_s], Some(&ws.root))?;
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let job_id = out
        .trim()
        .split(';')
        .next()
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| format!("sbatch printed no job id: {:?}", out.trim()))?
        .to_string();
    for (i, dir) in dirs.iter().enumerate() {
        let job = Job {
            job_id: job_id.clone(),
            task: (dirs.len() > 1).then_some(i),
            script: path.clone(),
            submitted_at: runs::now(),
        };
        job.write(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Ok(mut s) = Status::read(dir)
            && s.state == runs::State::Queued
        {
            s.message = Some(format!("Slurm job {} submitted", job.slurm_id()));
            let _ = s.write(dir);
        }
    }
    Ok(job_id)
}

/// What Slurm says of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobState {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `CANCELLED`, `PREEMPTED`, …
    pub state: String,
    /// Why it waits (`Priority`, `Resources`), or the node it runs on.
    pub detail: String,
}

impl JobState {
    pub fn describe(&self, id: &str) -> String {
        match self.detail.as_str() {
            "" | "None" | "(null)" => format!("slurm {id} {}", self.state),
            d => format!("slurm {id} {} ({d})", self.state),
        }
    }
}

/// Parses `squeue -h -r -o '%i|%T|%r|%N'`.
pub fn parse_squeue(text: &str) -> HashMap<String, JobState> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split('|');
            let (id, state, reason, node) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let detail = if state == "RUNNING" && !node.is_empty() {
                format!("on {node}")
            } else {
                reason.to_string()
            };
            Some((
                id.to_string(),
                JobState {
                    state: state.to_string(),
                    detail,
                },
            ))
        })
        .collect()
}

/// What Slurm says of each of `ids` (`12` or `12_3`): squeue for jobs it still holds, then
/// sacct (when accounting is on), then scontrol (for jobs that ended a short while ago).
/// Ids none of them knows are left out: the run folder's heartbeat decides those.
pub fn states(ids: &[String]) -> Result<HashMap<String, JobState>, String> {
    let mut out = parse_squeue(&slurm("squeue", &["-h", "-r", "-o", "%i|%T|%r|%N"], None)?);
    let missing: Vec<&String> = ids.iter().filter(|i| !out.contains_key(*i)).collect();
    if missing.is_empty() {
        return Ok(out);
    }
    let list = missing
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    if let Ok(text) = slurm(
        "sacct",
        &["-n", "-P", "-X", "-o", "JobID,State", "-j", &list],
        None,
    ) {
        for l in text.lines() {
            if let Some((id, state)) = l.trim().split_once('|') {
                out.insert(
                    id.to_string(),
                    JobState {
                        // `CANCELLED by 0` → `CANCELLED`.
                        state: state.split_whitespace().next().unwrap_or("").to_string(),
                        detail: String::new(),
                    },
                );
            }
        }
    }
    let unknown: Vec<&String> = missing
        .into_iter()
        .filter(|i| !out.contains_key(*i))
        .collect();
    for id in unknown.into_iter().take(32) {
        if let Ok(text) = slurm("scontrol", &["-o", "show", "job", id], None)
            && let Some(state) = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix("JobState="))
        {
            out.insert(
                id.to_string(),
                JobState {
                    state: state.to_string(),
                    detail: String::new(),
                },
            );
        }
    }
    Ok(out)
}

/// Slurm states in which the job still holds or waits for a node.
pub fn is_active(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "REQUEUED"
            | "RESIZING"
            | "SUSPENDED"
    )
}

/// `scancel ID`.
pub fn cancel(id: &str) -> Result<(), String> {
    slurm("scancel", &[id], None).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_each_member_and_says_what_the_settings_ask() {
        let settings = SlurmSettings {
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            time: Some("2:00:00".into()),
            gpus_per_run: 1,
            mem: Some("16G".into()),
            extra: vec!["--qos=high".into()],
            max_parallel: 2,
            ..SlurmSettings::default()
        };
        let runs = vec![
            PathBuf::from("/ws/runs/lr/20261202-1"),
            PathBuf::from("/ws/runs/lr/it's"),
        ];
        let text = script(
            &settings,
            &Script {
                job_name: "descent-lr",
                root: Path::new("/ws"),
                descent: Path::new("/opt/descent"),
                runs: &runs,
                output: Path::new("/ws/sweeps/s/slurm-%A_%a.out"),
                threads: 4,
            },
        );
        for line in [
            "#!/bin/bash",
            "#SBATCH --job-name=descent-lr",
            "#SBATCH --output=/ws/sweeps/s/slurm-%A_%a.out",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=lab",
            "#SBATCH --time=2:00:00",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --mem=16G",
            "#SBATCH --requeue",
            "#SBATCH --signal=B:TERM@120",
            "#SBATCH --array=0-1%2",
            "#SBATCH --qos=high",
            "  '/ws/runs/lr/20261202-1'",
            "  '/ws/runs/lr/it'\\''s'",
            "exec '/opt/descent' run --resume \"$run\" --workspace '/ws'",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        // Every #SBATCH line comes before the first command, or sbatch ignores it.
        let first_command = text.lines().position(|l| l == "set -eu").unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let last_option = lines
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .unwrap();
        assert!(last_option < first_command);
        // One run: no array, the task index defaults to 0.
        let one = script(
            &SlurmSettings::default(),
            &Script {
                job_name: "descent-lr",
                root: Path::new("/ws"),
                descent: Path::new("/opt/descent"),
                runs: &runs[..1],
                output: Path::new("/ws/runs/lr/20261202-1/slurm-%j.out"),
                threads: 0,
            },
        );
        assert!(!one.contains("--array"));
        assert!(one.contains("#SBATCH --cpus-per-task=1\n"));
        assert!(!one.contains("--partition"));
        assert!(one.contains("${SLURM_ARRAY_TASK_ID:-0}"));
    }

    #[test]
    fn squeue_lines_become_states() {
        let s = parse_squeue(
            "12_0|RUNNING|None|node3\n12_1|PENDING|Priority|\n13|PENDING|Resources|\n",
        );
        assert_eq!(s["12_0"].describe("12_0"), "slurm 12_0 RUNNING (on node3)");
        assert_eq!(s["12_1"].describe("12_1"), "slurm 12_1 PENDING (Priority)");
        assert_eq!(s["13"].state, "PENDING");
        assert!(is_active("PENDING") && !is_active("COMPLETED"));
    }

    #[test]
    fn a_missing_sbatch_says_what_is_needed() {
        let e = slurm("descent-no-such-sbatch", &[], None).unwrap_err();
        assert!(e.contains("not installed"), "{e}");
        let e = slurm(
            "sh",
            &["-c", "echo 'sbatch: error: invalid partition' >&2; exit 1"],
            None,
        )
        .unwrap_err();
        assert!(e.contains("invalid partition"), "{e}");
    }
}
