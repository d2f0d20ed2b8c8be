//! The terminal UI: one event channel fed by the input reader, the workspace watcher, the
//! system sampler and the log; the loop redraws only after events (and a slow tick for the
//! System pane), so an idle TUI costs nothing.

mod app;
mod browse;
mod chat;
mod jobs;
pub mod keymap;
mod probes;
mod rl;
mod sampler;
mod tail;
mod views;

pub use app::{App, AppEvent};

use crate::workspace::Workspace;
use crate::{logging, system, watcher};
use crossterm::event::{self, Event, KeyEventKind};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// How often a live pane (System) refreshes while nothing else happens.
const TICK: Duration = Duration::from_secs(1);

pub fn run(ws: Workspace, force_poll: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    anyhow::ensure!(
        std::io::stdout().is_terminal() && std::io::stdin().is_terminal(),
        "the TUI needs a terminal; for headless use see `descent --help` (e.g. `descent check`)"
    );
    let log = logging::init_tui(&ws.root);
    tracing::info!(
        "opened workspace {} ({} experiments)",
        ws.root.display(),
        ws.experiments.len()
    );
    for e in ws.errors() {
        tracing::warn!("{e}");
    }
    let (tx, rx) = mpsc::channel::<AppEvent>();
    wake_on_log(&log, tx.clone());

    let sample = {
        let tx = tx.clone();
        system::spawn(ws.settings.threads, move |s| {
            tx.send(AppEvent::System(Box::new(s))).is_ok()
        })
    };
    let mut app = App::new(ws.root.display().to_string(), log.clone(), Some(sample));
    {
        let tx = tx.clone();
        app.set_browse_waker(std::sync::Arc::new(move || {
            let _ = tx.send(AppEvent::Browse);
        }));
    }
    {
        let tx = tx.clone();
        app.set_jobs_waker(std::sync::Arc::new(move || {
            let _ = tx.send(AppEvent::Jobs);
        }));
    }
    // Runs left waiting (the TUI's host rebooted, the dispatcher was killed) go on.
    if let Err(e) = crate::queue::local::ensure_dispatcher(&ws.root) {
        tracing::warn!("the local queue: {e}");
    }
    {
        let tx = tx.clone();
        watcher::spawn(ws, force_poll, move |u| {
            tx.send(AppEvent::Workspace(Box::new(u))).is_ok()
        });
    }

    // Installs a panic hook that restores the terminal before the panic message prints.
    let mut terminal = ratatui::try_init()?;
    // Ask the terminal for a graphics protocol before the input thread reads stdin. Inside
    // tmux the answer depends on passthrough settings, so half-blocks it is.
    let picker = if std::env::var_os("TMUX").is_some() {
        descent_panes::Picker::halfblocks()
    } else {
        descent_panes::Picker::from_query_stdio()
            .unwrap_or_else(|_| descent_panes::Picker::halfblocks())
    };
    app.ui.images.set_picker(picker);
    spawn_input(tx);
    let result = (|| -> anyhow::Result<()> {
        let mut dirty = true;
        while !app.quit {
            if dirty {
                terminal.draw(|f| descent_panes::draw(f, &app.view, &mut app.ui))?;
            }
            // While a long run's metrics are read in, a piece per tick, tick again at once.
            let wait = if app.busy() { Duration::ZERO } else { TICK };
            dirty = match rx.recv_timeout(wait) {
                Ok(ev) => app.handle(ev),
                Err(RecvTimeoutError::Timeout) => app.tick(),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Apply everything already queued before drawing once.
            while let Ok(ev) = rx.try_recv() {
                dirty |= app.handle(ev);
            }
        }
        Ok(())
    })();
    ratatui::try_restore()?;
    tracing::info!("descent TUI closed");
    result
}

/// Each new log line wakes the UI; the loop drains queued events before drawing, so a burst
/// of lines costs one redraw.
fn wake_on_log(log: &Arc<logging::LogRing>, tx: Sender<AppEvent>) {
    log.set_waker(move || {
        let _ = tx.send(AppEvent::Log);
    });
}

fn spawn_input(tx: Sender<AppEvent>) {
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            loop {
                let ev = match event::read() {
                    Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => AppEvent::Key(k),
                    Ok(Event::Resize(..)) => AppEvent::Resize,
                    Ok(_) => continue,
                    Err(e) => AppEvent::InputClosed(e.to_string()),
                };
                let closed = matches!(ev, AppEvent::InputClosed(_));
                if tx.send(ev).is_err() || closed {
                    return;
                }
            }
        })
        .expect("spawning the input reader");
}
