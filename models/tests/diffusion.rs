//! Diffusion end to end in the library: a denoiser trained on the moons learns them, its
//! exported folder opens to the same net, and guided sampling lands on the data.

use candle_core::{Device, Tensor};
use descent_models::data::load_builtin;
use descent_models::diffusion::export;
use descent_models::diffusion::sample::{self, Compare, Guidance, Request};
use descent_models::diffusion::schedule::{BetaSchedule, NoiseConfig, SamplerKind, Scheduler};
use descent_models::diffusion::train::{DiffusionSpec, DiffusionTrainer};
use descent_models::nn::{Activation, Arch, ModelSpec};
use descent_models::optim::Hyper;
use descent_models::optim::schedule::{Schedule, ScheduleName};
use descent_models::train::{Engine, TrainSpec};
use std::collections::BTreeMap;

fn spec(steps: u64) -> DiffusionSpec {
    DiffusionSpec {
        train: TrainSpec {
            seed: 3,
            val_fraction: 0.1,
            batch_size: 128,
            model: ModelSpec {
                arch: Arch::Mlp,
                input_shape: vec![],
                outputs: 0,
                hidden: vec![64, 64],
                channels: vec![],
                activation: Activation::Silu,
                layer_norm: false,
            },
            hyper: Hyper::adamw(0.0),
            clip_grad_norm: None,
            probes: Default::default(),
            subset: None,
            schedule: Schedule {
                name: ScheduleName::Constant,
                peak_lr: 3e-3,
                warmup_steps: 0,
                total_steps: steps,
                shape: vec![],
            },
        },
        embed_dim: 16,
        noise: NoiseConfig {
            beta_schedule: BetaSchedule::SquaredCos,
            clip_sample: false,
            default_sampler: Some(SamplerKind::Ddim),
            ..NoiseConfig::default()
        },
        label_dropout: 0.15,
    }
}

fn moons() -> descent_models::data::Dataset {
    let params = BTreeMap::from([("samples".to_string(), 1000.0), ("noise".to_string(), 0.05)]);
    load_builtin("moons", &params, 0).unwrap()
}

#[test]
fn a_moons_denoiser_learns_and_its_guided_samples_land_on_the_moons() {
    let data = moons();
    let mut t = DiffusionTrainer::new(data.clone(), spec(600), Device::Cpu).unwrap();
    let first = t.evaluate().unwrap().unwrap().loss.unwrap();
    for _ in 0..600 {
        let m = t.train_step(3e-3).unwrap();
        assert!(m.non_finite.is_none());
    }
    let last = t.evaluate().unwrap().unwrap().loss.unwrap();
    assert!(last < 0.75 * first, "eval loss {first} → {last}");

    // Export, reopen: the same net.
    let dir = tempfile::tempdir().unwrap();
    t.export(dir.path()).unwrap();
    let opened = export::open(&dir.path().join(export::MODEL_DIR), &Device::Cpu).unwrap();
    let x = Tensor::new(&[[0.3f32, -0.2], [1.0, 0.5]], &Device::Cpu).unwrap();
    let out = |net: &descent_models::diffusion::net::Denoiser| -> Vec<f32> {
        let y = net.forward(&x, &[500.0, 20.0], &[0, 2]).unwrap();
        y.flatten_all().unwrap().to_vec1().unwrap()
    };
    let (a, b) = (out(&t.net), out(&opened.net));
    assert_eq!(a, b);
    assert_eq!(
        opened.scheduler.config.default_sampler,
        Some(SamplerKind::Ddim)
    );

    // CFG samples of class 0 lie near class-0 training points, much nearer than noise does.
    let sched = Scheduler::new(SamplerKind::Ddim, &opened.scheduler.config, 30, 0.0).unwrap();
    let n = 64;
    let req = Request {
        guidance: Guidance::Cfg,
        compare: Compare::Eps,
        scale: 2.0,
        rescale: 0.0,
        classes: vec![0; n],
        seeds: (0..n as u64).collect(),
        noise: None,
        record: false,
    };
    let out = sample::sample(&opened.net, &sched, &req, &mut |_| {}).unwrap();
    assert_eq!(out.nfe, vec![60; n]);
    let mut pts = out.samples.clone();
    opened.saved.scaling.invert(&mut pts, 2);
    let labels = match &data.targets {
        descent_models::data::Targets::Classes { labels, .. } => labels.clone(),
        _ => unreachable!(),
    };
    let class0: Vec<[f32; 2]> = data
        .inputs
        .chunks(2)
        .zip(&labels)
        .filter(|(_, l)| **l == 0)
        .map(|(p, _)| [p[0], p[1]])
        .collect();
    let nearest = |p: &[f32]| {
        class0
            .iter()
            .map(|q| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
            .fold(f32::INFINITY, f32::min)
    };
    let mean: f32 = pts.chunks(2).map(nearest).sum::<f32>() / n as f32;
    let mut noise = sample::NoiseStream::new(99).draw(2 * n);
    opened.saved.scaling.invert(&mut noise, 2);
    let baseline: f32 = noise.chunks(2).map(nearest).sum::<f32>() / n as f32;
    assert!(
        mean < 0.12,
        "samples are {mean} from class 0 on average (noise: {baseline})"
    );
    assert!(mean < baseline / 3.0, "samples {mean} vs noise {baseline}");
}

#[test]
fn a_checkpoint_saves_and_resumes_the_same_training() {
    let data = moons();
    let mut a = DiffusionTrainer::new(data.clone(), spec(20), Device::Cpu).unwrap();
    for _ in 0..10 {
        a.train_step(1e-3).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    a.save(dir.path()).unwrap();
    // The checkpoint folder alone samples.
    assert!(export::open(dir.path(), &Device::Cpu).is_ok());
    let mut b = DiffusionTrainer::new(data, spec(20), Device::Cpu).unwrap();
    b.load(dir.path(), 10).unwrap();
    let (ma, mb) = (a.train_step(1e-3).unwrap(), b.train_step(1e-3).unwrap());
    assert_eq!(ma.loss, mb.loss);
    assert_eq!(ma.grad_l2, mb.grad_l2);
}

#[test]
fn folders_that_are_not_diffusion_models_say_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let e = export::open(dir.path(), &Device::Cpu).err().unwrap();
    assert!(
        e.contains("not a diffusion checkpoint") && e.contains("model_index.json"),
        "{e}"
    );
    std::fs::write(dir.path().join("model_index.json"), "{}").unwrap();
    std::fs::create_dir(dir.path().join("unet")).unwrap();
    std::fs::write(
        dir.path().join("unet/config.json"),
        r#"{"_class_name": "UNet2DConditionModel"}"#,
    )
    .unwrap();
    let e = export::open(dir.path(), &Device::Cpu).err().unwrap();
    assert!(
        e.contains("UNet2DConditionModel")
            && e.contains("Stable Diffusion 1.x/2.x pipelines (StableDiffusionPipeline)"),
        "{e}"
    );
}
