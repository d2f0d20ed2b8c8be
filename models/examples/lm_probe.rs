//! descent's side of benches/parity/lm_parity.py: for each model folder transformers wrote,
//! the largest difference from its logits at every position, and whether 16 greedy tokens
//! agree. With `--save FROM OUT`, writes a model of FROM's config with descent's own random
//! weights to OUT (`lm::save`), with its logits and greedy tokens in `expected.safetensors`,
//! for `lm_parity.py check OUT` to load in transformers.
//!
//!     cargo run --release -p descent-models --example lm_probe -- DIR…
//!     cargo run --release -p descent-models --example lm_probe -- --save FROM OUT
//!
//! `DEVICE=cuda` (a build with `--features cuda`) runs the comparison on a GPU, in f32.

use candle_core::{DType, Device, Tensor};
use descent_models::lm::{self, generate, model::causal_mask};

fn run(model: &lm::model::Transformer, ids: &[u32]) -> candle_core::Result<(Tensor, Vec<u32>)> {
    let t = ids.len();
    let dev = model.device();
    let x = Tensor::from_vec(ids.to_vec(), (1, t), dev)?;
    let pos = Tensor::arange(0u32, t as u32, dev)?.unsqueeze(0)?;
    let mask = causal_mask(&[vec![true; t]], 0, t, dev)?;
    let logits = model
        .logits(&model.forward(&x, &pos, &mask, None)?)?
        .squeeze(0)?
        .to_device(&Device::Cpu)?;
    let s = generate::Sampling {
        max_new_tokens: 16,
        ..Default::default()
    };
    let got = generate::generate(model, &[ids.to_vec()], &s, 0, &mut |_, _| false)?;
    Ok((logits, got[0].tokens.clone()))
}

fn save(from: &str, out: &str) -> Result<(), Box<dyn std::error::Error>> {
    let config = lm::read_config(std::path::Path::new(from))?;
    let (model, vm) = lm::init(&config, &Device::Cpu, 0)?;
    let out = std::path::Path::new(out);
    lm::save(out, &config, &vm)?;
    let ids: Vec<u32> = vec![1, 5, 17, 33, 8, 90, 41, 3, 60, 22, 7, 11];
    let (logits, greedy) = run(&model, &ids)?;
    let as_i64 = |v: &[u32]| {
        Tensor::new(
            v.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            &Device::Cpu,
        )
    };
    let t = std::collections::HashMap::from([
        ("ids".to_string(), as_i64(&ids)?),
        ("logits".to_string(), logits),
        ("greedy".to_string(), as_i64(&greedy)?),
    ]);
    candle_core::safetensors::save(&t, out.join("expected.safetensors"))?;
    println!("{}: saved", out.display());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--save") {
        return save(&args[1], &args[2]);
    }
    let spec = std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into());
    let device = descent_models::device::resolve(spec.parse()?)?.device;
    for dir in args {
        let dir = std::path::Path::new(&dir);
        let model = lm::open(dir, DType::F32, &device)?;
        let want = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu)?;
        let ids: Vec<u32> = want["ids"]
            .to_vec1::<i64>()?
            .iter()
            .map(|&i| i as u32)
            .collect();
        let (logits, tokens) = run(&model, &ids)?;
        let diff = (logits - &want["logits"])?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        let greedy: Vec<u32> = want["greedy"]
            .to_vec1::<i64>()?
            .iter()
            .map(|&i| i as u32)
            .collect();
        println!(
            "{}: max |logit diff| {diff:.2e}; greedy tokens {}",
            dir.display(),
            if tokens == greedy { "equal" } else { "DIFFER" }
        );
    }
    Ok(())
}
