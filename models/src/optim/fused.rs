//! The update equations, applied element by element: in place on CPU tensors (one pass, no
//! temporaries), through a host copy elsewhere.

use super::{Hyper, OptimName, State, UpdateStats};
use crate::simd::{LANES, total};
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

/// Updates one chunk, compiled for the CPU's widest vector unit.
fn apply_chunk(step: &Step, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) -> UpdateStats {
    crate::simd::widest(
        #[inline(always)]
        || update_chunk(step, p, g, m, v),
    )
}

type Block = [f32; LANES];

/// The update of `LANES` elements at once, written as plain loops over arrays so the compiler
/// vectorises them; each element's arithmetic is PyTorch's.
struct Rule {
    adam: bool,
    lr: f32,
    scale: f32,
    wd: f32,
    mu: f32,
    nesterov: bool,
    b1: f32,
    b2: f32,
    eps: f32,
    /// AdamW's bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ.
    c1: f32,
    c2: f32,
}

impl Rule {
    fn new(step: &Step) -> Rule {
        let h = &step.hyper;
        let (b1, b2) = (h.beta1 as f32, h.beta2 as f32);
        Rule {
            adam: h.name == OptimName::Adamw,
            lr: step.lr as f32,
            scale: step.grad_scale as f32,
            wd: h.weight_decay as f32,
            mu: h.momentum as f32,
            nesterov: h.nesterov,
            b1,
            b2,
            eps: h.eps as f32,
            c1: 1.0 - b1.powi(step.t as i32),
            c2: 1.0 - b2.powi(step.t as i32),
        }
    }

    #[inline(always)]
    fn block(&self, p: &mut Block, g: &Block, m: &mut Block, v: &mut Block) {
        let (lr, scale, wd) = (self.lr, self.scale, self.wd);
        if self.adam {
            let (b1, b2, decay) = (self.b1, self.b2, 1.0 - lr * wd);
            for k in 0..LANES {
                let gi = g[k] * scale;
                m[k] = b1 * m[k] + (1.0 - b1) * gi;
                v[k] = b2 * v[k] + (1.0 - b2) * gi * gi;
                let m_hat = m[k] / self.c1;
                let v_hat = v[k] / self.c2;
                p[k] = p[k] * decay - lr * m_hat / (v_hat.sqrt() + self.eps);
            }
        } else if self.mu != 0.0 {
            let mu = self.mu;
            for k in 0..LANES {
                let d = g[k] * scale + wd * p[k];
                m[k] = mu * m[k] + d;
                let d = if self.nesterov { d + mu * m[k] } else { m[k] };
                p[k] += -lr * d;
            }
        } else {
            for k in 0..LANES {
                p[k] += -lr * (g[k] * scale + wd * p[k]);
            }
        }
    }
}

/// Adds the squares of the first `n` updates and new weights of a block to their lanes.
#[inline(always)]
fn accumulate(old: &Block, new: &Block, n: usize, upd: &mut [f64; LANES], wsq: &mut [f64; LANES]) {
    for k in 0..n {
        let d = (new[k] - old[k]) as f64;
        let w = new[k] as f64;
        upd[k] += d * d;
        wsq[k] += w * w;
    }
}

/// Updates a chunk `LANES` elements at a time (the last, short block padded with zeros),
/// summing the update statistics in lanes (see `simd`).
#[inline(always)]
fn update_chunk(
    step: &Step,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) -> UpdateStats {
    let rule = Rule::new(step);
    let (mut upd, mut wsq) = ([0.0f64; LANES], [0.0f64; LANES]);
    let mut spare = [0.0f32; LANES];
    let (pc, pr) = p.as_chunks_mut::<LANES>();
    let (gc, gr) = g.as_chunks::<LANES>();
    let (mc, mr) = m.as_chunks_mut::<LANES>();
    // SGD keeps no second moment: its blocks use a scratch one.
    let (vc, vr): (&mut [Block], &mut [f32]) = if rule.adam {
        v.as_chunks_mut::<LANES>()
    } else {
        (&mut [], &mut [])
    };
    let mut vs = vc.iter_mut();
    for ((p, g), m) in pc.iter_mut().zip(gc).zip(mc.iter_mut()) {
        let old = *p;
        rule.block(p, g, m, vs.next().unwrap_or(&mut spare));
        accumulate(&old, p, LANES, &mut upd, &mut wsq);
    }
    let n = pr.len();
    if n > 0 {
        let pad = |xs: &[f32]| {
            let mut b = [0.0f32; LANES];
            b[..xs.len()].copy_from_slice(xs);
            b
        };
        let (old, gb, mut mb, mut vb) = (pad(pr), pad(gr), pad(mr), pad(vr));
        let mut pb = old;
        rule.block(&mut pb, &gb, &mut mb, &mut vb);
        accumulate(&old, &pb, n, &mut upd, &mut wsq);
        pr.copy_from_slice(&pb[..n]);
        mr.copy_from_slice(&mb[..n]);
        if rule.adam {
            vr.copy_from_slice(&vb[..n]);
        }
    }
    UpdateStats {
        update_sq: total(&upd),
        weight_sq: total(&wsq),
    }
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
