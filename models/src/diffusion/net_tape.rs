//! The image denoiser's training step written by hand for f32 on the CPU: the forward pass
//! of [`Denoiser::forward`] keeping what the backward reads, the mean-squared-error loss, and
//! every parameter's gradient, each row of the batch on one thread (its gradients summed per
//! thread, then over threads). Other devices and dtypes, and the MLP, train through candle's
//! autograd.
//!
//! Why: through candle's autograd a digits UNet step took 4–6× PyTorch's (BENCHMARKS.md);
//! each of the forty-odd ops per residual block gets its own backward pass and buffers.

use super::net::{Body, Denoiser, Linear, ResBlock};
use super::net_host::{Values, linear_row};
use crate::nchw_host::{
    avg_pool2, avg_pool2_backward, silu_grad, upsample_nearest, upsample2_backward,
};
use candle_core::{Result, Tensor, TensorId};
use rayon::prelude::*;
use std::collections::HashMap;

/// What a residual block's backward reads: its input and the inputs of its norms and
/// convolutions, at its image size.
struct ResTape {
    x: Vec<f32>,
    h1: Vec<f32>,
    z2: Vec<f32>,
    h2: Vec<f32>,
    size: (usize, usize),
}

/// Gradient buffers in `params()` order, and where each tensor's is.
struct Grads<'a> {
    g: Vec<Vec<f32>>,
    index: &'a HashMap<TensorId, usize>,
}

impl Grads<'_> {
    fn of(&mut self, t: &Tensor) -> &mut [f32] {
        &mut self.g[self.index[&t.id()]]
    }

    /// Two parameters' buffers at once (a layer's weight and bias).
    fn pair(&mut self, a: &Tensor, b: &Tensor) -> (&mut [f32], &mut [f32]) {
        let (i, j) = (self.index[&a.id()], self.index[&b.id()]);
        assert_ne!(i, j, "two distinct parameters");
        if i < j {
            let (lo, hi) = self.g.split_at_mut(j);
            (&mut lo[i], &mut hi[0])
        } else {
            let (lo, hi) = self.g.split_at_mut(i);
            (&mut hi[0], &mut lo[j])
        }
    }

    fn add(&mut self, other: Grads) {
        for (a, b) in self.g.iter_mut().zip(other.g) {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
    }

    /// `x·W + b`'s backward for one row: `dW += xᵀ·dy`, `db += dy`; returns `dx = W·dy`.
    fn linear(&mut self, v: &Values, l: &Linear, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let w = v.of(&l.w);
        let (dw, db) = self.pair(&l.w, &l.b);
        db.iter_mut().zip(dy).for_each(|(d, g)| *d += g);
        let out = dy.len();
        let mut dx = vec![0f32; x.len()];
        for (i, (&xi, (row, drow))) in x
            .iter()
            .zip(w.chunks(out).zip(dw.chunks_mut(out)))
            .enumerate()
        {
            drow.iter_mut().zip(dy).for_each(|(d, g)| *d += xi * g);
            dx[i] = row.iter().zip(dy).map(|(w, g)| w * g).sum();
        }
        dx
    }
}

impl Denoiser {
    /// The mean squared error of the predictions for `x` against `y` (one timestep and class
    /// per row) and every parameter's gradient, by hand, when the net is a UNet with f32
    /// parameters on the CPU; `None` otherwise (the caller takes autograd).
    pub fn loss_grads_host(
        &self,
        x: &Tensor,
        y: &Tensor,
        t: &[f64],
        class: &[u32],
    ) -> Result<Option<(f64, Vec<Tensor>)>> {
        let Some(v) = self.host_values(x) else {
            return Ok(None);
        };
        let dims = x.dims().to_vec();
        let (b, h, w) = (dims[0], dims[2], dims[3]);
        let (xs, ys) = (
            x.flatten_all()?.to_vec1::<f32>()?,
            y.flatten_all()?.to_vec1::<f32>()?,
        );
        let row = xs.len() / b.max(1);
        let scale = 1.0 / xs.len().max(1) as f32;
        let index: HashMap<TensorId, usize> = self
            .params()
            .iter()
            .enumerate()
            .map(|(i, p)| (p.var.as_tensor().id(), i))
            .collect();
        let zeros = || Grads {
            g: self
                .params()
                .iter()
                .map(|p| vec![0f32; p.var.elem_count()])
                .collect(),
            index: &index,
        };
        let rows = |range: std::ops::Range<usize>, g: &mut Grads| -> f64 {
            range
                .map(|i| {
                    let r = i * row..(i + 1) * row;
                    self.row_grads(&v, &xs[r.clone()], &ys[r], (h, w), t[i], class[i], scale, g)
                })
                .sum()
        };
        // Whole rows per thread, each thread summing into its own buffers.
        let threads = candle_core::utils::get_num_threads().max(1);
        let per = b.div_ceil(threads).max(1);
        let parts: Vec<(f64, Grads)> = (0..b.div_ceil(per))
            .into_par_iter()
            .map(|k| {
                let mut g = zeros();
                let sse = rows(k * per..((k + 1) * per).min(b), &mut g);
                (sse, g)
            })
            .collect();
        let mut total = zeros();
        let mut sse = 0.0;
        for (s, g) in parts {
            sse += s;
            total.add(g);
        }
        let grads = self
            .params()
            .iter()
            .zip(total.g)
            .map(|(p, g)| Tensor::from_vec(g, p.var.shape(), x.device()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((sse * scale as f64, grads)))
    }

    /// One row's forward pass, loss and backward: returns its sum of squared errors and adds
    /// its gradients (of the batch mean, `scale` = 1 / elements) into `g`.
    #[allow(clippy::too_many_arguments)]
    fn row_grads(
        &self,
        v: &Values,
        x: &[f32],
        y: &[f32],
        (h, w): (usize, usize),
        t: f64,
        class: u32,
        scale: f32,
        g: &mut Grads,
    ) -> f64 {
        let Body::Unet {
            conv_in,
            down,
            mid,
            up,
            norm_out,
            conv_out,
        } = &self.body
        else {
            unreachable!("checked by host_values")
        };
        // Time and class embedding, and its SiLU that every block reads.
        let e = self.spec().embed_dim;
        let time = self.time_host(v, t);
        let (emb, s) = self.class_host(v, &time.temb, class);
        let c = class as usize;

        // Forward, keeping the tapes.
        let mut cur = v.conv(conv_in).forward(x, h, w, None, false);
        let mut size = (h, w);
        let mut down_tapes = Vec::new();
        let mut skips = Vec::new();
        for (i, blk) in down.iter().enumerate() {
            if i > 0 {
                cur = avg_pool2(&cur, cur.len() / (size.0 * size.1), size.0, size.1);
                size = (size.0 / 2, size.1 / 2);
            }
            let (out, tape) = res_forward(v, blk, cur, size, &s);
            down_tapes.push(tape);
            skips.push(out.clone());
            cur = out;
        }
        let (out, mid_tape) = res_forward(v, mid, cur, size, &s);
        cur = out;
        let mut up_tapes = Vec::new();
        for (k, blk) in up.iter().enumerate() {
            let prev = cur.len();
            cur.extend_from_slice(&skips.pop().expect("one skip per level"));
            let (out, tape) = res_forward(v, blk, cur, size, &s);
            up_tapes.push((tape, prev));
            cur = out;
            if k + 1 < up.len() {
                let (hh, ww) = size;
                cur = upsample_nearest(&cur, cur.len() / (hh * ww), hh, ww, 2 * hh, 2 * ww);
                size = (2 * hh, 2 * ww);
            }
        }
        let hw = size.0 * size.1;
        let a = v.norm(norm_out).forward(&cur, hw, true);
        let pred = v.conv(conv_out).forward(&a, size.0, size.1, None, false);

        // The loss and its gradient.
        let mut sse = 0f64;
        let dpred: Vec<f32> = pred
            .iter()
            .zip(y)
            .map(|(p, y)| {
                let d = p - y;
                sse += (d * d) as f64;
                2.0 * d * scale
            })
            .collect();

        // Backward, in reverse.
        let mut ds = vec![0f32; e];
        let (dw, db) = g.pair(&conv_out.w, &conv_out.b);
        let da = v
            .conv(conv_out)
            .backward(&a, size.0, size.1, &dpred, dw, db, false);
        let (dgm, dbt) = g.pair(&norm_out.gamma, &norm_out.beta);
        let mut dcur = v.norm(norm_out).backward(&cur, hw, true, &da, dgm, dbt);
        let mut dskips: Vec<Vec<f32>> = vec![Vec::new(); down.len()];
        for (k, blk) in up.iter().enumerate().rev() {
            let (tape, prev) = &up_tapes[k];
            if k + 1 < up.len() {
                let (hh, ww) = tape.size;
                dcur = upsample2_backward(&dcur, dcur.len() / (4 * hh * ww), hh, ww);
            }
            let mut dcat = res_backward(v, blk, tape, &dcur, &s, &mut ds, g);
            dskips[down.len() - 1 - k] = dcat.split_off(*prev);
            dcur = dcat;
        }
        dcur = res_backward(v, mid, &mid_tape, &dcur, &s, &mut ds, g);
        for (i, blk) in down.iter().enumerate().rev() {
            dcur.iter_mut().zip(&dskips[i]).for_each(|(d, s)| *d += s);
            let tape = &down_tapes[i];
            dcur = res_backward(v, blk, tape, &dcur, &s, &mut ds, g);
            if i > 0 {
                let (hh, ww) = down_tapes[i - 1].size;
                dcur = avg_pool2_backward(&dcur, dcur.len() / (hh * ww / 4), hh, ww);
            }
        }
        let (dw, db) = g.pair(&conv_in.w, &conv_in.b);
        v.conv(conv_in).backward(x, h, w, &dcur, dw, db, false);

        // The embedding: SiLU, the class row, the time MLP.
        let demb: Vec<f32> = ds
            .iter()
            .zip(&emb)
            .map(|(d, &z)| d * silu_grad(z as f64) as f32)
            .collect();
        g.of(&self.class_table)[c * e..(c + 1) * e]
            .iter_mut()
            .zip(&demb)
            .for_each(|(t, d)| *t += d);
        let dsu1 = g.linear(v, &self.time2, &time.su1, &demb);
        let du1: Vec<f32> = dsu1
            .iter()
            .zip(&time.u1)
            .map(|(d, &z)| d * silu_grad(z as f64) as f32)
            .collect();
        g.linear(v, &self.time1, &time.sin, &du1);
        sse
    }
}

/// A residual block's forward pass with its tape; `s` is SiLU of the embedding.
fn res_forward(
    v: &Values,
    blk: &ResBlock,
    x: Vec<f32>,
    (h, w): (usize, usize),
    s: &[f32],
) -> (Vec<f32>, ResTape) {
    let hw = h * w;
    let h1 = v.norm(&blk.norm1).forward(&x, hw, true);
    let e = linear_row(s, v.of(&blk.emb.w), v.of(&blk.emb.b));
    let z2 = v.conv(&blk.conv1).forward(&h1, h, w, Some(&e), false);
    let h2 = v.norm(&blk.norm2).forward(&z2, hw, true);
    let mut out = v.conv(&blk.conv2).forward(&h2, h, w, None, false);
    match &blk.skip {
        Some(sc) => {
            let sk = v.conv(sc).forward(&x, h, w, None, false);
            out.iter_mut().zip(&sk).for_each(|(o, s)| *o += s);
        }
        None => out.iter_mut().zip(&x).for_each(|(o, s)| *o += s),
    }
    let tape = ResTape {
        x,
        h1,
        z2,
        h2,
        size: (h, w),
    };
    (out, tape)
}

/// A residual block's backward for upstream `dout`: its parameters' gradients into `g`, the
/// gradient of `s` (SiLU of the embedding) into `ds`; returns the input's.
#[allow(clippy::too_many_arguments)]
fn res_backward(
    v: &Values,
    blk: &ResBlock,
    tape: &ResTape,
    dout: &[f32],
    s: &[f32],
    ds: &mut [f32],
    g: &mut Grads,
) -> Vec<f32> {
    let (h, w) = tape.size;
    let hw = h * w;
    let mut dx = match &blk.skip {
        Some(sc) => {
            let (dw, db) = g.pair(&sc.w, &sc.b);
            v.conv(sc).backward(&tape.x, h, w, dout, dw, db, false)
        }
        None => dout.to_vec(),
    };
    let (dw, db) = g.pair(&blk.conv2.w, &blk.conv2.b);
    let dh2 = v
        .conv(&blk.conv2)
        .backward(&tape.h2, h, w, dout, dw, db, false);
    let (dgm, dbt) = g.pair(&blk.norm2.gamma, &blk.norm2.beta);
    let dz2 = v
        .norm(&blk.norm2)
        .backward(&tape.z2, hw, true, &dh2, dgm, dbt);
    // The embedding's projection was added to every pixel of each channel.
    let de: Vec<f32> = dz2.chunks(hw).map(|c| c.iter().sum()).collect();
    let d_s = g.linear(v, &blk.emb, s, &de);
    ds.iter_mut().zip(&d_s).for_each(|(a, b)| *a += b);
    let (dw, db) = g.pair(&blk.conv1.w, &blk.conv1.b);
    let dh1 = v
        .conv(&blk.conv1)
        .backward(&tape.h1, h, w, &dz2, dw, db, false);
    let (dgm, dbt) = g.pair(&blk.norm1.gamma, &blk.norm1.beta);
    let d = v
        .norm(&blk.norm1)
        .backward(&tape.x, hw, true, &dh1, dgm, dbt);
    dx.iter_mut().zip(&d).for_each(|(a, b)| *a += b);
    dx
}

#[cfg(test)]
mod tests {
    use crate::test_util::{max_abs, max_abs_diff};

    #[test]
    fn the_hand_written_step_gives_autograds_loss_and_gradients() {
        for (shape, channels) in [
            (vec![1, 8, 8], vec![8, 16]),
            (vec![2, 8, 8], vec![4, 8, 16]),
        ] {
            let net = super::super::net_host::perturbed_unet(&shape, &channels, 7);
            let dims: Vec<usize> = [5].into_iter().chain(shape).collect();
            let x = crate::test_util::seeded_randn(&dims, 1.0, 1);
            let y = crate::test_util::seeded_randn(&dims, 1.0, 2);
            let (t, c) = ([999.0, 3.0, 500.0, 41.0, 250.0], [0, 10, 3, 3, 9]);
            let loss = net
                .forward(&x, &t, &c)
                .unwrap()
                .sub(&y)
                .unwrap()
                .sqr()
                .unwrap();
            let loss = loss.mean_all().unwrap();
            let want = crate::train::autograd(&loss, net.params()).unwrap();
            let (ours, grads) = net
                .loss_grads_host(&x, &y, &t, &c)
                .unwrap()
                .expect("a CPU f32 UNet");
            let l = loss.to_scalar::<f32>().unwrap() as f64;
            assert!((ours - l).abs() <= 1e-5 * l, "loss {ours} against {l}");
            // Per tensor, relative to its own scale, and to the largest gradient for tensors
            // whose gradient is a near-cancelling sum (the f32 rounding of its terms).
            let largest = want.iter().map(max_abs).fold(0f32, f32::max);
            for (p, (g, w)) in net.params().iter().zip(grads.iter().zip(&want)) {
                let (scale, d) = (max_abs(w), max_abs_diff(g, w));
                assert!(
                    d <= 1e-4 * scale + 1e-5 * largest,
                    "{}: max |Δ| {d} of {scale}",
                    p.name
                );
            }
        }
    }
}
