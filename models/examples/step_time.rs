//! Training-step time of descent's trainer, for BENCHMARKS.md (compare with
//! benches/step_time.py, the same models in PyTorch). Run with
//! `RAYON_NUM_THREADS=2 cargo run --release -p descent-models --example step_time`.

use candle_core::{Device, Module, Tensor};
use descent_models::data::{Dataset, Targets, load_builtin};
use descent_models::nn::{Activation, Arch, ModelSpec, cross_entropy};
use descent_models::optim::Hyper;
use descent_models::optim::schedule::{Schedule, ScheduleName};
use descent_models::train::{TrainSpec, Trainer};
use std::collections::BTreeMap;
use std::time::Instant;

fn spec(arch: Arch, hidden: Vec<usize>, channels: Vec<usize>, batch: usize) -> TrainSpec {
    TrainSpec {
        seed: 0,
        val_fraction: 0.0,
        batch_size: batch,
        model: ModelSpec {
            arch,
            input_shape: vec![],
            outputs: 0,
            hidden,
            channels,
            activation: Activation::Relu,
            layer_norm: false,
        },
        hyper: Hyper::adamw(0.01),
        clip_grad_norm: Some(1.0),
        probes: Default::default(),
        subset: None,
        schedule: Schedule {
            name: ScheduleName::Constant,
            peak_lr: 1e-3,
            warmup_steps: 0,
            total_steps: 1_000_000,
            shape: vec![],
        },
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median milliseconds of: a full step, forward only, forward + backward.
fn measure(name: &str, data: Dataset, spec: TrainSpec, steps: usize) {
    let batch = spec.batch_size;
    let mut t = Trainer::new(data, spec, Device::Cpu).unwrap();
    for _ in 0..20 {
        t.train_step(1e-3).unwrap();
    }
    let full: Vec<f64> = (0..steps)
        .map(|_| {
            let s = Instant::now();
            t.train_step(1e-3).unwrap();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    // Forward and backward alone, on a fixed batch of the same shape.
    let d = t.dataset();
    let f = d.features();
    let shape: Vec<usize> = [batch].into_iter().chain(d.input_shape.clone()).collect();
    let x = Tensor::from_slice(&d.inputs[..batch * f], shape, &Device::Cpu).unwrap();
    let Targets::Classes { labels, .. } = &d.targets else {
        unreachable!()
    };
    let y = Tensor::from_slice(&labels[..batch], batch, &Device::Cpu).unwrap();
    let fwd: Vec<f64> = (0..steps)
        .map(|_| {
            let s = Instant::now();
            let _ = cross_entropy(&t.net.forward(&x).unwrap(), &y).unwrap();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let fwd_bwd: Vec<f64> = (0..steps)
        .map(|_| {
            let s = Instant::now();
            // As the trainer does: the hand-written backward where it applies, else autograd.
            if t.net.manual_grads(&x, &y, true).unwrap().is_none() {
                let loss = cross_entropy(&t.net.forward(&x).unwrap(), &y).unwrap();
                let _ = loss.backward().unwrap();
            }
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let (full, fwd, fb) = (median(full), median(fwd), median(fwd_bwd));
    println!(
        "descent {name}: step {full:.3} ms (forward {fwd:.3}, backward {:.3}, optimizer+metrics {:.3})",
        fb - fwd,
        full - fb
    );
}

fn random_images(n: usize, features: usize, classes: usize) -> Dataset {
    // A fixed pseudo-random pattern; only the shapes matter for timing.
    let inputs = (0..n * features)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 1000.0)
        .collect();
    Dataset {
        name: "random".into(),
        inputs,
        input_shape: vec![features],
        targets: Targets::Classes {
            labels: (0..n).map(|i| (i % classes) as u32).collect(),
            names: (0..classes).map(|c| c.to_string()).collect(),
        },
        feature_names: (0..features).map(|i| format!("x{i}")).collect(),
    }
}

fn main() {
    // As `descent run` does (see descent_models::SPIN_LIMIT).
    if std::env::var_os(descent_models::SPIN_LIMIT_VAR).is_none() {
        // SAFETY: before any thread exists.
        unsafe { std::env::set_var(descent_models::SPIN_LIMIT_VAR, descent_models::SPIN_LIMIT) };
    }
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    println!("threads: {}", candle_core::utils::get_num_threads());
    measure(
        "mlp 784-512-512-10 b128",
        random_images(128 * 40, 784, 10),
        spec(Arch::Mlp, vec![512, 512], vec![], 128),
        steps,
    );
    let digits = || load_builtin("digits", &BTreeMap::new(), 0).unwrap();
    measure(
        "digits mlp 64-256-256-10 b128",
        digits(),
        spec(Arch::Mlp, vec![256, 256], vec![], 128),
        steps,
    );
    measure(
        "digits cnn 16-32 conv, 64 dense, b64",
        digits(),
        spec(Arch::Cnn, vec![64], vec![16, 32], 64),
        steps,
    );
}
