//! descent-panes: the panes and widgets of descent's TUI.
//!
//! Everything here renders plain view data ([`AppView`]) with ratatui; nothing knows about
//! candle, files or processes. The application fills the view, keeps a [`UiState`] for
//! selections and scrolling, and calls [`draw`] — so every pane can be tested with ratatui's
//! `TestBackend`.

pub mod chart;
mod images;
mod pane;
mod panes;
pub mod series;
mod shell;
pub mod theme;
mod ui_state;
pub mod view;
mod widgets;

pub use images::ImageCache;
pub use pane::Pane;
pub use panes::{
    list_len, selected_checkpoint, selected_dataset, selected_experiment, selected_run,
    selected_runs,
};
pub use ratatui_image::picker::Picker;
pub use shell::{MIN_HEIGHT, MIN_WIDTH, draw};
pub use theme::Theme;
pub use ui_state::UiState;
pub use view::*;
pub use widgets::truncate_right;
