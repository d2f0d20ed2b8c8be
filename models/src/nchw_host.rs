//! Inference ops on one image as a host f32 buffer, channels first (`[c, h, w]`): convolution
//! as one matrix product over gathered columns, group norm with the SiLU that follows it in
//! one pass, nearest-neighbour upsampling.
//!
//! Why by hand: candle's CPU `conv2d` copies its NCHW input to NHWC and gathers its columns
//! element by element on every call, and group norm and SiLU are each several passes over
//! the maps with a thread-pool dispatch apiece; on the small maps of a diffusion UNet those
//! costs, not the arithmetic, set the time (BENCHMARKS.md, the Stable Diffusion UNet step).

use crate::gemm_host::{Mat, gemm};
use crate::simd;
use rayon::prelude::*;

/// A convolution's weights, `[c_out, c_in, k, k]` as PyTorch stores them, and its geometry;
/// owned (`Vec<f32>`) or read in place from a tensor's storage (`&[f32]`).
pub struct Conv<W = Vec<f32>> {
    pub weight: W,
    pub bias: W,
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl<W: AsRef<[f32]>> Conv<W> {
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        let o = |n: usize| (n + 2 * self.pad - self.k) / self.stride + 1;
        (o(h), o(w))
    }

    /// `x` `[c_in, h, w]` → `[c_out, oh, ow]`, plus `extra_bias[c]` per output channel when
    /// given (a time embedding added to every pixel). `parallel`: the product's threads.
    pub fn forward(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        extra_bias: Option<&[f32]>,
        parallel: bool,
    ) -> Vec<f32> {
        assert_eq!(x.len(), self.c_in * h * w, "conv: input size");
        let (oh, ow) = self.out_size(h, w);
        let n = oh * ow;
        let mut out = vec![0f32; self.c_out * n];
        for (c, row) in out.chunks_mut(n).enumerate() {
            row.fill(self.bias.as_ref()[c] + extra_bias.map_or(0.0, |e| e[c]));
        }
        let kk = self.c_in * self.k * self.k;
        let a = Mat::new(self.weight.as_ref(), self.c_out, kk);
        if self.k == 1 && self.stride == 1 && self.pad == 0 {
            gemm(&mut out, n, a, Mat::new(x, kk, n), 1.0, true, parallel);
        } else {
            let cols = self.columns(x, h, w, oh, ow);
            gemm(&mut out, n, a, Mat::new(&cols, kk, n), 1.0, true, parallel);
        }
        out
    }

    /// The adjoint of [`Conv::forward`] for upstream `dy` `[c_out, oh·ow]` at input `x`:
    /// `dw += dy·colsᵀ`, `db += Σ dy` per channel (the extra bias's gradient too), and the
    /// input's gradient `[c_in, h, w]`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[f32],
        h: usize,
        w: usize,
        dy: &[f32],
        dw: &mut [f32],
        db: &mut [f32],
        parallel: bool,
    ) -> Vec<f32> {
        let (oh, ow) = self.out_size(h, w);
        let n = oh * ow;
        for (d, row) in db.iter_mut().zip(dy.chunks(n)) {
            *d += simd::sum(row);
        }
        let kk = self.c_in * self.k * self.k;
        let (dym, wm) = (
            Mat::new(dy, self.c_out, n),
            Mat::new(self.weight.as_ref(), self.c_out, kk),
        );
        let mut dcols = vec![0f32; kk * n];
        gemm(&mut dcols, n, wm.t(), dym, 1.0, false, parallel);
        if self.k == 1 && self.stride == 1 && self.pad == 0 {
            gemm(dw, kk, dym, Mat::new(x, kk, n).t(), 1.0, true, parallel);
            return dcols;
        }
        let cols = self.columns(x, h, w, oh, ow);
        gemm(dw, kk, dym, Mat::new(&cols, kk, n).t(), 1.0, true, parallel);
        let mut dx = vec![0f32; x.len()];
        self.taps(h, w, oh, ow, |at, from, len| {
            dx[from..from + len]
                .iter_mut()
                .zip(&dcols[at..at + len])
                .for_each(|(d, c)| *d += c);
        });
        dx
    }

    /// Rows `(c, ky, kx)`, columns the output pixels: what each tap of the kernel reads,
    /// zero outside the image.
    fn columns(&self, x: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
        let mut cols = vec![0f32; self.c_in * self.k * self.k * oh * ow];
        self.taps(h, w, oh, ow, |at, from, len| {
            cols[at..at + len].copy_from_slice(&x[from..from + len]);
        });
        cols
    }

    /// Calls `f(at, from, len)` for each run of `len` column entries from `at` that read the
    /// input from `from` on (in-image taps only; whole lines at stride 1, single entries
    /// otherwise): the one index walk [`Conv::columns`] and its adjoint share.
    fn taps(
        &self,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let (k, s, pad) = (self.k, self.stride, self.pad);
        for r in 0..self.c_in * k * k {
            let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
            for oy in 0..oh {
                let Some(y) = (oy * s + ky).checked_sub(pad).filter(|&y| y < h) else {
                    continue;
                };
                let (line, src) = ((r * oh + oy) * ow, (c * h + y) * w);
                if s == 1 {
                    // Output columns whose input column ox + kx − pad lies in the image.
                    let lo = pad.saturating_sub(kx);
                    let hi = ow.min((w + pad).saturating_sub(kx));
                    if lo < hi {
                        f(line + lo, src + lo + kx - pad, hi - lo);
                    }
                } else {
                    for ox in 0..ow {
                        if let Some(xx) = (ox * s + kx).checked_sub(pad).filter(|&xx| xx < w) {
                            f(line + ox, src + xx, 1);
                        }
                    }
                }
            }
        }
    }
}

/// Group norm's affine weights and its grouping.
pub struct GroupNorm<W = Vec<f32>> {
    pub weight: W,
    pub bias: W,
    pub groups: usize,
    pub eps: f32,
}

impl<W: AsRef<[f32]>> GroupNorm<W> {
    /// `x` `[c, hw]` normalised per group of channels (biased variance, as PyTorch), scaled
    /// and shifted per channel, then SiLU when `silu`.
    pub fn forward(&self, x: &[f32], hw: usize, silu: bool) -> Vec<f32> {
        let (w, b) = (self.weight.as_ref(), self.bias.as_ref());
        assert_eq!(x.len(), w.len() * hw, "group norm: input size");
        let mut out = vec![0f32; x.len()];
        group_norm_into(w, b, self.groups, self.eps, x, hw, silu, &mut out);
        out
    }
}

impl<W: AsRef<[f32]>> GroupNorm<W> {
    /// The adjoint of [`GroupNorm::forward`] `(x, hw, silu)` for upstream `dy`: `dgamma` and
    /// `dbeta` accumulated, the input's gradient returned. Per group of `m` elements with
    /// `n = (x − μ)·inv` and `g` the upstream through SiLU: `dx = inv·(g·γ − mean(g·γ) −
    /// n·mean(g·γ·n))`.
    pub fn backward(
        &self,
        x: &[f32],
        hw: usize,
        silu: bool,
        dy: &[f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) -> Vec<f32> {
        let (gamma, beta) = (self.weight.as_ref(), self.bias.as_ref());
        let per_group = gamma.len() / self.groups;
        let per = per_group * hw;
        let mut dx = vec![0f32; x.len()];
        for (g, ((src, up), dst)) in x
            .chunks(per)
            .zip(dy.chunks(per))
            .zip(dx.chunks_mut(per))
            .enumerate()
        {
            let mean = lane_sum(src, |v| v) / per as f64;
            let var = lane_sum(src, |v| (v - mean) * (v - mean)) / per as f64;
            let inv = 1.0 / (var + self.eps as f64).sqrt();
            let (mut sum_dn, mut sum_dn_n) = (0f64, 0f64);
            for j in 0..per_group {
                let ch = g * per_group + j;
                let (gm, bt) = (gamma[ch] as f64, beta[ch] as f64);
                let (mut dg, mut dbt) = (0f64, 0f64);
                for i in j * hw..(j + 1) * hw {
                    let n = (src[i] as f64 - mean) * inv;
                    let z = n * gm + bt;
                    let up = up[i] as f64 * if silu { silu_grad(z) } else { 1.0 };
                    dg += up * n;
                    dbt += up;
                    let dn = up * gm;
                    sum_dn += dn;
                    sum_dn_n += dn * n;
                    dst[i] = dn as f32;
                }
                dgamma[ch] += dg as f32;
                dbeta[ch] += dbt as f32;
            }
            let (m_dn, m_dn_n) = (sum_dn / per as f64, sum_dn_n / per as f64);
            for (d, &v) in dst.iter_mut().zip(src) {
                let n = (v as f64 - mean) * inv;
                *d = (inv * (*d as f64 - m_dn - n * m_dn_n)) as f32;
            }
        }
        dx
    }
}

/// d silu(z)/dz = σ(z)·(1 + z·(1 − σ(z))).
pub fn silu_grad(z: f64) -> f64 {
    let s = 1.0 / (1.0 + (-z).exp());
    s * (1.0 + z * (1.0 - s))
}

#[allow(clippy::too_many_arguments)]
fn group_norm_into(
    weight: &[f32],
    bias: &[f32],
    groups: usize,
    eps: f32,
    x: &[f32],
    hw: usize,
    silu: bool,
    out: &mut [f32],
) {
    simd::widest(
        #[inline(always)]
        || {
            let per_group = weight.len() / groups;
            let per = per_group * hw;
            for (g, (src, dst)) in x.chunks(per).zip(out.chunks_mut(per)).enumerate() {
                let mean = lane_sum(src, |v| v) / per as f64;
                let var = lane_sum(src, |v| (v - mean) * (v - mean)) / per as f64;
                let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
                let mean = mean as f32;
                for (j, (s, d)) in src.chunks(hw).zip(dst.chunks_mut(hw)).enumerate() {
                    let ch = g * per_group + j;
                    let (a, b) = (weight[ch] * inv, bias[ch]);
                    if silu {
                        for (d, &s) in d.iter_mut().zip(s) {
                            *d = simd::silu((s - mean) * a + b);
                        }
                    } else {
                        for (d, &s) in d.iter_mut().zip(s) {
                            *d = (s - mean) * a + b;
                        }
                    }
                }
            }
        },
    )
}

/// Σ f(x) over a slice in f64, through [`simd::LANES`] accumulators.
#[inline(always)]
pub(crate) fn lane_sum(xs: &[f32], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0f64; simd::LANES];
    let (chunks, rest) = xs.as_chunks::<{ simd::LANES }>();
    for ch in chunks {
        for k in 0..simd::LANES {
            acc[k] += f(ch[k] as f64);
        }
    }
    for (k, &v) in rest.iter().enumerate() {
        acc[k] += f(v as f64);
    }
    simd::total(&acc)
}

/// SiLU of every element, in place.
pub fn silu_in_place(x: &mut [f32]) {
    simd::widest(
        #[inline(always)]
        || {
            x.iter_mut().for_each(|v| *v = simd::silu(*v));
        },
    )
}

/// `f(i, par)` for each of `b` rows, concatenated: rows in parallel, each on one thread
/// (`par` false), in rounds of one row per thread; the rows left over after the last full
/// round, or a batch smaller than the thread count, one at a time with their matrix products
/// on every thread (`par` true). A whole network per row on one thread has no dispatch per
/// op; the split keeps an odd batch (AG's, once some rows stop) from idling threads.
pub fn per_row(b: usize, f: impl Fn(usize, bool) -> Vec<f32> + Sync) -> Vec<f32> {
    let threads = candle_core::utils::get_num_threads().max(1);
    let full = if threads > 1 { b - b % threads } else { 0 };
    let mut rows: Vec<Vec<f32>> = (0..full).into_par_iter().map(|i| f(i, false)).collect();
    rows.extend((full..b).map(|i| f(i, true)));
    rows.concat()
}

/// 2×2 average pooling, stride 2, of `[c, h, w]` (odd edges dropped, as PyTorch's).
pub fn avg_pool2(x: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(c * oh * ow);
    for plane in x.chunks(h * w).take(c) {
        for y in 0..oh {
            let (r0, r1) = (&plane[2 * y * w..][..w], &plane[(2 * y + 1) * w..][..w]);
            out.extend(
                (0..ow).map(|j| 0.25 * (r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1])),
            );
        }
    }
    out
}

/// The adjoint of [`avg_pool2`]: `dy` `[c, h/2, w/2]` spread back over `[c, h, w]`.
pub fn avg_pool2_backward(dy: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut dx = vec![0f32; c * h * w];
    for (ch, up) in dy.chunks(oh * ow).enumerate().take(c) {
        for y in 0..oh {
            for x in 0..ow {
                let g = 0.25 * up[y * ow + x];
                for (dy, dx_) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    dx[(ch * h + 2 * y + dy) * w + 2 * x + dx_] += g;
                }
            }
        }
    }
    dx
}

/// The adjoint of [`upsample_nearest`] to twice the size: each 2×2 block of `dy`
/// `[c, 2h, 2w]` summed onto the pixel it copied.
pub fn upsample2_backward(dy: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut dx = vec![0f32; c * h * w];
    for (ch, up) in dy.chunks(4 * h * w).enumerate().take(c) {
        for (yy, row) in up.chunks(2 * w).enumerate() {
            for (xx, &g) in row.iter().enumerate() {
                dx[(ch * h + yy / 2) * w + xx / 2] += g;
            }
        }
    }
    dx
}

/// `[c, h, w]` → `[c, h + 1, w + 1]` with a zero row and column after the image.
pub fn pad_after(x: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; c * (h + 1) * (w + 1)];
    for (ch, plane) in x.chunks(h * w).enumerate().take(c) {
        for (y, row) in plane.chunks(w).enumerate() {
            let at = (ch * (h + 1) + y) * (w + 1);
            out[at..at + w].copy_from_slice(row);
        }
    }
    out
}

/// Nearest-neighbour resize of `[c, h, w]` to `[c, oh, ow]`: output pixel (y, x) reads
/// input (⌊y·h/oh⌋, ⌊x·w/ow⌋), as PyTorch's `interpolate(mode="nearest")`.
pub fn upsample_nearest(x: &[f32], c: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let cols: Vec<usize> = (0..ow).map(|j| j * w / ow).collect();
    let mut out = Vec::with_capacity(c * oh * ow);
    for plane in x.chunks(h * w).take(c) {
        for y in 0..oh {
            let src = &plane[(y * h / oh) * w..][..w];
            out.extend(cols.iter().map(|&j| src[j]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * f).sin()).collect()
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < tol, "max difference {worst}");
    }

    #[test]
    fn convolutions_match_candles_for_each_geometry() {
        let dev = Device::Cpu;
        for (k, stride, pad, h, w) in [
            (3, 1, 1, 7, 5),
            (3, 2, 1, 8, 6),
            (3, 2, 0, 9, 9),
            (1, 1, 0, 4, 3),
        ] {
            let (ci, co) = (3, 5);
            let conv = Conv {
                weight: wave(co * ci * k * k, 0.71),
                bias: wave(co, 1.3),
                c_in: ci,
                c_out: co,
                k,
                stride,
                pad,
            };
            let x = wave(ci * h * w, 0.37);
            let extra = wave(co, 2.1);
            let ours = conv.forward(&x, h, w, Some(&extra), false);
            let xt = Tensor::from_vec(x, (1, ci, h, w), &dev).unwrap();
            let wt = Tensor::from_vec(conv.weight.clone(), (co, ci, k, k), &dev).unwrap();
            let b: Vec<f32> = conv.bias.iter().zip(&extra).map(|(a, b)| a + b).collect();
            let bt = Tensor::from_vec(b, (1, co, 1, 1), &dev).unwrap();
            let theirs = xt
                .conv2d(&wt, pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bt)
                .unwrap();
            let (oh, ow) = conv.out_size(h, w);
            assert_eq!(theirs.dims(), &[1, co, oh, ow]);
            close(
                &ours,
                &theirs.flatten_all().unwrap().to_vec1().unwrap(),
                1e-5,
            );
        }
    }

    fn grad_of(t: &Tensor, store: &candle_core::backprop::GradStore) -> Vec<f32> {
        store
            .get(t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn convolution_gradients_match_candles_autograd() {
        let dev = Device::Cpu;
        // Even sizes at stride 2: candle's own conv2d backward fails on odd ones (its
        // transposed convolution comes out a row short).
        for (k, stride, pad, h, w) in [(3, 1, 1, 6, 5), (3, 2, 1, 8, 6), (1, 1, 0, 4, 3)] {
            let (ci, co) = (3, 4);
            let conv = Conv {
                weight: wave(co * ci * k * k, 0.61),
                bias: wave(co, 1.1),
                c_in: ci,
                c_out: co,
                k,
                stride,
                pad,
            };
            let x = wave(ci * h * w, 0.29);
            let (oh, ow) = conv.out_size(h, w);
            let dy = wave(co * oh * ow, 0.83);
            let (mut dw, mut db) = (vec![0f32; conv.weight.len()], vec![0f32; co]);
            let dx = conv.backward(&x, h, w, &dy, &mut dw, &mut db, false);
            let xv = candle_core::Var::from_vec(x, (1, ci, h, w), &dev).unwrap();
            let wv = candle_core::Var::from_vec(conv.weight.clone(), (co, ci, k, k), &dev).unwrap();
            let bv = candle_core::Var::from_vec(conv.bias.clone(), (1, co, 1, 1), &dev).unwrap();
            let y = xv
                .conv2d(&wv, pad, stride, 1, 1)
                .unwrap()
                .broadcast_add(&bv)
                .unwrap();
            let up = Tensor::from_vec(dy, (1, co, oh, ow), &dev).unwrap();
            let store = (y * up).unwrap().sum_all().unwrap().backward().unwrap();
            close(&dx, &grad_of(&xv, &store), 1e-4);
            close(&dw, &grad_of(&wv, &store), 1e-4);
            close(&db, &grad_of(&bv, &store), 1e-4);
        }
    }

    #[test]
    fn group_norm_gradients_match_candles_autograd() {
        let dev = Device::Cpu;
        let (c, h, w, groups) = (6, 3, 4, 3);
        let x: Vec<f32> = wave(c * h * w, 0.47)
            .iter()
            .map(|v| 2.0 * v + 0.5)
            .collect();
        let norm = GroupNorm {
            weight: wave(c, 0.7),
            bias: wave(c, 1.9),
            groups,
            eps: 1e-5,
        };
        let dy = wave(c * h * w, 0.91);
        for silu in [false, true] {
            let (mut dg, mut dbt) = (vec![0f32; c], vec![0f32; c]);
            let dx = norm.backward(&x, h * w, silu, &dy, &mut dg, &mut dbt);
            let xv = candle_core::Var::from_vec(x.clone(), (1, groups, c / groups * h * w), &dev)
                .unwrap();
            let gv = candle_core::Var::from_vec(norm.weight.clone(), (1, c, 1), &dev).unwrap();
            let bv = candle_core::Var::from_vec(norm.bias.clone(), (1, c, 1), &dev).unwrap();
            // Group norm in primitive ops, as `diffusion::net` writes it.
            let mean = xv.mean_keepdim(2).unwrap();
            let xc = xv.broadcast_sub(&mean).unwrap();
            let var = xc.sqr().unwrap().mean_keepdim(2).unwrap();
            let n = xc
                .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
                .unwrap();
            let n = n.reshape((1, c, h * w)).unwrap();
            let mut z = n.broadcast_mul(&gv).unwrap().broadcast_add(&bv).unwrap();
            if silu {
                let sig = ((z.neg().unwrap().exp().unwrap() + 1.0).unwrap())
                    .recip()
                    .unwrap();
                z = (z * sig).unwrap();
            }
            let up = Tensor::from_vec(dy.clone(), (1, c, h * w), &dev).unwrap();
            let store = (z * up).unwrap().sum_all().unwrap().backward().unwrap();
            close(&dx, &grad_of(&xv, &store), 1e-4);
            close(&dg, &grad_of(&gv, &store), 1e-4);
            close(&dbt, &grad_of(&bv, &store), 1e-4);
        }
    }

    #[test]
    fn pooling_and_upsampling_backwards_are_the_adjoints() {
        // ⟨f(x), y⟩ = ⟨x, f*(y)⟩ for each linear map and its adjoint.
        let (c, h, w) = (2, 4, 6);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
        let x = wave(c * h * w, 0.37);
        let y = wave(c * h * w / 4, 0.71);
        let lhs = dot(&avg_pool2(&x, c, h, w), &y);
        assert!((lhs - dot(&x, &avg_pool2_backward(&y, c, h, w))).abs() < 1e-5);
        let small = wave(c * h * w / 4, 0.53);
        let big = wave(c * h * w, 0.19);
        let lhs = dot(&upsample_nearest(&small, c, h / 2, w / 2, h, w), &big);
        assert!((lhs - dot(&small, &upsample2_backward(&big, c, h / 2, w / 2))).abs() < 1e-5);
    }

    #[test]
    fn group_norm_and_silu_match_candles() {
        let dev = Device::Cpu;
        let (c, h, w, groups) = (6, 4, 5, 3);
        let x: Vec<f32> = wave(c * h * w, 0.53)
            .iter()
            .map(|v| 3.0 * v + 1.0)
            .collect();
        let norm = GroupNorm {
            weight: wave(c, 0.9),
            bias: wave(c, 1.7),
            groups,
            eps: 1e-5,
        };
        let gn = candle_nn::GroupNorm::new(
            Tensor::new(norm.weight.as_slice(), &dev).unwrap(),
            Tensor::new(norm.bias.as_slice(), &dev).unwrap(),
            c,
            groups,
            1e-5,
        )
        .unwrap();
        let xt = Tensor::from_vec(x.clone(), (1, c, h, w), &dev).unwrap();
        let y = candle_core::Module::forward(&gn, &xt).unwrap();
        let s = candle_nn::ops::silu(&y).unwrap();
        close(
            &norm.forward(&x, h * w, false),
            &y.flatten_all().unwrap().to_vec1().unwrap(),
            1e-5,
        );
        close(
            &norm.forward(&x, h * w, true),
            &s.flatten_all().unwrap().to_vec1().unwrap(),
            1e-5,
        );
    }

    #[test]
    fn nearest_upsampling_pooling_and_padding_match_candles() {
        let dev = Device::Cpu;
        let x = wave(2 * 3 * 4, 0.3);
        let t = Tensor::from_vec(x.clone(), (1, 2, 3, 4), &dev).unwrap();
        for (oh, ow) in [(6, 8), (5, 7)] {
            let want = t.upsample_nearest2d(oh, ow).unwrap();
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(upsample_nearest(&x, 2, 3, 4, oh, ow), want, "{oh}×{ow}");
        }
        let pooled: Vec<f32> = t
            .avg_pool2d(2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        close(&avg_pool2(&x, 2, 3, 4), &pooled, 1e-6);
        let padded = t
            .pad_with_zeros(3, 0, 1)
            .unwrap()
            .pad_with_zeros(2, 0, 1)
            .unwrap();
        let want: Vec<f32> = padded.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(pad_after(&x, 2, 3, 4), want);
    }
}
