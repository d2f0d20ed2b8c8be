//! Helpers the unit tests of several modules share.

use candle_core::Tensor;

/// The largest absolute value of an f32 tensor.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .and_then(|a| a.max_all()?.to_scalar::<f32>())
        .expect("an f32 tensor")
}

/// The largest absolute difference of two tensors of one shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("two f32 tensors of one shape")
}

/// A tensor of normal draws, N(0, std²), from a seeded generator: candle's `randn` on the CPU
/// cannot be seeded, and a test's inputs should not change between runs.
pub fn seeded_randn(shape: &[usize], std: f32, seed: u64) -> Tensor {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| std * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng))
        .collect();
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu).expect("a CPU tensor")
}
