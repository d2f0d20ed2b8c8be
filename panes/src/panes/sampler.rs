//! The Sampler pane: diffusion models on the left with the next job's settings and the past
//! jobs; on the right the selected job: NFEs, time and distance to CFG per guidance mode,
//! the samples side by side, and the per-step cosine that Adaptive Guidance watches.

use super::filter;
use crate::images::ImageCache;
use crate::view::{PointsView, SampleJobView, SampleModeRow, SamplerModel, SamplerView};
use crate::widgets::{bar, block, empty_state, key_values, matches, wrap};
use crate::{AppView, theme::Theme};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Points};
use ratatui::widgets::{Cell, List, ListItem, ListState, Paragraph, Row, Table, Wrap};

pub fn rows(view: &AppView) -> Vec<&SamplerModel> {
    let f = filter(view);
    view.sampler
        .models
        .iter()
        .filter(|m| matches(f, &m.label))
        .collect()
}

pub fn draw(
    frame: &mut Frame,
    area: Rect,
    view: &AppView,
    selected: usize,
    images: &mut ImageCache,
) {
    let t = &view.theme;
    let s = &view.sampler;
    if s.models.is_empty() && s.jobs.is_empty() {
        empty_state(
            frame,
            area,
            t,
            " Sampler ",
            &[
                "No diffusion models to sample yet.".into(),
                format!(
                    "Train a kind = \"diffusion\" experiment (the demo has moons-diffusion, which \
                     trains in seconds, and digits-diffusion) from the Runs pane with r: its \
                     checkpoints and its exported model/ folder appear here ({}). o opens a \
                     folder by path; S in the Checkpoints pane sends one here.",
                    s.runs_dir
                ),
            ],
        );
        return;
    }
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(34), Constraint::Min(20)]).areas(area);
    let n_settings = s.settings.len() as u16 + 2;
    let [models, settings, jobs] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(n_settings),
        Constraint::Min(4),
    ])
    .areas(left);
    draw_models(frame, models, t, &rows(view), selected);
    draw_settings(frame, settings, t, s);
    draw_jobs(frame, jobs, t, s);
    match &s.job {
        Some(job) => draw_job(frame, right, t, job, images),
        None => empty_state(
            frame,
            right,
            t,
            " Job ",
            &[
                "No sampling jobs yet.".into(),
                format!(
                    "r samples the selected model with these settings in the background \
                     (jobs are folders under {}; closing the TUI loses nothing).",
                    s.samples_dir
                ),
            ],
        ),
    }
}

fn draw_models(frame: &mut Frame, area: Rect, t: &Theme, rows: &[&SamplerModel], selected: usize) {
    // The detail (what the model is) wrapped under its label, two lines at most: borders,
    // the highlight symbol and the indent take six columns.
    let width = (area.width as usize).saturating_sub(6).max(8);
    let items: Vec<ListItem> = rows
        .iter()
        .map(|m| {
            let mut lines = vec![Line::from(m.label.clone())];
            lines.extend(
                crate::widgets::wrap(&m.detail, width)
                    .into_iter()
                    .take(2)
                    .map(|l| Line::styled(format!("  {l}"), t.dim())),
            );
            ListItem::new(lines)
        })
        .collect();
    let mut state = ListState::default().with_selected((!rows.is_empty()).then_some(selected));
    frame.render_stateful_widget(
        List::new(items)
            .block(block(t, " Models "))
            .highlight_style(t.selected())
            .highlight_symbol("› "),
        area,
        &mut state,
    );
}

fn draw_settings(frame: &mut Frame, area: Rect, t: &Theme, s: &SamplerView) {
    let w = s
        .settings
        .iter()
        .map(|(k, _)| crate::widgets::cols(k))
        .max()
        .unwrap_or(0);
    let lines: Vec<Line> = s
        .settings
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let style = if i == s.setting_selected {
                t.selected()
            } else {
                t.base()
            };
            Line::from(vec![
                Span::styled(
                    format!(
                        "{}{}  ",
                        if i == s.setting_selected {
                            "› "
                        } else {
                            "  "
                        },
                        crate::widgets::pad(k, w)
                    ),
                    style,
                ),
                Span::styled(v.clone(), style),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(block(
            t,
            " Next job: J/K pick, H/L change, Enter type, r run ",
        )),
        area,
    );
}

fn draw_jobs(frame: &mut Frame, area: Rect, t: &Theme, s: &SamplerView) {
    let items: Vec<ListItem> = s
        .jobs
        .iter()
        .map(|j| {
            let style = if j.failed { t.error() } else { t.dim() };
            ListItem::new(Line::from(vec![
                Span::raw(j.id.clone()),
                Span::styled(format!("  {}", j.state), style),
            ]))
        })
        .collect();
    let mut state =
        ListState::default().with_selected((!s.jobs.is_empty()).then_some(s.job_selected));
    frame.render_stateful_widget(
        List::new(items)
            .block(block(t, " Jobs ([ ] pick) "))
            .highlight_style(t.selected())
            .highlight_symbol("› "),
        area,
        &mut state,
    );
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("—".into(), f)
}

fn mode_row(m: &SampleModeRow) -> Row<'static> {
    Row::new(vec![
        Cell::from(m.guidance.clone()),
        Cell::from(format!("{}", m.nfe_total)),
        Cell::from(format!("{:.1}", m.nfe_per_sample)),
        Cell::from(fmt_opt(m.nfe_vs_cfg, |r| {
            format!("{:+.0}%", (r - 1.0) * 100.0)
        })),
        Cell::from(fmt_opt(m.stopped.map(|s| s.0), |v| format!("{v:.1}"))),
        Cell::from(format!("{:.2}s", m.seconds)),
        Cell::from(fmt_opt(m.distance_to_cfg, |d| format!("{d:.4}"))),
        Cell::from(fmt_opt(m.judged_accuracy, |a| format!("{:.1}%", a * 100.0))),
    ])
}

fn draw_job(
    frame: &mut Frame,
    area: Rect,
    t: &Theme,
    job: &SampleJobView,
    images: &mut ImageCache,
) {
    let outer = block(t, format!(" {} · {} ", job.id, job.state));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let facts = key_values(t, &job.facts, inner.width);
    let mut head: Vec<Line> = facts;
    if let Some((done, total)) = job.progress {
        let frac = done as f64 / total.max(1) as f64;
        head.push(Line::from(vec![
            bar(
                frac,
                (inner.width as usize).saturating_sub(24).min(50),
                t.title(),
            ),
            Span::raw(format!(" {done}/{total} steps")),
        ]));
    }
    if let Some(m) = &job.message {
        for l in wrap(m, inner.width.max(10) as usize - 2)
            .into_iter()
            .take(3)
        {
            head.push(Line::styled(
                l,
                if job.failed { t.error() } else { t.dim() },
            ));
        }
    }
    let table_h = if job.modes.is_empty() {
        0
    } else {
        job.modes.len() as u16 + 1
    };
    let visual = !(job.images.is_empty() && job.points.is_empty());
    let [h, table, pics, chart] = Layout::vertical([
        Constraint::Length(head.len() as u16),
        Constraint::Length(table_h),
        Constraint::Min(if visual { 6 } else { 0 }),
        Constraint::Length(if job.cosine.is_some() { 9 } else { 0 }),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(head).wrap(Wrap { trim: false }), h);
    if !job.modes.is_empty() {
        let header = Row::new([
            "guidance", "NFE", "/sample", "vs CFG", "stop@", "time", "dist CFG", "judged",
        ])
        .style(t.dim());
        let widths = [
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(7),
        ];
        frame.render_widget(
            Table::new(job.modes.iter().map(mode_row), widths).header(header),
            table,
        );
    }
    if visual {
        let n = job.images.len().max(job.points.len()) as u32;
        let cols = Layout::horizontal(vec![Constraint::Ratio(1, n.max(1)); n as usize]).split(pics);
        for (i, area) in cols.iter().enumerate() {
            if let Some(set) = job.images.get(i) {
                let label = set.first().map_or(String::new(), |img| img.label.clone());
                let b = block(t, format!(" {label} "));
                let inner = b.inner(*area);
                frame.render_widget(b, *area);
                draw_samples(frame, inner, images, &format!("{}/{label}", job.id), set);
            } else if let Some(p) = job.points.get(i) {
                draw_points(frame, *area, t, p);
            }
        }
    }
    if let Some(c) = &job.cosine {
        crate::chart::draw_chart(frame, chart, t, c);
    }
}

/// As many samples as fit, each in a cell of its own pixel size (half-blocks: one column and
/// half a row per pixel), a column apart; images too wide for two to a row are scaled down
/// so that two fit.
fn draw_samples(
    frame: &mut Frame,
    area: Rect,
    cache: &mut ImageCache,
    key: &str,
    set: &[crate::ImageView],
) {
    let Some(first) = set.first() else { return };
    let (iw, ih) = (first.width.max(1), first.height.max(1));
    let w = (iw as u16).min(area.width.div_ceil(2).saturating_sub(1).max(8));
    let h = ((w as u32 * ih).div_ceil(iw).div_ceil(2)).max(1) as u16;
    let cols = ((area.width + 1) / (w + 1)).max(1);
    let rows = (area.height / h).max(1);
    for (k, img) in set.iter().enumerate().take((cols * rows) as usize) {
        let (c, r) = (k as u16 % cols, k as u16 / cols);
        let cell = Rect::new(area.x + c * (w + 1), area.y + r * h, w, h).intersection(area);
        cache.draw(frame, cell, key, k, img);
    }
}

fn draw_points(frame: &mut Frame, area: Rect, t: &Theme, p: &PointsView) {
    let ((x0, x1), (y0, y1)) = p.bounds;
    let color = t.color;
    let canvas = Canvas::default()
        .block(block(t, format!(" {} ", p.label)))
        .marker(Marker::Braille)
        .x_bounds([x0, x1])
        .y_bounds([y0, y1])
        .paint(move |ctx| {
            let classes = p.points.iter().map(|q| q.2).max().map_or(0, |m| m + 1);
            for c in 0..classes {
                let coords: Vec<(f64, f64)> = p
                    .points
                    .iter()
                    .filter(|q| q.2 == c)
                    .map(|q| (q.0, q.1))
                    .collect();
                let style = if color {
                    {
                        let [r, g, b] =
                            crate::theme::CLASS_RGB[c as usize % crate::theme::CLASS_RGB.len()];
                        Color::Rgb(r, g, b)
                    }
                } else {
                    Color::Reset
                };
                ctx.draw(&Points {
                    coords: &coords,
                    color: style,
                });
            }
        });
    frame.render_widget(canvas, area);
}
