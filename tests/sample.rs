//! `descent sample` through the real binary: a diffusion run trained here, sampled with every
//! guidance mode from the same seeds, the job folder's files read back, and bad requests.

use std::path::{Path, PathBuf};

const EXPERIMENT: &str = "name = \"toy\"\nkind = \"diffusion\"\nseed = 0\n\
    [data]\nsource = \"builtin:moons\"\nparams = { samples = 600, noise = 0.05 }\nbatch_size = 128\n\
    [model]\narch = \"mlp\"\nhidden = [32, 32]\n\
    [diffusion]\nbeta_schedule = \"squaredcos_cap_v2\"\nembed_dim = 16\n\
    [optim]\nlr = 3e-3\n[train]\nsteps = 120\neval_every = 60\ncheckpoint_every = 60\n";

#[path = "support/workspace.rs"]
mod workspace;
use workspace::Ws;

/// A workspace with the toy experiment trained once.
fn trained() -> Ws {
    let ws = Ws::new(&[("toy", EXPERIMENT.to_string())]);
    ws.ok(&["run", "toy"]);
    ws
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn samples(path: &Path) -> Vec<f32> {
    let t = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    t["samples"].flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn a_diffusion_run_samples_every_mode_from_the_same_seeds() {
    let ws = trained();
    let run = ws.only_run("toy");
    assert!(run.join("model/model_index.json").is_file());
    assert!(
        run.join("model/unet/diffusion_pytorch_model.safetensors")
            .is_file()
    );
    let cfg = std::fs::read_to_string(run.join("model/scheduler/scheduler_config.json")).unwrap();
    assert!(cfg.contains("\"_class_name\": \"DDIMScheduler\""), "{cfg}");

    let out = ws.root.join("job");
    let o = ws.descent(&[
        "sample",
        run.to_str().unwrap(),
        "--compare",
        "cfg,ag,linear-ag,none",
        "--ag-threshold",
        "-1",
        "-n",
        "6",
        "--steps",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&out);
    assert_eq!(r["state"], "finished");
    assert_eq!(r["seeds"], serde_json::json!([0, 1, 2, 3, 4, 5]));
    assert_eq!(r["classes"], serde_json::json!([0, 1, 0, 1, 0, 1]));
    let modes = r["modes"].as_array().unwrap();
    let nfe = |m: usize| modes[m]["nfe_total"].as_u64().unwrap();
    // CFG: two passes × 10 steps × 6 samples; AG at γ̄ = −1 stops after the first step.
    assert_eq!((nfe(0), nfe(1), nfe(2), nfe(3)), (120, 66, 66, 60));
    assert_eq!(
        modes[1]["stopped_at"],
        serde_json::json!([1, 1, 1, 1, 1, 1])
    );
    assert_eq!(modes[0]["distance_to_cfg"], 0.0);
    assert!(modes[1]["distance_to_cfg"].as_f64().unwrap() > 0.0);
    assert_eq!(modes[0]["cosines"].as_array().unwrap().len(), 10);
    for m in ["cfg", "ag", "linear-ag", "none"] {
        assert!(out.join(m).join("scatter.png").is_file());
        let csv = std::fs::read_to_string(out.join(m).join("points.csv")).unwrap();
        assert_eq!(csv.lines().count(), 7, "{csv}");
        assert_eq!(samples(&out.join(m).join("samples.safetensors")).len(), 12);
    }

    // The same seeds again give the same samples; the seeds' noise given as --noise too.
    let again = ws.root.join("again");
    let noise_file = ws.root.join("noise.safetensors");
    let mut noise = Vec::new();
    for s in 0..6u64 {
        noise.extend(descent_models::diffusion::sample::NoiseStream::new(s).draw(2));
    }
    let t = candle_core::Tensor::from_vec(noise, (6, 2), &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("noise".to_string(), t)]),
        &noise_file,
    )
    .unwrap();
    let o = ws.descent(&[
        "sample",
        run.to_str().unwrap(),
        "-n",
        "6",
        "--steps",
        "10",
        "--noise",
        noise_file.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        samples(&again.join("cfg/samples.safetensors")),
        samples(&out.join("cfg/samples.safetensors"))
    );

    // A wrongly shaped noise file is refused, naming the flag and the shapes.
    let e = ws.fails(&[
        "sample",
        run.to_str().unwrap(),
        "-n",
        "5",
        "--noise",
        noise_file.to_str().unwrap(),
    ]);
    assert!(
        e.contains("--noise") && e.contains("[6, 2]") && e.contains("[5, 2]"),
        "{e}"
    );
}

#[test]
fn bad_requests_are_refused_with_the_flag_named() {
    let ws = trained();
    let run = ws.only_run("toy");
    let r = run.to_str().unwrap();
    for (args, want) in [
        (vec!["--class", "2"], "--class 2: the model has 2 classes"),
        (vec!["--scale", "NaN"], "--scale NaN"),
        (vec!["--scale", "-1"], "--scale -1"),
        (vec!["--steps", "0"], "--steps 0"),
        (vec!["--sampler", "plms"], "unknown sampler \"plms\""),
        (vec!["--guidance", "pag"], "unknown guidance \"pag\""),
        (
            vec!["--steps", "5000"],
            "more than the 1000 training timesteps",
        ),
    ] {
        let mut all = vec!["sample", r, "-n", "2"];
        all.extend(args.iter().copied());
        let e = ws.fails(&all);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let e = ws.fails(&["sample", r, "--prompt", "a cat"]);
    assert!(e.contains("--prompt") && e.contains("use --class"), "{e}");
    let e = ws.fails(&["sample", ws.root.join("experiments").to_str().unwrap()]);
    assert!(e.contains("not a diffusion checkpoint"), "{e}");
    // A failed job still says why in its report.
    let jobs: Vec<_> = ws
        .root
        .join("samples")
        .read_dir()
        .unwrap()
        .flatten()
        .collect();
    assert!(jobs.iter().map(|j| report(&j.path())).any(|r| {
        r["state"] == "failed"
            && r["message"]
                .as_str()
                .unwrap()
                .contains("not a diffusion checkpoint")
    }));
}

#[test]
fn a_detached_job_returns_at_once_and_finishes_in_its_folder() {
    let ws = trained();
    let o = ws.descent(&["sample", "toy", "--detach", "-n", "4", "--steps", "5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(
        dir.starts_with(ws.root.join("samples")),
        "{}",
        dir.display()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("report.json"))
            && let Ok(r) = serde_json::from_str::<serde_json::Value>(&text)
            && r["state"] != "running"
        {
            assert_eq!(r["state"], "finished", "{r}");
            assert_eq!(r["modes"][0]["nfe_total"], 40);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the detached job did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A workspace with the tiny random Stable Diffusion pipeline in `pipeline/`.
fn with_pipeline() -> (Ws, PathBuf) {
    let ws = Ws::new(&[]);
    let dir = ws.root.join("pipeline");
    descent_models::diffusion::sd::tiny::write(&dir, "epsilon").unwrap();
    (ws, dir)
}

#[test]
fn a_stable_diffusion_pipeline_samples_colour_images_from_a_prompt() {
    let (ws, pipe) = with_pipeline();
    let out = ws.root.join("job");
    let long = vec!["cat"; 90].join(" ");
    let o = ws.descent(&[
        "sample",
        pipe.to_str().unwrap(),
        "--prompt",
        &long,
        "--negative-prompt",
        "blurry",
        "--compare",
        "cfg,ag,linear-ag",
        "--ag-threshold",
        "-1",
        "--scale",
        "7.5",
        "-n",
        "2",
        "--steps",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("15 tokens past the tokenizer's 77 were dropped"),
        "{stdout}"
    );
    let r = report(&out);
    assert_eq!(r["state"], "finished");
    assert_eq!(r["sample_shape"], serde_json::json!([4, 32, 32]));
    assert_eq!(r["image_shape"], serde_json::json!([3, 64, 64]));
    assert_eq!(r["dtype"], "f32");
    assert!(
        r["notes"][0]
            .as_str()
            .unwrap()
            .contains("--prompt: 15 tokens")
    );
    let modes = r["modes"].as_array().unwrap();
    // 3 steps: CFG 2 passes each; AG (γ̄ = −1) guides step 1 only.
    assert_eq!(modes[0]["nfe"], serde_json::json!([6, 6]));
    assert_eq!(modes[1]["nfe"], serde_json::json!([4, 4]));
    assert_eq!(modes[2]["nfe"], serde_json::json!([4, 4]));
    assert!(modes[1]["distance_to_cfg"].as_f64().unwrap() > 0.0);
    assert_eq!(modes[0]["distance_to_cfg"].as_f64().unwrap(), 0.0);
    // The latents are the model-space tensor; the PNGs are the VAE's colour images.
    assert_eq!(
        samples(&out.join("cfg/samples.safetensors")).len(),
        2 * 4 * 32 * 32
    );
    let img = image::open(out.join("cfg/sample-0001.png")).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    assert_eq!(img.color(), image::ColorType::Rgb8);
    assert!(out.join("ag/grid.png").is_file());
}

#[test]
fn pipelines_refuse_classes_and_need_a_prompt() {
    let (ws, pipe) = with_pipeline();
    let p = pipe.to_str().unwrap();
    let e = ws.fails(&["sample", p, "-n", "1", "--steps", "1"]);
    assert!(
        e.contains("text-to-image pipeline; give it --prompt"),
        "{e}"
    );
    let e = ws.fails(&["sample", p, "--class", "1", "-n", "1"]);
    assert!(
        e.contains("--class: ") && e.contains("takes a --prompt"),
        "{e}"
    );
    let e = ws.fails(&["sample", p, "--prompt", "a cat", "--dtype", "f8"]);
    assert!(e.contains("--dtype \"f8\""), "{e}");
    std::fs::remove_file(pipe.join("text_encoder/model.safetensors")).unwrap();
    let e = ws.fails(&["sample", p, "--prompt", "a cat", "-n", "1"]);
    assert!(
        e.contains("text_encoder") && e.contains("no model.safetensors"),
        "{e}"
    );
}
