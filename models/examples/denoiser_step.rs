//! Times the demo digits UNet on the CPU: a sampling step's forward pass (CFG: a batch of
//! 2×64, one timestep) as the sampler calls it (the host pass) and through candle's ops, and
//! a training step's loss and gradients (a batch of 32) as the trainer takes them (the
//! hand-written pass) and through candle's autograd.
//!
//! cargo run --release -p descent-models --example denoiser_step [-- REPS]

use candle_core::{Device, Tensor};
use descent_models::diffusion::net::{Denoiser, DenoiserArch, DenoiserSpec};
use descent_models::diffusion::sample::Model;
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { descent_models::configure_cpu_threads(0) };
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dev = Device::Cpu;
    let spec = DenoiserSpec {
        arch: DenoiserArch::Unet,
        sample_shape: vec![1, 8, 8],
        classes: 10,
        hidden: vec![],
        channels: vec![16, 32],
        embed_dim: 64,
    };
    let net = Denoiser::new(spec, 0, &dev)?;
    #[derive(PartialEq)]
    enum Pass {
        Sampler,
        CandleOps,
        Training,
        Autograd,
    }
    let time = |label: &str, b: usize, pass: Pass| -> candle_core::Result<()> {
        let x = Tensor::randn(0f32, 1.0, (b, 1, 8, 8), &dev)?;
        let t: Vec<f64> = (0..b).map(|i| (i * 7 % 1000) as f64).collect();
        let c: Vec<u32> = (0..b).map(|i| (i % 11) as u32).collect();
        let mut times = Vec::new();
        for _ in 0..reps + 3 {
            let t0 = Instant::now();
            match pass {
                Pass::Sampler => {
                    let _ = net
                        .predict(&x, 500.0, &c)?
                        .flatten_all()?
                        .to_vec1::<f32>()?;
                }
                Pass::CandleOps => {
                    let _ = net.forward(&x, &t, &c)?.flatten_all()?.to_vec1::<f32>()?;
                }
                Pass::Training => {
                    let _ = net.loss_grads_host(&x, &x.zeros_like()?, &t, &c)?;
                }
                Pass::Autograd => {
                    let _ = net.forward(&x, &t, &c)?.sqr()?.mean_all()?.backward()?;
                }
            }
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let mut t = times[3..].to_vec();
        t.sort_by(f64::total_cmp);
        println!("{label}: median {:.2} ms over {reps}", t[t.len() / 2]);
        Ok(())
    };
    time("sampling forward, batch 128", 128, Pass::Sampler)?;
    time(
        "sampling forward through candle's ops, batch 128",
        128,
        Pass::CandleOps,
    )?;
    time("training forward+backward, batch 32", 32, Pass::Training)?;
    time(
        "training forward+backward through autograd, batch 32",
        32,
        Pass::Autograd,
    )?;
    Ok(())
}
