//! The Runs pane's gradient-probe view of the selected run: four charts (m-coherence, noise
//! scale, sharpness against the edge of stability, opposing-signal group losses), and below
//! them the EL2N histogram with the hardest examples, the latest opposing-signal groups and
//! the Hessian's spectral density.

use crate::chart::draw_chart;
use crate::images::ImageCache;
use crate::view::{ExampleView, ProbesView};
use crate::widgets::{block, empty_state};
use crate::{AppView, theme::Theme};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph, Wrap};

pub(super) fn draw(
    frame: &mut Frame,
    area: Rect,
    view: &AppView,
    p: &ProbesView,
    images: &mut ImageCache,
) {
    let t = &view.theme;
    let mut lines = vec![Line::styled(format!(" {}", p.note), t.dim())];
    if let Some(h) = &p.hint {
        lines.push(Line::styled(format!(" hint: {h}"), t.warn()));
    }
    let band = if area.height >= 30 { 13 } else { 0 };
    // The note and the hint wrap (at most two rows each) rather than run off the pane.
    let width = area.width.max(1) as usize;
    let rows: u16 = lines
        .iter()
        .map(|l| (l.width().div_ceil(width)).clamp(1, 2) as u16)
        .sum();
    let [note, charts, bottom] = Layout::vertical([
        Constraint::Length(rows),
        Constraint::Min(6),
        Constraint::Length(band),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), note);
    if p.charts.is_empty() {
        super::experiments::charts_pending(frame, charts, view);
    } else {
        let [top, low] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(charts);
        let cells = [top, low].into_iter().flat_map(|r| {
            let [a, b] =
                Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(r);
            [a, b]
        });
        for (chart, cell) in p.charts.iter().zip(cells) {
            draw_chart(frame, cell, t, chart);
        }
    }
    if band == 0 {
        return;
    }
    let [el2n, opposing, spectrum] = Layout::horizontal([
        Constraint::Percentage(38),
        Constraint::Percentage(32),
        Constraint::Percentage(30),
    ])
    .areas(bottom);
    match &p.el2n {
        Some(e) => {
            let outer = block(
                t,
                format!(
                    " EL2N · step {} · {} scored · histogram 0 … √2 ",
                    e.step, e.scored
                ),
            );
            let inner = outer.inner(el2n);
            frame.render_widget(outer, el2n);
            let [hist, hard] =
                Layout::vertical([Constraint::Length(5), Constraint::Min(2)]).areas(inner);
            let n = e.histogram.len().max(1);
            let bars: Vec<Bar> = e
                .histogram
                .iter()
                .map(|&c| Bar::default().value(c).text_value(String::new()))
                .collect();
            let width = (hist.width.saturating_sub(1) / n as u16).max(1);
            frame.render_widget(
                BarChart::default()
                    .data(BarGroup::default().bars(&bars))
                    .bar_width(width)
                    .bar_gap(0)
                    .bar_style(t.key()),
                hist,
            );
            strip(frame, hard, t, "el2n", "hardest", &e.hardest, images);
        }
        None => empty_state(
            frame,
            el2n,
            t,
            " EL2N ",
            &[
                "Scores appear with the run's first checkpoint (classification runs; \
               [probes.el2n] enabled = true, the default)."
                    .into(),
            ],
        ),
    }
    match &p.opposing {
        Some(o) => {
            let outer = block(t, format!(" opposing signals · step {} ", o.step));
            let inner = outer.inner(opposing);
            frame.render_widget(outer, opposing);
            let [a, b] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(inner);
            strip(frame, a, t, "rise", "loss rose most (Δℓ)", &o.rises, images);
            strip(frame, b, t, "fall", "loss fell most (Δℓ)", &o.falls, images);
        }
        None => empty_state(
            frame,
            opposing,
            t,
            " opposing signals ",
            &[
                "Set [probes.opposing] every = K: the probe set's largest loss rises and falls \
               between probes show here."
                    .into(),
            ],
        ),
    }
    match &p.spectrum {
        Some(s) => {
            let [chart, summary] =
                Layout::vertical([Constraint::Min(4), Constraint::Length(2)]).areas(spectrum);
            draw_chart(frame, chart, t, &s.chart);
            frame.render_widget(
                Paragraph::new(Line::styled(s.summary.clone(), t.dim())).wrap(Wrap { trim: true }),
                summary,
            );
        }
        None => empty_state(
            frame,
            spectrum,
            t,
            " Hessian spectrum ",
            std::slice::from_ref(&p.spectrum_note),
        ),
    }
}

/// A row of examples: images with their label and value beneath when the data are images,
/// else one line each.
fn strip(
    frame: &mut Frame,
    area: Rect,
    t: &Theme,
    key: &str,
    title: &str,
    examples: &[ExampleView],
    images: &mut ImageCache,
) {
    if area.height == 0 {
        return;
    }
    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(
        Paragraph::new(Line::styled(title.to_string(), t.dim())),
        head,
    );
    if examples.is_empty() {
        frame.render_widget(Paragraph::new(Line::styled("—", t.dim())), body);
        return;
    }
    if examples.iter().all(|e| e.image.is_some()) && body.height >= 3 {
        let cell_w = 8u16;
        let fit = (body.width / cell_w) as usize;
        for (i, e) in examples.iter().take(fit).enumerate() {
            let cell = Rect::new(body.x + i as u16 * cell_w, body.y, cell_w - 1, body.height);
            let [img, text] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(cell);
            if let Some(im) = &e.image {
                images.draw(frame, img, key, e.row, im);
            }
            frame.render_widget(
                Paragraph::new(Line::from(format!("{}:{}", e.label, short(e.value)))),
                text,
            );
        }
        return;
    }
    let lines: Vec<Line> = examples
        .iter()
        .take(body.height as usize)
        .map(|e| Line::from(format!("row {:>6}  {:<10} {:+.3}", e.row, e.label, e.value)))
        .collect();
    frame.render_widget(Paragraph::new(lines), body);
}

/// A value in at most five characters: 0.14, -0.003, 1e-4.
fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (0.01..100.0).contains(&a) {
        format!("{v:.2}")
    } else if (0.001..0.01).contains(&a) {
        format!("{v:.3}")
    } else {
        format!("{v:.0e}")
    }
}
