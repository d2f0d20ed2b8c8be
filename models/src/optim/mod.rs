//! Optimizers (SGD with momentum/Nesterov, AdamW), global-norm clipping and LR schedules.
//!
//! On the CPU each parameter is updated by one fused, in-place pass over its data (a candle
//! in-place custom op) that also measures the update for the metrics; candle-nn's AdamW
//! allocates about a dozen temporaries per parameter and hides its moments. On other devices
//! the same equations run as tensor ops.

mod fused;
pub mod schedule;

use crate::nn::Param;
use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimName {
    Sgd,
    #[default]
    Adamw,
}

impl std::fmt::Display for OptimName {
    /// The name configs use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimName::Sgd => "sgd",
            OptimName::Adamw => "adamw",
        })
    }
}

/// Hyper-parameters. `lr` is not here: the schedule gives it per step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    pub name: OptimName,
    pub weight_decay: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Hyper {
    /// AdamW with PyTorch's defaults: β₁ 0.9, β₂ 0.999, ε 1e-8.
    pub fn adamw(weight_decay: f64) -> Hyper {
        Hyper {
            name: OptimName::Adamw,
            weight_decay,
            momentum: 0.0,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Per-parameter optimizer state: SGD keeps its momentum buffer in `m`; AdamW its first and
/// second moments in `m` and `v`.
struct State {
    m: Vec<f32>,
    v: Vec<f32>,
}

pub struct Optimizer {
    hyper: Hyper,
    states: Vec<State>,
    /// Updates applied so far (AdamW's bias correction uses it).
    pub t: u64,
}

/// What one update did to one parameter, for the update/weight ratio.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UpdateStats {
    /// Σ Δ² over the parameter's elements.
    pub update_sq: f64,
    /// Σ w² after the update.
    pub weight_sq: f64,
}

impl UpdateStats {
    pub fn ratio(&self) -> f64 {
        (self.update_sq / self.weight_sq.max(1e-30)).sqrt()
    }
}

impl Optimizer {
    pub fn new(hyper: Hyper, params: &[Param]) -> Optimizer {
        let states = params
            .iter()
            .map(|p| State {
                m: vec![0.0; p.var.elem_count()],
                v: if hyper.name == OptimName::Adamw {
                    vec![0.0; p.var.elem_count()]
                } else {
                    Vec::new()
                },
            })
            .collect();
        Optimizer {
            hyper,
            states,
            t: 0,
        }
    }

    pub fn hyper(&self) -> &Hyper {
        &self.hyper
    }

    /// Applies one update with learning rate `lr`, the gradients scaled by `grad_scale`
    /// (global-norm clipping). `grads[i]` belongs to `params[i]`.
    pub fn step(
        &mut self,
        params: &[Param],
        grads: &[Tensor],
        lr: f64,
        grad_scale: f64,
    ) -> Result<Vec<UpdateStats>> {
        self.t += 1;
        let step = fused::Step {
            hyper: self.hyper,
            lr,
            grad_scale,
            t: self.t,
        };
        params
            .iter()
            .zip(grads)
            .zip(&mut self.states)
            .map(|((p, g), s)| fused::update(&step, &p.var, g, s))
            .collect()
    }

    /// AdamW's per-coordinate preconditioner P = (1 − β₁ᵗ)(√(v/(1 − β₂ᵗ)) + ε), the
    /// parameters end to end: the step is −η·P⁻¹·m, so the stability of Adam is judged on
    /// λ_max(P⁻¹H) ("Adaptive Gradient Methods at the Edge of Stability"). `None` for SGD and
    /// before the first update.
    pub fn adam_preconditioner(&self) -> Option<Vec<f64>> {
        let h = &self.hyper;
        if h.name != OptimName::Adamw || self.t == 0 {
            return None;
        }
        let t = self.t as i32;
        let (c1, c2) = (1.0 - h.beta1.powi(t), 1.0 - h.beta2.powi(t));
        Some(
            self.states
                .iter()
                .flat_map(|s| s.v.iter())
                .map(|&v| c1 * ((v as f64 / c2).sqrt() + h.eps))
                .collect(),
        )
    }

    /// The state as named tensors for a checkpoint: `NAME.m`, `NAME.v` and `t`.
    pub fn state_tensors(&self, params: &[Param]) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (p, s) in params.iter().zip(&self.states) {
            let shape = p.var.dims();
            out.insert(
                format!("{}.m", p.name),
                Tensor::from_slice(&s.m, shape, &Device::Cpu)?,
            );
            if !s.v.is_empty() {
                out.insert(
                    format!("{}.v", p.name),
                    Tensor::from_slice(&s.v, shape, &Device::Cpu)?,
                );
            }
        }
        // f64 holds every step count exactly (up to 2^53).
        out.insert("t".into(), Tensor::new(&[self.t as f64], &Device::Cpu)?);
        Ok(out)
    }

    /// Restores what [`Optimizer::state_tensors`] saved, checking every shape.
    pub fn load_state(&mut self, params: &[Param], saved: &HashMap<String, Tensor>) -> Result<()> {
        let get = |key: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = saved
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks {key}")))?;
            if t.dims() != shape {
                candle_core::bail!(
                    "optimizer state {key} has shape {:?}, expected {shape:?}",
                    t.dims()
                );
            }
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
        };
        for (p, s) in params.iter().zip(&mut self.states) {
            s.m = get(&format!("{}.m", p.name), p.var.dims())?;
            if self.hyper.name == OptimName::Adamw {
                s.v = get(&format!("{}.v", p.name), p.var.dims())?;
            }
        }
        let t = saved
            .get("t")
            .ok_or_else(|| candle_core::Error::Msg("optimizer state lacks t".into()))?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        self.t = t.first().copied().unwrap_or(0.0) as u64;
        Ok(())
    }
}

/// The factor that clips a gradient of global L2 norm `norm` to at most `max_norm`
/// (PyTorch's `clip_grad_norm_`: `max_norm / (norm + 1e-6)`, capped at 1).
pub fn clip_scale(norm: f64, max_norm: Option<f64>) -> f64 {
    match max_norm {
        Some(m) if norm.is_finite() && norm > m => m / (norm + 1e-6),
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn param(values: &[f32]) -> Vec<Param> {
        vec![Param {
            name: "w".into(),
            var: Var::from_slice(values, values.len(), &Device::Cpu).unwrap(),
        }]
    }

    fn hyper(name: OptimName) -> Hyper {
        Hyper {
            name,
            weight_decay: 0.1,
            momentum: 0.9,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    fn values(p: &[Param]) -> Vec<f32> {
        p[0].var.to_vec1().unwrap()
    }

    const GRADS: [[f32; 2]; 3] = [[1.0, -2.0], [0.5, 0.5], [-1.0, 3.0]];

    /// Runs three steps with fixed gradients, returning the parameters after each.
    fn run(h: Hyper, lr: f64) -> Vec<Vec<f32>> {
        let p = param(&[1.0, -1.0]);
        let mut opt = Optimizer::new(h, &p);
        GRADS
            .iter()
            .map(|g| {
                let g = Tensor::new(g, &Device::Cpu).unwrap();
                opt.step(&p, &[g], lr, 1.0).unwrap();
                values(&p)
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f64]) -> bool {
        a.iter().zip(b).all(|(x, y)| (*x as f64 - y).abs() < 1e-5)
    }

    #[test]
    fn sgd_momentum_matches_the_update_equations() {
        for nesterov in [false, true] {
            let h = Hyper {
                nesterov,
                ..hyper(OptimName::Sgd)
            };
            let got = run(h, 0.1);
            let (mut p, mut b) = ([1.0f64, -1.0], [0.0f64; 2]);
            for (k, g) in GRADS.iter().enumerate() {
                for i in 0..2 {
                    let d = g[i] as f64 + 0.1 * p[i];
                    b[i] = 0.9 * b[i] + d;
                    let step = if nesterov { d + 0.9 * b[i] } else { b[i] };
                    p[i] -= 0.1 * step;
                }
                assert!(
                    close(&got[k], &p),
                    "nesterov={nesterov} step {k}: {:?} vs {p:?}",
                    got[k]
                );
            }
        }
    }

    #[test]
    fn adamw_matches_the_update_equations() {
        let got = run(hyper(OptimName::Adamw), 0.01);
        let (mut p, mut m, mut v) = ([1.0f64, -1.0], [0.0f64; 2], [0.0f64; 2]);
        for (k, g) in GRADS.iter().enumerate() {
            let t = (k + 1) as i32;
            for i in 0..2 {
                let g = g[i] as f64;
                p[i] *= 1.0 - 0.01 * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let (mh, vh) = (
                    m[i] / (1.0 - 0.9f64.powi(t)),
                    v[i] / (1.0 - 0.999f64.powi(t)),
                );
                p[i] -= 0.01 * mh / (vh.sqrt() + 1e-8);
            }
            assert!(close(&got[k], &p), "step {k}: {:?} vs {p:?}", got[k]);
        }
    }

    /// Every rule over whole blocks, parallel chunks and a short last block gives, bit for bit,
    /// the f32 arithmetic of the equations applied one element at a time.
    #[test]
    fn vectorised_updates_equal_the_element_by_element_equations() {
        let n = 40_003;
        let start: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let grads: Vec<f32> = (0..n)
            .map(|i| ((i * 104729) % 997) as f32 / 500.0 - 1.0)
            .collect();
        for (name, momentum, nesterov) in [
            (OptimName::Adamw, 0.0, false),
            (OptimName::Sgd, 0.9, false),
            (OptimName::Sgd, 0.9, true),
            (OptimName::Sgd, 0.0, false),
        ] {
            let h = Hyper {
                name,
                momentum,
                nesterov,
                ..hyper(name)
            };
            let p = param(&start);
            let mut opt = Optimizer::new(h, &p);
            let (lr, scale) = (0.01f32, 0.5f32);
            let (mut want, mut m, mut v) = (start.clone(), vec![0f32; n], vec![0f32; n]);
            for t in 1..=3 {
                let g = Tensor::from_slice(&grads, n, &Device::Cpu).unwrap();
                opt.step(&p, &[g], lr as f64, scale as f64).unwrap();
                let (wd, mu) = (0.1f32, momentum as f32);
                for i in 0..n {
                    let gi = grads[i] * scale;
                    want[i] = match name {
                        OptimName::Adamw => {
                            let (b1, b2) = (0.9f32, 0.999f32);
                            m[i] = b1 * m[i] + (1.0 - b1) * gi;
                            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                            let m_hat = m[i] / (1.0 - b1.powi(t));
                            let v_hat = v[i] / (1.0 - b2.powi(t));
                            want[i] * (1.0 - lr * wd) - lr * m_hat / (v_hat.sqrt() + 1e-8)
                        }
                        OptimName::Sgd => {
                            let mut d = gi + wd * want[i];
                            if mu != 0.0 {
                                m[i] = mu * m[i] + d;
                                d = if nesterov { d + mu * m[i] } else { m[i] };
                            }
                            want[i] + -lr * d
                        }
                    };
                }
            }
            let got = values(&p);
            let differ = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(
                differ.count(),
                0,
                "{name} momentum {momentum} nesterov {nesterov}"
            );
        }
    }

    #[test]
    fn update_stats_measure_the_change() {
        let p = param(&[3.0, 4.0]);
        let h = Hyper {
            weight_decay: 0.0,
            momentum: 0.0,
            ..hyper(OptimName::Sgd)
        };
        let mut opt = Optimizer::new(h, &p);
        let g = Tensor::new(&[1.0f32, 0.0], &Device::Cpu).unwrap();
        let s = opt.step(&p, &[g], 1.0, 0.5).unwrap();
        // Δ = -0.5 on the first element: p = [2.5, 4].
        assert_eq!(values(&p), [2.5, 4.0]);
        assert!((s[0].update_sq - 0.25).abs() < 1e-12);
        assert!((s[0].weight_sq - 22.25).abs() < 1e-9);
    }

    #[test]
    fn clipping_scales_only_large_gradients() {
        assert_eq!(clip_scale(0.5, Some(1.0)), 1.0);
        assert!((clip_scale(4.0, Some(1.0)) - 1.0 / (4.0 + 1e-6)).abs() < 1e-12);
        assert_eq!(clip_scale(4.0, None), 1.0);
        assert_eq!(clip_scale(f64::NAN, Some(1.0)), 1.0);
    }

    #[test]
    fn state_round_trips_through_tensors() {
        let p = param(&[1.0, -1.0]);
        let mut a = Optimizer::new(hyper(OptimName::Adamw), &p);
        a.step(
            &p,
            &[Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap()],
            0.1,
            1.0,
        )
        .unwrap();
        let saved = a.state_tensors(&p).unwrap();
        let mut b = Optimizer::new(hyper(OptimName::Adamw), &p);
        b.load_state(&p, &saved).unwrap();
        assert_eq!(b.t, 1);
        assert_eq!(b.states[0].m, a.states[0].m);
        assert_eq!(b.states[0].v, a.states[0].v);
        let mut bad = saved.clone();
        bad.remove("w.v");
        assert!(
            b.load_state(&p, &bad)
                .unwrap_err()
                .to_string()
                .contains("lacks w.v")
        );
    }
}
