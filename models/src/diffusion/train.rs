//! Training a denoiser: x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε at a uniform timestep, MSE against the
//! configured prediction target, the class dropped to the null class with probability
//! `label_dropout` so the one net learns both predictions CFG needs.

use super::net::{Denoiser, DenoiserArch, DenoiserSpec};
use super::schedule::{NoiseConfig, Scheduler};
use super::{SavedModel, Scaling, export};
use crate::data::{Batches, Dataset, Split, Targets};
use crate::memory::{self, Footprint};
use crate::nn::Arch;
use crate::optim::Optimizer;
use crate::optim::schedule::Schedule;
use crate::train::{Engine, EvalMetrics, StepMetrics, TrainSpec, apply_gradients, autograd};
use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashMap;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct DiffusionSpec {
    /// What every kind of training shares: seed, split, batch, optimizer, clipping,
    /// schedule, and the model's arch (`unet`, else an MLP denoiser), widths and channels.
    pub train: TrainSpec,
    pub embed_dim: usize,
    pub noise: NoiseConfig,
    pub label_dropout: f64,
}

/// Validation rows evaluated at once.
const EVAL_CHUNK: usize = 512;
/// Evaluation timesteps cycle over this many evenly spaced values, so the number is
/// comparable from one evaluation to the next.
const EVAL_TIMESTEPS: usize = 10;

impl DiffusionSpec {
    pub fn denoiser(&self, data: &Dataset) -> DenoiserSpec {
        let m = &self.train.model;
        DenoiserSpec {
            arch: match m.arch {
                Arch::Unet => DenoiserArch::Unet,
                // Validation keeps the other archs out of diffusion experiments.
                Arch::Mlp | Arch::Cnn | Arch::Llama => DenoiserArch::Mlp,
            },
            sample_shape: data.input_shape.clone(),
            classes: data.targets.classes().unwrap_or(0),
            hidden: m.hidden.clone(),
            channels: m.channels.clone(),
            embed_dim: self.embed_dim,
        }
    }

    pub fn footprint(&self, data: &Dataset) -> std::result::Result<Footprint, String> {
        let spec = self.denoiser(data);
        spec.check()?;
        let params = spec.param_count();
        let per_sample = spec.activation_elems();
        Ok(memory::trained(
            params,
            self.train.hyper.name,
            per_sample,
            self.train.batch_size,
            EVAL_CHUNK,
            data,
        ))
    }
}

pub struct DiffusionTrainer {
    pub net: Denoiser,
    pub opt: Optimizer,
    pub schedule: Schedule,
    pub step: u64,
    spec: DiffusionSpec,
    data: Dataset,
    split: Split,
    batches: Batches,
    scaling: Scaling,
    alphas_cumprod: Vec<f64>,
}

impl DiffusionTrainer {
    pub fn new(mut data: Dataset, spec: DiffusionSpec, device: Device) -> Result<Self> {
        data.check().map_err(candle_core::Error::Msg)?;
        let split = Split::new(data.len(), spec.train.val_fraction, spec.train.seed);
        let scaling = Scaling::fit(&data, &split.train);
        let f = data.features();
        scaling.apply(&mut data.inputs, f);
        let net = Denoiser::new(spec.denoiser(&data), spec.train.seed, &device)?;
        let opt = Optimizer::new(spec.train.hyper, net.params());
        let batches = Batches::new(split.train.clone(), spec.train.batch_size, spec.train.seed);
        Ok(DiffusionTrainer {
            alphas_cumprod: spec.noise.alphas_cumprod(),
            net,
            opt,
            schedule: spec.train.schedule.clone(),
            step: 0,
            spec,
            data,
            split,
            batches,
            scaling,
        })
    }

    fn labels(&self) -> Option<&[u32]> {
        match &self.data.targets {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Values(_) => None,
        }
    }

    /// The noised inputs, targets, timesteps and classes of `rows`.
    fn batch(
        &self,
        rows: &[usize],
        rng: &mut ChaCha8Rng,
        t_of: &dyn Fn(usize, &mut ChaCha8Rng) -> usize,
        dropout: f64,
    ) -> Result<(Tensor, Tensor, Vec<f64>, Vec<u32>)> {
        let f = self.data.features();
        let null = self.net.spec().classes as u32;
        let pred = self.spec.noise.prediction;
        let (mut xs, mut ys) = (
            Vec::with_capacity(rows.len() * f),
            Vec::with_capacity(rows.len() * f),
        );
        let (mut ts, mut cs) = (Vec::new(), Vec::new());
        for (i, &r) in rows.iter().enumerate() {
            let t = t_of(i, rng);
            let ac = self.alphas_cumprod[t];
            for &x0 in &self.data.inputs[r * f..(r + 1) * f] {
                let eps: f32 = StandardNormal.sample(rng);
                let (xt, y) = Scheduler::training_target(ac, x0, eps, pred);
                xs.push(xt);
                ys.push(y);
            }
            ts.push(t as f64);
            let drop = dropout > 0.0 && rng.random::<f64>() < dropout;
            cs.push(match self.labels() {
                Some(l) if !drop => l[r],
                _ => null,
            });
        }
        let shape: Vec<usize> = [rows.len()]
            .into_iter()
            .chain(self.data.input_shape.iter().copied())
            .collect();
        let dev = self.net.device();
        Ok((
            Tensor::from_vec(xs, shape.clone(), dev)?,
            Tensor::from_vec(ys, shape, dev)?,
            ts,
            cs,
        ))
    }

    pub fn saved_model(&self) -> SavedModel {
        SavedModel::new(
            self.net.spec().clone(),
            self.scaling.clone(),
            match &self.data.targets {
                Targets::Classes { names, .. } => names.clone(),
                Targets::Values(_) => Vec::new(),
            },
        )
    }

    pub fn noise(&self) -> &NoiseConfig {
        &self.spec.noise
    }
}

impl Engine for DiffusionTrainer {
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
        // The noise of a step is a function of (seed, step), like the batch order, so a
        // resumed run draws what it would have drawn.
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.spec.train.seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ self.step,
        );
        let t_max = self.spec.noise.train_timesteps;
        let (x, y, t, c) = self.batch(
            &rows,
            &mut rng,
            &|_, r| r.random_range(0..t_max),
            self.spec.label_dropout,
        )?;
        // The hand-written pass for a UNet in f32 on the CPU, autograd otherwise.
        let (loss, grads) = match self.net.loss_grads_host(&x, &y, &t, &c)? {
            Some((l, g)) => (Tensor::new(l as f32, x.device())?, g),
            None => {
                let loss = self.net.forward(&x, &t, &c)?.sub(&y)?.sqr()?.mean_all()?;
                let grads = autograd(&loss, self.net.params())?;
                (loss, grads)
            }
        };
        let m = apply_gradients(
            &mut self.opt,
            self.net.params(),
            &loss,
            &grads,
            lr,
            self.spec.train.clip_grad_norm,
            self.step,
        )?;
        self.step = m.step;
        Ok(m)
    }

    fn evaluate(&mut self) -> Result<Option<EvalMetrics>> {
        if self.split.val.is_empty() {
            return Ok(None);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.spec.train.seed ^ 0xE7A1);
        let t_max = self.spec.noise.train_timesteps;
        let mut sum = 0.0;
        let val = self.split.val.clone();
        for (chunk, rows) in val.chunks(EVAL_CHUNK).enumerate() {
            let base = chunk * EVAL_CHUNK;
            let (x, y, t, c) = self.batch(
                rows,
                &mut rng,
                &|i, _| ((base + i) % EVAL_TIMESTEPS * 2 + 1) * t_max / (2 * EVAL_TIMESTEPS),
                0.0,
            )?;
            let l = self.net.forward(&x, &t, &c)?.sub(&y)?.sqr()?.mean_all()?;
            sum += l.to_scalar::<f32>()? as f64 * rows.len() as f64;
        }
        Ok(Some(EvalMetrics {
            loss: Some(sum / val.len() as f64),
            accuracy: None,
            examples: val.len(),
        }))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        candle_core::safetensors::save(&self.net.weights(), dir.join("model.safetensors"))?;
        let state = self.opt.state_tensors(self.net.params())?;
        candle_core::safetensors::save(&state, dir.join("optimizer.safetensors"))?;
        export::write_configs(dir, &self.saved_model(), &self.spec.noise)
            .map_err(candle_core::Error::Msg)
    }

    fn load(&mut self, dir: &Path, step: u64) -> Result<()> {
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
        self.net.load_weights(&weights)?;
        let state: HashMap<String, Tensor> =
            candle_core::safetensors::load(dir.join("optimizer.safetensors"), &Device::Cpu)?;
        self.opt.load_state(self.net.params(), &state)?;
        self.step = step;
        Ok(())
    }

    fn export(&self, run_dir: &Path) -> Result<Option<String>> {
        let dir = run_dir.join(export::MODEL_DIR);
        export::write_folder(&dir, &self.net, &self.saved_model(), &self.spec.noise)
            .map_err(candle_core::Error::Msg)?;
        Ok(Some(format!("diffusers-style folder {}", dir.display())))
    }
}
