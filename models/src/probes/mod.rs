//! Live gradient probes, computed inside the run on a cadence and recorded with the step:
//! coherence and noise scale, sharpness (λ_max, trace), data-diet scores (EL2N), opposing
//! signals; and the Hessian spectral density on demand. The formulas and their references
//! are in each module; `supervised` runs them inside the supervised trainer.

pub mod coherence;
pub mod el2n;
pub mod hessian;
pub mod linalg;
pub mod opposing;
pub(crate) mod supervised;

pub use supervised::Spectrum;

/// Gradient coherence from `micro_batches` micro-batch gradients, every `every` steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoherenceSpec {
    pub every: u64,
    pub micro_batches: usize,
    /// EMA weight of the moments.
    pub smoothing: f64,
}

/// λ_max (and optionally the trace) on a fixed probe batch every `every` steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SharpnessSpec {
    pub every: u64,
    /// Examples in the probe batch.
    pub batch: usize,
    /// Power iterations at most (each two gradients).
    pub iterations: usize,
    /// Relative change of the estimate that ends the iteration.
    pub tol: f64,
    /// Finite-difference radius relative to max(1, ‖θ‖).
    pub radius: f64,
    /// Rademacher vectors for Hutchinson's trace (0: no trace).
    pub trace_samples: usize,
}

/// EL2N scores of the examples the steps in the window train on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct El2nSpec {
    pub from_step: u64,
    pub to_step: Option<u64>,
}

/// Per-example loss changes on a fixed probe set every `every` steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpposingSpec {
    pub every: u64,
    pub size: usize,
    /// Examples in each of the rise and fall groups.
    pub top: usize,
}

/// Which probes a run computes (`None`: off).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProbeSpec {
    pub coherence: Option<CoherenceSpec>,
    pub sharpness: Option<SharpnessSpec>,
    pub el2n: Option<El2nSpec>,
    pub opposing: Option<OpposingSpec>,
}

/// The file in a checkpoint folder (and the run's export) holding the EL2N scores.
pub const EL2N_FILE: &str = "el2n.json";
/// The run's log of opposing-signal probes, one JSON line per probe.
pub const OPPOSING_FILE: &str = "opposing.jsonl";

/// The edge-of-stability threshold on the sharpness the optimizer is judged by, at learning
/// rate `lr`: (2 + 2β)/η for SGD with heavy-ball momentum β (2/η without), and
/// (2 + 2β₁)/((1 − β₁)η) on the preconditioned sharpness for Adam (38/η at β₁ = 0.9).
pub fn edge_of_stability(h: &crate::optim::Hyper, lr: f64) -> f64 {
    match h.name {
        crate::optim::OptimName::Sgd => (2.0 + 2.0 * h.momentum) / lr,
        crate::optim::OptimName::Adamw => (2.0 + 2.0 * h.beta1) / ((1.0 - h.beta1) * lr),
    }
}
