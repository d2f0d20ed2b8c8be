//! GRPO runs through the real binary, from a language model the test pretrains first:
//! rollouts logged, TRL's metrics recorded, checkpoints in the Hugging Face layout, exact
//! resume, D³S's kept fractions, and bad input.

use descent::runs::records::{Event, Metric, read_from};
use descent::runs::{State, Status};
use std::collections::BTreeMap;
use std::path::Path;

#[path = "support/workspace.rs"]
mod workspace;
use workspace::Ws;

const BASE: &str = "name = \"base\"\nkind = \"pretrain\"\nseed = 2\n[data]\n\
    source = \"pairs.jsonl\"\nval_fraction = 0.1\nbatch_size = 8\n[model]\narch = \"llama\"\n\
    [lm]\nhidden_size = 32\nlayers = 2\nheads = 2\nvocab_size = 280\ncontext = 24\n\
    eval_problems = 5\n[optim]\nlr = 3e-3\n[train]\nsteps = 30\neval_every = 30\n\
    checkpoint_every = 30\n";

/// A command reward that fails on the second completion of every batch.
const FLAKY: &str = "n=0; while read l; do n=$((n+1)); if [ $n = 2 ]; then echo oops; \
    else echo 0.25; fi; done";

fn grpo(name: &str, steps: u64, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"grpo\"\nseed = 4\n[data]\nsource = \"task.jsonl\"\n\
         val_fraction = 0.2\nbatch_size = 8\n[model]\narch = \"llama\"\n[grpo]\nfrom = \"base\"\n\
         num_generations = 4\nmax_completion_length = 4\neval_problems = 4\n\
         [[grpo.rewards]]\nname = \"accuracy\"\n[[grpo.rewards]]\nname = \"format\"\n\
         pattern = '^\\d+$'\nweight = 0.1\n[[grpo.rewards]]\nname = \"command\"\n\
         command = [\"sh\", \"-c\", \"{FLAKY}\"]\nweight = 0.5\n{extra}\n[optim]\nlr = 1e-3\n\
         clip_grad_norm = 1.0\n[train]\nsteps = {steps}\neval_every = 3\ncheckpoint_every = 3\n"
    )
}

fn workspace(experiments: &[(&str, String)]) -> Ws {
    let mut all = vec![("base", BASE.to_string())];
    all.extend(experiments.iter().cloned());
    let ws = Ws::new(&all);
    let data = ws.root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (mut pairs, mut task) = (String::new(), String::new());
    for i in 0..40 {
        let line = format!(
            "{{\"prompt\": \"{i} plus one\", \"completion\": \"{}\"}}\n",
            i + 1
        );
        pairs += &line;
        task += &format!("{{\"prompt\": \"{i} plus one\", \"answer\": {}}}\n", i + 1);
    }
    // A prompt that cannot fit the base model's 24 positions.
    task += &format!("{{\"prompt\": \"{}\", \"answer\": 0}}\n", "one ".repeat(40));
    std::fs::write(data.join("pairs.jsonl"), pairs).unwrap();
    std::fs::write(data.join("task.jsonl"), task).unwrap();
    ws.ok(&["run", "base"]);
    ws
}

fn events(dir: &Path) -> Vec<Event> {
    read_from(&dir.join("events.jsonl"), 0).unwrap().0
}

/// Each train step's extra scalars, the last record of a step winning.
fn extras(dir: &Path) -> BTreeMap<u64, BTreeMap<String, f64>> {
    let (records, _, bad) = read_from::<Metric>(&dir.join("metrics.jsonl"), 0).unwrap();
    assert_eq!(bad, 0);
    records
        .into_iter()
        .filter_map(|m| match m {
            Metric::Train {
                step, extra, loss, ..
            } => {
                let mut e: BTreeMap<String, f64> =
                    extra.into_iter().map(|(k, v)| (k, v.0)).collect();
                e.insert("loss".into(), loss.0);
                // Timings differ between runs.
                e.retain(|k, _| !k.contains("time") && !k.contains("per_s"));
                Some((step, e))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_grpo_run_logs_its_rollouts_and_trls_metrics_saves_hf_folders_and_resumes_exactly() {
    let ws = workspace(&[("rl", grpo("rl", 6, "")), ("again", grpo("again", 3, ""))]);
    ws.ok(&["run", "rl"]);
    let dir = ws.only_run("rl");
    assert_eq!(Status::read(&dir).unwrap().state, State::Finished);
    let data = events(&dir)
        .into_iter()
        .find(|e| e.event == "data")
        .expect("a data event");
    assert!(
        data.message.contains("41 problems")
            && data.message.contains("1 prompts left out")
            && data.message.contains("no reference model"),
        "{}",
        data.message
    );
    // The base model is scored before the first step, then at every evaluation.
    let (records, _, _) = read_from::<Metric>(&dir.join("metrics.jsonl"), 0).unwrap();
    let evals: Vec<u64> = records
        .iter()
        .filter_map(|m| match m {
            Metric::Eval {
                step,
                accuracy: Some(_),
                loss: None,
                ..
            } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(evals, vec![0, 3, 6]);
    let x = extras(&dir);
    assert_eq!(x.len(), 6);
    let first = &x[&1];
    for key in [
        "reward",
        "reward_std",
        "frac_reward_zero_std",
        "rewards/accuracy/mean",
        "rewards/format/std",
        "completions/mean_length",
        "completions/clipped_ratio",
        "entropy",
        "clip_ratio/region_mean",
        "num_tokens",
        "d3s/sample_kept_frac",
    ] {
        assert!(first.contains_key(key), "{key} missing from {first:?}");
    }
    // One failure per batch, counted; that sample's command reward is missing, not wrong.
    assert!(x.values().all(|e| e["rewards/command/errors"] == 1.0));
    assert!(
        x.values()
            .all(|e| (e["rewards/command/mean"] - 0.25).abs() < 1e-9)
    );
    // μ = 1: the ratio is 1, so nothing is clipped.
    assert!(x.values().all(|e| e["clip_ratio/region_mean"] == 0.0));
    assert!(x[&6]["num_tokens"] > x[&1]["num_tokens"]);
    // Every rollout is logged: 2 prompts × 4 completions per step.
    let text = std::fs::read_to_string(dir.join("rollouts.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let groups = lines[0]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let c = &groups[0]["completions"][1];
    assert_eq!(
        c["tokens"].as_array().unwrap().len(),
        c["score"].as_array().unwrap().len()
    );
    assert!(
        c["errors"][0]
            .as_str()
            .unwrap()
            .contains("\"oops\" is not a number")
    );
    assert!(c["rewards"]["command"].is_null());
    assert!(c["advantage"].is_number() && c["kept"] == true);
    // Checkpoints and the export are Hugging Face folders that generate opens.
    let ckpt = dir.join("checkpoints/step-6");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(ckpt.join(f).is_file(), "{f}");
    }
    let out = ws.ok(&[
        "generate",
        dir.join("model").to_str().unwrap(),
        "--chat",
        "--prompt",
        "3 plus one",
        "--json",
    ]);
    assert!(out.contains("\"completions\""), "{out}");
    // CSV export carries the GRPO columns.
    let csv_path = ws.root.join("rl.csv");
    ws.ok(&[
        "export",
        dir.to_str().unwrap(),
        "--csv",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    assert!(
        reader
            .headers()
            .unwrap()
            .iter()
            .any(|h| h == "rewards/accuracy/mean")
    );

    // Stopped at 3 and resumed to 6, a run retraces the uninterrupted one.
    ws.ok(&["run", "again"]);
    let again = ws.only_run("again");
    std::fs::write(ws.root.join("experiments/again.toml"), grpo("again", 6, "")).unwrap();
    ws.ok(&["run", "--resume", again.to_str().unwrap()]);
    assert_eq!(extras(&again), x, "same seed, same rollouts and losses");
}

#[test]
fn d3s_keeps_the_scheduled_fractions_and_raises_the_variance_of_advantages() {
    let d3s = "[d3s]\nsample_level = \"intra\"\nsample_init = 0.5\ntoken_init = 0.2\n\
               ramp_fraction = 0.5\n";
    let every_other = grpo("d", 4, d3s).replace(
        "eval_problems = 4",
        "eval_problems = 4\nlog_completions_every = 2",
    );
    let ws = workspace(&[("d", every_other)]);
    ws.ok(&["run", "d"]);
    let dir = ws.only_run("d");
    let logged: Vec<u64> = std::fs::read_to_string(dir.join("rollouts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(logged, vec![2, 4], "rollouts logged every other step");
    let x = extras(&dir);
    // Step 1: half of each group of 4 (the extremes); from step 3 (past half of 4 steps),
    // everything.
    assert_eq!(x[&1]["d3s/sample_kept_frac"], 0.5);
    assert_eq!(x[&3]["d3s/sample_kept_frac"], 1.0);
    assert!(x[&1]["d3s/token_kept_frac"] < 1.0);
    assert_eq!(x[&4]["d3s/token_kept_frac"], 1.0);
    for e in x.values() {
        assert!(
            e["d3s/var_adv_after"] >= e["d3s/var_adv_before"] - 1e-12,
            "{e:?}"
        );
    }
}

#[test]
fn micro_batches_take_the_same_first_step_as_the_whole_batch() {
    let split = grpo("split", 1, "").replace(
        "eval_problems = 4",
        "eval_problems = 4\nmicro_batch_size = 3",
    );
    let ws = workspace(&[("whole", grpo("whole", 1, "")), ("split", split)]);
    ws.ok(&["run", "whole"]);
    ws.ok(&["run", "split"]);
    let first = |name: &str| {
        let (records, _, _) =
            read_from::<Metric>(&ws.only_run(name).join("metrics.jsonl"), 0).unwrap();
        records
            .into_iter()
            .find_map(|m| match m {
                Metric::Train { loss, grad_l2, .. } => Some((loss.0, grad_l2.0)),
                _ => None,
            })
            .unwrap()
    };
    let (a, b) = (first("whole"), first("split"));
    // Same rollouts (same seed and weights); the gradient summed over parts of 3, 3 and 2.
    assert!((a.0 - b.0).abs() < 1e-6, "loss {a:?} vs {b:?}");
    assert!(
        (a.1 - b.1).abs() < 1e-5 * a.1.max(1.0),
        "‖g‖ {a:?} vs {b:?}"
    );
    assert!(a.1 > 0.0);
}

#[test]
fn bad_grpo_input_gets_a_message_that_names_the_place() {
    let ws = workspace(&[
        (
            "loss",
            grpo("loss", 2, "").replace(
                "[[grpo.rewards]]\nname = \"accuracy\"",
                "loss_type = \"ppo\"\n[[grpo.rewards]]\nname = \"accuracy\"",
            ),
        ),
        (
            "reward",
            grpo("reward", 2, "").replace("name = \"accuracy\"", "name = \"accurate\""),
        ),
        (
            "nobase",
            grpo("nobase", 2, "").replace("from = \"base\"", "from = \"missing\""),
        ),
        (
            "badline",
            grpo("badline", 2, "").replace("task.jsonl", "bad.jsonl"),
        ),
    ]);
    let err = ws.fails(&["run", "loss"]);
    assert!(
        err.contains("loss.toml") && err.contains("unknown variant `ppo`"),
        "{err}"
    );
    let err = ws.fails(&["run", "reward"]);
    assert!(
        err.contains("no reward function `accurate`; there are accuracy, format, command"),
        "{err}"
    );
    let err = ws.fails(&["run", "nobase"]);
    assert!(err.contains("grpo.from = \"missing\""), "{err}");
    assert!(
        !ws.root.join("runs/nobase").exists(),
        "refused before a run folder is made"
    );
    std::fs::write(
        ws.root.join("data/bad.jsonl"),
        "{\"prompt\": \"1\", \"answer\": 2}\n{\"prompt\": \"3\"}\n",
    )
    .unwrap();
    let err = ws.fails(&["run", "badline"]);
    assert!(err.contains("bad.jsonl:2: needs \"answer\""), "{err}");
}
