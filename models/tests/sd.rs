//! Stable Diffusion pipelines: a tiny random pipeline in diffusers' layout opens from its own
//! configs, encodes prompts, samples with every guidance mode and decodes to images.

use candle_core::{DType, Device};
use descent_models::diffusion::export::{self, Config};
use descent_models::diffusion::sample::{self, Compare, Guidance, Request};
use descent_models::diffusion::schedule::{SamplerKind, Scheduler};
use descent_models::diffusion::scheduler_config;
use descent_models::diffusion::sd::{self, Pipeline, tiny};

fn pipeline(dir: &std::path::Path) -> Pipeline {
    tiny::write(dir, "epsilon").unwrap();
    let info = match export::config(dir).unwrap() {
        Config::StableDiffusion(info) => *info,
        _ => panic!("the tiny pipeline is a Stable Diffusion pipeline"),
    };
    Pipeline::load(info, DType::F32, &Device::Cpu).unwrap()
}

fn request(guidance: Guidance, n: usize) -> Request {
    Request {
        guidance,
        compare: Compare::Eps,
        scale: 7.5,
        rescale: 0.0,
        classes: vec![0; n],
        seeds: (0..n as u64).collect(),
        noise: None,
        record: false,
    }
}

#[test]
fn the_tiny_pipeline_samples_images_with_every_guidance() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline(tmp.path());
    assert_eq!(p.info.latent_shape(), vec![4, 32, 32]);
    assert_eq!(p.info.image_shape(), vec![3, 64, 64]);
    let text = std::fs::read_to_string(tmp.path().join("scheduler/scheduler_config.json")).unwrap();
    let cfg = scheduler_config::read(&text, "scheduler_config.json").unwrap();
    let sched = Scheduler::new(SamplerKind::Ddim, &cfg.config, 4, 0.0).unwrap();
    let model = p.encode("a photo of a cat", "blurry").unwrap();
    assert_eq!(model.tokens[0].len(), 77);
    assert_eq!(model.truncated, [0, 0]);
    let cfg_out = sample::sample(&model, &sched, &request(Guidance::Cfg, 2), &mut |_| {}).unwrap();
    assert_eq!(cfg_out.nfe, vec![8, 8]);
    assert_eq!(cfg_out.samples.len(), 2 * 4 * 32 * 32);
    assert!(cfg_out.samples.iter().all(|v| v.is_finite()));
    // A seed's sample does not depend on the batch it is in.
    let one = sample::sample(&model, &sched, &request(Guidance::Cfg, 1), &mut |_| {}).unwrap();
    let diff = one
        .samples
        .iter()
        .zip(&cfg_out.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = one.samples.iter().fold(0f32, |m, v| m.max(v.abs()));
    // Matrix products of another batch size sum in another order: float noise only.
    assert!(
        diff <= 1e-5 * scale.max(1.0),
        "batch changed sample 0 by {diff} (of {scale})"
    );
    // AG with γ̄ = −1 stops guiding after the first step.
    let ag = Guidance::Ag {
        threshold: -1.0,
        per_batch: false,
    };
    let ag_out = sample::sample(&model, &sched, &request(ag, 2), &mut |_| {}).unwrap();
    assert_eq!(ag_out.nfe, vec![5, 5]);
    assert_eq!(ag_out.stopped_at, vec![Some(1), Some(1)]);
    let images = p.decode(&cfg_out.samples).unwrap();
    assert_eq!(images.len(), 2 * 3 * 64 * 64);
    assert!(images.iter().all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn the_guidance_scale_one_is_the_conditional_prediction_and_prompts_matter() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline(tmp.path());
    let text = std::fs::read_to_string(tmp.path().join("scheduler/scheduler_config.json")).unwrap();
    let cfg = scheduler_config::read(&text, "s").unwrap();
    let sched = Scheduler::new(SamplerKind::Euler, &cfg.config, 3, 0.0).unwrap();
    let model = p.encode("a red dog", "").unwrap();
    let mut req = request(Guidance::Cfg, 1);
    req.scale = 1.0;
    let cfg1 = sample::sample(&model, &sched, &req, &mut |_| {}).unwrap();
    let none = sample::sample(&model, &sched, &request(Guidance::None, 1), &mut |_| {}).unwrap();
    let diff = cfg1
        .samples
        .iter()
        .zip(&none.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-4,
        "CFG at w = 1 differs from conditional by {diff}"
    );
    let other = p.encode("the blue cat", "").unwrap();
    let o = sample::sample(&other, &sched, &request(Guidance::None, 1), &mut |_| {}).unwrap();
    assert_ne!(
        o.samples, none.samples,
        "the prompt does not reach the UNet"
    );
}

#[test]
fn long_prompts_are_cut_to_the_tokenizer_length_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pipeline(tmp.path());
    let long = vec!["cat"; 100].join(" ");
    let m = p.encode(&long, "").unwrap();
    assert_eq!(m.truncated, [100 - 75, 0]);
    assert_eq!(m.tokens[0].len(), 77);
    // bos, then the whole word "cat</w>" as one token.
    let cat = m.tokens[0][1];
    assert!(m.tokens[0][1..76].iter().all(|&t| t == cat));
    assert_eq!(
        m.tokens[1][2..],
        vec![m.tokens[1][1]; 75][..],
        "padding is eos"
    );
}

#[test]
fn broken_pipelines_name_the_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    tiny::write(tmp.path(), "epsilon").unwrap();
    let unet_cfg = tmp.path().join("unet/config.json");
    let text = std::fs::read_to_string(&unet_cfg).unwrap();
    std::fs::write(
        &unet_cfg,
        text.replacen(
            "\"cross_attention_dim\": 32",
            "\"cross_attention_dim\": 32, \"addition_embed_type\": \"text_time\"",
            1,
        ),
    )
    .unwrap();
    let e = sd::inspect(tmp.path()).err().unwrap();
    assert!(
        e.contains("unet/config.json") && e.contains("addition_embed_type"),
        "{e}"
    );
    std::fs::write(&unet_cfg, &text).unwrap();
    // A truncated weights file.
    let w = tmp.path().join("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..6]).unwrap();
    let e = sd::inspect(tmp.path()).err().unwrap();
    assert!(
        e.contains("vae/diffusion_pytorch_model.safetensors") && e.contains("truncated"),
        "{e}"
    );
    std::fs::remove_file(&w).unwrap();
    let e = sd::inspect(tmp.path()).err().unwrap();
    assert!(e.contains("no diffusion_pytorch_model.safetensors"), "{e}");
    std::fs::remove_dir_all(tmp.path().join("tokenizer")).unwrap();
    let e = sd::inspect(tmp.path()).err().unwrap();
    assert!(e.contains("tokenizer") && e.contains("missing"), "{e}");
}

#[test]
fn a_v_prediction_pipeline_samples_and_text_encoder_activations_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    tiny::write(tmp.path(), "v_prediction").unwrap();
    let text = std::fs::read_to_string(tmp.path().join("scheduler/scheduler_config.json")).unwrap();
    let cfg = scheduler_config::read(&text, "s").unwrap();
    assert_eq!(
        cfg.config.prediction,
        descent_models::diffusion::schedule::Prediction::V
    );
    let info = sd::inspect(tmp.path()).unwrap();
    let p = Pipeline::load(info, DType::F32, &Device::Cpu).unwrap();
    let sched = Scheduler::new(SamplerKind::Ddim, &cfg.config, 2, 0.0).unwrap();
    let model = p.encode("a dog", "").unwrap();
    let out = sample::sample(&model, &sched, &request(Guidance::Cfg, 1), &mut |_| {}).unwrap();
    assert!(out.samples.iter().all(|v| v.is_finite()));
    // SD 2.x's encoder uses erf GELU; an activation descent lacks names the key.
    let enc = tmp.path().join("text_encoder/config.json");
    let json = std::fs::read_to_string(&enc).unwrap();
    std::fs::write(&enc, json.replace("quick_gelu", "gelu")).unwrap();
    let info = sd::inspect(tmp.path()).unwrap();
    assert_eq!(info.clip.activation, sd::clip::Activation::Gelu);
    std::fs::write(&enc, json.replace("quick_gelu", "swish")).unwrap();
    let e = sd::inspect(tmp.path()).err().unwrap();
    assert!(
        e.contains("text_encoder/config.json") && e.contains("\"hidden_act\": swish"),
        "{e}"
    );
}

/// The host UNet against candle-transformers' on the same random weights (norms and biases
/// perturbed too, so none sits at its initial value): the tiny pipeline's configuration,
/// and one with three levels, linear projections, two transformer layers, a downsampler
/// padded after the image and a size that does not halve evenly. What differs is the GELU
/// (exact here and in diffusers, tanh-approximated in candle): with candle's GELU swapped in
/// by hand the two agreed to 2.5e-6 of the output's scale; with ours they differ by 3e-4.
/// N(0, std²) draws from a seeded generator, as a CPU tensor.
fn seeded(shape: &[usize], std: f32, seed: u64) -> candle_core::Tensor {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| std * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng))
        .collect();
    candle_core::Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn the_host_unet_computes_what_candles_does() {
    use candle_core::Var;
    use candle_nn::{VarBuilder, VarMap};
    use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
    use descent_models::diffusion::sd::{configs, unet_host::HostUnet};
    let dev = Device::Cpu;
    let tiny = r#"{"_class_name": "UNet2DConditionModel", "block_out_channels": [32, 64],
        "layers_per_block": 2, "sample_size": 32, "down_block_types": ["DownBlock2D",
        "CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "cross_attention_dim": 32, "attention_head_dim": 8}"#;
    let wide = r#"{"_class_name": "UNet2DConditionModel", "block_out_channels": [32, 64, 64],
        "layers_per_block": 1, "sample_size": 10, "in_channels": 3, "out_channels": 3,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": 24, "attention_head_dim": [2, 4, 4], "use_linear_projection": true,
        "transformer_layers_per_block": 2, "downsample_padding": 0, "freq_shift": 1,
        "flip_sin_to_cos": false, "mid_block_scale_factor": 1.5, "norm_num_groups": 32}"#;
    for (text, (h, w)) in [(tiny, (32, 32)), (wide, (10, 9))] {
        let cfg = configs::unet(&configs::Json::parse(text, "config.json").unwrap()).unwrap();
        let vm = VarMap::new();
        UNet2DConditionModel::new(
            VarBuilder::from_varmap(&vm, DType::F32, &dev),
            cfg.in_channels,
            cfg.out_channels,
            false,
            cfg.config.clone(),
        )
        .unwrap();
        // Seeded, so that the inputs are the same on every run (candle's CPU `randn` is not).
        let mut names: Vec<_> = vm.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        for (k, name) in names.iter().enumerate() {
            let v = vm.data().lock().unwrap()[name].clone();
            let noise = seeded(v.dims(), 0.05, k as u64);
            Var::set(&v, &(v.as_tensor() + noise).unwrap()).unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("diffusion_pytorch_model.safetensors");
        vm.save(&file).unwrap();
        let host = HostUnet::load(&cfg, std::slice::from_ref(&file)).unwrap();
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&file], DType::F32, &dev) }.unwrap();
        let theirs = UNet2DConditionModel::new(
            vb,
            cfg.in_channels,
            cfg.out_channels,
            false,
            cfg.config.clone(),
        )
        .unwrap();
        let (b, s) = (3, 5);
        let c = cfg.in_channels;
        let x = seeded(&[b, c, h, w], 1.0, 10_000);
        let ctx = seeded(&[b, s, cfg.config.cross_attention_dim], 1.0, 10_001);
        for t in [981.0, 21.0] {
            let want: Vec<f32> = theirs
                .forward(&x, t, &ctx)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let cs: Vec<f32> = ctx.flatten_all().unwrap().to_vec1().unwrap();
            let ours = host.forward(&xs, b, h, w, t, &cs);
            assert_eq!(ours.len(), want.len());
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = ours
                .iter()
                .zip(&want)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            eprintln!("{h}×{w} t={t}: max |Δ| {worst:.2e} of max |ε| {scale:.2e}");
            assert!(
                worst <= 2e-3 * scale,
                "max |Δ| {worst} against max |ε| {scale}"
            );
        }
    }
}

#[test]
fn a_unet_weight_of_the_wrong_shape_is_named_with_its_file() {
    use candle_core::Tensor;
    use descent_models::diffusion::sd::{configs, unet_host::HostUnet};
    let tmp = tempfile::tempdir().unwrap();
    tiny::write(tmp.path(), "epsilon").unwrap();
    let u = tmp.path().join("unet");
    let file = u.join("diffusion_pytorch_model.safetensors");
    let mut w = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let bad = Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap();
    w.insert("mid_block.resnets.0.conv1.bias".into(), bad);
    candle_core::safetensors::save(&w, &file).unwrap();
    let cfg = configs::unet(&configs::Json::read(&u.join("config.json")).unwrap()).unwrap();
    let e = HostUnet::load(&cfg, &[file])
        .err()
        .expect("a wrong shape is refused");
    assert!(
        e.contains("diffusion_pytorch_model.safetensors")
            && e.contains("mid_block.resnets.0.conv1.bias")
            && e.contains("[3, 3]"),
        "{e}"
    );
}
