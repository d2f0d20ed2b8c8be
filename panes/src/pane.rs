/// The panes of the TUI, in tab order. Number keys 1–7 pick them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pane {
    #[default]
    Runs,
    Datasets,
    Checkpoints,
    Sampler,
    Rl,
    System,
    Log,
}

impl Pane {
    pub const ALL: [Pane; 7] = [
        Pane::Runs,
        Pane::Datasets,
        Pane::Checkpoints,
        Pane::Sampler,
        Pane::Rl,
        Pane::System,
        Pane::Log,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Runs => "Runs",
            Pane::Datasets => "Datasets",
            Pane::Checkpoints => "Checkpoints",
            Pane::Sampler => "Sampler",
            Pane::Rl => "RL",
            Pane::System => "System",
            Pane::Log => "Log",
        }
    }

    pub fn index(self) -> usize {
        Pane::ALL.iter().position(|&p| p == self).unwrap_or(0)
    }

    /// The pane `delta` steps along the tab order, wrapping around.
    pub fn cycle(self, delta: isize) -> Pane {
        let n = Pane::ALL.len() as isize;
        Pane::ALL[(self.index() as isize + delta).rem_euclid(n) as usize]
    }

    /// Whether the pane shows a selectable list (and so takes the movement keys).
    pub fn has_list(self) -> bool {
        !matches!(self, Pane::System)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycling_wraps_both_ways() {
        assert_eq!(Pane::Runs.cycle(1), Pane::Datasets);
        assert_eq!(Pane::Log.cycle(1), Pane::Runs);
        assert_eq!(Pane::Runs.cycle(-1), Pane::Log);
    }
}
