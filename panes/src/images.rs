//! Image samples in the terminal through ratatui-image: kitty, sixel or iTerm2 graphics where
//! the terminal has them, Unicode half-blocks everywhere else (and always inside tmux).

use crate::view::ImageView;
use ratatui::Frame;
use ratatui::layout::{Rect, Size};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use ratatui_image::{Image, Resize};
use std::collections::HashMap;

/// Encoded images, kept between frames (encoding is the slow part).
#[derive(Default)]
pub struct ImageCache {
    picker: Option<Picker>,
    protos: HashMap<(String, usize, u16, u16), Protocol>,
}

impl Clone for ImageCache {
    /// A copy starts empty: protocols are tied to the terminal they were made for.
    fn clone(&self) -> Self {
        ImageCache {
            picker: self.picker.clone(),
            protos: HashMap::new(),
        }
    }
}

impl std::fmt::Debug for ImageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageCache({} images)", self.protos.len())
    }
}

impl ImageCache {
    /// The graphics protocol the terminal answered with (the TUI queries it at start).
    pub fn set_picker(&mut self, picker: Picker) {
        self.picker = Some(picker);
        self.protos.clear();
    }

    /// Draws image `idx` of the set `key` scaled into `area`.
    pub fn draw(&mut self, frame: &mut Frame, area: Rect, key: &str, idx: usize, img: &ImageView) {
        if area.width == 0 || area.height == 0 || img.width == 0 || img.height == 0 {
            return;
        }
        let picker = self.picker.get_or_insert_with(Picker::halfblocks);
        if self.protos.len() > 256 {
            self.protos.clear();
        }
        let k = (key.to_string(), idx, area.width, area.height);
        if !self.protos.contains_key(&k) {
            let Some(buf) = image::RgbImage::from_raw(img.width, img.height, img.rgb.clone())
            else {
                return;
            };
            let dynimg = image::DynamicImage::ImageRgb8(buf);
            let size = Size::new(area.width, area.height);
            match picker.new_protocol(dynimg, size, Resize::Scale(None)) {
                Ok(p) => {
                    self.protos.insert(k.clone(), p);
                }
                Err(_) => return,
            }
        }
        if let Some(p) = self.protos.get(&k) {
            frame.render_widget(Image::new(p), area);
        }
    }
}
