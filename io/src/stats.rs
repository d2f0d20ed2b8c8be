//! Statistics of one tensor, computed on demand from a memory map of its file.

use crate::dtype::for_each_value;
use crate::error::{Error, Result};
use crate::tensor::TensorInfo;

pub const HISTOGRAM_BINS: usize = 40;

#[derive(Clone, Debug, PartialEq)]
pub struct TensorStats {
    pub count: u64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub l2: f64,
    /// Share of elements equal to zero, and of NaN or ±Inf.
    pub zeros: f64,
    pub nonfinite: f64,
    /// Counts of finite values in equal bins from `min` to `max`.
    pub histogram: Vec<u64>,
}

/// Maps the tensor's file and reads its bytes.
pub fn tensor_stats(t: &TensorInfo) -> Result<TensorStats> {
    with_bytes(t, |bytes| stats_of(t, bytes))?
}

/// Runs `f` on the tensor's bytes, mapped from its file.
pub fn with_bytes<R>(t: &TensorInfo, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    let file = std::fs::File::open(&t.file).map_err(|e| Error::io(&t.file, e))?;
    let len = file.metadata().map_err(|e| Error::io(&t.file, e))?.len();
    if t.offset + t.bytes > len {
        return Err(Error::new(
            &t.file,
            format!("tensor {:?}", t.name),
            format!(
                "its data ends at byte {} but the file now has {len}",
                t.offset + t.bytes
            ),
        ));
    }
    // SAFETY: read-only map of a file we checked is long enough; see gguf::read_header.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&t.file, e))?;
    Ok(f(&map[t.offset as usize..(t.offset + t.bytes) as usize]))
}

/// Every element as f64; `None` for types that cannot be decoded (see [`for_each_value`]).
pub fn values(t: &TensorInfo) -> Result<Option<Vec<f64>>> {
    with_bytes(t, |bytes| {
        let mut v = Vec::with_capacity(t.numel() as usize);
        for_each_value(t.dtype, bytes, |x| v.push(x)).then_some(v)
    })
}

pub fn stats_of(t: &TensorInfo, bytes: &[u8]) -> Result<TensorStats> {
    let (mut n, mut mean, mut m2) = (0u64, 0f64, 0f64);
    let (mut min, mut max, mut sumsq) = (f64::INFINITY, f64::NEG_INFINITY, 0f64);
    let (mut zeros, mut nonfinite, mut total) = (0u64, 0u64, 0u64);
    let ok = for_each_value(t.dtype, bytes, |v| {
        total += 1;
        if !v.is_finite() {
            nonfinite += 1;
            return;
        }
        if v == 0.0 {
            zeros += 1;
        }
        // Welford: stable for the millions of small values of a weight matrix.
        n += 1;
        let d = v - mean;
        mean += d / n as f64;
        m2 += d * (v - mean);
        sumsq += v * v;
        min = min.min(v);
        max = max.max(v);
    });
    if !ok {
        return Err(Error::new(
            &t.file,
            format!("tensor {:?}", t.name),
            format!(
                "statistics of {} need its dequantisation, which descent does not implement \
                 (it decodes float, integer, Q8_0, Q4_0 and Q4_1 tensors)",
                t.dtype.name()
            ),
        ));
    }
    let mut histogram = vec![0u64; HISTOGRAM_BINS];
    if n > 0 {
        let width = (max - min) / HISTOGRAM_BINS as f64;
        for_each_value(t.dtype, bytes, |v| {
            if v.is_finite() {
                let b = if width > 0.0 {
                    ((v - min) / width) as usize
                } else {
                    0
                };
                histogram[b.min(HISTOGRAM_BINS - 1)] += 1;
            }
        });
    } else {
        (min, max) = (f64::NAN, f64::NAN);
    }
    let share = |k: u64| {
        if total == 0 {
            0.0
        } else {
            k as f64 / total as f64
        }
    };
    Ok(TensorStats {
        count: total,
        mean: if n == 0 { f64::NAN } else { mean },
        std: if n == 0 {
            f64::NAN
        } else {
            (m2 / n as f64).sqrt()
        },
        min,
        max,
        l2: sumsq.sqrt(),
        zeros: share(zeros),
        nonfinite: share(nonfinite),
        histogram,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn matches_hand_computation() {
        let vals = [0.0f32, 1.0, 2.0, 3.0, f32::NAN, 0.0, -2.0, f32::INFINITY];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = TensorInfo {
            name: "w".into(),
            dtype: DType::F32,
            shape: vec![8],
            file: "x".into(),
            offset: 0,
            bytes: 32,
        };
        let s = stats_of(&t, &bytes).unwrap();
        // finite: 0, 1, 2, 3, 0, -2 → mean 4/6, population variance
        let finite = [0.0, 1.0, 2.0, 3.0, 0.0, -2.0];
        let mean = finite.iter().sum::<f64>() / 6.0;
        let var = finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 6.0;
        assert_eq!(s.count, 8);
        assert!((s.mean - mean).abs() < 1e-12);
        assert!((s.std - var.sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (-2.0, 3.0));
        assert!((s.l2 - 18f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.zeros, 2.0 / 8.0);
        assert_eq!(s.nonfinite, 2.0 / 8.0);
        assert_eq!(s.histogram.iter().sum::<u64>(), 6);
        assert_eq!(s.histogram[0], 1); // -2
        assert_eq!(s.histogram[HISTOGRAM_BINS - 1], 1); // 3
    }
}
