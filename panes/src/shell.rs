//! The frame around the panes: tab bar, body, filter line, status bar, help overlay, and the
//! "terminal too small" screen.

use crate::widgets::{block, truncate_left, truncate_right};
use crate::{AppView, HelpRow, Pane, UiState, panes};
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Row, Table, Wrap};

/// Below this size the panes cannot say anything useful; the frame says so instead.
pub const MIN_WIDTH: u16 = 50;
pub const MIN_HEIGHT: u16 = 12;

/// Draws one frame of the whole app.
pub fn draw(frame: &mut Frame, view: &AppView, ui: &mut UiState) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area, view);
        return;
    }
    let filter_rows = u16::from(view.filter.is_some() || view.prompt.is_some());
    let [tabs, body, filter, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(filter_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    tab_bar(frame, tabs, view);
    panes::draw_body(frame, body, view, ui);
    if let Some(p) = &view.prompt {
        let t = &view.theme;
        let line = Line::from(vec![
            Span::styled(format!(" {}: ", p.label), t.key()),
            Span::raw(p.text.clone()),
            Span::styled("▏", t.key()),
            Span::styled("   Enter send · Esc cancel", t.dim()),
        ]);
        frame.render_widget(Paragraph::new(line), filter);
    } else if let Some(f) = &view.filter {
        let t = &view.theme;
        let mut spans = vec![Span::styled(" / ", t.key()), Span::raw(f.text.clone())];
        if f.editing {
            spans.push(Span::styled("▏", t.key()));
            spans.push(Span::styled("   Enter keep · Esc clear", t.dim()));
        } else {
            spans.push(Span::styled("   (filter; / edit · Esc clear)", t.dim()));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), filter);
    }
    status_bar(frame, status, view);
    if let Some(rows) = &view.help {
        help_overlay(frame, area, view, rows, &mut ui.help_scroll);
    }
}

fn too_small(frame: &mut Frame, area: Rect, view: &AppView) {
    let msg = format!(
        "Terminal too small: {}×{}. descent needs at least {MIN_WIDTH}×{MIN_HEIGHT}; \
         enlarge the window, or press q to quit.",
        area.width, area.height
    );
    frame.render_widget(
        Paragraph::new(msg)
            .style(view.theme.warn())
            .wrap(Wrap { trim: true }),
        area,
    );
}

fn tab_bar(frame: &mut Frame, area: Rect, view: &AppView) {
    let t = &view.theme;
    let mut spans = vec![
        Span::styled(" descent ", t.title()),
        Span::styled("│", t.dim()),
    ];
    for p in Pane::ALL {
        let label = format!(" {} {} ", p.index() + 1, p.title());
        let style = if p == view.pane {
            t.tab_active()
        } else {
            t.base()
        };
        spans.push(Span::styled(label, style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn status_bar(frame: &mut Frame, area: Rect, view: &AppView) {
    let t = &view.theme;
    let s = &view.status;
    let configs_ok = s.alert.is_none() && s.config_errors == 0;
    // Right of the message, each with whether a notice that needs the room (a question such
    // as the trash's) may take it: the last such goes first (the watch mode, then "configs
    // ok", the run count, the device). An alert or a config error is never given up.
    let mut segments: Vec<(Span, bool)> = vec![
        (Span::raw(s.device.clone()), true),
        (
            Span::raw(match s.active_runs {
                0 => "no active runs".to_string(),
                1 => "1 active run".to_string(),
                n => format!("{n} active runs"),
            }),
            true,
        ),
        (
            match (&s.alert, s.config_errors) {
                (Some(a), _) => Span::styled(a.clone(), t.error()),
                (None, 0) => Span::styled("configs ok", t.ok()),
                (None, 1) => Span::styled("1 config error", t.error()),
                (None, n) => Span::styled(format!("{n} config errors"), t.error()),
            },
            configs_ok,
        ),
        (Span::styled(s.watch_mode.clone(), t.dim()), true),
    ];
    let help = Span::styled("? help ", t.key());
    let sep = Span::raw(" │ ").width();
    let used = |segments: &[(Span, bool)]| -> usize {
        segments.iter().map(|(s, _)| s.width() + sep).sum::<usize>() + sep + help.width()
    };
    if let Some(n) = &view.notice {
        let want = Span::raw(n.as_str()).width() + 1;
        while want + used(&segments) > area.width as usize {
            match segments.iter().rposition(|(_, may_go)| *may_go) {
                Some(i) => {
                    segments.remove(i);
                }
                None => break,
            }
        }
    }
    let room = (area.width as usize).saturating_sub(used(&segments) + 1);
    let left = match &view.notice {
        Some(n) => Span::styled(truncate_right(n, room), t.warn()),
        None => Span::raw(truncate_left(&s.workspace, room)),
    };
    let mut spans = vec![Span::raw(" "), left];
    for seg in segments.into_iter().map(|(s, _)| s).chain([help]) {
        spans.push(Span::styled(" │ ", t.dim()));
        spans.push(seg);
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(t.status_bar()),
        area,
    );
}

/// The keymap in a centred box; when it is taller than the screen it scrolls (`scroll` is
/// clamped here, where the visible height is known).
fn help_overlay(
    frame: &mut Frame,
    area: Rect,
    view: &AppView,
    rows: &[HelpRow],
    scroll: &mut usize,
) {
    let t = &view.theme;
    let mut table_rows = Vec::new();
    let mut context = "";
    for r in rows {
        if r.context != context {
            context = &r.context;
            table_rows.push(Row::new(vec![Span::styled(context.to_string(), t.title())]));
        }
        table_rows.push(Row::new(vec![
            Span::styled(format!("  {}", r.keys), t.key()),
            Span::raw(r.description.clone()),
        ]));
    }
    let width = area.width.saturating_sub(4).min(78);
    let height = (table_rows.len() as u16 + 2).min(area.height.saturating_sub(2));
    let visible = height.saturating_sub(2) as usize;
    let hidden = table_rows.len().saturating_sub(visible);
    *scroll = (*scroll).min(hidden);
    let table_rows: Vec<Row> = table_rows.into_iter().skip(*scroll).collect();
    let hint = match (hidden, *scroll) {
        (0, _) => " Esc or ? closes ".to_string(),
        (_, s) if s == hidden => " ↑/k scroll · Esc or ? closes ".to_string(),
        _ => format!(" {} more ↓/j · Esc or ? closes ", hidden - *scroll),
    };
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    let table = Table::new(table_rows, [Constraint::Length(20), Constraint::Min(10)]).block(
        block(t, " Keys ").title_bottom(Line::styled(hint, t.dim()).alignment(Alignment::Right)),
    );
    frame.render_widget(table, popup);
}
