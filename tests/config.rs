//! Experiment and settings files: what parses, and where each error is reported.

use descent::config::{ConfigError, Experiment, Kind, ScheduleName, Settings, read_text};
use std::path::Path;

const VALID: &str = r#"name = "digits-mlp"
kind = "supervised"
seed = 3

[data]
source = "builtin:digits"
batch_size = 64

[model]
arch = "mlp"
hidden = [256, 256]

[optim]
name = "adamw"
lr = 1e-3
clip_grad_norm = 1.0

[schedule]
name = "linear-decay"
warmup_steps = 50

[train]
steps = 2000
"#;

fn parse(text: &str) -> Result<Experiment, Vec<ConfigError>> {
    Experiment::parse(Path::new("experiments/x.toml"), text)
}

/// The single error of `text`, rendered as the user sees it.
fn error(text: &str) -> String {
    let errors = parse(text).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].to_string()
}

#[test]
fn a_valid_experiment_parses_with_defaults_filled_in() {
    let e = parse(VALID).unwrap();
    assert_eq!(e.name(), "digits-mlp");
    assert_eq!(e.kind, Kind::Supervised);
    assert_eq!(e.seed, 3);
    assert_eq!(e.data.batch_size, 64);
    assert_eq!(e.data.val_fraction, 0.2);
    assert_eq!(e.model.hidden, [256, 256]);
    assert_eq!(e.optim.clip_grad_norm, Some(1.0));
    assert_eq!(e.schedule.name, ScheduleName::LinearDecay);
    assert_eq!(e.train.eval_every, 100);
    assert_eq!(e.train.keep_checkpoints, 3);
}

#[test]
fn the_name_defaults_to_the_file_name() {
    let e = parse(&VALID.replace("name = \"digits-mlp\"\n", "")).unwrap();
    assert_eq!(e.name(), "x");
}

#[test]
fn the_refined_schedule_reads_as_an_inline_table() {
    let text = VALID
        .replace(
            "[schedule]\nname = \"linear-decay\"\nwarmup_steps = 50\n",
            "",
        )
        .replace(
            "seed = 3\n",
            "seed = 3\nschedule = { name = \"refined\", from_run = \"r1\" }\n",
        );
    let e = parse(&text).unwrap();
    assert_eq!(e.schedule.name, ScheduleName::Refined);
    assert_eq!(e.schedule.from_run.as_deref(), Some("r1"));
}

#[test]
fn a_syntax_error_is_placed_at_its_line_and_column() {
    let text = VALID.replace("steps = 2000", "steps = = 2000");
    assert_eq!(
        error(&text),
        "experiments/x.toml:23:9: extra `=`, expected nothing"
    );
}

#[test]
fn an_unknown_key_is_named_and_placed() {
    let text = VALID.replace("batch_size = 64", "batch_sise = 64");
    let e = error(&text);
    assert!(
        e.starts_with("experiments/x.toml:7:1: `data.batch_sise`: unknown field `batch_sise`"),
        "{e}"
    );
    assert!(e.contains("`batch_size`"), "suggests the known keys: {e}");
}

#[test]
fn a_wrong_type_names_the_key() {
    let text = VALID.replace("lr = 1e-3", "lr = \"fast\"");
    assert_eq!(
        error(&text),
        "experiments/x.toml:15:6: `optim.lr`: invalid type: string \"fast\", expected f64"
    );
}

#[test]
fn an_unknown_variant_names_the_choices() {
    let text = VALID.replace("name = \"adamw\"", "name = \"adam\"");
    let e = error(&text);
    assert!(
        e.starts_with("experiments/x.toml:14:8: `optim.name`: unknown variant `adam`"),
        "{e}"
    );
    assert!(e.contains("`sgd` or `adamw`"), "{e}");
}

#[test]
fn a_missing_section_is_named() {
    let text = VALID.split("[train]").next().unwrap().to_string();
    let e = error(&text);
    assert!(e.contains("missing field `train`"), "{e}");
}

#[test]
fn range_rules_point_at_the_offending_value() {
    let text = VALID.replace("lr = 1e-3", "lr = -1.0");
    assert_eq!(
        error(&text),
        "experiments/x.toml:15:6: `optim.lr`: must be a positive number"
    );
    let text = VALID.replace("warmup_steps = 50", "warmup_steps = 5000");
    assert_eq!(
        error(&text),
        "experiments/x.toml:20:16: `schedule.warmup_steps`: must not exceed train.steps"
    );
}

#[test]
fn a_rule_about_an_absent_key_points_at_its_table() {
    let text = VALID.replace("name = \"linear-decay\"", "name = \"refined\"");
    let e = error(&text);
    assert!(
        e.starts_with("experiments/x.toml:18:2: `schedule.from_run`: the refined schedule needs"),
        "{e}"
    );
}

#[test]
fn several_rule_violations_are_all_reported() {
    let text = VALID
        .replace("lr = 1e-3", "lr = 0.0")
        .replace("batch_size = 64", "batch_size = 0");
    let errors = parse(&text).unwrap_err();
    let keys: Vec<_> = errors
        .iter()
        .map(|e| e.message.split('`').nth(1).unwrap())
        .collect();
    assert_eq!(keys, ["data.batch_size", "optim.lr"]);
}

#[test]
fn bad_sources_and_devices_are_explained() {
    let text = VALID.replace("builtin:digits", "hub:no-slash");
    assert!(error(&text).contains("`data.source`: bad hub repository \"no-slash\""));
    let text = VALID.replace("seed = 3", "seed = 3\ndevice = \"tpu\"");
    assert!(error(&text).contains("`device`: unknown device \"tpu\""));
}

#[test]
fn an_empty_file_says_what_an_experiment_needs() {
    let e = error("\n  \n");
    assert!(e.starts_with("experiments/x.toml: empty file;"), "{e}");
}

#[test]
fn files_that_are_not_configs_are_refused_unparsed() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "a".repeat(10 * 1024 * 1024)).unwrap();
    let e = read_text(&big).unwrap_err().to_string();
    assert!(
        e.contains("big.toml: file is 10485760 bytes; config files are limited"),
        "{e}"
    );

    let bin = dir.path().join("bin.toml");
    std::fs::write(&bin, [0x7f, b'E', b'L', b'F', 0, 1, 2]).unwrap();
    assert!(
        read_text(&bin)
            .unwrap_err()
            .to_string()
            .contains("bin.toml:1:5: binary file")
    );

    let missing = dir.path().join("missing.toml");
    assert!(
        read_text(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.toml: cannot read")
    );
}

#[test]
fn settings_have_defaults_and_reject_unknown_keys() {
    let p = Path::new("descent.toml");
    let s = Settings::parse(p, "threads = 4\n").unwrap();
    assert_eq!(s.threads, 4);
    assert_eq!(s.runs_dir, Path::new("runs"));
    let e = Settings::parse(p, "runs = \"x\"\n").unwrap_err();
    assert!(
        e[0].to_string()
            .starts_with("descent.toml:1:1: unknown field `runs`"),
        "{}",
        e[0]
    );
    let e = Settings::parse(p, "threads = -1\n").unwrap_err();
    assert!(
        e[0].to_string()
            .starts_with("descent.toml:1:11: `threads`: invalid value"),
        "{}",
        e[0]
    );
}

const DIFFUSION: &str = r#"kind = "diffusion"
[data]
source = "builtin:digits"
[model]
arch = "unet"
channels = [16, 32]
[diffusion]
beta_schedule = "squaredcos_cap_v2"
prediction = "v_prediction"
[train]
steps = 100
"#;

#[test]
fn a_diffusion_experiment_reads_its_noise_process_and_refuses_what_does_not_apply() {
    let e = parse(DIFFUSION).unwrap();
    let d = e.diffusion.unwrap();
    assert_eq!(d.timesteps, 1000);
    assert!(!d.clip_sample);
    assert_eq!(
        serde_json::to_value(d.prediction).unwrap(),
        serde_json::json!("v_prediction")
    );
    let e = error(&DIFFUSION.replace("channels = [16, 32]", "channels = [16]\nlayer_norm = true"));
    assert!(
        e.contains("model.layer_norm") && e.contains("group norm"),
        "{e}"
    );
    let e = error(&DIFFUSION.replace("kind = \"diffusion\"", "kind = \"supervised\"").replace(
        "[diffusion]\nbeta_schedule = \"squaredcos_cap_v2\"\nprediction = \"v_prediction\"\n",
        "",
    ));
    assert!(e.contains("a unet is a diffusion denoiser"), "{e}");
    let e = error(&DIFFUSION.replace("prediction = \"v_prediction\"", "label_dropout = 1.5"));
    assert!(
        e.contains("diffusion.label_dropout") && e.contains("[0, 1)"),
        "{e}"
    );
    let e = error(&DIFFUSION.replace(
        "beta_schedule = \"squaredcos_cap_v2\"",
        "beta_schedule = \"sigmoid\"",
    ));
    assert!(
        e.contains("beta_schedule") && e.contains("squaredcos_cap_v2"),
        "{e}"
    );
}

const PRETRAIN: &str = r#"kind = "pretrain"

[data]
source = "builtin:arithmetic"
params = { digits = 2 }

[model]
arch = "llama"

[lm]
hidden_size = 64
heads = 4
context = 32

[train]
steps = 100
"#;

#[test]
fn a_pretrain_experiment_reads_its_language_model_and_refuses_what_does_not_apply() {
    let e = parse(PRETRAIN).unwrap();
    let lm = e.lm.clone().unwrap();
    assert_eq!(
        (lm.hidden(), lm.heads(), lm.kv(), lm.intermediate()),
        (64, 4, 4, 192)
    );
    assert!(lm.chat);
    let e = error(&PRETRAIN.replace("heads = 4", "heads = 3"));
    assert!(
        e.contains("lm.heads") && e.contains("multiple of heads"),
        "{e}"
    );
    let e = error(&PRETRAIN.replace("hidden_size = 64", "from = \"models/base\""));
    assert!(
        e.contains("lm.from") && e.contains("leave out heads"),
        "{e}"
    );
    let e = error(&PRETRAIN.replace("arch = \"llama\"", "arch = \"mlp\""));
    assert!(e.contains("arch = \"llama\""), "{e}");
    let e = error(
        &PRETRAIN
            .replace("builtin:arithmetic", "builtin:digits")
            .replace("params = { digits = 2 }\n", ""),
    );
    assert!(
        e.contains("no builtin text corpus") && e.contains("builtin:arithmetic"),
        "{e}"
    );
    let e = error(
        &PRETRAIN
            .replace("builtin:arithmetic", "train.csv")
            .replace("params = { digits = 2 }\n", ""),
    );
    assert!(e.contains(".txt or .jsonl"), "{e}");
    let e = error(&PRETRAIN.replace("context = 32", "context = 32\nvocab_size = 100"));
    assert!(
        e.contains("lm.vocab_size") && e.contains("at least 259"),
        "{e}"
    );
    // A table experiment cannot take a language model's pieces.
    let e = error(&VALID.replace("arch = \"mlp\"", "arch = \"llama\""));
    assert!(e.contains("kind = \"pretrain\""), "{e}");
    let e = error(&format!("{VALID}\n[lm]\ncontext = 8\n"));
    assert!(e.contains("[lm]") || e.contains("lm"), "{e}");
    assert!(
        parse(
            &PRETRAIN
                .replace("builtin:arithmetic", "corpus.txt")
                .replace("params = { digits = 2 }\n", "",)
        )
        .is_ok()
    );
}

/// The demo's GRPO experiment with D³S.
fn grpo_demo() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workspaces/demo/experiments/arithmetic-d3s.toml"
    ))
    .unwrap()
}

#[test]
fn a_grpo_experiment_reads_trls_knobs_and_d3s_and_names_what_is_wrong() {
    let e = parse(&grpo_demo()).unwrap();
    let g = e.grpo.clone().unwrap();
    assert_eq!((g.num_generations, g.epsilon, g.beta), (8, 0.2, 0.0));
    assert_eq!(g.loss_type, descent::config::grpo::LossType::Dapo);
    assert_eq!(e.data.seed, Some(0));
    let d = e.d3s.clone().unwrap();
    assert_eq!(
        (d.sample_init, d.token_init, d.ramp_fraction),
        (0.5, 0.2, 0.5)
    );
    // Each mistake is named at its key, with its place in the file.
    let e = error(&grpo_demo().replace("batch_size = 64", "batch_size = 60"));
    assert!(
        e.contains(":17:") && e.contains("multiple of grpo.num_generations = 8"),
        "{e}"
    );
    let e = error(&grpo_demo().replace("name = \"accuracy\"", "name = \"format\""));
    assert!(e.contains("the format reward needs pattern"), "{e}");
    let e = error(&grpo_demo().replace(
        "name = \"accuracy\"",
        "name = \"format\"\npattern = \"(unclosed\"",
    ));
    assert!(
        e.contains("pattern \"(unclosed\"") && e.contains("unclosed group"),
        "{e}"
    );
    let e = error(&grpo_demo().replace("ramp = \"linear\"", "ramp = \"step\""));
    assert!(
        e.contains("d3s.ramp") && e.contains("unknown variant `step`"),
        "{e}"
    );
    let e = error(&grpo_demo().replace("sample_init = 0.5", "sample_init = 0.0"));
    assert!(
        e.contains("sample_init and sample_final must be in (0, 1]"),
        "{e}"
    );
    let e = error(&grpo_demo().replace("from = \"arithmetic-lm\"\n", ""));
    assert!(
        e.contains("grpo.from") && e.contains("GRPO fine-tunes a model"),
        "{e}"
    );
    let e = error(
        &grpo_demo()
            .replace("builtin:arithmetic", "train.csv")
            .replace("params = { digits = 2 }\n", ""),
    );
    assert!(e.contains("builtin:countdown or a .jsonl file"), "{e}");
    // Only a language model's data takes its own seed.
    let e = error(&VALID.replace("[data]\n", "[data]\nseed = 3\n"));
    assert!(
        e.contains("data.seed") && e.contains("only language-model experiments"),
        "{e}"
    );
    let e = error(&VALID.replace("[train]", "[grpo]\nfrom = \"x\"\n[train]"));
    assert!(
        e.contains("only kind = \"grpo\" takes [grpo] and [d3s] tables"),
        "{e}"
    );
}

#[test]
fn probes_parse_and_only_supervised_runs_take_all_of_them() {
    let e = parse(&format!(
        "{VALID}\n[probes.coherence]\nevery = 10\n[probes.sharpness]\nevery = 50\ntrace_samples = 4\n"
    ))
    .unwrap();
    let spec = e.probes.spec();
    assert_eq!(spec.coherence.unwrap().micro_batches, 4, "the default");
    assert_eq!(spec.sharpness.unwrap().trace_samples, 4);
    assert!(
        spec.el2n.is_some() && spec.opposing.is_none(),
        "EL2N on, opposing off by default"
    );
    // A pretrain run has coherence only.
    parse(&format!("{PRETRAIN}\n[probes.coherence]\nevery = 10\n")).unwrap();
    let err = error(&format!("{PRETRAIN}\n[probes.sharpness]\nevery = 10\n"));
    assert!(
        err.contains("a pretrain run has [probes.coherence] only"),
        "{err}"
    );
    let err = error(&format!(
        "{VALID}\n[probes.opposing]\nevery = 10\ntop = 600\n"
    ));
    assert!(
        err.contains("probes.opposing.top") && err.contains("between 1 and size"),
        "{err}"
    );
}
