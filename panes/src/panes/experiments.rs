//! Experiment lists: the Runs pane (all experiments, their runs, config errors) and the
//! Sampler and RL panes (the experiments of their kind).

use super::filter;
use crate::widgets::{block, empty_state, key_values, matches};
use crate::{AppView, ExperimentRow};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};

/// How a pane that lists one kind of experiment describes itself.
pub struct KindPane {
    pub kind: &'static str,
    pub title: &'static str,
    pub empty: &'static str,
    pub what: &'static str,
}

pub const SAMPLER: KindPane = KindPane {
    kind: "diffusion",
    title: " Diffusion experiments ",
    empty: "No diffusion experiments in this workspace.",
    what: "Add an experiment file with kind = \"diffusion\" to experiments/; it appears here, \
           where you sample it with classifier-free guidance (CFG) or Adaptive Guidance.",
};

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

pub fn draw_runs(frame: &mut Frame, area: Rect, view: &AppView, selected: usize) {
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
            Layout::horizontal([Constraint::Percentage(36), Constraint::Min(20)]).areas(top);
        draw_list(frame, list, view, &rows, selected, " Experiments ");
        let [runs, details] =
            Layout::vertical([Constraint::Length(6), Constraint::Min(3)]).areas(right);
        let runs_dir = &view.workspace.runs_dir;
        empty_state(
            frame,
            runs,
            &view.theme,
            " Runs ",
            &[format!(
                "No runs yet. Each run of the selected experiment will be listed here with \
                 live loss, gradient-norm and learning-rate charts; run folders live in \
                 {runs_dir}/<experiment>/<run-id>/."
            )],
        );
        draw_details(frame, details, view, rows.get(selected).copied());
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

pub fn draw_by_kind(frame: &mut Frame, area: Rect, view: &AppView, selected: usize, k: KindPane) {
    let rows = rows(view, Some(k.kind));
    let any = view.workspace.experiments.iter().any(|e| e.kind == k.kind);
    if !any {
        empty_state(
            frame,
            area,
            &view.theme,
            k.title,
            &[k.empty.into(), k.what.into()],
        );
        return;
    }
    let [list, details] =
        Layout::horizontal([Constraint::Percentage(36), Constraint::Min(20)]).areas(area);
    draw_list(frame, list, view, &rows, selected, k.title);
    draw_details(frame, details, view, rows.get(selected).copied());
}

fn draw_list(
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

fn draw_details(frame: &mut Frame, area: Rect, view: &AppView, row: Option<&ExperimentRow>) {
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
