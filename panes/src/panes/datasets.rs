//! The Datasets pane: files in the workspace's data folder and datasets in the hub cache.

use super::filter;
use crate::widgets::{block, empty_state, key_values, matches};
use crate::{AppView, human_bytes};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};

pub enum Row<'a> {
    /// A file or folder the user opened by path (`o`).
    Opened(&'a str),
    Builtin(&'a (String, String, String)),
    Local {
        name: &'a str,
        bytes: Option<u64>,
    },
    Hub(&'a str),
}

pub fn rows(view: &AppView) -> Vec<Row<'_>> {
    let d = &view.datasets;
    let f = filter(view);
    let opened = d
        .opened
        .iter()
        .filter(|p| matches(f, p))
        .map(|p| Row::Opened(p));
    let builtin = d
        .builtins
        .iter()
        .filter(|b| matches(f, &b.0))
        .map(Row::Builtin);
    let local = d
        .files
        .iter()
        .filter(|r| matches(f, &r.name))
        .map(|r| Row::Local {
            name: &r.name,
            bytes: r.bytes,
        });
    let hub = d
        .hub_datasets
        .iter()
        .filter(|r| matches(f, r))
        .map(|r| Row::Hub(r));
    opened.chain(builtin).chain(local).chain(hub).collect()
}

/// The list keeps to about a quarter of the screen: the detail needs the room.
fn list_width(width: u16) -> u16 {
    (width * 28 / 100).clamp(26, 40).min(width / 2)
}

/// What a file probably is, from its name; folders may hold images, one subfolder per class.
pub fn format_of(name: &str, folder: bool) -> &'static str {
    if folder {
        return "folder (image folder when it holds one subfolder per class)";
    }
    let lower = name.to_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or("");
    match ext {
        "csv" => "CSV table",
        "tsv" => "TSV table",
        "jsonl" | "ndjson" => "JSON Lines",
        "parquet" => "Parquet",
        "safetensors" => "safetensors tensors",
        "gz" if lower.contains("-ubyte") => "IDX (MNIST format), gzip",
        _ if lower.contains("-ubyte") || ext.starts_with("idx") => "IDX (MNIST format)",
        "png" | "jpg" | "jpeg" => "image",
        _ => "unrecognised format",
    }
}

pub fn draw(
    frame: &mut Frame,
    area: Rect,
    view: &AppView,
    selected: usize,
    images: &mut crate::ImageCache,
) {
    let t = &view.theme;
    let d = &view.datasets;
    let hub = d
        .hub_cache
        .as_deref()
        .unwrap_or("the Hugging Face hub cache");
    if d.builtins.is_empty()
        && d.files.is_empty()
        && d.hub_datasets.is_empty()
        && d.opened.is_empty()
    {
        empty_state(
            frame,
            area,
            t,
            " Datasets ",
            &[
                format!("No datasets in {} or in {hub}.", d.data_dir),
                format!(
                    "Put CSV/TSV, JSON Lines, Parquet, IDX files or image folders in {}; they \
                     appear here as soon as they land. Datasets downloaded into the hub cache \
                     appear too.",
                    d.data_dir
                ),
            ],
        );
        return;
    }
    let rows = rows(view);
    let [list, detail] = Layout::horizontal([
        Constraint::Length(list_width(area.width)),
        Constraint::Min(20),
    ])
    .areas(area);
    let items: Vec<ListItem> = rows
        .iter()
        .map(|r| match r {
            Row::Opened(path) => ListItem::new(Line::from(vec![
                Span::raw(
                    std::path::Path::new(path)
                        .file_name()
                        .map_or(path.to_string(), |n| n.to_string_lossy().into_owned()),
                ),
                Span::styled("  opened", t.dim()),
            ])),
            Row::Builtin((name, ..)) => ListItem::new(Line::from(vec![
                Span::raw(name.to_string()),
                Span::styled("  built in", t.dim()),
            ])),
            Row::Local { name, bytes } => ListItem::new(Line::from(vec![
                Span::raw(name.to_string()),
                Span::styled(
                    format!("  {}", bytes.map_or("folder".into(), human_bytes)),
                    t.dim(),
                ),
            ])),
            Row::Hub(repo) => ListItem::new(Line::from(vec![
                Span::raw(repo.to_string()),
                Span::styled("  hub cache", t.dim()),
            ])),
        })
        .collect();
    let list = super::dataset_detail::pull_box(frame, list, t, d.pull.as_ref());
    let mut state = ListState::default().with_selected((!rows.is_empty()).then_some(selected));
    frame.render_stateful_widget(
        List::new(items)
            .block(block(t, format!(" Datasets ({}) ", rows.len())))
            .highlight_style(t.selected()),
        list,
        &mut state,
    );
    if let Some(d) = &d.detail
        && rows.get(selected).is_some()
    {
        super::dataset_detail::draw(frame, detail, t, d, images);
        return;
    }
    let details: Vec<(String, String)> = match rows.get(selected) {
        None => vec![("".into(), "No dataset matches the filter.".into())],
        Some(Row::Builtin((name, description, params))) => vec![
            ("dataset".into(), description.clone()),
            (
                "use".into(),
                format!("source = \"builtin:{name}\" in an experiment's [data]"),
            ),
            (
                "params".into(),
                if params.is_empty() {
                    "none".into()
                } else {
                    params.clone()
                },
            ),
            (
                "local files".into(),
                format!(
                    "files in {} train too: source = \"FILE\" (CSV, TSV, JSON Lines, Parquet, \
                     safetensors, IDX, image folders), target = \"COLUMN\"",
                    d.data_dir
                ),
            ),
        ],
        Some(Row::Local { name, bytes }) => vec![
            ("file".into(), format!("{}/{name}", d.data_dir)),
            ("size".into(), bytes.map_or("folder".into(), human_bytes)),
            ("format".into(), format_of(name, bytes.is_none()).into()),
        ],
        Some(Row::Opened(path)) => vec![("path".into(), path.to_string())],
        Some(Row::Hub(repo)) => vec![
            ("repository".into(), repo.to_string()),
            (
                "where".into(),
                format!("{hub}/datasets--{}", repo.replacen('/', "--", 1)),
            ),
        ],
    };
    frame.render_widget(
        Paragraph::new(key_values(t, &details, detail.width.saturating_sub(2)))
            .wrap(Wrap { trim: false })
            .block(block(t, " Dataset ")),
        detail,
    );
}

#[cfg(test)]
mod tests {
    use super::format_of;

    #[test]
    fn formats_are_guessed_from_names() {
        assert_eq!(format_of("train.CSV", false), "CSV table");
        assert_eq!(
            format_of("train-images-idx3-ubyte", false),
            "IDX (MNIST format)"
        );
        assert_eq!(format_of("x.parquet", false), "Parquet");
        assert!(format_of("cats", true).starts_with("folder"));
    }
}
