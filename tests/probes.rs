//! Gradient probes through the real binary: a supervised run records every probe on its
//! cadence, the records export to CSV and TensorBoard, `descent probe hessian` writes a
//! spectrum, `data.subset` trains on part of the data by EL2N or at random, a live edit turns
//! a probe on, and bad probe configs name their key.

use descent::runs::records::{Event, Metric, read_from};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "support/workspace.rs"]
mod workspace;
use workspace::Ws;

fn digits(name: &str, steps: u64, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"supervised\"\nseed = 1\n[data]\nsource = \"builtin:digits\"\n\
         val_fraction = 0.2\nbatch_size = 64\n{extra}\n[model]\narch = \"mlp\"\nhidden = [32]\n\
         [optim]\nname = \"adamw\"\nlr = 2e-3\n[schedule]\nname = \"constant\"\n[train]\n\
         steps = {steps}\neval_every = 20\ncheckpoint_every = 20\n"
    )
}

const PROBES: &str = "[probes.coherence]\nevery = 5\nmicro_batches = 4\n\
    [probes.sharpness]\nevery = 20\nbatch = 128\niterations = 5\ntrace_samples = 2\n\
    [probes.opposing]\nevery = 10\nsize = 64\ntop = 5\n";

/// Each train step's extra scalars.
fn extras(dir: &Path) -> BTreeMap<u64, BTreeMap<String, f64>> {
    let (records, _, bad) = read_from::<Metric>(&dir.join("metrics.jsonl"), 0).unwrap();
    assert_eq!(bad, 0);
    records
        .into_iter()
        .filter_map(|m| match m {
            Metric::Train { step, extra, .. } => {
                Some((step, extra.into_iter().map(|(k, v)| (k, v.0)).collect()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_run_records_each_probe_on_its_cadence_and_the_records_export() {
    let ws = Ws::new(&[("probed", format!("{}{PROBES}", digits("probed", 40, "")))]);
    ws.ok(&["run", "probed"]);
    let dir = ws.only_run("probed");
    let x = extras(&dir);
    let with = |key: &str| -> Vec<u64> {
        x.iter()
            .filter(|(_, e)| e.contains_key(key))
            .map(|(s, _)| *s)
            .collect()
    };
    assert_eq!(
        with("coherence/m"),
        (1..=8).map(|k| k * 5).collect::<Vec<_>>()
    );
    assert_eq!(with("sharpness/lambda_max"), vec![20, 40]);
    assert_eq!(with("sharpness/trace"), vec![20, 40]);
    assert_eq!(with("opposing/loss"), vec![10, 20, 30, 40]);
    assert_eq!(with("el2n/batch_mean").len(), 40, "EL2N is on by default");
    let s = &x[&40];
    // AdamW at β₁ = 0.9 is judged on the preconditioned sharpness against 38/η.
    assert!((s["sharpness/edge"] - 38.0 / 2e-3).abs() < 1e-6);
    assert!(s["sharpness/lambda_max"] > 0.0 && s["sharpness/preconditioned"] > 0.0);
    let c = &x[&40];
    assert!(c["coherence/m"] > 0.0 && c["coherence/m"] <= 64.0 + 1e-9);
    assert!(c.keys().any(|k| k.starts_with("coherence/b_noise/")));
    assert!(c.contains_key("probe_ms/coherence"));
    // opposing.jsonl: one line per probe, the same probe set, groups from the second on.
    let text = std::fs::read_to_string(dir.join("opposing.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(text.starts_with("{\"step\":10,"));
    assert_eq!(lines[1]["probe"]["rows"], lines[0]["probe"]["rows"]);
    assert!(lines[0]["probe"]["rise"].as_array().unwrap().is_empty());
    assert!(
        lines[3]["probe"]["rise"].as_array().unwrap().len()
            + lines[3]["probe"]["fall"].as_array().unwrap().len()
            > 0
    );
    // EL2N scores travel with the checkpoints.
    assert!(dir.join("checkpoints/step-40/el2n.json").is_file());
    let out = ws.ok(&["probe", "scores", "probed"]);
    assert!(
        out.contains("EL2N of") && out.contains("hardest: row"),
        "{out}"
    );
    // Export: the probe scalars are CSV columns and TensorBoard tags.
    let run = dir.to_str().unwrap();
    let csv = ws.ok(&["export", run, "--csv"]);
    let header = csv.lines().next().unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let cols: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let row = |step: &str| {
        rows.iter()
            .find(|r| &r[0] == "train" && &r[1] == step)
            .unwrap()
    };
    for col in [
        "coherence/m",
        "sharpness/lambda_max",
        "opposing/loss",
        "el2n/batch_mean",
    ] {
        let i = cols.iter().position(|h| h == col);
        let i = i.unwrap_or_else(|| panic!("{col} in {header}"));
        // The value read back is the record's.
        let v: f64 = row("40")[i].parse().unwrap();
        assert!(
            (v - x[&40][col]).abs() <= 1e-12 * v.abs(),
            "{col}: {v} vs {}",
            x[&40][col]
        );
    }
    // A step without a probe leaves its cells empty.
    let sharp = cols
        .iter()
        .position(|h| h == "sharpness/lambda_max")
        .unwrap();
    assert_eq!(&row("39")[sharp], "");
    let tb = ws.root.join("tb");
    ws.ok(&[
        "export",
        run,
        "--tensorboard",
        "--out",
        tb.to_str().unwrap(),
    ]);
    let mut bytes = Vec::new();
    for f in std::fs::read_dir(&tb).unwrap() {
        bytes.extend(std::fs::read(f.unwrap().path()).unwrap());
    }
    let hay = String::from_utf8_lossy(&bytes);
    assert!(hay.contains("train/sharpness/lambda_max") && hay.contains("train/coherence/m"));
    // The spectrum on demand.
    let out = ws.ok(&[
        "probe",
        "hessian",
        "probed",
        "--lanczos-steps",
        "12",
        "--batch",
        "64",
    ]);
    assert!(
        out.contains("λmax") && out.contains("hessian/step-40.json"),
        "{out}"
    );
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("hessian/step-40.json")).unwrap()).unwrap();
    assert_eq!(spec["runs"][0]["nodes"].as_array().unwrap().len(), 12);
    assert_eq!(spec["classes"], 10);
    let err = ws.fails(&["probe", "hessian", "probed", "--step", "7"]);
    assert!(
        err.contains("no checkpoint at step 7; it has: 20, 40"),
        "{err}"
    );
}

#[test]
fn a_subset_trains_on_the_top_or_a_random_fraction() {
    let ws = Ws::new(&[
        ("score", digits("score", 100, "")),
        (
            "top",
            digits(
                "top",
                2,
                "subset = { by = \"el2n\", keep = 0.5, scores = \"score\" }",
            ),
        ),
        (
            "random",
            digits("random", 2, "subset = { by = \"random\", keep = 0.25 }"),
        ),
        (
            "noscores",
            digits(
                "noscores",
                2,
                "subset = { by = \"el2n\", keep = 0.5, scores = \"random\" }",
            ),
        ),
    ]);
    let err = ws.fails(&["run", "top"]);
    assert!(
        err.contains("data.subset.scores: \"score\" has no runs: train it first"),
        "{err}"
    );
    assert!(
        !ws.root.join("runs/top").exists(),
        "refused before a run folder is made"
    );
    ws.ok(&["run", "score"]);
    ws.ok(&["run", "top"]);
    ws.ok(&["run", "random"]);
    let said = |name: &str| -> String {
        let ev: Vec<Event> = read_from(&ws.only_run(name).join("events.jsonl"), 0)
            .unwrap()
            .0;
        ev.into_iter().find(|e| e.event == "data").unwrap().message
    };
    // 1,797 digits, 20% held out: 1,438 training rows.
    assert!(
        said("top").contains("719 training examples (a subset: 719 of the split's 1438)"),
        "{}",
        said("top")
    );
    assert!(said("random").contains("360 training examples (a subset: 360 of the split's 1438)"));
    // A run that never trained on the rows has no scores for them: said, not guessed.
    let err = ws.fails(&["run", "noscores"]);
    assert!(
        err.contains("no run with EL2N scores yet") || err.contains("has no score"),
        "{err}"
    );
}

#[test]
fn turning_a_probe_on_in_the_experiment_file_reaches_a_running_run() {
    let ws = Ws::new(&[("live", digits("live", 100_000, ""))]);
    let dir = ws.detach("live");
    let file = ws.root.join("experiments/live.toml");
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !ok() {
            assert!(t.elapsed() < Duration::from_secs(120), "waited for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("the first steps", &|| dir.join("metrics.jsonl").is_file());
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}[probes.coherence]\nevery = 1\n")).unwrap();
    wait("coherence records", &|| {
        std::fs::read_to_string(dir.join("metrics.jsonl")).is_ok_and(|m| m.contains("coherence/m"))
    });
    let ev: Vec<Event> = read_from(&dir.join("events.jsonl"), 0).unwrap().0;
    assert!(
        ev.iter()
            .any(|e| e.event == "config"
                && e.message.contains("probes changed: probes.coherence.every")),
        "{ev:?}"
    );
    ws.ok(&["ctl", dir.to_str().unwrap(), "stop"]);
    wait("the stop", &|| {
        std::fs::read_to_string(dir.join("status.json")).is_ok_and(|s| s.contains("\"stopped\""))
    });
}

#[test]
fn bad_probe_settings_name_their_key() {
    let ws = Ws::new(&[
        (
            "radius",
            digits("radius", 2, "") + "[probes.sharpness]\nevery = 5\nradius = 0.5\n",
        ),
        (
            "micro",
            digits("micro", 2, "") + "[probes.coherence]\nevery = 5\nmicro_batches = 1\n",
        ),
        (
            "unknown",
            digits("unknown", 2, "") + "[probes.coherence]\nevry = 5\n",
        ),
        (
            "subset",
            digits("subset", 2, "subset = { by = \"el2n\", keep = 0.5 }"),
        ),
        (
            "offset",
            digits(
                "offset",
                2,
                "subset = { by = \"el2n\", keep = 0.8, offset = 0.3, scores = \"x\" }",
            ),
        ),
    ]);
    let o = ws.descent(&["check"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    for want in [
        "radius.toml:23:10: `probes.sharpness.radius`: must be in (0, 0.1]",
        "micro.toml:23:17: `probes.coherence.micro_batches`: must be at least 2",
        "unknown.toml:22:1: `probes.coherence.evry`: unknown field `evry`",
        "subset.toml:8:1: `data.subset.scores`: by = \"el2n\" ranks by a run's scores",
        "offset.toml:8:46: `data.subset.offset`: must be in [0, 1) with offset + keep ≤ 1",
    ] {
        assert!(err.contains(want), "{want}\nin\n{err}");
    }
}
