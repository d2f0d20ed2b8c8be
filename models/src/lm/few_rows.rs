//! `x·Wᵀ` for the few rows of decoding (1 to [`MAX_ROWS`]), f32 on the CPU.
//!
//! Decoding multiplies a handful of rows by each weight matrix, so the product is bound by
//! reading the weights once; gemm instead packs the whole weight matrix into its panels on
//! every call, which at a few rows costs more than the arithmetic. Here each thread takes a
//! block of weight rows and computes tiles of `R` weight rows × `C` input rows in twelve
//! vector accumulators held in registers: each weight vector loaded is used by four input
//! rows, each input vector by three weight rows. Every output is summed in the same order
//! whatever the thread count, so results repeat from run to run. Records no gradient: only
//! generation (a KV cache present) calls it.

use candle_core::{CpuStorage, Result, Storage, Tensor};

/// Input rows at most; more go to gemm. Up to 64 rows the kernel was the faster on 2 cores
/// (a pass through SmolLM2-135M's matrices: 3× gemm's speed at 8 rows, 1.15× at 64;
/// `few_rows_bench`), so GRPO's rollouts of 8 × 8 completions take it too.
pub const MAX_ROWS: usize = 64;
/// Inputs shorter than this go to gemm past 16 rows.
const SHORT: usize = 256;
/// The least work (in multiply-adds, see `product`) a parallel block takes.
const BLOCK_WORK: usize = 1 << 20;
/// Weight rows per tile.
const R: usize = 3;
/// Input rows per tile: R × C accumulators, R weight vectors and one input vector fill
/// AVX2's sixteen registers.
const C: usize = 4;

/// `x·Wᵀ` for `x` `[rows, in]` and `w` `[out, in]`, both f32 on the CPU; `None` where the
/// kernel does not apply (another dtype or device, more rows, an empty product), or loses
/// to gemm: past 16 rows of inputs shorter than `SHORT`, where the horizontal sums per
/// output outweigh the streaming (the demo model's 512 × 128 at 64 rows: 240 µs against
/// gemm's 120).
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let (rows, in_dim) = x.dims2()?;
    let (out_dim, w_in) = w.dims2()?;
    let empty = rows == 0 || in_dim == 0 || out_dim == 0;
    if empty || rows > MAX_ROWS || w_in != in_dim || (rows > 16 && in_dim < SHORT) {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let (ws, wl) = w.storage_and_layout();
    let (xs, xl) = x.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(wd)), Storage::Cpu(CpuStorage::F32(xd))) = (&*ws, &*xs)
    else {
        return Ok(None);
    };
    let (Some((w0, w1)), Some((x0, x1))) = (wl.contiguous_offsets(), xl.contiguous_offsets())
    else {
        return Ok(None);
    };
    let y = product(&xd[x0..x1], &wd[w0..w1], rows, in_dim, out_dim);
    drop((ws, xs));
    Ok(Some(Tensor::from_vec(y, (rows, out_dim), x.device())?))
}

/// The product `[rows, out]` of row-major `x` `[rows, k]` and `w` `[out, k]`.
fn product(x: &[f32], w: &[f32], rows: usize, k: usize, out: usize) -> Vec<f32> {
    use rayon::prelude::*;
    // Column blocks of the output, a few per thread so that uneven cores even out, but none
    // under BLOCK_WORK: handing a small product to other threads costs more than it saves.
    // A block's cost is reading its weights (a weight float costs about as much as 16
    // multiply-adds) plus the multiply-adds. Each a multiple of R rows of `w`.
    let work = out * k * (16 + rows);
    let blocks = (rayon::current_num_threads() * 4).min(work.div_ceil(BLOCK_WORK));
    let block = out.div_ceil(blocks).div_ceil(R) * R;
    let mut yt = vec![0f32; out * rows];
    // Each block fills its own rows of yᵀ `[out, rows]`; transposed once at the end.
    yt.par_chunks_mut(block * rows)
        .enumerate()
        .for_each(|(b, yb)| {
            let first = b * block;
            let n = yb.len() / rows;
            block_product(x, &w[first * k..(first + n) * k], rows, k, yb);
        });
    let mut y = vec![0f32; rows * out];
    for (j, col) in yt.chunks_exact(rows).enumerate() {
        for (i, v) in col.iter().enumerate() {
            y[i * out + j] = *v;
        }
    }
    y
}

/// yᵀ `[n, rows]` for the `n` weight rows in `w`, tile by tile.
fn block_product(x: &[f32], w: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
    let n = w.len() / k;
    let mut j = 0;
    while j < n {
        let tr = R.min(n - j);
        let mut i = 0;
        while i < rows {
            let tc = C.min(rows - i);
            let wr = &w[j * k..(j + tr) * k];
            let xr = &x[i * k..(i + tc) * k];
            let mut out = [[0f32; C]; R];
            tile_dispatch(wr, xr, tr, tc, k, &mut out);
            for (r, o) in out.iter().enumerate().take(tr) {
                yt[(j + r) * rows + i..(j + r) * rows + i + tc].copy_from_slice(&o[..tc]);
            }
            i += tc;
        }
        j += tr;
    }
}

/// One tile of `tr` ≤ R weight rows × `tc` ≤ C input rows, by the kernel compiled for it.
fn tile_dispatch(w: &[f32], x: &[f32], tr: usize, tc: usize, k: usize, out: &mut [[f32; C]; R]) {
    macro_rules! tiles {
        ($($f:ident)::+) => {
            match (tr, tc) {
                (3, 4) => $($f)::+::<3, 4>(w, x, k, out),
                (3, 3) => $($f)::+::<3, 3>(w, x, k, out),
                (3, 2) => $($f)::+::<3, 2>(w, x, k, out),
                (3, 1) => $($f)::+::<3, 1>(w, x, k, out),
                (2, 4) => $($f)::+::<2, 4>(w, x, k, out),
                (2, 3) => $($f)::+::<2, 3>(w, x, k, out),
                (2, 2) => $($f)::+::<2, 2>(w, x, k, out),
                (2, 1) => $($f)::+::<2, 1>(w, x, k, out),
                (1, 4) => $($f)::+::<1, 4>(w, x, k, out),
                (1, 3) => $($f)::+::<1, 3>(w, x, k, out),
                (1, 2) => $($f)::+::<1, 2>(w, x, k, out),
                (1, 1) => $($f)::+::<1, 1>(w, x, k, out),
                _ => unreachable!("tiles are at most {R} × {C}"),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above; the slices hold `tr` and
        // `tc` rows of `k` floats.
        unsafe { tiles!(avx2::tile) };
        return;
    }
    tiles!(portable_tile)
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// The tile in plain Rust, eight lanes per accumulator, for CPUs without AVX2 and FMA
/// (ARM's NEON among them, which the compiler vectorises it for).
fn portable_tile<const TR: usize, const TC: usize>(
    w: &[f32],
    x: &[f32],
    k: usize,
    out: &mut [[f32; C]; R],
) {
    let mut acc = [[[0f32; 8]; TC]; TR];
    let whole = k - k % 8;
    let wr: [&[f32]; TR] = std::array::from_fn(|r| &w[r * k..r * k + whole]);
    let xr: [&[f32]; TC] = std::array::from_fn(|c| &x[c * k..c * k + whole]);
    for p in (0..whole).step_by(8) {
        for c in 0..TC {
            let xv: &[f32; 8] = xr[c][p..p + 8].try_into().expect("eight");
            for r in 0..TR {
                let wv: &[f32; 8] = wr[r][p..p + 8].try_into().expect("eight");
                for l in 0..8 {
                    acc[r][c][l] += wv[l] * xv[l];
                }
            }
        }
    }
    for r in 0..TR {
        for c in 0..TC {
            let a = &acc[r][c];
            // A fixed order, the one the AVX2 kernel's horizontal sum takes.
            let s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
            out[r][c] = (whole..k).fold(s, |s, q| s + w[r * k + q] * x[c * k + q]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `out[r][c] = w_r · x_c` for TR weight rows and TC input rows of `k` floats.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; `w` must hold TR rows and `x` TC rows of `k` floats.
    // Both counters index the grid of accumulators, which must stay in registers.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile<const TR: usize, const TC: usize>(
        w: &[f32],
        x: &[f32],
        k: usize,
        out: &mut [[f32; super::C]; super::R],
    ) {
        debug_assert!(w.len() >= TR * k && x.len() >= TC * k);
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [[_mm256_setzero_ps(); TC]; TR];
        let whole = k - k % 8;
        let mut p = 0;
        while p < whole {
            let mut wv = [_mm256_setzero_ps(); TR];
            for (r, v) in wv.iter_mut().enumerate() {
                // SAFETY: p + 8 ≤ k, within row r of w.
                *v = unsafe { _mm256_loadu_ps(wp.add(r * k + p)) };
                // The next tile's weight rows, from memory while this one computes (the
                // hardware prefetcher alone left a third of the time in stalls).
                _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(TR * k + r * k + p) as *const i8);
            }
            for c in 0..TC {
                // SAFETY: p + 8 ≤ k, within row c of x.
                let xv = unsafe { _mm256_loadu_ps(xp.add(c * k + p)) };
                for r in 0..TR {
                    acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
                }
            }
            p += 8;
        }
        for r in 0..TR {
            for c in 0..TC {
                let mut s = hsum(acc[r][c]);
                for q in whole..k {
                    s += w[r * k + q] * x[c * k + q];
                }
                out[r][c] = s;
            }
        }
    }

    /// The eight lanes summed in a fixed order.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn close(got: &Tensor, want: &Tensor, what: &str) -> Result<()> {
        let err = crate::test_util::max_abs_diff(got, want);
        let scale = want.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(err <= 1e-5 * scale.max(1.0), "{what}: off by {err}");
        Ok(())
    }

    /// Against candle's matmul, for every row count the kernel takes, widths with and
    /// without a tail past the last eight, weight counts not a multiple of the tile, and
    /// products large enough to be split among threads.
    #[test]
    fn matches_candles_matmul() -> Result<()> {
        let dev = Device::Cpu;
        for (k, out) in [
            (64usize, 96usize),
            (37, 50),
            (8, 1),
            (3, 7),
            (576, 193),
            (300, 2000),
        ] {
            let w = Tensor::randn(0f32, 1.0, (out, k), &dev)?;
            for rows in 1..=MAX_ROWS {
                let x = Tensor::randn(0f32, 1.0, (rows, k), &dev)?;
                let what = format!("rows {rows}, k {k}, out {out}");
                match matmul_t(&x, &w)? {
                    Some(got) => close(&got, &x.matmul(&w.t()?)?, &what)?,
                    None => assert!(rows > 16 && k < SHORT, "{what}: left to gemm"),
                }
            }
        }
        Ok(())
    }

    /// The plain-Rust tile, which this CPU may never run, against the same products.
    #[test]
    fn the_portable_tile_matches_too() -> Result<()> {
        let dev = Device::Cpu;
        let k = 45;
        let w = Tensor::randn(0f32, 1.0, (R, k), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (C, k), &dev)?;
        let (wv, xv) = (
            w.flatten_all()?.to_vec1::<f32>()?,
            x.flatten_all()?.to_vec1::<f32>()?,
        );
        let mut out = [[0f32; C]; R];
        portable_tile::<R, C>(&wv, &xv, k, &mut out);
        let got = Tensor::new(&out, &dev)?.t()?;
        close(&got, &x.matmul(&w.t()?)?, "the portable tile")
    }

    #[test]
    fn leaves_more_rows_other_dtypes_and_empty_products_to_gemm() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::zeros((4, 8), DType::F32, &dev)?;
        let many = Tensor::zeros((MAX_ROWS + 1, 8), DType::F32, &dev)?;
        assert!(matmul_t(&many, &w)?.is_none());
        let f64s = Tensor::zeros((2, 8), DType::F64, &dev)?;
        assert!(matmul_t(&f64s, &w.to_dtype(DType::F64)?)?.is_none());
        // Empty products too, which gemm returns as empty tensors.
        let none_out = Tensor::zeros((0, 8), DType::F32, &dev)?;
        let x = Tensor::zeros((2, 8), DType::F32, &dev)?;
        assert!(matmul_t(&x, &none_out)?.is_none());
        let width0 = Tensor::zeros((2, 0), DType::F32, &dev)?;
        assert!(matmul_t(&width0, &Tensor::zeros((4, 0), DType::F32, &dev)?)?.is_none());
        Ok(())
    }
}
