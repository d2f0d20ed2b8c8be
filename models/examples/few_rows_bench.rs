//! The few-rows product against gemm and the memory bound: one pass through SmolLM2-135M's
//! matrices by `lm::few_rows::matmul_t` and by candle's matmul at 1 to 64 rows, with the
//! GB/s of weights the kernel reads, and a plain parallel sum of the same bytes.
//!
//!     cargo run --release -p descent-models --example few_rows_bench

use candle_core::{Device, Tensor};
use descent_models::lm::few_rows::matmul_t;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: no other thread exists yet.
    unsafe { descent_models::configure_cpu_threads(0) };
    let dev = Device::Cpu;
    // One decoder layer's matrices ×30 and the tied head, as [out, in].
    let shapes = [
        (576usize, 576usize),
        (192, 576),
        (192, 576),
        (576, 576),
        (1536, 576),
        (1536, 576),
        (576, 1536),
    ];
    let layers: Vec<Tensor> = (0..30)
        .flat_map(|_| shapes.iter().map(|&s| Tensor::randn(0f32, 1.0, s, &dev)))
        .collect::<Result<_, _>>()?;
    let head = Tensor::randn(0f32, 1.0, (49152, 576), &dev)?;
    let bytes: usize = layers
        .iter()
        .chain([&head])
        .map(|w| w.elem_count() * 4)
        .sum();
    for rows in [1usize, 8, 16, 32, 64] {
        let x576 = Tensor::randn(0f32, 1.0, (rows, 576), &dev)?;
        let x1536 = Tensor::randn(0f32, 1.0, (rows, 1536), &dev)?;
        // One pass through every matrix, by the kernel or by candle's matmul (gemm).
        let pass = |kernel: bool| -> candle_core::Result<()> {
            for w in layers.iter().chain([&head]) {
                let x = if w.dim(1)? == 576 { &x576 } else { &x1536 };
                if kernel {
                    matmul_t(x, w)?.expect("the kernel applies");
                } else {
                    x.matmul(&w.t()?)?;
                }
            }
            Ok(())
        };
        let mut ms = [0f64; 2];
        for (i, kernel) in [true, false].into_iter().enumerate() {
            pass(kernel)?;
            let t0 = Instant::now();
            for _ in 0..n_passes() {
                pass(kernel)?;
            }
            ms[i] = t0.elapsed().as_secs_f64() * 1e3 / n_passes() as f64;
        }
        println!(
            "{rows} row(s): few_rows {:.1} ms a pass ({:.1} GB/s of weights), gemm {:.1} ms",
            ms[0],
            bytes as f64 / ms[0] / 1e6,
            ms[1]
        );
    }
    // The bound: every thread summing its share of the weights (the sum is printed so that
    // it is not optimised away).
    use rayon::prelude::*;
    let all: Vec<Vec<f32>> = layers
        .iter()
        .chain([&head])
        .map(|w| w.flatten_all()?.to_vec1())
        .collect::<Result<_, _>>()?;
    // 32 separate sums, so that the loop vectorises and waits on memory alone.
    let sum = |c: &[f32]| -> f32 {
        let mut acc = [0f32; 32];
        for ch in c.chunks_exact(32) {
            for i in 0..32 {
                acc[i] += ch[i];
            }
        }
        acc.iter().sum()
    };
    let read = || -> f32 {
        all.iter()
            .map(|w| w.par_chunks(1 << 16).map(sum).sum::<f32>())
            .sum()
    };
    let mut s = read();
    let t0 = Instant::now();
    for _ in 0..n_passes() {
        s += read();
    }
    let dt = t0.elapsed().as_secs_f64() / n_passes() as f64;
    println!(
        "summing the same weights: {:.1} GB/s ({s})",
        bytes as f64 / dt / 1e9
    );
    Ok(())
}

fn n_passes() -> usize {
    10
}
