//! The update equations, applied element by element: in place on CPU tensors (one pass, no
//! temporaries), through a host copy elsewhere.

use super::{Hyper, OptimName, State, UpdateStats};
use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Tensor, Var};
use std::sync::Mutex;

pub struct Step {
    pub hyper: Hyper,
    pub lr: f64,
    pub grad_scale: f64,
    /// 1-based update count.
    pub t: u64,
}

/// Updates `p` in place from `g` (PyTorch's SGD and AdamW semantics), returning the update's
/// size. All arithmetic is f32, as in PyTorch's default kernels. Large tensors are split into
/// chunks updated in parallel; every element's arithmetic is the same either way.
pub fn apply(step: &Step, p: &mut [f32], g: &[f32], s: &mut State) -> UpdateStats {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    let adam = step.hyper.name == OptimName::Adamw;
    let v: &mut [f32] = if adam { &mut s.v } else { &mut [] };
    let vs: Vec<&mut [f32]> = if adam {
        v.chunks_mut(CHUNK).collect()
    } else {
        (0..p.len().div_ceil(CHUNK)).map(|_| &mut [][..]).collect()
    };
    let parts: Vec<UpdateStats> = p
        .par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(s.m.par_chunks_mut(CHUNK))
        .zip(vs)
        .map(|(((p, g), m), v)| apply_chunk(step, p, g, m, v))
        .collect();
    // Added in chunk order, so the statistics are the same on every run.
    parts
        .iter()
        .fold(UpdateStats::default(), |a, b| UpdateStats {
            update_sq: a.update_sq + b.update_sq,
            weight_sq: a.weight_sq + b.weight_sq,
        })
}

fn apply_chunk(step: &Step, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) -> UpdateStats {
    let h = &step.hyper;
    let (lr, scale, wd) = (
        step.lr as f32,
        step.grad_scale as f32,
        h.weight_decay as f32,
    );
    let mut stats = UpdateStats::default();
    match h.name {
        OptimName::Sgd => {
            let mu = h.momentum as f32;
            for i in 0..p.len() {
                let mut d = g[i] * scale + wd * p[i];
                if mu != 0.0 {
                    m[i] = mu * m[i] + d;
                    d = if h.nesterov { d + mu * m[i] } else { m[i] };
                }
                let delta = -lr * d;
                p[i] += delta;
                stats.update_sq += (delta as f64).powi(2);
                stats.weight_sq += (p[i] as f64).powi(2);
            }
        }
        OptimName::Adamw => {
            let (b1, b2, eps) = (h.beta1 as f32, h.beta2 as f32, h.eps as f32);
            let c1 = 1.0 - b1.powi(step.t as i32);
            let c2 = 1.0 - b2.powi(step.t as i32);
            let decay = 1.0 - lr * wd;
            for i in 0..p.len() {
                let gi = g[i] * scale;
                m[i] = b1 * m[i] + (1.0 - b1) * gi;
                v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                let m_hat = m[i] / c1;
                let v_hat = v[i] / c2;
                let old = p[i];
                p[i] = old * decay - lr * m_hat / (v_hat.sqrt() + eps);
                stats.update_sq += ((p[i] - old) as f64).powi(2);
                stats.weight_sq += (p[i] as f64).powi(2);
            }
        }
    }
    stats
}

struct InPlace<'a> {
    step: &'a Step,
    state: Mutex<&'a mut State>,
    stats: Mutex<UpdateStats>,
}

impl InplaceOp2 for InPlace<'_> {
    fn name(&self) -> &'static str {
        "descent-fused-optimizer"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (Some((a, b)), Some((c, d))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("fused optimizer: parameter or gradient is not contiguous");
        };
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("fused optimizer: parameters and gradients must be f32");
        };
        let mut state = self.state.lock().expect("not poisoned");
        let stats = apply(self.step, &mut p[a..b], &g[c..d], &mut state);
        *self.stats.lock().expect("not poisoned") = stats;
        Ok(())
    }
}

pub fn update(step: &Step, var: &Var, grad: &Tensor, state: &mut State) -> Result<UpdateStats> {
    if var.device().is_cpu() {
        let grad = grad.contiguous()?;
        let op = InPlace {
            step,
            state: Mutex::new(state),
            stats: Mutex::new(UpdateStats::default()),
        };
        var.as_tensor().inplace_op2(&grad, &op)?;
        return Ok(op.stats.into_inner().expect("not poisoned"));
    }
    // Other devices: the same equations on a host copy, written back in one transfer.
    let shape = var.dims().to_vec();
    let mut p = var.flatten_all()?.to_vec1::<f32>()?;
    let g = grad.flatten_all()?.to_vec1::<f32>()?;
    let stats = apply(step, &mut p, &g, state);
    var.set(&Tensor::from_vec(p, shape, var.device())?)?;
    Ok(stats)
}
