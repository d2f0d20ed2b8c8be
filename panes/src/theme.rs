//! Colours and emphasis. With `NO_COLOR` set, the same roles use only bold, dim and reverse.

use ratatui::style::{Color, Modifier, Style};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Honours <https://no-color.org>: any non-empty `NO_COLOR` turns colour off.
    pub fn from_env() -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color }
    }

    fn pick(&self, colored: Style, plain: Style) -> Style {
        if self.color { colored } else { plain }
    }

    pub fn base(&self) -> Style {
        Style::default()
    }
    pub fn title(&self) -> Style {
        self.pick(
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::BOLD),
        )
    }
    pub fn tab_active(&self) -> Style {
        self.pick(
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD),
        )
    }
    pub fn selected(&self) -> Style {
        self.pick(
            Style::default()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::REVERSED),
        )
    }
    pub fn dim(&self) -> Style {
        self.pick(
            Style::default().fg(Color::DarkGray),
            Style::default().add_modifier(Modifier::DIM),
        )
    }
    pub fn key(&self) -> Style {
        self.pick(
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::BOLD),
        )
    }
    pub fn ok(&self) -> Style {
        self.pick(Style::default().fg(Color::Green), Style::default())
    }
    pub fn warn(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Yellow),
            Style::default().add_modifier(Modifier::BOLD),
        )
    }
    pub fn error(&self) -> Style {
        self.pick(
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            Style::default().add_modifier(Modifier::BOLD),
        )
    }
    /// A token's share of the largest |A|·H of its step, in four steps from cold to hot;
    /// without colour, the hottest two are bold.
    pub fn heat(&self, share: f64) -> Style {
        let level = (share.clamp(0.0, 1.0) * 3.999) as usize;
        let colors = [Color::DarkGray, Color::Gray, Color::Yellow, Color::LightRed];
        let plain = if level >= 2 {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        self.pick(Style::default().fg(colors[level]), plain)
    }
    pub fn status_bar(&self) -> Style {
        self.pick(Style::default().bg(Color::Indexed(236)), Style::default())
    }
}

/// Colours of the classes in scatter plots, readable on black: the Sampler pane's and the
/// PNGs `descent sample` writes.
pub const CLASS_RGB: [[u8; 3]; 10] = [
    [230, 159, 0],
    [86, 180, 233],
    [0, 158, 115],
    [240, 228, 66],
    [0, 114, 178],
    [213, 94, 0],
    [204, 121, 167],
    [200, 200, 200],
    [150, 220, 90],
    [255, 120, 120],
];
