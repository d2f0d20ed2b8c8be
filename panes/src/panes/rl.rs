//! The RL pane: GRPO experiments and their runs, live charts of reward, KL, entropy,
//! completion length, D³S's kept fractions and Var(A), and the rollout viewer — one prompt
//! of one step, its completions token by token coloured by |A|·H, with what D³S kept.

use super::experiments::{self, RL, draw_runs_table, runs_of};
use crate::chart::draw_chart;
use crate::widgets::{block, empty_state};
use crate::{AppView, CompletionView, RolloutView};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn draw(frame: &mut Frame, area: Rect, view: &AppView, selected: usize, run_selected: usize) {
    let rows = experiments::rows(view, Some(RL.kind));
    if !view.workspace.experiments.iter().any(|e| e.kind == RL.kind) {
        empty_state(
            frame,
            area,
            &view.theme,
            RL.title,
            &[RL.empty.into(), RL.what.into()],
        );
        return;
    }
    // The lists need about 30 columns for their titles and the runs' steps.
    let left_w = (area.width * 28 / 100).max(30).min(area.width / 2);
    let [left, right] =
        Layout::horizontal([Constraint::Length(left_w), Constraint::Min(30)]).areas(area);
    let exp = rows.get(selected).copied();
    let runs = exp.map(|e| runs_of(view, &e.name)).unwrap_or_default();
    let [list, table] =
        Layout::vertical([Constraint::Percentage(45), Constraint::Min(4)]).areas(left);
    experiments::draw_list(frame, list, view, &rows, selected, RL.title);
    if runs.is_empty() {
        let how = match exp {
            Some(e) if e.in_force => format!(
                "No runs of {} yet — press r to start one. Reward, KL, entropy and the \
                 rollouts appear here as it trains.",
                e.name
            ),
            _ => "No runs yet. Fix the experiment's errors, then press r to start one.".into(),
        };
        empty_state(frame, table, &view.theme, " Runs ", &[how]);
        experiments::draw_details(frame, right, view, exp);
        return;
    }
    draw_runs_table(frame, table, view, &runs, run_selected.min(runs.len() - 1));
    let [charts, viewer] =
        Layout::vertical([Constraint::Percentage(45), Constraint::Min(6)]).areas(right);
    draw_charts(frame, charts, view);
    draw_rollouts(frame, viewer, view);
}

fn draw_charts(frame: &mut Frame, area: Rect, view: &AppView) {
    let charts = &view.rl.charts;
    if charts.is_empty() {
        return experiments::charts_pending(frame, area, view);
    }
    // Two rows of four, or of two when the terminal is narrow (the first four charts:
    // reward, accuracy, KL, entropy).
    let per_row = if area.width >= 80 { 4 } else { 2 };
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let cols = vec![Constraint::Ratio(1, per_row as u32); per_row];
    let cells: Vec<Rect> = [top, bottom]
        .into_iter()
        .flat_map(|r| Layout::horizontal(cols.clone()).split(r).to_vec())
        .collect();
    for (chart, cell) in charts.iter().zip(cells) {
        draw_chart(frame, cell, &view.theme, chart);
    }
}

/// A token as one cell run of text: newlines and tabs made visible.
fn visible(token: &str) -> String {
    token.replace('\n', "⏎").replace('\t', "⇥")
}

fn completion_line(view: &AppView, r: &RolloutView, i: usize, c: &CompletionView) -> Line<'static> {
    let t = &view.theme;
    let mark = if c.kept { "●" } else { "○" };
    let mut spans = vec![
        Span::styled(
            format!("{:>2} {mark} ", i + 1),
            if c.kept { t.ok() } else { t.dim() },
        ),
        Span::raw(format!("{:>6.2} {:>+6.2}  ", c.reward, c.advantage)),
    ];
    for (text, score, kept) in &c.tokens {
        let share = if r.max_score > 0.0 {
            score / r.max_score
        } else {
            0.0
        };
        let mut style = t.heat(share);
        if *kept && c.kept {
            style = style.add_modifier(Modifier::UNDERLINED);
        }
        spans.push(Span::styled(visible(text), style));
        spans.push(Span::raw(" "));
    }
    if c.truncated {
        spans.push(Span::styled("(cut at the length limit)", t.warn()));
    }
    for e in &c.errors {
        spans.push(Span::styled(format!(" reward failed: {e}"), t.error()));
    }
    Line::from(spans)
}

fn draw_rollouts(frame: &mut Frame, area: Rect, view: &AppView) {
    let t = &view.theme;
    let Some(r) = &view.rl.rollouts else {
        let note = if view.rl.note.is_empty() {
            "No rollouts logged yet.".to_string()
        } else {
            view.rl.note.clone()
        };
        empty_state(frame, area, t, " Rollouts ", &[note]);
        return;
    };
    // Short enough for an 80-column terminal; the keys (J/K step, H/L prompt) are in the
    // help.
    let title = format!(
        " Rollouts · step {} ({}/{}{}) · prompt {}/{} ",
        r.step,
        r.position.0,
        r.position.1,
        if r.following { ", live" } else { "" },
        r.group.0,
        r.group.1
    );
    let mut lines = vec![
        Line::from(vec![
            Span::styled("prompt ", t.dim()),
            Span::raw(visible(&r.prompt)),
            Span::styled("   answer ", t.dim()),
            Span::raw(r.answer.clone()),
        ]),
        Line::styled(
            " #   kept reward    adv  completion (colour: |A|·H, underlined: tokens D³S kept)",
            t.dim(),
        ),
    ];
    for (i, c) in r.completions.iter().enumerate() {
        lines.push(completion_line(view, r, i, c));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(t, title)),
        area,
    );
}
