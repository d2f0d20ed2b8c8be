//! The trainer end to end on small real and synthetic data.

use candle_core::Device;
use descent_models::data::{Dataset, Targets, load_builtin};
use descent_models::nn::{Activation, Arch, ModelSpec};
use descent_models::optim::schedule::{Schedule, ScheduleName};
use descent_models::optim::{Hyper, OptimName};
use descent_models::train::{TrainSpec, Trainer};
use std::collections::BTreeMap;

fn spec(hidden: Vec<usize>, name: OptimName, lr: f64, steps: u64) -> TrainSpec {
    TrainSpec {
        seed: 0,
        val_fraction: 0.2,
        batch_size: 64,
        model: ModelSpec {
            arch: Arch::Mlp,
            input_shape: vec![],
            outputs: 0,
            hidden,
            channels: vec![],
            activation: Activation::Relu,
            layer_norm: false,
        },
        hyper: Hyper {
            name,
            weight_decay: 0.0,
            momentum: 0.9,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        clip_grad_norm: None,
        probes: Default::default(),
        subset: None,
        schedule: Schedule {
            name: ScheduleName::Constant,
            peak_lr: lr,
            warmup_steps: 0,
            total_steps: steps,
            shape: vec![],
        },
    }
}

#[test]
fn gradient_norms_match_a_hand_computation() {
    // Linear regression on four points, full batch: grads of MSE are easy to write down.
    let xs = [1.0f32, 2.0, 3.0, 4.0];
    let ys = [1.0f32, 3.0, 2.0, 5.0];
    let data = Dataset {
        name: "line".into(),
        inputs: xs.to_vec(),
        input_shape: vec![1],
        targets: Targets::Values(ys.to_vec()),
        feature_names: vec!["x".into()],
    };
    let mut s = spec(vec![], OptimName::Sgd, 0.1, 10);
    s.val_fraction = 0.0;
    s.batch_size = 4;
    let mut t = Trainer::new(data, s, Device::Cpu).unwrap();
    let w = t.net.params()[0]
        .var
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0] as f64;
    let b = t.net.params()[1].var.to_vec1::<f32>().unwrap()[0] as f64;
    // The trainer standardises x: mean 2.5, population std √1.25.
    let z: Vec<f64> = xs
        .iter()
        .map(|&x| (x as f64 - 2.5) / 1.25f64.sqrt())
        .collect();
    let r: Vec<f64> = z
        .iter()
        .zip(ys)
        .map(|(z, y)| w * z + b - y as f64)
        .collect();
    let gw = 2.0 / 4.0 * r.iter().zip(&z).map(|(r, z)| r * z).sum::<f64>();
    let gb = 2.0 / 4.0 * r.iter().sum::<f64>();
    let loss = r.iter().map(|r| r * r).sum::<f64>() / 4.0;

    let m = t.train_step(0.1).unwrap();
    assert!((m.loss - loss).abs() < 1e-5, "{} vs {loss}", m.loss);
    assert!((m.grad_l2 - (gw * gw + gb * gb).sqrt()).abs() < 1e-5);
    assert!((m.grad_l1 - (gw.abs() + gb.abs())).abs() < 1e-5);
    assert!((m.params[0].grad_l2 - gw.abs()).abs() < 1e-5);
    assert!((m.params[1].grad_l2 - gb.abs()).abs() < 1e-5);
    assert_eq!(m.params[0].name, "fc0.weight");
    assert!(m.non_finite.is_none());
}

#[test]
fn an_mlp_learns_the_digits() {
    let data = load_builtin("digits", &BTreeMap::new(), 0).unwrap();
    let mut t = Trainer::new(
        data,
        spec(vec![128], OptimName::Adamw, 2e-3, 300),
        Device::Cpu,
    )
    .unwrap();
    let first = t.train_step(2e-3).unwrap().loss;
    for _ in 0..299 {
        t.train_step(2e-3).unwrap();
    }
    let eval = t.evaluate().unwrap().unwrap();
    assert_eq!(eval.examples, 359);
    let eval_loss = eval.loss.unwrap();
    assert!(eval_loss < first / 4.0, "loss {first} → {eval_loss}");
    assert!(
        eval.accuracy.unwrap() > 0.93,
        "accuracy {:?}",
        eval.accuracy
    );
}

#[test]
fn a_cnn_trains_on_the_digits_as_images() {
    let data = load_builtin("digits", &BTreeMap::new(), 0).unwrap();
    let mut s = spec(vec![32], OptimName::Adamw, 3e-3, 150);
    s.model.arch = Arch::Cnn;
    s.model.channels = vec![8, 16];
    let mut t = Trainer::new(data, s, Device::Cpu).unwrap();
    let before = t.evaluate().unwrap().unwrap().loss.unwrap();
    for _ in 0..150 {
        t.train_step(3e-3).unwrap();
    }
    let e = t.evaluate().unwrap().unwrap();
    let after = e.loss.unwrap();
    assert!(after < before / 2.0, "{before} → {after}");
    assert!(e.accuracy.unwrap() > 0.8, "{:?}", e.accuracy);
}

#[test]
fn saving_and_loading_continues_exactly() {
    let data = || load_builtin("spirals", &BTreeMap::new(), 3).unwrap();
    let s = spec(vec![32, 32], OptimName::Adamw, 1e-2, 40);
    let mut straight = Trainer::new(data(), s.clone(), Device::Cpu).unwrap();
    let losses: Vec<f64> = (0..40)
        .map(|_| straight.train_step(1e-2).unwrap().loss)
        .collect();

    let mut first = Trainer::new(data(), s.clone(), Device::Cpu).unwrap();
    for _ in 0..25 {
        first.train_step(1e-2).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    first.save(dir.path()).unwrap();
    let mut resumed = Trainer::new(data(), s, Device::Cpu).unwrap();
    resumed.load(dir.path(), 25).unwrap();
    let rest: Vec<f64> = (25..40)
        .map(|_| resumed.train_step(1e-2).unwrap().loss)
        .collect();
    assert_eq!(rest, losses[25..], "bit-identical losses after resuming");
}

#[test]
fn a_huge_learning_rate_is_caught_and_the_update_skipped() {
    let data = load_builtin("moons", &BTreeMap::new(), 0).unwrap();
    let mut t = Trainer::new(data, spec(vec![16], OptimName::Sgd, 1e6, 50), Device::Cpu).unwrap();
    let mut caught = None;
    for _ in 0..50 {
        let m = t.train_step(1e6).unwrap();
        if m.non_finite.is_some() {
            caught = Some(m);
            break;
        }
    }
    let m = caught.expect("lr 1e6 must blow up within 50 steps");
    let msg = m.non_finite.unwrap();
    assert!(
        msg.contains("not finite") || msg.contains("loss is"),
        "{msg}"
    );
    assert!(
        m.params.iter().all(|p| p.update_ratio == 0.0),
        "no update applied"
    );
}
