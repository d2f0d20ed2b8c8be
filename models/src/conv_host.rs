//! Host-side helpers for the hand-written CNN backward on CPU: 3×3 (padding 1) im2col and its
//! adjoint, 2×2 max pooling that remembers where each maximum came from, and layout changes.
//! Images are NHWC here, so one im2col row is one output pixel.

/// Calls `f(row, pixel, tap)` for every output pixel `row` (in `(b, y, x)` order) and every
/// in-bounds tap `ky·3 + kx` of its 3×3 window (padding 1), `pixel` being the input pixel the
/// tap reads: the one index walk [`im2col`] and [`col2im`] share.
fn taps(b: usize, h: usize, w: usize, mut f: impl FnMut(usize, usize, usize)) {
    for n in 0..b {
        for y in 0..h {
            for x in 0..w {
                let row = (n * h + y) * w + x;
                for ky in 0..3 {
                    let Some(sy) = (y + ky).checked_sub(1).filter(|&v| v < h) else {
                        continue;
                    };
                    for kx in 0..3 {
                        let Some(sx) = (x + kx).checked_sub(1).filter(|&v| v < w) else {
                            continue;
                        };
                        f(row, (n * h + sy) * w + sx, ky * 3 + kx);
                    }
                }
            }
        }
    }
}

/// `x` NHWC → rows `(b, y, x)`, columns `(c, ky, kx)` (the order of a `[c_out, c_in, 3, 3]`
/// weight flattened to `[c_out, c_in·9]`), zero-padded by one pixel.
pub fn im2col(x: &[f32], b: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let k = c * 9;
    let mut cols = vec![0.0; b * h * w * k];
    taps(b, h, w, |row, pixel, tap| {
        for ch in 0..c {
            cols[row * k + ch * 9 + tap] = x[pixel * c + ch];
        }
    });
    cols
}

/// The adjoint of [`im2col`]: sums each column entry back onto the pixel it was read from.
pub fn col2im(cols: &[f32], b: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let k = c * 9;
    let mut x = vec![0.0; b * h * w * c];
    taps(b, h, w, |row, pixel, tap| {
        for ch in 0..c {
            x[pixel * c + ch] += cols[row * k + ch * 9 + tap];
        }
    });
    x
}

/// 2×2 max pooling, stride 2 (odd edges dropped, as candle's `max_pool2d(2)`), NHWC. Returns
/// the pooled values and, for each, the index in `x` it came from.
pub fn max_pool(x: &[f32], b: usize, h: usize, w: usize, c: usize) -> (Vec<f32>, Vec<usize>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(b * oh * ow * c);
    let mut from = Vec::with_capacity(b * oh * ow * c);
    for n in 0..b {
        for y in 0..oh {
            for xx in 0..ow {
                for ch in 0..c {
                    let mut best = (f32::NEG_INFINITY, 0);
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let i = ((n * h + 2 * y + dy) * w + 2 * xx + dx) * c + ch;
                        if x[i] > best.0 || best.0 == f32::NEG_INFINITY {
                            best = (x[i], i);
                        }
                    }
                    out.push(best.0);
                    from.push(best.1);
                }
            }
        }
    }
    (out, from)
}

/// The gradient of [`max_pool`]: each output gradient goes to the input its maximum came from.
pub fn max_pool_back(dy: &[f32], from: &[usize], input_len: usize) -> Vec<f32> {
    let mut dx = vec![0.0; input_len];
    for (g, &i) in dy.iter().zip(from) {
        dx[i] += g;
    }
    dx
}

/// NCHW ↔ NHWC.
pub fn nchw_to_nhwc(x: &[f32], b: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for n in 0..b {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out[((n * h + y) * w + xx) * c + ch] = x[((n * c + ch) * h + y) * w + xx];
                }
            }
        }
    }
    out
}

pub fn nhwc_to_nchw(x: &[f32], b: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for n in 0..b {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out[((n * c + ch) * h + y) * w + xx] = x[((n * h + y) * w + xx) * c + ch];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), y> = <x, col2im(y)> for any x, y.
        let (b, h, w, c) = (2, 3, 4, 2);
        let x: Vec<f32> = (0..b * h * w * c)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let y: Vec<f32> = (0..b * h * w * c * 9)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let lhs: f32 = im2col(&x, b, h, w, c)
            .iter()
            .zip(&y)
            .map(|(a, b)| a * b)
            .sum();
        let rhs: f32 = x
            .iter()
            .zip(col2im(&y, b, h, w, c))
            .map(|(a, b)| a * b)
            .sum();
        assert!((lhs - rhs).abs() < 1e-3, "{lhs} vs {rhs}");
    }

    #[test]
    fn pooling_picks_maxima_and_routes_gradients_back() {
        // One 2×2 image, one channel, then a 3×3 one (odd edge dropped).
        let (p, from) = max_pool(&[1.0, 5.0, 3.0, 2.0], 1, 2, 2, 1);
        assert_eq!((p, from.clone()), (vec![5.0], vec![1]));
        assert_eq!(max_pool_back(&[7.0], &from, 4), [0.0, 7.0, 0.0, 0.0]);
        let (p, _) = max_pool(&[1., 2., 9., 3., 4., 9., 9., 9., 9.], 1, 3, 3, 1);
        assert_eq!(p, [4.0]);
    }

    #[test]
    fn layouts_round_trip() {
        let x: Vec<f32> = (0..2 * 3 * 4 * 5).map(|i| i as f32).collect();
        assert_eq!(nhwc_to_nchw(&nchw_to_nhwc(&x, 2, 3, 4, 5), 2, 3, 4, 5), x);
    }
}
