//! Experiment lists: the Runs pane (all experiments, their runs, config errors) and the
//! Sampler and RL panes (the experiments of their kind).

use super::filter;
use crate::chart::{draw_chart, draw_heatmap, fmt_tick};
use crate::widgets::{block, empty_state, key_values, matches};
use crate::{AppView, ExperimentRow, RunRow};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Cell, List, ListItem, ListState, Paragraph, Row, Table, TableState, Wrap};

/// How a pane that lists one kind of experiment describes itself.
pub struct KindPane {
    pub kind: &'static str,
    pub title: &'static str,
    pub empty: &'static str,
    pub what: &'static str,
}

pub const RL: KindPane = KindPane {
    kind: "grpo",
    title: " GRPO experiments ",
    empty: "No GRPO experiments in this workspace.",
    what: "Add an experiment file with kind = \"grpo\" to experiments/; it appears here, \
           where you fine-tune a language model with GRPO and D³S down-sampling and watch its \
           rewards.",
};

/// Experiments of `kind` (all when `None`) that pass the filter.
pub fn rows<'a>(view: &'a AppView, kind: Option<&str>) -> Vec<&'a ExperimentRow> {
    view.workspace
        .experiments
        .iter()
        .filter(|e| kind.is_none_or(|k| e.kind == k))
        .filter(|e| matches(filter(view), &e.name) || matches(filter(view), &e.file))
        .collect()
}

/// The runs of experiment `name`, newest first.
pub fn runs_of<'a>(view: &'a AppView, name: &str) -> Vec<&'a RunRow> {
    view.workspace
        .runs
        .iter()
        .filter(|r| r.experiment == name)
        .collect()
}

pub(super) fn draw_runs_table(
    frame: &mut Frame,
    area: Rect,
    view: &AppView,
    runs: &[&RunRow],
    selected: usize,
) {
    let t = &view.theme;
    let f = |v: Option<f64>| v.map_or("-".to_string(), fmt_tick);
    // Narrow terminals keep the columns that matter most.
    let full = area.width >= 78;
    // Speed and time left only while a listed run is live: for finished runs they are
    // dashes, and their 17 columns go to the last column (a sweep member's keys).
    let live = full && runs.iter().any(|r| r.live);
    // A narrow column (the RL pane's) keeps the run, its state and its step, and shortens
    // the id `20261201-203320` to `1201-203320`.
    let narrow = area.width < 50;
    let rows: Vec<Row> = runs
        .iter()
        .map(|r| {
            let style = state_style(t, &r.state);
            let id = if narrow && r.id.len() == 15 {
                r.id[4..].to_string()
            } else {
                r.id.clone()
            };
            let mut cells = vec![
                Cell::from(id),
                Cell::from(Span::styled(r.state.clone(), style)),
                Cell::from(format!("{}/{}", r.step, r.total)),
            ];
            if !narrow {
                cells.extend([Cell::from(f(r.loss)), Cell::from(f(r.eval_loss))]);
            }
            if full {
                cells.push(Cell::from(
                    r.accuracy
                        .map_or("-".into(), |a| format!("{:.1}%", a * 100.0)),
                ));
            }
            if live {
                cells.extend([
                    Cell::from(match (r.live, r.tokens_per_s, r.examples_per_s) {
                        (false, ..) => "-".into(),
                        (true, Some(t), _) => format!("{} tok/s", compact(t)),
                        (true, None, Some(v)) => format!("{v:.0}/s"),
                        (true, None, None) => "-".into(),
                    }),
                    Cell::from(r.eta.clone().unwrap_or_else(|| "-".into())),
                ]);
            }
            cells.push(Cell::from(last_column(r)));
            Row::new(cells)
        })
        .collect();
    let mut header = if narrow {
        vec!["run", "state", "step"]
    } else {
        vec!["run", "state", "step", "loss", "eval"]
    };
    // "123456/1000000" must not be cut: the column is as wide as its widest entry will be
    // (the total over the total), so that it does not widen as runs count up.
    let step_w = runs
        .iter()
        .map(|r| format!("{}/{}", r.step.max(r.total), r.total).len() as u16)
        .max()
        .unwrap_or(0)
        .max(4);
    // Runs made in one second (a sweep's) have ids like `20261202-024442-12`.
    let id_w = runs
        .iter()
        .map(|r| r.id.len() as u16)
        .max()
        .unwrap_or(0)
        .max(15);
    let mut widths = if narrow {
        vec![
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(step_w),
        ]
    } else {
        vec![
            Constraint::Length(id_w),
            Constraint::Length(8),
            Constraint::Length(step_w),
            Constraint::Length(6),
            Constraint::Length(6),
        ]
    };
    if full {
        header.push("acc");
        widths.push(Constraint::Length(6));
    }
    if live {
        header.extend(["speed", "eta"]);
        // "2.5k tok/s"
        widths.extend([Constraint::Length(10), Constraint::Length(5)]);
    }
    header.push("");
    widths.push(Constraint::Min(0));
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(t.dim()))
            .row_highlight_style(t.selected())
            .block(block(t, format!(" Runs ({}) ", runs.len()))),
        area,
        &mut state,
    );
}

/// How a run's state is coloured wherever runs are listed.
pub(super) fn state_style(t: &crate::Theme, state: &str) -> ratatui::style::Style {
    match state {
        "failed" => t.error(),
        "paused" => t.warn(),
        "running" | "starting" => t.ok(),
        "queued" => t.dim(),
        _ => t.base(),
    }
}

/// The line under the table for the selected run.
fn note_of(r: &RunRow) -> Option<String> {
    let member = r
        .member
        .map(|m| format!("sweep member {m}: {}", r.overrides));
    let message = r.message.clone().filter(|m| !m.is_empty());
    match (member, message) {
        (Some(a), Some(b)) => Some(format!("{a} · {b}")),
        (a, b) => a.or(b),
    }
}

/// The table's last column: the Slurm job, the sweep member's keys, then why it paused,
/// failed or waits.
fn last_column(r: &RunRow) -> String {
    let mut parts = Vec::new();
    if let Some(j) = &r.job {
        parts.push(j.clone());
    }
    if let Some(m) = r.member {
        parts.push(format!("[{m}] {}", r.overrides));
    }
    if let Some(m) = r.message.as_deref().filter(|m| !m.is_empty()) {
        parts.push(m.to_string());
    }
    parts.join(" · ")
}

/// What the charts' place shows before a run's first metrics are read.
pub(super) fn charts_pending(frame: &mut Frame, area: Rect, view: &AppView) {
    empty_state(
        frame,
        area,
        &view.theme,
        " Charts ",
        &["Reading the run's metrics…".into()],
    );
}

fn draw_charts(frame: &mut Frame, area: Rect, view: &AppView) {
    let charts = &view.run_charts;
    if charts.is_empty() {
        return charts_pending(frame, area, view);
    }
    // The per-layer heatmap gets a band below the charts when there is room for it.
    let heat_rows = match &view.run_heatmap {
        Some(h) if area.height >= 24 => (h.rows.len() as u16 + 2).min(area.height / 3),
        _ => 0,
    };
    let [area, heat] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(heat_rows)]).areas(area);
    if let Some(h) = &view.run_heatmap
        && heat_rows > 0
    {
        draw_heatmap(frame, heat, &view.theme, h);
    }
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let cells: Vec<Rect> = [top, bottom]
        .into_iter()
        .flat_map(|r| {
            let [a, b] =
                Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(r);
            [a, b]
        })
        .collect();
    for (chart, cell) in charts.iter().zip(cells) {
        draw_chart(frame, cell, &view.theme, chart);
    }
}

pub fn draw_runs(
    frame: &mut Frame,
    area: Rect,
    view: &AppView,
    selected: usize,
    run_selected: usize,
    images: &mut crate::images::ImageCache,
) {
    let errors = &view.workspace.errors;
    let error_rows = if errors.is_empty() {
        0
    } else {
        (errors.len() as u16 * 2 + 2).min(area.height / 3).max(3)
    };
    let [top, bottom] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(error_rows)]).areas(area);
    let rows = rows(view, None);
    if view.workspace.experiments.is_empty() {
        empty_state(
            frame,
            top,
            &view.theme,
            " Experiments ",
            &[
                "No experiments in this workspace.".into(),
                "Put one TOML file per experiment in experiments/ (see the README for the \
                 format); it appears here as soon as it is saved."
                    .into(),
            ],
        );
    } else {
        let [list, right] =
            Layout::horizontal([Constraint::Percentage(32), Constraint::Min(20)]).areas(top);
        draw_list(frame, list, view, &rows, selected, " Experiments ");
        let exp = rows.get(selected).copied();
        let runs = exp.map(|e| runs_of(view, &e.name)).unwrap_or_default();
        if runs.is_empty() {
            let [empty, details] =
                Layout::vertical([Constraint::Length(6), Constraint::Min(3)]).areas(right);
            let runs_dir = &view.workspace.runs_dir;
            let how = match exp {
                Some(e) if e.in_force => format!(
                    "No runs of {} yet — press r to start one. Runs appear here with live loss, \
                     gradient-norm and learning-rate charts; their folders live in \
                     {runs_dir}/<experiment>/<run-id>/.",
                    e.name
                ),
                _ => "No runs yet. Fix the experiment's errors, then press r to start one.".into(),
            };
            empty_state(frame, empty, &view.theme, " Runs ", &[how]);
            draw_details(frame, details, view, exp);
        } else {
            let table_rows = (runs.len() as u16 + 3).min(right.height / 3).max(4);
            let chosen = run_selected.min(runs.len() - 1);
            // Why the selected run failed, paused or waits, and a sweep member's keys, whole:
            // the table's last column is too narrow for them.
            let why = note_of(runs[chosen]);
            let why = why.as_deref();
            // As many lines as the words need, up to three.
            let note_rows = why.map_or(0, |w| {
                let per_line = right.width.saturating_sub(2).max(1) as usize;
                (w.chars().count() + 1).div_ceil(per_line).clamp(1, 3) as u16 + 1
            });
            let [table, note, charts] = Layout::vertical([
                Constraint::Length(table_rows),
                Constraint::Length(note_rows),
                Constraint::Min(4),
            ])
            .areas(right);
            draw_runs_table(frame, table, view, &runs, chosen);
            if let Some(why) = why {
                let t = &view.theme;
                let style = match runs[chosen].state.as_str() {
                    "failed" => t.error(),
                    "paused" => t.warn(),
                    _ => t.dim(),
                };
                frame.render_widget(
                    Paragraph::new(Line::styled(format!(" {why}"), style))
                        .wrap(Wrap { trim: true }),
                    note,
                );
            }
            let charts = match &view.sweep {
                Some(s) => {
                    let h = super::sweep::height(s).min(charts.height / 2).max(4);
                    let [ranking, rest] =
                        Layout::vertical([Constraint::Length(h), Constraint::Min(4)]).areas(charts);
                    super::sweep::draw(frame, ranking, view, s);
                    rest
                }
                None => charts,
            };
            match &view.probes {
                Some(p) => super::probes::draw(frame, charts, view, p, images),
                None => draw_charts(frame, charts, view),
            }
        }
    }
    if !errors.is_empty() {
        let t = &view.theme;
        let lines: Vec<Line> = errors
            .iter()
            .map(|e| Line::styled(e.clone(), t.error()))
            .collect();
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(block(t, format!(" Config errors ({}) ", errors.len()))),
            bottom,
        );
    }
}

pub(super) fn draw_list(
    frame: &mut Frame,
    area: Rect,
    view: &AppView,
    rows: &[&ExperimentRow],
    selected: usize,
    title: &str,
) {
    let t = &view.theme;
    let items: Vec<ListItem> = rows
        .iter()
        .map(|e| {
            let (mark, style) = match (e.errors.is_empty(), e.in_force) {
                (true, _) => ("✓ ", t.ok()),
                (false, true) => ("! ", t.warn()),
                (false, false) => ("✗ ", t.error()),
            };
            let kind = if e.kind.is_empty() {
                "invalid"
            } else {
                &e.kind
            };
            ListItem::new(Line::from(vec![
                Span::styled(mark, style),
                Span::raw(e.name.clone()),
                Span::styled(format!("  {kind}"), t.dim()),
            ]))
        })
        .collect();
    let title = format!("{}({}) ", title.trim_end().to_string() + " ", rows.len());
    let mut state = ListState::default().with_selected((!rows.is_empty()).then_some(selected));
    frame.render_stateful_widget(
        List::new(items)
            .block(block(t, title))
            .highlight_style(t.selected()),
        area,
        &mut state,
    );
}

pub(super) fn draw_details(
    frame: &mut Frame,
    area: Rect,
    view: &AppView,
    row: Option<&ExperimentRow>,
) {
    let t = &view.theme;
    let Some(e) = row else {
        empty_state(
            frame,
            area,
            t,
            " Experiment ",
            &["No experiment matches the filter.".into()],
        );
        return;
    };
    let mut text = Text::default();
    if !e.summary.is_empty() {
        text.lines.push(Line::raw(e.summary.clone()));
        text.lines.push(Line::default());
    }
    match (e.errors.is_empty(), e.in_force) {
        (true, _) => {}
        (false, true) => text.lines.push(Line::styled(
            "The file has errors; its last good version stays in force:",
            t.warn(),
        )),
        (false, false) => text.lines.push(Line::styled(
            "The file has never been valid; fix it to use this experiment:",
            t.error(),
        )),
    }
    for err in &e.errors {
        text.lines.push(Line::styled(format!("  {err}"), t.error()));
    }
    if !e.errors.is_empty() {
        text.lines.push(Line::default());
    }
    text.lines
        .extend(key_values(t, &e.details, area.width.saturating_sub(2)));
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(block(t, format!(" {} · {} ", e.name, e.file))),
        area,
    );
}

/// A rate in three significant figures at most: 950, 2.5k, 25k, 1.2M.
fn compact(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}
