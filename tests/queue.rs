//! Sweeps and the local queue through the real binary: members that are ordinary runs with
//! their overrides, runs that wait for a slot and start when one frees (also when the run
//! holding it is killed), cancel and reorder, and the errors of a missing sbatch.

use descent::runs::launch::Launch;
use descent::runs::{State, Status};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "support/workspace.rs"]
mod workspace;
use workspace::Ws;

const PATIENCE: Duration = Duration::from_secs(120);

fn experiment(name: &str, steps: u64, sweep: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"supervised\"\nseed = 1\n[data]\nsource = \"builtin:moons\"\n\
         batch_size = 32\n[model]\narch = \"mlp\"\nhidden = [8]\n[optim]\nname = \"sgd\"\n\
         lr = 0.05\nmomentum = 0.9\n[train]\nsteps = {steps}\neval_every = 10\ncheckpoint_every = 20\n{sweep}"
    )
}

/// A workspace whose queue hands out one core, with runs of one thread: one run at a time.
fn one_slot(experiments: &[(&str, String)]) -> Ws {
    let ws = Ws::new(experiments);
    std::fs::write(
        ws.root.join("descent.toml"),
        "threads = 1\n[queue]\ncores = 1\n",
    )
    .unwrap();
    ws
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn state(dir: &Path) -> Option<State> {
    Status::read(dir).ok().map(|s| s.state)
}

fn run_dirs(ws: &Ws, experiment: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(ws.root.join("runs").join(experiment))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

const SWEEP: &str = "[sweep]\nmetric = \"eval_accuracy\"\n[sweep.grid]\n\"optim.lr\" = [0.01, 0.1]\nseed = [3, 4]\n";

#[test]
fn a_sweep_runs_every_member_as_an_ordinary_run_with_its_overrides() {
    let ws = one_slot(&[("lr", experiment("lr", 30, SWEEP))]);
    let dry = ws.ok(&["sweep", "lr", "--dry-run"]);
    assert!(dry.contains("4 member(s)"), "{dry}");
    assert!(dry.contains("optim.lr=0.1 seed=4"), "{dry}");
    assert!(run_dirs(&ws, "lr").is_empty(), "a dry run makes nothing");

    let out = ws.ok(&["sweep", "lr"]);
    assert!(out.contains("4 member(s) of lr"), "{out}");
    let id = out
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let dirs = run_dirs(&ws, "lr");
    assert_eq!(dirs.len(), 4);
    // One slot: the first starts at once, the others wait in order, saying why.
    let waiting = dirs
        .iter()
        .filter(|d| state(d) == Some(State::Queued))
        .count();
    assert!(waiting >= 2, "{waiting} of 4 wait");
    for d in &dirs {
        wait_for("every member to finish", || {
            (state(d) == Some(State::Finished)).then_some(())
        });
    }
    let mut seen = Vec::new();
    for d in &dirs {
        let launch = Launch::read(d).unwrap().unwrap();
        assert_eq!(launch.sweep.as_deref(), Some(id.as_str()));
        let lr = launch.overrides["optim.lr"].as_float().unwrap();
        let seed = launch.overrides["seed"].as_integer().unwrap();
        seen.push((launch.member.unwrap(), lr, seed));
        // The run's own config is the experiment with the member's keys set.
        let cfg = std::fs::read_to_string(d.join("config.toml")).unwrap();
        let exp: toml::Table = cfg.parse().unwrap();
        assert_eq!(exp["optim"]["lr"].as_float(), Some(lr));
        assert_eq!(exp["seed"].as_integer(), Some(seed));
        assert!(!exp.contains_key("sweep"), "a member is an ordinary run");
        // The export carries the overrides on every row.
        let csv = ws.ok(&["export", d.to_str().unwrap(), "--csv"]);
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(row[col("sweep")], id);
        assert_eq!(row[col("override.optim.lr")].parse::<f64>().unwrap(), lr);
        assert_eq!(row[col("override.seed")], seed.to_string());
        // The TensorBoard export carries them as the HParams plugin's session start, right
        // after the file version: the tag, the plugin, each key and its value as a double.
        ws.ok(&["export", d.to_str().unwrap(), "--tensorboard"]);
        let tb = d.join("tensorboard");
        let file = tb.read_dir().unwrap().next().unwrap().unwrap().path();
        let bytes = std::fs::read(file).unwrap();
        let records = descent::runs::export::tfevent::read_records(&bytes).unwrap();
        let has = |r: &[u8], part: &[u8]| r.windows(part.len()).any(|w| w == part);
        let start = records[1];
        assert!(has(start, b"_hparams_/session_start_info"));
        assert!(has(start, b"hparams"));
        assert!(has(start, b"optim.lr") && has(start, &lr.to_le_bytes()));
        assert!(has(start, b"seed") && has(start, &(seed as f64).to_le_bytes()));
        assert!(!records.iter().skip(2).any(|r| has(r, b"_hparams_")));
    }
    seen.sort_by_key(|s| s.0);
    assert_eq!(seen, [(1, 0.01, 3), (2, 0.01, 4), (3, 0.1, 3), (4, 0.1, 4)]);
    // The whole sweep in one CSV: every member's rows, led by the experiment and the run,
    // each with its own keys; one member named again by its folder is not repeated.
    let first = dirs[0].to_str().unwrap();
    let all = ws.ok(&["export", &id, first, "--csv"]);
    let mut lines = all.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["experiment", "run", "kind"]);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let one = ws.ok(&["export", first, "--csv"]).lines().count() - 1;
    assert_eq!(rows.len(), 4 * one, "every member's rows, each once");
    for d in &dirs {
        let run = d.file_name().unwrap().to_str().unwrap();
        let lr = Launch::read(d).unwrap().unwrap().overrides["optim.lr"]
            .as_float()
            .unwrap();
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|r| r[col("run")] == run).collect();
        assert_eq!(mine.len(), one, "{run}");
        assert!(mine.iter().all(|r| r[col("experiment")] == "lr"));
        assert!(
            mine.iter()
                .all(|r| r[col("override.optim.lr")].parse::<f64>().unwrap() == lr)
        );
    }
    // And in TensorBoard, one folder per run under --out, named as TensorBoard lists them.
    let logdir = ws.root.join("tb");
    let out = ws.ok(&[
        "export",
        &id,
        "--tensorboard",
        "--out",
        logdir.to_str().unwrap(),
    ]);
    assert!(
        out.contains(&format!("tensorboard --logdir {}", logdir.display())),
        "{out}"
    );
    for d in &dirs {
        let run = logdir.join("lr").join(d.file_name().unwrap());
        assert_eq!(run.read_dir().unwrap().count(), 1, "{}", run.display());
    }
    let err = ws.fails(&["export", "no-such-thing", "--csv"]);
    assert!(
        err.contains("nor is it a sweep id or an experiment"),
        "{err}"
    );
    // The ranking: best held-out accuracy first, every member with a value.
    let ranking = ws.ok(&["sweeps", &id]);
    let accs: Vec<f64> = ranking
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(accs.len(), 4, "{ranking}");
    assert!(accs.windows(2).all(|w| w[0] >= w[1]), "{ranking}");
    assert!(
        ranking
            .lines()
            .nth(2)
            .unwrap()
            .trim_start()
            .starts_with("1 "),
        "{ranking}"
    );
    let list = ws.ok(&["sweeps"]);
    assert!(list.contains("4 finished"), "{list}");
    // A member moved to the trash is listed as removed, without a rank.
    ws.ok(&["runs", "rm", dirs[0].to_str().unwrap()]);
    let ranking = ws.ok(&["sweeps", &id]);
    let gone = dirs[0].file_name().unwrap().to_str().unwrap();
    let line = ranking
        .lines()
        .find(|l| l.contains(&format!("lr/{gone} ")))
        .unwrap();
    assert!(
        line.trim_start().starts_with("- ") && line.contains("removed"),
        "{ranking}"
    );
    // The sweep's export goes on without it.
    let rest = ws.ok(&["export", &id, "--csv"]);
    assert_eq!(rest.lines().count() - 1, 3 * one, "{rest}");
}

#[test]
fn a_run_waits_for_the_slot_and_takes_it_when_its_holder_is_killed() {
    let ws = one_slot(&[
        ("long", experiment("long", 1_000_000, "")),
        ("short", experiment("short", 20, "")),
    ]);
    let out = ws.ok(&["run", "long", "--queue"]);
    assert!(out.contains("started at once"), "{out}");
    let long = run_dirs(&ws, "long").remove(0);
    let s = wait_for("the long run to train", || {
        Status::read(&long)
            .ok()
            .filter(|s| s.state == State::Running && s.step > 0)
    });
    let out = ws.ok(&["run", "short", "--queue"]);
    assert!(
        out.contains("waiting for 1 free core: 1 of 1 held by long/"),
        "{out}"
    );
    let short = run_dirs(&ws, "short").remove(0);
    assert_eq!(state(&short), Some(State::Queued));
    let listed = ws.ok(&["queue"]);
    assert!(listed.contains("short/"), "{listed}");
    assert!(listed.contains("holds 1 cores"), "{listed}");
    // The holder dies without a word: its slot is free at once and the dispatcher starts
    // the waiting run.
    let supervisor = descent::queue::local::read_queue(&ws.root).unwrap().started[0].pid;
    unsafe {
        libc::kill(supervisor as i32, libc::SIGKILL);
        libc::kill(s.pid as i32, libc::SIGKILL);
    }
    wait_for("the waiting run to finish", || {
        (state(&short) == Some(State::Finished)).then_some(())
    });
    assert_ne!(
        Status::read(&long).unwrap().effective_state(),
        State::Running
    );
}

#[test]
fn waiting_runs_can_be_reordered_and_cancelled_and_one_too_big_says_why() {
    let ws = one_slot(&[
        ("long", experiment("long", 1_000_000, "")),
        ("a", experiment("a", 20, "")),
        ("b", experiment("b", 20, "")),
    ]);
    ws.ok(&["run", "long", "--queue"]);
    let long = run_dirs(&ws, "long").remove(0);
    ws.ok(&["run", "a", "--queue"]);
    ws.ok(&["run", "b", "--queue"]);
    let (a, b) = (run_dirs(&ws, "a").remove(0), run_dirs(&ws, "b").remove(0));
    let order = || descent::queue::local::read_queue(&ws.root).unwrap().waiting;
    assert_eq!(order(), [a.clone(), b.clone()]);
    let moved = ws.ok(&["queue", "move", b.to_str().unwrap(), "1"]);
    assert!(moved.contains("now 1 in line"), "{moved}");
    assert_eq!(order(), [b.clone(), a.clone()]);
    let cancelled = ws.ok(&["queue", "cancel", b.to_str().unwrap()]);
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    assert_eq!(order(), std::slice::from_ref(&a));
    let s = Status::read(&b).unwrap();
    assert_eq!(s.state, State::Stopped);
    assert!(s.message.unwrap().contains("cancelled while queued"));
    // Stopping the holder through the queue frees the slot for a.
    ws.ok(&["queue", "cancel", long.to_str().unwrap()]);
    wait_for("a to finish", || {
        (state(&a) == Some(State::Finished)).then_some(())
    });
    assert_eq!(state(&long), Some(State::Stopped));

    // A run needing more cores than the queue has never starts, and says so.
    std::fs::write(
        ws.root.join("descent.toml"),
        "threads = 4\n[queue]\ncores = 1\n",
    )
    .unwrap();
    let out = ws.ok(&["run", "a", "--queue"]);
    assert!(out.contains("cannot start: needs 4 cores"), "{out}");
    let never = run_dirs(&ws, "a").pop().unwrap();
    ws.ok(&["queue", "cancel", never.to_str().unwrap()]);
}

#[test]
fn sweep_errors_are_placed_and_a_missing_sbatch_is_named() {
    let bad = "[sweep.grid]\n\"optim.momentun\" = [0.5]\n";
    let ws = Ws::new(&[("bad", experiment("bad", 10, bad))]);
    let o = ws.descent(&["check"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(
        out.contains(
            "experiments/bad.toml:19:20: `sweep.grid.optim.momentun`: unknown field `momentun`"
        ),
        "{out}"
    );
    // Slurm named, but no Slurm here: the run is refused with what is missing, and marked.
    let ws = Ws::new(&[("e", experiment("e", 10, ""))]);
    std::fs::write(ws.root.join("descent.toml"), "executor = \"slurm\"\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["run", "e", "--queue"])
        .current_dir(&ws.root)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("sbatch is not installed"), "{err}");
    let dir = run_dirs(&ws, "e").remove(0);
    let s = Status::read(&dir).unwrap();
    assert_eq!(s.state, State::Failed);
    assert!(s.message.unwrap().contains("not submitted: sbatch"));
}

#[test]
fn a_sweep_ranked_by_the_best_evaluation_reads_each_members_best() {
    let best = "[sweep]\nmetric = \"eval_loss\"\nsummary = \"best\"\n[sweep.grid]\n\"optim.lr\" = [0.02, 0.3]\n";
    let ws = one_slot(&[("best", experiment("best", 60, best))]);
    let out = ws.ok(&["sweep", "best"]);
    let id = out.split_whitespace().nth(1).unwrap().trim_end_matches(':');
    let dirs = run_dirs(&ws, "best");
    for d in &dirs {
        wait_for("every member to finish", || {
            (state(d) == Some(State::Finished)).then_some(())
        });
    }
    let ranking = ws.ok(&["sweeps", id]);
    assert!(ranking.contains("ranked by best eval_loss"), "{ranking}");
    for d in &dirs {
        // The lowest eval loss the member's metrics record, as the ranking prints it.
        let metrics = std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
        let lowest = metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["kind"] == "eval")
            .map(|r| r["loss"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min);
        let status = Status::read(d).unwrap();
        assert_eq!(status.evals.best_eval_loss, Some(lowest));
        let run = d.file_name().unwrap().to_str().unwrap();
        let line = ranking
            .lines()
            .find(|l| l.contains(&format!("best/{run} ")))
            .unwrap();
        assert!(line.contains(&format!("{lowest:.4}")), "{ranking}");
    }
}
