//! Learning-rate schedules: constant, cosine and linear decay (each with optional linear
//! warmup), and the *refined* schedule of "When, Why and How Much? Adaptive Learning Rate
//! Scheduling by Refinement" (Defazio et al. 2023) built from a previous run's gradient norms.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleName {
    #[default]
    Constant,
    Cosine,
    LinearDecay,
    Refined,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub name: ScheduleName,
    pub peak_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    /// For `refined`: the shape, normalised to a peak of 1, one value per step.
    pub shape: Vec<f64>,
}

impl Schedule {
    /// The learning rate for 0-based step `t`.
    pub fn lr(&self, t: u64) -> f64 {
        let total = self.total_steps.max(1);
        if self.name == ScheduleName::Refined {
            return self.peak_lr * sample(&self.shape, t, total);
        }
        let w = self.warmup_steps.min(total);
        if t < w {
            return self.peak_lr * (t + 1) as f64 / w as f64;
        }
        let span = (total - w).max(1) as f64;
        let progress = ((t - w) as f64 / span).clamp(0.0, 1.0);
        self.peak_lr
            * match self.name {
                ScheduleName::Constant => 1.0,
                ScheduleName::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
                ScheduleName::LinearDecay => 1.0 - progress,
                ScheduleName::Refined => unreachable!(),
            }
    }
}

/// The refined shape at step `t` of `total`, stretching the trace to the new run's length.
fn sample(shape: &[f64], t: u64, total: u64) -> f64 {
    match shape.len() {
        0 => 1.0,
        1 => shape[0],
        n => {
            let x = t as f64 / (total.max(2) - 1) as f64 * (n - 1) as f64;
            let (i, f) = (x.floor() as usize, x.fract());
            let j = (i + 1).min(n - 1);
            shape[i.min(n - 1)] * (1.0 - f) + shape[j] * f
        }
    }
}

/// Whether the trace comes from an Adam-family optimizer (use the L1 norm and `ĝ⁻¹`) or SGD
/// (the L2 norm and `ĝ⁻²`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Sgd,
    Adam,
}

/// The refined schedule's shape from a gradient-norm trace `g` (L2 norms for SGD, L1 for
/// Adam), peak 1 and last value 0:
/// 1. median filter of width `w = 2·⌊τT/2⌋ + 1` (τ = `tau`), with reflect padding at the end;
/// 2. weights `w_t = ĝ_t⁻²` (SGD) or `ĝ_t⁻¹` (Adam);
/// 3. `η_t ∝ w_t · Σ_{p>t} w_p`, normalised by its maximum.
pub fn refine(g: &[f64], family: Family, tau: f64) -> Result<Vec<f64>, String> {
    if g.len() < 2 {
        return Err(format!(
            "the gradient-norm trace has {} values; it needs at least 2",
            g.len()
        ));
    }
    if let Some(i) = g.iter().position(|v| !v.is_finite() || *v <= 0.0) {
        return Err(format!(
            "the gradient-norm trace has a non-positive or non-finite value at step {i}"
        ));
    }
    let smoothed = median_filter(g, tau);
    let weights: Vec<f64> = smoothed
        .iter()
        .map(|&v| match family {
            Family::Sgd => v.powi(-2),
            Family::Adam => 1.0 / v,
        })
        .collect();
    let mut tail = 0.0;
    let mut eta = vec![0.0; g.len()];
    for t in (0..g.len()).rev() {
        eta[t] = weights[t] * tail;
        tail += weights[t];
    }
    let max = eta.iter().copied().fold(0.0, f64::max);
    if max <= 0.0 {
        return Err("the refined schedule is zero everywhere".into());
    }
    Ok(eta.into_iter().map(|e| e / max).collect())
}

/// Median filter of odd width `2·⌊τT/2⌋ + 1`, values beyond the end mirrored (reflect) and
/// before the start clamped (nearest), as in the paper's reference code.
pub fn median_filter(g: &[f64], tau: f64) -> Vec<f64> {
    let n = g.len();
    let w = 2 * ((tau * n as f64) as usize / 2) + 1;
    let half = w / 2;
    // Reflect-pad the end by 2w (numpy 'reflect' excludes the edge value).
    let mut padded = g.to_vec();
    for k in 1..=2 * w {
        let idx = if n > 1 {
            (n - 1).saturating_sub(k % (2 * (n - 1)).max(1))
        } else {
            0
        };
        padded.push(g[idx.min(n - 1)]);
    }
    let at = |i: isize| padded[i.clamp(0, padded.len() as isize - 1) as usize];
    (0..n)
        .map(|t| {
            let mut window: Vec<f64> = (-(half as isize)..=half as isize)
                .map(|d| at(t as isize + d))
                .collect();
            window.sort_by(|a, b| a.total_cmp(b));
            window[half]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(name: ScheduleName, warmup: u64) -> Schedule {
        Schedule {
            name,
            peak_lr: 1.0,
            warmup_steps: warmup,
            total_steps: 10,
            shape: vec![],
        }
    }

    #[test]
    fn constant_cosine_and_linear_decay() {
        let c = sched(ScheduleName::Constant, 0);
        assert!((0..10).all(|t| c.lr(t) == 1.0));
        let lin = sched(ScheduleName::LinearDecay, 0);
        assert_eq!(lin.lr(0), 1.0);
        assert!((lin.lr(5) - 0.5).abs() < 1e-12);
        let cos = sched(ScheduleName::Cosine, 0);
        assert!((cos.lr(5) - 0.5).abs() < 1e-12);
        assert!((cos.lr(0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn warmup_rises_linearly_then_the_schedule_runs_over_the_rest() {
        let s = sched(ScheduleName::LinearDecay, 4);
        let lrs: Vec<f64> = (0..4).map(|t| s.lr(t)).collect();
        assert_eq!(lrs, [0.25, 0.5, 0.75, 1.0]);
        assert_eq!(s.lr(4), 1.0);
        assert!(
            (s.lr(7) - 0.5).abs() < 1e-12,
            "halfway through the 6 post-warmup steps"
        );
    }

    #[test]
    fn median_filter_on_a_fixed_trace() {
        // τ·T = 0.3·10 = 3 → width 3.
        let g = [1.0, 9.0, 2.0, 3.0, 8.0, 4.0, 5.0, 7.0, 6.0, 6.0];
        let m = median_filter(&g, 0.3);
        assert_eq!(m, [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 5.0, 6.0, 6.0, 6.0]);
    }

    #[test]
    fn refined_schedule_on_a_fixed_trace() {
        // Constant norms: weights are equal, η_t ∝ (T − 1 − t): linear decay to 0.
        let flat = refine(&[2.0; 5], Family::Sgd, 0.1).unwrap();
        assert_eq!(flat, [1.0, 0.75, 0.5, 0.25, 0.0]);
        // Norms falling early make a warmup emerge: the peak is not at t = 0.
        let g = [8.0, 4.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let r = refine(&g, Family::Sgd, 0.1).unwrap();
        let peak = r.iter().position(|&v| v == 1.0).unwrap();
        assert!(peak >= 3, "peak at {peak}: {r:?}");
        assert_eq!(*r.last().unwrap(), 0.0);
        // By hand for SGD: w = [1/64, 1/16, 1/4, 1, ...]; η_0 ∝ w_0·Σ_{p>0} w_p.
        let w: Vec<f64> = g.iter().map(|v: &f64| v.powi(-2)).collect();
        let raw = |t: usize| w[t] * w[t + 1..].iter().sum::<f64>();
        let max = (0..10).map(raw).fold(0.0, f64::max);
        assert!((r[0] - raw(0) / max).abs() < 1e-12);
        // Adam uses ĝ⁻¹.
        let a = refine(&g, Family::Adam, 0.1).unwrap();
        let wa: Vec<f64> = g.iter().map(|v| 1.0 / v).collect();
        let rawa = |t: usize| wa[t] * wa[t + 1..].iter().sum::<f64>();
        let maxa = (0..10).map(rawa).fold(0.0, f64::max);
        assert!((a[1] - rawa(1) / maxa).abs() < 1e-12);
    }

    #[test]
    fn a_refined_schedule_stretches_to_a_new_length() {
        let s = Schedule {
            name: ScheduleName::Refined,
            peak_lr: 0.1,
            warmup_steps: 0,
            total_steps: 9,
            shape: vec![1.0, 0.5, 0.0],
        };
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(4) - 0.05).abs() < 1e-12);
        assert!(s.lr(8).abs() < 1e-12);
    }

    #[test]
    fn bad_traces_are_refused() {
        assert!(refine(&[1.0], Family::Sgd, 0.1).is_err());
        assert!(
            refine(&[1.0, f64::NAN], Family::Sgd, 0.1)
                .unwrap_err()
                .contains("step 1")
        );
    }
}
