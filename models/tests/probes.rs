//! The gradient probes inside the supervised trainer against quantities computed
//! independently: exact Hessian–vector products of logistic regression, the eigenvalues of an
//! explicit Hessian of a tiny MLP, per-example gradients taken one by one, EL2N by hand.

use candle_core::{Device, Module, Tensor};
use descent_models::data::{Batches, Dataset, Split, Targets};
use descent_models::nn::{Activation, Arch, ModelSpec, cross_entropy};
use descent_models::optim::schedule::{Schedule, ScheduleName};
use descent_models::optim::{Hyper, OptimName};
use descent_models::probes::linalg::sym_eigen;
use descent_models::probes::{CoherenceSpec, El2nSpec, ProbeSpec, SharpnessSpec};
use descent_models::train::{TrainSpec, Trainer};

fn data(n: usize, features: usize, classes: usize) -> Dataset {
    let inputs: Vec<f32> = (0..n * features)
        .map(|i| (((i * 7919 + 13) % 1009) as f32 / 1009.0 - 0.5) * 3.0)
        .collect();
    let labels: Vec<u32> = (0..n)
        .map(|i| {
            let s: f32 = inputs[i * features..(i + 1) * features].iter().sum();
            ((s * 2.0).abs() as u32 + (i % 3 == 0) as u32) % classes as u32
        })
        .collect();
    Dataset {
        name: "toy".into(),
        inputs,
        input_shape: vec![features],
        targets: Targets::Classes {
            labels,
            names: (0..classes).map(|c| c.to_string()).collect(),
        },
        feature_names: (0..features).map(|f| format!("x{f}")).collect(),
    }
}

fn spec(hidden: Vec<usize>, activation: Activation, batch: usize, probes: ProbeSpec) -> TrainSpec {
    TrainSpec {
        seed: 5,
        val_fraction: 0.0,
        batch_size: batch,
        model: ModelSpec {
            arch: Arch::Mlp,
            input_shape: vec![],
            outputs: 0,
            hidden,
            channels: vec![],
            activation,
            layer_norm: false,
        },
        hyper: Hyper {
            name: OptimName::Sgd,
            weight_decay: 0.0,
            momentum: 0.0,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        clip_grad_norm: None,
        schedule: Schedule {
            name: ScheduleName::Constant,
            peak_lr: 0.1,
            warmup_steps: 0,
            total_steps: 100,
            shape: vec![],
        },
        probes,
        subset: None,
    }
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn rows_of(t: &Trainer) -> Vec<usize> {
    t.split().train.clone()
}

#[test]
fn the_finite_difference_hvp_matches_logistic_regressions_exact_one() {
    let (n, f, c) = (40, 3, 2);
    let t = Trainer::new(
        data(n, f, c),
        spec(vec![], Activation::Relu, 8, ProbeSpec::default()),
        Device::Cpu,
    )
    .unwrap();
    let theta = t.flat_params().unwrap();
    // Layout: W [f, c] row-major, then b [c].
    let w = |i: usize, k: usize| theta[i * c + k];
    let b = |k: usize| theta[f * c + k];
    let rows = rows_of(&t);
    let v: Vec<f64> = (0..theta.len()).map(|i| ((i as f64) * 1.3).sin()).collect();
    let (dw, db) = (&v[..f * c], &v[f * c..]);
    let d = t.dataset();
    let Targets::Classes { .. } = &d.targets else {
        unreachable!()
    };
    let mut hv = vec![0.0; theta.len()];
    for &r in &rows {
        let x: Vec<f64> = d.inputs[r * f..(r + 1) * f]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let z: Vec<f64> = (0..c)
            .map(|k| b(k) + (0..f).map(|i| x[i] * w(i, k)).sum::<f64>())
            .collect();
        let p = softmax(&z);
        let dz: Vec<f64> = (0..c)
            .map(|k| db[k] + (0..f).map(|i| x[i] * dw[i * c + k]).sum::<f64>())
            .collect();
        let pdz: f64 = p.iter().zip(&dz).map(|(a, b)| a * b).sum();
        // (diag(p) − ppᵀ)·dz
        let a: Vec<f64> = (0..c).map(|k| p[k] * (dz[k] - pdz)).collect();
        for i in 0..f {
            for k in 0..c {
                hv[i * c + k] += x[i] * a[k] / rows.len() as f64;
            }
        }
        for k in 0..c {
            hv[f * c + k] += a[k] / rows.len() as f64;
        }
    }
    let got = t.hessian_product(&rows, &v, 1e-3).unwrap();
    let err: f64 = got
        .iter()
        .zip(&hv)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let size: f64 = hv.iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!(err < 2e-3 * size, "relative error {}", err / size);
    // The parameters are restored exactly.
    assert_eq!(t.flat_params().unwrap(), theta);
}

/// The loss of the tanh MLP f→h→c at `theta` (Net's layout: W₁ [f,h], b₁, W₂ [h,c], b₂), in f64.
fn mlp_loss(theta: &[f64], d: &Dataset, rows: &[usize], f: usize, h: usize, c: usize) -> f64 {
    let (w1, rest) = theta.split_at(f * h);
    let (b1, rest) = rest.split_at(h);
    let (w2, b2) = rest.split_at(h * c);
    let Targets::Classes { labels, .. } = &d.targets else {
        unreachable!()
    };
    rows.iter()
        .map(|&r| {
            let x = &d.inputs[r * f..(r + 1) * f];
            let a: Vec<f64> = (0..h)
                .map(|j| (b1[j] + (0..f).map(|i| x[i] as f64 * w1[i * h + j]).sum::<f64>()).tanh())
                .collect();
            let z: Vec<f64> = (0..c)
                .map(|k| b2[k] + (0..h).map(|j| a[j] * w2[j * c + k]).sum::<f64>())
                .collect();
            -softmax(&z)[labels[r] as usize].ln()
        })
        .sum::<f64>()
        / rows.len() as f64
}

#[test]
fn lambda_max_matches_the_eigenvalues_of_an_explicit_hessian_of_a_tiny_mlp() {
    let (f, h, c) = (2, 3, 2);
    let probes = ProbeSpec {
        sharpness: Some(SharpnessSpec {
            every: 1,
            batch: 1000,
            iterations: 200,
            tol: 1e-7,
            radius: 1e-3,
            trace_samples: 0,
        }),
        ..ProbeSpec::default()
    };
    let mut t = Trainer::new(
        data(12, f, c),
        spec(vec![h], Activation::Tanh, 12, probes),
        Device::Cpu,
    )
    .unwrap();
    for _ in 0..3 {
        t.train_step(0.5).unwrap();
    }
    let m = t.train_step(0.5).unwrap();
    let live = m
        .extra
        .iter()
        .find(|(k, _)| k == "sharpness/lambda_max")
        .unwrap()
        .1;
    let edge = m
        .extra
        .iter()
        .find(|(k, _)| k == "sharpness/edge")
        .unwrap()
        .1;
    assert!((edge - 2.0 / 0.5).abs() < 1e-12, "2/η for plain SGD");
    // The explicit Hessian by second differences of the loss in f64 (no gradient code).
    let theta = t.flat_params().unwrap();
    let p = theta.len();
    let rows = rows_of(&t);
    let d = t.dataset();
    let e = 1e-4;
    let at = |i: usize, si: f64, j: usize, sj: f64| {
        let mut th = theta.clone();
        th[i] += si * e;
        th[j] += sj * e;
        mlp_loss(&th, d, &rows, f, h, c)
    };
    let mut hess = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            hess[i * p + j] = (at(i, 1.0, j, 1.0) - at(i, 1.0, j, -1.0) - at(i, -1.0, j, 1.0)
                + at(i, -1.0, j, -1.0))
                / (4.0 * e * e);
        }
    }
    let (values, _) = sym_eigen(&hess, p);
    let top = values
        .iter()
        .cloned()
        .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
    assert!(
        (live - top).abs() < 1e-2 * top.abs(),
        "live λ_max {live} against {top}"
    );
    // The spectrum's full Lanczos basis finds the explicit eigenvalues.
    let s = t.spectrum(p, 1, 1000, 1e-3).unwrap();
    assert!((s.lambda_max - top).abs() < 1e-2 * top.abs());
    let (lo, hi) = (values[0], values[p - 1]);
    let nodes = &s.runs[0].nodes;
    assert!(
        (nodes[nodes.len() - 1] - hi).abs() < 2e-2 * top.abs(),
        "{nodes:?} vs {values:?}"
    );
    assert!(
        (nodes[0] - lo).abs() < 2e-2 * top.abs(),
        "{nodes:?} vs {values:?}"
    );
    // With a full basis the quadrature's trace estimate is vᵀHv of its Rademacher vector.
    let v = descent_models::probes::linalg::rademacher(p, 5 ^ 0x51C0);
    let vhv: f64 = (0..p)
        .map(|i| v[i] * (0..p).map(|j| hess[i * p + j] * v[j]).sum::<f64>())
        .sum();
    assert!(
        (s.trace - vhv).abs() < 2e-2 * vhv.abs(),
        "{} vs {vhv}",
        s.trace
    );
}

/// Per-example gradients of the trainer's net, one forward and backward per example.
fn per_example(t: &Trainer, rows: &[usize]) -> Vec<Vec<f64>> {
    let d = t.dataset();
    let f = d.features();
    let Targets::Classes { labels, .. } = &d.targets else {
        unreachable!()
    };
    rows.iter()
        .map(|&r| {
            let x =
                Tensor::from_slice(&d.inputs[r * f..(r + 1) * f], (1, f), &Device::Cpu).unwrap();
            let y = Tensor::new(&[labels[r]], &Device::Cpu).unwrap();
            let loss = cross_entropy(&t.net.forward(&x).unwrap(), &y).unwrap();
            let g = loss.backward().unwrap();
            t.net
                .params()
                .iter()
                .flat_map(|p| {
                    let v: Vec<f32> = g
                        .get(p.var.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    v.into_iter().map(|x| x as f64)
                })
                .collect()
        })
        .collect()
}

fn coherence_of(gs: &[Vec<f64>]) -> f64 {
    let p = gs[0].len();
    let sum: Vec<f64> = (0..p).map(|i| gs.iter().map(|g| g[i]).sum()).collect();
    let s: f64 = sum.iter().map(|x| x * x).sum();
    let q: f64 = gs
        .iter()
        .map(|g| g.iter().map(|x| x * x).sum::<f64>())
        .sum();
    s / q
}

#[test]
fn coherence_matches_per_example_gradients_computed_one_by_one() {
    let batch = 8;
    for micro in [8, 4, 3] {
        let probes = ProbeSpec {
            coherence: Some(CoherenceSpec {
                every: 1,
                micro_batches: micro,
                smoothing: 0.9,
            }),
            ..ProbeSpec::default()
        };
        let mut t = Trainer::new(
            data(64, 4, 3),
            spec(vec![6], Activation::Relu, batch, probes),
            Device::Cpu,
        )
        .unwrap();
        let mut plain = Trainer::new(
            data(64, 4, 3),
            spec(vec![6], Activation::Relu, batch, ProbeSpec::default()),
            Device::Cpu,
        )
        .unwrap();
        let rows = Batches::new(t.split().train.clone(), batch, 5).batch(0);
        let singles = per_example(&t, &rows);
        // Micro-batch gradients are the means of their examples' gradients.
        let b = batch / micro;
        let micros: Vec<Vec<f64>> = singles
            .chunks(b)
            .map(|c| {
                (0..c[0].len())
                    .map(|i| c.iter().map(|g| g[i]).sum::<f64>() / b as f64)
                    .collect()
            })
            .collect();
        let m = t.train_step(0.1).unwrap();
        let get = |k: &str| m.extra.iter().find(|(n, _)| n == k).unwrap().1;
        let want = coherence_of(&micros);
        if micro == 3 {
            // 3 + 3 + 2 rows: no equal micro-batches to compare with, but the same update.
            let pm = plain.train_step(0.1).unwrap();
            let (a, bb) = (t.flat_params().unwrap(), plain.flat_params().unwrap());
            assert!(a.iter().zip(&bb).all(|(x, y)| (x - y).abs() < 1e-6));
            assert!((m.loss - pm.loss).abs() < 1e-6);
            continue;
        }
        assert!(
            (get("coherence/micro") - want).abs() < 1e-4 * want,
            "{micro}: {} vs {want}",
            get("coherence/micro")
        );
        if micro == batch {
            // Single examples: the estimate is the sampled m-coherence itself.
            assert!((get("coherence/m") - want).abs() < 1e-4 * want);
        }
        assert!(
            m.extra
                .iter()
                .any(|(k, _)| k.starts_with("coherence/b_noise/"))
        );
        // The update is the plain step's.
        let pm = plain.train_step(0.1).unwrap();
        assert!((m.loss - pm.loss).abs() < 1e-6);
        let (a, bb) = (t.flat_params().unwrap(), plain.flat_params().unwrap());
        assert!(a.iter().zip(&bb).all(|(x, y)| (x - y).abs() < 1e-6));
    }
}

#[test]
fn el2n_scores_match_a_hand_computation_and_survive_a_checkpoint() {
    let probes = ProbeSpec {
        el2n: Some(El2nSpec {
            from_step: 1,
            to_step: None,
        }),
        ..ProbeSpec::default()
    };
    let mut t = Trainer::new(
        data(30, 3, 3),
        spec(vec![5], Activation::Relu, 10, probes),
        Device::Cpu,
    )
    .unwrap();
    let rows = Batches::new(t.split().train.clone(), 10, 5).batch(0);
    let d = t.dataset().clone();
    let Targets::Classes { labels, .. } = &d.targets else {
        unreachable!()
    };
    let x = Tensor::from_slice(&d.inputs[..], (30, 3), &Device::Cpu).unwrap();
    let logits: Vec<Vec<f32>> = t.net.forward(&x).unwrap().to_vec2().unwrap();
    let hand: Vec<f64> = rows
        .iter()
        .map(|&r| {
            let p = softmax(&logits[r].iter().map(|&v| v as f64).collect::<Vec<_>>());
            p.iter()
                .enumerate()
                .map(|(k, &pk)| (pk - if k as u32 == labels[r] { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let m = t.train_step(0.1).unwrap();
    let mean = m
        .extra
        .iter()
        .find(|(k, _)| k == "el2n/batch_mean")
        .unwrap()
        .1;
    assert!((mean - hand.iter().sum::<f64>() / 10.0).abs() < 1e-5);
    let dir = tempfile::tempdir().unwrap();
    t.save(dir.path()).unwrap();
    let mut again = Trainer::new(
        d.clone(),
        spec(vec![5], Activation::Relu, 10, probes),
        Device::Cpu,
    )
    .unwrap();
    again.load(dir.path(), 1).unwrap();
    let text = std::fs::read_to_string(dir.path().join("el2n.json")).unwrap();
    let saved: descent_models::probes::el2n::Scores = serde_json::from_str(&text).unwrap();
    for (&r, &h) in rows.iter().zip(&hand) {
        assert!((saved.means()[r].unwrap() - h).abs() < 1e-5);
        assert_eq!(saved.count[r], 1);
    }
    let unseen = (0..30).filter(|r| !rows.contains(r)).count();
    assert_eq!(saved.means().iter().filter(|m| m.is_none()).count(), unseen);
    let _ = Split::new(30, 0.0, 5);
}

#[test]
fn a_resumed_run_continues_its_coherence_averages_and_opposing_groups() {
    use descent_models::probes::OpposingSpec;
    let probes = ProbeSpec {
        coherence: Some(CoherenceSpec {
            every: 1,
            micro_batches: 4,
            smoothing: 0.9,
        }),
        opposing: Some(OpposingSpec {
            every: 2,
            size: 32,
            top: 3,
        }),
        ..ProbeSpec::default()
    };
    let make = || {
        Trainer::new(
            data(64, 4, 3),
            spec(vec![6], Activation::Relu, 16, probes),
            Device::Cpu,
        )
        .unwrap()
    };
    let (mut whole, mut first) = (make(), make());
    for _ in 0..4 {
        whole.train_step(0.1).unwrap();
        first.train_step(0.1).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    first.save(dir.path()).unwrap();
    let mut resumed = make();
    resumed.load(dir.path(), 4).unwrap();
    for _ in 0..2 {
        let a = whole.train_step(0.1).unwrap();
        let b = resumed.train_step(0.1).unwrap();
        let get = |m: &descent_models::train::StepMetrics, k: &str| {
            m.extra.iter().find(|(n, _)| n == k).map(|x| x.1)
        };
        assert_eq!(
            get(&a, "coherence/m"),
            get(&b, "coherence/m"),
            "step {}",
            a.step
        );
        assert_eq!(a.logs, b.logs, "the same opposing probe, groups included");
    }
}
