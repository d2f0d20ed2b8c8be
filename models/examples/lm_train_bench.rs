//! One training step of a language model (forward, cross-entropy on the next token,
//! backward, AdamW) on a folder's configuration with fresh weights, for the training-speed
//! row of BENCHMARKS.md beside benches/parity/lm_train_speed.py.
//!
//!     cargo run --release -p descent-models --example lm_train_bench -- DIR BATCH SEQ
//!
//! The median of the steps after the first two (`STEPS`, default 5). `AUTOGRAD=1` takes the step through candle's autograd instead of the hand-written pass.

use candle_core::{Device, Tensor};
use descent_models::lm::{self, model::causal_mask_values};
use descent_models::nll;
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
    // Inputs and next-token targets, every token learned, as a pretraining run's batch.
    let x: Vec<u32> = ids
        .chunks(seq + 1)
        .flat_map(|r| r[..seq].to_vec())
        .collect();
    let y: Vec<u32> = ids.chunks(seq + 1).flat_map(|r| r[1..].to_vec()).collect();
    let weights = vec![1f32; batch * seq];
    let positions: Vec<u32> = (0..batch).flat_map(|_| 0..seq as u32).collect();
    let mask = causal_mask_values(&vec![vec![true; seq]; batch], 0, seq);
    let autograd = std::env::var("AUTOGRAD").is_ok_and(|v| v == "1");
    let ids_t = Tensor::from_vec(x.clone(), (batch, seq), &Device::Cpu)?;
    let y_t = Tensor::from_vec(y.clone(), batch * seq, &Device::Cpu)?;
    let pos_t = Tensor::from_vec(positions.clone(), (batch, seq), &Device::Cpu)?;
    let mask_t = Tensor::from_vec(mask.clone(), (batch, 1, seq, seq), &Device::Cpu)?;
    let mut times = Vec::new();
    let steps: usize = std::env::var("STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for i in 0..steps.max(3) {
        let t0 = Instant::now();
        // As a pretraining run takes its step (`lm::pretrain`): the hand-written pass, or
        // with AUTOGRAD=1 candle's autograd (what other devices and dtypes take).
        let (loss, t_fwd, grads) = if autograd {
            let hidden = model.forward(&ids_t, &pos_t, &mask_t, None)?;
            let logits = model.logits(&hidden.reshape((batch * seq, ()))?)?;
            let loss = nll::row_nll(&logits, &y_t)?.mean_all()?;
            let value = loss.to_scalar::<f32>()? as f64;
            let t_fwd = t0.elapsed().as_secs_f64();
            (
                value,
                t_fwd,
                descent_models::train::autograd(&loss, &params)?,
            )
        } else {
            let (logits, tape) = model.forward_tape(&x, batch, seq, &positions, &mask, None)?;
            let scale = 1.0 / (batch * seq) as f32;
            let (sum, d_logits) = nll::weighted_sum_with_grad(&logits, &y, &weights, scale)?;
            let t_fwd = t0.elapsed().as_secs_f64();
            let grads = tape.param_grads(&model, &d_logits, &params)?;
            (sum * scale as f64, t_fwd, grads)
        };
        let t_bwd = t0.elapsed().as_secs_f64() - t_fwd;
        opt.step(&params, &grads, 1e-4, 1.0)?;
        let dt = t0.elapsed().as_secs_f64();
        if i < 5 {
            println!(
                "step {i}: loss {:.4}, {:.3} s (forward {t_fwd:.3}, backward {t_bwd:.3}, AdamW {:.3})",
                loss,
                dt,
                dt - t_fwd - t_bwd
            );
        }
        if i >= 2 {
            times.push(dt);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "descent train step, batch {batch} × {seq}: median {:.3} s",
        times[times.len() / 2]
    );
    Ok(())
}
