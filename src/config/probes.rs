//! `[probes]`: the gradient probes a supervised run computes, each with its cadence and size.
//! Off by default except EL2N, which costs nothing (it reads the logits every step computes).
//! Every key is hot: a running experiment picks up an edit at its next step.
//! `[data.subset]`: training on part of the data, ranked by a data-diet score or at random.

use super::Violation;
use descent_models::probes::{CoherenceSpec, El2nSpec, OpposingSpec, ProbeSpec, SharpnessSpec};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbesConfig {
    pub coherence: CoherenceConfig,
    pub sharpness: SharpnessConfig,
    pub el2n: El2nConfig,
    pub opposing: OpposingConfig,
}

/// Gradient coherence and noise scale from the micro-batches of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoherenceConfig {
    /// Every how many steps (0: off).
    pub every: u64,
    /// Micro-batches the step's batch is split into (their gradients are summed: the update
    /// is the same).
    pub micro_batches: usize,
    /// EMA weight of the two moments the ratios are read from.
    pub smoothing: f64,
}

impl Default for CoherenceConfig {
    fn default() -> Self {
        CoherenceConfig {
            every: 0,
            micro_batches: 4,
            smoothing: 0.9,
        }
    }
}

/// λ_max by power iteration on finite-difference Hessian–vector products.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharpnessConfig {
    /// Every how many steps (0: off).
    pub every: u64,
    /// Examples in the fixed probe batch the loss is taken on.
    pub batch: usize,
    /// Power iterations at most (two gradients each; warm-started from the last probe).
    pub iterations: usize,
    pub tol: f64,
    /// Finite-difference step relative to max(1, ‖θ‖).
    pub radius: f64,
    /// Rademacher vectors for Hutchinson's trace (0: no trace).
    pub trace_samples: usize,
}

impl Default for SharpnessConfig {
    fn default() -> Self {
        SharpnessConfig {
            every: 0,
            batch: 256,
            iterations: 20,
            tol: 1e-3,
            radius: 1e-3,
            trace_samples: 0,
        }
    }
}

/// EL2N scores of the training examples (classification).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct El2nConfig {
    pub enabled: bool,
    /// The window of steps whose batches are scored (the paper scores early in training).
    pub from_step: u64,
    pub to_step: Option<u64>,
}

impl Default for El2nConfig {
    fn default() -> Self {
        El2nConfig {
            enabled: true,
            from_step: 1,
            to_step: None,
        }
    }
}

/// Per-example loss changes on a fixed probe set (forward passes only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpposingConfig {
    /// Every how many steps (0: off).
    pub every: u64,
    /// Training examples in the probe set.
    pub size: usize,
    /// Examples in each of the rise and fall groups.
    pub top: usize,
}

impl Default for OpposingConfig {
    fn default() -> Self {
        OpposingConfig {
            every: 0,
            size: 512,
            top: 20,
        }
    }
}

impl ProbesConfig {
    pub fn is_default(&self) -> bool {
        *self == ProbesConfig::default()
    }

    /// The probes as the trainer takes them.
    pub fn spec(&self) -> ProbeSpec {
        let (c, s, e, o) = (&self.coherence, &self.sharpness, &self.el2n, &self.opposing);
        ProbeSpec {
            coherence: (c.every > 0).then_some(CoherenceSpec {
                every: c.every,
                micro_batches: c.micro_batches,
                smoothing: c.smoothing,
            }),
            sharpness: (s.every > 0).then_some(SharpnessSpec {
                every: s.every,
                batch: s.batch,
                iterations: s.iterations,
                tol: s.tol,
                radius: s.radius,
                trace_samples: s.trace_samples,
            }),
            el2n: e.enabled.then_some(El2nSpec {
                from_step: e.from_step,
                to_step: e.to_step,
            }),
            opposing: (o.every > 0).then_some(OpposingSpec {
                every: o.every,
                size: o.size,
                top: o.top,
            }),
        }
    }
}

/// `[data.subset]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsetConfig {
    /// `el2n` (the highest-scoring examples after `offset`) or `random`.
    pub by: SubsetBy,
    /// The fraction of the training split kept.
    pub keep: f64,
    /// With `by = "el2n"`: the fraction of hardest examples skipped first.
    #[serde(default)]
    pub offset: f64,
    /// With `by = "el2n"`: whose scores — an experiment (the mean over its runs) or a run id.
    #[serde(default)]
    pub scores: Option<String>,
    /// With `by = "random"`: the seed of the draw (default: the experiment's seed), so several
    /// random subsets can be compared at one initialisation.
    #[serde(default)]
    pub seed: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubsetBy {
    El2n,
    Random,
}

pub(crate) fn validate(p: &ProbesConfig, subset: Option<&SubsetConfig>) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut rule = |ok: bool, path: &[&'static str], msg: &str| {
        if !ok {
            v.push(Violation::new(path, msg));
        }
    };
    let c = &p.coherence;
    rule(
        c.micro_batches >= 2,
        &["probes", "coherence", "micro_batches"],
        "must be at least 2 (coherence compares the micro-batches' gradients)",
    );
    rule(
        (0.0..1.0).contains(&c.smoothing),
        &["probes", "coherence", "smoothing"],
        "must be in [0, 1)",
    );
    let s = &p.sharpness;
    rule(
        s.batch >= 1,
        &["probes", "sharpness", "batch"],
        "must be at least 1",
    );
    rule(
        s.iterations >= 1,
        &["probes", "sharpness", "iterations"],
        "must be at least 1",
    );
    rule(
        s.tol > 0.0 && s.tol < 1.0,
        &["probes", "sharpness", "tol"],
        "must be in (0, 1)",
    );
    rule(
        s.radius > 0.0 && s.radius <= 0.1,
        &["probes", "sharpness", "radius"],
        "must be in (0, 0.1]; f32 gradients want about 1e-3",
    );
    let e = &p.el2n;
    rule(
        e.to_step.is_none_or(|t| t >= e.from_step),
        &["probes", "el2n", "to_step"],
        "must not be before from_step",
    );
    let o = &p.opposing;
    rule(
        o.size >= 2,
        &["probes", "opposing", "size"],
        "must be at least 2",
    );
    rule(
        o.top >= 1 && o.top <= o.size,
        &["probes", "opposing", "top"],
        "must be between 1 and size",
    );
    if let Some(s) = subset {
        rule(
            s.keep > 0.0 && s.keep <= 1.0,
            &["data", "subset", "keep"],
            "must be in (0, 1]",
        );
        rule(
            (0.0..1.0).contains(&s.offset) && s.offset + s.keep <= 1.0 + 1e-12,
            &["data", "subset", "offset"],
            "must be in [0, 1) with offset + keep ≤ 1",
        );
        rule(
            s.by != SubsetBy::El2n || s.scores.is_some(),
            &["data", "subset", "scores"],
            "by = \"el2n\" ranks by a run's scores: scores = \"EXPERIMENT\" (the mean over its runs) or a run id",
        );
        rule(
            s.by != SubsetBy::Random || s.offset == 0.0,
            &["data", "subset", "offset"],
            "only by = \"el2n\" skips an offset",
        );
        rule(
            s.by != SubsetBy::El2n || s.seed.is_none(),
            &["data", "subset", "seed"],
            "only by = \"random\" draws with a seed",
        );
    }
    v
}
