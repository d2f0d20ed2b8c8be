//! One training step of a language model (forward, cross-entropy on the next token,
//! backward, AdamW) on a folder's configuration with fresh weights, for the training-speed
//! row of BENCHMARKS.md beside benches/parity/lm_train_speed.py.
//!
//!     cargo run --release -p descent-models --example lm_train_bench -- DIR BATCH SEQ

use candle_core::{DType, Device, Tensor};
use descent_models::lm::{self, model::causal_mask};
use descent_models::optim::{Hyper, Optimizer};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: no other thread exists yet.
    unsafe { descent_models::configure_cpu_threads(0) };
    let a: Vec<String> = std::env::args().collect();
    let (dir, batch, seq): (&str, usize, usize) = (&a[1], a[2].parse()?, a[3].parse()?);
    let config = lm::read_config(std::path::Path::new(dir))?;
    let (model, vm) = lm::init(&config, &Device::Cpu, 0)?;
    let params = lm::params(&vm);
    let hyper = Hyper::adamw(0.01);
    let mut opt = Optimizer::new(hyper, &params);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let vocab = config.vocab_size as u32;
    let ids: Vec<u32> = (0..batch * (seq + 1))
        .map(|_| rng.random_range(0..vocab))
        .collect();
    let all = Tensor::from_vec(ids, (batch, seq + 1), &Device::Cpu)?;
    let (x, y) = (
        all.narrow(1, 0, seq)?,
        all.narrow(1, 1, seq)?.flatten_all()?,
    );
    let pos = Tensor::arange(0u32, seq as u32, &Device::Cpu)?
        .unsqueeze(0)?
        .repeat((batch, 1))?;
    let mask = causal_mask(&vec![vec![true; seq]; batch], 0, seq, &Device::Cpu)?;
    let mut times = Vec::new();
    for i in 0..5 {
        let t0 = Instant::now();
        // As a pretraining run computes its loss (`lm::pretrain`).
        let hidden = model.forward(&x, &pos, &mask, None)?;
        let logits = model.logits(&hidden.reshape((batch * seq, ()))?)?;
        let loss = descent_models::nll::row_nll(&logits.to_dtype(DType::F32)?, &y)?.mean_all()?;
        let _ = loss.to_scalar::<f32>()?;
        let t_fwd = t0.elapsed().as_secs_f64();
        let grads = descent_models::train::autograd(&loss, &params)?;
        let t_bwd = t0.elapsed().as_secs_f64() - t_fwd;
        opt.step(&params, &grads, 1e-4, 1.0)?;
        let dt = t0.elapsed().as_secs_f64();
        println!(
            "step {i}: loss {:.4}, {:.3} s (forward {t_fwd:.3}, backward {t_bwd:.3}, AdamW {:.3})",
            loss.to_scalar::<f32>()?,
            dt,
            dt - t_fwd - t_bwd
        );
        if i >= 2 {
            times.push(dt);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "descent train step, batch {batch} × {seq}: median {:.2} s",
        times[times.len() / 2]
    );
    Ok(())
}
