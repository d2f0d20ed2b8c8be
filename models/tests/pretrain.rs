//! Pretraining a language model: the loss falls, held-out answers are scored by greedy
//! generation, and a checkpoint is a Hugging Face folder that reopens with the same logits.

use candle_core::{Device, Tensor};
use descent_models::lm::corpus::{self, Example};
use descent_models::lm::pretrain::{PretrainSpec, PretrainTrainer, Start};
use descent_models::optim::Hyper;
use descent_models::optim::schedule::{Schedule, ScheduleName};
use descent_models::train::Engine;
use std::collections::BTreeMap;

fn spec(steps: u64) -> PretrainSpec {
    let config = descent_models::lm::config::LmConfig::parse(
        &serde_json::json!({
            "model_type": "llama", "vocab_size": 300, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 24,
            "tie_word_embeddings": true,
        })
        .to_string(),
        "test",
    )
    .unwrap();
    PretrainSpec {
        seed: 1,
        data_seed: 1,
        val_fraction: 0.2,
        batch_size: 16,
        hyper: Hyper::adamw(0.0),
        clip_grad_norm: Some(1.0),
        schedule: Schedule {
            name: ScheduleName::Constant,
            peak_lr: 1e-2,
            warmup_steps: 0,
            total_steps: steps,
            shape: Vec::new(),
        },
        start: Start::Scratch(config),
        context: 24,
        chat: true,
        eval_problems: 20,
    }
}

fn sums() -> Vec<Example> {
    let params = BTreeMap::from([("digits".to_string(), 1.0)]);
    corpus::builtin("arithmetic", &params, 0).unwrap()
}

#[test]
fn pretraining_lowers_the_loss_and_scores_held_out_answers_as_greedy_generation_does() {
    let mut t = PretrainTrainer::new(sums(), spec(150), Device::Cpu).unwrap();
    let first = t.evaluate().unwrap().unwrap();
    let mut losses = Vec::new();
    for _ in 0..150 {
        let lr = t.schedule().lr(t.step());
        let m = t.train_step(lr).unwrap();
        assert!(m.tokens.unwrap() > 0);
        losses.push(m.loss);
    }
    // One batch's loss is noisy (0.78 at step 140, 1.07 at 150): the last ten steps'.
    let last = losses[140..].iter().sum::<f64>() / 10.0;
    let e = t.evaluate().unwrap().unwrap();
    let (before, after) = (first.loss.unwrap(), e.loss.unwrap());
    assert!(after < before * 0.5, "{before} → {after}");
    assert!(last < 1.0, "train loss {last}");
    // The batched greedy answers are what each prompt alone gives.
    let (prompts, batched) = t.held_out_answers().unwrap();
    for (p, b) in prompts.iter().zip(&batched) {
        let alone = t.answer(p).unwrap();
        assert_eq!(&alone, b, "{p}");
    }
    let acc = e.accuracy.unwrap();
    let right = prompts
        .iter()
        .zip(&batched)
        .filter(|(p, b)| {
            let (a, c) = p.split_once('+').unwrap();
            (a.parse::<u32>().unwrap() + c.parse::<u32>().unwrap()).to_string() == b.trim()
        })
        .count();
    assert_eq!(acc, right as f64 / prompts.len() as f64);
}

fn logits_of(model: &descent_models::lm::model::Transformer, ids: &[u32]) -> Vec<f32> {
    use descent_models::lm::model::causal_mask;
    let t = ids.len();
    let x = Tensor::from_vec(ids.to_vec(), (1, t), &Device::Cpu).unwrap();
    let pos = Tensor::arange(0u32, t as u32, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = causal_mask(&[vec![true; t]], 0, t, &Device::Cpu).unwrap();
    let h = model.forward(&x, &pos, &mask, None).unwrap();
    model
        .logits(&h)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn a_checkpoint_is_a_hugging_face_folder_that_reopens_resumes_and_starts_a_new_run() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("step-10");
    std::fs::create_dir_all(&ckpt).unwrap();
    let mut a = PretrainTrainer::new(sums(), spec(20), Device::Cpu).unwrap();
    for _ in 0..10 {
        a.train_step(1e-2).unwrap();
    }
    a.save(&ckpt).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(ckpt.join(f).is_file(), "{f}");
    }
    // The talk box's loader reads it with the chat template, and the same logits.
    let lm = descent_models::lm::session::LanguageModel::open(
        &ckpt,
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let enc = lm.encode("3+4", true, None).unwrap();
    assert_eq!(
        enc.text,
        "<|im_start|>user\n3+4<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        logits_of(&lm.model, &enc.ids),
        logits_of(&a.model, &enc.ids)
    );
    assert_eq!(
        lm.defaults.stop_tokens[0],
        lm.tokenizer.token_to_id("<|im_end|>").unwrap()
    );
    // A run resumed from the checkpoint takes the step the first run takes next.
    let mut b = PretrainTrainer::new(sums(), spec(20), Device::Cpu).unwrap();
    b.load(&ckpt, 10).unwrap();
    let (ma, mb) = (a.train_step(1e-2).unwrap(), b.train_step(1e-2).unwrap());
    assert_eq!(ma.loss, mb.loss);
    assert_eq!(ma.grad_l2, mb.grad_l2);
    // A new run from the folder starts with its weights and tokenizer.
    let mut from = spec(5);
    from.start = Start::From(ckpt.clone());
    let c = PretrainTrainer::new(sums(), from, Device::Cpu).unwrap();
    assert_eq!(
        logits_of(&c.model, &enc.ids),
        logits_of(&lm.model, &enc.ids)
    );
    assert_eq!(
        c.tokenizer.get_vocab_size(true),
        lm.tokenizer.get_vocab_size(true)
    );
    // The finished run's export is the same folder without the optimizer.
    c.export(dir.path()).unwrap();
    let model = dir.path().join("model");
    assert!(model.join("model.safetensors").is_file() && model.join("tokenizer.json").is_file());
    assert!(!model.join("optimizer.safetensors").exists());
}

#[test]
fn raw_text_is_learned_in_pieces_and_long_pairs_are_cut_and_counted() {
    let mut examples = vec![Example::text(&"the cat sat on the mat. ".repeat(20))];
    examples.push(Example::pair("1+1", &"2".repeat(40)));
    examples.push(Example::pair(&"9".repeat(40), "1"));
    examples.extend((0..20).map(|i| Example::text(&format!("line {i}"))));
    let mut s = spec(5);
    s.context = 16;
    let mut t = PretrainTrainer::new(examples, s, Device::Cpu).unwrap();
    assert_eq!(t.facts.truncated, 1, "{:?}", t.facts);
    assert_eq!(t.facts.dropped, 1, "{:?}", t.facts);
    assert!(
        t.facts.sequences > 22,
        "the long text is cut in pieces: {:?}",
        t.facts
    );
    assert!(
        t.describe()
            .contains("1 completions cut at lm.context = 16")
    );
    let m = t.train_step(1e-2).unwrap();
    assert!(m.loss.is_finite() && m.loss > 0.0);
    // Only one pair is held out at most, so accuracy is over pairs alone or absent.
    let e = t.evaluate().unwrap().unwrap();
    assert!(e.loss.is_some_and(f64::is_finite));
}

#[test]
fn a_folder_without_a_tokenizer_or_with_a_foreign_architecture_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    descent_models::lm::tiny::write_folder(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let mut s = spec(5);
    s.start = Start::From(dir.path().to_path_buf());
    let e = PretrainTrainer::new(sums(), s.clone(), Device::Cpu)
        .err()
        .unwrap();
    assert!(e.contains("tokenizer.json"), "{e}");
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"llama\"", "\"gpt2\"");
    std::fs::write(&cfg, text).unwrap();
    let e = s.footprint(&sums()).unwrap_err();
    assert!(
        e.contains("gpt2") && e.contains("llama, qwen2, qwen3"),
        "{e}"
    );
}

#[test]
fn coherence_from_micro_batches_of_sequences_takes_the_plain_step() {
    use descent_models::probes::{CoherenceSpec, ProbeSpec};
    let mut probed = PretrainTrainer::new(sums(), spec(3), Device::Cpu).unwrap();
    let mut plain = PretrainTrainer::new(sums(), spec(3), Device::Cpu).unwrap();
    assert!(probed.set_probes(ProbeSpec {
        coherence: Some(CoherenceSpec {
            every: 1,
            micro_batches: 4,
            smoothing: 0.9,
        }),
        ..ProbeSpec::default()
    }));
    for _ in 0..3 {
        let a = probed.train_step(1e-2).unwrap();
        let b = plain.train_step(1e-2).unwrap();
        // The token-weighted mean of the parts' gradients is the batch's gradient.
        assert!(
            (a.loss - b.loss).abs() < 1e-5 * b.loss,
            "{} vs {}",
            a.loss,
            b.loss
        );
        assert!(
            (a.grad_l2 - b.grad_l2).abs() < 1e-4 * b.grad_l2,
            "{} vs {}",
            a.grad_l2,
            b.grad_l2
        );
        assert_eq!(a.tokens, b.tokens);
        let get = |k: &str| a.extra.iter().find(|(n, _)| n == k).map(|x| x.1);
        let micro = get("coherence/micro").unwrap();
        assert!(micro > 0.0 && micro <= 4.0 + 1e-9, "{micro}");
        assert!(get("coherence/m").is_some());
        assert!(
            a.extra
                .iter()
                .any(|(k, _)| k.starts_with("coherence/b_noise/model."))
        );
        assert!(b.extra.is_empty());
    }
}
