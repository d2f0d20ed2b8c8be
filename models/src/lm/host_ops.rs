//! The decoder's pieces on host f32 buffers, forward and backward, for the hand-written
//! training pass ([`super::tape`]): RMSNorm, RoPE, SwiGLU and masked attention. Matrices are
//! row-major; a layer's rows are its `b·t` tokens.

use crate::gemm_host::{Mat, gemm};
use crate::simd;
use rayon::prelude::*;

/// Rows per task where a result sums over rows: fixed, so that the sums come out the same
/// whatever the number of threads.
const ROWS_PER_PART: usize = 64;

/// Elements per task of the elementwise maps.
const ELEMS_PER_TASK: usize = 1 << 14;

/// RMSNorm of each `w.len()`-wide row: `y = w ⊙ x · r` with `r = (mean(x²) + eps)^-½`.
/// Returns `y` and each row's `r`.
pub fn rms_forward(x: &[f32], w: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    let mut y = vec![0f32; x.len()];
    let mut r = vec![0f32; x.len() / d];
    y.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .zip(r.par_iter_mut())
        .with_min_len(16)
        .for_each(|((y, x), r)| {
            let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
            *r = 1.0 / (ms + eps).sqrt();
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                *y = x * *r * w;
            }
        });
    (y, r)
}

/// RMSNorm's backward: adds `∂/∂x` of `Σ dy ⊙ y` to `dx` and returns the weight's gradient.
/// With `g = dy ⊙ w`: `dx += r · (g − x · r² · (g·x) / d)`, `dw = Σ_rows dy ⊙ x · r`.
pub fn rms_backward(dy: &[f32], x: &[f32], r: &[f32], w: &[f32], dx: &mut [f32]) -> Vec<f32> {
    let d = w.len();
    let part = ROWS_PER_PART * d;
    let parts: Vec<Vec<f32>> = dx
        .par_chunks_mut(part)
        .zip(dy.par_chunks(part))
        .zip(x.par_chunks(part).zip(r.par_chunks(ROWS_PER_PART)))
        .map(|((dx, dy), (x, r))| {
            let mut dw = vec![0f32; d];
            for (((dx, dy), x), &r) in dx.chunks_mut(d).zip(dy.chunks(d)).zip(x.chunks(d)).zip(r) {
                let gx: f32 = dy.iter().zip(w).zip(x).map(|((g, w), x)| g * w * x).sum();
                let c = r * r * gx / d as f32;
                for i in 0..d {
                    dx[i] += r * (dy[i] * w[i] - x[i] * c);
                    dw[i] += dy[i] * x[i] * r;
                }
            }
            dw
        })
        .collect();
    sum_parts(parts, d)
}

/// Each column's sum over the rows of a `cols`-wide matrix (a bias's gradient).
pub fn column_sums(m: &[f32], cols: usize) -> Vec<f32> {
    let parts: Vec<Vec<f32>> = m
        .par_chunks(ROWS_PER_PART * cols)
        .map(|rows| {
            let mut s = vec![0f32; cols];
            for row in rows.chunks(cols) {
                for (s, v) in s.iter_mut().zip(row) {
                    *s += v;
                }
            }
            s
        })
        .collect();
    sum_parts(parts, cols)
}

/// Per-task partial sums added in task order.
fn sum_parts(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    parts.into_iter().fold(vec![0f32; len], |mut acc, p| {
        for (a, v) in acc.iter_mut().zip(p) {
            *a += v;
        }
        acc
    })
}

/// RoPE's cos and sin of position × frequency, `[rows, inv_freq.len()]` each; the angles in
/// f32, as transformers computes them.
pub fn rope_tables(positions: &[u32], inv_freq: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let angles: Vec<f32> = positions
        .iter()
        .flat_map(|&p| inv_freq.iter().map(move |&f| p as f32 * f))
        .collect();
    (
        angles.iter().map(|a| a.cos()).collect(),
        angles.iter().map(|a| a.sin()).collect(),
    )
}

/// HF's `rotate_half` RoPE in place on rows of `heads` heads of width `d`:
/// `x₁' = x₁ c − x₂ s`, `x₂' = x₂ c + x₁ s`. `inverse` applies the transpose (the backward
/// of the rotation): `x₁' = x₁ c + x₂ s`, `x₂' = x₂ c − x₁ s`.
pub fn rope(x: &mut [f32], heads: usize, d: usize, cos: &[f32], sin: &[f32], inverse: bool) {
    let half = d / 2;
    let sign = if inverse { -1.0 } else { 1.0 };
    x.par_chunks_mut(heads * d)
        .zip(cos.par_chunks(half).zip(sin.par_chunks(half)))
        .with_min_len(8)
        .for_each(|(row, (c, s))| {
            for head in row.chunks_mut(d) {
                let (x1, x2) = head.split_at_mut(half);
                for j in 0..half {
                    let (a, b, s) = (x1[j], x2[j], sign * s[j]);
                    x1[j] = a * c[j] - b * s;
                    x2[j] = b * c[j] + a * s;
                }
            }
        });
}

#[inline(always)]
fn sigmoid(a: f32) -> f32 {
    1.0 / (1.0 + simd::exp(-a))
}

fn swiglu_chunk(m: &mut [f32], a: &[f32], u: &[f32]) {
    simd::widest(
        #[inline(always)]
        || {
            for ((m, &a), &u) in m.iter_mut().zip(a).zip(u) {
                *m = a * sigmoid(a) * u;
            }
        },
    )
}

fn swiglu_backward_chunk(da: &mut [f32], du: &mut [f32], dm: &[f32], a: &[f32], u: &[f32]) {
    simd::widest(
        #[inline(always)]
        || {
            for i in 0..a.len() {
                let s = sigmoid(a[i]);
                da[i] = dm[i] * u[i] * s * (1.0 + a[i] * (1.0 - s));
                du[i] = dm[i] * a[i] * s;
            }
        },
    )
}

/// SwiGLU: `silu(a) ⊙ u`.
pub fn swiglu(a: &[f32], u: &[f32]) -> Vec<f32> {
    let mut m = vec![0f32; a.len()];
    m.par_chunks_mut(ELEMS_PER_TASK)
        .zip(
            a.par_chunks(ELEMS_PER_TASK)
                .zip(u.par_chunks(ELEMS_PER_TASK)),
        )
        .for_each(|(m, (a, u))| swiglu_chunk(m, a, u));
    m
}

/// SwiGLU's backward: `(da, du)` for upstream `dm`; `silu'(a) = σ(a)·(1 + a·(1 − σ(a)))`.
pub fn swiglu_backward(dm: &[f32], a: &[f32], u: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut da, mut du) = (vec![0f32; a.len()], vec![0f32; a.len()]);
    da.par_chunks_mut(ELEMS_PER_TASK)
        .zip(du.par_chunks_mut(ELEMS_PER_TASK))
        .zip(dm.par_chunks(ELEMS_PER_TASK))
        .zip(
            a.par_chunks(ELEMS_PER_TASK)
                .zip(u.par_chunks(ELEMS_PER_TASK)),
        )
        .for_each(|(((da, du), dm), (a, u))| swiglu_backward_chunk(da, du, dm, a, u));
    (da, du)
}

/// The attention's shape: `b` sequences of `t` tokens, `heads` query heads sharing
/// `kv_heads` key/value heads, each `d` wide.
#[derive(Clone, Copy)]
pub struct Heads {
    pub b: usize,
    pub t: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub d: usize,
}

impl Heads {
    fn rep(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// `softmax(q·kᵀ·scale + mask)·v` for `q` `[b·t, heads·d]`, `k` and `v` `[b·t, kv_heads·d]`
/// (the projections' own layout, each head a column block) and `mask` `[b, t, t]`. Returns
/// the probabilities `[b, heads, t, t]` (the backward needs them) and the output
/// `[b·t, heads·d]`. One task per (sequence, kv head), its query heads in turn.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    s: Heads,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (t, d, rep) = (s.t, s.d, s.rep());
    let (qd, kvd) = (s.heads * d, s.kv_heads * d);
    let mut p = vec![0f32; s.b * s.heads * t * t];
    let mut o_heads = vec![0f32; s.b * s.heads * t * d];
    p.par_chunks_mut(rep * t * t)
        .zip(o_heads.par_chunks_mut(rep * t * d))
        .enumerate()
        .for_each(|(group, (p, o))| {
            let (seq, g) = (group / s.kv_heads, group % s.kv_heads);
            let row0 = seq * t;
            let kg = Mat::strided(&k[row0 * kvd + g * d..], t, d, kvd);
            let vg = Mat::strided(&v[row0 * kvd + g * d..], t, d, kvd);
            let mask = &mask[seq * t * t..(seq + 1) * t * t];
            for (r, (p, o)) in p.chunks_mut(t * t).zip(o.chunks_mut(t * d)).enumerate() {
                let h = g * rep + r;
                let qh = Mat::strided(&q[row0 * qd + h * d..], t, d, qd);
                gemm(p, t, qh, kg.t(), scale, false, false);
                masked_softmax_rows(p, mask, t);
                gemm(o, d, Mat::new(p, t, t), vg, 1.0, false, false);
            }
        });
    (p, heads_to_rows(&o_heads, s.heads, t, d))
}

/// Each row of `p` (rows `t` wide) → the softmax of `row + mask`, in place.
fn masked_softmax_rows(p: &mut [f32], mask: &[f32], t: usize) {
    simd::widest(
        #[inline(always)]
        || {
            for (row, mask) in p.chunks_mut(t).zip(mask.chunks(t)) {
                row.iter_mut().zip(mask).for_each(|(x, m)| *x += m);
                let inv = 1.0 / simd::exp_minus_max(row);
                row.iter_mut().for_each(|x| *x *= inv);
            }
        },
    )
}

/// The softmax's backward per row: `ds ← p ⊙ (ds − Σ ds ⊙ p)`, rows `t` wide.
fn softmax_backward_rows(ds: &mut [f32], p: &[f32], t: usize) {
    simd::widest(
        #[inline(always)]
        || {
            for (ds, p) in ds.chunks_mut(t).zip(p.chunks(t)) {
                let dot = simd::dot(ds, p);
                ds.iter_mut().zip(p).for_each(|(x, &p)| *x = p * (*x - dot));
            }
        },
    )
}

/// The attention's backward for upstream `d_o` `[b·t, heads·d]`: `(dq, dk, dv)` in the
/// layouts of `q`, `k` and `v`. With `dP = dO·vᵀ`: `dS = P ⊙ (dP − rowsum(dP ⊙ P))`,
/// `dq = scale·dS·k`, `dk = scale·Σ_heads dSᵀ·q`, `dv = Σ_heads Pᵀ·dO`.
pub fn attention_backward(
    d_o: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &[f32],
    s: Heads,
    scale: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (t, d, rep) = (s.t, s.d, s.rep());
    let (qd, kvd) = (s.heads * d, s.kv_heads * d);
    let mut dq = vec![0f32; s.b * s.heads * t * d];
    let mut dk = vec![0f32; s.b * s.kv_heads * t * d];
    let mut dv = vec![0f32; s.b * s.kv_heads * t * d];
    dq.par_chunks_mut(rep * t * d)
        .zip(dk.par_chunks_mut(t * d).zip(dv.par_chunks_mut(t * d)))
        .zip(p.par_chunks(rep * t * t))
        .enumerate()
        .for_each(|(group, ((dq, (dk, dv)), p))| {
            let (seq, g) = (group / s.kv_heads, group % s.kv_heads);
            let row0 = seq * t;
            let kg = Mat::strided(&k[row0 * kvd + g * d..], t, d, kvd);
            let vg = Mat::strided(&v[row0 * kvd + g * d..], t, d, kvd);
            let mut ds = vec![0f32; t * t];
            for (r, (dq, p)) in dq.chunks_mut(t * d).zip(p.chunks(t * t)).enumerate() {
                let h = g * rep + r;
                let qh = Mat::strided(&q[row0 * qd + h * d..], t, d, qd);
                let doh = Mat::strided(&d_o[row0 * qd + h * d..], t, d, qd);
                let ph = Mat::new(p, t, t);
                gemm(&mut ds, t, doh, vg.t(), 1.0, false, false);
                gemm(dv, d, ph.t(), doh, 1.0, r > 0, false);
                softmax_backward_rows(&mut ds, p, t);
                let dsm = Mat::new(&ds, t, t);
                gemm(dq, d, dsm, kg, scale, false, false);
                gemm(dk, d, dsm.t(), qh, scale, r > 0, false);
            }
        });
    (
        heads_to_rows(&dq, s.heads, t, d),
        heads_to_rows(&dk, s.kv_heads, t, d),
        heads_to_rows(&dv, s.kv_heads, t, d),
    )
}

/// `[b, heads, t, d]` to `[b·t, heads·d]`.
fn heads_to_rows(x: &[f32], heads: usize, t: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(heads * d)
        .enumerate()
        .with_min_len(16)
        .for_each(|(row, out)| {
            let (seq, i) = (row / t, row % t);
            for (h, out) in out.chunks_mut(d).enumerate() {
                let from = ((seq * heads + h) * t + i) * d;
                out.copy_from_slice(&x[from..from + d]);
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * f).sin()).collect()
    }

    /// Central differences of `f` at `x` along `dir`, against the directional derivative
    /// `Σ grad ⊙ dir`.
    fn check_directional(f: impl Fn(&[f32]) -> f64, x: &[f32], grad: &[f32], dir: &[f32]) {
        let h = 1e-2f32;
        let shifted =
            |sign: f32| -> Vec<f32> { x.iter().zip(dir).map(|(x, d)| x + sign * h * d).collect() };
        let numeric = (f(&shifted(1.0)) - f(&shifted(-1.0))) / (2.0 * h as f64);
        let analytic: f64 = grad.iter().zip(dir).map(|(g, d)| (g * d) as f64).sum();
        assert!(
            (numeric - analytic).abs() < 2e-3 * (1.0 + analytic.abs()),
            "numeric {numeric} against analytic {analytic}"
        );
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum()
    }

    #[test]
    fn rms_norm_backward_matches_finite_differences() {
        let (rows, d) = (70, 12);
        let x = wave(rows * d, 0.7);
        let w = wave(d, 1.3);
        let up = wave(rows * d, 0.29);
        let mut dx = vec![0f32; x.len()];
        let dw = rms_backward(&up, &x, &rms_forward(&x, &w, 1e-5).1, &w, &mut dx);
        let dir = wave(x.len(), 0.11);
        check_directional(|x| dot(&rms_forward(x, &w, 1e-5).0, &up), &x, &dx, &dir);
        let dir = wave(d, 0.5);
        check_directional(|w| dot(&rms_forward(&x, w, 1e-5).0, &up), &w, &dw, &dir);
    }

    #[test]
    fn rope_inverse_undoes_the_rotation() {
        let (rows, heads, d) = (5, 3, 8);
        let positions = [0u32, 1, 7, 30, 2];
        let (cos, sin) = rope_tables(&positions, &[1.0, 0.1, 0.01, 0.001]);
        let x = wave(rows * heads * d, 0.9);
        let mut y = x.clone();
        rope(&mut y, heads, d, &cos, &sin, false);
        // Position 0 is the identity; later ones are not.
        assert_eq!(y[..heads * d], x[..heads * d]);
        assert!(
            y[heads * d..]
                .iter()
                .zip(&x[heads * d..])
                .any(|(a, b)| (a - b).abs() > 0.1)
        );
        rope(&mut y, heads, d, &cos, &sin, true);
        assert!(y.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn swiglu_backward_matches_finite_differences() {
        let n = 40;
        let (a, u, up) = (wave(n, 0.8), wave(n, 0.3), wave(n, 1.7));
        let (da, du) = swiglu_backward(&up, &a, &u);
        let dir = wave(n, 0.13);
        check_directional(|a| dot(&swiglu(a, &u), &up), &a, &da, &dir);
        check_directional(|u| dot(&swiglu(&a, u), &up), &u, &du, &dir);
    }

    #[test]
    fn attention_backward_matches_finite_differences() {
        let s = Heads {
            b: 2,
            t: 5,
            heads: 4,
            kv_heads: 2,
            d: 6,
        };
        let n = s.b * s.t;
        let (q, k, v) = (
            wave(n * s.heads * s.d, 0.37),
            wave(n * s.kv_heads * s.d, 0.53),
            wave(n * s.kv_heads * s.d, 0.71),
        );
        // Causal, and the second sequence's later tokens do not see its first. (A row that
        // sees nothing is uniform whatever its scores, where the formula's gradient is not
        // zero; such rows are padding, whose outputs no loss reads.)
        let mut mask = vec![0f32; s.b * s.t * s.t];
        for seq in 0..s.b {
            for i in 0..s.t {
                for j in 0..s.t {
                    if j > i || (seq == 1 && j == 0 && i > 0) {
                        mask[(seq * s.t + i) * s.t + j] = super::super::model::MASKED;
                    }
                }
            }
        }
        let up = wave(n * s.heads * s.d, 0.19);
        let scale = 0.4;
        let (p, _) = attention(&q, &k, &v, &mask, s, scale);
        let (dq, dk, dv) = attention_backward(&up, &q, &k, &v, &p, s, scale);
        let out =
            |q: &[f32], k: &[f32], v: &[f32]| dot(&attention(q, k, v, &mask, s, scale).1, &up);
        check_directional(|q| out(q, &k, &v), &q, &dq, &wave(q.len(), 0.23));
        check_directional(|k| out(&q, k, &v), &k, &dk, &wave(k.len(), 0.31));
        check_directional(|v| out(&q, &k, v), &v, &dv, &wave(v.len(), 0.47));
    }
}
