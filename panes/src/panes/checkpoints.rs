//! The Checkpoints pane: models in the hub cache (run checkpoints join them with the engine).

use super::filter;
use crate::AppView;
use crate::widgets::{block, empty_state, key_values, matches};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};

pub fn rows(view: &AppView) -> Vec<&str> {
    let f = filter(view);
    view.checkpoints
        .hub_models
        .iter()
        .filter(|m| matches(f, m))
        .map(String::as_str)
        .collect()
}

pub fn draw(frame: &mut Frame, area: Rect, view: &AppView, selected: usize) {
    let t = &view.theme;
    let c = &view.checkpoints;
    let hub = c
        .hub_cache
        .as_deref()
        .unwrap_or("the Hugging Face hub cache");
    if c.hub_models.is_empty() {
        empty_state(
            frame,
            area,
            t,
            " Checkpoints ",
            &[
                "No checkpoints yet.".into(),
                format!(
                    "Checkpoints that runs write ({}/<experiment>/<run-id>/checkpoints/) and \
                     models downloaded into {hub} appear here.",
                    c.runs_dir
                ),
            ],
        );
        return;
    }
    let rows = rows(view);
    let [list, detail] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Min(20)]).areas(area);
    let items: Vec<ListItem> = rows.iter().map(|m| ListItem::new(m.to_string())).collect();
    let mut state = ListState::default().with_selected((!rows.is_empty()).then_some(selected));
    frame.render_stateful_widget(
        List::new(items)
            .block(block(t, format!(" Hub models ({}) ", rows.len())))
            .highlight_style(t.selected()),
        list,
        &mut state,
    );
    let details: Vec<(String, String)> = match rows.get(selected) {
        None => vec![("".into(), "No model matches the filter.".into())],
        Some(repo) => vec![
            ("repository".into(), repo.to_string()),
            (
                "where".into(),
                format!("{hub}/models--{}", repo.replacen('/', "--", 1)),
            ),
        ],
    };
    frame.render_widget(
        Paragraph::new(key_values(t, &details, detail.width.saturating_sub(2)))
            .wrap(Wrap { trim: false })
            .block(block(t, " Model ")),
        detail,
    );
}
