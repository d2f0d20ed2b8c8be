//! `x·Wᵀ` for a weight `W` `[out, in]` as one autograd node on the CPU.
//!
//! Written as `x.matmul(&w.t())`, the product's backward computes the gradient of `Wᵀ`
//! (`xᵀ·dy`, `[in, out]`), and the transpose node's backward sums its transposed view into a
//! zeroed `[out, in]` buffer: a strided elementwise pass, on one thread, over every weight's
//! gradient each step (538 MB for SmolLM2-135M). Here the backward computes `dyᵀ·x` straight
//! into `W`'s layout. Other devices and dtypes take `matmul`.

use crate::gemm_host::{Mat, product};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// `x` `[n, in]` times `w` `[out, in]` transposed: `[n, out]`, differentiable in both.
pub fn linear_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let ((_, k), (_, k_w)) = (x.dims2()?, w.dims2()?);
    if k != k_w {
        candle_core::bail!(
            "linear: inputs of width {k} for a weight of shape {:?}",
            w.dims()
        );
    }
    if x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 {
        return x.apply_op2(w, LinearT);
    }
    x.matmul(&w.t()?)
}

struct LinearT;

/// A 2-D f32 operand read in place by its layout.
fn operand<'a>(s: &'a CpuStorage, l: &Layout) -> Result<Mat<'a>> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("linear: f32 operands expected");
    };
    let ((rows, cols), st) = (l.shape().dims2()?, l.stride());
    Ok(Mat::with_strides(
        &v[l.start_offset()..],
        rows,
        cols,
        st[0],
        st[1],
    ))
}

impl CustomOp2 for LinearT {
    fn name(&self) -> &'static str {
        "descent-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (operand(s1, l1)?, operand(s2, l2)?);
        let (n, out) = (x.rows(), w.rows());
        let y = product(x, w.t());
        Ok((CpuStorage::F32(y), Shape::from((n, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Detached: the gradients are values, not graphs to differentiate again.
        let (x, w, grad) = (x.detach(), w.detach(), grad.detach());
        let dx = grad.matmul(&w)?;
        let dw = grad.t()?.matmul(&x)?;
        Ok((Some(dx), Some(dw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_abs_diff as close;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradients_match_matmul() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (13, 37), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (29, 37), &dev).unwrap()).unwrap();
        // Unequal upstream gradients, so that a transposed dW would show.
        let up = Tensor::randn(0f32, 1.0, (13, 29), &dev).unwrap();
        let ours = linear_t(x.as_tensor(), w.as_tensor()).unwrap();
        let theirs = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        assert!(close(&ours, &theirs) < 1e-4, "values differ");
        let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (v, what) in [(&x, "dx"), (&w, "dW")] {
            let (a, b) = (
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            assert_eq!(a.dims(), b.dims(), "{what}'s shape");
            assert!(close(a, b) < 1e-4, "{what} differs by {}", close(a, b));
        }
    }

    #[test]
    fn strided_inputs_are_read_by_their_layout() {
        let dev = Device::Cpu;
        // A transposed input and a weight that is a narrowed view of a wider matrix.
        let x = Tensor::randn(0f32, 1.0, (8, 5), &dev).unwrap().t().unwrap();
        let wide = Tensor::randn(0f32, 1.0, (6, 12), &dev).unwrap();
        let w = wide.narrow(1, 3, 8).unwrap();
        let ours = linear_t(&x, &w).unwrap();
        let theirs = x
            .contiguous()
            .unwrap()
            .matmul(&w.contiguous().unwrap().t().unwrap())
            .unwrap();
        assert!(close(&ours, &theirs) < 1e-5);
    }

    #[test]
    fn mismatched_widths_are_named() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((3, 5), DType::F32, &dev).unwrap();
        let e = linear_t(&x, &w).unwrap_err().to_string();
        assert!(e.contains("width 4") && e.contains("[3, 5]"), "{e}");
    }
}
