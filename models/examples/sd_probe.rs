//! Writes what a Stable Diffusion pipeline computes at each stage, for comparing with
//! diffusers by hand (benches/parity/sd_probe.py): the prompt's token ids and embedding, and
//! one UNet evaluation of a given latent; then the time of one UNet step at CFG's batch
//! (both passes of every noise sample), for the speed ratio in BENCHMARKS.md.
//!
//!     cargo run --release -p descent-models --example sd_probe -- PIPELINE NOISE OUT PROMPT
//!
//! `UNET=candle` evaluates candle-transformers' UNet instead of the host one.

use candle_core::{DType, Device, Tensor};
use descent_models::diffusion::sample::Model;
use descent_models::diffusion::sd;
use std::collections::HashMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As `descent sample` runs: candle's thread count read once, a short spin.
    // SAFETY: no other thread exists yet.
    unsafe { descent_models::configure_cpu_threads(0) };
    let a: Vec<String> = std::env::args().collect();
    let (dir, noise, out, prompt) = (&a[1], &a[2], &a[3], &a[4]);
    let info = sd::inspect(std::path::Path::new(dir))?;
    let kind = match std::env::var("UNET").as_deref() {
        Ok("candle") => sd::UnetKind::Candle,
        _ => sd::UnetKind::Host,
    };
    let p = sd::Pipeline::load_with(info, DType::F32, &Device::Cpu, kind)?;
    let m = p.encode(prompt, "")?;
    println!("tokens {:?}", &m.tokens[0][..8]);
    let x = candle_core::safetensors::load(noise, &Device::Cpu)?["noise"].clone();
    let n = x.dim(0)?;
    let eps = m.predict(&x, 981.0, &vec![0; n])?;
    let emb = m.embeddings().clone();
    let t: HashMap<String, Tensor> =
        HashMap::from([("eps".to_string(), eps), ("embeds".to_string(), emb)]);
    candle_core::safetensors::save(&t, out)?;
    let rows = Tensor::cat(&[&x, &x], 0)?;
    let classes: Vec<u32> = (0..2 * n).map(|i| (i >= n) as u32).collect();
    for _ in 0..3 {
        m.predict(&rows, 500.0, &classes)?;
    }
    let reps = 20;
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        m.predict(&rows, 500.0, &classes)?;
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0 / reps as f64;
    println!("unet step ({} rows, {kind:?}) {ms:.2} ms", 2 * n);
    Ok(())
}
