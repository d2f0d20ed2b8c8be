//! The app's state machine: events in, view updates out. No terminal I/O here, so it can be
//! driven by tests.

use super::keymap::{self, Action, Mode};
use super::views;
use crate::logging::LogRing;
use crate::watcher::Update;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use descent_panes::{AppView, FilterView, Pane, SystemView, Theme, UiState, list_len};
use std::sync::Arc;
use std::sync::mpsc::Sender;

/// Everything that can wake the UI.
pub enum AppEvent {
    Key(KeyEvent),
    Resize,
    Workspace(Box<Update>),
    System(Box<SystemView>),
    /// New lines in the log ring.
    Log,
    /// The input reader failed; the UI cannot go on.
    InputClosed(String),
}

pub struct App {
    pub view: AppView,
    pub ui: UiState,
    pub quit: bool,
    log: Arc<LogRing>,
    /// Asks the system sampler for a fresh sample.
    sample: Option<Sender<()>>,
    /// The device spec of the workspace and what `auto` resolved to, for the status bar.
    device_spec: String,
    auto_device: Option<String>,
}

/// Rows a page key moves.
const PAGE: isize = 10;

impl App {
    pub fn new(workspace: String, log: Arc<LogRing>, sample: Option<Sender<()>>) -> App {
        let mut view = AppView {
            theme: Theme::from_env(),
            ..AppView::default()
        };
        view.status.workspace = workspace;
        view.status.watch_mode = "starting".into();
        App {
            view,
            ui: UiState::default(),
            quit: false,
            log,
            sample,
            device_spec: "auto".into(),
            auto_device: None,
        }
    }

    /// Applies one event; returns whether the screen needs redrawing.
    pub fn handle(&mut self, ev: AppEvent) -> bool {
        match ev {
            AppEvent::Key(key) => {
                self.on_key(key);
                true
            }
            AppEvent::Resize => true,
            AppEvent::Workspace(update) => {
                self.on_workspace(*update);
                true
            }
            AppEvent::System(sample) => {
                self.auto_device = Some(sample.auto_device.clone());
                self.view.system = *sample;
                self.refresh_device_label();
                true
            }
            AppEvent::Log => {
                if self.view.pane == Pane::Log {
                    self.view.log = self.log.snapshot();
                    true
                } else {
                    false
                }
            }
            AppEvent::InputClosed(why) => {
                tracing::error!("terminal input closed: {why}");
                self.quit = true;
                false
            }
        }
    }

    /// Called when nothing happened for a tick: keep live panes live.
    pub fn tick(&mut self) {
        if self.view.pane == Pane::System {
            self.request_sample();
        }
    }

    fn request_sample(&self) {
        if let Some(tx) = &self.sample {
            let _ = tx.send(());
        }
    }

    fn on_workspace(&mut self, u: Update) {
        let ws = &u.workspace;
        self.view.workspace = views::workspace_view(ws);
        self.view.datasets = views::datasets_view(ws, &u.inventory);
        self.view.checkpoints = views::checkpoints_view(ws, &u.inventory);
        let s = &mut self.view.status;
        s.config_errors = self.view.workspace.errors.len();
        s.alert = ws
            .unavailable
            .as_ref()
            .map(|_| "workspace folder missing".to_string());
        s.watch_mode = u.mode.to_string();
        self.device_spec = ws.settings.device.to_string();
        self.refresh_device_label();
    }

    fn refresh_device_label(&mut self) {
        self.view.status.device = match (&self.device_spec[..], &self.auto_device) {
            ("auto", Some(d)) => format!("{d} (auto)"),
            (spec, _) => spec.to_string(),
        };
    }

    fn mode(&self) -> Mode {
        match &self.view.filter {
            Some(f) if f.editing => Mode::Filter,
            _ => Mode::Normal,
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) {
        let mode = self.mode();
        match keymap::lookup(mode, key) {
            Some(action) => self.apply(action),
            None if mode == Mode::Filter => {
                if let KeyCode::Char(c) = key.code
                    && !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                {
                    self.edit_filter(|t| t.push(c));
                }
            }
            None => {}
        }
    }

    fn edit_filter(&mut self, f: impl FnOnce(&mut String)) {
        if let Some(filter) = self.view.filter.as_mut() {
            f(&mut filter.text);
        }
        self.ui.reset(self.view.pane);
    }

    pub fn apply(&mut self, action: Action) {
        // While help is open it is the only thing on screen: it takes only close and quit.
        if self.view.help.is_some() {
            let scroll = &mut self.ui.help_scroll;
            match action {
                Action::ToggleHelp | Action::Back => self.view.help = None,
                Action::Quit => self.quit = true,
                Action::Down => *scroll += 1,
                Action::Up => *scroll = scroll.saturating_sub(1),
                Action::PageDown => *scroll += PAGE as usize,
                Action::PageUp => *scroll = scroll.saturating_sub(PAGE as usize),
                _ => {}
            }
            return;
        }
        let pane = self.view.pane;
        let len = list_len(&self.view, pane);
        match action {
            Action::Quit => self.quit = true,
            Action::ShowPane(p) => self.show(p),
            Action::NextPane => self.show(pane.cycle(1)),
            Action::PrevPane => self.show(pane.cycle(-1)),
            Action::ToggleHelp => {
                self.ui.help_scroll = 0;
                self.view.help = Some(keymap::help_rows());
            }
            Action::EditFilter if pane.has_list() => {
                let text = self.view.filter.take().map(|f| f.text).unwrap_or_default();
                self.view.filter = Some(FilterView {
                    text,
                    editing: true,
                });
            }
            Action::EditFilter => {}
            Action::Back => {
                if self.view.filter.take().is_some() {
                    self.ui.reset(pane);
                }
            }
            Action::AcceptFilter => match self.view.filter.as_mut() {
                Some(f) if f.text.is_empty() => self.view.filter = None,
                Some(f) => f.editing = false,
                None => {}
            },
            Action::DeleteFilterChar => self.edit_filter(|t| {
                t.pop();
            }),
            Action::Up => self.ui.move_by(pane, -1, len),
            Action::Down => self.ui.move_by(pane, 1, len),
            Action::PageUp => self.ui.move_by(pane, -PAGE, len),
            Action::PageDown => self.ui.move_by(pane, PAGE, len),
            Action::Top => self.ui.jump(pane, true, len),
            Action::Bottom => self.ui.jump(pane, false, len),
        }
    }

    fn show(&mut self, pane: Pane) {
        if pane == self.view.pane {
            return;
        }
        self.view.pane = pane;
        // A filter belongs to the list it was typed for.
        self.view.filter = None;
        match pane {
            Pane::Log => self.view.log = self.log.snapshot(),
            Pane::System => self.request_sample(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEvent;

    fn app() -> App {
        App::new("/ws".into(), Arc::new(LogRing::default()), None)
    }

    fn press(app: &mut App, keys: &str) {
        for c in keys.chars() {
            app.handle(AppEvent::Key(KeyEvent::new(
                KeyCode::Char(c),
                KeyModifiers::NONE,
            )));
        }
    }

    fn press_code(app: &mut App, code: KeyCode) {
        app.handle(AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    #[test]
    fn number_keys_and_tab_switch_panes() {
        let mut a = app();
        press(&mut a, "6");
        assert_eq!(a.view.pane, Pane::System);
        press_code(&mut a, KeyCode::Tab);
        assert_eq!(a.view.pane, Pane::Log);
        press_code(&mut a, KeyCode::Tab);
        assert_eq!(a.view.pane, Pane::Runs);
        a.handle(AppEvent::Key(KeyEvent::new(
            KeyCode::BackTab,
            KeyModifiers::SHIFT,
        )));
        assert_eq!(a.view.pane, Pane::Log);
    }

    #[test]
    fn help_takes_only_scroll_close_and_quit() {
        let mut a = app();
        press(&mut a, "?");
        assert!(a.view.help.is_some());
        press(&mut a, "3");
        assert_eq!(a.view.pane, Pane::Runs, "keys under the help do nothing");
        press(&mut a, "jj");
        assert_eq!(a.ui.help_scroll, 2);
        press_code(&mut a, KeyCode::Esc);
        assert!(a.view.help.is_none());
        press(&mut a, "?q");
        assert!(a.quit);
    }

    #[test]
    fn a_filter_takes_text_until_enter_and_esc_clears_it() {
        let mut a = app();
        press(&mut a, "/mlq");
        assert!(!a.quit, "q is text while typing a filter");
        press_code(&mut a, KeyCode::Backspace);
        assert_eq!(a.view.filter.as_ref().unwrap().text, "ml");
        press_code(&mut a, KeyCode::Enter);
        assert!(!a.view.filter.as_ref().unwrap().editing);
        press(&mut a, "j");
        assert_eq!(
            a.view.filter.as_ref().unwrap().text,
            "ml",
            "j moves, it is not text now"
        );
        press_code(&mut a, KeyCode::Esc);
        assert!(a.view.filter.is_none());
        press(&mut a, "q");
        assert!(a.quit);
    }

    #[test]
    fn switching_panes_drops_the_filter() {
        let mut a = app();
        press(&mut a, "/x");
        press_code(&mut a, KeyCode::Enter);
        press(&mut a, "2");
        assert!(a.view.filter.is_none());
    }

    #[test]
    fn the_status_bar_shows_what_auto_resolved_to() {
        let mut a = app();
        let sample = SystemView {
            auto_device: "cpu".into(),
            ..SystemView::default()
        };
        a.handle(AppEvent::System(Box::new(sample)));
        assert_eq!(a.view.status.device, "cpu (auto)");
    }
}
