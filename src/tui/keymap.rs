//! The one keymap table: it dispatches keys and generates the help overlay, so the two cannot
//! disagree.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use descent_panes::{HelpRow, Pane};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    ShowPane(Pane),
    NextPane,
    PrevPane,
    ToggleHelp,
    /// Start typing a filter for the current pane's list.
    EditFilter,
    /// Close the help, stop editing or clear the filter — one step back.
    Back,
    /// Keep the filter, or send the prompt's answer.
    AcceptInput,
    DeleteInputChar,
    /// Runs pane: start a new run of the selected experiment.
    StartRun,
    /// Runs pane: resume the selected run (stopped or died) from its last checkpoint.
    ResumeRun,
    TogglePause,
    StopRun,
    /// Runs pane: move the selected run to the trash (two presses).
    TrashRun,
    CheckpointRun,
    /// Ask for a new peak learning rate for the selected run.
    SetLr,
    PrevRun,
    NextRun,
    ToggleLogY,
    CycleSmoothing,
    ToggleWallTime,
    /// Runs pane: the fourth chart's metric, cycling through the run's scalars.
    CycleMetric,
    /// Mark or unmark the selected run for comparison.
    ToggleMark,
    /// Heatmap of gradient norms or of update/weight ratios.
    ToggleHeatmap,
    /// Runs pane: the gradient probes instead of the training charts, and back.
    ToggleProbes,
    /// Runs pane: compute the selected run's Hessian spectrum (`descent probe hessian`).
    ComputeSpectrum,
    /// Runs pane: start the selected experiment's `[sweep]`.
    StartSweep,
    /// Runs pane: the selected run's sweep ranked, every member's curves overlaid.
    ToggleSweep,
    /// Runs pane: move the selected queued run earlier or later in the local queue.
    QueueEarlier,
    QueueLater,
    /// Datasets/Checkpoints: open the selected tree node, compute a tensor's statistics.
    Open,
    /// Datasets: next/previous page of rows; Checkpoints: move in the tensor tree.
    DetailDown,
    DetailUp,
    /// Datasets: scroll the columns of the statistics and rows tables.
    ColumnsLeft,
    ColumnsRight,
    /// Datasets/Checkpoints: open a local path.
    OpenPath,
    /// Datasets/Checkpoints: download a repository from the hub.
    Pull,
    CancelPull,
    /// Checkpoints: open the selected folder in the Sampler.
    SampleCheckpoint,
    Talk,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
}

/// Which keys a binding listens to: normal use, or while text is typed (a filter, a prompt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Input,
}

#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}
const fn code(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}
const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

pub struct Binding {
    pub mode: Mode,
    /// Heading in the help overlay.
    pub context: &'static str,
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
}

const fn bind(
    mode: Mode,
    context: &'static str,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
) -> Binding {
    Binding {
        mode,
        context,
        keys,
        action,
        help,
    }
}

use Action::*;
use Mode::{Input, Normal};

#[rustfmt::skip]
pub const KEYMAP: &[Binding] = &[
    bind(Normal, "global", &[k('1')], ShowPane(Pane::Runs), "Runs: experiments and their runs"),
    bind(Normal, "global", &[k('2')], ShowPane(Pane::Datasets), "Datasets"),
    bind(Normal, "global", &[k('3')], ShowPane(Pane::Checkpoints), "Checkpoints"),
    bind(Normal, "global", &[k('4')], ShowPane(Pane::Sampler), "Sampler (diffusion)"),
    bind(Normal, "global", &[k('5')], ShowPane(Pane::Rl), "RL (GRPO)"),
    bind(Normal, "global", &[k('6')], ShowPane(Pane::System), "System: CPU, memory, GPUs"),
    bind(Normal, "global", &[k('7')], ShowPane(Pane::Log), "Log: descent's own messages"),
    bind(Normal, "global", &[code(KeyCode::Tab)], NextPane, "next pane"),
    bind(Normal, "global", &[code(KeyCode::BackTab)], PrevPane, "previous pane"),
    bind(Normal, "global", &[k('?')], ToggleHelp, "show or hide this help"),
    bind(Normal, "global", &[k('/')], EditFilter, "filter the current list"),
    bind(Normal, "global", &[code(KeyCode::Esc)], Back, "back: close help, clear the filter"),
    bind(Normal, "global", &[k('q'), ctrl('c')], Quit, "quit (runs keep running)"),
    bind(Normal, "lists", &[k('j'), code(KeyCode::Down)], Down, "next row (Log: newer)"),
    bind(Normal, "lists", &[k('k'), code(KeyCode::Up)], Up, "previous row (Log: older)"),
    bind(Normal, "lists", &[code(KeyCode::PageDown), ctrl('d')], PageDown, "a page down"),
    bind(Normal, "lists", &[code(KeyCode::PageUp), ctrl('u')], PageUp, "a page up"),
    bind(Normal, "lists", &[k('g'), code(KeyCode::Home)], Top, "first row (Log: oldest)"),
    bind(Normal, "lists", &[k('G'), code(KeyCode::End)], Bottom, "last row (Log: newest, follow)"),
    bind(Normal, "runs pane", &[k('r')], StartRun, "start a run of the selected experiment, or queue it when no slot is free (RL: of the GRPO experiment; Sampler: sample the selected model)"),
    bind(Normal, "runs pane", &[k('R')], ResumeRun, "resume the selected run from its checkpoint (queued when no slot is free)"),
    bind(Normal, "runs pane", &[k('p')], TogglePause, "pause or resume the selected run"),
    bind(Normal, "runs pane", &[k('s')], StopRun, "stop the selected run (checkpoints first; Slurm: then scancel), or cancel it while queued"),
    bind(Normal, "runs pane", &[k('X')], TrashRun, "move the selected run to the trash, runs/.trash (press twice; not while it runs or waits)"),
    bind(Normal, "runs pane", &[k('c')], CheckpointRun, "checkpoint the selected run now"),
    bind(Normal, "runs pane", &[k('l')], SetLr, "set the selected run's learning rate"),
    bind(Normal, "runs pane", &[k('[')], PrevRun, "previous (newer) run (Sampler: job)"),
    bind(Normal, "runs pane", &[k(']')], NextRun, "next (older) run (Sampler: job)"),
    bind(Normal, "runs pane", &[k('y')], ToggleLogY, "log or linear y axis"),
    bind(Normal, "runs pane", &[k('e')], CycleSmoothing, "smoothing: 0.6, 0.9, 0.99, off"),
    bind(Normal, "runs pane", &[k('w')], ToggleWallTime, "x axis: step or seconds"),
    bind(Normal, "runs pane", &[k('M')], CycleMetric, "fourth chart: eval accuracy, then each further scalar the run logs (rewards, probes, …)"),
    bind(Normal, "runs pane", &[k('m')], ToggleMark, "mark the run to overlay it on others"),
    bind(Normal, "runs pane", &[k('u')], ToggleHeatmap, "heatmap: gradient norms or update ratios"),
    bind(Normal, "runs pane", &[k('v')], ToggleProbes, "view: gradient probes (coherence, sharpness, EL2N, opposing signals, Hessian) or training charts"),
    bind(Normal, "runs pane", &[k('d')], ComputeSpectrum, "compute the selected run's Hessian spectral density (in the background)"),
    bind(Normal, "runs pane", &[k('W')], StartSweep, "start the selected experiment's [sweep]: every member queued (Slurm: one job array)"),
    bind(Normal, "runs pane", &[k('a')], ToggleSweep, "sweep view: the selected run's sweep ranked by its metric, every member's curves overlaid"),
    bind(Normal, "runs pane", &[k('<')], QueueEarlier, "move the selected queued run earlier in the local queue"),
    bind(Normal, "runs pane", &[k('>')], QueueLater, "move the selected queued run later in the local queue"),
    bind(Normal, "data and checkpoints", &[code(KeyCode::Enter)], Open, "tensor tree: open a group, statistics of a tensor (Sampler: type the setting)"),
    bind(Normal, "data and checkpoints", &[k('J')], DetailDown, "rows: next page; tree: next node (Sampler: next setting; RL: next step's rollouts)"),
    bind(Normal, "data and checkpoints", &[k('K')], DetailUp, "rows: previous page; tree: previous node (Sampler: previous setting; RL: previous step)"),
    bind(Normal, "data and checkpoints", &[k('H')], ColumnsLeft, "rows and statistics: earlier columns (Sampler: smaller value; RL: previous prompt)"),
    bind(Normal, "data and checkpoints", &[k('L')], ColumnsRight, "rows and statistics: later columns (Sampler: larger value; RL: next prompt)"),
    bind(Normal, "data and checkpoints", &[k('o')], OpenPath, "open a dataset, checkpoint or diffusion model by path"),
    bind(Normal, "data and checkpoints", &[k('S')], SampleCheckpoint, "Checkpoints: sample the selected diffusion model or pipeline in the Sampler"),
    bind(Normal, "data and checkpoints", &[k('T')], Talk, "Checkpoints: send a message to the selected language model; the reply streams in"),
    bind(Normal, "data and checkpoints", &[k('P')], Pull, "pull a repository from the Hugging Face hub"),
    bind(Normal, "data and checkpoints", &[k('x')], CancelPull, "cancel the running pull (resumes next time; Sampler: the selected job)"),
    bind(Input, "text input", &[code(KeyCode::Enter)], AcceptInput, "keep the filter / send"),
    bind(Input, "text input", &[code(KeyCode::Esc)], Back, "clear the filter / cancel"),
    bind(Input, "text input", &[code(KeyCode::Backspace)], DeleteInputChar, "delete a character"),
    bind(Input, "text input", &[ctrl('c')], Quit, "quit"),
];

/// The action bound to `ev` in `mode`, if any.
pub fn lookup(mode: Mode, ev: KeyEvent) -> Option<Action> {
    // Shift is part of the character itself ('G', '?') and of BackTab; ignore it there.
    let mods = match ev.code {
        KeyCode::Char(_) | KeyCode::BackTab => ev.modifiers - KeyModifiers::SHIFT,
        _ => ev.modifiers,
    };
    KEYMAP
        .iter()
        .filter(|b| b.mode == mode)
        .find(|b| {
            b.keys
                .iter()
                .any(|key| key.code == ev.code && key.mods == mods)
        })
        .map(|b| b.action)
}

fn key_label(key: &Key) -> String {
    let base = match key.code {
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "Shift-Tab".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Backspace => "Backspace".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        other => format!("{other:?}"),
    };
    if key.mods.contains(KeyModifiers::CONTROL) {
        format!("Ctrl-{base}")
    } else {
        base
    }
}

/// The help overlay's rows, in table order.
pub fn help_rows() -> Vec<HelpRow> {
    KEYMAP
        .iter()
        .map(|b| HelpRow {
            context: b.context.to_string(),
            keys: b.keys.iter().map(key_label).collect::<Vec<_>>().join(", "),
            description: b.help.to_string(),
        })
        .chain(std::iter::once(HelpRow {
            context: "text input".into(),
            keys: "any character".into(),
            description: "typed in (filters match anywhere, any case)".into(),
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn number_keys_pick_panes_and_shift_is_ignored_for_characters() {
        let ev = key(KeyCode::Char('6'), KeyModifiers::NONE);
        assert_eq!(lookup(Mode::Normal, ev), Some(ShowPane(Pane::System)));
        let ev = key(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(lookup(Mode::Normal, ev), Some(Bottom));
        let ev = key(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(lookup(Mode::Normal, ev), Some(PrevPane));
    }

    #[test]
    fn modes_do_not_leak_into_each_other() {
        let q = key(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(lookup(Mode::Normal, q), Some(Quit));
        assert_eq!(
            lookup(Mode::Input, q),
            None,
            "q is text while typing a filter"
        );
        let c = key(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(lookup(Mode::Input, c), Some(Quit));
    }

    #[test]
    fn no_key_is_bound_twice_in_one_mode() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                for ka in a.keys {
                    let clash = a.mode == b.mode
                        && b.keys
                            .iter()
                            .any(|kb| kb.code == ka.code && kb.mods == ka.mods);
                    assert!(
                        !clash,
                        "{} bound to {:?} and {:?}",
                        key_label(ka),
                        a.action,
                        b.action
                    );
                }
            }
        }
    }

    #[test]
    fn the_readme_keymap_matches_the_table() {
        let readme = include_str!("../../README.md");
        for r in help_rows() {
            let row = format!("| {} | {} | {} |", r.context, r.keys, r.description);
            assert!(
                readme.contains(&row),
                "README.md lacks the keymap row `{row}`"
            );
        }
    }

    #[test]
    fn help_lists_every_binding() {
        let rows = help_rows();
        assert_eq!(rows.len(), KEYMAP.len() + 1);
        assert!(
            rows.iter()
                .any(|r| r.keys == "q, Ctrl-c" && r.description.starts_with("quit"))
        );
    }
}
