//! The Runs pane's sweep view: the selected run's sweep, its members ranked by the sweep's
//! metric with the keys each sets, above the charts that overlay their curves.

use crate::chart::fmt_tick;
use crate::widgets::block;
use crate::{AppView, SweepView};
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table, TableState};

/// Rows the ranking wants: its members, a header and the borders.
pub fn height(s: &SweepView) -> u16 {
    s.rows.len() as u16 + 3
}

pub fn draw(frame: &mut Frame, area: Rect, view: &AppView, s: &SweepView) {
    let t = &view.theme;
    // Narrow, the keys matter more than the run ids (the runs table has those).
    let wide = area.width >= 90;
    let rows: Vec<Row> = s
        .rows
        .iter()
        .map(|r| {
            let style = super::experiments::state_style(t, &r.state);
            let mut cells = vec![
                Cell::from(r.rank.map_or("-".into(), |k| format!("#{k}"))),
                Cell::from(r.member.to_string()),
            ];
            if wide {
                cells.push(Cell::from(r.run.clone()));
            }
            cells.extend([
                Cell::from(Span::styled(r.state.clone(), style)),
                Cell::from(r.value.map_or("-".into(), fmt_tick)),
                Cell::from(r.overrides.clone()),
            ]);
            Row::new(cells)
        })
        .collect();
    let selected = s.rows.iter().position(|r| r.selected);
    let mut state = TableState::default().with_selected(selected);
    let best = if s.goal == "max" {
        "best high"
    } else {
        "best low"
    };
    let mut header = vec!["rank", "#"];
    let mut widths = vec![Constraint::Length(5), Constraint::Length(4)];
    if wide {
        // A sweep's runs start in one second: ids like `20261202-024442-12`.
        let run_w = s
            .rows
            .iter()
            .map(|r| r.run.len())
            .max()
            .unwrap_or(0)
            .max(15);
        header.push("run");
        widths.push(Constraint::Length(run_w as u16));
    }
    header.extend(["state", s.metric.as_str(), "overrides"]);
    widths.extend([
        Constraint::Length(9),
        // The metric's whole name ("eval_accuracy") over its values.
        Constraint::Length(s.metric.chars().count().max(10) as u16),
        Constraint::Min(10),
    ]);
    let title = if wide {
        format!(" Sweep {} · {} ({best}) · {} ", s.id, s.metric, s.summary)
    } else {
        format!(" Sweep · {} ({best}) ", s.metric)
    };
    frame.render_stateful_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(t.dim()))
            .row_highlight_style(t.selected())
            .block(block(t, title)),
        area,
        &mut state,
    );
}
