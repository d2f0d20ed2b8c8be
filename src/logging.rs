//! The app's own log: tracing events go to `<workspace>/logs/descent.log` and to an in-memory
//! ring the Log pane shows. Nothing is ever written over the TUI.
//!
//! `DESCENT_LOG=error|warn|info|debug|trace` sets the level (default: info in the TUI, error
//! for headless commands, which print their own results).

use descent_panes::{LogLevel, LogLine};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The Log pane keeps this many of the newest lines; the file keeps everything.
const RING_LINES: usize = 5000;

type Waker = Box<dyn Fn() + Send + Sync>;

/// The newest log lines, shared between the tracing layer and the UI.
#[derive(Default)]
pub struct LogRing {
    lines: Mutex<VecDeque<LogLine>>,
    waker: Mutex<Option<Waker>>,
}

impl LogRing {
    /// A copy of the lines, oldest first.
    pub fn snapshot(&self) -> Vec<LogLine> {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Called after each new line (the UI uses it to redraw the Log pane).
    pub fn set_waker(&self, f: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut w) = self.waker.lock() {
            *w = Some(Box::new(f));
        }
    }

    fn push(&self, line: LogLine) {
        if let Ok(mut l) = self.lines.lock() {
            if l.len() == RING_LINES {
                l.pop_front();
            }
            l.push_back(line);
        }
        if let Ok(w) = self.waker.lock()
            && let Some(w) = w.as_ref()
        {
            w();
        }
    }
}

struct RingLayer(Arc<LogRing>);

impl<S: tracing::Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MessageVisitor(String::new());
        event.record(&mut v);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        };
        self.0.push(LogLine {
            time: chrono::Local::now().format("%H:%M:%S").to_string(),
            level,
            message: v.0,
        });
    }
}

/// The `message` field first, then any other fields as `key=value`.
struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}");
            if !rest.is_empty() {
                self.0.push(' ');
                self.0.push_str(&rest);
            }
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}

fn level_from_env(default: LevelFilter) -> LevelFilter {
    std::env::var("DESCENT_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn log_file(root: &Path) -> PathBuf {
    root.join(crate::workspace::LOGS_DIR).join("descent.log")
}

/// Logging for the TUI: the workspace's log file plus the ring. If the log file cannot be
/// opened (a read-only workspace), the ring alone is used and the first line says why.
pub fn init_tui(root: &Path) -> Arc<LogRing> {
    let ring = Arc::new(LogRing::default());
    let level = level_from_env(LevelFilter::INFO);
    let path = log_file(root);
    let file = std::fs::create_dir_all(path.parent().unwrap_or(root)).and_then(|_| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
    });
    let (file_layer, file_err) = match file {
        Ok(f) => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(Mutex::new(f))
                    .with_filter(level),
            ),
            None,
        ),
        Err(e) => (None, Some(e)),
    };
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(RingLayer(ring.clone()).with_filter(level))
        .try_init();
    match file_err {
        None => tracing::info!(
            "descent {} logging to {}",
            env!("CARGO_PKG_VERSION"),
            path.display()
        ),
        Some(e) => tracing::warn!(
            "cannot open log file {}: {e}; logging to this pane only",
            path.display()
        ),
    }
    ring
}

/// Logging for headless commands: stderr, quiet unless `DESCENT_LOG` asks for more.
pub fn init_cli() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level_from_env(LevelFilter::ERROR))
        .try_init();
}
