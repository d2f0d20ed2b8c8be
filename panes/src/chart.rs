//! A line chart for training curves: autoscaled axes with readable ticks, log-y, debiased EMA
//! smoothing drawn over the faint raw curve (or raw only when smoothing is off), NaN/Inf drawn
//! as markers along the top edge, and per-column min/max/last decimation; and a heatmap of
//! per-tensor values over time. Both read the series' summaries ([`crate::series`]), so a
//! frame costs what the screen's width costs, however long the run.

use crate::Theme;
use crate::series::{Ema, Extent, Values};
use crate::widgets::block;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Wrap};
use std::sync::Arc;

/// One curve: values and their x positions, shared with whoever keeps them up to date (a
/// view costs a few reference counts, not a copy of the run).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartSeries {
    pub name: String,
    /// x of each value, in order; drawn as `x − x_origin` (seconds since a run's start).
    pub x: Arc<Vec<f64>>,
    pub x_origin: f64,
    /// y may be NaN or ±Inf.
    pub y: Arc<Values>,
}

impl ChartSeries {
    /// A series of (x, y) points in x order.
    pub fn from_points(name: &str, points: &[(f64, f64)]) -> ChartSeries {
        let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
        ChartSeries {
            name: name.into(),
            x: Arc::new(points.iter().map(|p| p.0).collect()),
            x_origin: 0.0,
            y: Arc::new(Values::from_slice(&ys)),
        }
    }

    pub fn len(&self) -> usize {
        self.x.len().min(self.y.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn x_at(&self, i: usize) -> f64 {
        self.x[i] - self.x_origin
    }

    fn y_at(&self, i: usize) -> f64 {
        self.y.raw().values()[i]
    }

    /// Every (x, y) point, for tests; drawing never needs them.
    pub fn points(&self) -> Vec<(f64, f64)> {
        (0..self.len())
            .map(|i| (self.x_at(i), self.y_at(i)))
            .collect()
    }

    /// The first index in `from..len` where `below(x)` stops holding (x is in order, so
    /// `below` holds for a prefix). `near` is an x about where that happens: the search
    /// starts where it would be if x were evenly spaced (steps are), then gallops, so it
    /// reads a few x values instead of the ~20 scattered ones of a bisection of a long run.
    fn first_not(&self, from: usize, near: f64, below: impl Fn(f64) -> bool) -> usize {
        let n = self.len();
        if from >= n {
            return n;
        }
        let (xa, xb) = (self.x_at(from), self.x_at(n - 1));
        let share = if xb > xa {
            (near - xa) / (xb - xa)
        } else {
            0.0
        };
        let g = from + (share.clamp(0.0, 1.0) * (n - 1 - from) as f64) as usize;
        // Bracket the answer in lo..=hi: every index below lo is below, hi is not (or n).
        let (mut lo, mut hi) = (from, n);
        let mut d = 1;
        if below(self.x_at(g)) {
            lo = g + 1;
            while g + d < n {
                if below(self.x_at(g + d)) {
                    lo = g + d + 1;
                    d *= 2;
                } else {
                    hi = g + d;
                    break;
                }
            }
        } else {
            hi = g;
            while g >= from + d {
                if below(self.x_at(g - d)) {
                    lo = g - d + 1;
                    break;
                }
                hi = g - d;
                d *= 2;
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(self.x_at(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// (first x, last x), if there are points.
    fn x_range(&self) -> Option<(f64, f64)> {
        (!self.is_empty()).then(|| (self.x_at(0), self.x_at(self.len() - 1)))
    }
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

/// Per-column min/max/last of the raw values and of their debiased exponential moving
/// average (`smoothing` in [0, 1), 0 = off), for columns of equal width from `x0` to `x1`.
/// Non-finite values do not disturb the average; they are reported per column in `bad`.
///
/// Column edges are found by searching x (see `first_not`) and each column is summarised from
/// the series' blocks, so the cost is about `buckets · log n`. They are exactly the columns of one pass over the points
/// that starts a new column at the first point at or past the current column's right edge
/// (the test `summaries_draw_what_a_pass_over_the_points_draws` holds the two together).
pub fn columns(
    s: &ChartSeries,
    x0: f64,
    x1: f64,
    buckets: usize,
    smoothing: f64,
    log_y: bool,
) -> Columns {
    let mut out = Columns::default();
    let n = s.len();
    let buckets = buckets.max(1);
    let step = (x1 - x0).max(f64::MIN_POSITIVE) / buckets as f64;
    let edge = |b: usize| x0 + step * (b + 1) as f64;
    // The first point at or past each column's right edge. Found first, as searches that do
    // not wait for one another, so the CPU overlaps their reads of a long run's x values.
    let firsts: Vec<usize> = (0..buckets - 1)
        .map(|b| s.first_not(0, edge(b), |x| x < edge(b)))
        .collect();
    let raw = s.y.raw();
    // The smoothed column kept for this smoothing, or else one made now (same arithmetic).
    let made;
    let smooth = match (smoothing > 0.0, s.y.smoothed(smoothing, log_y)) {
        (false, _) => None,
        (true, Some(c)) => Some(c),
        (true, None) => {
            made = Ema::over(smoothing, log_y, &raw.values()[..n]).1;
            Some(&made)
        }
    };
    raw.prefetch(&firsts);
    if let Some(c) = smooth {
        c.prefetch(&firsts);
    }
    let (mut bucket, mut boundary) = (0usize, edge(0));
    let mut start = 0;
    while start < n {
        // A column starts at a point at or past the edge: its bucket is where that point is.
        let x = s.x_at(start);
        if x >= boundary && bucket + 1 < buckets {
            bucket = (((x - x0) / step).floor() as usize).min(buckets - 1);
            boundary = edge(bucket);
        }
        // The column runs to the first point after its start at or past its right edge.
        let end = if bucket + 1 < buckets {
            firsts[bucket].max(start + 1)
        } else {
            n
        };
        if let Some(k) = raw.first_non_finite(start, end) {
            out.bad.push(s.x_at(k));
        }
        if let Some(last) = raw.last_plottable(start, end, log_y) {
            let at = s.x_at(last);
            let (lo, hi) = raw
                .extent(start, end)
                .on_scale(log_y)
                .expect("a plottable value is in range");
            let y = s.y_at(last);
            let y = if log_y { y.log10() } else { y };
            out.raw.extend([(at, lo), (at, hi), (at, y)]);
            if let Some(c) = smooth {
                // The average is finite exactly where the value is plottable.
                let e = c.extent(start, end);
                out.smooth
                    .extend([(at, e.min), (at, e.max), (at, c.values()[last])]);
            }
        }
        start = end;
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

/// An x-axis end: whole numbers (steps) without decimals, so that "1 step 2000" fits a
/// narrow chart where "1.00 step 2000.00" was cut.
fn fmt_x(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e7 {
        format!("{v:.0}")
    } else {
        fmt_tick(v)
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

/// The first and last x of every series together (∞, −∞ when there are no points).
fn x_span(series: &[ChartSeries]) -> (f64, f64) {
    series
        .iter()
        .filter_map(ChartSeries::x_range)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (lo, hi)| {
            (a.min(lo), b.max(hi))
        })
}

/// The extent of every series' values together.
fn extent_of(series: &[ChartSeries]) -> Extent {
    let mut e = Extent::EMPTY;
    for s in series {
        e.merge(&s.y.raw().extent(0, s.len()));
    }
    e
}

pub fn draw_chart(frame: &mut Frame, area: Rect, theme: &Theme, view: &ChartView) {
    let non_finite: usize = view.series.iter().map(|s| s.y.raw().non_finite()).sum();
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
    let (x0, x1) = x_span(&view.series);
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
    let (y0, y1) = extent_of(&view.series)
        .on_scale(view.log_y)
        .unwrap_or((0.0, 1.0));
    // A flat series (a constant learning rate) gets a band around its value, not one
    // reaching zero, so a 1e-3 line sits mid-chart instead of on the floor of 0..0.05.
    let pad = if y1 > y0 {
        (y1 - y0) * 0.05
    } else if y0 != 0.0 {
        y0.abs() * 0.05
    } else {
        0.05
    };
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
        let cols = columns(s, x0, x1, buckets, view.smoothing, view.log_y);
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
    let named = view.series.iter().filter(|s| !s.is_empty()).count() > 1;
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
            fmt_x(x0),
            view.x_label.clone(),
            fmt_x(x1),
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

/// Rows of values over time, drawn as a heatmap: one row per series, one column per x bucket
/// (the bucket's largest value; a NaN or ±Inf in it shows as ×), shaded on a log scale
/// shared by all rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeatmapView {
    pub title: String,
    /// One row per series, labelled with its name.
    pub rows: Vec<ChartSeries>,
}

const SHADES: [char; 5] = ['·', '░', '▒', '▓', '█'];
const HEAT: [Color; 5] = [
    Color::Blue,
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Red,
];

/// One heatmap row's cells: per column `None` (no value), `Some(v)` (the largest finite
/// value) or `Some(NaN)` (a non-finite one, which wins), from the row's summaries.
pub fn heat_cells(s: &ChartSeries, x0: f64, span: f64, cols: usize) -> Vec<Option<f64>> {
    let mut cells = vec![None; cols];
    let bucket = |x: f64| {
        (((x - x0) / span) * cols as f64)
            .floor()
            .clamp(0.0, (cols - 1) as f64) as usize
    };
    let mut start = 0;
    while start < s.len() {
        let b = bucket(s.x_at(start));
        let edge = x0 + span * (b + 1) as f64 / cols as f64;
        let end = s.first_not(start + 1, edge, |x| bucket(x) <= b);
        let raw = s.y.raw();
        cells[b] = Some(if raw.first_non_finite(start, end).is_some() {
            f64::NAN
        } else {
            raw.extent(start, end).max
        });
        start = end;
    }
    cells
}

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
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(inner.width as usize / 3);
    let cols = (inner.width as usize).saturating_sub(label_w + 1);
    let (x0, x1) = x_span(&view.rows);
    if cols == 0 || !x0.is_finite() {
        frame.render_widget(
            Paragraph::new(Span::styled("no data yet", theme.dim())),
            inner,
        );
        return;
    }
    // The shading's scale: log10 of the smallest and largest positive value of all rows.
    let e = extent_of(&view.rows);
    let (lo, hi) = e
        .on_scale(true)
        .unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
    let span = (x1 - x0).max(f64::MIN_POSITIVE);
    let mut lines = Vec::new();
    for row in view.rows.iter().take(inner.height as usize) {
        // A long hierarchical name keeps its end, where tensors differ
        // ("…layers.0.self_attn.q_proj.weight").
        let n = row.name.chars().count();
        let label: String = if n > label_w && label_w > 1 {
            std::iter::once('…')
                .chain(row.name.chars().skip(n - (label_w - 1)))
                .collect()
        } else {
            row.name.chars().take(label_w).collect()
        };
        let mut spans = vec![Span::styled(format!("{label:>label_w$} "), theme.dim())];
        for cell in heat_cells(row, x0, span, cols) {
            spans.push(match cell {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_tensor_name_keeps_its_end_in_the_heatmap() {
        let pts = [(1.0, 1.0), (2.0, 2.0)];
        let view = HeatmapView {
            title: "gradient norm per tensor".into(),
            rows: ["model.layers.0.self_attn.q_proj.weight", "fc0.bias"]
                .map(|n| ChartSeries::from_points(n, &pts))
                .to_vec(),
        };
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(60, 6)).unwrap();
        term.draw(|f| draw_heatmap(f, f.area(), &Theme { color: false }, &view))
            .unwrap();
        let screen: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(screen.contains("…attn.q_proj.weight"), "{screen}");
        assert!(screen.contains("fc0.bias"), "{screen}");
    }

    /// The decimation as it was first written: one pass over every point. The summaries must
    /// give exactly what it gives.
    fn one_pass(
        points: &[(f64, f64)],
        x0: f64,
        x1: f64,
        buckets: usize,
        smoothing: f64,
        log_y: bool,
    ) -> Columns {
        #[derive(Clone, Copy)]
        struct Ext {
            lo: f64,
            hi: f64,
            last: (f64, f64),
        }
        fn add(e: &mut Option<Ext>, x: f64, y: f64) {
            *e = Some(match *e {
                Some(c) => Ext {
                    lo: c.lo.min(y),
                    hi: c.hi.max(y),
                    last: (x, y),
                },
                None => Ext {
                    lo: y,
                    hi: y,
                    last: (x, y),
                },
            });
        }
        fn flush(e: &mut Option<Ext>, out: &mut Vec<(f64, f64)>) {
            if let Some(c) = e.take() {
                out.extend([(c.last.0, c.lo), (c.last.0, c.hi), c.last]);
            }
        }
        let mut out = Columns::default();
        let buckets = buckets.max(1);
        let step = (x1 - x0).max(f64::MIN_POSITIVE) / buckets as f64;
        let (mut raw, mut smooth) = (None, None);
        let (mut acc, mut bias) = (0.0f64, 1.0f64);
        let (mut bucket, mut boundary, mut bad_here) = (0usize, x0 + step, false);
        for &(x, y) in points {
            if x >= boundary && bucket + 1 < buckets {
                flush(&mut raw, &mut out.raw);
                flush(&mut smooth, &mut out.smooth);
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
            add(&mut raw, x, y);
            if smoothing > 0.0 {
                acc = smoothing * acc + (1.0 - smoothing) * y;
                bias *= smoothing;
                add(&mut smooth, x, acc / (1.0 - bias));
            }
        }
        flush(&mut raw, &mut out.raw);
        flush(&mut smooth, &mut out.smooth);
        out
    }

    /// A loss-like curve with noise, spikes, NaN and ±Inf, zeros and negatives.
    fn curve(n: usize, k: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let x = i as f64;
                let noise = ((i * 2654435761 + k) % 1000) as f64 / 1000.0 - 0.5;
                let y = match (i + k) % 1009 {
                    7 => f64::NAN,
                    300 => f64::INFINITY,
                    301 => f64::NEG_INFINITY,
                    500 => 0.0,
                    600 => -0.25,
                    _ => (2.0 + k as f64) * (-x / 2e5).exp() + 0.1 * noise,
                };
                (x, y)
            })
            .collect()
    }

    fn assert_same_columns(pts: &[(f64, f64)], buckets: &[usize], smoothings: &[f64]) {
        let s = ChartSeries::from_points("", pts);
        let last = pts.last().unwrap().0;
        // The whole run, and a range starting before it (an overlay with an earlier run).
        for (x0, x1) in [(0.0, last), (-(last + 1.0), last)] {
            for &b in buckets {
                for &smoothing in smoothings {
                    for log_y in [false, true] {
                        let want = one_pass(pts, x0, x1, b, smoothing, log_y);
                        let what = format!(
                            "{} points, x {x0}..{x1}, {b} columns, EMA {smoothing}, log {log_y}",
                            pts.len()
                        );
                        // Smoothed on the fly, and from the smoothed column the TUI keeps.
                        assert_eq!(columns(&s, x0, x1, b, smoothing, log_y), want, "{what}");
                        let mut kept = s.clone();
                        Arc::make_mut(&mut kept.y).set_smoothing(smoothing, log_y);
                        assert_eq!(columns(&kept, x0, x1, b, smoothing, log_y), want, "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn summaries_draw_what_a_pass_over_the_points_draws() {
        // A million points at a chart's width (200 cells: 380 columns), raw and smoothed.
        assert_same_columns(&curve(1_000_000, 0), &[380], &[0.0, 0.9]);
        // Every smoothing the charts offer and one they do not, at several widths.
        for (n, k) in [(20_000, 0), (1000, 3), (17, 1), (1, 0)] {
            assert_same_columns(
                &curve(n, k),
                &[1, 7, 380, 2000],
                &[0.0, 0.6, 0.9, 0.99, 0.5],
            );
        }
    }

    #[test]
    fn smoothing_is_debiased_and_skips_non_finite_values() {
        let s = ChartSeries::from_points("", &[(0.0, 2.0), (1.0, f64::NAN), (2.0, 2.0)]);
        let c = columns(&s, 0.0, 2.0, 3, 0.9, false);
        assert!(
            c.smooth.iter().all(|p| (p.1 - 2.0).abs() < 1e-12),
            "not pulled towards 0: {:?}",
            c.smooth
        );
        assert_eq!(c.bad, [1.0]);
        assert_eq!(c.raw.len(), 6, "two plottable columns of three points each");
        let one = ChartSeries::from_points("", &[(0.0, 1.0)]);
        assert!(columns(&one, 0.0, 1.0, 3, 0.0, false).smooth.is_empty());
    }

    #[test]
    fn decimation_keeps_extremes_per_column() {
        let pts: Vec<(f64, f64)> = (0..1_000_000)
            .map(|i| (i as f64, if i == 500_123 { 99.0 } else { (i % 7) as f64 }))
            .collect();
        let s = ChartSeries::from_points("", &pts);
        let c = columns(&s, 0.0, 999_999.0, 100, 0.0, false);
        assert!(c.raw.len() <= 300);
        assert!(c.raw.iter().any(|p| p.1 == 99.0), "a single spike survives");
        assert!(c.raw.iter().any(|p| p.1 == 0.0) && c.raw.iter().any(|p| p.1 == 6.0));
    }

    #[test]
    fn log_scale_drops_non_positive_values_and_takes_logs() {
        let s = ChartSeries::from_points("", &[(0.0, 100.0), (1.0, 0.0), (2.0, -1.0)]);
        let c = columns(&s, 0.0, 2.0, 1, 0.0, true);
        assert_eq!(c.raw, [(0.0, 2.0), (0.0, 2.0), (0.0, 2.0)]);
    }

    #[test]
    fn ticks_are_compact() {
        assert_eq!(fmt_tick(0.0), "0");
        assert_eq!(fmt_tick(1234.0), "1234");
        assert_eq!(fmt_tick(0.5), "0.500");
        assert_eq!(fmt_tick(2.5e-5), "2.5e-5");
    }

    /// The heatmap's bucketing as first written: every point into its column.
    fn heat_one_pass(points: &[(f64, f64)], x0: f64, span: f64, cols: usize) -> Vec<Option<f64>> {
        let mut buckets: Vec<Option<f64>> = vec![None; cols];
        for &(x, v) in points {
            let b = (((x - x0) / span) * cols as f64)
                .floor()
                .clamp(0.0, (cols - 1) as f64) as usize;
            buckets[b] = Some(match buckets[b] {
                Some(c) if !c.is_finite() => c,
                Some(c) if v.is_finite() => c.max(v),
                _ => v,
            });
        }
        // Which non-finite value won does not show: every one is drawn as ×.
        buckets
            .into_iter()
            .map(|b| b.map(|v| if v.is_finite() { v } else { f64::NAN }))
            .collect()
    }

    #[test]
    fn heatmap_cells_from_summaries_match_a_pass_over_the_points() {
        let same = |a: &[Option<f64>], b: &[Option<f64>]| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
                    (None, None) => true,
                    _ => false,
                })
        };
        for (n, cols) in [(1_000_000, 190), (1000, 7), (5, 40), (1, 1)] {
            let pts = curve(n, 2);
            let s = ChartSeries::from_points("", &pts);
            let last = pts.last().unwrap().0;
            for (x0, span) in [(0.0, last.max(f64::MIN_POSITIVE)), (-10.0, last + 10.0)] {
                let got = heat_cells(&s, x0, span, cols);
                assert!(
                    same(&got, &heat_one_pass(&pts, x0, span, cols)),
                    "n {n}, {cols} columns"
                );
            }
        }
    }
}
