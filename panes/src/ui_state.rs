use crate::Pane;

/// Selections and scroll positions: what the user moved, as opposed to what the data is.
#[derive(Clone, Debug, Default)]
pub struct UiState {
    selected: [usize; Pane::ALL.len()],
    /// Rows the help overlay is scrolled down by (it is taller than small terminals).
    pub help_scroll: usize,
    /// The selected run among the selected experiment's runs.
    pub run_selected: usize,
    /// Dataset image samples, encoded for the terminal.
    pub images: crate::images::ImageCache,
}

impl UiState {
    /// The selected row of `pane`'s list (for the Log pane: lines scrolled up from the end).
    pub fn selected(&self, pane: Pane) -> usize {
        self.selected[pane.index()]
    }

    /// Moves the selection by `delta` rows within a list of `len` rows. In the Log pane,
    /// down means towards the newest line, so the offset from the end shrinks.
    pub fn move_by(&mut self, pane: Pane, delta: isize, len: usize) {
        let delta = if pane == Pane::Log { -delta } else { delta };
        let max = len.saturating_sub(1) as isize;
        let cur = self.selected(pane).min(max as usize) as isize;
        self.selected[pane.index()] = (cur + delta).clamp(0, max.max(0)) as usize;
        if pane == Pane::Runs {
            self.run_selected = 0;
        }
    }

    /// First row (`start`) or last row; in the Log pane the oldest or newest line.
    pub fn jump(&mut self, pane: Pane, start: bool, len: usize) {
        let first = if pane == Pane::Log { !start } else { start };
        self.selected[pane.index()] = if first { 0 } else { len.saturating_sub(1) };
    }

    /// Back to the first row, e.g. when a filter changes what the list holds.
    pub fn reset(&mut self, pane: Pane) {
        self.selected[pane.index()] = 0;
        self.run_selected = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_stays_inside_the_list() {
        let mut ui = UiState::default();
        ui.move_by(Pane::Runs, -1, 3);
        assert_eq!(ui.selected(Pane::Runs), 0);
        ui.move_by(Pane::Runs, 10, 3);
        assert_eq!(ui.selected(Pane::Runs), 2);
        ui.move_by(Pane::Runs, 1, 0);
        assert_eq!(ui.selected(Pane::Runs), 0);
    }

    #[test]
    fn log_scrolls_from_the_end() {
        let mut ui = UiState::default();
        ui.move_by(Pane::Log, -5, 100);
        assert_eq!(ui.selected(Pane::Log), 5);
        ui.jump(Pane::Log, false, 100);
        assert_eq!(ui.selected(Pane::Log), 0);
        ui.jump(Pane::Log, true, 100);
        assert_eq!(ui.selected(Pane::Log), 99);
    }
}
