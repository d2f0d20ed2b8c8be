//! Noise schedules and samplers, descent's own. candle's stable-diffusion schedulers divide
//! integers in the cosine schedule, truncate linspace spacing, use an integer step ratio for
//! trailing spacing and draw noise from the device RNG (shared/notes); these follow diffusers'
//! `set_timesteps` and `step` equations instead, in f64 on the host.
//!
//! One departure from diffusers: DDIM's previous timestep is the next entry of the timestep
//! list, not `t − T/N` (which is wrong under `linspace` spacing, diffusers issue 12633). Under
//! `leading` and `trailing` spacing with `T` divisible by `N` the two agree.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BetaSchedule {
    #[serde(rename = "linear")]
    Linear,
    #[serde(rename = "scaled_linear")]
    ScaledLinear,
    #[serde(rename = "squaredcos_cap_v2")]
    SquaredCos,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prediction {
    #[serde(rename = "epsilon")]
    Epsilon,
    #[serde(rename = "v_prediction")]
    V,
    #[serde(rename = "sample")]
    Sample,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

/// The samplers descent implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    Ddpm,
    Ddim,
    Euler,
    EulerAncestral,
}

impl SamplerKind {
    pub const ALL: [SamplerKind; 4] = [
        SamplerKind::Ddpm,
        SamplerKind::Ddim,
        SamplerKind::Euler,
        SamplerKind::EulerAncestral,
    ];

    pub fn parse(s: &str) -> Result<SamplerKind, String> {
        SamplerKind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| {
                format!("unknown sampler {s:?}; expected one of ddpm, ddim, euler, euler-ancestral")
            })
    }

    /// diffusers' class name for this sampler's scheduler.
    pub fn class_name(self) -> &'static str {
        match self {
            SamplerKind::Ddpm => "DDPMScheduler",
            SamplerKind::Ddim => "DDIMScheduler",
            SamplerKind::Euler => "EulerDiscreteScheduler",
            SamplerKind::EulerAncestral => "EulerAncestralDiscreteScheduler",
        }
    }

    /// The sampler a diffusers scheduler class maps to (`None`: one descent does not have).
    pub fn from_class_name(name: &str) -> Option<SamplerKind> {
        SamplerKind::ALL
            .into_iter()
            .find(|k| k.class_name() == name)
    }
}

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SamplerKind::Ddpm => "ddpm",
            SamplerKind::Ddim => "ddim",
            SamplerKind::Euler => "euler",
            SamplerKind::EulerAncestral => "euler-ancestral",
        })
    }
}

/// The training-time noise process and the sampling options diffusers keeps beside it
/// (`scheduler_config.json`).
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseConfig {
    pub train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    pub prediction: Prediction,
    /// `None`: the sampler's own default (linspace for Euler, leading otherwise).
    pub spacing: Option<Spacing>,
    pub steps_offset: usize,
    pub clip_sample: bool,
    pub clip_sample_range: f64,
    pub set_alpha_to_one: bool,
    /// The scheduler class the folder was saved with, when descent has it.
    pub default_sampler: Option<SamplerKind>,
}

impl Default for NoiseConfig {
    /// diffusers' class defaults (DDPM/DDIM).
    fn default() -> Self {
        NoiseConfig {
            train_timesteps: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            prediction: Prediction::Epsilon,
            spacing: None,
            steps_offset: 0,
            clip_sample: true,
            clip_sample_range: 1.0,
            set_alpha_to_one: true,
            default_sampler: None,
        }
    }
}

impl NoiseConfig {
    /// ᾱ_t for t = 0..T.
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        let n = self.train_timesteps;
        let betas: Vec<f64> = match self.beta_schedule {
            BetaSchedule::Linear => linspace(self.beta_start, self.beta_end, n),
            BetaSchedule::ScaledLinear => linspace(self.beta_start.sqrt(), self.beta_end.sqrt(), n)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            BetaSchedule::SquaredCos => {
                // Glide's cosine schedule: β_i = 1 − ᾱ((i+1)/T)/ᾱ(i/T), capped at 0.999.
                let abar = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..n)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                        (1.0 - abar(t2) / abar(t1)).min(0.999)
                    })
                    .collect()
            }
        };
        let mut acc = 1.0;
        betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect()
    }

    /// The spacing a sampler uses with this config.
    pub fn spacing_for(&self, kind: SamplerKind) -> Spacing {
        self.spacing.unwrap_or(match kind {
            SamplerKind::Euler | SamplerKind::EulerAncestral => Spacing::Linspace,
            SamplerKind::Ddpm | SamplerKind::Ddim => Spacing::Leading,
        })
    }
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

/// numpy's `round` (half to even), which diffusers' spacing uses.
fn round_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// One sampling run's schedule: the timesteps and, for the Euler samplers, the sigmas.
#[derive(Clone, Debug)]
pub struct Scheduler {
    pub kind: SamplerKind,
    pub config: NoiseConfig,
    /// DDIM's η (0: deterministic).
    pub eta: f64,
    /// Timesteps fed to the model, first to last (fractional for Euler under linspace).
    pub timesteps: Vec<f64>,
    /// σ per step plus a final 0 (Euler samplers only).
    pub sigmas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
}

impl Scheduler {
    pub fn new(
        kind: SamplerKind,
        config: &NoiseConfig,
        steps: usize,
        eta: f64,
    ) -> Result<Scheduler, String> {
        let t_train = config.train_timesteps;
        if steps == 0 {
            return Err("steps must be at least 1".into());
        }
        if steps > t_train {
            return Err(format!(
                "{steps} steps is more than the {t_train} training timesteps"
            ));
        }
        if !(eta.is_finite() && eta >= 0.0) {
            return Err(format!("eta must be zero or positive, not {eta}"));
        }
        let ac = config.alphas_cumprod();
        let spacing = config.spacing_for(kind);
        let (t, n) = (t_train as f64, steps as f64);
        let offset = config.steps_offset as f64;
        let euler = matches!(kind, SamplerKind::Euler | SamplerKind::EulerAncestral);
        let mut timesteps: Vec<f64> = match spacing {
            Spacing::Linspace => {
                let v = linspace(0.0, t - 1.0, steps);
                if euler {
                    v
                } else {
                    v.into_iter().map(round_even).collect()
                }
            }
            Spacing::Leading => {
                let ratio = (t_train / steps) as f64;
                (0..steps)
                    .map(|i| round_even(i as f64 * ratio) + offset)
                    .collect()
            }
            Spacing::Trailing => {
                let ratio = t / n;
                // np.arange(T, 0, -T/N): T − i·ratio while > 0.
                (0..)
                    .map(|i| t - i as f64 * ratio)
                    .take_while(|v| *v > 0.0)
                    .map(|v| round_even(v) - 1.0)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect()
            }
        };
        timesteps.reverse();
        if let Some(bad) = timesteps.iter().find(|&&v| v < 0.0 || v > t - 1.0) {
            return Err(format!(
                "timestep {bad} is outside 0..{t_train} (steps_offset = {} is too large for {steps} steps)",
                config.steps_offset
            ));
        }
        let sigmas = if euler {
            let all: Vec<f64> = ac.iter().map(|a| ((1.0 - a) / a).sqrt()).collect();
            let mut s: Vec<f64> = timesteps.iter().map(|&x| interp(x, &all)).collect();
            s.push(0.0);
            s
        } else {
            Vec::new()
        };
        Ok(Scheduler {
            kind,
            config: config.clone(),
            eta,
            timesteps,
            sigmas,
            alphas_cumprod: ac,
        })
    }

    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// ᾱ at an integer timestep (`None`: the end of sampling).
    fn alpha_at(&self, t: Option<f64>) -> f64 {
        match t {
            Some(t) => self.alphas_cumprod[t as usize],
            None => match self.kind {
                SamplerKind::Ddim if !self.config.set_alpha_to_one => self.alphas_cumprod[0],
                _ => 1.0,
            },
        }
    }

    /// How much the starting noise is scaled (`init_noise_sigma`).
    pub fn init_noise_sigma(&self) -> f64 {
        match self.kind {
            SamplerKind::Euler | SamplerKind::EulerAncestral => {
                let max = self.sigmas.iter().cloned().fold(0.0, f64::max);
                match self.config.spacing_for(self.kind) {
                    Spacing::Linspace | Spacing::Trailing => max,
                    Spacing::Leading => (max * max + 1.0).sqrt(),
                }
            }
            _ => 1.0,
        }
    }

    /// The factor the model input is scaled by at step `i` (`scale_model_input`).
    pub fn input_scale(&self, i: usize) -> f64 {
        match self.kind {
            SamplerKind::Euler | SamplerKind::EulerAncestral => {
                1.0 / (self.sigmas[i].powi(2) + 1.0).sqrt()
            }
            _ => 1.0,
        }
    }

    /// The model's x0 and ε from its output at step `i` (x0 unclipped). For the Euler
    /// samplers `x` is σ-scaled, and ε is the output itself.
    fn x0_eps(&self, i: usize, x: f64, o: f64) -> (f64, f64) {
        let pred = self.config.prediction;
        match self.kind {
            SamplerKind::Ddim | SamplerKind::Ddpm => {
                let ap = self.alpha_at(Some(self.timesteps[i]));
                let (sa, sb) = (ap.sqrt(), (1.0 - ap).sqrt());
                match pred {
                    Prediction::Epsilon => ((x - sb * o) / sa, o),
                    Prediction::V => (sa * x - sb * o, sa * o + sb * x),
                    Prediction::Sample => (o, (x - sa * o) / sb),
                }
            }
            SamplerKind::Euler | SamplerKind::EulerAncestral => {
                let s = self.sigmas[i];
                let x0 = match pred {
                    Prediction::Epsilon => x - s * o,
                    Prediction::V => o * (-s / (s * s + 1.0).sqrt()) + x / (s * s + 1.0),
                    Prediction::Sample => o,
                };
                (x0, o)
            }
        }
    }

    /// The denoised estimate x0 at step `i` from the model's output.
    pub fn denoised(&self, i: usize, x: &[f32], out: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(out)
            .map(|(&x, &o)| self.x0_eps(i, x as f64, o as f64).0 as f32)
            .collect()
    }

    /// Step `i`: the sample at the next timestep from `x`, the model's output and, for a
    /// stochastic step, fresh noise (diffusers' `step`, with the defaults `s_churn = 0`).
    pub fn step(&self, i: usize, x: &[f32], out: &[f32], noise: Option<&[f32]>) -> Vec<f32> {
        let next = self.timesteps.get(i + 1).copied();
        let z = |k: usize| noise.map_or(0.0, |n| n[k] as f64);
        match self.kind {
            SamplerKind::Ddim | SamplerKind::Ddpm => {
                let ap = self.alpha_at(Some(self.timesteps[i]));
                let app = self.alpha_at(next);
                let bp = 1.0 - ap;
                let clip = self
                    .config
                    .clip_sample
                    .then_some(self.config.clip_sample_range);
                let x0_eps = |x: f64, o: f64| {
                    let (x0, eps) = self.x0_eps(i, x, o);
                    (clip.map_or(x0, |r| x0.clamp(-r, r)), eps)
                };
                if self.kind == SamplerKind::Ddim {
                    let var = (1.0 - app) / bp * (1.0 - ap / app);
                    let std = self.eta * var.max(0.0).sqrt();
                    let dir = (1.0 - app - std * std).max(0.0).sqrt();
                    x.iter()
                        .zip(out)
                        .enumerate()
                        .map(|(k, (&x, &o))| {
                            let (x0, eps) = x0_eps(x as f64, o as f64);
                            (app.sqrt() * x0 + dir * eps + std * z(k)) as f32
                        })
                        .collect()
                } else {
                    let alpha_t = ap / app;
                    let beta_t = 1.0 - alpha_t;
                    let c0 = app.sqrt() * beta_t / bp;
                    let cx = alpha_t.sqrt() * (1.0 - app) / bp;
                    let var = ((1.0 - app) / bp * beta_t).max(1e-20);
                    let std = if self.timesteps[i] > 0.0 {
                        var.sqrt()
                    } else {
                        0.0
                    };
                    x.iter()
                        .zip(out)
                        .enumerate()
                        .map(|(k, (&x, &o))| {
                            let (x0, _) = x0_eps(x as f64, o as f64);
                            (c0 * x0 + cx * x as f64 + std * z(k)) as f32
                        })
                        .collect()
                }
            }
            SamplerKind::Euler | SamplerKind::EulerAncestral => {
                let s = self.sigmas[i];
                let s_next = self.sigmas[i + 1];
                let (s_to, s_up) = if self.kind == SamplerKind::EulerAncestral {
                    let up = (s_next * s_next * (s * s - s_next * s_next) / (s * s)).sqrt();
                    ((s_next * s_next - up * up).max(0.0).sqrt(), up)
                } else {
                    (s_next, 0.0)
                };
                x.iter()
                    .zip(out)
                    .enumerate()
                    .map(|(k, (&x, &o))| {
                        let x = x as f64;
                        let d = (x - self.x0_eps(i, x, o as f64).0) / s;
                        (x + d * (s_to - s) + z(k) * s_up) as f32
                    })
                    .collect()
            }
        }
    }

    /// Whether step `i` needs fresh noise.
    pub fn needs_noise(&self, i: usize) -> bool {
        match self.kind {
            SamplerKind::Ddpm => self.timesteps[i] > 0.0,
            SamplerKind::Ddim => self.eta > 0.0,
            SamplerKind::EulerAncestral => self.sigmas[i + 1] > 0.0,
            SamplerKind::Euler => false,
        }
    }

    /// The noised sample for training: √ᾱ_t·x0 + √(1−ᾱ_t)·ε, and the target for the
    /// configured prediction.
    pub fn training_target(ac: f64, x0: f32, eps: f32, pred: Prediction) -> (f32, f32) {
        let (sa, sb) = (ac.sqrt() as f32, (1.0 - ac).sqrt() as f32);
        let xt = sa * x0 + sb * eps;
        let target = match pred {
            Prediction::Epsilon => eps,
            Prediction::V => sa * eps - sb * x0,
            Prediction::Sample => x0,
        };
        (xt, target)
    }
}

/// numpy's `interp` of `x` over the points (i, ys[i]).
fn interp(x: f64, ys: &[f64]) -> f64 {
    let last = ys.len() - 1;
    if x <= 0.0 {
        return ys[0];
    }
    if x >= last as f64 {
        return ys[last];
    }
    let i = x.floor() as usize;
    let f = x - i as f64;
    ys[i] + (ys[i + 1] - ys[i]) * f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NoiseConfig {
        NoiseConfig::default()
    }

    #[test]
    fn alphas_follow_the_beta_formulas() {
        let ac = cfg().alphas_cumprod();
        assert_eq!(ac.len(), 1000);
        assert!((ac[0] - (1.0 - 1e-4)).abs() < 1e-15);
        let b1 = 1e-4 + (0.02 - 1e-4) / 999.0;
        assert!((ac[1] - (1.0 - 1e-4) * (1.0 - b1)).abs() < 1e-15);
        let sd = NoiseConfig {
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            ..cfg()
        }
        .alphas_cumprod();
        assert!((sd[0] - (1.0 - 0.00085)).abs() < 1e-15);
        let last = 0.012f64;
        assert!((sd[999] / sd[998] - (1.0 - last)).abs() < 1e-12);
        // The cosine schedule: ᾱ_t ≈ f(t+1)/f(0) with f the squared cosine (uncapped steps).
        let cos = NoiseConfig {
            beta_schedule: BetaSchedule::SquaredCos,
            ..cfg()
        }
        .alphas_cumprod();
        let f = |t: f64| {
            ((t / 1000.0 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        for t in [0usize, 10, 500, 900] {
            assert!(
                (cos[t] - f(t as f64 + 1.0) / f(0.0)).abs() < 1e-12,
                "t = {t}"
            );
        }
    }

    #[test]
    fn timesteps_for_each_spacing() {
        let ts = |spacing, kind, steps, offset| {
            let c = NoiseConfig {
                spacing: Some(spacing),
                steps_offset: offset,
                ..cfg()
            };
            Scheduler::new(kind, &c, steps, 0.0).unwrap().timesteps
        };
        // diffusers: leading = arange(N)·(T//N) reversed + offset.
        assert_eq!(
            ts(Spacing::Leading, SamplerKind::Ddim, 10, 1),
            vec![901., 801., 701., 601., 501., 401., 301., 201., 101., 1.]
        );
        // trailing = round(arange(T, 0, −T/N)) − 1.
        assert_eq!(
            ts(Spacing::Trailing, SamplerKind::Ddim, 3, 0),
            vec![999., 666., 332.]
        );
        // linspace = round(linspace(0, T−1, N)) reversed; Euler keeps the fractions.
        assert_eq!(
            ts(Spacing::Linspace, SamplerKind::Ddim, 4, 0),
            vec![999., 666., 333., 0.]
        );
        assert_eq!(
            ts(Spacing::Linspace, SamplerKind::Euler, 3, 0),
            vec![999., 499.5, 0.]
        );
        assert!(
            Scheduler::new(
                SamplerKind::Ddim,
                &NoiseConfig {
                    steps_offset: 200,
                    ..cfg()
                },
                10,
                0.0
            )
            .is_err()
        );
        assert!(Scheduler::new(SamplerKind::Ddim, &cfg(), 0, 0.0).is_err());
    }

    #[test]
    fn euler_sigmas_interpolate_and_end_at_zero() {
        let s = Scheduler::new(SamplerKind::Euler, &cfg(), 3, 0.0).unwrap();
        let ac = cfg().alphas_cumprod();
        let sig = |t: usize| ((1.0 - ac[t]) / ac[t]).sqrt();
        assert!((s.sigmas[0] - sig(999)).abs() < 1e-12);
        assert!((s.sigmas[1] - (sig(499) + sig(500)) / 2.0).abs() < 1e-12);
        assert!((s.sigmas[2] - sig(0)).abs() < 1e-12);
        assert_eq!(s.sigmas[3], 0.0);
        assert!((s.init_noise_sigma() - sig(999)).abs() < 1e-12);
        assert!((s.input_scale(0) - 1.0 / (sig(999).powi(2) + 1.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn ddim_with_eta_zero_is_deterministic_and_recovers_x0_from_the_true_noise() {
        let c = NoiseConfig {
            clip_sample: false,
            ..cfg()
        };
        let s = Scheduler::new(SamplerKind::Ddim, &c, 10, 0.0).unwrap();
        assert!(!s.needs_noise(0));
        let ac = s.alphas_cumprod()[s.timesteps[0] as usize];
        let (x0, eps) = ([0.5f32, -0.25], [1.0f32, -2.0]);
        let xt: Vec<f32> = (0..2)
            .map(|k| Scheduler::training_target(ac, x0[k], eps[k], Prediction::Epsilon).0)
            .collect();
        let a = s.step(0, &xt, &eps, None);
        let b = s.step(0, &xt, &eps, None);
        assert_eq!(a, b);
        // With the true ε, x at the next timestep is x0 noised by the same ε.
        let app = s.alphas_cumprod()[s.timesteps[1] as usize];
        for k in 0..2 {
            let want = app.sqrt() * x0[k] as f64 + (1.0 - app).sqrt() * eps[k] as f64;
            assert!((a[k] as f64 - want).abs() < 1e-5);
        }
    }

    #[test]
    fn predictions_agree_on_the_same_truth() {
        // ε, v and x0 targets describe one noised point: every prediction type steps it alike.
        let base = NoiseConfig {
            clip_sample: false,
            ..cfg()
        };
        for kind in [SamplerKind::Ddim, SamplerKind::Ddpm, SamplerKind::Euler] {
            let mut results = Vec::new();
            for pred in [Prediction::Epsilon, Prediction::V, Prediction::Sample] {
                let c = NoiseConfig {
                    prediction: pred,
                    ..base.clone()
                };
                let s = Scheduler::new(kind, &c, 10, 0.0).unwrap();
                let t = s.timesteps[2];
                let ac = s.alphas_cumprod()[t as usize];
                let (xt, target) = Scheduler::training_target(ac, 0.3, -0.7, pred);
                // Euler's x is σ-scaled: x_euler = x_t/√ᾱ.
                let x = if kind == SamplerKind::Euler {
                    xt / ac.sqrt() as f32
                } else {
                    xt
                };
                results.push(s.step(2, &[x], &[target], Some(&[0.0]))[0]);
            }
            assert!(
                (results[0] - results[1]).abs() < 1e-5,
                "{kind}: {results:?}"
            );
            assert!(
                (results[0] - results[2]).abs() < 1e-5,
                "{kind}: {results:?}"
            );
        }
    }

    #[test]
    fn round_is_half_to_even_like_numpy() {
        assert_eq!(round_even(0.5), 0.0);
        assert_eq!(round_even(1.5), 2.0);
        assert_eq!(round_even(332.5), 332.0);
        assert_eq!(round_even(2.4), 2.0);
    }
}
