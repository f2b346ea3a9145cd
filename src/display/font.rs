//! The display's font: a subset of Noto Sans (SIL Open Font License 1.1; the licence and the
//! script that makes the subset are in `packaging/fonts/`), Regular and Bold, embedded in the
//! binary. It covers Latin with Vietnamese, Cyrillic with Mongolian's Өө and Үү, `₮`, `₫`,
//! digits and punctuation; a test proves it draws every sentence of every language's table.
//!
//! This module measures and draws lines of text onto an RGB image with `ab_glyph` (antialiased,
//! blended over what is there). Text is normalised to NFC first, so a Vietnamese letter written
//! as a base and combining marks is drawn as its one precomposed glyph. A character the font
//! lacks (a till's item name in another script) is drawn as `?`.
//! The kiosk page gets the same glyphs as WOFF2 ([`REGULAR_WOFF2`], [`BOLD_WOFF2`]).

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage};
use unicode_normalization::UnicodeNormalization;

/// The subset, Regular, for drawing.
const REGULAR_TTF: &[u8] = include_bytes!("fonts/NotoSans-Regular.subset.ttf");
/// The subset, Bold, for drawing.
const BOLD_TTF: &[u8] = include_bytes!("fonts/NotoSans-Bold.subset.ttf");
/// The same Regular glyphs as WOFF2, for the kiosk page.
pub const REGULAR_WOFF2: &[u8] = include_bytes!("fonts/NotoSans-Regular.subset.woff2");
/// The same Bold glyphs as WOFF2, for the kiosk page.
pub const BOLD_WOFF2: &[u8] = include_bytes!("fonts/NotoSans-Bold.subset.woff2");

/// The weight of a line of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weight {
    Regular,
    Bold,
}

/// The parsed font of `weight`. `None` only if the embedded file were broken, which a test
/// rules out; text is then left undrawn rather than the daemon stopped.
fn font(weight: Weight) -> Option<&'static FontRef<'static>> {
    static REGULAR: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    static BOLD: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    let (cell, bytes) = match weight {
        Weight::Regular => (&REGULAR, REGULAR_TTF),
        Weight::Bold => (&BOLD, BOLD_TTF),
    };
    cell.get_or_init(|| FontRef::try_from_slice(bytes).ok())
        .as_ref()
}

/// `text` in Unicode's composed form (NFC), as it is drawn.
pub fn nfc(text: &str) -> String {
    text.nfc().collect()
}

/// The characters of `text` (after NFC) that either weight lacks, each once. Spaces and
/// other invisible characters that need no glyph are not counted.
pub fn missing(text: &str) -> Vec<char> {
    let mut missing = Vec::new();
    for c in nfc(text).chars() {
        let lacks = [Weight::Regular, Weight::Bold]
            .into_iter()
            .any(|weight| font(weight).is_none_or(|f| f.glyph_id(c).0 == 0));
        if lacks && !c.is_control() && !missing.contains(&c) {
            missing.push(c);
        }
    }
    missing
}

/// One shaped line: its glyphs and their pen positions, at a size.
struct Shaped {
    glyphs: Vec<(GlyphId, f32)>,
    width: f32,
}

/// Lays `text` out on one line at `px` pixels: NFC, a glyph per character (`?` for one the
/// font lacks), advances.
fn shape(text: &str, weight: Weight, px: f32) -> Shaped {
    let Some(font) = font(weight) else {
        return Shaped {
            glyphs: Vec::new(),
            width: 0.0,
        };
    };
    let scaled = font.as_scaled(scale(font, px));
    let fallback = font.glyph_id('?');
    let mut glyphs = Vec::new();
    let mut x = 0.0;
    let mut previous = None;
    for c in nfc(text).chars() {
        if c.is_control() {
            continue;
        }
        let id = match font.glyph_id(c) {
            GlyphId(0) => fallback,
            id => id,
        };
        if let Some(previous) = previous {
            x += scaled.kern(previous, id);
        }
        glyphs.push((id, x));
        x += scaled.h_advance(id);
        previous = Some(id);
    }
    Shaped { glyphs, width: x }
}

/// The width of `text` on one line at `px` pixels.
pub fn width(text: &str, weight: Weight, px: f32) -> f32 {
    shape(text, weight, px).width
}

/// The line height, as a multiple of the font size: the page's CSS `line-height`.
pub const LINE_HEIGHT: f32 = 1.25;

/// The scale at which the font's em is `px` pixels, as CSS's `font-size: {px}px` means.
fn scale(font: &FontRef<'_>, px: f32) -> PxScale {
    let em = font.units_per_em().unwrap_or(1000.0);
    PxScale::from(px * font.height_unscaled() / em)
}

/// The height of one line at `px` pixels: [`LINE_HEIGHT`] times the size.
pub fn line_height(px: f32) -> f32 {
    px * LINE_HEIGHT
}

/// Where the baseline sits below the top of a line at `px` pixels (the font's ascent and
/// descent centred in the line, as a browser places them).
pub fn baseline(weight: Weight, px: f32) -> f32 {
    font(weight).map_or(px, |f| {
        let scaled = f.as_scaled(scale(f, px));
        (line_height(px) - (scaled.ascent() - scaled.descent())) / 2.0 + scaled.ascent()
    })
}

/// Draws `text` on one line at `px` pixels, its baseline at `baseline` and its left edge at
/// `x`, in `color`, blended over the image; what falls outside the image is clipped.
pub fn draw(
    image: &mut RgbImage,
    text: &str,
    weight: Weight,
    px: f32,
    (x, baseline): (f32, f32),
    color: Rgb<u8>,
) {
    let Some(font) = font(weight) else {
        return;
    };
    let scale = scale(font, px);
    let (width, height) = image.dimensions();
    for (id, pen) in shape(text, weight, px).glyphs {
        let glyph = id.with_scale_and_position(scale, point(x + pen, baseline));
        let Some(outlined) = font.outline_glyph(glyph) else {
            continue; // a space
        };
        let bounds = outlined.px_bounds();
        outlined.draw(|gx, gy, coverage| {
            let px_x = bounds.min.x as i64 + i64::from(gx);
            let px_y = bounds.min.y as i64 + i64::from(gy);
            if px_x < 0 || px_y < 0 || px_x >= i64::from(width) || px_y >= i64::from(height) {
                return;
            }
            // Both are inside the image, so they fit in u32.
            let pixel = image.get_pixel_mut(px_x as u32, px_y as u32);
            let alpha = coverage.clamp(0.0, 1.0);
            for (channel, target) in pixel.0.iter_mut().zip(color.0) {
                let blended = f32::from(*channel) * (1.0 - alpha) + f32::from(target) * alpha;
                *channel = blended.round().clamp(0.0, 255.0) as u8;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::DisplaySettings;
    use crate::display::model::tests::{attempt, transaction};
    use crate::display::model::{DisplayModel, Snapshot};
    use crate::display::strings::Language;
    use crate::domain::{AttemptStatus, Currency, Failure};
    use rust_decimal::Decimal;

    #[test]
    fn both_weights_parse() {
        assert!(font(Weight::Regular).is_some());
        assert!(font(Weight::Bold).is_some());
    }

    /// The font covers every customer-facing string of every language: each table's
    /// sentences, and every snapshot of every state as it is put into words, with the amounts
    /// of both currencies in their formats.
    #[test]
    fn the_font_covers_every_customer_facing_string_of_every_language() {
        for language in Language::ALL {
            for text in language.strings().all() {
                assert_eq!(missing(text), Vec::<char>::new(), "{language}: {text:?}");
            }
        }
        let settings = |language| DisplaySettings {
            language,
            ..DisplaySettings::for_tests()
        };
        let mut checked = 0;
        for language in Language::ALL {
            for currency in Currency::ALL {
                let t = transaction(currency, "1234567.5");
                let mut attempts = vec![
                    attempt(AttemptStatus::Sent, "1234567.5", "0"),
                    attempt(AttemptStatus::Sent, "1234567.5", "1000"),
                    attempt(AttemptStatus::Success, "1234567.5", "1234567.5"),
                    attempt(AttemptStatus::Expired, "1234567.5", "0"),
                    attempt(AttemptStatus::Fail, "1234567.5", "0"),
                ];
                let mut cancelled = attempt(AttemptStatus::Fail, "1234567.5", "0");
                cancelled.failure = Some(Failure {
                    code: "CANCELLED".to_owned(),
                    message: String::new(),
                });
                let mut card = attempt(AttemptStatus::Sent, "1234567.5", "0");
                card.method = "ATM".to_owned();
                let mut cash = attempt(AttemptStatus::Sent, "1234567.5", "0");
                cash.provider = "system".to_owned();
                cash.qr_text = None;
                attempts.extend([cancelled, card, cash]);
                let mut snapshots =
                    vec![Snapshot::new(&DisplayModel::idle(), &settings(language), 1)];
                for a in &attempts {
                    let model = DisplayModel::for_attempt(a, &t, "QPay");
                    snapshots.push(Snapshot::new(&model, &settings(language), 1));
                }
                for snapshot in &snapshots {
                    for text in snapshot.texts() {
                        assert_eq!(missing(text), Vec::<char>::new(), "{language}: {text:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 300, "{checked} texts checked");
        assert_eq!(
            missing("0123456789 ,.:;!?%+-–—…×₮₫“”‘’«»"),
            Vec::<char>::new()
        );
        let _ = Decimal::ZERO;
    }

    #[test]
    fn text_is_normalised_before_it_is_drawn() {
        // "Việt" with the tone mark as a combining character: drawn as the precomposed "ệ".
        let decomposed = "Vie\u{0323}\u{0302}t";
        assert_eq!(nfc(decomposed), "Việt");
        assert_eq!(missing(decomposed), Vec::<char>::new());
        assert_eq!(
            width(decomposed, Weight::Regular, 40.0),
            width("Việt", Weight::Regular, 40.0)
        );
        // A script the font lacks is reported and drawn as '?'.
        assert_eq!(missing("咖啡"), vec!['咖', '啡']);
        assert_eq!(
            width("咖", Weight::Bold, 30.0),
            width("?", Weight::Bold, 30.0)
        );
    }

    #[test]
    fn text_is_drawn_antialiased_and_clipped() {
        let mut image = RgbImage::from_pixel(200, 60, Rgb([255, 255, 255]));
        draw(
            &mut image,
            "Төлбөр ₮",
            Weight::Bold,
            40.0,
            (4.0, 45.0),
            Rgb([0, 0, 0]),
        );
        let dark = image.pixels().filter(|p| p.0[0] < 64).count();
        let grey = image
            .pixels()
            .filter(|p| (64..192).contains(&p.0[0]))
            .count();
        assert!(dark > 300 && grey > 50, "dark {dark}, grey {grey}");
        // Far outside the image: nothing happens, nothing panics.
        draw(
            &mut image,
            "x",
            Weight::Regular,
            40.0,
            (-500.0, 900.0),
            Rgb([0, 0, 0]),
        );
        assert!(width("Төлбөр", Weight::Bold, 40.0) > width("Төлбөр", Weight::Bold, 20.0));
        assert_eq!(line_height(20.0), 25.0);
        let baseline = baseline(Weight::Regular, 20.0);
        assert!(baseline > 15.0 && baseline < 25.0, "{baseline}");
    }
}
