//! The negative log-likelihood of each row's target under its logits — cross-entropy before
//! the mean — as one op with its own backward on the CPU.
//!
//! Written in candle's primitive ops (max, subtract, exp, sum, log, gather) the loss makes
//! half a dozen logits-sized nodes, and candle's autograd gives each a gradient buffer plus
//! a zeroed one to sum it into (50 MB each for SmolLM2-135M's logits at 256 tokens). Here
//! the forward pass reads the logits once, and the backward writes (softmax − one-hot) ·
//! upstream gradient in one pass: one logits-sized buffer. The 135M training step did not
//! get measurably faster for it on 2 cores (BENCHMARKS.md), but the three losses that wrote
//! the formula out now share it. Other devices and dtypes take the primitive ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, D, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `−log softmax(logits)[target]` per row: `logits` `[n, classes]`, `targets` `[n]` (u32),
/// result `[n]` in f32, differentiable in `logits`.
pub fn row_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, classes) = logits.dims2()?;
    if targets.dims() != [n] {
        candle_core::bail!(
            "row_nll: {n} rows of logits but targets of shape {:?}",
            targets.dims()
        );
    }
    if logits.device().is_cpu() && logits.dtype() == DType::F32 {
        let targets = targets.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        if let Some((row, &t)) = targets
            .iter()
            .enumerate()
            .find(|&(_, &t)| t as usize >= classes)
        {
            candle_core::bail!("row_nll: row {row}'s target {t} is not below {classes} classes");
        }
        return logits.contiguous()?.apply_op1(RowNll { targets });
    }
    primitive(&logits.to_dtype(DType::F32)?, targets)
}

/// The same in candle's primitive ops (max-shifted log-sum-exp minus the target's logit).
fn primitive(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = shifted.gather(&targets.unsqueeze(1)?, 1)?;
    (lse - picked)?.squeeze(1)
}

/// The forward op; holds the targets, which have no gradient.
struct RowNll {
    targets: Vec<u32>,
}

/// The backward op: `grad_res` `[n]` in, `[n, classes]` out, reading the logits again.
struct RowNllGrad<'a> {
    targets: &'a [u32],
}

/// A row's maximum and Σ exp(x − max): the values stay shifted, as in the primitive ops,
/// because x − lse at large logits loses digits to the rounding of lse.
fn max_and_sum(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    (max, sum)
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let (CpuStorage::F32(v), Some((a, b))) = (s, l.contiguous_offsets()) else {
        candle_core::bail!("row_nll: {what} must be contiguous f32");
    };
    Ok(&v[a..b])
}

impl CustomOp1 for RowNll {
    fn name(&self) -> &'static str {
        "descent-row-nll"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let logits = contiguous_f32(s, l, "logits")?;
        let n = self.targets.len();
        let out = row_values(logits, &self.targets)?;
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad_res = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let op = RowNllGrad {
            targets: &self.targets,
        };
        Ok(Some(logits.apply_op2_no_bwd(&grad_res, &op)?))
    }
}

impl CustomOp2 for RowNllGrad<'_> {
    fn name(&self) -> &'static str {
        "descent-row-nll-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = contiguous_f32(s1, l1, "logits")?;
        let upstream = contiguous_f32(s2, l2, "the upstream gradient")?;
        let n = self.targets.len();
        let classes = logits.len() / n.max(1);
        let mut out = vec![0f32; logits.len()];
        out.par_chunks_mut(classes.max(1))
            .zip(logits.par_chunks(classes.max(1)))
            .zip(self.targets.par_iter().zip(upstream.par_iter()))
            .for_each(|((d, row), (&t, &g))| {
                row_grad(d, row, t, g);
            });
        Ok((CpuStorage::F32(out), Shape::from((n, classes))))
    }
}

/// One row's gradient of `g · nll`: `g · (softmax(row) − one-hot(t))`, into `d`; returns
/// the row's nll.
fn row_grad(d: &mut [f32], row: &[f32], t: u32, g: f32) -> f32 {
    let (max, sum) = max_and_sum(row);
    let scale = g / sum;
    for (d, &x) in d.iter_mut().zip(row) {
        *d = (x - max).exp() * scale;
    }
    d[t as usize] -= g;
    sum.ln() - (row[t as usize] - max)
}

/// Each row's `nll` of host `logits` `[n, classes]`.
pub fn row_values(logits: &[f32], targets: &[u32]) -> Result<Vec<f32>> {
    let classes = host_classes(logits, targets)?;
    Ok(logits
        .par_chunks(classes)
        .zip(targets.par_iter())
        .map(|(row, &t)| {
            let (max, sum) = max_and_sum(row);
            sum.ln() - (row[t as usize] - max)
        })
        .collect())
}

/// The row width of host `logits` for `targets`, each target checked against it.
fn host_classes(logits: &[f32], targets: &[u32]) -> Result<usize> {
    let n = targets.len();
    if n == 0 && logits.is_empty() {
        return Ok(1);
    }
    let classes = logits.len() / n.max(1);
    if classes * n != logits.len() || classes == 0 {
        candle_core::bail!("nll: {} logits do not make {n} rows", logits.len());
    }
    if let Some((row, &t)) = targets
        .iter()
        .enumerate()
        .find(|&(_, &t)| t as usize >= classes)
    {
        candle_core::bail!("nll: row {row}'s target {t} is not below {classes} classes");
    }
    Ok(classes)
}

/// `Σ_r weights[r] · nll_r` over the rows of host `logits` `[n, classes]`, and its gradient
/// times `scale` (`scale · weights[r] · (softmax − one-hot)` per row; zero where the weight
/// is), for the hand-written backward passes that take the logits' gradient as a slice.
pub fn weighted_sum_with_grad(
    logits: &[f32],
    targets: &[u32],
    weights: &[f32],
    scale: f32,
) -> Result<(f64, Vec<f32>)> {
    let classes = host_classes(logits, targets)?;
    if weights.len() != targets.len() {
        candle_core::bail!("nll: {} weights for {} rows", weights.len(), targets.len());
    }
    let mut grad = vec![0f32; logits.len()];
    let parts: Vec<f64> = grad
        .par_chunks_mut(classes)
        .zip(logits.par_chunks(classes))
        .zip(targets.par_iter().zip(weights.par_iter()))
        .map(|((d, row), (&t, &w))| {
            if w == 0.0 {
                return 0.0;
            }
            w as f64 * row_grad(d, row, t, w * scale) as f64
        })
        .collect();
    Ok((parts.iter().sum(), grad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_abs_diff as close;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradients_match_the_primitive_ops() {
        let dev = Device::Cpu;
        let (n, classes) = (7, 301);
        let init = (Tensor::randn(0f32, 3.0, (n, classes), &dev).unwrap() + 50.0).unwrap();
        let logits = Var::from_tensor(&init).unwrap();
        let targets = Tensor::new(&[0u32, 300, 5, 5, 150, 299, 1], &dev).unwrap();
        // Unequal weights per row, as the language model's masked loss has.
        let w = Tensor::new(&[1f32, 0.0, 2.0, 0.5, 1.0, 3.0, 1.0], &dev).unwrap();
        let ours = row_nll(logits.as_tensor(), &targets).unwrap();
        let theirs = primitive(logits.as_tensor(), &targets).unwrap();
        assert!(close(&ours, &theirs) < 1e-5, "values differ");
        let g_ours = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, b) = (
            g_ours.get(logits.as_tensor()).unwrap(),
            g_theirs.get(logits.as_tensor()).unwrap(),
        );
        // The inputs are unseeded, so the bound covers f32 rounding at its worst here rather than
        // on one draw: the primitive ops' ln(sum) over 301 terms is off by up to ~1e-5 relative,
        // times a softmax ≤ 1 and a weight ≤ 3. A wrong gradient differs by far more.
        assert!(close(a, b) < 1e-4, "gradients differ by {}", close(a, b));
        // A row of weight 0 has no gradient.
        assert_eq!(
            close(&a.get(1).unwrap(), &a.get(1).unwrap().zeros_like().unwrap()),
            0.0
        );
    }

    #[test]
    fn the_host_weighted_sum_and_gradient_match_the_op() {
        let dev = Device::Cpu;
        let (n, classes) = (5, 37);
        let logits =
            Var::from_tensor(&Tensor::randn(0f32, 2.0, (n, classes), &dev).unwrap()).unwrap();
        let targets = [0u32, 36, 5, 5, 20];
        let w = [1f32, 0.0, 2.0, 0.5, 1.0];
        let (t, wt) = (
            Tensor::new(&targets, &dev).unwrap(),
            Tensor::new(&w, &dev).unwrap(),
        );
        let sum = (row_nll(logits.as_tensor(), &t).unwrap() * wt)
            .unwrap()
            .sum_all()
            .unwrap();
        let loss = (&sum * 0.25).unwrap();
        let want = loss
            .backward()
            .unwrap()
            .get(logits.as_tensor())
            .unwrap()
            .clone();
        let host: Vec<f32> = logits.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let (ours, grad) = weighted_sum_with_grad(&host, &targets, &w, 0.25).unwrap();
        assert!((ours - sum.to_scalar::<f32>().unwrap() as f64).abs() < 1e-4);
        let grad = Tensor::from_vec(grad, (n, classes), &dev).unwrap();
        assert!(close(&grad, &want) < 1e-6);
        let err = weighted_sum_with_grad(&host, &[0, 1, 2, 3, 37], &w, 1.0).unwrap_err();
        assert!(err.to_string().contains("row 4's target 37"), "{err}");
    }

    #[test]
    fn a_transposed_input_is_read_by_its_layout() {
        let dev = Device::Cpu;
        let t = Tensor::randn(0f32, 1.0, (40, 6), &dev)
            .unwrap()
            .t()
            .unwrap();
        let targets = Tensor::new(&[3u32, 39, 0, 17, 8, 22], &dev).unwrap();
        let ours = row_nll(&t, &targets).unwrap();
        let theirs = primitive(&t.contiguous().unwrap(), &targets).unwrap();
        assert!(close(&ours, &theirs) < 1e-5);
    }

    #[test]
    fn a_target_out_of_range_is_named() {
        let dev = Device::Cpu;
        let logits = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
        let err = row_nll(&logits, &Tensor::new(&[1u32, 4], &dev).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 1's target 4"), "{err}");
    }
}
