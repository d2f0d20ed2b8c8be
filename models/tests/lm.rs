//! Language models on tiny random configurations written in the Hugging Face layout: each
//! family's logits against candle-transformers' inference implementation, and batched
//! KV-cached generation (its logits and its tokens) against the uncached forward pass and
//! greedy decoding of each prompt alone.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use descent_models::lm::{self, generate, model::causal_mask};
use serde_json::{Value, json};
use std::path::Path;

fn base(model_type: &str) -> Value {
    json!({
        "model_type": model_type,
        "vocab_size": 97,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        // qwen2 and qwen3 configs carry these; descent ignores them.
        "sliding_window": 64,
        "max_window_layers": 2,
        "use_sliding_window": false,
    })
}

fn configs() -> Vec<(&'static str, Value)> {
    let mut llama3 = base("llama");
    llama3["tie_word_embeddings"] = json!(true);
    llama3["rope_scaling"] = json!({
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 16
    });
    let mut qwen3 = base("qwen3");
    qwen3["head_dim"] = json!(16);
    qwen3["attention_bias"] = json!(false);
    qwen3["tie_word_embeddings"] = json!(true);
    vec![
        ("llama", base("llama")),
        ("llama3-scaled-tied", llama3),
        ("qwen2", base("qwen2")),
        ("qwen3", qwen3),
    ]
}

fn tensors(dir: &Path) -> VarBuilder<'static> {
    let files = descent_models::weights::files(dir, "model").unwrap();
    descent_models::weights::var_builder(&files, DType::F32, &Device::Cpu).unwrap()
}

/// candle-transformers' logits at the last position of `ids`.
fn reference(name: &str, cfg: &Value, dir: &Path, ids: &Tensor) -> Vec<f32> {
    use candle_transformers::models::{llama, qwen2, qwen3};
    let text = cfg.to_string();
    let dev = Device::Cpu;
    let out = match cfg["model_type"].as_str().unwrap() {
        "llama" => {
            let c: llama::LlamaConfig = serde_json::from_str(&text).unwrap();
            let c = c.into_config(false);
            let mut cache = llama::Cache::new(false, DType::F32, &c, &dev).unwrap();
            let m = llama::Llama::load(tensors(dir), &c).unwrap();
            m.forward(ids, 0, &mut cache).unwrap()
        }
        "qwen2" => {
            let c: qwen2::Config = serde_json::from_str(&text).unwrap();
            let mut m = qwen2::ModelForCausalLM::new(&c, tensors(dir)).unwrap();
            m.forward(ids, 0).unwrap()
        }
        "qwen3" => {
            let c: qwen3::Config = serde_json::from_str(&text).unwrap();
            let mut m = qwen3::ModelForCausalLM::new(&c, tensors(dir)).unwrap();
            m.forward(ids, 0).unwrap()
        }
        other => panic!("{name}: {other}"),
    };
    out.flatten_all().unwrap().to_vec1().unwrap()
}

/// A model of `cfg` with random weights, written to a temporary folder and opened from it.
fn random_model(cfg: &Value) -> (tempfile::TempDir, lm::model::Transformer) {
    let tmp = tempfile::tempdir().unwrap();
    lm::write_random(tmp.path(), cfg).unwrap();
    let model = lm::open(tmp.path(), DType::F32, &Device::Cpu).unwrap();
    (tmp, model)
}

/// The logits `[rows × vocab]` of the last position of hidden states `h` `[rows, t, …]`.
fn last_logits(model: &lm::model::Transformer, h: &Tensor) -> Vec<f32> {
    let t = h.dim(1).unwrap();
    let l = model.logits(&h.narrow(1, t - 1, 1).unwrap()).unwrap();
    l.flatten_all().unwrap().to_vec1().unwrap()
}

/// The largest elementwise difference of two equally long vectors.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn each_family_matches_candle_transformers_logits() {
    for (name, cfg) in configs() {
        let (tmp, model) = random_model(&cfg);
        let prompt: Vec<u32> = vec![1, 5, 17, 33, 8, 90, 41, 3, 60, 22, 7, 11];
        let t = prompt.len();
        let ids = Tensor::from_vec(prompt.clone(), (1, t), &Device::Cpu).unwrap();
        let pos = Tensor::arange(0u32, t as u32, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mask = causal_mask(&[vec![true; t]], 0, t, &Device::Cpu).unwrap();
        let h = model.forward(&ids, &pos, &mask, None).unwrap();
        let ours = last_logits(&model, &h);
        let theirs = reference(name, &cfg, tmp.path(), &ids);
        assert_eq!(ours.len(), 97, "{name}");
        let big = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(big > 0.1, "{name}: logits of {big} at most compare nothing");
        let diff = max_diff(&ours, &theirs);
        assert!(diff < 1e-4, "{name}: logits differ by {diff}");
    }
}

#[test]
fn batched_cached_generation_equals_greedy_decoding_of_each_prompt_alone() {
    for (name, cfg) in configs() {
        let (_dir, model) = random_model(&cfg);
        let prompts = vec![vec![1, 5, 17], vec![1, 40, 2, 9, 13, 77, 4], vec![3]];
        let s = generate::Sampling {
            max_new_tokens: 12,
            ..Default::default()
        };
        let out = generate::generate(&model, &prompts, &s, 0, &mut |_, _| false).unwrap();
        for (p, g) in prompts.iter().zip(&out) {
            let alone = generate::greedy_uncached(&model, p, 12).unwrap();
            assert_eq!(g.tokens, alone, "{name}: prompt {p:?}");
            // A batch of one decodes one row at a time (another matrix-product path).
            let one = generate::generate(&model, std::slice::from_ref(p), &s, 0, &mut |_, _| false)
                .unwrap();
            assert_eq!(one[0].tokens, alone, "{name}: prompt {p:?} alone");
            assert_eq!(g.logprobs.len(), 12);
            assert!(g.logprobs.iter().all(|&l| l <= 0.0));
            assert!(
                g.entropies
                    .iter()
                    .all(|&h| h >= 0.0 && h <= (97f32).ln() + 1e-4)
            );
        }
    }
}

/// Decoding with a cache takes other kernels (candle's fused RMSNorm, RoPE and softmax, the
/// few-rows product): its logits, prompt then one new token per row, against the training
/// path's on the whole sequence.
#[test]
fn cached_decoding_logits_match_the_uncached_forward_pass() {
    for (name, cfg) in configs() {
        let (_dir, model) = random_model(&cfg);
        let dev = Device::Cpu;
        let rows: Vec<Vec<u32>> = vec![vec![1, 5, 17, 30, 8], vec![1, 40, 2, 9, 13]];
        let b = rows.len();
        let (t, valid) = (rows[0].len(), vec![vec![true; rows[0].len()]; b]);
        let pos = |from: u32, n: usize| {
            Tensor::arange(from, from + n as u32, &dev)
                .unwrap()
                .unsqueeze(0)
                .unwrap()
                .repeat((b, 1))
                .unwrap()
        };
        let ids = |from: usize, n: usize| {
            let v: Vec<u32> = rows
                .iter()
                .flat_map(|r| r[from..from + n].to_vec())
                .collect();
            Tensor::from_vec(v, (b, n), &dev).unwrap()
        };
        let mut cache = lm::model::KvCache::default();
        let mask = causal_mask(&valid, 0, t - 1, &dev).unwrap();
        model
            .forward(&ids(0, t - 1), &pos(0, t - 1), &mask, Some(&mut cache))
            .unwrap();
        let mask = causal_mask(&valid, t - 1, 1, &dev).unwrap();
        let h = model
            .forward(
                &ids(t - 1, 1),
                &pos(t as u32 - 1, 1),
                &mask,
                Some(&mut cache),
            )
            .unwrap();
        let cached: Vec<f32> = model
            .next_logits(&h)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mask = causal_mask(&valid, 0, t, &dev).unwrap();
        let h = model.forward(&ids(0, t), &pos(0, t), &mask, None).unwrap();
        let full = last_logits(&model, &h);
        assert_eq!(cached.len(), b * 97, "{name}");
        let diff = max_diff(&cached, &full);
        assert!(diff < 1e-4, "{name}: cached logits differ by {diff}");
    }
}

#[test]
fn seeded_sampling_repeats_and_stop_tokens_end_a_row() {
    let (_, cfg) = &configs()[0];
    let (_dir, model) = random_model(cfg);
    let prompts = vec![vec![1, 5, 17], vec![1, 40]];
    let s = generate::Sampling {
        temperature: 1.0,
        top_k: 20,
        top_p: 0.9,
        min_p: 0.01,
        max_new_tokens: 10,
        seed: 7,
        ..Default::default()
    };
    let a = generate::generate(&model, &prompts, &s, 0, &mut |_, _| false).unwrap();
    let b = generate::generate(&model, &prompts, &s, 0, &mut |_, _| false).unwrap();
    assert_eq!(a, b);
    let other = generate::Sampling {
        seed: 8,
        ..s.clone()
    };
    let c = generate::generate(&model, &prompts, &other, 0, &mut |_, _| false).unwrap();
    assert_ne!(a[0].tokens, c[0].tokens, "another seed, another sample");
    // Stopping on the first token row 0 drew ends that row at once.
    let stop = generate::Sampling {
        stop_tokens: vec![a[0].tokens[0]],
        ..s
    };
    let d = generate::generate(&model, &prompts, &stop, 0, &mut |_, _| false).unwrap();
    assert_eq!(d[0].tokens, vec![a[0].tokens[0]]);
    assert!(d[0].stopped);
}

#[test]
fn bad_configs_name_the_key() {
    let mut c = base("gpt2");
    let e = lm::config::LmConfig::parse(&c.to_string(), "config.json").unwrap_err();
    assert!(
        e.contains("\"model_type\": gpt2 is not supported; descent supports llama, qwen2, qwen3"),
        "{e}"
    );
    c = base("llama");
    c["num_key_value_heads"] = json!(3);
    let e = lm::config::LmConfig::parse(&c.to_string(), "config.json").unwrap_err();
    assert!(e.contains("num_key_value_heads"), "{e}");
    c = base("llama");
    c.as_object_mut().unwrap().remove("hidden_size");
    let e = lm::config::LmConfig::parse(&c.to_string(), "config.json").unwrap_err();
    assert!(e.contains("\"hidden_size\": missing"), "{e}");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), base("llama").to_string()).unwrap();
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        r#"{"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let e = lm::open(tmp.path(), DType::F32, &Device::Cpu)
        .err()
        .unwrap();
    assert!(
        e.contains("model-00001-of-00002.safetensors: missing"),
        "{e}"
    );
}

#[test]
fn every_weight_gets_a_gradient() {
    use candle_core::Var;
    for (name, cfg) in configs() {
        let c = lm::config::LmConfig::parse(&cfg.to_string(), "config.json").unwrap();
        let (model, vm) = lm::init(&c, &Device::Cpu, 0).unwrap();
        let ids = Tensor::from_vec(vec![1u32, 5, 17, 33, 8], (1, 5), &Device::Cpu).unwrap();
        let pos = Tensor::arange(0u32, 5, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mask = causal_mask(&[vec![true; 5]], 0, 5, &Device::Cpu).unwrap();
        let logits = model
            .logits(&model.forward(&ids, &pos, &mask, None).unwrap())
            .unwrap();
        let targets = Tensor::from_vec(vec![5u32, 17, 33, 8, 2], 5, &Device::Cpu).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits.squeeze(0).unwrap(), &targets).unwrap();
        let grads = loss.backward().unwrap();
        let vars: Vec<(String, Var)> = vm.data().lock().unwrap().clone().into_iter().collect();
        assert!(!vars.is_empty());
        for (n, v) in vars {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for {n}"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name}: zero gradient for {n}");
        }
        let count: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(count as u64, c.param_count(), "{name}: param_count");
    }
}

#[test]
fn a_saved_folder_reopens_with_identical_logits_and_both_rope_formats_read_alike() {
    for (name, cfg) in configs() {
        let c = lm::config::LmConfig::parse(&cfg.to_string(), "config.json").unwrap();
        let (model, vm) = lm::init(&c, &Device::Cpu, 0).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("saved");
        lm::save(&dir, &c, &vm).unwrap();
        let back = lm::open(&dir, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(back.config, c, "{name}: the config round-trips");
        let ids = Tensor::from_vec(vec![1u32, 9, 4, 60], (1, 4), &Device::Cpu).unwrap();
        let pos = Tensor::arange(0u32, 4, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mask = causal_mask(&[vec![true; 4]], 0, 4, &Device::Cpu).unwrap();
        let run = |m: &lm::model::Transformer| -> Vec<f32> {
            m.logits(&m.forward(&ids, &pos, &mask, None).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(run(&model), run(&back), "{name}");
    }
    // transformers 5 writes θ and the scaling as `rope_parameters`.
    let (_, old) = &configs()[1];
    let mut new = old.clone();
    let scaling = new.as_object_mut().unwrap().remove("rope_scaling").unwrap();
    let theta = new.as_object_mut().unwrap().remove("rope_theta").unwrap();
    let mut params = scaling.clone();
    params["rope_theta"] = theta;
    new["rope_parameters"] = params;
    let a = lm::config::LmConfig::parse(&old.to_string(), "a").unwrap();
    let b = lm::config::LmConfig::parse(&new.to_string(), "b").unwrap();
    assert_eq!(a, b);
}

/// `tests/chat/expected.json` is what transformers 5.24's `render_jinja_template` (the code
/// behind `apply_chat_template`) made of the two templates beside it.
#[test]
fn chat_templates_of_the_smollm2_and_qwen_styles_render_as_transformers_renders_them() {
    use lm::chat::{ChatTemplate, Message};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chat");
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let msgs = [
        Message::new("system", "  Be brief.  "),
        Message::new("user", "What is 2+3?"),
        Message::new("assistant", "<think>easy</think>\n5"),
        Message::new("user", " And 4*4? "),
    ];
    for name in ["smollm2", "qwen"] {
        let src = std::fs::read_to_string(dir.join(format!("{name}.jinja"))).unwrap();
        let t = ChatTemplate::new(&src, name, "", "");
        for (label, m) in [("with_system", &msgs[..]), ("no_system", &msgs[1..2])] {
            let got = t.render(m, true).unwrap();
            let want = expected[&format!("{name}_{label}")].as_str().unwrap();
            assert_eq!(got, want, "{name} {label}");
        }
    }
    // A folder's template comes from tokenizer_config.json.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("tokenizer_config.json"),
        json!({"chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", "bos_token": "<s>"}).to_string(),
    )
    .unwrap();
    let t = ChatTemplate::from_folder(tmp.path()).unwrap().unwrap();
    assert_eq!(t.render(&msgs[1..2], false).unwrap(), "<s>What is 2+3?");
}

#[test]
fn a_fresh_model_starts_near_the_uniform_loss() {
    let (_, cfg) = &configs()[1];
    let c = lm::config::LmConfig::parse(&cfg.to_string(), "config.json").unwrap();
    let (model, _) = lm::init(&c, &Device::Cpu, 3).unwrap();
    let ids: Vec<u32> = (0..40u32).map(|i| (i * 37 + 11) % 97).collect();
    let x = Tensor::from_vec(ids[..39].to_vec(), (1, 39), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(ids[1..].to_vec(), 39, &Device::Cpu).unwrap();
    let pos = Tensor::arange(0u32, 39, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = causal_mask(&[vec![true; 39]], 0, 39, &Device::Cpu).unwrap();
    let logits = model
        .logits(&model.forward(&x, &pos, &mask, None).unwrap())
        .unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits.squeeze(0).unwrap(), &y)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let uniform = (97f32).ln();
    assert!(
        (loss - uniform).abs() < 0.05 * uniform,
        "first loss {loss}, ln V = {uniform}"
    );
    // The same seed, the same weights.
    let (again, _) = lm::init(&c, &Device::Cpu, 3).unwrap();
    let l2 = again
        .logits(&again.forward(&x, &pos, &mask, None).unwrap())
        .unwrap();
    assert_eq!(
        logits.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        l2.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}
