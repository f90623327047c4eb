//! The one font charts use, embedded so a server renders the same text on any machine (no
//! system font lookup): DejaVu Sans (Bitstream Vera / DejaVu licence, see
//! `assets/fonts/LICENSE-DejaVu.txt`). plotters measures and (for PNG) rasterises text with it.

use std::sync::Once;

use plotters::style::FontStyle;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the font for the family names charts use; cheap after the first call.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "DejaVu Sans"] {
            for style in [FontStyle::Normal, FontStyle::Bold] {
                if plotters::style::register_font(family, style, FONT).is_err() {
                    tracing::error!(family, "embedded chart font did not load");
                }
            }
        }
    });
}
