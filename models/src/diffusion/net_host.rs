//! The image denoiser's forward pass for sampling, in f32 on the CPU: the arithmetic of
//! [`Denoiser::forward`] on host buffers, its parameters read in place, each row of the batch
//! through the whole network on one thread. Training keeps `net`'s differentiable ops.
//!
//! Why: through candle's ops a sampling pass of the digits UNet took 3.3–3.8× PyTorch's
//! (BENCHMARKS.md) — about forty ops per residual block, each a pass over the maps with its
//! own thread-pool dispatch, and nine shifted copies per convolution. `nchw_host` does each
//! convolution as one product and each group norm with its SiLU in one pass.

use super::net::{
    Body, Conv as NetConv, Denoiser, GroupNorm as NetNorm, ResBlock, timestep_embedding,
};
use crate::gemm_host::{Host, host};
use crate::nchw_host::{Conv, GroupNorm, avg_pool2, per_row, silu_in_place, upsample_nearest};
use candle_core::{DType, Result, Tensor, TensorId};
use std::collections::HashMap;

/// Every parameter's values in place, by tensor id.
pub(super) struct Values<'a>(HashMap<TensorId, Host<'a>>);

impl Values<'_> {
    pub(super) fn of(&self, t: &Tensor) -> &[f32] {
        self.0[&t.id()].get()
    }

    pub(super) fn conv(&self, c: &NetConv) -> Conv<&[f32]> {
        let d = c.w.dims();
        Conv {
            weight: self.of(&c.w),
            bias: self.of(&c.b),
            c_in: d[1],
            c_out: d[0],
            k: d[2],
            stride: 1,
            pad: d[2] / 2,
        }
    }

    pub(super) fn norm(&self, n: &NetNorm) -> GroupNorm<&[f32]> {
        GroupNorm {
            weight: self.of(&n.gamma),
            bias: self.of(&n.beta),
            groups: n.groups,
            eps: 1e-5,
        }
    }
}

/// The time MLP's sinusoids, first layer's output and its SiLU, and the embedding.
pub(super) struct TimeEmbedding {
    pub sin: Vec<f32>,
    pub u1: Vec<f32>,
    pub su1: Vec<f32>,
    pub temb: Vec<f32>,
}

/// `x·W + b` for one row, `W` `[in, out]` as `net`'s layers store it.
pub(super) fn linear_row(x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = b.to_vec();
    for (&xi, row) in x.iter().zip(w.chunks(b.len())) {
        y.iter_mut().zip(row).for_each(|(y, &w)| *y += xi * w);
    }
    y
}

impl Denoiser {
    /// [`Denoiser::forward`] at one timestep for every row, by hand, when the net is a UNet
    /// with f32 parameters on the CPU; `None` otherwise (the caller takes the candle ops).
    pub(crate) fn forward_host(&self, x: &Tensor, t: f64, class: &[u32]) -> Result<Option<Tensor>> {
        let Some(v) = self.host_values(x) else {
            return Ok(None);
        };
        let dims = x.dims().to_vec();
        let (b, h, w) = (dims[0], dims[2], dims[3]);
        let temb = self.time_host(&v, t).temb;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let row = xs.len() / b.max(1);
        let one = |i: usize, par: bool| {
            let (_, s) = self.class_host(&v, &temb, class[i]);
            self.row_host(&v, &xs[i * row..(i + 1) * row], (h, w), &s, par)
        };
        let out = per_row(b, one);
        Tensor::from_vec(out, dims, x.device()).map(Some)
    }

    /// The time MLP at `t`, with what its backward reads.
    pub(super) fn time_host(&self, v: &Values, t: f64) -> TimeEmbedding {
        let sin = timestep_embedding(&[t], self.spec().embed_dim);
        let u1 = linear_row(&sin, v.of(&self.time1.w), v.of(&self.time1.b));
        let mut su1 = u1.clone();
        silu_in_place(&mut su1);
        let temb = linear_row(&su1, v.of(&self.time2.w), v.of(&self.time2.b));
        TimeEmbedding { sin, u1, su1, temb }
    }

    /// The embedding of a row, `temb` plus its class's row of the table, and its SiLU (what
    /// every block reads).
    pub(super) fn class_host(&self, v: &Values, temb: &[f32], class: u32) -> (Vec<f32>, Vec<f32>) {
        let e = temb.len();
        let c = class as usize;
        let table = &v.of(&self.class_table)[c * e..(c + 1) * e];
        let emb: Vec<f32> = temb.iter().zip(table).map(|(a, b)| a + b).collect();
        let mut s = emb.clone();
        silu_in_place(&mut s);
        (emb, s)
    }

    /// The parameters in place, when the net is a UNet with f32 parameters on the CPU and
    /// `x` is f32 on the CPU too.
    pub(super) fn host_values(&self, x: &Tensor) -> Option<Values<'_>> {
        let Body::Unet { .. } = &self.body else {
            return None;
        };
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            return None;
        }
        let mut values = HashMap::new();
        for p in self.params() {
            let t = p.var.as_tensor();
            values.insert(t.id(), host(t).ok()?);
        }
        Some(Values(values))
    }

    /// One image `[c, h, w]` through the UNet; `emb` is SiLU of its time + class embedding;
    /// `par`: the products on all threads.
    fn row_host(
        &self,
        v: &Values,
        x: &[f32],
        (mut h, mut w): (usize, usize),
        emb: &[f32],
        par: bool,
    ) -> Vec<f32> {
        let Body::Unet {
            conv_in,
            down,
            mid,
            up,
            norm_out,
            conv_out,
        } = &self.body
        else {
            unreachable!("checked by forward_host")
        };
        let res = |blk: &ResBlock, x: &[f32], h: usize, w: usize| -> Vec<f32> {
            let a = v.norm(&blk.norm1).forward(x, h * w, true);
            let e = linear_row(emb, v.of(&blk.emb.w), v.of(&blk.emb.b));
            let a = v.conv(&blk.conv1).forward(&a, h, w, Some(&e), par);
            let a = v.norm(&blk.norm2).forward(&a, h * w, true);
            let mut out = v.conv(&blk.conv2).forward(&a, h, w, None, par);
            match &blk.skip {
                Some(s) => {
                    let sc = v.conv(s).forward(x, h, w, None, par);
                    out.iter_mut().zip(&sc).for_each(|(o, s)| *o += s);
                }
                None => out.iter_mut().zip(x).for_each(|(o, s)| *o += s),
            }
            out
        };
        let mut cur = v.conv(conv_in).forward(x, h, w, None, par);
        let mut skips = Vec::new();
        for (i, blk) in down.iter().enumerate() {
            if i > 0 {
                cur = avg_pool2(&cur, cur.len() / (h * w), h, w);
                (h, w) = (h / 2, w / 2);
            }
            cur = res(blk, &cur, h, w);
            skips.push(cur.clone());
        }
        cur = res(mid, &cur, h, w);
        for (k, blk) in up.iter().enumerate() {
            cur.extend_from_slice(&skips.pop().expect("one skip per level"));
            cur = res(blk, &cur, h, w);
            if k + 1 < up.len() {
                cur = upsample_nearest(&cur, cur.len() / (h * w), h, w, 2 * h, 2 * w);
                (h, w) = (2 * h, 2 * w);
            }
        }
        let a = v.norm(norm_out).forward(&cur, h * w, true);
        v.conv(conv_out).forward(&a, h, w, None, par)
    }
}

/// A UNet denoiser on the CPU (10 classes, embedding 16) with every weight moved off its
/// initial value: zero output convolutions and unit norms would hide most of the network
/// from a comparison.
#[cfg(test)]
pub(super) fn perturbed_unet(shape: &[usize], channels: &[usize], seed: u64) -> Denoiser {
    use super::net::{DenoiserArch, DenoiserSpec};
    let dev = candle_core::Device::Cpu;
    let spec = DenoiserSpec {
        arch: DenoiserArch::Unet,
        sample_shape: shape.to_vec(),
        classes: 10,
        hidden: vec![],
        channels: channels.to_vec(),
        embed_dim: 16,
    };
    let net = Denoiser::new(spec, seed, &dev).unwrap();
    for (k, p) in net.params().iter().enumerate() {
        let noise = crate::test_util::seeded_randn(p.var.dims(), 0.3, seed * 1000 + k as u64);
        p.var.set(&(p.var.as_tensor() + noise).unwrap()).unwrap();
    }
    net
}

#[cfg(test)]
mod tests {
    use super::super::net::{DenoiserArch, DenoiserSpec};
    use super::*;
    use crate::test_util::{max_abs, max_abs_diff};
    use candle_core::Device;

    #[test]
    fn the_host_pass_computes_what_the_candle_ops_do() {
        for (shape, channels) in [
            (vec![1, 8, 8], vec![8, 16]),
            (vec![3, 16, 16], vec![8, 16, 32]),
        ] {
            let net = perturbed_unet(&shape, &channels, 3);
            let dims: Vec<usize> = [5].into_iter().chain(shape).collect();
            let x = crate::test_util::seeded_randn(&dims, 1.0, 1);
            let classes = [0, 3, 10, 7, 10];
            for t in [999.0, 12.5] {
                let want = net.forward(&x, &[t; 5], &classes).unwrap();
                let got = net
                    .forward_host(&x, t, &classes)
                    .unwrap()
                    .expect("a CPU f32 UNet");
                let scale = max_abs(&want);
                let d = max_abs_diff(&got, &want);
                assert!(
                    d <= 1e-5 * scale.max(1.0),
                    "max |Δ| {d} of {scale} at t = {t}"
                );
            }
        }
    }

    #[test]
    fn an_mlp_takes_the_candle_ops() {
        let spec = DenoiserSpec {
            arch: DenoiserArch::Mlp,
            sample_shape: vec![2],
            classes: 2,
            hidden: vec![8],
            channels: vec![],
            embed_dim: 8,
        };
        let net = Denoiser::new(spec, 0, &Device::Cpu).unwrap();
        let x = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(net.forward_host(&x, 5.0, &[0]).unwrap().is_none());
    }
}
