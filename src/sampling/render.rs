//! Sample files: PNGs of image samples and a grid of them, a scatter plot and a CSV of point
//! samples, and the distance between two sets of samples.

use image::{Rgb, RgbImage};
use std::path::Path;

/// An image sample `[c, h, w]` in data units mapped to 0–255 over `range`: three channels
/// as RGB, one as grey (other counts: the first channel, as grey).
pub fn to_image(values: &[f32], shape: &[usize], range: (f32, f32)) -> RgbImage {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let span = (range.1 - range.0).max(1e-12);
    let byte = |v: f32| (((v - range.0) / span).clamp(0.0, 1.0) * 255.0).round() as u8;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let at = |ch: usize| byte(values[(ch * h + y as usize) * w + x as usize]);
        if c == 3 {
            Rgb([at(0), at(1), at(2)])
        } else {
            let g = at(0);
            Rgb([g, g, g])
        }
    })
}

/// How many times a grid scales up samples `width` pixels wide: small ones to about 32.
pub fn zoom(width: usize) -> u32 {
    (32 / width.max(1)).clamp(1, 4) as u32
}

/// Samples laid out `cols` to a row, each scaled up `zoom` times, 1-pixel gaps.
pub fn grid(images: &[RgbImage], cols: usize, zoom: u32) -> RgbImage {
    let (w, h) = images.first().map_or((1, 1), |i| (i.width(), i.height()));
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols);
    let (cw, ch) = (w * zoom + 1, h * zoom + 1);
    let mut out = RgbImage::from_pixel(cols as u32 * cw + 1, rows as u32 * ch + 1, Rgb([40; 3]));
    for (k, img) in images.iter().enumerate() {
        let (ox, oy) = ((k % cols) as u32 * cw + 1, (k / cols) as u32 * ch + 1);
        for y in 0..h * zoom {
            for x in 0..w * zoom {
                out.put_pixel(ox + x, oy + y, *img.get_pixel(x / zoom, y / zoom));
            }
        }
    }
    out
}

/// The bounds a scatter plot of `points` (n × 2) uses, padded by 5%.
pub fn bounds(points: &[f32]) -> ((f32, f32), (f32, f32)) {
    let mut b = (
        (f32::INFINITY, f32::NEG_INFINITY),
        (f32::INFINITY, f32::NEG_INFINITY),
    );
    for p in points.chunks(2) {
        if p[0].is_finite() && p[1].is_finite() {
            b.0 = (b.0.0.min(p[0]), b.0.1.max(p[0]));
            b.1 = (b.1.0.min(p[1]), b.1.1.max(p[1]));
        }
    }
    let pad = |(lo, hi): (f32, f32)| {
        if !lo.is_finite() {
            return (-1.0, 1.0);
        }
        let m = ((hi - lo) * 0.05).max(1e-3);
        (lo - m, hi + m)
    };
    (pad(b.0), pad(b.1))
}

/// A scatter plot of 2-D points coloured by class.
pub fn scatter(
    points: &[f32],
    classes: &[u32],
    size: u32,
    b: ((f32, f32), (f32, f32)),
) -> RgbImage {
    let mut img = RgbImage::from_pixel(size, size, Rgb([16, 16, 16]));
    let ((x0, x1), (y0, y1)) = b;
    for (k, p) in points.chunks(2).enumerate() {
        if !(p[0].is_finite() && p[1].is_finite()) {
            continue;
        }
        let px = ((p[0] - x0) / (x1 - x0) * (size - 1) as f32).round() as i64;
        let py = ((1.0 - (p[1] - y0) / (y1 - y0)) * (size - 1) as f32).round() as i64;
        let palette = descent_panes::theme::CLASS_RGB;
        let c = Rgb(palette[classes.get(k).copied().unwrap_or(0) as usize % palette.len()]);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)] {
            let (x, y) = (px + dx, py + dy);
            if (0..size as i64).contains(&x) && (0..size as i64).contains(&y) {
                img.put_pixel(x as u32, y as u32, c);
            }
        }
    }
    img
}

/// `x,y,class` rows.
pub fn write_points_csv(path: &Path, points: &[f32], classes: &[u32]) -> std::io::Result<()> {
    let mut text = String::from("x,y,class\n");
    for (k, p) in points.chunks(2).enumerate() {
        text.push_str(&format!("{},{},{}\n", p[0], p[1], classes[k]));
    }
    crate::atomic::write_atomically(path, text.as_bytes())
}

/// Mean over samples of their distance: mean |Δ| over pixels scaled to [0, 1] by `range` for
/// images, the Euclidean distance for points.
pub fn distance(a: &[f32], b: &[f32], features: usize, range: Option<(f32, f32)>) -> f64 {
    let n = (a.len() / features.max(1)).max(1);
    let total: f64 = a
        .chunks(features)
        .zip(b.chunks(features))
        .map(|(x, y)| match range {
            Some((lo, hi)) => {
                let span = (hi - lo).max(1e-12) as f64;
                x.iter()
                    .zip(y)
                    .map(|(p, q)| {
                        let c = |v: f32| ((v - lo) as f64 / span).clamp(0.0, 1.0);
                        (c(*p) - c(*q)).abs()
                    })
                    .sum::<f64>()
                    / features as f64
            }
            None => x
                .iter()
                .zip(y)
                .map(|(p, q)| ((p - q) as f64).powi(2))
                .sum::<f64>()
                .sqrt(),
        })
        .sum();
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_mean_pixel_or_euclidean() {
        let a = [0.0, 16.0, 8.0, 8.0];
        let b = [16.0, 16.0, 8.0, 0.0];
        assert_eq!(distance(&a, &b, 2, Some((0.0, 16.0))), (0.5 + 0.25) / 2.0);
        let d = distance(&[0.0, 0.0], &[3.0, 4.0], 2, None);
        assert_eq!(d, 5.0);
    }

    #[test]
    fn the_grid_places_zoomed_samples_with_gaps() {
        let one = RgbImage::from_pixel(2, 2, Rgb([200, 10, 0]));
        let g = grid(&[one.clone(), one.clone(), one], 2, 3);
        assert_eq!((g.width(), g.height()), (2 * 7 + 1, 2 * 7 + 1));
        assert_eq!(g.get_pixel(1, 1).0, [200, 10, 0]);
        assert_eq!(g.get_pixel(0, 0).0, [40; 3]);
        assert_eq!(g.get_pixel(8, 8).0, [40; 3]);
    }

    #[test]
    fn three_channels_draw_in_colour_and_one_in_grey() {
        // [c, h, w] = [3, 1, 2]: red, green and blue planes.
        let rgb = [1.0, -1.0, -1.0, 1.0, -1.0, -1.0];
        let img = to_image(&rgb, &[3, 1, 2], (-1.0, 1.0));
        assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [0, 255, 0]);
        let grey = to_image(&[8.0, 16.0], &[1, 1, 2], (0.0, 16.0));
        assert_eq!(grey.get_pixel(0, 0).0, [128, 128, 128]);
        assert_eq!(zoom(8), 4);
        assert_eq!(zoom(64), 1);
    }
}
