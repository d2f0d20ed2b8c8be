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

/// Columns `s` takes on screen: a combining mark (the bar of `γ̄`) takes none.
pub fn cols(s: &str) -> usize {
    Span::raw(s).width()
}

/// `s` padded with spaces to `width` columns on screen (`format!`'s `{:<w$}` counts chars).
pub fn pad(s: &str, width: usize) -> String {
    format!("{s}{}", " ".repeat(width.saturating_sub(cols(s))))
}

/// Keeps the start of `s` (a message says what it is about first) within `width` columns.
pub fn truncate_right(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let head: String = s.chars().take(width - 1).collect();
    format!("{head}…")
}

/// `key value` pairs as aligned lines, values word-wrapped to `width` columns with their
/// continuation lines indented under the value column.
pub fn key_values(theme: &Theme, rows: &[(String, String)], width: u16) -> Vec<Line<'static>> {
    let kw = rows.iter().map(|(k, _)| cols(k)).max().unwrap_or(0);
    let vw = (width as usize).saturating_sub(kw + 2).max(10);
    let mut out = Vec::new();
    for (k, v) in rows {
        for (i, chunk) in wrap(v, vw).into_iter().enumerate() {
            let key = if i == 0 { k.as_str() } else { "" };
            out.push(Line::from(vec![
                Span::styled(format!("{}  ", pad(key, kw)), theme.dim()),
                Span::raw(chunk),
            ]));
        }
    }
    out
}

/// Greedy word wrap; words longer than `width` are split.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let cur = lines.last_mut().expect("never empty");
            let used = cur.chars().count();
            let sep = usize::from(used > 0);
            if used + sep + word.len() <= width {
                if sep == 1 {
                    cur.push(' ');
                }
                cur.extend(word);
                break;
            }
            if used > 0 {
                lines.push(String::new());
                continue;
            }
            let rest = word.split_off(width);
            cur.extend(word);
            lines.push(String::new());
            word = rest;
        }
    }
    lines
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
    fn wrapping_keeps_words_whole_unless_they_cannot_fit() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("", 5), [""]);
    }

    #[test]
    fn long_paths_keep_their_end() {
        assert_eq!(truncate_left("/home/me/ws", 20), "/home/me/ws");
        assert_eq!(truncate_left("/home/me/ws", 6), "…me/ws");
    }
}
