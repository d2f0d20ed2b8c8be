//! descent's side of benches/parity/lm_speed.py: prefill and batched generation tokens/s on
//! a model folder, greedy, 64 new tokens after a 32-token prompt, at batch 1 and 8 (or only
//! at batch `BATCH` when that is set, for a profile of one; `REPS` runs each generation that
//! many times, the last one timed, so that a profile is mostly decoding).
//!
//!     cargo run --release -p descent-models --example lm_bench -- DIR
//!
//! `DEVICE=cuda` (a build with `--features cuda`) measures a GPU, in bf16 as `descent
//! generate` runs there (`DTYPE=f32` for f32).

use candle_core::{DType, Tensor};
use descent_models::lm::{self, generate, model::causal_mask};
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: no other thread exists yet.
    unsafe { descent_models::configure_cpu_threads(0) };
    let dir = std::env::args().nth(1).expect("usage: lm_bench DIR");
    let spec = std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into());
    let dev = descent_models::device::resolve(spec.parse()?)?.device;
    let dtype = match std::env::var("DTYPE").as_deref() {
        Ok("f32") => DType::F32,
        _ => lm::default_dtype(&dev),
    };
    let model = lm::open(std::path::Path::new(&dir), dtype, &dev)?;
    let vocab = model.config.vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(3..vocab)).collect() };
    let prompt = ids(256);
    let run = |p: &[u32]| -> candle_core::Result<()> {
        let t = p.len();
        let x = Tensor::from_vec(p.to_vec(), (1, t), &dev)?;
        let pos = Tensor::arange(0u32, t as u32, &dev)?.unsqueeze(0)?;
        let mask = causal_mask(&[vec![true; t]], 0, t, &dev)?;
        // With a cache, as generation's prefill runs.
        let mut cache = lm::model::KvCache::default();
        let h = model.forward(&x, &pos, &mask, Some(&mut cache))?;
        model.next_logits(&h)?;
        // A GPU runs ahead of the host: the time is the kernels' only once they are done.
        dev.synchronize()
    };
    run(&prompt[..16])?;
    let t0 = Instant::now();
    run(&prompt)?;
    println!(
        "descent prefill 256 tokens: {:.1} tokens/s",
        256.0 / t0.elapsed().as_secs_f64()
    );
    let batches: Vec<usize> = match std::env::var("BATCH") {
        Ok(b) => vec![b.parse()?],
        Err(_) => vec![1, 8],
    };
    for batch in batches {
        let prompts: Vec<Vec<u32>> = (0..batch).map(|_| ids(32)).collect();
        let warm = generate::Sampling {
            max_new_tokens: 4,
            ..Default::default()
        };
        generate::generate(&model, &prompts, &warm, 0, &mut |_, _| false)?;
        let s = generate::Sampling {
            max_new_tokens: 64,
            ..Default::default()
        };
        let reps: usize = match std::env::var("REPS") {
            Ok(r) => r.parse()?,
            Err(_) => 1,
        };
        for _ in 1..reps {
            generate::generate(&model, &prompts, &s, 0, &mut |_, _| false)?;
        }
        let t0 = Instant::now();
        let out = generate::generate(&model, &prompts, &s, 0, &mut |_, _| false)?;
        let dt = t0.elapsed().as_secs_f64();
        let n: usize = out.iter().map(|g| g.tokens.len()).sum();
        println!(
            "descent batch {batch}, 32-token prompt, 64 new tokens: {:.1} tokens/s ({dt:.2} s)",
            n as f64 / dt
        );
    }
    Ok(())
}
