//! Element loops compiled for the widest vector unit the CPU has.
//!
//! descent is built for any x86-64, where the compiler may use only SSE2, so loops of our own
//! (the optimizer's update, the gradient sums) would leave AVX2 and AVX-512 unused; candle's
//! matrix products have their own run-time choice (gemm). [`widest`] runs a closure inlined
//! into a function compiled with AVX-512 or AVX2 enabled, chosen at run time. Rust never
//! fuses or reorders floating-point operations, so every path computes the same bits; only
//! the width of the instructions differs.
//!
//! Sums over many elements go through [`LANES`] separate accumulators in a fixed order: a
//! single running sum is a chain of dependent additions that cannot be vectorised, and the
//! fixed order keeps results the same on every run and every machine.

/// Accumulators per sum.
pub const LANES: usize = 8;

/// Runs `f` compiled for AVX-512 or AVX2 where the CPU has them, else as built. Mark the
/// closure `#[inline(always)]`: LLVM may otherwise keep a large closure out of the wide
/// function, and it then runs as baseline SSE2 code (the UNet's softmax did).
#[inline(always)]
pub fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { avx512(f) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,avx")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// e^x without branches, so that loops over it vectorise (the standard library's `exp` is a
/// call per element): x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its Taylor polynomial to
/// degree 7 (relative error below 2e-7), 2^n from the exponent bits. Inputs are clamped to
/// [−87, 88], where e^x is a normal f32.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5·2^23 rounds to an integer (ties to even) and leaves it in the low mantissa
    // bits: `round_ties_even` is a library call per element.
    const SHIFTER: f32 = 12_582_912.0;
    const TAYLOR: [f32; 7] = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in TAYLOR {
        p = p * r + c;
    }
    let k = shifted.to_bits().wrapping_sub(SHIFTER.to_bits()) as i32;
    p * f32::from_bits(((k + 127) << 23) as u32)
}

/// x·σ(x).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// The error function by Abramowitz and Stegun's 7.1.26 (absolute error below 1.5e-7),
/// branch-free like [`exp`].
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4;
    for c in [-1.453_152, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
        p = p * t + c;
    }
    (1.0 - p * t * exp(-a * a)).copysign(x)
}

/// GELU as PyTorch's default computes it: x·Φ(x) with the exact error function.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Sixteen running values per reduction: one AVX-512 register, or two of AVX2, so the
/// reductions below are vector operations rather than a chain of dependent scalar ones.
pub const WIDE: usize = 16;

/// The largest element (−∞ for none; NaNs are skipped as `f32::max` skips them).
#[inline(always)]
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; WIDE];
    let (chunks, rest) = xs.as_chunks::<WIDE>();
    for c in chunks {
        for k in 0..WIDE {
            acc[k] = acc[k].max(c[k]);
        }
    }
    rest.iter()
        .chain(&acc)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `row ← e^(row − max row)` in place; returns the new row's sum (a softmax's denominator).
#[inline(always)]
pub fn exp_minus_max(row: &mut [f32]) -> f32 {
    let m = max(row);
    row.iter_mut().for_each(|v| *v = exp(*v - m));
    sum(row)
}

/// Σ xs in f32, in [`WIDE`] partial sums added in a fixed order.
#[inline(always)]
pub fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0f32; WIDE];
    let (chunks, rest) = xs.as_chunks::<WIDE>();
    for c in chunks {
        for k in 0..WIDE {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Σ a·b in f32, in [`WIDE`] partial sums added in a fixed order.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; WIDE];
    let (ca, ra) = a.as_chunks::<WIDE>();
    let (cb, rb) = b.as_chunks::<WIDE>();
    for (x, y) in ca.iter().zip(cb) {
        for k in 0..WIDE {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// Lane accumulators summed in lane order.
pub fn total(lanes: &[f64; LANES]) -> f64 {
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branch_free_functions_match_the_standard_library() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.045;
            if (-87.0..=88.0).contains(&x) {
                let want = (x as f64).exp();
                assert!(((exp(x) as f64 - want) / want).abs() < 3e-7, "exp({x})");
            }
            let s = x as f64 / (1.0 + (-x as f64).exp());
            assert!(
                (silu(x) as f64 - s).abs() < 1e-6 * (1.0 + s.abs()),
                "silu({x})"
            );
            let g = 0.5 * x as f64 * (1.0 + libm_erf(x as f64 / 2f64.sqrt()));
            assert!(
                (gelu(x) as f64 - g).abs() < 2e-6 * (1.0 + g.abs()),
                "gelu({x})"
            );
        }
        // Saturated, not infinite or NaN, outside the clamp.
        assert!((0.0..1e-37).contains(&exp(-1000.0)));
        assert!(exp(1000.0).is_finite() && silu(-1000.0).abs() < 1e-30 && silu(1000.0) == 1000.0);
    }

    /// erf by its Maclaurin series (|x| < 4; beyond, erf is ±1 within 2e-8): a reference that does
    /// not share [`erf`]'s approximation.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() >= 4.0 {
            return x.signum();
        }
        let (mut term, mut sum, mut k) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            k += 1.0;
            term *= -x * x / k;
            sum += term / (2.0 * k + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        let xs: Vec<f32> = (0..1001)
            .map(|i| ((i * 7919) % 1000) as f32 / 7.0)
            .collect();
        let run = || {
            let mut acc = [0.0f64; LANES];
            let (chunks, rest) = xs.as_chunks::<LANES>();
            for c in chunks {
                for k in 0..LANES {
                    acc[k] += (c[k] as f64).sqrt() / 3.0;
                }
            }
            for (k, &x) in rest.iter().enumerate() {
                acc[k] += (x as f64).sqrt() / 3.0;
            }
            total(&acc)
        };
        assert_eq!(widest(run).to_bits(), run().to_bits());
    }
}
