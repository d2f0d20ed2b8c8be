//! The right side of the Datasets pane: what the selected dataset holds.

use crate::theme::Theme;
use crate::view::{DatasetDetail, PullView};
use crate::widgets::{block, cols, key_values, truncate_left};
use crate::{ImageCache, human_bytes};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};

/// Image cells: columns × rows of terminal cells per sample (plus a label line).
const IMG_W: u16 = 10;
const IMG_H: u16 = 5;

/// The hub pull's progress under a pane's list; returns the list's remaining area.
pub fn pull_box(frame: &mut Frame, area: Rect, t: &Theme, pull: Option<&PullView>) -> Rect {
    let Some(p) = pull else { return area };
    let [list, bx] = Layout::vertical([Constraint::Fill(1), Constraint::Length(5)]).areas(area);
    frame.render_widget(
        Paragraph::new(pull_text(p))
            .wrap(Wrap { trim: false })
            .block(block(t, " Hub pull ")),
        bx,
    );
    list
}

pub fn pull_text(p: &PullView) -> String {
    if p.state == "downloading" {
        let pct = if p.total > 0 {
            100.0 * p.done as f64 / p.total as f64
        } else {
            0.0
        };
        let eta = if p.bytes_per_s > 0.0 && p.total > p.done {
            format!("{:.0}s", (p.total - p.done) as f64 / p.bytes_per_s)
        } else {
            "—".into()
        };
        format!(
            "{}: file {}/{} {}\n{}/{} ({pct:.0}%) {}/s ETA {eta}\nx cancels",
            p.repo,
            p.files_done + 1,
            p.files.max(1),
            p.file,
            human_bytes(p.done),
            human_bytes(p.total),
            human_bytes(p.bytes_per_s as u64)
        )
    } else {
        format!("{}: {}", p.repo, p.state)
    }
}

pub fn draw(frame: &mut Frame, area: Rect, t: &Theme, d: &DatasetDetail, images: &mut ImageCache) {
    // A long path keeps its end (the checkpoint or file) in the title.
    let key = truncate_left(&d.key, area.width.saturating_sub(4) as usize);
    let outer = block(t, format!(" {key} "));
    let inner = outer.inner(area);
    frame.render_widget(outer, area);
    let mut info = d.info.clone();
    if d.loading {
        info.push(("".into(), "reading…".into()));
    }
    if let Some(e) = &d.error {
        info.push(("error".into(), e.clone()));
    }
    for n in &d.notes {
        info.push(("note".into(), n.clone()));
    }
    let info_h = (info.len() as u16).min(inner.height / 3).max(1);
    let img_h = if d.images.is_empty() { 0 } else { IMG_H + 1 };
    let [info_area, img_area, mid, rows_area] = Layout::vertical([
        Constraint::Length(info_h),
        Constraint::Length(img_h),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(key_values(t, &info, info_area.width)).wrap(Wrap { trim: false }),
        info_area,
    );
    if !d.images.is_empty() {
        let n = (img_area.width / (IMG_W + 1)) as usize;
        for (i, img) in d.images.iter().take(n).enumerate() {
            let x = img_area.x + i as u16 * (IMG_W + 1);
            let pic = Rect::new(x, img_area.y, IMG_W, IMG_H);
            images.draw(frame, pic, &d.key, i, img);
            let label = Rect::new(x, img_area.y + IMG_H, IMG_W, 1);
            frame.render_widget(
                Paragraph::new(Span::styled(img.label.clone(), t.dim())),
                label,
            );
        }
    }
    let has_classes = !d.classes.is_empty();
    let [hist, stats] = Layout::horizontal([
        Constraint::Length(if has_classes {
            (mid.width / 5).max(24)
        } else {
            0
        }),
        Constraint::Fill(1),
    ])
    .areas(mid);
    if has_classes {
        draw_histogram(frame, hist, t, d);
    }
    let (keep, name_w) = stats_columns(d, stats.width.saturating_sub(2));
    let header = Row::new(keep.iter().map(|&i| STATS_HEADER[i])).style(t.dim());
    let rows: Vec<Row> = d
        .columns
        .iter()
        .skip(d.col_offset)
        .map(|c| Row::new(keep.iter().map(|&i| Cell::from(c[i].clone()))))
        .collect();
    let widths: Vec<Constraint> = keep
        .iter()
        .map(|&i| Constraint::Length(if i == 0 { name_w } else { STATS_WIDTH[i] }))
        .collect();
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(block(t, columns_title(d))),
        stats,
    );
    draw_rows(frame, rows_area, t, d);
}

fn draw_histogram(frame: &mut Frame, area: Rect, t: &Theme, d: &DatasetDetail) {
    let title = format!(
        " Classes: {} ({}) ",
        d.label.as_deref().unwrap_or("label"),
        d.classes.len()
    );
    let b = block(t, title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let top = d.classes.first().map_or(1, |c| c.1).max(1);
    let name_w = d
        .classes
        .iter()
        .map(|c| cols(&c.0))
        .max()
        .unwrap_or(1)
        .min(12);
    let count_w = top.to_string().len();
    let bar_w = inner.width.saturating_sub((name_w + count_w + 2) as u16) as f64;
    let fit = inner.height as usize;
    let more = d.classes.len().saturating_sub(fit);
    let shown = if more > 0 { fit.saturating_sub(1) } else { fit };
    let mut lines: Vec<Line> = d
        .classes
        .iter()
        .take(shown)
        .map(|(name, n)| {
            let name: String = name.chars().take(name_w).collect();
            let len = ((*n as f64 / top as f64) * bar_w).round().max(1.0) as usize;
            Line::from(vec![
                Span::raw(format!("{name:>name_w$} ")),
                Span::styled("█".repeat(len), t.key()),
                Span::styled(format!(" {n}"), t.dim()),
            ])
        })
        .collect();
    if more > 0 {
        let text = d
            .classes_more
            .clone()
            .unwrap_or_else(|| format!("… {} more classes", more + 1));
        lines.push(Line::styled(text, t.dim()));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_rows(frame: &mut Frame, area: Rect, t: &Theme, d: &DatasetDetail) {
    let title = if d.rows.is_empty() {
        " Rows ".to_string()
    } else {
        format!(
            " Rows {}–{} (J/K: page) ",
            d.row_start,
            d.row_start + d.rows.len() as u64 - 1
        )
    };
    let b = block(t, title);
    let inner = b.inner(area);
    frame.render_widget(b, area);
    let (first, widths) = row_columns(d, inner.width);
    let header = Row::new(
        std::iter::once("#".to_string())
            .chain(d.header.iter().skip(first).take(widths.len()).cloned())
            .map(Cell::from),
    )
    .style(t.dim());
    let rows: Vec<Row> = d
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Row::new(
                std::iter::once((d.row_start + i as u64).to_string())
                    .chain(
                        r.iter()
                            .skip(first)
                            .take(widths.len())
                            .map(|c| c.replace('\n', "⏎")),
                    )
                    .map(Cell::from),
            )
        })
        .collect();
    let number_w = (d.row_start + d.rows.len() as u64).to_string().len().max(3) as u16;
    let widths: Vec<Constraint> = std::iter::once(Constraint::Length(number_w))
        .chain(widths.iter().map(|&w| Constraint::Length(w)))
        .collect();
    frame.render_widget(Table::new(rows, widths).header(header), inner);
}

/// Widest a rows-table column or a statistics name gets; longer ones are cut.
const MAX_COL: usize = 24;

const STATS_HEADER: [&str; 8] = [
    "column", "type", "nulls", "min", "max", "mean", "std", "uniq",
];
/// Numbers come formatted to at most 7 characters (chart::fmt_tick).
const STATS_WIDTH: [u16; 8] = [0, 5, 5, 7, 7, 7, 7, 6];

/// Which statistics columns to show in `width` cells, and the names' width: the names get
/// the width they need (up to [`MAX_COL`]; at least 9), then min, max, mean, type, nulls,
/// std and uniq join while they fit. A narrow screen shortens the names only as far as 9 to
/// keep min, max and mean.
fn stats_columns(d: &DatasetDetail, width: u16) -> (Vec<usize>, u16) {
    let wanted = d
        .columns
        .iter()
        .skip(d.col_offset)
        .map(|c| cols(&c[0]))
        .max()
        .unwrap_or(6)
        .clamp(9, MAX_COL) as u16;
    // Each column after the name takes its width and a one-cell gap.
    let cost = |i: usize| STATS_WIDTH[i] + 1;
    let essential: u16 = [3, 4, 5].iter().map(|&i| cost(i)).sum();
    let name_w = wanted.min(width.saturating_sub(essential).max(9));
    let mut left = width.saturating_sub(name_w);
    let mut keep = vec![0];
    for i in [3, 4, 5, 1, 2, 6, 7] {
        if cost(i) <= left {
            keep.push(i);
            left -= cost(i);
        }
    }
    // The table's own order: name, type, nulls, min, max, mean, std, uniq.
    keep.sort_unstable();
    (keep, name_w)
}

/// From `d.col_offset` on, the columns of the rows table that fit in `width` cells, each as
/// wide as its name or widest value on the page (at most [`MAX_COL`]).
fn row_columns(d: &DatasetDetail, width: u16) -> (usize, Vec<u16>) {
    let first = d.col_offset;
    let number_w = (d.row_start + d.rows.len() as u64).to_string().len().max(3);
    let mut left = (width as usize).saturating_sub(number_w + 1);
    let mut widths = Vec::new();
    for (i, name) in d.header.iter().enumerate().skip(first) {
        let widest = d
            .rows
            .iter()
            .filter_map(|r| r.get(i))
            .map(|c| cols(c))
            .chain([cols(name)])
            .max()
            .unwrap_or(1)
            .clamp(1, MAX_COL);
        // A column that does not fit whole is left out, unless none fits at all.
        if widest + 1 > left && !widths.is_empty() {
            break;
        }
        widths.push(widest.min(left.max(1)) as u16);
        left = left.saturating_sub(widest + 1);
    }
    (first, widths)
}

fn columns_title(d: &DatasetDetail) -> String {
    if d.col_offset == 0 {
        format!(" Columns ({}) ", d.columns.len())
    } else {
        format!(
            " Columns ({}, from {}; H/L scroll) ",
            d.columns.len(),
            d.col_offset + 1
        )
    }
}
