//! Runs through the real binary: detached processes, control round trips, kill -9 and resume,
//! NaN auto-pause, live edits.

use descent::runs::records::{Event, Metric, read_from};
use descent::runs::{State, Status};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/workspace.rs"]
mod workspace;
use workspace::Ws;

const PATIENCE: Duration = Duration::from_secs(60);

fn experiment(name: &str, lr: f64, steps: u64, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"supervised\"\nseed = 1\n{extra}\n[data]\nsource = \"builtin:moons\"\n\
         batch_size = 32\n[model]\narch = \"mlp\"\nhidden = [16]\n[optim]\nname = \"sgd\"\n\
         lr = {lr}\nmomentum = 0.9\n[train]\nsteps = {steps}\neval_every = 25\ncheckpoint_every = 50\n"
    )
}

fn wait_status(dir: &Path, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(s) = Status::read(dir)
            && pred(&s)
        {
            return s;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
            panic!(
                "timed out waiting for {what}: {:?}\n{log}",
                Status::read(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events(dir: &Path) -> Vec<Event> {
    read_from(&dir.join("events.jsonl"), 0).unwrap().0
}

/// Train losses by step, the last record of each step winning (a resumed run re-logs the
/// steps after its checkpoint).
fn losses(dir: &Path) -> std::collections::BTreeMap<u64, f64> {
    let (records, _, bad) = read_from::<Metric>(&dir.join("metrics.jsonl"), 0).unwrap();
    assert_eq!(bad, 0);
    records
        .into_iter()
        .filter_map(|m| match m {
            Metric::Train { step, loss, .. } => Some((step, loss.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn control_commands_round_trip() {
    let ws = Ws::new(&[("long", experiment("long", 0.05, 10_000_000, ""))]);
    let dir = ws.detach("long");
    wait_status(&dir, "running", |s| {
        s.state == State::Running && s.step > 10
    });

    let out = ws.ok(&["ctl", dir.to_str().unwrap(), "pause"]);
    assert!(out.contains("pause: acknowledged"), "{out}");
    let paused = Status::read(&dir).unwrap();
    assert_eq!(paused.state, State::Paused);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        Status::read(&dir).unwrap().step,
        paused.step,
        "a paused run does not step"
    );

    let id = dir.file_name().unwrap().to_str().unwrap();
    assert!(ws.ok(&["ctl", id, "lr", "0.01"]).contains("acknowledged"));
    assert!(
        ws.ok(&["ctl", &format!("long/{id}"), "checkpoint"])
            .contains("acknowledged")
    );
    assert!(
        dir.join(format!("checkpoints/step-{}", paused.step))
            .join("model.safetensors")
            .is_file()
    );
    assert!(ws.ok(&["ctl", id, "resume"]).contains("state running"));
    wait_status(&dir, "steps after resuming", |s| s.step > paused.step + 5);
    assert!(ws.ok(&["ctl", id, "stop"]).contains("acknowledged"));
    wait_status(&dir, "stopped", |s| s.state == State::Stopped);

    let kinds: Vec<String> = events(&dir).into_iter().map(|e| e.event).collect();
    for k in ["start", "pause", "lr", "checkpoint", "unpause", "stop"] {
        assert!(kinds.contains(&k.to_string()), "no {k} event in {kinds:?}");
    }
    // The new learning rate is in the metrics after the change.
    let (records, _, _) = read_from::<Metric>(&dir.join("metrics.jsonl"), 0).unwrap();
    let last_lr = records.iter().rev().find_map(|m| match m {
        Metric::Train { lr, .. } => Some(lr.0),
        _ => None,
    });
    assert_eq!(last_lr, Some(0.01));

    let o = ws.descent(&["ctl", id, "pause"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is stopped; there is nothing to control"));
}

#[test]
fn a_killed_run_is_failed_at_once_with_the_reason_and_resumes() {
    let ws = Ws::new(&[("k", experiment("k", 0.05, 10_000_000, ""))]);
    let dir = ws.detach("k");
    let s = wait_status(&dir, "a checkpoint", |s| s.step > 120);
    unsafe { libc::kill(s.pid as i32, libc::SIGKILL) };
    // The supervising `descent run` sees its training process die and records why.
    let failed = wait_status(&dir, "the failure to be recorded", |s| {
        s.state == State::Failed
    });
    let why = failed.message.unwrap();
    assert!(why.contains("killed (SIGKILL"), "{why}");
    assert!(
        events(&dir)
            .iter()
            .any(|e| e.event == "fail" && e.message.contains("SIGKILL"))
    );
    let out = ws.ok(&["runs"]);
    assert!(out.contains("failed"), "{out}");

    // The experiment file may change meanwhile; the resumed run keeps its own config.toml,
    // except for live-editable keys. Shorten it via the live key so the test finishes.
    let last_ckpt = descent::runs::checkpoint::list(&dir).last().unwrap().0;
    std::fs::write(
        ws.root.join("experiments/k.toml"),
        experiment("k", 0.05, last_ckpt + 40, ""),
    )
    .unwrap();
    let out = ws.ok(&["run", "--resume", dir.to_str().unwrap()]);
    assert!(
        out.contains(&format!("resume from step {last_ckpt}")),
        "{out}"
    );
    let st = Status::read(&dir).unwrap();
    assert_eq!(st.state, State::Finished, "{out}");
    assert_eq!(st.step, last_ckpt + 40);
    let l = losses(&dir);
    assert!(
        (1..=last_ckpt + 40).all(|s| l.contains_key(&s)),
        "every step has a loss"
    );
}

#[test]
fn a_run_whose_processes_all_died_is_failed_whatever_its_heartbeat_says() {
    let ws = Ws::new(&[("k", experiment("k", 0.05, 10_000_000, ""))]);
    let dir = ws.detach("k");
    let s = wait_status(&dir, "running", |s| {
        s.state == State::Running && s.step > 10
    });
    // The detached run leads its own session: its process group holds the supervisor and
    // the training process. Kill both, so nobody records anything.
    let group = unsafe { libc::getpgid(s.pid as i32) };
    assert!(group > 1);
    unsafe { libc::kill(-group, libc::SIGKILL) };
    wait_status(&dir, "the process to be gone", |s| {
        descent::runs::process::check(s.pid, None) != descent::runs::process::Verdict::Alive
    });
    // A heartbeat that looks fresh (even one from the future) does not keep it alive: the
    // pid is gone, so the run is dead, and it can be resumed at once.
    let mut fresh = Status::read(&dir).unwrap();
    assert_eq!(fresh.state, State::Running, "nobody recorded the end");
    fresh.heartbeat = descent::runs::now() + 1000.0;
    fresh.write(&dir).unwrap();
    let (state, why) = Status::read(&dir).unwrap().liveness();
    assert_eq!(state, State::Failed);
    // Gone, or a zombie until its new parent (init) reaps it.
    let why = why.unwrap();
    assert!(why.contains("gone") || why.contains("zombie"), "{why}");
    assert!(ws.ok(&["runs"]).contains("failed"));
    let out = ws.descent(&["run", "--resume", dir.to_str().unwrap(), "--detach"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(&dir, "the resumed run", |s| {
        s.state == State::Running && s.pid != fresh.pid
    });
    assert!(
        ws.ok(&["ctl", dir.to_str().unwrap(), "stop"])
            .contains("acknowledged")
    );
}

#[test]
fn an_allocation_that_fails_while_running_fails_the_run_with_the_reason() {
    // The machine has the ~1.7 GiB this model needs, so the estimate lets it start, but the
    // process may map only 512 MiB: an allocation fails mid-run and the process aborts,
    // which it cannot record itself.
    let wide = experiment("wide", 0.05, 50, "").replace("hidden = [16]", "hidden = [1000000]");
    let ws = Ws::new(&[("wide", wide)]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_descent"));
    cmd.args(["run", "wide"]).current_dir(&ws.root);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 512 << 20,
                rlim_max: 512 << 20,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    assert!(!o.status.success());
    let st = Status::read(&ws.only_run("wide")).unwrap();
    assert_eq!(st.state, State::Failed, "never a run that looks alive");
    let why = st.message.unwrap();
    assert!(
        why.contains("the training process aborted: memory allocation of")
            && why.contains("bytes failed"),
        "{why}"
    );
    assert!(
        events(&ws.only_run("wide"))
            .iter()
            .any(|e| e.event == "fail")
    );
}

#[test]
fn a_model_too_big_for_memory_is_refused_before_it_is_built() {
    let huge = experiment("huge", 0.05, 10, "").replace("hidden = [16]", "hidden = [1000000000]");
    let ws = Ws::new(&[("huge", huge)]);
    let o = ws.descent(&["run", "huge"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for part in [
        "experiments/huge.toml: the run would need about",
        "of RAM",
        "available",
        "fc0.weight (2 × 1000000000",
        "model.hidden = [1000000000]",
        "data.batch_size = 32",
    ] {
        assert!(err.contains(part), "no {part:?} in:\n{err}");
    }
    assert!(!err.contains("memory allocation"), "{err}");
    let st = Status::read(&ws.only_run("huge")).unwrap();
    assert_eq!(st.state, State::Failed);
    assert!(st.message.unwrap().contains("model.hidden = [1000000000]"));
    // `descent check` warns before anything is run.
    let o = ws.descent(&["check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("huge.toml: warning: the run would need")
            && out.contains("the run would be refused"),
        "{out}"
    );
}

#[test]
fn a_resumed_run_matches_an_uninterrupted_one() {
    let ws = Ws::new(&[
        ("a", experiment("a", 0.05, 400, "")),
        ("b", experiment("b", 0.05, 170, "")),
    ]);
    ws.ok(&["run", "a"]);
    let straight = losses(&ws.only_run("a"));

    // b stops at 170 (its final checkpoint); asked for 400 steps, it resumes from there.
    ws.ok(&["run", "b"]);
    let dir = ws.only_run("b");
    let before = Status::read(&dir).unwrap().evals;
    let o = ws.descent(&["run", "--resume", dir.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("raise train.steps"));
    std::fs::write(
        ws.root.join("experiments/b.toml"),
        experiment("b", 0.05, 400, ""),
    )
    .unwrap();
    ws.ok(&["run", "--resume", dir.to_str().unwrap()]);
    let resumed = losses(&dir);
    assert_eq!(resumed.len(), 400);
    assert_eq!(
        resumed, straight,
        "same seed, same losses, interrupted or not"
    );
    // The evaluations before the checkpoint came back with it: the same best as uninterrupted.
    let best = |d: &Path| Status::read(d).unwrap().evals;
    let after = best(&dir);
    assert_eq!(after, best(&ws.only_run("a")));
    assert!(
        after.best_eval_loss <= before.best_eval_loss,
        "{after:?} {before:?}"
    );
    assert!(
        after.best_eval_accuracy >= before.best_eval_accuracy,
        "{after:?} {before:?}"
    );
    let state = std::fs::read_to_string(dir.join("checkpoints/step-400/state.json")).unwrap();
    assert!(state.contains("\"best_eval_loss\""), "{state}");
}

#[test]
fn a_resumed_run_keeps_the_best_evaluations_its_checkpoint_carries() {
    // The best evaluations before a checkpoint come from its state.json, not from evaluations
    // redone after the resume: a best no later evaluation can reach must survive it.
    let ws = Ws::new(&[("c", experiment("c", 0.05, 100, ""))]);
    ws.ok(&["run", "c"]);
    let dir = ws.only_run("c");
    let state_path = dir.join("checkpoints/step-100/state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    state["best_eval_loss"] = serde_json::json!(1e-9);
    std::fs::write(&state_path, state.to_string()).unwrap();
    std::fs::write(
        ws.root.join("experiments/c.toml"),
        experiment("c", 0.05, 150, ""),
    )
    .unwrap();
    ws.ok(&["run", "--resume", dir.to_str().unwrap()]);
    let evals = Status::read(&dir).unwrap().evals;
    assert_eq!(evals.best_eval_loss, Some(1e-9), "{evals:?}");
    assert!(evals.eval_loss.unwrap() > 1e-9, "{evals:?}");
}

#[test]
fn a_diverging_run_pauses_with_an_alert() {
    let ws = Ws::new(&[("nan", experiment("nan", 1e6, 100_000, ""))]);
    let dir = ws.detach("nan");
    let s = wait_status(&dir, "the NaN pause", |s| s.state == State::Paused);
    let msg = s.message.unwrap();
    assert!(
        msg.contains("not finite") || msg.contains("loss is"),
        "{msg}"
    );
    assert!(events(&dir).iter().any(|e| e.event == "nan"));
    ws.ok(&["ctl", dir.to_str().unwrap(), "stop"]);
}

#[test]
fn editing_the_learning_rate_applies_live() {
    let ws = Ws::new(&[("hot", experiment("hot", 0.05, 10_000_000, ""))]);
    let dir = ws.detach("hot");
    wait_status(&dir, "running", |s| s.step > 10);
    let file = ws.root.join("experiments/hot.toml");
    std::fs::write(&file, experiment("hot", 0.02, 10_000_000, "")).unwrap();
    wait_status(&dir, "the new lr", |s| s.lr == Some(0.02));
    std::fs::write(
        &file,
        experiment("hot", 0.02, 10_000_000, "").replace("hidden = [16]", "hidden = [8]"),
    )
    .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !events(&dir)
        .iter()
        .any(|e| e.message.contains("restart to apply: model.hidden"))
    {
        assert!(
            Instant::now() < deadline,
            "no restart notice: {:?}",
            events(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        events(&dir)
            .iter()
            .any(|e| e.event == "config" && e.message.contains("optim.lr = 0.02"))
    );
    ws.ok(&["ctl", dir.to_str().unwrap(), "stop"]);
}

#[test]
fn a_refined_schedule_comes_from_a_finished_run() {
    let ws = Ws::new(&[("src", experiment("src", 0.05, 200, ""))]);
    ws.ok(&["run", "src"]);
    let run = ws.only_run("src");
    let out = ws.ok(&["schedule", "refine", run.to_str().unwrap()]);
    assert!(out.contains("refined schedule from"), "{out}");
    let csv = std::fs::read_to_string(run.join("refined-schedule.csv")).unwrap();
    assert_eq!(csv.lines().count(), 201, "a header and one line per step");
    assert!(csv.trim_end().ends_with(",0"), "the schedule ends at zero");

    let id = run.file_name().unwrap().to_str().unwrap();
    let refined = experiment(
        "next",
        0.05,
        100,
        &format!("schedule = {{ name = \"refined\", from_run = \"src/{id}\" }}"),
    );
    std::fs::write(ws.root.join("experiments/next.toml"), refined).unwrap();
    ws.ok(&["run", "next"]);
    let next = ws.only_run("next");
    assert_eq!(Status::read(&next).unwrap().state, State::Finished);
}

#[test]
fn exports_read_back_as_csv_and_tensorboard_records() {
    let ws = Ws::new(&[("ex", experiment("ex", 0.05, 60, ""))]);
    ws.ok(&["run", "ex"]);
    let run = ws.only_run("ex");

    let csv_path = ws.root.join("ex.csv");
    ws.ok(&[
        "export",
        run.to_str().unwrap(),
        "--csv",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().take(4).collect::<Vec<_>>(),
        ["kind", "step", "time", "loss"]
    );
    assert!(headers.iter().any(|h| h == "grad_l2/fc0.weight"));
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let train = rows.iter().filter(|r| &r[0] == "train").count();
    let eval: Vec<_> = rows.iter().filter(|r| &r[0] == "eval").collect();
    assert_eq!(
        (train, eval.len()),
        (60, 60 / 25 + 1),
        "every step and every evaluation"
    );
    assert!(
        eval.iter().all(|r| r[9].parse::<f64>().unwrap() <= 1.0),
        "accuracy column"
    );
    let losses = losses(&run);
    let first: f64 = rows[0][3].parse().unwrap();
    assert_eq!(first, losses[&1]);

    let out = ws.ok(&["export", run.to_str().unwrap(), "--tensorboard"]);
    assert!(out.contains("tensorboard --logdir"), "{out}");
    let tb_dir = run.join("tensorboard");
    let file = tb_dir.read_dir().unwrap().next().unwrap().unwrap().path();
    assert!(
        file.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("events.out.tfevents.")
    );
    let bytes = std::fs::read(&file).unwrap();
    let records = descent::runs::export::tfevent::read_records(&bytes).unwrap();
    // The file version, then per step 5 train scalars, the batch's mean EL2N (on by default)
    // and 2 per parameter tensor (4 tensors), then per evaluation loss and accuracy.
    assert_eq!(records.len(), 1 + 60 * (5 + 1 + 2 * 4) + 3 * 2);
    assert!(records[0].windows(13).any(|w| w == b"brain.Event:2"));
    assert!(records[1].windows(10).any(|w| w == b"train/loss"));
    // A flipped byte is caught by the record CRC.
    let mut bad = bytes.clone();
    bad[40] ^= 0xff;
    assert!(
        descent::runs::export::tfevent::read_records(&bad)
            .unwrap_err()
            .contains("CRC")
    );
}

#[test]
fn a_damaged_checkpoint_is_skipped_for_the_one_before() {
    let ws = Ws::new(&[("c", experiment("c", 0.05, 120, ""))]);
    ws.ok(&["run", "c"]);
    let dir = ws.only_run("c");
    let steps: Vec<u64> = descent::runs::checkpoint::list(&dir)
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps, [50, 100, 120]);
    // Truncate the newest checkpoint's weights, as a failing disk might.
    let model = dir.join("checkpoints/step-120/model.safetensors");
    let len = std::fs::metadata(&model).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::write(
        ws.root.join("experiments/c.toml"),
        experiment("c", 0.05, 150, ""),
    )
    .unwrap();
    let o = ws.descent(&["run", "--resume", dir.to_str().unwrap()]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}{err}");
    assert!(
        err.contains("skipped a damaged checkpoint") && err.contains("step-120"),
        "{err}"
    );
    assert!(out.contains("resume from step 100"), "{out}");
    assert_eq!(Status::read(&dir).unwrap().step, 150);
}

#[test]
fn a_failed_checkpoint_write_keeps_the_earlier_ones_and_the_run_goes_on() {
    let ws = Ws::new(&[("f", experiment("f", 0.05, 60, ""))]);
    ws.ok(&["run", "f"]);
    let dir = ws.only_run("f");
    // Make the checkpoint at step 100 impossible to write (as a full disk would).
    std::fs::write(dir.join("checkpoints/.tmp-step-100"), "in the way").unwrap();
    std::fs::write(dir.join("checkpoints/step-100"), "in the way").unwrap();
    std::fs::write(
        ws.root.join("experiments/f.toml"),
        experiment("f", 0.05, 120, ""),
    )
    .unwrap();
    ws.ok(&["run", "--resume", dir.to_str().unwrap()]);
    let failed: Vec<Event> = events(&dir)
        .into_iter()
        .filter(|e| e.event == "checkpoint-failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].step, 100);
    let steps: Vec<u64> = descent::runs::checkpoint::list(&dir)
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(
        steps,
        [50, 60, 120],
        "the earlier checkpoints survive, the later one is written"
    );
    assert_eq!(Status::read(&dir).unwrap().state, State::Finished);
}

#[test]
fn a_missing_csv_column_fails_the_run_with_a_clear_message() {
    let text = experiment("csv", 0.05, 10, "").replace(
        "source = \"builtin:moons\"",
        "source = \"t.csv\"\ntarget = \"label\"",
    );
    let ws = Ws::new(&[("csv", text)]);
    std::fs::create_dir_all(ws.root.join("data")).unwrap();
    std::fs::write(ws.root.join("data/t.csv"), "a,b,y\n1,2,0\n3,4,1\n").unwrap();
    let o = ws.descent(&["run", "csv"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("t.csv: no column named \"label\"; the columns are a, b, y"),
        "{err}"
    );
    let dir = ws.only_run("csv");
    let s = Status::read(&dir).unwrap();
    assert_eq!(s.state, State::Failed);
    assert!(s.message.unwrap().contains("no column named"));
}

fn pretrain(name: &str, steps: u64) -> String {
    format!(
        "name = \"{name}\"\nkind = \"pretrain\"\nseed = 2\n[data]\nsource = \"pairs.jsonl\"\n\
         val_fraction = 0.1\nbatch_size = 8\n[model]\narch = \"llama\"\n[lm]\nhidden_size = 32\n\
         layers = 2\nheads = 2\nvocab_size = 280\ncontext = 24\neval_problems = 5\n[optim]\n\
         lr = 3e-3\n[train]\nsteps = {steps}\neval_every = 20\ncheckpoint_every = 20\n"
    )
}

/// A pretraining run through the binary on a JSON Lines file: it says what its corpus became,
/// records tokens/s and held-out accuracy, exports a folder `descent generate` talks to, and
/// a run stopped early and resumed with more steps retraces the uninterrupted one.
#[test]
fn a_pretrain_run_on_json_lines_exports_a_model_that_generates_and_resumes_exactly() {
    let ws = Ws::new(&[("a", pretrain("a", 60)), ("b", pretrain("b", 40))]);
    let mut lines = String::new();
    for i in 0..60 {
        lines += &format!(
            "{{\"prompt\": \"{i} plus one\", \"completion\": \"{}\"}}\n",
            i + 1
        );
        lines += &format!("{{\"text\": \"the number {i} comes before {}.\"}}\n", i + 1);
    }
    std::fs::create_dir_all(ws.root.join("data")).unwrap();
    std::fs::write(ws.root.join("data/pairs.jsonl"), lines).unwrap();
    ws.ok(&["run", "a"]);
    let dir = ws.only_run("a");
    let s = Status::read(&dir).unwrap();
    assert_eq!(s.state, State::Finished);
    assert!(s.evals.eval_accuracy.is_some(), "pairs are scored: {s:?}");
    let data = events(&dir)
        .into_iter()
        .find(|e| e.event == "data")
        .expect("a data event");
    assert!(
        data.message.contains("120 sequences") && data.message.contains("vocabulary"),
        "{}",
        data.message
    );
    let (records, _, _) = read_from::<Metric>(&dir.join("metrics.jsonl"), 0).unwrap();
    assert!(records.iter().all(|m| match m {
        Metric::Train { tokens_per_s, .. } => tokens_per_s.is_some_and(|t| t.0 > 0.0),
        Metric::Eval { .. } => true,
    }));
    let csv_path = ws.root.join("a.csv");
    ws.ok(&[
        "export",
        dir.to_str().unwrap(),
        "--csv",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let col = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "tokens_per_s")
        .expect("a tokens_per_s column");
    let first = reader.records().next().unwrap().unwrap();
    assert!(first[col].parse::<f64>().unwrap() > 0.0);
    let model = dir.join("model");
    let out = ws.ok(&[
        "generate",
        model.to_str().unwrap(),
        "--chat",
        "--prompt",
        "3 plus one",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["prompt"]
            .as_str()
            .unwrap()
            .starts_with("<|im_start|>user\n3 plus one<|im_end|>"),
        "{v}"
    );
    assert!(
        v["completions"][0]["tokens"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );

    ws.ok(&["run", "b"]);
    let b = ws.only_run("b");
    std::fs::write(ws.root.join("experiments/b.toml"), pretrain("b", 60)).unwrap();
    ws.ok(&["run", "--resume", b.to_str().unwrap()]);
    assert_eq!(
        losses(&b),
        losses(&dir),
        "same seed, same losses, interrupted or not"
    );
}

#[test]
fn a_language_model_too_big_for_memory_is_refused_before_its_tokenizer_is_trained() {
    let huge = pretrain("huge", 10)
        .replace("hidden_size = 32", "hidden_size = 65536")
        .replace("layers = 2", "layers = 512");
    let ws = Ws::new(&[("huge", huge)]);
    std::fs::create_dir_all(ws.root.join("data")).unwrap();
    std::fs::write(ws.root.join("data/pairs.jsonl"), "{\"text\": \"a b c\"}\n").unwrap();
    let o = ws.descent(&["run", "huge"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for part in [
        "experiments/huge.toml: the run would need about",
        "model.layers.*.mlp.gate_proj.weight (174784 × 65536",
        "lm.hidden_size = 65536",
        "lm.layers = 512",
    ] {
        assert!(err.contains(part), "no {part:?} in:\n{err}");
    }
    assert!(
        !events(&ws.only_run("huge"))
            .iter()
            .any(|e| e.event == "data")
    );
}

#[test]
fn the_demo_digits_mlp_reaches_95_percent_validation_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    descent::demo::unpack_demo(&root).unwrap();
    let ws = Ws { _dir: dir, root };
    ws.ok(&["run", "digits-mlp"]);
    let s = Status::read(&ws.only_run("digits-mlp")).unwrap();
    assert_eq!(s.state, State::Finished);
    let acc = s.evals.eval_accuracy.unwrap();
    assert!(acc >= 0.95, "validation accuracy {acc}");
}

/// `ckpt inspect` and `ckpt diff` on checkpoints a real run wrote; training on a Parquet file
/// written by arrow's writer.
#[test]
fn checkpoints_of_a_real_run_inspect_and_diff() {
    let ws = Ws::new(&[("m", experiment("m", 0.1, 100, ""))]);
    ws.ok(&["run", "m"]);
    let run = ws.only_run("m");
    let a = run.join("checkpoints/step-50");
    let b = run.join("checkpoints/step-100");
    let out = ws.ok(&[
        "ckpt",
        "inspect",
        a.to_str().unwrap(),
        "--tensor",
        "fc0.weight",
    ]);
    for text in [
        "descent run checkpoint",
        "fc0",
        "weight",
        "F32 [2, 16]",
        "fc0.weight: F32 [2, 16] (32 elements)",
        "L2",
        // (2·16 + 16 + 16·2 + 2) f32 parameters.
        "bytes                328\n",
    ] {
        assert!(out.contains(text), "missing {text:?} in\n{out}");
    }
    let out = ws.ok(&["ckpt", "diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    // Every parameter tensor moved between step 50 and step 100, none was added or removed.
    assert!(
        out.contains("4 changed, 0 unchanged, 0 added/removed/reshaped"),
        "{out}"
    );
    let rel: f64 = out
        .lines()
        .find(|l| l.starts_with("fc0.weight"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(rel > 0.0 && rel < 1.0, "relative change {rel}");
    let self_diff = ws.ok(&["ckpt", "diff", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert!(self_diff.contains("0 changed, 4 unchanged"), "{self_diff}");
}

#[test]
fn trains_on_a_parquet_file() {
    use std::sync::Arc;
    let exp = "name = \"pq\"\nkind = \"supervised\"\nseed = 1\n[data]\nsource = \"moons.parquet\"\n\
               target = \"label\"\nbatch_size = 32\n[model]\narch = \"mlp\"\nhidden = [16]\n\
               [optim]\nname = \"adamw\"\nlr = 0.01\n[train]\nsteps = 300\neval_every = 100\n\
               checkpoint_every = 300\n";
    let ws = Ws::new(&[("pq", exp.to_string())]);
    std::fs::create_dir_all(ws.root.join("data")).unwrap();
    let moons = descent_models::data::load_builtin("moons", &Default::default(), 3).unwrap();
    let descent_models::data::Targets::Classes { labels, .. } = &moons.targets else {
        panic!()
    };
    use arrow::array::{Float32Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("x0", DataType::Float32, false),
        Field::new("x1", DataType::Float32, false),
        Field::new("label", DataType::Int64, false),
    ]));
    let col = |j: usize| {
        Float32Array::from(
            (0..moons.len())
                .map(|i| moons.inputs[2 * i + j])
                .collect::<Vec<_>>(),
        )
    };
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(col(0)),
            Arc::new(col(1)),
            Arc::new(Int64Array::from(
                labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(300))
        .build();
    let f = std::fs::File::create(ws.root.join("data/moons.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let out = ws.ok(&["run", "pq"]);
    assert!(out.contains("finished 300 steps"), "{out}");
    let runs = ws.ok(&["runs"]);
    let acc: f64 = runs
        .split_whitespace()
        .find_map(|w| w.strip_suffix('%').and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no accuracy in\n{runs}"));
    assert!(acc > 80.0, "moons from Parquet trained to {acc}%\n{runs}");
}

#[test]
fn runs_rm_moves_a_finished_run_to_the_trash_and_refuses_a_live_one() {
    let ws = Ws::new(&[
        ("ex", experiment("ex", 0.05, 60, "")),
        ("long", experiment("long", 0.05, 1_000_000, "")),
    ]);
    ws.ok(&["run", "ex"]);
    let done = ws.only_run("ex");
    let id = done.file_name().unwrap().to_str().unwrap().to_string();
    let live = ws.detach("long");
    wait_status(&live, "the long run to train", |s| {
        s.state == State::Running && s.step > 0
    });
    let live_name = format!("long/{}", live.file_name().unwrap().to_str().unwrap());
    let out = ws.descent(&["runs", "rm", &format!("ex/{id}"), &live_name]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "one run stayed: a failure");
    assert!(stdout.contains(&format!("moved ex/{id}")), "{stdout}");
    assert!(stderr.contains("is running: stop it first"), "{stderr}");
    // The finished run went whole; the live one is where it was, still training.
    let trashed = ws.root.join("runs/.trash/ex").join(&id);
    assert!(!done.exists());
    assert!(trashed.join("metrics.jsonl").is_file());
    assert!(trashed.join("checkpoints").is_dir());
    assert_eq!(Status::read(&live).unwrap().state, State::Running);
    let listed = ws.ok(&["runs"]);
    assert!(!listed.contains(&format!("ex/{id}")), "{listed}");
    assert!(listed.contains(&live_name), "{listed}");
    // Naming it again says it is gone.
    let err = ws.fails(&["runs", "rm", &format!("ex/{id}")]);
    assert!(err.contains("no run"), "{err}");
    ws.ok(&["ctl", &live_name, "stop"]);
    wait_status(&live, "the long run to stop", |s| s.state == State::Stopped);
    ws.ok(&["runs", "rm", &live_name]);
    assert!(ws.root.join("runs/.trash").join(&live_name).is_dir());
}
