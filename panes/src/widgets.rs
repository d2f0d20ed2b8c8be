//! Small pieces shared by the panes.

use crate::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Wrap};

/// A bordered block with a title in the theme's title style.
pub fn block<'a>(theme: &Theme, title: impl Into<Line<'a>>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(theme.dim())
        .title(title.into().style(theme.title()))
}

/// What an empty pane says: what will appear there and how to get it.
pub fn empty_state(frame: &mut Frame, area: Rect, theme: &Theme, title: &str, lines: &[String]) {
    let mut text = Text::default();
    for (i, l) in lines.iter().enumerate() {
        let style = if i == 0 { theme.base() } else { theme.dim() };
        text.lines.push(Line::styled(l.clone(), style));
        text.lines.push(Line::default());
    }
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(block(theme, title.to_string())),
        area,
    );
}

/// Case-insensitive substring match; an absent or empty filter matches everything.
pub fn matches(filter: Option<&str>, haystack: &str) -> bool {
    match filter {
        None | Some("") => true,
        Some(f) => haystack.to_lowercase().contains(&f.to_lowercase()),
    }
}

/// Keeps the end of `s` (the informative part of a path) within `width` columns.
pub fn truncate_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let tail: String = s.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

/// `key value` pairs as aligned lines.
pub fn key_values(theme: &Theme, rows: &[(String, String)]) -> Vec<Line<'static>> {
    let w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<w$}  "), theme.dim()),
                Span::raw(v.clone()),
            ])
        })
        .collect()
}

/// A text bar like `████░░░░` for a fraction in [0, 1].
pub fn bar(fraction: f64, width: usize, style: Style) -> Span<'static> {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let full = (f * width as f64).round() as usize;
    Span::styled(
        format!("{}{}", "█".repeat(full), "░".repeat(width - full)),
        style,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_ignore_case() {
        assert!(matches(Some("MLP"), "digits-mlp"));
        assert!(!matches(Some("cnn"), "digits-mlp"));
        assert!(matches(None, "x") && matches(Some(""), "x"));
    }

    #[test]
    fn long_paths_keep_their_end() {
        assert_eq!(truncate_left("/home/me/ws", 20), "/home/me/ws");
        assert_eq!(truncate_left("/home/me/ws", 6), "…me/ws");
    }
}
