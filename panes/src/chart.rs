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
    /// x positions of events worth seeing on the curve (a learning-rate change, a live
    /// config edit), drawn as ▾ along the top edge.
    pub markers: Vec<f64>,
}

const PALETTE: [Color; 4] = [Color::Cyan, Color::Yellow, Color::Magenta, Color::Green];

/// A series reduced to what can be drawn in `buckets` columns.
#[derive(Debug, Default, PartialEq)]
pub struct Columns {
    /// Per column the minimum, maximum and last plottable value, in an order that draws the
    /// column's range as a vertical stroke; y already on the axis scale (log10 for log-y).
    pub raw: Vec<(f64, f64)>,
    /// The same for the debiased EMA of the plottable values (empty when smoothing is off).
    pub smooth: Vec<(f64, f64)>,
    /// x of the columns holding a NaN or ±Inf.
    pub bad: Vec<f64>,
}

#[derive(Clone, Copy)]
struct Extent {
    lo: f64,
    hi: f64,
    last: (f64, f64),
}

impl Extent {
    fn add(e: &mut Option<Extent>, x: f64, y: f64) {
        *e = Some(match *e {
            Some(c) => Extent {
                lo: c.lo.min(y),
                hi: c.hi.max(y),
                last: (x, y),
            },
            None => Extent {
                lo: y,
                hi: y,
                last: (x, y),
            },
        });
    }

    fn flush(e: &mut Option<Extent>, out: &mut Vec<(f64, f64)>) {
        if let Some(c) = e.take() {
            out.extend([(c.last.0, c.lo), (c.last.0, c.hi), c.last]);
        }
    }
}

/// One pass over `points`: per-column min/max/last decimation of the raw values and of their
/// debiased exponential moving average (`smoothing` in [0, 1), 0 = off). Non-finite values
/// do not disturb the average; they are reported per column in `bad`.
pub fn columns(
    points: &[(f64, f64)],
    x0: f64,
    x1: f64,
    buckets: usize,
    smoothing: f64,
    log_y: bool,
) -> Columns {
    let mut out = Columns::default();
    let buckets = buckets.max(1);
    let step = (x1 - x0).max(f64::MIN_POSITIVE) / buckets as f64;
    let (mut raw, mut smooth): (Option<Extent>, Option<Extent>) = (None, None);
    // `bias` is smoothing^n, kept as a running product rather than a power per point.
    let (mut acc, mut bias) = (0.0f64, 1.0f64);
    // Points come in x order, so columns change only at boundaries: compare, don't divide.
    let (mut bucket, mut boundary, mut bad_here) = (0usize, x0 + step, false);
    for &(x, y) in points {
        if x >= boundary && bucket + 1 < buckets {
            Extent::flush(&mut raw, &mut out.raw);
            Extent::flush(&mut smooth, &mut out.smooth);
            bucket = ((((x - x0) / step).floor()) as usize).min(buckets - 1);
            boundary = x0 + step * (bucket + 1) as f64;
            bad_here = false;
        }
        if !y.is_finite() {
            if !bad_here {
                out.bad.push(x);
                bad_here = true;
            }
            continue;
        }
        if log_y && y <= 0.0 {
            continue;
        }
        let y = if log_y { y.log10() } else { y };
        Extent::add(&mut raw, x, y);
        if smoothing > 0.0 {
            acc = smoothing * acc + (1.0 - smoothing) * y;
            bias *= smoothing;
            Extent::add(&mut smooth, x, acc / (1.0 - bias));
        }
    }
    Extent::flush(&mut raw, &mut out.raw);
    Extent::flush(&mut smooth, &mut out.smooth);
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
    // One pass for the ranges, then one per series for the columns: nothing proportional
    // to the data is allocated, so a million points per series stay cheap to draw.
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in view.series.iter().flat_map(|s| s.points.iter()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        if plottable(y) {
            y0 = y0.min(tx(y));
            y1 = y1.max(tx(y));
        }
    }
    if !x0.is_finite() || area.height < 4 || area.width < 12 {
        let msg = if !x0.is_finite() { "no data yet" } else { "" };
        frame.render_widget(
            Paragraph::new(Span::styled(msg, theme.dim()))
                .wrap(Wrap { trim: true })
                .block(block(theme, Line::from(title))),
            area,
        );
        return;
    }
    let x1 = x1.max(x0 + 1e-9);
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
        let cols = columns(&s.points, x0, x1, buckets, view.smoothing, view.log_y);
        let line = |points, style, name: &str| Layer {
            points,
            style,
            kind: GraphType::Line,
            marker: Marker::Braille,
            name: name.to_string(),
        };
        if view.smoothing > 0.0 {
            layers.push(line(cols.raw, theme.dim(), ""));
            layers.push(line(cols.smooth, Style::default().fg(color), &s.name));
        } else {
            layers.push(line(cols.raw, Style::default().fg(color), &s.name));
        }
        if !cols.bad.is_empty() {
            layers.push(Layer {
                points: cols.bad.into_iter().map(|x| (x, y1)).collect(),
                style: theme.error(),
                kind: GraphType::Scatter,
                marker: Marker::Custom('×'),
                name: String::new(),
            });
        }
    }
    let markers: Vec<(f64, f64)> = view
        .markers
        .iter()
        .filter(|&&x| (x0..=x1).contains(&x))
        .map(|&x| (x, y1))
        .collect();
    if !markers.is_empty() {
        layers.push(Layer {
            points: markers,
            style: theme.warn(),
            kind: GraphType::Scatter,
            marker: Marker::Custom('▾'),
            name: String::new(),
        });
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
            ratatui::layout::Constraint::Ratio(3, 4),
            ratatui::layout::Constraint::Ratio(1, 2),
        ));
    frame.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_debiased_and_skips_non_finite_values() {
        let c = columns(
            &[(0.0, 2.0), (1.0, f64::NAN), (2.0, 2.0)],
            0.0,
            2.0,
            3,
            0.9,
            false,
        );
        assert!(
            c.smooth.iter().all(|p| (p.1 - 2.0).abs() < 1e-12),
            "not pulled towards 0: {:?}",
            c.smooth
        );
        assert_eq!(c.bad, [1.0]);
        assert_eq!(c.raw.len(), 6, "two plottable columns of three points each");
        assert!(
            columns(&[(0.0, 1.0)], 0.0, 1.0, 3, 0.0, false)
                .smooth
                .is_empty()
        );
    }

    #[test]
    fn decimation_keeps_extremes_per_column() {
        let pts: Vec<(f64, f64)> = (0..1_000_000)
            .map(|i| (i as f64, if i == 500_123 { 99.0 } else { (i % 7) as f64 }))
            .collect();
        let c = columns(&pts, 0.0, 999_999.0, 100, 0.0, false);
        assert!(c.raw.len() <= 300);
        assert!(c.raw.iter().any(|p| p.1 == 99.0), "a single spike survives");
        assert!(c.raw.iter().any(|p| p.1 == 0.0) && c.raw.iter().any(|p| p.1 == 6.0));
    }

    #[test]
    fn log_scale_drops_non_positive_values_and_takes_logs() {
        let c = columns(
            &[(0.0, 100.0), (1.0, 0.0), (2.0, -1.0)],
            0.0,
            2.0,
            1,
            0.0,
            true,
        );
        assert_eq!(c.raw, [(0.0, 2.0), (0.0, 2.0), (0.0, 2.0)]);
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
