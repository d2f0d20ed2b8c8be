//! descent: the application — CLI, TUI shell, workspace and its watcher.
//!
//! Numerics live in `descent-models`, drawing in `descent-panes`; this crate connects them.

pub mod atomic;
pub mod cli;
pub mod cli_generate;
pub mod cli_inspect;
pub mod cli_probe;
pub mod cli_queue;
pub mod cli_runs;
pub mod cli_sample;
pub mod config;
pub mod demo;
pub mod hub;
pub mod inventory;
pub mod logging;
pub mod present;
pub mod queue;
pub mod runs;
pub mod sampling;
pub mod sources;
pub mod system;
pub mod tui;
pub mod watcher;
pub mod workspace;
