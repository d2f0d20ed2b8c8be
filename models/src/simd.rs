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

/// Runs `f` compiled for AVX-512 or AVX2 where the CPU has them, else as built.
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

/// Lane accumulators summed in lane order.
pub fn total(lanes: &[f64; LANES]) -> f64 {
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

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
