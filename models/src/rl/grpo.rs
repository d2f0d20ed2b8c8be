//! `kind = "grpo"`: GRPO fine-tuning of a language model on a task with a verifiable reward,
//! with TRL 1.16's names, defaults and semantics, and D³S down-sampling of rollouts and
//! tokens. One step of a run is one generation batch and its μ optimisation passes (TRL
//! counts each pass as a step).

use super::loss::{LossInputs, LossSpec, grpo_loss};
use super::rewards::Reward;
use super::select::{self, Schedule as Frac};
use super::tasks::Problem;
use crate::data::{Batches, Split};
use crate::lm::chat::{ChatTemplate, Message};
use crate::lm::config::LmConfig;
use crate::lm::generate::{Generated, Sampling, generate};
use crate::lm::model::{Transformer, causal_mask};
use crate::lm::pretrain::{
    from_folder, largest_weight, side_token, values_per_token, write_folder,
};
use crate::lm::tape::Tape;
use crate::memory::{self, Footprint};
use crate::nn::Param;
use crate::optim::schedule::Schedule;
use crate::optim::{Hyper, Optimizer};
use crate::train::{Engine, EvalMetrics, LogLine, StepMetrics, apply_gradients, autograd};
use candle_core::{D, DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokenizers::Tokenizer;

/// How rewards are scaled into advantages (TRL's `scale_rewards`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// (r − group mean) / (group std + 1e-4).
    #[default]
    Group,
    /// (r − group mean) / (batch std + 1e-4).
    Batch,
    /// r − group mean.
    None,
}

/// D³S's sample level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleLevel {
    /// Every rollout is learned from.
    #[default]
    Off,
    /// Within each group, the subset of its rollouts with the largest Var(A) (D³S-I).
    Intra,
    /// Across the batch, the subset with the largest Var(A).
    Cross,
}

#[derive(Clone, Debug)]
pub struct D3s {
    pub sample: SampleLevel,
    /// The kept fraction of rollouts (of each group, or of the batch).
    pub sample_frac: Frac,
    /// The kept fraction of tokens by |A|·H; `None`: token selection off.
    pub token_frac: Option<Frac>,
    /// Recompute the advantages on the kept rollouts (PODS) instead of keeping those of the
    /// full group (D³S).
    pub recompute_advantages: bool,
}

impl Default for D3s {
    fn default() -> Self {
        D3s {
            sample: SampleLevel::Off,
            sample_frac: Frac::constant(1.0),
            token_frac: None,
            recompute_advantages: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GrpoSpec {
    pub seed: u64,
    /// Seeds the held-out split (and, in the caller, a generated task): the pretraining's
    /// seed keeps its held-out problems held out.
    pub data_seed: u64,
    /// Completions per step (TRL's batch counts completions, not prompts).
    pub batch_size: usize,
    pub hyper: Hyper,
    pub clip_grad_norm: Option<f64>,
    pub schedule: Schedule,
    /// The Hugging Face folder the policy starts from (and the reference is).
    pub base: PathBuf,
    /// G: completions per prompt.
    pub num_generations: usize,
    pub max_completion_length: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
    pub min_p: f64,
    /// μ: optimisation passes per generation.
    pub num_iterations: usize,
    pub loss: LossSpec,
    pub scale_rewards: Scale,
    pub mask_truncated_completions: bool,
    pub rewards: Vec<Reward>,
    /// Prompts through the model's chat template as a user turn (when it has one).
    pub chat: bool,
    pub val_fraction: f64,
    /// Held-out prompts answered greedily at each evaluation.
    pub eval_problems: usize,
    /// Every how many steps the rollouts are returned for the log.
    pub log_completions_every: u64,
    /// Completions per forward and backward pass of the update (0: all kept at once); the
    /// gradients of the micro-batches are summed before the one optimizer step.
    pub micro_batch_size: usize,
    pub d3s: D3s,
}

impl GrpoSpec {
    /// The memory a run needs, before anything is built.
    pub fn footprint(&self, problems: &[Problem]) -> std::result::Result<Footprint, String> {
        let c = crate::lm::read_config(&self.base)?;
        let prompt_bytes: usize = problems.iter().map(|p| p.prompt.len()).sum();
        let seq = (c.max_positions).min(512 + self.max_completion_length);
        let per_token = values_per_token(&c, seq);
        let tokens = (self.batch_size * seq) as u64;
        let step = tokens.saturating_mul(per_token).saturating_mul(2 * 4);
        // Generation keeps a KV cache and one step's activations per row.
        let cache = (self.batch_size * seq * 2 * c.layers * c.kv_heads * c.head_dim) as u64 * 4;
        let mut fp = memory::trained_parts(
            c.param_count(),
            self.hyper.name,
            (
                format!("prompts ({} problems)", problems.len()),
                prompt_bytes as u64 * 5,
            ),
            (
                format!("step activations ({} × {seq} tokens)", self.batch_size),
                step,
            ),
            (
                format!("generation KV cache ({} rows)", self.batch_size),
                cache,
            ),
        );
        if self.loss.beta != 0.0 {
            fp.add(
                "reference model (β ≠ 0)",
                c.param_count() * 4,
                memory::Place::Device,
                memory::Phase::Always,
            );
        }
        fp.largest = Some(largest_weight(&c));
        Ok(fp)
    }
}

/// One rollout.
struct Rollout {
    /// Index into the problems.
    problem: usize,
    prompt: Vec<u32>,
    out: Generated,
    text: String,
    /// Each reward function's score (NaN: none or failed).
    scores: Vec<f64>,
    errors: Vec<Option<String>>,
    reward: f64,
    adv: f64,
}

pub struct GrpoTrainer {
    spec: GrpoSpec,
    pub config: LmConfig,
    pub model: Transformer,
    reference: Option<Transformer>,
    vars: VarMap,
    params: Vec<Param>,
    opt: Optimizer,
    pub schedule: Schedule,
    step: u64,
    problems: Vec<Problem>,
    /// Each problem's prompt tokens (`None`: too long for the model's context).
    prompt_ids: Vec<Option<Vec<u32>>>,
    pub tokenizer: Tokenizer,
    side_files: Vec<(String, String)>,
    stop: Vec<u32>,
    pad: u32,
    split: Split,
    batches: Batches,
    held_out: Vec<usize>,
    /// Prompts left out because they do not fit the context with the completion budget.
    too_long: usize,
    /// Tokens of every rollout so far (prompt and completion), TRL's `num_tokens`.
    num_tokens: u64,
}

/// Advantages from rewards in groups of `g` (TRL's `std` is the unbiased one), and each
/// group's std.
pub fn advantages(rewards: &[f64], g: usize, scale: Scale) -> (Vec<f64>, Vec<f64>) {
    let std = |x: &[f64]| {
        let n = x.len() as f64;
        if x.len() < 2 {
            return 0.0;
        }
        let m = x.iter().sum::<f64>() / n;
        (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    let batch_std = std(rewards);
    let mut adv = Vec::with_capacity(rewards.len());
    let mut stds = Vec::new();
    for group in rewards.chunks(g) {
        let mean = group.iter().sum::<f64>() / group.len() as f64;
        let s = std(group);
        stds.push(s);
        for &r in group {
            let a = match scale {
                Scale::Group => (r - mean) / (s + 1e-4),
                Scale::Batch => (r - mean) / (batch_std + 1e-4),
                Scale::None => r - mean,
            };
            adv.push(if a.is_finite() { a } else { 0.0 });
        }
    }
    (adv, stds)
}

fn min_mean_max(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, mean, max)
}

impl GrpoTrainer {
    pub fn new(
        problems: Vec<Problem>,
        spec: GrpoSpec,
        device: Device,
    ) -> std::result::Result<GrpoTrainer, String> {
        if problems.is_empty() {
            return Err("the task has no problems".into());
        }
        let g = spec.num_generations;
        if g < 2 || !spec.batch_size.is_multiple_of(g) {
            return Err(format!(
                "data.batch_size = {} must be a multiple of grpo.num_generations = {g} (≥ 2)",
                spec.batch_size
            ));
        }
        let (config, tokenizer, template, side_files, weights) = from_folder(&spec.base)?;
        let eos = side_token(&side_files, "eos_token").and_then(|t| tokenizer.token_to_id(&t));
        let mut stop = config.eos_token_ids.clone();
        stop.extend(eos);
        stop.sort_unstable();
        stop.dedup();
        if stop.is_empty() {
            return Err(format!(
                "{}: no end-of-sequence token (config.json eos_token_id or tokenizer_config.json \
                 eos_token); completions could not stop",
                spec.base.display()
            ));
        }
        let pad = side_token(&side_files, "pad_token")
            .and_then(|t| tokenizer.token_to_id(&t))
            .unwrap_or(stop[0]);
        let (model, vars) = crate::lm::init(&config, &device, spec.seed)?;
        let params = crate::lm::params(&vars);
        let weights = weights.ok_or("the base folder has no weights")?;
        crate::nn::load_params(&params, &weights)
            .map_err(|e| format!("{}: {e}", spec.base.display()))?;
        let reference = if spec.loss.beta != 0.0 {
            Some(crate::lm::open(&spec.base, DType::F32, &device)?)
        } else {
            None
        };
        let template = if spec.chat { template } else { None };
        let budget = config
            .max_positions
            .saturating_sub(spec.max_completion_length);
        let mut too_long = 0;
        let mut prompt_ids = Vec::with_capacity(problems.len());
        for p in &problems {
            let ids = prompt_tokens(&tokenizer, template.as_ref(), &p.prompt)?;
            if ids.is_empty() || ids.len() > budget {
                too_long += 1;
                prompt_ids.push(None);
            } else {
                prompt_ids.push(Some(ids));
            }
        }
        // The split is drawn over all problems (as pretraining draws it), then the prompts
        // that do not fit are left out of both sides.
        let split = Split::new(problems.len(), spec.val_fraction, spec.data_seed);
        let fits = |v: &Vec<usize>| -> Vec<usize> {
            v.iter()
                .copied()
                .filter(|&i| prompt_ids[i].is_some())
                .collect()
        };
        let train = fits(&split.train);
        if train.is_empty() {
            return Err(format!(
                "no training prompt fits the model's {} positions with \
                 grpo.max_completion_length = {} ({too_long} of {} are too long)",
                config.max_positions,
                spec.max_completion_length,
                problems.len()
            ));
        }
        let mut held_out = fits(&split.val);
        held_out.truncate(spec.eval_problems);
        let batches = Batches::new(train, spec.batch_size / g, spec.seed);
        let opt = Optimizer::new(spec.hyper, &params);
        Ok(GrpoTrainer {
            schedule: spec.schedule.clone(),
            config,
            model,
            reference,
            vars,
            params,
            opt,
            step: 0,
            problems,
            prompt_ids,
            tokenizer,
            side_files,
            stop,
            pad,
            split,
            batches,
            held_out,
            too_long,
            num_tokens: 0,
            spec,
        })
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} problems ({} train, {} held out, {} scored at each evaluation), base {}, \
             {} parameters, {} prompts × {} completions per step, {}",
            self.problems.len(),
            self.split.train.len(),
            self.split.val.len(),
            self.held_out.len(),
            self.spec.base.display(),
            self.config.param_count(),
            self.spec.batch_size / self.spec.num_generations,
            self.spec.num_generations,
            if self.reference.is_some() {
                "a frozen reference for the KL penalty"
            } else {
                "no reference model (beta = 0)"
            }
        );
        if self.too_long > 0 {
            s += &format!(
                "; {} prompts left out: with grpo.max_completion_length = {} they exceed the \
                 model's {} positions",
                self.too_long, self.spec.max_completion_length, self.config.max_positions
            );
        }
        s
    }

    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special)
            .map_err(|e| candle_core::Error::Msg(format!("decoding: {e}")))
    }

    /// Greedy answers to problems `rows`, in chunks.
    pub fn greedy(&self, rows: &[usize]) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(64) {
            let prompts: Vec<Vec<u32>> = chunk
                .iter()
                .map(|&i| self.prompt_ids[i].clone().unwrap_or_default())
                .collect();
            let s = Sampling {
                max_new_tokens: self.spec.max_completion_length,
                stop_tokens: self.stop.clone(),
                ..Sampling::default()
            };
            for g in generate(&self.model, &prompts, &s, self.pad, &mut |_, _| false)? {
                out.push(self.decode(&g.tokens, true)?);
            }
        }
        Ok(out)
    }

    /// Greedy held-out accuracy (the fraction whose accuracy reward is 1).
    pub fn held_out_accuracy(&self) -> Result<Option<f64>> {
        if self.held_out.is_empty() {
            return Ok(None);
        }
        let answers = self.greedy(&self.held_out)?;
        let right = self
            .held_out
            .iter()
            .zip(&answers)
            .filter(|(i, a)| super::rewards::accuracy(&self.problems[**i], a) >= 1.0)
            .count();
        Ok(Some(right as f64 / self.held_out.len() as f64))
    }

    /// Samples G completions of each prompt of this step and scores them.
    fn rollouts(&self, rows: &[usize]) -> Result<Vec<Rollout>> {
        let g = self.spec.num_generations;
        let mut prompts = Vec::with_capacity(rows.len() * g);
        let mut which = Vec::with_capacity(rows.len() * g);
        for &i in rows {
            let ids = self.prompt_ids[i]
                .clone()
                .expect("only prompts that fit are drawn");
            for _ in 0..g {
                prompts.push(ids.clone());
                which.push(i);
            }
        }
        let s = Sampling {
            temperature: self.spec.temperature,
            top_k: self.spec.top_k,
            top_p: self.spec.top_p,
            min_p: self.spec.min_p,
            max_new_tokens: self.spec.max_completion_length,
            stop_tokens: self.stop.clone(),
            // A pure function of (seed, step): a resumed run draws what it would have.
            seed: self
                .spec
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((self.step + 1).wrapping_mul(1 << 20)),
        };
        let gens = generate(&self.model, &prompts, &s, self.pad, &mut |_, _| false)?;
        let mut all = Vec::with_capacity(gens.len());
        for ((prompt, problem), out) in prompts.into_iter().zip(which).zip(gens) {
            let text = self.decode(&out.tokens, true)?;
            all.push(Rollout {
                problem,
                prompt,
                out,
                text,
                scores: Vec::new(),
                errors: Vec::new(),
                reward: 0.0,
                adv: 0.0,
            });
        }
        let problems: Vec<&Problem> = all.iter().map(|r| &self.problems[r.problem]).collect();
        let texts: Vec<String> = all.iter().map(|r| r.text.clone()).collect();
        let per_fn: Vec<Vec<super::rewards::Score>> = self
            .spec
            .rewards
            .iter()
            .map(|f| f.score(&problems, &texts))
            .collect();
        for (i, r) in all.iter_mut().enumerate() {
            for scores in &per_fn {
                match &scores[i] {
                    Ok(Some(v)) => {
                        r.scores.push(*v);
                        r.errors.push(None);
                    }
                    Ok(None) => {
                        r.scores.push(f64::NAN);
                        r.errors.push(None);
                    }
                    Err(e) => {
                        r.scores.push(f64::NAN);
                        r.errors.push(Some(e.clone()));
                    }
                }
            }
            // TRL's nansum: a function with no score adds nothing.
            r.reward = r
                .scores
                .iter()
                .zip(&self.spec.rewards)
                .filter(|(v, _)| v.is_finite())
                .map(|(v, f)| v * f.weight)
                .sum();
        }
        Ok(all)
    }

    /// The prompts and completions of `rows` as one left-padded batch: completions at least
    /// `width` positions wide (a micro-batch is as wide as its batch).
    fn sequences(&self, rows: &[&Rollout], width: usize) -> Sequences {
        let p = rows.iter().map(|r| r.prompt.len()).max().unwrap_or(1);
        let t = rows
            .iter()
            .map(|r| r.out.tokens.len())
            .max()
            .unwrap_or(1)
            .max(width)
            .max(1);
        let len = p + t - 1;
        let n = rows.len();
        let mut s = Sequences {
            n,
            p,
            t,
            len,
            ids: Vec::with_capacity(n * len),
            positions: Vec::with_capacity(n * len),
            valid: Vec::with_capacity(n),
            targets: Vec::with_capacity(n * t),
            mask: Vec::with_capacity(n),
        };
        for r in rows {
            let lead = p - r.prompt.len();
            let c = &r.out.tokens;
            let mut v = Vec::with_capacity(len);
            for j in 0..len {
                let (id, ok) = if j < lead {
                    (self.pad, false)
                } else if j < p {
                    (r.prompt[j - lead], true)
                } else if j - p < c.len() {
                    (c[j - p], true)
                } else {
                    (self.pad, false)
                };
                s.ids.push(id);
                s.positions.push(j.saturating_sub(lead) as u32);
                v.push(ok);
            }
            s.valid.push(v);
            s.targets
                .extend((0..t).map(|j| c.get(j).copied().unwrap_or(self.pad)));
            s.mask.push(
                (0..t)
                    .map(|j| if j < c.len() { 1.0 } else { 0.0 })
                    .collect(),
            );
        }
        s
    }

    /// log π(o_t) at the sampling temperature for the completions of `rows` under `model`:
    /// `[n, t]`, and the completion mask `[n, t]`.
    /// `width` completion positions at least (a micro-batch is as wide as its batch).
    fn logprobs(
        &self,
        model: &Transformer,
        rows: &[&Rollout],
        width: usize,
    ) -> Result<(Tensor, Vec<Vec<f32>>)> {
        let dev = model.device().clone();
        let s = self.sequences(rows, width);
        let (n, p, t, len) = (s.n, s.p, s.t, s.len);
        let ids = Tensor::from_vec(s.ids, (n, len), &dev)?;
        let pos = Tensor::from_vec(s.positions, (n, len), &dev)?;
        let attn = causal_mask(&s.valid, 0, len, &dev)?;
        let hidden = model
            .forward(&ids, &pos, &attn, None)?
            .narrow(1, p - 1, t)?;
        let logits = (model.logits(&hidden)?.to_dtype(DType::F32)? / self.spec.temperature)?;
        let vocab = logits.dim(D::Minus1)?;
        let targets = Tensor::from_vec(s.targets, n * t, &dev)?;
        let nll = crate::nll::row_nll(&logits.reshape((n * t, vocab))?, &targets)?;
        Ok((nll.neg()?.reshape((n, t))?, s.mask))
    }

    /// [`Self::logprobs`] of the policy by the hand-written pass (`lm::tape`): the values
    /// as a leaf for the loss to be built on, and what turns the loss's gradient in them
    /// into the weights' gradients.
    fn tape_logprobs(&self, rows: &[&Rollout], width: usize) -> Result<TapeLogprobs> {
        let s = self.sequences(rows, width);
        let (n, p, t, len) = (s.n, s.p, s.t, s.len);
        // The completions' rows: position p − 1 + j of each sequence predicts token j.
        let picked: Vec<usize> = (0..n)
            .flat_map(|r| (0..t).map(move |j| r * len + p - 1 + j))
            .collect();
        let mask = crate::lm::model::causal_mask_values(&s.valid, 0, len);
        let (mut z, tape) =
            self.model
                .forward_tape(&s.ids, n, len, &s.positions, &mask, Some(picked))?;
        let temperature = self.spec.temperature as f32;
        z.iter_mut().for_each(|v| *v /= temperature);
        let lp: Vec<f32> = crate::nll::row_values(&z, &s.targets)?
            .into_iter()
            .map(|v| -v)
            .collect();
        let lp = Var::from_tensor(&Tensor::from_vec(lp, (n, t), self.model.device())?)?;
        Ok(TapeLogprobs {
            lp,
            tape,
            z,
            targets: s.targets,
            temperature,
        })
    }

    /// The rollouts of a step for the viewer: each group's prompt and completions token by
    /// token, with rewards, advantages and what was kept.
    fn log_line(
        &self,
        rollouts: &[Rollout],
        kept: &[bool],
        token_scores: &[Vec<f64>],
        token_kept: &[Vec<bool>],
    ) -> Result<serde_json::Value> {
        let g = self.spec.num_generations;
        let mut groups = Vec::new();
        for (q, chunk) in rollouts.chunks(g).enumerate() {
            let p = &self.problems[chunk[0].problem];
            let mut completions = Vec::new();
            for (j, r) in chunk.iter().enumerate() {
                let i = q * g + j;
                let tokens: Vec<String> = r
                    .out
                    .tokens
                    .iter()
                    .map(|&t| self.decode(&[t], false))
                    .collect::<Result<_>>()?;
                let rewards: serde_json::Map<String, serde_json::Value> = self
                    .spec
                    .rewards
                    .iter()
                    .zip(&r.scores)
                    .map(|(f, v)| {
                        (
                            f.name.clone(),
                            if v.is_finite() { json!(v) } else { json!(null) },
                        )
                    })
                    .collect();
                let errors: Vec<String> = r.errors.iter().flatten().cloned().collect();
                completions.push(json!({
                    "text": r.text,
                    "tokens": tokens,
                    "entropy": r.out.entropies,
                    "reward": r.reward,
                    "rewards": rewards,
                    "errors": errors,
                    "advantage": r.adv,
                    "kept": kept[i],
                    "truncated": !r.out.stopped,
                    // As f32: the log holds every token of every completion.
                    "score": token_scores[i].iter().map(|&v| v as f32).collect::<Vec<_>>(),
                    "kept_tokens": token_kept[i],
                }));
            }
            groups.push(json!({
                "prompt": p.prompt,
                "answer": p.answer_text(),
                "completions": completions,
            }));
        }
        Ok(serde_json::Value::Array(groups))
    }
}

/// A batch of prompts and completions, left-padded: `n` sequences of `len` = `p + t − 1`
/// tokens, the longest prompt `p` and completion `t` long.
struct Sequences {
    n: usize,
    p: usize,
    t: usize,
    len: usize,
    ids: Vec<u32>,
    positions: Vec<u32>,
    valid: Vec<Vec<bool>>,
    /// `[n, t]`: each completion's tokens, padded.
    targets: Vec<u32>,
    /// 1 on completion tokens, per sequence.
    mask: Vec<Vec<f32>>,
}

/// The policy's log-probabilities from the hand-written pass.
struct TapeLogprobs {
    /// `[n, t]`, a leaf: the loss is built on it, and its gradient read back.
    lp: Var,
    tape: Tape,
    /// The completions' logits over the temperature, `[n·t, vocab]`.
    z: Vec<f32>,
    targets: Vec<u32>,
    temperature: f32,
}

impl TapeLogprobs {
    /// The weights' gradients of `loss` (built on `lp`), in `params`' order: ∂L/∂z of each
    /// row is −∂L/∂lp · (softmax(z) − one-hot), and z = logits / T.
    fn grads(&self, loss: &Tensor, model: &Transformer, params: &[Param]) -> Result<Vec<Tensor>> {
        let store = loss.backward()?;
        let Some(g_lp) = store.get(self.lp.as_tensor()) else {
            return params.iter().map(|p| p.var.zeros_like()).collect();
        };
        let minus: Vec<f32> = g_lp
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|g| -g)
            .collect();
        let (_, mut d) = crate::nll::weighted_sum_with_grad(&self.z, &self.targets, &minus, 1.0)?;
        d.iter_mut().for_each(|v| *v /= self.temperature);
        self.tape.param_grads(model, &d, params)
    }
}

/// A prompt's tokens as the policy reads it: through the chat template when there is one.
fn prompt_tokens(
    tok: &Tokenizer,
    template: Option<&ChatTemplate>,
    prompt: &str,
) -> std::result::Result<Vec<u32>, String> {
    let (text, specials) = match template {
        Some(t) => (t.render(&[Message::new("user", prompt)], true)?, false),
        None => (prompt.to_string(), true),
    };
    Ok(tok
        .encode(text.as_str(), specials)
        .map_err(|e| format!("tokenizing {prompt:?}: {e}"))?
        .get_ids()
        .to_vec())
}

impl Engine for GrpoTrainer {
    fn step(&self) -> u64 {
        self.step
    }

    fn batch_size(&self) -> usize {
        self.spec.batch_size
    }

    fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn schedule_mut(&mut self) -> &mut Schedule {
        &mut self.schedule
    }

    fn train_step(&mut self, lr: f64) -> Result<StepMetrics> {
        let t0 = Instant::now();
        let g = self.spec.num_generations;
        let rows = self.batches.batch(self.step);
        let mut rollouts = self.rollouts(&rows)?;
        let gen_secs = t0.elapsed().as_secs_f64();
        let n = rollouts.len();
        let rewards: Vec<f64> = rollouts.iter().map(|r| r.reward).collect();
        let (adv, stds) = advantages(&rewards, g, self.spec.scale_rewards);
        for (r, a) in rollouts.iter_mut().zip(&adv) {
            r.adv = *a;
        }
        // D³S, sample level.
        let total = self.schedule.total_steps;
        let d = &self.spec.d3s;
        let frac_s = d.sample_frac.at(self.step, total).clamp(0.0, 1.0);
        let kept_idx: Vec<usize> = match d.sample {
            SampleLevel::Off => (0..n).collect(),
            SampleLevel::Intra => {
                let k = ((g as f64 * frac_s).ceil() as usize).clamp(1, g);
                select::intra_group(&adv, g, k)
            }
            SampleLevel::Cross => {
                let k = ((n as f64 * frac_s).ceil() as usize).clamp(1, n);
                select::max_variance_subset(&adv, k)
            }
        };
        let mut kept = vec![false; n];
        kept_idx.iter().for_each(|&i| kept[i] = true);
        let var_before = select::variance(&adv);
        if d.recompute_advantages && d.sample != SampleLevel::Off {
            // PODS: the advantages of the kept rollouts among themselves, group by group.
            for q in 0..n / g {
                let members: Vec<usize> = (q * g..(q + 1) * g).filter(|&i| kept[i]).collect();
                let r: Vec<f64> = members.iter().map(|&i| rewards[i]).collect();
                let (a, _) = advantages(&r, r.len().max(1), self.spec.scale_rewards);
                for (&i, a) in members.iter().zip(a) {
                    rollouts[i].adv = a;
                }
            }
        }
        let kept_adv: Vec<f64> = kept_idx.iter().map(|&i| rollouts[i].adv).collect();
        let var_after = select::variance(&kept_adv);
        // D³S, token level: |A|·H over the kept rollouts' tokens.
        let scores: Vec<Vec<f64>> = rollouts
            .iter()
            .map(|r| {
                r.out
                    .entropies
                    .iter()
                    .map(|&h| r.adv.abs() * h as f64)
                    .collect()
            })
            .collect();
        let frac_t = d.token_frac.map(|f| f.at(self.step, total).clamp(0.0, 1.0));
        let mut token_kept: Vec<Vec<bool>> = scores.iter().map(|s| vec![true; s.len()]).collect();
        if let Some(f) = frac_t {
            let kept_scores: Vec<Vec<f64>> = kept_idx.iter().map(|&i| scores[i].clone()).collect();
            for (&i, m) in kept_idx.iter().zip(select::token_mask(&kept_scores, f)) {
                token_kept[i] = m;
            }
        }
        // The training batch: the kept rollouts.
        let batch: Vec<&Rollout> = kept_idx.iter().map(|&i| &rollouts[i]).collect();
        let dev = self.model.device().clone();
        let t = batch
            .iter()
            .map(|r| r.out.tokens.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let k = batch.len();
        let mut mask = vec![0f32; k * t];
        let mut keep = vec![0f32; k * t];
        for (b, r) in batch.iter().enumerate() {
            let on = !self.spec.mask_truncated_completions || r.out.stopped;
            for j in 0..r.out.tokens.len() {
                mask[b * t + j] = if on { 1.0 } else { 0.0 };
                keep[b * t + j] = if token_kept[kept_idx[b]][j] { 1.0 } else { 0.0 };
            }
        }
        let mask_host = mask.clone();
        let mask = Tensor::from_vec(mask, (k, t), &dev)?;
        let keep_t = Tensor::from_vec(keep.clone(), (k, t), &dev)?;
        let adv_t = Tensor::from_vec(
            batch.iter().map(|r| r.adv as f32).collect::<Vec<_>>(),
            k,
            &dev,
        )?;
        // Micro-batches of the kept rollouts: each one's forward and backward pass, the
        // gradients summed, then one update (TRL's gradient accumulation, with the whole
        // batch's normaliser so the sum is the batch's gradient).
        let mb = match self.spec.micro_batch_size {
            0 => k,
            m => m.min(k),
        };
        let chunks: Vec<(usize, usize)> = (0..k)
            .step_by(mb)
            .map(|r0| (r0, (r0 + mb).min(k)))
            .collect();
        let eff_mask = match (frac_t, self.spec.loss.normalizer) {
            (Some(_), super::loss::Normalizer::Kept) => (&mask * &keep_t)?,
            _ => mask.clone(),
        };
        let totals = Some((k, eff_mask.sum_all()?.to_scalar::<f32>()? as f64));
        let rows_of = |x: &Tensor, (r0, r1): (usize, usize)| x.narrow(0, r0, r1 - r0);
        let ref_lp: Option<Vec<Tensor>> = match &self.reference {
            Some(m) => Some(
                chunks
                    .iter()
                    .map(|&(r0, r1)| Ok(self.logprobs(m, &batch[r0..r1], t)?.0.detach()))
                    .collect::<Result<_>>()?,
            ),
            None => None,
        };
        let train_t0 = Instant::now();
        let mut old_lp: Vec<Tensor> = Vec::new();
        let mut last = None;
        let mut clip = (0.0, 0.0, 0.0);
        let mut kl = None;
        // Each micro-batch's share of the completion tokens (the clip and KL means are
        // batch means).
        let all_tokens = mask_host.iter().sum::<f32>().max(1.0) as f64;
        let shares: Vec<f64> = chunks
            .iter()
            .map(|&(r0, r1)| mask_host[r0 * t..r1 * t].iter().sum::<f32>() as f64 / all_tokens)
            .collect();
        for pass in 0..self.spec.num_iterations.max(1) {
            let mut loss_sum: Option<Tensor> = None;
            let mut grads: Option<Vec<Tensor>> = None;
            let (mut c_low, mut c_high, mut c_region, mut kl_sum) = (0.0, 0.0, 0.0, None);
            for (ci, &c) in chunks.iter().enumerate() {
                let taped = match self.model.has_tape() {
                    true => Some(self.tape_logprobs(&batch[c.0..c.1], t)?),
                    false => None,
                };
                let lp = match &taped {
                    Some(tl) => tl.lp.as_tensor().clone(),
                    None => self.logprobs(&self.model, &batch[c.0..c.1], t)?.0,
                };
                // π_old is the policy that generated: the first pass's own values.
                if pass == 0 {
                    old_lp.push(lp.detach());
                }
                let (m_c, k_c, a_c) = (
                    rows_of(&mask, c)?,
                    rows_of(&keep_t, c)?,
                    rows_of(&adv_t, c)?,
                );
                let out = grpo_loss(
                    &self.spec.loss,
                    &LossInputs {
                        logp: &lp,
                        old_logp: &old_lp[ci],
                        ref_logp: ref_lp.as_ref().map(|r| &r[ci]),
                        adv: &a_c,
                        mask: &m_c,
                        keep: frac_t.map(|_| &k_c),
                        totals: (chunks.len() > 1).then_some(totals).flatten(),
                    },
                )?;
                let w = shares[ci];
                c_low += out.clip_low * w;
                c_high += out.clip_high * w;
                c_region += out.clip_region * w;
                if let Some(v) = out.kl {
                    kl_sum = Some(kl_sum.unwrap_or(0.0) + v * w);
                }
                let g = match &taped {
                    Some(tl) => tl.grads(&out.loss, &self.model, &self.params)?,
                    None => autograd(&out.loss, &self.params)?,
                };
                grads = Some(match grads {
                    None => g,
                    Some(acc) => acc
                        .iter()
                        .zip(&g)
                        .map(|(a, b)| a + b)
                        .collect::<Result<_>>()?,
                });
                let l = out.loss.detach();
                loss_sum = Some(match loss_sum {
                    None => l,
                    Some(acc) => (acc + l)?,
                });
            }
            clip = (c_low, c_high, c_region);
            kl = kl_sum;
            let (loss, grads) = (
                loss_sum.expect("at least one chunk"),
                grads.expect("at least one chunk"),
            );
            let m = apply_gradients(
                &mut self.opt,
                &self.params,
                &loss,
                &grads,
                lr,
                self.spec.clip_grad_norm,
                self.step,
            )?;
            let stop = m.non_finite.is_some();
            last = Some(m);
            if stop {
                break;
            }
        }
        let mut m = last.expect("at least one pass");
        let train_secs = train_t0.elapsed().as_secs_f64();
        // TRL's metrics.
        let tokens: u64 = rollouts
            .iter()
            .map(|r| (r.prompt.len() + r.out.tokens.len()) as u64)
            .sum();
        self.num_tokens += tokens;
        let lengths: Vec<f64> = rollouts.iter().map(|r| r.out.tokens.len() as f64).collect();
        let terminated: Vec<f64> = rollouts
            .iter()
            .filter(|r| r.out.stopped)
            .map(|r| r.out.tokens.len() as f64)
            .collect();
        let (min_l, mean_l, max_l) = min_mean_max(&lengths);
        let (min_t, mean_t, max_t) = min_mean_max(&terminated);
        let reward_mean = rewards.iter().sum::<f64>() / n as f64;
        let gen_tokens: usize = rollouts.iter().map(|r| r.out.tokens.len()).sum();
        let entropy_all: Vec<f64> = rollouts
            .iter()
            .flat_map(|r| r.out.entropies.iter().map(|&h| h as f64))
            .collect();
        let mut x: Vec<(String, f64)> = vec![
            ("reward".into(), reward_mean),
            (
                "reward_std".into(),
                stds.iter().sum::<f64>() / stds.len() as f64,
            ),
            (
                "frac_reward_zero_std".into(),
                stds.iter().filter(|s| s.abs() < 1e-8).count() as f64 / stds.len() as f64,
            ),
        ];
        for (f_i, f) in self.spec.rewards.iter().enumerate() {
            let vals: Vec<f64> = rollouts
                .iter()
                .map(|r| r.scores[f_i])
                .filter(|v| v.is_finite())
                .collect();
            let nv = vals.len().max(1) as f64;
            let mean = vals.iter().sum::<f64>() / nv;
            let var =
                vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (nv - 1.0).max(1.0);
            let errors = rollouts.iter().filter(|r| r.errors[f_i].is_some()).count();
            x.push((format!("rewards/{}/mean", f.name), mean));
            x.push((format!("rewards/{}/std", f.name), var.sqrt()));
            x.push((format!("rewards/{}/errors", f.name), errors as f64));
        }
        x.extend([
            ("completions/mean_length".into(), mean_l),
            ("completions/min_length".into(), min_l),
            ("completions/max_length".into(), max_l),
            ("completions/mean_terminated_length".into(), mean_t),
            ("completions/min_terminated_length".into(), min_t),
            ("completions/max_terminated_length".into(), max_t),
            (
                "completions/clipped_ratio".into(),
                1.0 - terminated.len() as f64 / n as f64,
            ),
            (
                "entropy".into(),
                entropy_all.iter().sum::<f64>() / entropy_all.len().max(1) as f64,
            ),
            ("clip_ratio/low_mean".into(), clip.0),
            ("clip_ratio/low_min".into(), clip.0),
            ("clip_ratio/high_mean".into(), clip.1),
            ("clip_ratio/high_max".into(), clip.1),
            ("clip_ratio/region_mean".into(), clip.2),
            ("num_tokens".into(), self.num_tokens as f64),
            ("step_time".into(), t0.elapsed().as_secs_f64()),
            (
                "generation/tokens_per_s".into(),
                gen_tokens as f64 / gen_secs.max(1e-9),
            ),
            ("generation/time".into(), gen_secs),
            ("train/time".into(), train_secs),
            ("d3s/sample_kept_frac".into(), k as f64 / n as f64),
            (
                "d3s/token_kept_frac".into(),
                keep.iter().sum::<f32>() as f64
                    / batch
                        .iter()
                        .map(|r| r.out.tokens.len())
                        .sum::<usize>()
                        .max(1) as f64,
            ),
            // What the update learned from: the rollouts in the backward pass and the
            // tokens with a weight in the loss.
            ("train/sequences".into(), k as f64),
            (
                "train/loss_tokens".into(),
                keep.iter()
                    .zip(&mask_host)
                    .filter(|(k, m)| **k > 0.0 && **m > 0.0)
                    .count() as f64,
            ),
            ("d3s/var_adv_before".into(), var_before),
            ("d3s/var_adv_after".into(), var_after),
        ]);
        if let Some(kl) = kl {
            x.push(("kl".into(), kl));
        }
        m.tokens = Some(tokens);
        m.extra = x;
        if m.step
            .is_multiple_of(self.spec.log_completions_every.max(1))
        {
            m.logs.push(LogLine {
                file: ROLLOUTS_FILE,
                key: "groups",
                value: self.log_line(&rollouts, &kept, &scores, &token_kept)?,
            });
        }
        self.step = m.step;
        Ok(m)
    }

    fn evaluate(&mut self) -> Result<Option<EvalMetrics>> {
        let Some(accuracy) = self.held_out_accuracy()? else {
            return Ok(None);
        };
        Ok(Some(EvalMetrics {
            loss: None,
            accuracy: Some(accuracy),
            examples: self.held_out.len(),
        }))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        write_folder(dir, &self.config, &self.vars, &self.side_files)?;
        let state = self.opt.state_tensors(&self.params)?;
        candle_core::safetensors::save(&state, dir.join("optimizer.safetensors"))?;
        let path = dir.join(STATE);
        std::fs::write(&path, json!({"num_tokens": self.num_tokens}).to_string())
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))
    }

    fn load(&mut self, dir: &Path, step: u64) -> Result<()> {
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
        crate::nn::load_params(&self.params, &weights)?;
        let state =
            candle_core::safetensors::load(dir.join("optimizer.safetensors"), &Device::Cpu)?;
        self.opt.load_state(&self.params, &state)?;
        let path = dir.join(STATE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        self.num_tokens = v["num_tokens"].as_u64().unwrap_or(0);
        self.step = step;
        Ok(())
    }

    fn export(&self, run_dir: &Path) -> Result<Option<String>> {
        let dir = run_dir.join(crate::diffusion::export::MODEL_DIR);
        crate::folder::replace_atomically(&dir, |tmp| {
            write_folder(tmp, &self.config, &self.vars, &self.side_files).map_err(|e| e.to_string())
        })
        .map_err(candle_core::Error::Msg)?;
        Ok(Some(format!("Hugging Face folder {}", dir.display())))
    }

    fn describe(&self) -> Option<String> {
        Some(GrpoTrainer::describe(self))
    }

    fn evaluates_at_start(&self) -> bool {
        true
    }
}

/// The GRPO state a checkpoint keeps beside the weights.
const STATE: &str = "grpo.json";
/// The run's log of each logged step's rollouts, one JSON line per step.
pub const ROLLOUTS_FILE: &str = "rollouts.jsonl";

#[cfg(test)]
mod tests {
    use super::*;

    /// A trainer on the tiny random Llama folder, at temperature 0.7 so that the division
    /// by it is exercised.
    fn tiny_trainer(dir: &Path) -> GrpoTrainer {
        crate::lm::tiny::write_folder(dir).unwrap();
        let problems = ["a b", "c", "one two three", "hi"]
            .iter()
            .map(|p| Problem {
                prompt: p.to_string(),
                answer: super::super::tasks::Answer::Text("a".into()),
            })
            .collect();
        let spec = GrpoSpec {
            seed: 0,
            data_seed: 0,
            batch_size: 4,
            hyper: Hyper::adamw(0.0),
            clip_grad_norm: None,
            schedule: Schedule {
                name: Default::default(),
                peak_lr: 1e-3,
                warmup_steps: 0,
                total_steps: 10,
                shape: Vec::new(),
            },
            base: dir.to_path_buf(),
            num_generations: 2,
            max_completion_length: 5,
            temperature: 0.7,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            num_iterations: 1,
            loss: LossSpec {
                loss_type: super::super::loss::LossType::Grpo,
                level: Default::default(),
                epsilon_low: 0.2,
                epsilon_high: 0.2,
                beta: 0.0,
                max_completion_length: 5,
                normalizer: Default::default(),
            },
            scale_rewards: Scale::Group,
            mask_truncated_completions: false,
            rewards: Vec::new(),
            chat: false,
            val_fraction: 0.0,
            eval_problems: 0,
            log_completions_every: 0,
            micro_batch_size: 0,
            d3s: D3s::default(),
        };
        GrpoTrainer::new(problems, spec, Device::Cpu).unwrap()
    }

    #[test]
    fn the_hand_written_pass_gives_autograds_logprobs_and_gradients() {
        let dir = tempfile::tempdir().unwrap();
        let trainer = tiny_trainer(dir.path());
        let rollouts = trainer.rollouts(&[0, 1, 2, 3]).unwrap();
        let batch: Vec<&Rollout> = rollouts.iter().collect();
        // Prompts of different lengths (left padding), a width beyond the longest completion.
        let width = batch.iter().map(|r| r.out.tokens.len()).max().unwrap() + 1;
        let (want, mask) = trainer.logprobs(&trainer.model, &batch, width).unwrap();
        let taped = trainer.tape_logprobs(&batch, width).unwrap();
        let got = taped.lp.as_tensor();
        let mask = Tensor::new(mask, &Device::Cpu).unwrap();
        let masked = |t: &Tensor| (t * &mask).unwrap();
        let diff = crate::test_util::max_abs_diff(&masked(got), &masked(&want));
        assert!(diff < 1e-4, "log-probabilities differ by {diff}");
        // A loss that is not linear in the log-probabilities, as GRPO's ratio is.
        let weights = Tensor::randn(0f32, 1.0, want.shape(), &Device::Cpu).unwrap();
        let loss_of = |lp: &Tensor| {
            masked(&(lp.exp().unwrap() * &weights).unwrap())
                .sum_all()
                .unwrap()
        };
        let theirs = autograd(&loss_of(&want), &trainer.params).unwrap();
        let ours = taped
            .grads(&loss_of(got), &trainer.model, &trainer.params)
            .unwrap();
        for ((p, a), b) in trainer.params.iter().zip(&ours).zip(&theirs) {
            let diff = crate::test_util::max_abs_diff(a, b);
            assert!(diff < 1e-4, "{}: gradients differ by {diff}", p.name);
        }
    }

    #[test]
    fn zero_variance_groups_get_zero_advantage() {
        let (a, s) = advantages(&[1.0, 1.0, 1.0, 0.0, 1.0, 0.0], 3, Scale::Group);
        assert_eq!(&a[..3], &[0.0, 0.0, 0.0]);
        assert_eq!(s[0], 0.0);
        // Group 2: mean 1/3, unbiased std √(1/3).
        let sd = (1.0f64 / 3.0).sqrt();
        assert!((a[4] - (2.0 / 3.0) / (sd + 1e-4)).abs() < 1e-12);
        let (none, _) = advantages(&[1.0, 0.0], 2, Scale::None);
        assert_eq!(none, vec![0.5, -0.5]);
        // Batch scaling divides by the std of all six.
        let (b, _) = advantages(&[1.0, 1.0, 1.0, 0.0, 1.0, 0.0], 3, Scale::Batch);
        let all = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let m = 4.0 / 6.0;
        let sd_b = (all.iter().map(|v: &f64| (v - m) * (v - m)).sum::<f64>() / 5.0).sqrt();
        assert!((b[4] - (2.0 / 3.0) / (sd_b + 1e-4)).abs() < 1e-12);
    }
}
