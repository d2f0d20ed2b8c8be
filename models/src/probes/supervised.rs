//! The probes inside the supervised trainer: what they keep between steps and how each one
//! reads the network. Every probe's cost is measured and recorded as `probe_ms/NAME`.

use super::coherence::{self, Parts, Smoother, weigh};
use super::el2n::{Scores, el2n};
use super::hessian::{self, FdHessian, Operator, Preconditioned, Quadrature};
use super::opposing::{self, Probe};
use super::{OPPOSING_FILE, ProbeSpec, edge_of_stability};
use crate::data::Targets;
use crate::train::{LogLine, StepGrads, Trainer};

/// Named scalars a probe adds to the step's record.
type Scalars = Vec<(String, f64)>;
use candle_core::{DType, Result, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::time::Instant;

/// What the probes keep between steps. Checkpoints hold the EL2N scores (`el2n.json`) and the
/// coherence averages with the last opposing probe's losses (`probes.json`); a resumed run
/// starts only its power iterations' warm starts afresh.
#[derive(Debug, Default)]
pub struct ProbeState {
    pub spec: ProbeSpec,
    smoother: Option<Smoother>,
    /// The last top eigenvectors, the next power iteration's warm starts.
    eigen: Option<Vec<f64>>,
    precond_eigen: Option<Vec<f64>>,
    pub scores: Option<Scores>,
    last_probe: Option<Vec<f32>>,
    /// The fixed probe sets drawn so far, by (size, salt): drawn once, not at every probe.
    fixed: Vec<((usize, u64), Vec<usize>)>,
}

/// The Hessian spectrum of a checkpoint by stochastic Lanczos quadrature (`descent probe
/// hessian`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spectrum {
    pub step: u64,
    /// Parameters (the Hessian's size).
    pub dim: usize,
    /// Examples of the fixed batch the loss is taken on.
    pub batch: usize,
    pub lanczos_steps: usize,
    pub runs: Vec<Quadrature>,
    /// λ_max by power iteration (checks the largest Ritz value).
    pub lambda_max: f64,
    /// tr H from the quadrature.
    pub trace: f64,
    /// Classes of the data, against which the outliers are counted.
    pub classes: Option<usize>,
    pub gradients: usize,
}

impl Spectrum {
    /// Ritz values standing clear of the bulk: above a tenth of the largest (Sagun et al.
    /// count about as many outliers as classes).
    pub fn outliers(&self) -> usize {
        let (_, hi) = hessian::node_range(&self.runs);
        let first = self.runs.first().map_or(&[][..], |r| &r.nodes[..]);
        first.iter().filter(|&&x| x > 0.1 * hi).count()
    }
}

fn elapsed_ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// `probes.json` in a checkpoint: the probe state a resume continues from.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    smoother: Option<Smoother>,
    last_probe: Option<Vec<f32>>,
}

/// Seeds the sharpness probe batch; the spectrum takes the same examples.
const SHARPNESS_SALT: u64 = 0x5AA2;

/// The file in a checkpoint folder holding [`Saved`].
const STATE_FILE: &str = "probes.json";

impl ProbeState {
    /// Writes what a resume needs, when there is any.
    pub(crate) fn save(&self, dir: &std::path::Path) -> Result<()> {
        if self.smoother.is_none() && self.last_probe.is_none() {
            return Ok(());
        }
        let saved = Saved {
            smoother: self.smoother.clone(),
            last_probe: self.last_probe.clone(),
        };
        let json =
            serde_json::to_vec(&saved).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        std::fs::write(dir.join(STATE_FILE), json)?;
        Ok(())
    }

    /// Takes up a checkpoint's state where it fits the probes now configured (`tensors`
    /// parameter tensors, the opposing probe set's size).
    pub(crate) fn load(&mut self, dir: &std::path::Path, tensors: usize) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(());
        };
        let saved: Saved = serde_json::from_slice(&bytes)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        if let (Some(c), Some(s)) = (self.spec.coherence, saved.smoother)
            && s.parts() == tensors + 1
            && s.beta() == c.smoothing
        {
            self.smoother = Some(s);
        }
        if let (Some(_), Some(l)) = (self.spec.opposing, saved.last_probe) {
            self.last_probe = Some(l);
        }
        Ok(())
    }
}

impl Trainer {
    /// Turns probes on or off, or changes their cadence, between steps (a live edit).
    pub fn set_probes(&mut self, spec: ProbeSpec) {
        let s = &mut self.probes;
        if s.spec.coherence.map(|c| (c.micro_batches, c.smoothing))
            != spec.coherence.map(|c| (c.micro_batches, c.smoothing))
        {
            s.smoother = None;
        }
        let classes = matches!(self.data.targets, Targets::Classes { .. });
        match (spec.el2n, classes) {
            (Some(e), true) => {
                let rows = self.data.len();
                let keep = s
                    .scores
                    .take()
                    .filter(|sc| sc.from_step == e.from_step && sc.to_step == e.to_step);
                s.scores = Some(keep.unwrap_or_else(|| Scores::new(rows, e.from_step, e.to_step)));
            }
            _ => s.scores = None,
        }
        if spec.opposing.map(|o| o.size) != s.spec.opposing.map(|o| o.size) {
            s.last_probe = None;
        }
        s.spec = spec;
    }

    /// [`Trainer::probe_rows`], drawn once per size and kept.
    fn fixed_rows(&mut self, n: usize, salt: u64) -> Vec<usize> {
        if let Some((_, rows)) = self.probes.fixed.iter().find(|(k, _)| *k == (n, salt)) {
            return rows.clone();
        }
        let rows = self.probe_rows(n, salt);
        self.probes.fixed.push(((n, salt), rows.clone()));
        rows
    }

    /// A fixed, seeded sample of `n` training rows (all of them when there are fewer).
    fn probe_rows(&self, n: usize, salt: u64) -> Vec<usize> {
        let mut rows = self.split.train.clone();
        rows.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            self.seed ^ salt,
        ));
        rows.truncate(n.max(1));
        rows
    }

    /// The step's loss, mean gradient and logits from `k` micro-batches, and the coherence
    /// they show. The gradient is the same batch mean a plain step takes.
    pub(crate) fn coherence_step(
        &mut self,
        rows: &[usize],
        k: usize,
    ) -> Result<(StepGrads, Scalars)> {
        let t0 = Instant::now();
        let n = rows.len();
        let k = k.clamp(2, n.max(2));
        let chunk = n.div_ceil(k);
        let parts: Vec<&[usize]> = rows.chunks(chunk).collect();
        let k = parts.len();
        let names: Vec<String> = self.net.params().iter().map(|p| p.name.clone()).collect();
        let mut parts_sums = Parts::new(names.len());
        let mut loss = Tensor::zeros((), DType::F32, &self.device)?;
        let mut outs = Vec::with_capacity(k);
        // The batch mean is each part's mean weighted by its share of the rows: the sum over k
        // when the parts are equal (`chunks` makes all but the last one equal).
        let equal = n.is_multiple_of(k);
        let mut weighted: Option<Vec<Tensor>> = None;
        for part in &parts {
            let (l, g, out) = self.grads_on(part)?;
            let w = part.len() as f64 / n as f64;
            loss = (loss + (l * w)?)?;
            if !equal {
                weighted = Some(weigh(weighted, &g, w)?);
            }
            parts_sums.add(g)?;
            outs.push(out);
        }
        let g = parts_sums.finish(n / k)?;
        let (sum, per, micro) = (g.sum, g.moments, g.micro);
        let spec = self.probes.spec.coherence.expect("coherence on");
        let smoother = self
            .probes
            .smoother
            .get_or_insert_with(|| Smoother::new(names.len() + 1, spec.smoothing));
        let c = smoother.push(&per);
        let adam = self.opt.hyper().name == crate::optim::OptimName::Adamw;
        // The hint scales the schedule's peak: the step's own rate decays to nothing.
        let peak = self.schedule.peak_lr;
        let mut extra = coherence::records(&c, &names, n, micro, peak, adam);
        extra.push(("probe_ms/coherence".into(), elapsed_ms(t0)));
        let out = Tensor::cat(&outs, 0)?;
        let mean = match weighted {
            Some(w) => w,
            None => sum.iter().map(|g| g / k as f64).collect::<Result<_>>()?,
        };
        Ok(((loss, mean, out), extra))
    }

    /// Adds the batch's EL2N scores (classification only); returns the batch mean.
    pub(crate) fn score_batch(
        &mut self,
        step: u64,
        rows: &[usize],
        out: &Tensor,
    ) -> Result<Option<f64>> {
        let (Some(scores), Targets::Classes { labels, names }) =
            (self.probes.scores.as_mut(), &self.data.targets)
        else {
            return Ok(None);
        };
        let classes = names.len();
        if !scores.in_window(step) {
            return Ok(None);
        }
        let logits: Vec<f32> = out.flatten_all()?.to_vec1()?;
        let y: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
        let s = el2n(&logits, classes, &y);
        scores.add(step, rows, &s);
        Ok(Some(s.iter().sum::<f64>() / s.len().max(1) as f64))
    }

    /// The parameters end to end, in f64.
    pub fn flat_params(&self) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.net.parameter_count());
        for p in self.net.params() {
            let v: Vec<f32> = p.var.as_tensor().flatten_all()?.to_vec1()?;
            out.extend(v.iter().map(|&x| x as f64));
        }
        Ok(out)
    }

    fn set_flat(&self, flat: &[f64]) -> Result<()> {
        let mut at = 0;
        for p in self.net.params() {
            let n = p.var.elem_count();
            let v: Vec<f32> = flat[at..at + n].iter().map(|&x| x as f32).collect();
            p.var
                .set(&Tensor::from_vec(v, p.var.shape(), p.var.device())?)?;
            at += n;
        }
        Ok(())
    }

    /// The mean-loss gradient on `rows` at parameters `flat`, end to end in f64.
    fn flat_grad(&self, rows: &[usize], flat: &[f64]) -> Result<Vec<f64>> {
        self.set_flat(flat)?;
        let (_, grads, _) = self.grads_on(rows)?;
        let mut out = Vec::with_capacity(flat.len());
        for g in grads {
            let v: Vec<f32> = g.flatten_all()?.to_vec1()?;
            out.extend(v.iter().map(|&x| x as f64));
        }
        Ok(out)
    }

    /// Runs `f` on the finite-difference Hessian of the loss on `rows`; the parameters are
    /// restored exactly afterwards, whatever `f` returns.
    fn with_hessian<T>(
        &self,
        rows: &[usize],
        radius: f64,
        f: impl FnOnce(&mut dyn Operator) -> Result<T>,
    ) -> Result<(T, usize)> {
        let saved: Vec<Tensor> = self
            .net
            .params()
            .iter()
            .map(|p| p.var.as_tensor().copy())
            .collect::<Result<_>>()?;
        let theta = self.flat_params()?;
        let mut op = FdHessian::new(theta, radius, |t: &[f64]| self.flat_grad(rows, t));
        let result = f(&mut op);
        let gradients = op.gradients;
        for (p, s) in self.net.params().iter().zip(&saved) {
            p.var.set(s)?;
        }
        Ok((result?, gradients))
    }

    /// One finite-difference Hessian–vector product of the mean loss on `rows` (the operator
    /// the sharpness and spectrum probes iterate), parameters restored afterwards.
    pub fn hessian_product(&self, rows: &[usize], v: &[f64], radius: f64) -> Result<Vec<f64>> {
        Ok(self.with_hessian(rows, radius, |op| op.apply(v))?.0)
    }

    /// λ_max (warm-started), Adam's preconditioned λ_max, the edge of stability at `lr` and,
    /// when asked, Hutchinson's trace, on the fixed probe batch.
    pub(crate) fn sharpness(&mut self, lr: f64) -> Result<Vec<(String, f64)>> {
        let t0 = Instant::now();
        let spec = self.probes.spec.sharpness.expect("sharpness on");
        let rows = self.fixed_rows(spec.batch, SHARPNESS_SALT);
        let seed = self.seed ^ self.step;
        let precond = self.opt.adam_preconditioner();
        let (warm, warm_p) = (self.probes.eigen.take(), self.probes.precond_eigen.take());
        let ((top, top_p, trace), gradients) = self.with_hessian(&rows, spec.radius, |op| {
            let top =
                hessian::power_iteration(op, warm.as_deref(), spec.iterations, spec.tol, seed)?;
            let top_p = match &precond {
                Some(p) => Some(hessian::power_iteration(
                    &mut Preconditioned {
                        inner: op,
                        inv_sqrt: p.iter().map(|d| 1.0 / d.sqrt()).collect(),
                    },
                    warm_p.as_deref(),
                    spec.iterations,
                    spec.tol,
                    seed ^ 1,
                )?),
                None => None,
            };
            let trace = (spec.trace_samples > 0)
                .then(|| hessian::hutchinson(op, spec.trace_samples, seed ^ 2))
                .transpose()?;
            Ok((top, top_p, trace))
        })?;
        let mut extra = vec![
            ("sharpness/lambda_max".to_string(), top.value),
            ("sharpness/iterations".into(), top.iterations as f64),
        ];
        // At a zero learning rate (a schedule's last step) there is no edge to draw.
        if lr > 0.0 {
            extra.push((
                "sharpness/edge".into(),
                edge_of_stability(self.opt.hyper(), lr),
            ));
        }
        self.probes.eigen = Some(top.vector);
        if let Some(p) = top_p {
            extra.push(("sharpness/preconditioned".into(), p.value));
            self.probes.precond_eigen = Some(p.vector);
        }
        if let Some((t, _)) = trace {
            extra.push(("sharpness/trace".into(), t));
        }
        extra.push(("sharpness/gradients".into(), gradients as f64));
        extra.push(("probe_ms/sharpness".into(), elapsed_ms(t0)));
        Ok(extra)
    }

    /// The probe set's per-example losses, the groups that rose and fell most since the last
    /// probe, and the probe's line for `opposing.jsonl`.
    pub(crate) fn opposing(&mut self, step: u64) -> Result<(Scalars, Option<LogLine>)> {
        let t0 = Instant::now();
        let spec = self.probes.spec.opposing.expect("opposing on");
        let rows = self.fixed_rows(spec.size, 0x0995);
        let Targets::Classes { labels, names } = &self.data.targets else {
            return Ok((Vec::new(), None));
        };
        let classes = names.len();
        let mut loss = Vec::with_capacity(rows.len());
        for part in rows.chunks(1024) {
            let (x, _) = self.tensors(part)?;
            let out: Vec<f32> = candle_core::Module::forward(&self.net, &x)?
                .flatten_all()?
                .to_vec1()?;
            let y: Vec<u32> = part.iter().map(|&r| labels[r]).collect();
            loss.extend(opposing::losses(&out, classes, &y));
        }
        let probe = Probe::new(
            step,
            rows,
            loss,
            self.probes.last_probe.as_deref(),
            spec.top,
        );
        let mut extra: Vec<(String, f64)> = probe
            .summary()
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        // A spike: the probe set's loss a quarter above the last probe's.
        if let Some(prev) = &self.probes.last_probe {
            let before = prev.iter().map(|&l| l as f64).sum::<f64>() / prev.len().max(1) as f64;
            if extra[0].1 > 1.25 * before {
                extra.push(("opposing/spike".into(), extra[0].1));
            }
        }
        self.probes.last_probe = Some(probe.loss.clone());
        extra.push(("probe_ms/opposing".into(), elapsed_ms(t0)));
        let line = LogLine {
            file: OPPOSING_FILE,
            key: "probe",
            value: serde_json::to_value(&probe)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        };
        Ok((extra, Some(line)))
    }

    /// The Hessian's spectral density at the current weights by stochastic Lanczos
    /// quadrature on a fixed batch of `batch` training examples.
    pub fn spectrum(
        &self,
        lanczos_steps: usize,
        vectors: usize,
        batch: usize,
        radius: f64,
    ) -> Result<Spectrum> {
        let rows = self.probe_rows(batch, SHARPNESS_SALT);
        let seed = self.seed ^ 0x51C0;
        let ((runs, top), gradients) = self.with_hessian(&rows, radius, |op| {
            let runs = hessian::slq(op, lanczos_steps, vectors, seed)?;
            let top = hessian::power_iteration(op, None, 100, 1e-4, seed)?;
            Ok((runs, top))
        })?;
        let dim = self.net.parameter_count();
        Ok(Spectrum {
            step: self.step,
            dim,
            batch: rows.len(),
            lanczos_steps,
            trace: hessian::quadrature_trace(&runs, dim),
            runs,
            lambda_max: top.value,
            classes: self.data.targets.classes(),
            gradients,
        })
    }
}
