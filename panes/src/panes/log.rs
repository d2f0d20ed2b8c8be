//! The Log pane: the app's own log, newest at the bottom, following the end unless scrolled.

use super::filter;
use crate::widgets::{block, matches};
use crate::{AppView, LogLevel, LogLine};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn rows(view: &AppView) -> Vec<&LogLine> {
    let f = filter(view);
    view.log.iter().filter(|l| matches(f, &l.message)).collect()
}

/// `from_end`: how many lines the view is scrolled up from the newest.
pub fn draw(frame: &mut Frame, area: Rect, view: &AppView, from_end: usize) {
    let t = &view.theme;
    let rows = rows(view);
    let height = area.height.saturating_sub(2) as usize;
    let end = rows.len().saturating_sub(from_end.min(rows.len()));
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = rows[start..end]
        .iter()
        .map(|l| {
            let (label, style) = match l.level {
                LogLevel::Error => ("ERROR", t.error()),
                LogLevel::Warn => (" WARN", t.warn()),
                LogLevel::Info => (" INFO", t.ok()),
                LogLevel::Debug => ("DEBUG", t.dim()),
                LogLevel::Trace => ("TRACE", t.dim()),
            };
            Line::from(vec![
                Span::styled(format!("{} ", l.time), t.dim()),
                Span::styled(label, style),
                Span::raw(format!(" {}", l.message)),
            ])
        })
        .collect();
    let title = if from_end == 0 {
        format!(" Log ({} lines, following) ", rows.len())
    } else {
        format!(
            " Log ({} lines, {} newer below) ",
            rows.len(),
            from_end.min(rows.len())
        )
    };
    if rows.is_empty() {
        let msg = "Nothing logged yet. The app's own messages (config loads, errors, watcher \
                   events) appear here and in the workspace's logs/descent.log.";
        let p = Paragraph::new(Line::styled(msg, t.dim())).wrap(Wrap { trim: false });
        frame.render_widget(p.block(block(t, title)), area);
        return;
    }
    // No wrapping: one log record per row keeps the scroll arithmetic exact.
    frame.render_widget(Paragraph::new(lines).block(block(t, title)), area);
}
