//! One supervised training run in memory: data, network, optimizer, schedule, and the step
//! that produces every metric with a single device→host transfer.

use crate::data::{Batches, Dataset, Split, Targets};
use crate::memory::{self, Footprint};
use crate::nn::{ModelSpec, Net, correct, cross_entropy, mse};
use crate::optim::schedule::Schedule;
use crate::optim::{Hyper, Optimizer, clip_scale};
use crate::probes::el2n::{Scores, Subset, subset};
use crate::probes::{EL2N_FILE, ProbeSpec, supervised::ProbeState};
use candle_core::{CpuStorage, DType, Device, Module, Result, Storage, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Everything that shapes a run besides the data.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    pub seed: u64,
    pub val_fraction: f64,
    pub batch_size: usize,
    pub model: ModelSpec,
    pub hyper: Hyper,
    pub clip_grad_norm: Option<f64>,
    pub schedule: Schedule,
    pub probes: ProbeSpec,
    /// Train on part of the training split (`data.subset`: by data-diet score or at random).
    pub subset: Option<Subset>,
}

/// The loss, and Σg² and Σ|g| of every gradient. CPU gradients are summed in place (in f64,
/// no temporaries); on other devices all the sums travel in one device→host transfer.
fn grad_sums(loss: &Tensor, grads: &[Tensor]) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    if loss.device().is_cpu() {
        let mut sq = Vec::with_capacity(grads.len());
        let mut l1 = Vec::with_capacity(grads.len());
        for g in grads {
            let (s, a) = cpu_sums(g)?;
            sq.push(s);
            l1.push(a);
        }
        return Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, sq, l1));
    }
    let mut scalars = vec![loss.to_dtype(DType::F32)?];
    for g in grads {
        scalars.push(g.sqr()?.sum_all()?);
        scalars.push(g.abs()?.sum_all()?);
    }
    let host: Vec<f32> = Tensor::stack(&scalars, 0)?.to_vec1()?;
    let sq = host[1..].iter().step_by(2).map(|&v| v as f64).collect();
    let l1 = host[2..].iter().step_by(2).map(|&v| v as f64).collect();
    Ok((host[0] as f64, sq, l1))
}

/// Σx² of a tensor in f64 (summed in place on the CPU).
pub(crate) fn tensor_sq(t: &Tensor) -> Result<f64> {
    if t.device().is_cpu() {
        return Ok(cpu_sums(t)?.0);
    }
    t.to_dtype(DType::F32)?
        .sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar()
}

/// Σg² and Σ|g| of a CPU tensor, read straight from its storage.
fn cpu_sums(g: &Tensor) -> Result<(f64, f64)> {
    let g = g.contiguous()?;
    let (storage, layout) = g.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(data)), Some((a, b))) =
        (&*storage, layout.contiguous_offsets())
    else {
        candle_core::bail!("gradients must be contiguous f32");
    };
    use crate::simd::{LANES, total, widest};
    use rayon::prelude::*;
    // Partial sums per chunk (in lanes within it), added in order: the result does not
    // depend on thread timing, which keeps clipping (and so training) reproducible.
    let parts: Vec<(f64, f64)> = data[a..b]
        .par_chunks(1 << 14)
        .map(|c| {
            widest(
                #[inline(always)]
                || {
                    let (mut sq, mut l1) = ([0.0f64; LANES], [0.0f64; LANES]);
                    let (chunks, rest) = c.as_chunks::<LANES>();
                    for c in chunks {
                        for k in 0..LANES {
                            let v = c[k] as f64;
                            sq[k] += v * v;
                            l1[k] += v.abs();
                        }
                    }
                    for (k, &v) in rest.iter().enumerate() {
                        let v = v as f64;
                        sq[k] += v * v;
                        l1[k] += v.abs();
                    }
                    (total(&sq), total(&l1))
                },
            )
        })
        .collect();
    Ok(parts.iter().fold((0.0, 0.0), |x, y| (x.0 + y.0, x.1 + y.1)))
}

/// The second half of every kind of training step: gradient norms, the non-finite check,
/// clipping, the optimizer update (skipped on non-finite values) and per-tensor metrics.
/// `done` is the steps completed before this one.
pub fn apply_gradients(
    opt: &mut Optimizer,
    params: &[crate::nn::Param],
    loss: &Tensor,
    grads: &[Tensor],
    lr: f64,
    clip: Option<f64>,
    done: u64,
) -> Result<StepMetrics> {
    let (loss_v, sq, l1) = grad_sums(loss, grads)?;
    let grad_l2 = sq.iter().sum::<f64>().sqrt();
    let grad_l1 = l1.iter().sum::<f64>();
    let non_finite = if !loss_v.is_finite() {
        Some(format!("loss is {loss_v} at step {}", done + 1))
    } else {
        params
            .iter()
            .zip(&sq)
            .find(|(_, s)| !s.is_finite())
            .map(|(p, _)| format!("gradient of {} is not finite at step {}", p.name, done + 1))
    };
    let scale = clip_scale(grad_l2, clip);
    let updates = if non_finite.is_none() {
        opt.step(params, grads, lr, scale)?
    } else {
        vec![Default::default(); params.len()]
    };
    Ok(StepMetrics {
        step: done + 1,
        loss: loss_v,
        grad_l2,
        grad_l1,
        lr,
        clip_scale: scale,
        params: params
            .iter()
            .zip(&sq)
            .zip(&updates)
            .map(|((p, s), u)| ParamMetrics {
                name: p.name.clone(),
                grad_l2: s.sqrt(),
                update_ratio: u.ratio(),
            })
            .collect(),
        tokens: None,
        extra: Vec::new(),
        logs: Vec::new(),
        non_finite,
    })
}

/// Gradients of `loss` for each parameter (zeros where none reached it).
pub fn autograd(loss: &Tensor, params: &[crate::nn::Param]) -> Result<Vec<Tensor>> {
    let store = loss.backward()?;
    params
        .iter()
        .map(|p| match store.get(p.var.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => p.var.zeros_like(),
        })
        .collect()
}

/// What the run loop needs of any kind of training: one step, evaluation, checkpoints.
pub trait Engine {
    /// Steps completed.
    fn step(&self) -> u64;
    fn batch_size(&self) -> usize;
    fn schedule(&self) -> &Schedule;
    /// The schedule control commands and live edits change (peak rate, total steps).
    fn schedule_mut(&mut self) -> &mut Schedule;
    fn train_step(&mut self, lr: f64) -> Result<StepMetrics>;
    fn evaluate(&mut self) -> Result<Option<EvalMetrics>>;
    /// Writes `model.safetensors` and `optimizer.safetensors` (plus anything the kind needs
    /// to load the model again) into `dir`.
    fn save(&self, dir: &Path) -> Result<()>;
    fn load(&mut self, dir: &Path, step: u64) -> Result<()>;
    /// Called once the run has finished: writes whatever the kind exports (a diffusers folder);
    /// returns what to say about it.
    fn export(&self, _run_dir: &Path) -> Result<Option<String>> {
        Ok(None)
    }
    /// What to say about the data and model once built (for the run's events).
    fn describe(&self) -> Option<String> {
        None
    }
    /// Whether a fresh run evaluates before its first step (fine-tuning: the base model's
    /// score is the baseline).
    fn evaluates_at_start(&self) -> bool {
        false
    }
    /// Applies the experiment's `[probes]` (at the start and on a live edit); false when this
    /// kind of run has none.
    fn set_probes(&mut self, _spec: ProbeSpec) -> bool {
        false
    }
}

impl Engine for Trainer {
    fn step(&self) -> u64 {
        self.step
    }
    fn batch_size(&self) -> usize {
        Trainer::batch_size(self)
    }
    fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    fn schedule_mut(&mut self) -> &mut Schedule {
        &mut self.schedule
    }
    fn train_step(&mut self, lr: f64) -> Result<StepMetrics> {
        Trainer::train_step(self, lr)
    }
    fn evaluate(&mut self) -> Result<Option<EvalMetrics>> {
        Trainer::evaluate(self)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        Trainer::save(self, dir)
    }
    fn load(&mut self, dir: &Path, step: u64) -> Result<()> {
        Trainer::load(self, dir, step)
    }
    fn set_probes(&mut self, spec: ProbeSpec) -> bool {
        Trainer::set_probes(self, spec);
        true
    }
    fn describe(&self) -> Option<String> {
        let subset = match &self.subset_of {
            Some((kept, of)) => format!(" (a subset: {kept} of the split's {of})"),
            None => String::new(),
        };
        Some(format!(
            "{}: {} training examples{subset}, {} validation; {} parameters",
            self.data.name,
            self.split.train.len(),
            self.split.val.len(),
            self.net.parameter_count()
        ))
    }
}

/// Per-parameter-tensor numbers of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamMetrics {
    pub name: String,
    pub grad_l2: f64,
    /// ‖Δw‖ / ‖w‖ of this step's update (0 when the update was skipped).
    pub update_ratio: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepMetrics {
    /// Steps completed, counting this one.
    pub step: u64,
    pub loss: f64,
    pub grad_l2: f64,
    pub grad_l1: f64,
    pub lr: f64,
    /// The factor gradients were scaled by (clipping), 1 when not clipped.
    pub clip_scale: f64,
    pub params: Vec<ParamMetrics>,
    /// Tokens the step read (language models), for tokens/s.
    pub tokens: Option<u64>,
    /// Further named scalars of the kind (GRPO's reward, KL, …), recorded with the step.
    pub extra: Vec<(String, f64)>,
    /// What the step saw (GRPO's rollouts, an opposing-signal probe), each appended as one
    /// line to the run's log of it.
    pub logs: Vec<LogLine>,
    /// Set when the loss or a gradient was NaN or ±Inf: where, in words. The update was
    /// skipped, so the weights are still those before this step.
    pub non_finite: Option<String>,
}

/// A step's mean loss, each parameter's gradient and the network's outputs.
pub(crate) type StepGrads = (Tensor, Vec<Tensor>, Tensor);

/// One line for a log of the run's own: `{"step": N, KEY: VALUE}` appended to `file` (step
/// first, so a reader can index the file from each line's first bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub file: &'static str,
    pub key: &'static str,
    pub value: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalMetrics {
    /// Held-out loss; `None` for kinds that have none (GRPO scores answers instead).
    pub loss: Option<f64>,
    /// For classification.
    pub accuracy: Option<f64>,
    pub examples: usize,
}

pub struct Trainer {
    pub net: Net,
    pub opt: Optimizer,
    pub schedule: Schedule,
    /// Steps completed.
    pub step: u64,
    pub(crate) data: Dataset,
    pub(crate) split: Split,
    batches: Batches,
    pub(crate) device: Device,
    clip: Option<f64>,
    pub(crate) seed: u64,
    pub(crate) probes: ProbeState,
    /// With `data.subset`: the rows kept, of the training split's.
    subset_of: Option<(usize, usize)>,
}

/// Validation rows evaluated at once (bounds the memory of an evaluation).
const EVAL_CHUNK: usize = 1024;

impl TrainSpec {
    /// The network to build for `data`: its input shape and outputs come from the data.
    fn model_for(&self, data: &Dataset) -> ModelSpec {
        ModelSpec {
            input_shape: data.input_shape.clone(),
            outputs: data.targets.classes().unwrap_or(1),
            ..self.model.clone()
        }
    }

    /// The memory a [`Trainer`] of this spec on `data` will need, found before building it.
    pub fn footprint(&self, data: &Dataset) -> std::result::Result<Footprint, String> {
        let val = Split::new(data.len(), self.val_fraction, self.seed)
            .val
            .len();
        memory::supervised(
            &self.model_for(data),
            self.hyper.name,
            self.batch_size,
            val.min(EVAL_CHUNK),
            data,
        )
    }
}

impl Trainer {
    /// Splits and standardises `data` (with training-split statistics) and builds the network.
    pub fn new(mut data: Dataset, spec: TrainSpec, device: Device) -> Result<Trainer> {
        data.check().map_err(candle_core::Error::Msg)?;
        let mut split = Split::new(data.len(), spec.val_fraction, spec.seed);
        let mut subset_of = None;
        if let Some(s) = &spec.subset {
            let of = split.train.len();
            split.train = subset(&split.train, &s.scores, &s.keep)
                .map_err(|e| candle_core::Error::Msg(format!("data.subset: {e}")))?;
            subset_of = Some((split.train.len(), of));
        }
        data.standardize(&split.train);
        let net = Net::new(spec.model_for(&data), spec.seed, &device)?;
        let opt = Optimizer::new(spec.hyper, net.params());
        let batches = Batches::new(split.train.clone(), spec.batch_size, spec.seed);
        let mut t = Trainer {
            net,
            opt,
            schedule: spec.schedule,
            step: 0,
            data,
            split,
            batches,
            device,
            clip: spec.clip_grad_norm,
            seed: spec.seed,
            probes: ProbeState::default(),
            subset_of,
        };
        t.set_probes(spec.probes);
        Ok(t)
    }

    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    pub fn split(&self) -> &Split {
        &self.split
    }

    pub fn batch_size(&self) -> usize {
        self.batches.batch_size()
    }

    /// The inputs and targets of the given rows, as tensors on the run's device.
    pub(crate) fn tensors(&self, rows: &[usize]) -> Result<(Tensor, Tensor)> {
        let f = self.data.features();
        let mut x = Vec::with_capacity(rows.len() * f);
        for &r in rows {
            x.extend_from_slice(&self.data.inputs[r * f..(r + 1) * f]);
        }
        let shape: Vec<usize> = [rows.len()]
            .into_iter()
            .chain(self.data.input_shape.clone())
            .collect();
        let x = Tensor::from_vec(x, shape, &self.device)?;
        let y = match &self.data.targets {
            Targets::Classes { labels, .. } => {
                let y: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
                Tensor::from_vec(y, rows.len(), &self.device)?
            }
            Targets::Values(v) => {
                let y: Vec<f32> = rows.iter().map(|&r| v[r]).collect();
                Tensor::from_vec(y, rows.len(), &self.device)?
            }
        };
        Ok((x, y))
    }

    fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        match self.data.targets {
            Targets::Classes { .. } => cross_entropy(out, y),
            Targets::Values(_) => mse(out, y),
        }
    }

    /// The mean loss on `rows`, its gradient for each parameter, and the network's outputs.
    pub(crate) fn grads_on(&self, rows: &[usize]) -> Result<StepGrads> {
        let (x, y) = self.tensors(rows)?;
        let classify = matches!(self.data.targets, Targets::Classes { .. });
        if let Some(v) = self.net.manual_grads(&x, &y, classify)? {
            return Ok(v);
        }
        let out = self.net.forward(&x)?;
        let loss = self.loss(&out, &y)?;
        let grads = autograd(&loss, self.net.params())?;
        Ok((loss, grads, out.detach()))
    }

    /// One optimisation step at learning rate `lr` on the next batch, with the probes due
    /// at this step (coherence from its micro-batches and EL2N from its logits before the
    /// update; sharpness and opposing signals at the weights after it).
    pub fn train_step(&mut self, lr: f64) -> Result<StepMetrics> {
        let rows = self.batches.batch(self.step);
        let next = self.step + 1;
        let due = |every: u64| every > 0 && next.is_multiple_of(every);
        let mut extra = Vec::new();
        let (loss, grads, out) = match self.probes.spec.coherence {
            Some(c) if due(c.every) && rows.len() >= 2 => {
                let (grads, x) = self.coherence_step(&rows, c.micro_batches)?;
                extra = x;
                grads
            }
            _ => self.grads_on(&rows)?,
        };
        // EL2N reads logits the step computed anyway: its cost is in BENCHMARKS.md, not
        // recorded every step.
        if let Some(mean) = self.score_batch(next, &rows, &out)? {
            extra.push(("el2n/batch_mean".into(), mean));
        }
        let mut m = apply_gradients(
            &mut self.opt,
            self.net.params(),
            &loss,
            &grads,
            lr,
            self.clip,
            self.step,
        )?;
        self.step = m.step;
        if m.non_finite.is_none() {
            if let Some(s) = self.probes.spec.sharpness
                && due(s.every)
            {
                extra.extend(self.sharpness(lr)?);
            }
            if let Some(o) = self.probes.spec.opposing
                && due(o.every)
            {
                let (x, line) = self.opposing(next)?;
                extra.extend(x);
                m.logs.extend(line);
            }
        }
        m.extra = extra;
        Ok(m)
    }

    /// Loss (and accuracy) on the validation split, in chunks to bound memory.
    pub fn evaluate(&self) -> Result<Option<EvalMetrics>> {
        if self.split.val.is_empty() {
            return Ok(None);
        }
        let (mut loss_sum, mut hits) = (0.0, 0usize);
        for rows in self.split.val.chunks(EVAL_CHUNK) {
            let (x, y) = self.tensors(rows)?;
            let out = self.net.forward(&x)?;
            loss_sum += self.loss(&out, &y)?.to_scalar::<f32>()? as f64 * rows.len() as f64;
            if matches!(self.data.targets, Targets::Classes { .. }) {
                hits += correct(&out, &y)?;
            }
        }
        let n = self.split.val.len();
        Ok(Some(EvalMetrics {
            loss: Some(loss_sum / n as f64),
            accuracy: matches!(self.data.targets, Targets::Classes { .. })
                .then(|| hits as f64 / n as f64),
            examples: n,
        }))
    }

    /// Writes `model.safetensors` and `optimizer.safetensors` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let weights: HashMap<String, Tensor> = self
            .net
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&weights, dir.join("model.safetensors"))?;
        let state = self.opt.state_tensors(self.net.params())?;
        candle_core::safetensors::save(&state, dir.join("optimizer.safetensors"))?;
        self.probes.save(dir)?;
        if let Some(scores) = &self.probes.scores {
            let json =
                serde_json::to_vec(scores).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            std::fs::write(dir.join(EL2N_FILE), json)?;
        }
        Ok(())
    }

    /// Restores weights and optimizer state from `dir` and sets the step count.
    pub fn load(&mut self, dir: &Path, step: u64) -> Result<()> {
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &self.device)?;
        crate::nn::load_params(self.net.params(), &weights)?;
        let state =
            candle_core::safetensors::load(dir.join("optimizer.safetensors"), &Device::Cpu)?;
        self.opt.load_state(self.net.params(), &state)?;
        self.step = step;
        self.probes.load(dir, self.net.params().len())?;
        // The scores up to the checkpoint, when they were kept with the same window.
        if let (Some(now), Ok(text)) = (&self.probes.scores, std::fs::read(dir.join(EL2N_FILE))) {
            let saved: Scores = serde_json::from_slice(&text).map_err(|e| {
                candle_core::Error::Msg(format!("{}: {e}", dir.join(EL2N_FILE).display()))
            })?;
            if saved.sum.len() == now.sum.len()
                && (saved.from_step, saved.to_step) == (now.from_step, now.to_step)
            {
                self.probes.scores = Some(saved);
            }
        }
        Ok(())
    }
}
