//! One module per pane. Each offers `draw` and, if it shows a list, `len` (rows after the
//! filter), so selection logic and drawing agree on what the list holds.

mod checkpoints;
mod dataset_detail;
mod datasets;
mod experiments;
mod log;
mod probes;
mod rl;
mod sampler;
mod sweep;
mod system;

use crate::{AppView, Pane, UiState};
use ratatui::Frame;
use ratatui::layout::Rect;

pub fn draw_body(frame: &mut Frame, area: Rect, view: &AppView, ui: &mut UiState) {
    let sel = ui.selected(view.pane);
    match view.pane {
        Pane::Runs => {
            experiments::draw_runs(frame, area, view, sel, ui.run_selected, &mut ui.images)
        }
        Pane::Datasets => datasets::draw(frame, area, view, sel, &mut ui.images),
        Pane::Checkpoints => checkpoints::draw(frame, area, view, sel),
        Pane::Sampler => sampler::draw(frame, area, view, sel, &mut ui.images),
        Pane::Rl => rl::draw(frame, area, view, sel, ui.run_selected),
        Pane::System => system::draw(frame, area, view),
        Pane::Log => log::draw(frame, area, view, sel),
    }
}

/// Rows in `pane`'s list as the user sees it (after the filter).
pub fn list_len(view: &AppView, pane: Pane) -> usize {
    match pane {
        Pane::Runs => experiments::rows(view, None).len(),
        Pane::Datasets => datasets::rows(view).len(),
        Pane::Checkpoints => checkpoints::rows(view).len(),
        Pane::Sampler => sampler::rows(view).len(),
        Pane::Rl => experiments::rows(view, Some(experiments::RL.kind)).len(),
        Pane::System => 0,
        Pane::Log => log::rows(view).len(),
    }
}

/// The pane whose experiment list the run keys act on: the RL pane's (GRPO experiments)
/// while it shows, else the Runs pane's (all of them).
fn experiment_list(view: &AppView) -> (Pane, Option<&'static str>) {
    if view.pane == Pane::Rl {
        (Pane::Rl, Some(experiments::RL.kind))
    } else {
        (Pane::Runs, None)
    }
}

/// The experiment selected in the Runs pane (in the RL pane, there).
pub fn selected_experiment<'a>(
    view: &'a AppView,
    ui: &UiState,
) -> Option<&'a crate::ExperimentRow> {
    let (pane, kind) = experiment_list(view);
    experiments::rows(view, kind)
        .get(ui.selected(pane))
        .copied()
}

/// The runs of the selected experiment, newest first.
pub fn selected_runs<'a>(view: &'a AppView, ui: &UiState) -> Vec<&'a crate::RunRow> {
    selected_experiment(view, ui)
        .map(|e| experiments::runs_of(view, &e.name))
        .unwrap_or_default()
}

/// The run selected in the Runs pane (in the RL pane, there).
pub fn selected_run<'a>(view: &'a AppView, ui: &UiState) -> Option<&'a crate::RunRow> {
    let runs = selected_runs(view, ui);
    runs.get(ui.run_selected.min(runs.len().saturating_sub(1)))
        .copied()
}

/// The dataset selected in the Datasets pane as a source: a path the user opened,
/// `builtin:NAME`, `local:FILE` (in the data folder) or `hub:ORG/NAME`.
pub fn selected_dataset(view: &AppView, ui: &UiState) -> Option<String> {
    datasets::rows(view)
        .get(ui.selected(Pane::Datasets))
        .map(|r| match r {
            datasets::Row::Opened(path) => path.to_string(),
            datasets::Row::Builtin((name, ..)) => format!("builtin:{name}"),
            datasets::Row::Local { name, .. } => format!("local:{name}"),
            datasets::Row::Hub(repo) => format!("hub:{repo}"),
        })
}

/// The checkpoint selected in the Checkpoints pane.
pub fn selected_checkpoint<'a>(
    view: &'a AppView,
    ui: &UiState,
) -> Option<&'a crate::CheckpointEntry> {
    checkpoints::rows(view)
        .get(ui.selected(Pane::Checkpoints))
        .copied()
}

/// The filter text of the current pane, if any.
fn filter(view: &AppView) -> Option<&str> {
    view.filter.as_ref().map(|f| f.text.as_str())
}
