//! The QR code: encoding at the right error-correction level, placing it with its quiet zone
//! and whole-pixel modules, and its other forms: an SVG path for the kiosk page, half blocks for
//! a terminal (`qrpayctl pay`), a bare image (`qrpayctl qr vietqr --png`).
//!
//! The QR is always dark on light with a four-module quiet zone, and every module a whole number
//! of pixels wide wherever it is rasterised here, so it stays crisp and scannable.

use std::fmt::Write as _;

use image::{Rgb, RgbImage};
use qrcode::bits::Bits;
use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};
use serde::Serialize;

use super::{DisplayError, Rect};

/// The quiet zone around the QR code, in modules, as the QR standard asks.
pub const QUIET_ZONE: u32 = 4;
/// The smallest module size, in pixels, that still scans reliably.
pub const MIN_MODULE_PX: u32 = 2;
/// The dark modules.
pub const DARK: Rgb<u8> = Rgb([0, 0, 0]);
/// The light modules and the quiet zone.
pub const LIGHT: Rgb<u8> = Rgb([255, 255, 255]);

/// A QR code as an SVG path, for the kiosk page: `modules` is the side with the quiet zone,
/// and `path` draws every dark module as a unit square at its place (`M4 4h7v1h-7z…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QrSvg {
    pub modules: u32,
    pub path: String,
}

/// The QR for `qr_text` as an SVG path: level M, or L for a payload too long for M (a card
/// payment's page address).
///
/// # Errors
///
/// [`DisplayError::QrTooLong`] when the payload fits no QR code.
pub fn svg(qr_text: &str) -> Result<QrSvg, DisplayError> {
    let code = match encode_qr(qr_text, EcLevel::M) {
        Err(DisplayError::QrTooLong { .. }) => encode_qr(qr_text, EcLevel::L)?,
        other => other?,
    };
    let width = code.width();
    let mut path = String::with_capacity(width * width / 2);
    for y in 0..width {
        let mut x = 0;
        while x < width {
            if code[(x, y)] != Color::Dark {
                x += 1;
                continue;
            }
            let start = x;
            while x < width && code[(x, y)] == Color::Dark {
                x += 1;
            }
            let quiet = QUIET_ZONE as usize;
            // Writing to a String cannot fail.
            let _ = write!(
                path,
                "M{} {}h{}v1h-{}z",
                start + quiet,
                y + quiet,
                x - start,
                x - start
            );
        }
    }
    Ok(QrSvg {
        modules: code_modules(&code) + 2 * QUIET_ZONE,
        path,
    })
}

/// Renders the QR code for `qr_text` as text for a terminal (`qrpayctl pay`).
///
/// Each line holds two module rows as Unicode half blocks, with the
/// four-module quiet zone all around; every line has the same number of
/// characters and ends with a newline. Light modules are drawn as block
/// characters and dark ones as spaces, so the code reads correctly on the
/// usual terminal with light text on a dark background. The level is M, the
/// smallest code that meets the display's minimum.
///
/// # Errors
///
/// [`DisplayError::QrTooLong`] when the payload fits no QR code.
pub fn terminal_qr(qr_text: &str) -> Result<String, DisplayError> {
    let code = encode_qr(qr_text, EcLevel::M)?;
    let size = code.width() + 2 * QUIET_ZONE as usize;
    let is_light = |x: usize, y: usize| !is_dark_with_quiet_zone(&code, x, y);
    let mut out = String::with_capacity((size + 1) * size.div_ceil(2) * 3);
    for y in (0..size).step_by(2) {
        for x in 0..size {
            // Past the last row the quiet zone simply grows by one light row.
            let bottom = y + 1 >= size || is_light(x, y + 1);
            out.push(half_block(is_light(x, y), bottom));
        }
        out.push('\n');
    }
    Ok(out)
}

/// The QR code alone as an image: level M, a 4-module quiet zone, each module `module_px`
/// pixels (at least 1), black on white. For `qrpayctl qr vietqr --png`.
///
/// # Errors
///
/// [`DisplayError::QrTooLong`] when the payload fits no QR code.
pub fn qr_image(qr_text: &str, module_px: u32) -> Result<RgbImage, DisplayError> {
    let code = encode_qr(qr_text, EcLevel::M)?;
    let module_px = module_px.max(1);
    let modules = code_modules(&code) + 2 * QUIET_ZONE;
    let side = modules.saturating_mul(module_px);
    let mut image = RgbImage::from_pixel(side, side, LIGHT);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let (mx, my) = ((x / module_px) as usize, (y / module_px) as usize);
        if is_dark_with_quiet_zone(&code, mx, my) {
            *pixel = DARK;
        }
    }
    Ok(image)
}

/// Where one QR code goes: the outer square includes the quiet zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct QrPlacement {
    /// The left edge of the quiet zone.
    pub(super) x: u32,
    /// The top edge of the quiet zone.
    pub(super) y: u32,
    /// The width and height of one module in pixels.
    pub(super) module_px: u32,
    /// The number of modules on a side, without the quiet zone.
    pub(super) modules: u32,
}

impl QrPlacement {
    /// Centres a code of `modules` modules (plus quiet zone) in `area` with
    /// the largest whole module size that fits.
    pub(super) fn centred(area: Rect, modules: u32) -> Self {
        let total = modules + 2 * QUIET_ZONE;
        let module_px = area.w.min(area.h) / total;
        let side = total * module_px;
        Self {
            x: area.x + (area.w - side) / 2,
            y: area.y + (area.h - side) / 2,
            module_px,
            modules,
        }
    }

    /// The side of the outer square, quiet zone included, in pixels.
    pub(super) fn side(&self) -> u32 {
        (self.modules + 2 * QUIET_ZONE) * self.module_px
    }

    /// The top-left pixel of the code itself, inside the quiet zone.
    pub(super) fn code_origin(&self) -> (u32, u32) {
        let quiet = QUIET_ZONE * self.module_px;
        (self.x + quiet, self.y + quiet)
    }
}

/// A QR code and where it goes on the frame.
pub(super) struct QrPlan {
    pub(super) code: QrCode,
    pub(super) placement: QrPlacement,
}

/// Encodes `text` at level M, or at a higher level when that gives modules
/// just as large, and places it in `area`. A payload too long or too dense
/// for level M (a card payment's page address of a few thousand characters)
/// falls back to level L, the last resort: a code that scans on a clean
/// screen beats no code.
///
/// Only the data bits are encoded per level, which is cheap; the costly mask
/// selection runs once, for the chosen level.
pub(super) fn plan_qr(
    text: &str,
    area: Rect,
    width: u32,
    height: u32,
) -> Result<QrPlan, DisplayError> {
    match plan_qr_from(EcLevel::M, text, area, width, height) {
        Err(DisplayError::QrTooLong { .. } | DisplayError::FrameTooSmall { .. }) => {
            plan_qr_from(EcLevel::L, text, area, width, height)
        }
        planned => planned,
    }
}

/// [`plan_qr`] from the `base` level up.
fn plan_qr_from(
    base: EcLevel,
    text: &str,
    area: Rect,
    width: u32,
    height: u32,
) -> Result<QrPlan, DisplayError> {
    let base_bits = encode_bits(text, base)?;
    let base_px = QrPlacement::centred(area, bits_modules(&base_bits)).module_px;
    if base_px < MIN_MODULE_PX {
        return Err(qr_too_dense(width, height, area, bits_modules(&base_bits)));
    }
    let mut chosen = (base_bits, base);
    for level in [EcLevel::H, EcLevel::Q, EcLevel::M]
        .into_iter()
        .filter(|l| *l > base)
    {
        // A level that does not encode at all is simply not an upgrade.
        if let Ok(bits) = encode_bits(text, level)
            && QrPlacement::centred(area, bits_modules(&bits)).module_px >= base_px
        {
            chosen = (bits, level);
            break;
        }
    }
    let (bits, level) = chosen;
    let code = QrCode::with_bits(bits, level).map_err(|error| qr_error(error, text))?;
    let placement = QrPlacement::centred(area, code_modules(&code));
    Ok(QrPlan { code, placement })
}

/// Encodes the data bits of `text` at `level`, in the smallest version that holds them.
fn encode_bits(text: &str, level: EcLevel) -> Result<Bits, DisplayError> {
    qrcode::bits::encode_auto(text.as_bytes(), level).map_err(|error| qr_error(error, text))
}

/// The number of modules on a side of a code holding `bits`.
fn bits_modules(bits: &Bits) -> u32 {
    // Micro QR versions are never chosen; a non-positive width would only
    // make the code look too dense, never panic.
    u32::try_from(bits.version().width()).unwrap_or(u32::MAX)
}

/// Describes a QR code whose modules would be too small to scan.
fn qr_too_dense(width: u32, height: u32, area: Rect, modules: u32) -> DisplayError {
    let total = modules.saturating_add(2 * QUIET_ZONE);
    DisplayError::FrameTooSmall {
        width,
        height,
        needed: format!(
            "a {needed} px square for the QR code ({total} modules at {MIN_MODULE_PX} px), \
             but its area is {got} px",
            needed = total * MIN_MODULE_PX,
            got = area.w.min(area.h),
        ),
    }
}

/// Encodes `text` as a QR code at `level`.
pub(super) fn encode_qr(text: &str, level: EcLevel) -> Result<QrCode, DisplayError> {
    QrCode::with_error_correction_level(text, level).map_err(|error| qr_error(error, text))
}

/// Maps a QR encoder error for the payload `text` to a [`DisplayError`].
fn qr_error(error: QrError, text: &str) -> DisplayError {
    match error {
        QrError::DataTooLong => DisplayError::QrTooLong { len: text.len() },
        other => DisplayError::Encode(Box::new(other)),
    }
}

/// The number of modules on a side of `code`.
pub(super) fn code_modules(code: &QrCode) -> u32 {
    // A QR code is at most 177 modules wide, so this never saturates.
    u32::try_from(code.width()).unwrap_or(u32::MAX)
}

/// Tells whether the module at (`x`, `y`) of the code padded with its quiet
/// zone is dark.
fn is_dark_with_quiet_zone(code: &QrCode, x: usize, y: usize) -> bool {
    let quiet = QUIET_ZONE as usize;
    let width = code.width();
    let inside = (quiet..quiet + width).contains(&x) && (quiet..quiet + width).contains(&y);
    inside && code[(x - quiet, y - quiet)] == Color::Dark
}

/// Picks the half block showing which of two stacked modules are light.
fn half_block(top_light: bool, bottom_light: bool) -> char {
    match (top_light, bottom_light) {
        (true, true) => '\u{2588}',
        (true, false) => '\u{2580}',
        (false, true) => '\u{2584}',
        (false, false) => ' ',
    }
}

/// Draws the quiet zone in white and every dark module as a black square.
pub(super) fn draw(image: &mut RgbImage, plan: &QrPlan) {
    let p = plan.placement;
    let outer = Rect {
        x: p.x,
        y: p.y,
        w: p.side(),
        h: p.side(),
    };
    super::fill_rect(image, outer, LIGHT);
    let (ox, oy) = p.code_origin();
    let width = plan.code.width();
    for (index, color) in plan.code.to_colors().iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        // Both coordinates are below 177, so the conversions are exact.
        let (mx, my) = ((index % width) as u32, (index / width) as u32);
        let module = Rect {
            x: ox + mx * p.module_px,
            y: oy + my * p.module_px,
            w: p.module_px,
            h: p.module_px,
        };
        super::fill_rect(image, module, DARK);
    }
}
