//! Synthetic datasets, generated from a seed.

use super::{Dataset, Targets};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};

fn classes(k: usize) -> Vec<String> {
    (0..k).map(|c| format!("class {c}")).collect()
}

fn xy_names() -> Vec<String> {
    vec!["x".into(), "y".into()]
}

/// Two interleaving half circles with Gaussian noise.
pub fn moons(n: usize, noise: f64, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, noise.max(0.0)).expect("valid std");
    let (mut inputs, mut labels) = (Vec::with_capacity(2 * n), Vec::with_capacity(n));
    for i in 0..n {
        let upper = i % 2 == 0;
        let t = std::f64::consts::PI * rng.random::<f64>();
        let (x, y) = if upper {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        inputs.push((x + normal.sample(&mut rng)) as f32);
        inputs.push((y + normal.sample(&mut rng)) as f32);
        labels.push(u32::from(!upper));
    }
    dataset("moons", inputs, labels, 2, xy_names())
}

/// `k` interleaved spiral arms, each a class.
pub fn spirals(n: usize, k: usize, noise: f64, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, noise.max(0.0)).expect("valid std");
    let (mut inputs, mut labels) = (Vec::with_capacity(2 * n), Vec::with_capacity(n));
    for i in 0..n {
        let class = i % k;
        let r = rng.random::<f64>();
        let angle = 4.0 * r + class as f64 * 2.0 * std::f64::consts::PI / k as f64;
        inputs.push((r * angle.cos() + normal.sample(&mut rng)) as f32);
        inputs.push((r * angle.sin() + normal.sample(&mut rng)) as f32);
        labels.push(class as u32);
    }
    dataset("spirals", inputs, labels, k, xy_names())
}

/// `k` isotropic Gaussian blobs with centres drawn in [-5, 5]².
pub fn blobs(n: usize, k: usize, std: f64, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<(f64, f64)> = (0..k)
        .map(|_| (rng.random_range(-5.0..5.0), rng.random_range(-5.0..5.0)))
        .collect();
    let normal = Normal::new(0.0, std.max(0.0)).expect("valid std");
    let (mut inputs, mut labels) = (Vec::with_capacity(2 * n), Vec::with_capacity(n));
    for i in 0..n {
        let class = i % k;
        let (cx, cy) = centres[class];
        inputs.push((cx + normal.sample(&mut rng)) as f32);
        inputs.push((cy + normal.sample(&mut rng)) as f32);
        labels.push(class as u32);
    }
    dataset("blobs", inputs, labels, k, xy_names())
}

/// Points in [-1, 1]², labelled by whether x and y have the same sign.
pub fn xor(n: usize, noise: f64, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, noise.max(0.0)).expect("valid std");
    let (mut inputs, mut labels) = (Vec::with_capacity(2 * n), Vec::with_capacity(n));
    for _ in 0..n {
        let x: f64 = rng.random_range(-1.0..1.0);
        let y: f64 = rng.random_range(-1.0..1.0);
        labels.push(u32::from((x > 0.0) != (y > 0.0)));
        inputs.push((x + normal.sample(&mut rng)) as f32);
        inputs.push((y + normal.sample(&mut rng)) as f32);
    }
    dataset("xor", inputs, labels, 2, xy_names())
}

/// The linear teacher–student task of "High-dimensional dynamics of generalization error in
/// neural networks": `x ~ N(0, I_N)`, `y = w̄·x + ε` with `w̄ ~ N(0, I_N / N)` (so the signal
/// has unit variance) and `ε ~ N(0, 1/snr)`. `P = alpha · N` examples.
pub fn teacher_student(n: usize, alpha: f64, snr: f64, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let p = ((alpha * n as f64).round() as usize).max(1);
    let teacher: Vec<f64> = (0..n)
        .map(|_| StandardNormal.sample(&mut rng))
        .map(|w: f64| w / (n as f64).sqrt())
        .collect();
    let noise = Normal::new(0.0, (1.0 / snr).sqrt()).expect("snr > 0");
    let mut inputs = Vec::with_capacity(p * n);
    let mut targets = Vec::with_capacity(p);
    for _ in 0..p {
        let x: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
        let y: f64 =
            x.iter().zip(&teacher).map(|(a, b)| a * b).sum::<f64>() + noise.sample(&mut rng);
        inputs.extend(x.iter().map(|&v| v as f32));
        targets.push(y as f32);
    }
    Dataset {
        name: "teacher-student".into(),
        inputs,
        input_shape: vec![n],
        targets: Targets::Values(targets),
        feature_names: (0..n).map(|i| format!("x{i}")).collect(),
    }
}

fn dataset(name: &str, inputs: Vec<f32>, labels: Vec<u32>, k: usize, f: Vec<String>) -> Dataset {
    Dataset {
        name: name.into(),
        input_shape: vec![f.len()],
        inputs,
        targets: Targets::Classes {
            labels,
            names: classes(k),
        },
        feature_names: f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_seeded_and_well_formed() {
        for d in [
            moons(100, 0.1, 1),
            spirals(90, 3, 0.05, 1),
            blobs(60, 4, 0.5, 1),
            xor(50, 0.0, 1),
            teacher_student(20, 2.0, 4.0, 1),
        ] {
            d.check().unwrap();
        }
        assert_eq!(moons(10, 0.1, 3).inputs, moons(10, 0.1, 3).inputs);
        assert_ne!(moons(10, 0.1, 3).inputs, moons(10, 0.1, 4).inputs);
        assert_eq!(teacher_student(20, 2.0, 4.0, 1).len(), 40);
    }

    #[test]
    fn xor_labels_follow_the_quadrant() {
        let d = xor(200, 0.0, 2);
        let Targets::Classes { labels, .. } = &d.targets else {
            panic!()
        };
        for (i, &l) in labels.iter().enumerate() {
            let (x, y) = (d.inputs[2 * i], d.inputs[2 * i + 1]);
            assert_eq!(l, u32::from((x > 0.0) != (y > 0.0)));
        }
    }

    #[test]
    fn the_teacher_signal_has_about_the_stated_snr() {
        // Var(y) = |w̄|² + 1/snr ≈ 1 + 0.25.
        let d = teacher_student(200, 20.0, 4.0, 5);
        let Targets::Values(y) = &d.targets else {
            panic!()
        };
        let mean = y.iter().sum::<f32>() / y.len() as f32;
        let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / y.len() as f32;
        assert!((var - 1.25).abs() < 0.2, "variance {var}");
    }
}
