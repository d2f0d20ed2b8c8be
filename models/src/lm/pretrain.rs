//! `kind = "pretrain"`: a language model trained on the next token, from scratch (with a BPE
//! tokenizer trained on the corpus) or from a Hugging Face folder, on raw text (every token
//! learned) or prompt/completion pairs (only the completion). Its checkpoints are Hugging
//! Face folders that the talk box and `transformers` open.

use super::bpe::{self, CHATML, END_OF_TEXT, IM_END};
use super::chat::{ChatTemplate, Message};
use super::config::LmConfig;
use super::corpus::Example;
use super::generate::{Sampling, generate};
use super::model::{Transformer, causal_mask};
use crate::data::{Batches, Split};
use crate::memory::{self, Footprint};
use crate::nn::Param;
use crate::optim::schedule::Schedule;
use crate::optim::{Hyper, Optimizer};
use crate::probes::coherence::{self, Parts, Smoother, weigh};
use crate::probes::{CoherenceSpec, ProbeSpec};
use crate::train::{Engine, EvalMetrics, StepMetrics, apply_gradients, autograd};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Where the model starts.
#[derive(Clone, Debug)]
pub enum Start {
    /// Fresh weights of `config` (its vocabulary size is the most the trained tokenizer may
    /// have; the trained one's size replaces it).
    Scratch(LmConfig),
    /// A Hugging Face folder: its config, weights, tokenizer and chat template.
    From(PathBuf),
}

#[derive(Clone, Debug)]
pub struct PretrainSpec {
    pub seed: u64,
    /// Seeds the held-out split (the corpus itself is generated before).
    pub data_seed: u64,
    pub val_fraction: f64,
    pub batch_size: usize,
    pub hyper: Hyper,
    pub clip_grad_norm: Option<f64>,
    pub schedule: Schedule,
    pub start: Start,
    /// Tokens of one training sequence at most: longer texts are cut into pieces, longer
    /// pairs cut at the end.
    pub context: usize,
    /// Prompts of pairs read through the chat template as a user turn.
    pub chat: bool,
    /// Held-out prompts answered greedily at each evaluation (exact-match accuracy).
    pub eval_problems: usize,
}

/// One tokenized sequence: the tokens from `learn_from` on are predicted.
#[derive(Clone, Debug)]
struct Seq {
    ids: Vec<u32>,
    learn_from: usize,
    /// The example it comes from.
    example: usize,
}

/// How the corpus came out of the tokenizer, for the run's events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CorpusFacts {
    pub sequences: usize,
    pub tokens: usize,
    /// Pairs whose completion was cut at the context.
    pub truncated: usize,
    /// Pairs dropped because the prompt alone fills the context.
    pub dropped: usize,
}

/// Sequences evaluated at once.
const EVAL_CHUNK: usize = 256;

pub struct PretrainTrainer {
    spec: PretrainSpec,
    pub config: LmConfig,
    pub model: Transformer,
    vars: VarMap,
    params: Vec<Param>,
    opt: Optimizer,
    pub schedule: Schedule,
    step: u64,
    examples: Vec<Example>,
    pub tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    /// Files written beside the weights in every saved folder (tokenizer, its config with
    /// the chat template, the generation config).
    side_files: Vec<(String, String)>,
    /// Ends a completion (the chat turn's end, or the end of text).
    eos: u32,
    pad: u32,
    seqs: Vec<Seq>,
    pub facts: CorpusFacts,
    split: Split,
    batches: Batches,
    /// `[probes.coherence]` (the one probe a language-model run has) and its averages.
    coherence: Option<(CoherenceSpec, Option<Smoother>)>,
}

impl PretrainSpec {
    /// The model's configuration (a scratch model's with its largest vocabulary).
    pub fn config(&self) -> std::result::Result<LmConfig, String> {
        match &self.start {
            Start::Scratch(c) => Ok(c.clone()),
            Start::From(dir) => super::read_config(dir),
        }
    }

    /// The memory a run of this spec on `examples` needs, before anything is built.
    pub fn footprint(&self, examples: &[Example]) -> std::result::Result<Footprint, String> {
        let c = self.config()?;
        let text_bytes: usize = examples
            .iter()
            .map(|e| e.text.len() + e.prompt.as_ref().map_or(0, String::len))
            .sum();
        // Tokens are at most one per byte (plus the template's), kept as u32 ids.
        let data = (
            format!("corpus ({} examples)", examples.len()),
            (text_bytes as u64).saturating_mul(1 + 4),
        );
        let tokens = (self.batch_size * self.context) as u64;
        let eval_tokens = (EVAL_CHUNK.min(examples.len()) * self.context) as u64;
        let per_token = values_per_token(&c, self.context);
        let step = tokens.saturating_mul(per_token).saturating_mul(2 * 4);
        let eval = eval_tokens.saturating_mul(per_token).saturating_mul(4);
        let mut fp = memory::trained_parts(
            c.param_count(),
            self.hyper.name,
            data,
            (
                format!(
                    "step activations ({} × {} tokens)",
                    self.batch_size, self.context
                ),
                step,
            ),
            (
                format!("evaluation activations ({eval_tokens} tokens)"),
                eval,
            ),
        );
        fp.largest = Some(largest_weight(&c));
        Ok(fp)
    }
}

/// The values autograd keeps per token of a forward pass of `c` over `context` tokens: per
/// layer the block's inputs and norms, q, k, v and their rotations, the scores and
/// probabilities over the context, the attention output, the MLP's gate, up, activation
/// and product; then the logits and their log-softmax. The backward pass makes about as
/// much again.
pub(crate) fn values_per_token(c: &LmConfig, context: usize) -> u64 {
    let (h, i, v) = (
        c.hidden_size as u64,
        c.intermediate_size as u64,
        c.vocab_size as u64,
    );
    let (q, kv) = (
        (c.heads * c.head_dim) as u64,
        (c.kv_heads * c.head_dim) as u64,
    );
    let per_layer = 6 * h + 3 * q + 4 * kv + 2 * (c.heads * context) as u64 + 4 * i;
    (c.layers as u64) * per_layer + 4 * v + 2 * h
}

/// The largest weight of `c` (name, shape, bytes): the embedding, or an MLP projection of
/// every layer.
pub(crate) fn largest_weight(c: &LmConfig) -> (String, String, u64) {
    let (h, i, v) = (
        c.hidden_size as u64,
        c.intermediate_size as u64,
        c.vocab_size as u64,
    );
    if v >= i {
        (
            "model.embed_tokens.weight".into(),
            format!("{} × {}", c.vocab_size, c.hidden_size),
            v * h * 4,
        )
    } else {
        (
            "model.layers.*.mlp.gate_proj.weight".into(),
            format!("{} × {}", c.intermediate_size, c.hidden_size),
            i * h * 4,
        )
    }
}

impl PretrainTrainer {
    pub fn new(
        examples: Vec<Example>,
        spec: PretrainSpec,
        device: Device,
    ) -> std::result::Result<PretrainTrainer, String> {
        if examples.is_empty() {
            return Err("the corpus is empty".into());
        }
        let (mut config, tokenizer, template, side_files, weights) = match &spec.start {
            Start::Scratch(c) => scratch(c, &examples, spec.chat)?,
            Start::From(dir) => from_folder(dir)?,
        };
        if spec.chat && template.is_none() && examples.iter().any(|e| e.prompt.is_some()) {
            return Err(format!(
                "lm.chat = true, but {} has no chat template",
                match &spec.start {
                    Start::From(d) => d.display().to_string(),
                    Start::Scratch(_) => "the model".into(),
                }
            ));
        }
        let eos_text = side_token(&side_files, "eos_token").unwrap_or(END_OF_TEXT.into());
        let eos = tokenizer.token_to_id(&eos_text).ok_or_else(|| {
            format!("the tokenizer has no id for its end-of-sequence token {eos_text:?}")
        })?;
        let pad = side_token(&side_files, "pad_token")
            .and_then(|t| tokenizer.token_to_id(&t))
            .unwrap_or(eos);
        if config.eos_token_ids.is_empty() {
            config.eos_token_ids = vec![eos];
        }
        if spec.context < 2 {
            return Err("lm.context must be at least 2 tokens".into());
        }
        config.max_positions = config.max_positions.max(spec.context);
        let (model, vars) = super::init(&config, &device, spec.seed)?;
        let params = super::params(&vars);
        if let Some(w) = weights {
            crate::nn::load_params(&params, &w).map_err(|e| e.to_string())?;
        }
        let opt = Optimizer::new(spec.hyper, &params);
        let mut t = PretrainTrainer {
            schedule: spec.schedule.clone(),
            config,
            model,
            vars,
            params,
            opt,
            step: 0,
            examples,
            tokenizer,
            template,
            side_files,
            eos,
            pad,
            seqs: Vec::new(),
            facts: CorpusFacts::default(),
            split: Split::new(0, 0.0, 0),
            batches: Batches::new(Vec::new(), 1, 0),
            coherence: None,
            spec,
        };
        t.encode_corpus()?;
        Ok(t)
    }

    /// Tokenizes every example and draws the split and the batch order.
    fn encode_corpus(&mut self) -> std::result::Result<(), String> {
        let mut facts = CorpusFacts::default();
        let mut seqs = Vec::with_capacity(self.examples.len());
        let ctx = self.spec.context;
        for (example, e) in self.examples.iter().enumerate() {
            let mut push = |ids: Vec<u32>, learn_from: usize| {
                if ids.len() >= 2 {
                    seqs.push(Seq {
                        ids,
                        learn_from,
                        example,
                    });
                }
            };
            match &e.prompt {
                None => {
                    let mut ids = self.encode(&e.text, true)?;
                    ids.push(self.eos);
                    // A long text is learned in pieces of the context's length.
                    for piece in ids.chunks(ctx) {
                        push(piece.to_vec(), 1);
                    }
                }
                Some(p) => {
                    let prompt = self.prompt_ids(p)?;
                    if prompt.len() >= ctx {
                        facts.dropped += 1;
                        continue;
                    }
                    let mut ids = prompt.clone();
                    ids.extend(self.encode(&e.text, false)?);
                    ids.push(self.eos);
                    if ids.len() > ctx {
                        facts.truncated += 1;
                        ids.truncate(ctx);
                    }
                    push(ids, prompt.len());
                }
            }
        }
        if seqs.is_empty() {
            return Err(format!(
                "no training sequence fits lm.context = {ctx} ({} pairs' prompts fill it)",
                facts.dropped
            ));
        }
        let split = Split::new(seqs.len(), self.spec.val_fraction, self.spec.data_seed);
        facts.sequences = seqs.len();
        facts.tokens = seqs.iter().map(|s| s.ids.len()).sum();
        self.batches = Batches::new(split.train.clone(), self.spec.batch_size, self.spec.seed);
        self.split = split;
        self.seqs = seqs;
        self.facts = facts;
        Ok(())
    }

    fn encode(&self, text: &str, specials: bool) -> std::result::Result<Vec<u32>, String> {
        Ok(self
            .tokenizer
            .encode(text, specials)
            .map_err(|e| format!("tokenizing {text:?}: {e}"))?
            .get_ids()
            .to_vec())
    }

    /// A pair's prompt as the model reads it.
    fn prompt_ids(&self, prompt: &str) -> std::result::Result<Vec<u32>, String> {
        match (&self.template, self.spec.chat) {
            (Some(t), true) => {
                let text = t.render(&[Message::new("user", prompt)], true)?;
                self.encode(&text, false)
            }
            _ => self.encode(prompt, true),
        }
    }

    /// What to say about the corpus when the run starts.
    pub fn describe(&self) -> String {
        let f = &self.facts;
        let mut s = format!(
            "{} sequences ({} train, {} held out), {} tokens, vocabulary {}, {} parameters",
            f.sequences,
            self.split.train.len(),
            self.split.val.len(),
            f.tokens,
            self.tokenizer.get_vocab_size(true),
            self.config.param_count()
        );
        if f.truncated > 0 {
            s += &format!(
                "; {} completions cut at lm.context = {}",
                f.truncated, self.spec.context
            );
        }
        if f.dropped > 0 {
            s += &format!(
                "; {} pairs left out: the prompt alone fills lm.context = {}",
                f.dropped, self.spec.context
            );
        }
        s
    }

    /// Inputs `[b, t]`, targets `[b·t]` and their weights `[b·t]` (1 where learned) of rows.
    fn batch(&self, rows: &[usize]) -> Result<(Tensor, Tensor, Tensor, usize, usize)> {
        let t = rows
            .iter()
            .map(|&r| self.seqs[r].ids.len() - 1)
            .max()
            .unwrap_or(1);
        let b = rows.len();
        let (mut x, mut y, mut w) = (vec![self.pad; b * t], vec![0u32; b * t], vec![0f32; b * t]);
        let (mut tokens, mut learned) = (0, 0);
        for (i, &r) in rows.iter().enumerate() {
            let s = &self.seqs[r];
            let n = s.ids.len() - 1;
            tokens += n;
            for j in 0..n {
                x[i * t + j] = s.ids[j];
                y[i * t + j] = s.ids[j + 1];
                if j + 1 >= s.learn_from {
                    w[i * t + j] = 1.0;
                    learned += 1;
                }
            }
        }
        let dev = self.model.device();
        Ok((
            Tensor::from_vec(x, (b, t), dev)?,
            Tensor::from_vec(y, b * t, dev)?,
            Tensor::from_vec(w, b * t, dev)?,
            tokens,
            learned,
        ))
    }

    /// The summed cross-entropy of the learned tokens of `rows`, and their count. Right
    /// padding needs no mask beyond the causal one: no real token sees a later pad.
    /// The step from k micro-batches of sequences, and the coherence of their gradients
    /// (B_noise in sequences). Each part's gradient is its per-token mean; the step's is the
    /// token-weighted mean of those, the same per-token mean a plain step takes.
    #[allow(clippy::type_complexity)]
    fn coherence_step(
        &mut self,
        rows: &[usize],
    ) -> Result<(Tensor, Vec<Tensor>, usize, Vec<(String, f64)>)> {
        let t0 = std::time::Instant::now();
        let spec = self.coherence.as_ref().expect("coherence on").0;
        let n = rows.len();
        let chunk = n.div_ceil(spec.micro_batches.clamp(2, n));
        let parts: Vec<&[usize]> = rows.chunks(chunk).collect();
        let k = parts.len();
        let learned: usize = parts
            .iter()
            .map(|p| Ok(self.batch(p)?.4))
            .sum::<Result<usize>>()?
            .max(1);
        let names: Vec<String> = self.params.iter().map(|p| p.name.clone()).collect();
        let mut acc = Parts::new(names.len());
        let (mut mean, mut loss, mut tokens) = (None, 0.0, 0);
        for part in parts {
            let (part_loss, g, part_tokens, part_learned) = self.mean_loss_grads(part)?;
            loss += part_loss * part_learned as f64;
            tokens += part_tokens;
            mean = Some(weigh(mean, &g, part_learned as f64 / learned as f64)?);
            acc.add(g)?;
        }
        let g = acc.finish(n / k)?;
        let (moments, micro) = (g.moments, g.micro);
        let smoother = match &mut self.coherence {
            Some((_, s)) => s.get_or_insert_with(|| Smoother::new(names.len() + 1, spec.smoothing)),
            None => unreachable!("coherence on"),
        };
        let c = smoother.push(&moments);
        let adam = self.opt.hyper().name == crate::optim::OptimName::Adamw;
        // The hint scales the schedule's peak: the step's own rate decays to nothing.
        let peak = self.schedule.peak_lr;
        let mut extra = coherence::records(&c, &names, n, micro, peak, adam);
        extra.push((
            "probe_ms/coherence".into(),
            t0.elapsed().as_secs_f64() * 1e3,
        ));
        let loss = Tensor::new((loss / learned as f64) as f32, self.model.device())?;
        Ok((loss, mean.expect("parts"), tokens, extra))
    }

    /// The mean cross-entropy of the learned tokens of `rows`, its gradient (in the
    /// parameters' order), the tokens and the learned tokens: by the hand-written pass
    /// ([`super::tape`]) for f32 on the CPU, else by autograd.
    fn mean_loss_grads(&self, rows: &[usize]) -> Result<(f64, Vec<Tensor>, usize, usize)> {
        if !self.model.has_tape() {
            let (sum, tokens, learned) = self.loss_sum(rows)?;
            let loss = (sum / learned.max(1) as f64)?;
            let grads = autograd(&loss, &self.params)?;
            let loss = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            return Ok((loss, grads, tokens, learned));
        }
        let (x, y, w, tokens, learned) = self.batch(rows)?;
        let (b, t) = x.dims2()?;
        let positions: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let mask = super::model::causal_mask_values(&vec![vec![true; t]; b], 0, t);
        let (logits, tape) =
            self.model
                .forward_tape(&x.flatten_all()?.to_vec1()?, b, t, &positions, &mask, None)?;
        let scale = 1.0 / learned.max(1) as f32;
        let (sum, d_logits) =
            crate::nll::weighted_sum_with_grad(&logits, &y.to_vec1()?, &w.to_vec1()?, scale)?;
        drop(logits);
        let grads = tape.param_grads(&self.model, &d_logits, &self.params)?;
        Ok((sum / learned.max(1) as f64, grads, tokens, learned))
    }

    fn loss_sum(&self, rows: &[usize]) -> Result<(Tensor, usize, usize)> {
        let (x, y, w, tokens, learned) = self.batch(rows)?;
        let (b, t) = x.dims2()?;
        let pos = Tensor::arange(0u32, t as u32, x.device())?
            .unsqueeze(0)?
            .repeat((b, 1))?;
        let mask = causal_mask(&vec![vec![true; t]; b], 0, t, x.device())?;
        let hidden = self.model.forward(&x, &pos, &mask, None)?;
        let logits = self
            .model
            .logits(&hidden.reshape((b * t, ()))?)?
            .to_dtype(DType::F32)?;
        let nll = crate::nll::row_nll(&logits, &y)?;
        Ok(((nll * w)?.sum_all()?, tokens, learned))
    }

    /// The held-out pairs scored at each evaluation: the first `eval_problems` of them.
    fn held_out(&self) -> Vec<&Example> {
        self.split
            .val
            .iter()
            .map(|&r| &self.examples[self.seqs[r].example])
            .filter(|e| e.prompt.is_some())
            .take(self.spec.eval_problems)
            .collect()
    }

    /// Greedy completions of `prompts` (pairs' prompts, read as training reads them), at most
    /// `max_new` tokens each, in batches.
    pub fn answers(
        &self,
        prompts: &[&str],
        max_new: usize,
    ) -> std::result::Result<Vec<String>, String> {
        let ids = prompts
            .iter()
            .map(|p| self.prompt_ids(p))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(prompts.len());
        for chunk in ids.chunks(64) {
            // Answers stop where the context does (a cut answer is a wrong one).
            let longest = chunk.iter().map(Vec::len).max().unwrap_or(0);
            let sampling = Sampling {
                max_new_tokens: max_new.min(self.config.max_positions.saturating_sub(longest)),
                stop_tokens: vec![self.eos],
                ..Sampling::default()
            };
            for g in generate(&self.model, chunk, &sampling, self.pad, &mut |_, _| false)
                .map_err(|e| e.to_string())?
            {
                out.push(
                    self.tokenizer
                        .decode(&g.tokens, true)
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        Ok(out)
    }

    /// The most tokens a held-out completion has, with its end token.
    fn longest_answer(&self, held: &[&Example]) -> std::result::Result<usize, String> {
        let mut longest = 1;
        for e in held {
            longest = longest.max(self.encode(&e.text, false)?.len() + 1);
        }
        Ok(longest)
    }

    /// The held-out prompts scored at each evaluation and their greedy answers.
    pub fn held_out_answers(&self) -> std::result::Result<(Vec<String>, Vec<String>), String> {
        let held = self.held_out();
        let answers = self.answers_to(&held)?;
        Ok((
            held.iter().filter_map(|e| e.prompt.clone()).collect(),
            answers,
        ))
    }

    /// Greedy answers to the prompts of `held`.
    fn answers_to(&self, held: &[&Example]) -> std::result::Result<Vec<String>, String> {
        let prompts: Vec<&str> = held.iter().filter_map(|e| e.prompt.as_deref()).collect();
        self.answers(&prompts, self.longest_answer(held)?)
    }

    /// One prompt's greedy answer, generated alone.
    pub fn answer(&self, prompt: &str) -> std::result::Result<String, String> {
        let held = self.held_out();
        let mut a = self.answers(&[prompt], self.longest_answer(&held)?)?;
        Ok(a.remove(0))
    }

    /// The exact-match accuracy of the held-out answers (`None` without pairs).
    fn accuracy(&self) -> std::result::Result<Option<f64>, String> {
        let held = self.held_out();
        if held.is_empty() {
            return Ok(None);
        }
        let answers = self.answers_to(&held)?;
        let right = held
            .iter()
            .zip(&answers)
            .filter(|(e, a)| a.trim() == e.text.trim())
            .count();
        Ok(Some(right as f64 / held.len() as f64))
    }

    /// Writes the Hugging Face folder: config, weights, tokenizer files.
    fn write_model(&self, dir: &Path) -> Result<()> {
        write_folder(dir, &self.config, &self.vars, &self.side_files)
    }
}

/// Writes a trained model as a Hugging Face folder into `dir`: `config.json`,
/// `model.safetensors` and the side files (tokenizer, its config, the generation config).
pub(crate) fn write_folder(
    dir: &Path,
    config: &LmConfig,
    vars: &VarMap,
    side_files: &[(String, String)],
) -> Result<()> {
    let io = |p: &Path, e: std::io::Error| candle_core::Error::Msg(format!("{}: {e}", p.display()));
    let mut cfg = config.to_json();
    cfg["max_position_embeddings"] = config.max_positions.into();
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).expect("json"))
        .map_err(|e| io(&path, e))?;
    vars.save(dir.join("model.safetensors"))?;
    for (name, text) in side_files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// A string special token (`eos_token`, `pad_token`) of the side `tokenizer_config.json`.
pub(crate) fn side_token(files: &[(String, String)], key: &str) -> Option<String> {
    let (_, text) = files.iter().find(|(n, _)| n == "tokenizer_config.json")?;
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    crate::hf_json::special_token(&v, key)
}

pub(crate) type Prepared = (
    LmConfig,
    Tokenizer,
    Option<ChatTemplate>,
    Vec<(String, String)>,
    Option<HashMap<String, Tensor>>,
);

/// A fresh model: a tokenizer trained on the corpus, ChatML, and side files to match.
fn scratch(
    c: &LmConfig,
    examples: &[Example],
    chat: bool,
) -> std::result::Result<Prepared, String> {
    // The tokenizer learns from the texts as the model will read them (chat turns with
    // their role names), without the special tokens, which are never split.
    let template = ChatTemplate::new(CHATML, "the ChatML template", END_OF_TEXT, IM_END);
    let mut texts: Vec<String> = Vec::with_capacity(examples.len() * 2);
    for e in examples {
        match (&e.prompt, chat) {
            (Some(p), true) => texts.push(template.render(&[Message::new("user", p)], true)?),
            (Some(p), false) => texts.push(p.clone()),
            (None, _) => {}
        }
        texts.push(e.text.clone());
    }
    for t in &mut texts {
        for s in bpe::SPECIALS {
            *t = t.replace(s, "");
        }
    }
    let tokenizer = bpe::train(&texts, c.vocab_size)?;
    let mut config = c.clone();
    config.vocab_size = tokenizer.get_vocab_size(true);
    let eos = if chat { IM_END } else { END_OF_TEXT };
    let eos_id = tokenizer.token_to_id(eos).expect("a special token");
    let end_id = tokenizer.token_to_id(END_OF_TEXT).expect("a special token");
    config.bos_token_id = Some(end_id);
    config.eos_token_ids = if chat {
        vec![eos_id, end_id]
    } else {
        vec![end_id]
    };
    let added: serde_json::Map<String, serde_json::Value> = bpe::SPECIALS
        .iter()
        .map(|s| {
            let id = tokenizer.token_to_id(s).expect("a special token");
            (
                id.to_string(),
                serde_json::json!({"content": s, "lstrip": false, "rstrip": false,
                    "normalized": false, "single_word": false, "special": true}),
            )
        })
        .collect();
    let tok_config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": END_OF_TEXT, "eos_token": eos, "pad_token": END_OF_TEXT,
        "unk_token": null, "model_max_length": c.max_positions,
        "clean_up_tokenization_spaces": false, "added_tokens_decoder": added,
        "chat_template": CHATML,
    });
    let generation = serde_json::json!({
        "bos_token_id": end_id, "eos_token_id": config.eos_token_ids,
        "pad_token_id": end_id, "do_sample": false,
    });
    let side = vec![
        (
            "tokenizer.json".to_string(),
            tokenizer.to_string(true).map_err(|e| e.to_string())?,
        ),
        (
            "tokenizer_config.json".into(),
            serde_json::to_string_pretty(&tok_config).expect("json"),
        ),
        (
            "generation_config.json".into(),
            serde_json::to_string_pretty(&generation).expect("json"),
        ),
    ];
    Ok((config, tokenizer, Some(template), side, None))
}

/// A Hugging Face folder to go on training: its weights and its tokenizer files, kept as
/// they are.
pub(crate) fn from_folder(dir: &Path) -> std::result::Result<Prepared, String> {
    let config = super::read_config(dir)?;
    let tok_path = dir.join("tokenizer.json");
    let tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| {
        format!(
            "{}: {e} (descent trains from a folder with its tokenizer.json)",
            tok_path.display()
        )
    })?;
    let template = ChatTemplate::from_folder(dir)?;
    let mut side = Vec::new();
    for name in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "chat_template.jinja",
        "special_tokens_map.json",
    ] {
        if let Ok(text) = std::fs::read_to_string(dir.join(name)) {
            side.push((name.to_string(), text));
        }
    }
    let mut weights = HashMap::new();
    for f in crate::weights::files(dir, "model")? {
        weights.extend(
            candle_core::safetensors::load(&f, &Device::Cpu)
                .map_err(|e| format!("{}: {e}", f.display()))?,
        );
    }
    Ok((config, tokenizer, template, side, Some(weights)))
}

impl Engine for PretrainTrainer {
    fn step(&self) -> u64 {
        self.step
    }

    fn batch_size(&self) -> usize {
        self.batches.batch_size()
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn schedule_mut(&mut self) -> &mut Schedule {
        &mut self.schedule
    }

    fn train_step(&mut self, lr: f64) -> Result<StepMetrics> {
        let rows = self.batches.batch(self.step);
        let due = self
            .coherence
            .as_ref()
            .is_some_and(|(c, _)| c.every > 0 && (self.step + 1).is_multiple_of(c.every));
        let (loss, grads, tokens, extra) = if due && rows.len() >= 2 {
            self.coherence_step(&rows)?
        } else {
            let (loss, grads, tokens, _) = self.mean_loss_grads(&rows)?;
            let loss = Tensor::new(loss as f32, self.model.device())?;
            (loss, grads, tokens, Vec::new())
        };
        let mut m = apply_gradients(
            &mut self.opt,
            &self.params,
            &loss,
            &grads,
            lr,
            self.spec.clip_grad_norm,
            self.step,
        )?;
        m.tokens = Some(tokens as u64);
        m.extra = extra;
        self.step = m.step;
        Ok(m)
    }

    fn set_probes(&mut self, spec: ProbeSpec) -> bool {
        let keep = self
            .coherence
            .take()
            .filter(|(c, _)| Some(*c) == spec.coherence);
        self.coherence = keep.or(spec.coherence.map(|c| (c, None)));
        true
    }

    fn evaluate(&mut self) -> Result<Option<EvalMetrics>> {
        if self.split.val.is_empty() {
            return Ok(None);
        }
        let (mut sum, mut learned) = (0.0, 0);
        for rows in self.split.val.chunks(EVAL_CHUNK) {
            let (s, _, n) = self.loss_sum(rows)?;
            sum += s.to_scalar::<f32>()? as f64;
            learned += n;
        }
        let accuracy = self.accuracy().map_err(candle_core::Error::Msg)?;
        Ok(Some(EvalMetrics {
            loss: Some(sum / learned.max(1) as f64),
            accuracy,
            examples: self.split.val.len(),
        }))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.write_model(dir)?;
        let state = self.opt.state_tensors(&self.params)?;
        candle_core::safetensors::save(&state, dir.join("optimizer.safetensors"))
    }

    fn load(&mut self, dir: &Path, step: u64) -> Result<()> {
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
        crate::nn::load_params(&self.params, &weights)?;
        let state =
            candle_core::safetensors::load(dir.join("optimizer.safetensors"), &Device::Cpu)?;
        self.opt.load_state(&self.params, &state)?;
        // The checkpoint's tokenizer is the one its weights learned with.
        let tok = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&tok)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", tok.display())))?;
        let ours = self.side_files.iter().find(|(n, _)| n == "tokenizer.json");
        if ours.is_none_or(|(_, t)| *t != text) {
            self.tokenizer = text
                .parse()
                .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", tok.display())))?;
            self.side_files.retain(|(n, _)| n != "tokenizer.json");
            self.side_files.push(("tokenizer.json".into(), text));
            self.encode_corpus().map_err(candle_core::Error::Msg)?;
        }
        self.step = step;
        Ok(())
    }

    fn export(&self, run_dir: &Path) -> Result<Option<String>> {
        let dir = run_dir.join(crate::diffusion::export::MODEL_DIR);
        crate::folder::replace_atomically(&dir, |tmp| {
            self.write_model(tmp).map_err(|e| e.to_string())
        })
        .map_err(candle_core::Error::Msg)?;
        Ok(Some(format!("Hugging Face folder {}", dir.display())))
    }

    fn describe(&self) -> Option<String> {
        Some(PretrainTrainer::describe(self))
    }
}
