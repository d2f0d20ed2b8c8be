//! The Checkpoints pane: run checkpoints, opened paths and hub models; for the selected one,
//! its summary, the tensor tree with parameter counts, and a tensor's statistics.

use super::filter;
use crate::view::{CheckpointDetail, CheckpointEntry};
use crate::widgets::{block, empty_state, key_values, matches, truncate_left};
use crate::{AppView, theme::Theme};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, List, ListItem, ListState, Paragraph, Row, Table, TableState, Wrap};

pub fn rows(view: &AppView) -> Vec<&CheckpointEntry> {
    let f = filter(view);
    view.checkpoints
        .entries
        .iter()
        .filter(|e| matches(f, &e.label))
        .collect()
}

pub fn draw(frame: &mut Frame, area: Rect, view: &AppView, selected: usize) {
    let t = &view.theme;
    let c = &view.checkpoints;
    let hub = c
        .hub_cache
        .as_deref()
        .unwrap_or("the Hugging Face hub cache");
    if c.entries.is_empty() {
        let mut lines = vec![
            "No checkpoints yet.".into(),
            format!(
                "Checkpoints that runs write ({}/<experiment>/<run-id>/checkpoints/) and models \
                 downloaded into {hub} appear here. o opens a file or folder by path; P pulls a \
                 model from the hub.",
                c.runs_dir
            ),
        ];
        if let Some(p) = &c.pull {
            lines.push(super::dataset_detail::pull_text(p));
        }
        empty_state(frame, area, t, " Checkpoints ", &lines);
        return;
    }
    let rows = rows(view);
    let [list, detail] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Min(20)]).areas(area);
    let items: Vec<ListItem> = rows
        .iter()
        .map(|e| {
            ListItem::new(Line::from(vec![
                Span::raw(e.label.clone()),
                Span::styled(format!("  {}", e.origin), t.dim()),
            ]))
        })
        .collect();
    let list = super::dataset_detail::pull_box(frame, list, t, c.pull.as_ref());
    let mut state = ListState::default().with_selected((!rows.is_empty()).then_some(selected));
    frame.render_stateful_widget(
        List::new(items)
            .block(block(t, format!(" Checkpoints ({}) ", rows.len())))
            .highlight_style(t.selected()),
        list,
        &mut state,
    );
    let detail = match &c.chat {
        Some(chat) => {
            let [d, talk] =
                Layout::vertical([Constraint::Min(6), Constraint::Percentage(40)]).areas(detail);
            draw_chat(frame, talk, t, chat);
            d
        }
        None => detail,
    };
    match (&c.detail, rows.get(selected)) {
        (Some(d), Some(e)) if d.key == e.source => draw_detail(frame, detail, t, d),
        (_, Some(e)) => {
            let lines = vec![
                ("source".to_string(), e.source.clone()),
                ("".into(), "reading…".into()),
            ];
            frame.render_widget(
                Paragraph::new(key_values(t, &lines, detail.width)).block(block(t, " Checkpoint ")),
                detail,
            );
        }
        _ => frame.render_widget(
            Paragraph::new("No checkpoint matches the filter.").block(block(t, " Checkpoint ")),
            detail,
        ),
    }
}

fn draw_detail(frame: &mut Frame, area: Rect, t: &Theme, d: &CheckpointDetail) {
    // A long path keeps its end (the checkpoint or file) in the title.
    let key = truncate_left(&d.key, area.width.saturating_sub(4) as usize);
    let outer = block(t, format!(" {key} "));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let mut info = d.summary.clone();
    if d.loading {
        info.push(("".into(), "reading the header…".into()));
    }
    if let Some(e) = &d.error {
        info.push(("error".into(), e.clone()));
    }
    let info_h = (info.len() as u16).min(inner.height / 2).max(1);
    let stats_h = if d.stats.is_some() {
        12.min(inner.height / 3)
    } else {
        0
    };
    let [info_area, tree_area, stats_area] = Layout::vertical([
        Constraint::Length(info_h),
        Constraint::Fill(1),
        Constraint::Length(stats_h),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(key_values(t, &info, info_area.width)).wrap(Wrap { trim: false }),
        info_area,
    );
    if !d.tree.is_empty() {
        let rows: Vec<Row> = d
            .tree
            .iter()
            .map(|r| {
                let mark = match r.expanded {
                    Some(true) => "▾ ",
                    Some(false) => "▸ ",
                    None => "  ",
                };
                Row::new([
                    Cell::from(format!("{}{mark}{}", "  ".repeat(r.depth), r.name)),
                    Cell::from(r.what.clone()),
                    Cell::from(r.params.clone()),
                    Cell::from(r.bytes.clone()),
                ])
            })
            .collect();
        let header = Row::new([
            "tensor (Enter: open / statistics, J/K: move)",
            "type",
            "params",
            "bytes",
        ])
        .style(t.dim());
        let widths = [
            Constraint::Fill(2),
            Constraint::Fill(1),
            Constraint::Length(9),
            Constraint::Length(10),
        ];
        let mut state = TableState::default().with_selected(Some(d.tree_selected));
        frame.render_stateful_widget(
            Table::new(rows, widths)
                .header(header)
                .row_highlight_style(t.selected())
                .block(block(t, " Tensors ")),
            tree_area,
            &mut state,
        );
    }
    if let Some(s) = &d.stats {
        let b = block(t, format!(" {} ", s.name));
        let inner = b.inner(stats_area);
        frame.render_widget(b, stats_area);
        let [kv, hist] =
            Layout::horizontal([Constraint::Length(34), Constraint::Fill(1)]).areas(inner);
        let mut lines = s.lines.clone();
        if let Some(e) = &s.error {
            lines.push(("error".into(), e.clone()));
        } else if lines.is_empty() {
            lines.push(("".into(), "computing…".into()));
        }
        frame.render_widget(
            Paragraph::new(key_values(t, &lines, kv.width)).wrap(Wrap { trim: false }),
            kv,
        );
        if !s.histogram.is_empty() && hist.height > 1 {
            let data: Vec<u64> = s.histogram.clone();
            let spark = ratatui::widgets::Sparkline::default()
                .data(&data)
                .style(t.key())
                .block(ratatui::widgets::Block::default().title(Line::styled(
                    format!("histogram {:.4} … {:.4}", s.range.0, s.range.1),
                    t.dim(),
                )));
            frame.render_widget(spark, hist);
        }
    }
}

/// The talk box: the message, then the reply as it streams in.
fn draw_chat(frame: &mut Frame, area: Rect, t: &Theme, chat: &crate::view::ChatView) {
    let title = format!(
        " {} · {}{} (T: another message) ",
        chat.model,
        chat.state,
        if chat.templated {
            ", chat template"
        } else {
            ""
        }
    );
    let mut lines = vec![
        Line::from(vec![
            Span::styled("you  ", t.dim()),
            Span::raw(chat.prompt.clone()),
        ]),
        Line::from(""),
    ];
    lines.extend(chat.reply.lines().map(|l| Line::from(l.to_string())));
    if let Some(e) = &chat.error {
        lines.extend(e.lines().map(|l| Line::styled(l.to_string(), t.error())));
    }
    // Keep the end of a long reply in view.
    let inner_h = area.height.saturating_sub(2) as usize;
    let width = area.width.saturating_sub(2).max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum();
    let scroll = rows.saturating_sub(inner_h) as u16;
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(block(t, title)),
        area,
    );
}
