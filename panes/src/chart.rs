//! A line chart for training curves: autoscaled axes with readable ticks, log-y, debiased EMA
//! smoothing drawn over the faint raw curve (or raw only when smoothing is off), NaN/Inf drawn
//! as markers along the top edge, and per-column min/max decimation so a million points
//! cost no more to draw than a few hundred.

use crate::Theme;
use crate::widgets::block;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Wrap};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartSeries {
    pub name: String,
    /// (x, y) in x order; y may be NaN or ±Inf.
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartView {
    pub title: String,
    pub series: Vec<ChartSeries>,
    pub log_y: bool,
    /// EMA weight in [0, 1); 0 is off.
    pub smoothing: f64,
    pub x_label: String,
}

const PALETTE: [Color; 4] = [Color::Cyan, Color::Yellow, Color::Magenta, Color::Green];

/// Debiased exponential moving average over the finite values (non-finite values are passed
/// through unchanged and do not disturb the average).
pub fn ema(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    if weight <= 0.0 {
        return points.to_vec();
    }
    let (mut acc, mut n) = (0.0, 0i32);
    points
        .iter()
        .map(|&(x, y)| {
            if !y.is_finite() {
                return (x, y);
            }
            acc = weight * acc + (1.0 - weight) * y;
            n += 1;
            (x, acc / (1.0 - weight.powi(n)))
        })
        .collect()
}

/// Keeps, for each of `buckets` equal x ranges, the minimum, maximum and last finite value,
/// emitted in an order that draws the range as a vertical stroke.
pub fn decimate(points: &[(f64, f64)], x0: f64, x1: f64, buckets: usize) -> Vec<(f64, f64)> {
    let finite: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    if finite.len() <= buckets * 3 || buckets == 0 {
        return finite;
    }
    let width = (x1 - x0).max(f64::MIN_POSITIVE);
    let mut out = Vec::with_capacity(buckets * 3);
    let mut current: Option<(usize, f64, f64, (f64, f64))> = None;
    let flush = |c: (usize, f64, f64, (f64, f64)), out: &mut Vec<(f64, f64)>| {
        let (_, lo, hi, last) = c;
        out.push((last.0, lo));
        out.push((last.0, hi));
        out.push(last);
    };
    for &(x, y) in &finite {
        let b = (((x - x0) / width) * buckets as f64)
            .floor()
            .clamp(0.0, (buckets - 1) as f64) as usize;
        current = match current {
            Some(c) if c.0 == b => Some((b, c.1.min(y), c.2.max(y), (x, y))),
            Some(c) => {
                flush(c, &mut out);
                Some((b, y, y, (x, y)))
            }
            None => Some((b, y, y, (x, y))),
        };
    }
    if let Some(c) = current {
        flush(c, &mut out);
    }
    out
}

/// Compact number for an axis label.
pub fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One drawn curve or marker set; [`Dataset`] borrows its points, so they live here.
struct Layer {
    points: Vec<(f64, f64)>,
    style: Style,
    kind: GraphType,
    marker: Marker,
    name: String,
}

pub fn draw_chart(frame: &mut Frame, area: Rect, theme: &Theme, view: &ChartView) {
    let tx = |y: f64| if view.log_y { y.log10() } else { y };
    let plottable = |y: f64| y.is_finite() && (!view.log_y || y > 0.0);
    let non_finite: usize = view
        .series
        .iter()
        .map(|s| s.points.iter().filter(|p| !p.1.is_finite()).count())
        .sum();
    let mut title = vec![Span::styled(format!(" {} ", view.title), theme.title())];
    if view.log_y {
        title.push(Span::styled("log ", theme.dim()));
    }
    if non_finite > 0 {
        title.push(Span::styled(
            format!("× {non_finite} NaN/Inf "),
            theme.error(),
        ));
    }
    let all: Vec<(f64, f64)> = view
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let ys: Vec<f64> = all
        .iter()
        .filter(|p| plottable(p.1))
        .map(|p| tx(p.1))
        .collect();
    if all.is_empty() || area.height < 4 || area.width < 12 {
        let msg = if all.is_empty() { "no data yet" } else { "" };
        frame.render_widget(
            Paragraph::new(Span::styled(msg, theme.dim()))
                .wrap(Wrap { trim: true })
                .block(block(theme, Line::from(title))),
            area,
        );
        return;
    }
    let x0 = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x1 = all
        .iter()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(x0 + 1e-9);
    let (mut y0, mut y1) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(if y1 == y0 {
        y0.abs().max(1.0) * 0.05
    } else {
        0.0
    });
    // Quantities that are never negative (loss, norms, rates) keep their axis at zero.
    let (y0, y1) = (
        if y0 >= 0.0 {
            (y0 - pad).max(0.0)
        } else {
            y0 - pad
        },
        y1 + pad,
    );
    let buckets = (area.width as usize).saturating_sub(10) * 2;

    // Owned data first: Dataset borrows its points.
    let mut layers: Vec<Layer> = Vec::new();
    for (i, s) in view.series.iter().enumerate() {
        let color = if theme.color {
            PALETTE[i % PALETTE.len()]
        } else {
            Color::Reset
        };
        let raw: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| plottable(p.1))
            .map(|&(x, y)| (x, tx(y)))
            .collect();
        if view.smoothing > 0.0 {
            layers.push(Layer {
                points: decimate(&raw, x0, x1, buckets),
                style: theme.dim(),
                kind: GraphType::Line,
                marker: Marker::Braille,
                name: String::new(),
            });
            let smooth = ema(&raw, view.smoothing);
            layers.push(Layer {
                points: decimate(&smooth, x0, x1, buckets),
                style: Style::default().fg(color),
                kind: GraphType::Line,
                marker: Marker::Braille,
                name: s.name.clone(),
            });
        } else {
            layers.push(Layer {
                points: decimate(&raw, x0, x1, buckets),
                style: Style::default().fg(color),
                kind: GraphType::Line,
                marker: Marker::Braille,
                name: s.name.clone(),
            });
        }
        let bad: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| !p.1.is_finite())
            .map(|p| (p.0, y1))
            .collect();
        if !bad.is_empty() {
            layers.push(Layer {
                points: bad,
                style: theme.error(),
                kind: GraphType::Scatter,
                marker: Marker::Custom('×'),
                name: String::new(),
            });
        }
    }
    // A legend only helps when there is more than one curve to tell apart.
    let named = view.series.iter().filter(|s| !s.points.is_empty()).count() > 1;
    let datasets: Vec<Dataset> = layers
        .iter()
        .map(|l| {
            let d = Dataset::default()
                .data(&l.points)
                .style(l.style)
                .graph_type(l.kind)
                .marker(l.marker);
            if l.name.is_empty() || !named {
                d
            } else {
                d.name(l.name.clone())
            }
        })
        .collect();
    let ylabel = |v: f64| fmt_tick(if view.log_y { 10f64.powf(v) } else { v });
    let chart = Chart::new(datasets)
        .block(block(theme, Line::from(title)))
        .x_axis(Axis::default().bounds([x0, x1]).style(theme.dim()).labels([
            fmt_tick(x0),
            view.x_label.clone(),
            fmt_tick(x1),
        ]))
        .y_axis(Axis::default().bounds([y0, y1]).style(theme.dim()).labels([
            ylabel(y0),
            ylabel((y0 + y1) / 2.0),
            ylabel(y1),
        ]))
        .hidden_legend_constraints((
            ratatui::layout::Constraint::Ratio(1, 2),
            ratatui::layout::Constraint::Ratio(1, 2),
        ));
    frame.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_is_debiased_and_skips_non_finite_values() {
        let s = ema(&[(0.0, 2.0), (1.0, f64::NAN), (2.0, 2.0)], 0.9);
        assert!(
            (s[0].1 - 2.0).abs() < 1e-12,
            "the first value is not pulled towards 0"
        );
        assert!(s[1].1.is_nan());
        assert!((s[2].1 - 2.0).abs() < 1e-12);
        assert_eq!(ema(&[(0.0, 1.0)], 0.0), [(0.0, 1.0)]);
    }

    #[test]
    fn decimation_keeps_extremes_per_bucket() {
        let pts: Vec<(f64, f64)> = (0..1_000_000)
            .map(|i| (i as f64, if i == 500_123 { 99.0 } else { (i % 7) as f64 }))
            .collect();
        let d = decimate(&pts, 0.0, 999_999.0, 100);
        assert!(d.len() <= 300);
        assert!(d.iter().any(|p| p.1 == 99.0), "a single spike survives");
        assert!(d.iter().any(|p| p.1 == 0.0) && d.iter().any(|p| p.1 == 6.0));
    }

    #[test]
    fn ticks_are_compact() {
        assert_eq!(fmt_tick(0.0), "0");
        assert_eq!(fmt_tick(1234.0), "1234");
        assert_eq!(fmt_tick(0.5), "0.500");
        assert_eq!(fmt_tick(2.5e-5), "2.5e-5");
    }
}

/// Rows of values over time, drawn as a heatmap: one row per series, one column per x bucket
/// (the bucket's largest value), shaded on a log scale shared by all rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeatmapView {
    pub title: String,
    /// (row name, points in x order).
    pub rows: Vec<(String, Vec<(f64, f64)>)>,
}

const SHADES: [char; 5] = ['·', '░', '▒', '▓', '█'];
const HEAT: [Color; 5] = [
    Color::Blue,
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Red,
];

pub fn draw_heatmap(frame: &mut Frame, area: Rect, theme: &Theme, view: &HeatmapView) {
    let outer = block(
        theme,
        Line::from(Span::styled(format!(" {} ", view.title), theme.title())),
    );
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let label_w = view
        .rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .min(inner.width as usize / 3);
    let cols = (inner.width as usize).saturating_sub(label_w + 1);
    let all = view.rows.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = all
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    if cols == 0 || !x0.is_finite() {
        frame.render_widget(
            Paragraph::new(Span::styled("no data yet", theme.dim())),
            inner,
        );
        return;
    }
    let logs: Vec<f64> = all
        .filter(|p| p.1.is_finite() && p.1 > 0.0)
        .map(|p| p.1.log10())
        .collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (x1 - x0).max(f64::MIN_POSITIVE);
    let mut lines = Vec::new();
    for (name, points) in view.rows.iter().take(inner.height as usize) {
        let mut buckets: Vec<Option<f64>> = vec![None; cols];
        for &(x, v) in points {
            let b = (((x - x0) / span) * cols as f64)
                .floor()
                .clamp(0.0, (cols - 1) as f64) as usize;
            let cur = buckets[b];
            buckets[b] = Some(match cur {
                // Non-finite wins: a NaN in the bucket must show.
                Some(c) if !c.is_finite() => c,
                Some(c) if v.is_finite() => c.max(v),
                _ => v,
            });
        }
        let label: String = name.chars().take(label_w).collect();
        let mut spans = vec![Span::styled(format!("{label:>label_w$} "), theme.dim())];
        for b in buckets {
            spans.push(match b {
                None => Span::raw(" "),
                Some(v) if !v.is_finite() => Span::styled("×", theme.error()),
                Some(v) => {
                    let level = if v <= 0.0 || hi <= lo {
                        0
                    } else {
                        (((v.log10() - lo) / (hi - lo)) * 4.0)
                            .round()
                            .clamp(0.0, 4.0) as usize
                    };
                    let style = if theme.color {
                        Style::default().fg(HEAT[level])
                    } else {
                        Style::default()
                    };
                    Span::styled(SHADES[level].to_string(), style)
                }
            });
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
