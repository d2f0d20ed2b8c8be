//! Matrix products on host f32 slices, through the `gemm` crate that candle's CPU backend
//! uses, with any row and column strides: a block of columns of a wider matrix, or a
//! transpose, is read in place rather than copied out first.

/// A read-only matrix over a slice: element (i, j) is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        Mat::strided(data, rows, cols, cols)
    }

    /// `rows × cols` with rows `rs` apart (a column block of a matrix `rs` wide, when `data`
    /// starts at the block's first column).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Mat<'a> {
        Mat::with_strides(data, rows, cols, rs, 1)
    }

    /// Element (i, j) at `data[i·rs + j·cs]`: any layout candle's 2-D tensors have.
    pub fn with_strides(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Mat<'a> {
        let m = Mat {
            data,
            rows,
            cols,
            rs,
            cs,
        };
        m.check(data.len());
        m
    }

    pub fn t(self) -> Mat<'a> {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Every element (i, j) lies in the slice: the bound that makes the raw reads sound.
    fn check(&self, len: usize) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(
                last < len,
                "a {}×{} view past its slice",
                self.rows,
                self.cols
            );
        }
    }
}

use candle_core::{CpuStorage, Result, Storage, StorageRef, Tensor};

/// A tensor's values read in place (its storage stays locked for reading meanwhile).
pub(crate) struct Host<'a> {
    guard: StorageRef<'a>,
    range: std::ops::Range<usize>,
}

impl Host<'_> {
    pub fn get(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.range.clone()],
            _ => unreachable!("checked by `host`"),
        }
    }
}

/// `t`'s values in place, if it is a contiguous f32 tensor on the CPU.
pub(crate) fn host(t: &Tensor) -> Result<Host<'_>> {
    let (guard, layout) = t.storage_and_layout();
    let Some((a, b)) = layout.contiguous_offsets() else {
        candle_core::bail!("a weight of shape {:?} is not contiguous", t.dims());
    };
    if !matches!(&*guard, Storage::Cpu(CpuStorage::F32(_))) {
        candle_core::bail!("a weight of shape {:?} is not f32 on the CPU", t.dims());
    }
    Ok(Host { guard, range: a..b })
}

/// Multiply-adds below which a product runs on one thread whatever `parallel` says.
const PARALLEL_MIN: usize = 1 << 24;

/// `dst ← scale · a·b` (`+ dst` when `accumulate`), `dst` row-major with rows `dst_rs`
/// apart. `parallel`: gemm's threads (candle's count); else one thread, for products run
/// inside a parallel loop.
pub(crate) fn gemm(
    dst: &mut [f32],
    dst_rs: usize,
    a: Mat,
    b: Mat,
    scale: f32,
    accumulate: bool,
    parallel: bool,
) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_rs + n <= dst.len(),
        "gemm: destination too short"
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    let threads = candle_core::utils::get_num_threads();
    // Below about sixteen million multiply-adds the gemm crate's split over threads costs
    // more than it saves (measured on 2 cores: a tiny UNet's row, with products of 0.5–9M,
    // took 19 ms with them parallel and 12 ms without; the demo language model's training
    // step 0.026–0.028 s against 0.028–0.030 s).
    let parallelism = if parallel && threads > 1 && m * n * k >= PARALLEL_MIN {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `Mat`'s constructors checked that every element of `a` and `b` lies in its
    // slice, the assertion above does for `dst`, and `dst` is borrowed mutably, so it
    // overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `a·b` as a fresh row-major matrix.
pub(crate) fn product(a: Mat, b: Mat) -> Vec<f32> {
    let mut out = vec![0f32; a.rows * b.cols];
    gemm(&mut out, b.cols, a, b, 1.0, false, true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat, b: Mat) -> Vec<f32> {
        let at = |m: &Mat, i: usize, j: usize| m.data[i * m.rs + j * m.cs];
        let mut out = Vec::new();
        for i in 0..a.rows {
            for j in 0..b.cols {
                out.push((0..a.cols).map(|k| at(&a, i, k) * at(&b, k, j)).sum());
            }
        }
        out
    }

    #[test]
    fn strided_and_transposed_views_multiply_as_their_elements_say() {
        let x: Vec<f32> = (0..60).map(|i| (i as f32 * 0.37).sin()).collect();
        let y: Vec<f32> = (0..48).map(|i| (i as f32 * 0.91).cos()).collect();
        // Columns 2..6 of a 6-wide matrix times the transpose of a 12×4 one.
        let a = Mat::strided(&x[2..], 10, 4, 6);
        let b = Mat::new(&y, 12, 4).t();
        let ours = product(a, b);
        let theirs = naive(a, b);
        assert!(ours.iter().zip(&theirs).all(|(p, q)| (p - q).abs() < 1e-5));
        // Accumulating with a scale into a block of a wider destination.
        let mut dst = vec![1f32; 10 * 15];
        gemm(&mut dst[3..], 15, a, b, 0.5, true, false);
        for i in 0..10 {
            for j in 0..12 {
                let want = 1.0 + 0.5 * theirs[i * 12 + j];
                assert!((dst[i * 15 + 3 + j] - want).abs() < 1e-5);
            }
            assert_eq!(dst[i * 15], 1.0);
        }
    }

    #[test]
    #[should_panic(expected = "past its slice")]
    fn a_view_past_its_slice_is_refused() {
        let x = vec![0f32; 10];
        Mat::strided(&x, 3, 4, 4);
    }
}
