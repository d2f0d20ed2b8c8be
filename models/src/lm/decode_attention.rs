//! Attention of one new token per row over the KV cache, f32 on the CPU: scores, mask,
//! softmax and the weighted sum of values in one pass per (row, KV head), where the tensor
//! ops take about ten passes, each a dispatch to the thread pool (4.7 ms of a 51 ms batch-8
//! step of SmolLM2-135M's configuration on 2 cores). Grouped-query heads read their shared
//! keys and values in place. Records no gradient: only generation calls it.

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// `softmax(q·kᵀ·scale + mask)·v` as `[b, 1, heads·d]`, for `q` `[b, heads, 1, d]`, `k` and
/// `v` `[b, kv_heads, total, d]` (rows of `d` contiguous, as the cache keeps them) and `mask`
/// `[b, 1, 1, total]`; `None` where it does not apply (another dtype or device, more than one
/// new token), for the tensor ops instead.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Result<Option<Tensor>> {
    let (b, heads, t, d) = q.dims4()?;
    let (kb, kv_heads, total, kd) = k.dims4()?;
    if t != 1 || kb != b || kd != d || v.dims() != k.dims() || heads % kv_heads != 0 {
        return Ok(None);
    }
    if mask.dims() != [b, 1, 1, total] {
        return Ok(None);
    }
    let (q, mask) = (q.contiguous()?, mask.contiguous()?);
    let (qs, ql) = q.storage_and_layout();
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (ms, ml) = mask.storage_and_layout();
    let (
        Storage::Cpu(CpuStorage::F32(qd)),
        Storage::Cpu(CpuStorage::F32(kd)),
        Storage::Cpu(CpuStorage::F32(vd)),
        Storage::Cpu(CpuStorage::F32(md)),
    ) = (&*qs, &*ks, &*vs, &*ms)
    else {
        return Ok(None);
    };
    let (Some(kst), Some(vst)) = (Rows::of(kl, d), Rows::of(vl, d)) else {
        return Ok(None);
    };
    let qd = &qd[ql.start_offset()..];
    let md = &md[ml.start_offset()..];
    let rep = heads / kv_heads;
    let scale = scale as f32;
    let mut y = vec![0f32; b * heads * d];
    let one = |(i, out): (usize, &mut [f32])| {
        // `out` holds the rep query heads of KV head g in row r: [rep, d].
        let (r, g) = (i / kv_heads, i % kv_heads);
        let mask = &md[r * total..(r + 1) * total];
        let mut p = vec![0f32; total];
        for (h, o) in out.chunks_exact_mut(d).enumerate() {
            let qh = &qd[((r * heads) + g * rep + h) * d..][..d];
            let mut top = f32::NEG_INFINITY;
            for (j, s) in p.iter_mut().enumerate() {
                let kj = &kd[kst.at(r, g, j)..][..d];
                *s = dot(qh, kj) * scale + mask[j];
                top = top.max(*s);
            }
            let mut sum = 0f32;
            for s in p.iter_mut() {
                *s = (*s - top).exp();
                sum += *s;
            }
            o.fill(0.0);
            for (j, s) in p.iter().enumerate() {
                let w = s / sum;
                for (oe, ve) in o.iter_mut().zip(&vd[vst.at(r, g, j)..][..d]) {
                    *oe += w * ve;
                }
            }
        }
    };
    let chunk = rep * d;
    if b * heads * total * d < 1 << 16 {
        y.chunks_exact_mut(chunk).enumerate().for_each(one);
    } else {
        use rayon::prelude::*;
        y.par_chunks_exact_mut(chunk).enumerate().for_each(one);
    }
    drop((qs, ks, vs, ms));
    Ok(Some(Tensor::from_vec(y, (b, 1, heads * d), q.device())?))
}

/// Where the rows of a `[b, heads, total, d]` layout start, each `d` contiguous floats.
struct Rows {
    start: usize,
    stride: [usize; 3],
}

impl Rows {
    fn of(l: &Layout, d: usize) -> Option<Rows> {
        let s = l.stride();
        (s.len() == 4 && s[3] == 1 && s[2] == d).then(|| Rows {
            start: l.start_offset(),
            stride: [s[0], s[1], s[2]],
        })
    }

    fn at(&self, r: usize, g: usize, j: usize) -> usize {
        self.start + r * self.stride[0] + g * self.stride[1] + j * self.stride[2]
    }
}

/// A dot product in eight lanes, which the compiler vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ac, at) = a.as_chunks::<8>();
    let (bc, bt) = b.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + at.iter().zip(bt).map(|(x, y)| x * y).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{D, Device};

    /// Against the tensor ops, with three query heads per KV head, keys and values read
    /// from a narrowed cache buffer (rows not packed), and masked (padding) positions.
    #[test]
    fn matches_the_tensor_ops() -> Result<()> {
        let dev = Device::Cpu;
        let (b, kv_heads, rep, d, total) = (3, 2, 3, 20, 9);
        let heads = kv_heads * rep;
        let q = Tensor::randn(0f32, 1.0, (b, heads, 1, d), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (b, kv_heads, 16, d), &dev)?.narrow(2, 0, total)?;
        let v = Tensor::randn(0f32, 1.0, (b, kv_heads, 16, d), &dev)?.narrow(2, 0, total)?;
        let mut m = vec![0f32; b * total];
        m[0] = super::super::model::MASKED;
        m[total + 1] = super::super::model::MASKED;
        let mask = Tensor::from_vec(m, (b, 1, 1, total), &dev)?;
        let scale = (d as f64).powf(-0.5);
        let got = attend(&q, &k, &v, &mask, scale)?.expect("it applies");
        let want = super::super::model::attention(&q, &k, &v, &mask, scale, false)?;
        let err = (got - &want)?.abs()?.flatten_all()?.max(D::Minus1)?;
        assert!(err.to_scalar::<f32>()? < 1e-5, "off by {err}");
        // More than one new token is the tensor ops' job.
        let q2 = Tensor::randn(0f32, 1.0, (b, heads, 2, d), &dev)?;
        let mask2 = Tensor::zeros((b, 1, 2, total), candle_core::DType::F32, &dev)?;
        assert!(attend(&q2, &k, &v, &mask2, scale)?.is_none());
        Ok(())
    }
}
