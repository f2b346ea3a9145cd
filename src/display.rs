//! The customer-facing display frame.
//!
//! This module owns two things: rendering the picture that the customer sees
//! on the terminal's second screen for one payment attempt (the payment QR
//! code, the amount, the provider, the expiry line and a headline for the
//! attempt's state), and writing that picture as a PNG file atomically, so
//! that the display process, which shows whatever PNG is at the configured
//! path, never sees a half-written file. It also renders the same QR code as
//! text for a terminal (`qrpayctl pay`).
//!
//! It must never make business decisions: every text it draws arrives
//! pre-formatted from the caller, and the state only selects a headline, a
//! colour accent and whether the QR code is shown. It must never do any I/O
//! beyond the one file it is told to write (plus that file's temporary
//! sibling in the same directory and the directory fsync that makes the
//! rename durable).
//!
//! Text is drawn with the public-domain 8x8 bitmap font of the `font8x8`
//! crate, scaled by whole numbers; characters the font lacks are drawn as
//! `?`. The QR code is always black on white, with a four-module white quiet
//! zone and every module a whole number of pixels wide, so that it stays
//! crisp and scannable.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use font8x8::{BASIC_FONTS, LATIN_FONTS, UnicodeFonts};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use qrcode::bits::Bits;
use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};

/// The smallest frame accepted, as (long side, short side) in pixels.
const MIN_FRAME: (u32, u32) = (160, 120);
/// The largest width or height accepted, in pixels, to bound memory use.
const MAX_SIDE: u32 = 8192;
/// The quiet zone around the QR code, in modules, as the QR standard asks.
const QUIET_ZONE: u32 = 4;
/// The smallest module size, in pixels, that still scans reliably.
const MIN_MODULE_PX: u32 = 2;
/// The width and height of one glyph of the bitmap font, in font pixels.
const GLYPH: u32 = 8;

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const TEXT_MAIN: Rgb<u8> = Rgb([20, 20, 20]);
const TEXT_MUTED: Rgb<u8> = Rgb([90, 90, 90]);

/// The state of the payment attempt, as far as the customer display cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ScreenState {
    /// No payment attempt is in progress: a calm idle screen without a QR code.
    #[default]
    Idle,
    /// The customer should scan the QR code and pay.
    Waiting,
    /// Part of the amount has been paid; the QR code is still shown.
    PartiallyPaid,
    /// The payment is complete.
    Paid,
    /// The QR code expired before the payment was complete.
    Expired,
    /// The cashier cancelled the payment.
    Cancelled,
    /// The payment failed.
    Failed,
}

/// Everything drawn on one frame; all texts arrive pre-formatted.
///
/// Fields that are `None` are simply left out of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frame<'a> {
    /// The state of the attempt, which picks the headline and the colour accent.
    pub state: ScreenState,
    /// The QR payload; drawn only for [`ScreenState::Waiting`] and
    /// [`ScreenState::PartiallyPaid`].
    pub qr_text: Option<&'a str>,
    /// The amount with its currency, e.g. `"12,500.00 MNT"`.
    pub amount: Option<&'a str>,
    /// The amount paid so far with its currency, e.g. `"5,000.00 MNT"`;
    /// used in the [`ScreenState::PartiallyPaid`] headline.
    pub paid: Option<&'a str>,
    /// The provider's name, e.g. `"QPay"`.
    pub provider: Option<&'a str>,
    /// The expiry line, drawn verbatim (e.g. `"Pay before 14:35"`), and only
    /// while the customer can still pay (Waiting and PartiallyPaid).
    pub expires: Option<&'a str>,
    /// An optional extra line, e.g. a short URL or an instruction.
    pub note: Option<&'a str>,
}

/// Why a frame could not be rendered or written.
#[derive(thiserror::Error, Debug)]
pub enum DisplayError {
    /// The QR payload does not fit in the largest QR code, even at level L.
    #[error("the QR payload of {len} bytes is too long for a QR code")]
    QrTooLong {
        /// The payload's length in bytes.
        len: usize,
    },
    /// The frame is too small for the layout or for a scannable QR code.
    #[error("the display frame {width}x{height} is too small: it needs {needed}")]
    FrameTooSmall {
        /// The requested frame width in pixels.
        width: u32,
        /// The requested frame height in pixels.
        height: u32,
        /// What the frame would need, in words.
        needed: String,
    },
    /// The frame is larger than any real display, so it is refused rather
    /// than allocated.
    #[error("the display frame {width}x{height} is too large: at most {max} pixels a side")]
    FrameTooLarge {
        /// The requested frame width in pixels.
        width: u32,
        /// The requested frame height in pixels.
        height: u32,
        /// The largest width or height accepted.
        max: u32,
    },
    /// Writing the frame file failed.
    #[error("cannot write the display frame {}: {source}", path.display())]
    Io {
        /// The frame file that was to be written.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Encoding the QR code or the PNG failed for a reason other than size.
    #[error("cannot encode the display frame: {0}")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Renders the frame for the customer display as a `width` x `height` RGB image.
///
/// The QR code is drawn for Waiting and PartiallyPaid frames that carry a
/// `qr_text`; it is placed on the left (landscape) or at the top (portrait),
/// with the texts beside or below it. Frames without a QR code centre their
/// texts on the whole screen.
///
/// # Errors
///
/// [`DisplayError::FrameTooSmall`] when the frame is under 160x120 (120x160
/// in portrait) or its QR code would have modules under 2 pixels,
/// [`DisplayError::FrameTooLarge`] above 8192 pixels a side,
/// [`DisplayError::QrTooLong`] when the payload fits no QR code.
pub fn render(frame: &Frame<'_>, width: u32, height: u32) -> Result<RgbImage, DisplayError> {
    check_frame_size(width, height)?;
    let qr_text = frame.qr_text.filter(|_| shows_qr(frame.state));
    let layout = Layout::new(width, height, qr_text.is_some());
    let qr = match (qr_text, layout.qr_area) {
        (Some(text), Some(area)) => Some(plan_qr(text, area, width, height)?),
        _ => None,
    };

    let mut image = RgbImage::from_pixel(width, height, WHITE);
    fill_rect(&mut image, layout.accent_bar, accent(frame.state));
    if let Some(plan) = &qr {
        draw_qr(&mut image, plan);
    }
    let items = text_items(frame);
    let lines = fit_text(&items, layout.text_area, width.min(height));
    draw_lines(&mut image, &lines, layout.text_area, layout.text_align);
    Ok(image)
}

/// Writes `image` as a PNG to `path` atomically.
///
/// The PNG goes to a hidden temporary file in the same directory first; that
/// file is fsynced, renamed over `path` (atomic on POSIX, so readers see
/// either the old frame or the new one, never a partial file), and the
/// directory is fsynced so the rename survives a power cut. On failure the
/// temporary file is removed.
///
/// # Errors
///
/// [`DisplayError::Io`] naming `path` when any file operation fails, and
/// [`DisplayError::Encode`] when PNG encoding fails.
pub fn write_png_atomic(path: &Path, image: &RgbImage) -> Result<(), DisplayError> {
    let png = encode_png(image)?;
    let io_error = |source| DisplayError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = parent_dir(path);
    let file_name = path.file_name().ok_or_else(|| {
        io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ))
    })?;
    let mut temp = TempFile::create(dir, file_name).map_err(io_error)?;
    temp.write_synced(&png).map_err(io_error)?;
    temp.persist(path).map_err(io_error)?;
    sync_dir(dir).map_err(io_error)
}

/// Renders the frame and writes it to `path` atomically: [`render`] followed
/// by [`write_png_atomic`].
///
/// # Errors
///
/// Any error of [`render`] or [`write_png_atomic`].
pub fn write_frame(
    path: &Path,
    frame: &Frame<'_>,
    width: u32,
    height: u32,
) -> Result<(), DisplayError> {
    let image = render(frame, width, height)?;
    write_png_atomic(path, &image)
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
    let mut image = RgbImage::from_pixel(side, side, WHITE);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let (mx, my) = ((x / module_px) as usize, (y / module_px) as usize);
        if is_dark_with_quiet_zone(&code, mx, my) {
            *pixel = BLACK;
        }
    }
    Ok(image)
}

/// Tells whether the QR code is shown in `state`.
fn shows_qr(state: ScreenState) -> bool {
    matches!(state, ScreenState::Waiting | ScreenState::PartiallyPaid)
}

/// Refuses frames that are too small for the layout or too large to allocate.
fn check_frame_size(width: u32, height: u32) -> Result<(), DisplayError> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(DisplayError::FrameTooLarge {
            width,
            height,
            max: MAX_SIDE,
        });
    }
    let (long, short) = (width.max(height), width.min(height));
    if long < MIN_FRAME.0 || short < MIN_FRAME.1 {
        return Err(DisplayError::FrameTooSmall {
            width,
            height,
            needed: format!(
                "at least {}x{} pixels ({}x{} in portrait)",
                MIN_FRAME.0, MIN_FRAME.1, MIN_FRAME.1, MIN_FRAME.0
            ),
        });
    }
    Ok(())
}

/// A rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// How the text lines are aligned horizontally in their area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Center,
}

/// Where the parts of a frame go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// The strip along the top edge painted in the state's accent colour.
    accent_bar: Rect,
    /// The square the QR code (with its quiet zone) is centred in, if shown.
    qr_area: Option<Rect>,
    /// The area the text lines are fitted into.
    text_area: Rect,
    /// How the text lines are aligned.
    text_align: Align,
}

impl Layout {
    /// Lays out a `width` x `height` frame, with or without a QR code.
    ///
    /// The caller has already checked the frame against the minimum size, so
    /// none of the subtractions here can underflow.
    fn new(width: u32, height: u32, with_qr: bool) -> Self {
        let margin = (width.min(height) / 40).max(4);
        let accent_bar = Rect {
            x: 0,
            y: 0,
            w: width,
            h: (margin / 2).max(2),
        };
        let full = Rect {
            x: margin,
            y: margin,
            w: width - 2 * margin,
            h: height - 2 * margin,
        };
        if !with_qr {
            return Self {
                accent_bar,
                qr_area: None,
                text_area: full,
                text_align: Align::Center,
            };
        }
        if width >= height {
            Self::landscape(width, height, margin, accent_bar)
        } else {
            Self::portrait(width, height, margin, accent_bar)
        }
    }

    /// Puts the QR code on the left, at most half the width, and the text on the right.
    fn landscape(width: u32, height: u32, margin: u32, accent_bar: Rect) -> Self {
        let side = (height - 2 * margin).min((width - 3 * margin) / 2);
        let qr_area = Rect {
            x: margin,
            y: (height - side) / 2,
            w: side,
            h: side,
        };
        let text_area = Rect {
            x: 2 * margin + side,
            y: margin,
            w: width - 3 * margin - side,
            h: height - 2 * margin,
        };
        Self {
            accent_bar,
            qr_area: Some(qr_area),
            text_area,
            text_align: Align::Left,
        }
    }

    /// Puts the QR code at the top, at most three fifths of the height, and the text below.
    fn portrait(width: u32, height: u32, margin: u32, accent_bar: Rect) -> Self {
        let side = (width - 2 * margin).min((height - 3 * margin) * 3 / 5);
        let qr_area = Rect {
            x: (width - side) / 2,
            y: margin,
            w: side,
            h: side,
        };
        let text_area = Rect {
            x: margin,
            y: 2 * margin + side,
            w: width - 2 * margin,
            h: height - 3 * margin - side,
        };
        Self {
            accent_bar,
            qr_area: Some(qr_area),
            text_area,
            text_align: Align::Center,
        }
    }
}

/// Where one QR code goes: the outer square includes the quiet zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QrPlacement {
    /// The left edge of the quiet zone.
    x: u32,
    /// The top edge of the quiet zone.
    y: u32,
    /// The width and height of one module in pixels.
    module_px: u32,
    /// The number of modules on a side, without the quiet zone.
    modules: u32,
}

impl QrPlacement {
    /// Centres a code of `modules` modules (plus quiet zone) in `area` with
    /// the largest whole module size that fits.
    fn centred(area: Rect, modules: u32) -> Self {
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
    fn side(&self) -> u32 {
        (self.modules + 2 * QUIET_ZONE) * self.module_px
    }

    /// The top-left pixel of the code itself, inside the quiet zone.
    fn code_origin(&self) -> (u32, u32) {
        let quiet = QUIET_ZONE * self.module_px;
        (self.x + quiet, self.y + quiet)
    }
}

/// A QR code and where it goes on the frame.
struct QrPlan {
    code: QrCode,
    placement: QrPlacement,
}

/// Encodes `text` at level M, or at a higher level when that gives modules
/// just as large, and places it in `area`. A payload too long or too dense
/// for level M (a card payment's page address of a few thousand characters)
/// falls back to level L, the last resort: a code that scans on a clean
/// screen beats no code.
///
/// Only the data bits are encoded per level, which is cheap; the costly mask
/// selection runs once, for the chosen level.
fn plan_qr(text: &str, area: Rect, width: u32, height: u32) -> Result<QrPlan, DisplayError> {
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
fn encode_qr(text: &str, level: EcLevel) -> Result<QrCode, DisplayError> {
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
fn code_modules(code: &QrCode) -> u32 {
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
fn draw_qr(image: &mut RgbImage, plan: &QrPlan) {
    let p = plan.placement;
    let outer = Rect {
        x: p.x,
        y: p.y,
        w: p.side(),
        h: p.side(),
    };
    fill_rect(image, outer, WHITE);
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
        fill_rect(image, module, BLACK);
    }
}

/// The accent colour for a state: neutral while waiting, green when paid,
/// red when the attempt ended without payment.
fn accent(state: ScreenState) -> Rgb<u8> {
    match state {
        ScreenState::Idle => Rgb([70, 110, 150]),
        ScreenState::Waiting => Rgb([45, 55, 72]),
        ScreenState::PartiallyPaid => Rgb([190, 110, 0]),
        ScreenState::Paid => Rgb([20, 140, 60]),
        ScreenState::Expired | ScreenState::Cancelled | ScreenState::Failed => Rgb([190, 30, 30]),
    }
}

/// The headline for a frame.
fn headline(frame: &Frame<'_>) -> String {
    let text = match frame.state {
        ScreenState::Idle => "Ready",
        ScreenState::Waiting if frame.qr_text.is_none() => "Waiting for payment",
        ScreenState::Waiting => "Scan to pay",
        ScreenState::PartiallyPaid => return partial_headline(frame.paid, frame.amount),
        ScreenState::Paid => "Paid - thank you",
        ScreenState::Expired => "Payment expired",
        ScreenState::Cancelled => "Payment cancelled",
        ScreenState::Failed => "Payment failed",
    };
    text.to_owned()
}

/// The PartiallyPaid headline, e.g. "Paid 5,000.00 of 12,500.00 MNT".
fn partial_headline(paid: Option<&str>, amount: Option<&str>) -> String {
    match (paid, amount) {
        (Some(paid), Some(amount)) => {
            format!("Paid {} of {amount}", strip_shared_currency(paid, amount))
        }
        (Some(paid), None) => format!("Paid {paid}"),
        (None, _) => "Partially paid".to_owned(),
    }
}

/// Drops the currency from `paid` when `amount` ends with the same one, so
/// the headline names it only once.
fn strip_shared_currency<'a>(paid: &'a str, amount: &str) -> &'a str {
    let paid = paid.trim();
    match (paid.rsplit_once(' '), amount.trim().rsplit_once(' ')) {
        (Some((number, currency)), Some((_, amount_currency)))
            if currency == amount_currency && !number.trim().is_empty() =>
        {
            number.trim_end()
        }
        _ => paid,
    }
}

/// One text to draw, before it is scaled and wrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextItem {
    text: String,
    /// The relative size: larger weights get larger scales.
    weight: u32,
    color: Rgb<u8>,
}

/// The texts of a frame, top to bottom.
fn text_items(frame: &Frame<'_>) -> Vec<TextItem> {
    let item = |text: &str, weight, color| TextItem {
        text: text.trim().to_owned(),
        weight,
        color,
    };
    let mut items = Vec::with_capacity(5);
    if frame.state == ScreenState::Idle {
        items.push(item(&headline(frame), 4, accent(frame.state)));
    } else {
        items.push(item(&headline(frame), 3, accent(frame.state)));
        items.extend(frame.amount.map(|text| item(text, 4, TEXT_MAIN)));
    }
    items.extend(frame.provider.map(|text| item(text, 2, TEXT_MUTED)));
    if shows_qr(frame.state) {
        items.extend(frame.expires.map(|text| item(text, 2, TEXT_MAIN)));
    }
    items.extend(frame.note.map(|text| item(text, 1, TEXT_MUTED)));
    items.retain(|item| !item.text.is_empty());
    items
}

/// One line of text, ready to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextLine {
    chars: Vec<char>,
    /// Screen pixels per font pixel.
    scale: u32,
    color: Rgb<u8>,
}

impl TextLine {
    /// The line's width in pixels.
    fn width(&self) -> u32 {
        char_count(self.chars.len()) * GLYPH * self.scale
    }
}

/// Converts a character count to `u32`, saturating (no real line is that long).
fn char_count(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Scales and wraps `items` to fit `area`, shrinking the largest texts first
/// and, as a last resort at the smallest scale, dropping lines at the bottom.
///
/// `base` is the frame's shorter side, which sets the largest scales.
fn fit_text(items: &[TextItem], area: Rect, base: u32) -> Vec<TextLine> {
    let mut scales: Vec<u32> = items
        .iter()
        .map(|item| initial_scale(item, area.w, base))
        .collect();
    loop {
        let lines = wrap_items(items, &scales, area.w);
        if block_height(&lines) <= area.h {
            return lines;
        }
        match largest_reducible(&scales) {
            Some(index) => scales[index] -= 1,
            None => return truncate_to_height(lines, area.h),
        }
    }
}

/// The largest scale for `item` allowed by its weight and by the width of
/// its area on one line; at least 1.
fn initial_scale(item: &TextItem, area_width: u32, base: u32) -> u32 {
    let by_weight = item.weight * base / 256;
    let chars = char_count(item.text.chars().count()).max(1);
    let by_width = area_width / chars.saturating_mul(GLYPH);
    by_weight.min(by_width).max(1)
}

/// The index of the largest scale above 1, if any.
fn largest_reducible(scales: &[u32]) -> Option<usize> {
    scales
        .iter()
        .enumerate()
        .filter(|(_, scale)| **scale > 1)
        .max_by_key(|(index, scale)| (**scale, std::cmp::Reverse(*index)))
        .map(|(index, _)| index)
}

/// Wraps every item at its scale into lines no wider than `area_width`.
fn wrap_items(items: &[TextItem], scales: &[u32], area_width: u32) -> Vec<TextLine> {
    let mut lines = Vec::new();
    for (item, &scale) in items.iter().zip(scales) {
        let max_chars = (area_width / (GLYPH * scale)).max(1) as usize;
        for chars in wrap_words(&item.text, max_chars) {
            lines.push(TextLine {
                chars,
                scale,
                color: item.color,
            });
        }
    }
    lines
}

/// Splits `text` into lines of at most `max_chars` characters, breaking at
/// spaces where possible and inside words that are longer than a line.
fn wrap_words(text: &str, max_chars: usize) -> Vec<Vec<char>> {
    let mut lines = Vec::new();
    let mut current: Vec<char> = Vec::new();
    for word in text.split_whitespace() {
        let word: Vec<char> = word.chars().collect();
        let needed = if current.is_empty() {
            word.len()
        } else {
            current.len() + 1 + word.len()
        };
        if needed <= max_chars {
            if !current.is_empty() {
                current.push(' ');
            }
            current.extend(word);
            continue;
        }
        if !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        let mut chunks = word.chunks(max_chars).peekable();
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_some() {
                lines.push(chunk.to_vec());
            } else {
                current = chunk.to_vec();
            }
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// The gap in pixels between two consecutive lines: half a glyph at their
/// average scale.
fn line_gap(above: &TextLine, below: &TextLine) -> u32 {
    (above.scale + below.scale) * GLYPH / 4
}

/// The height of `lines` stacked with their gaps.
fn block_height(lines: &[TextLine]) -> u32 {
    let glyphs: u32 = lines.iter().map(|line| GLYPH * line.scale).sum();
    let gaps: u32 = lines
        .windows(2)
        .map(|pair| line_gap(&pair[0], &pair[1]))
        .sum();
    glyphs + gaps
}

/// Drops lines from the bottom until the rest fit in `height`.
fn truncate_to_height(mut lines: Vec<TextLine>, height: u32) -> Vec<TextLine> {
    while !lines.is_empty() && block_height(&lines) > height {
        lines.pop();
    }
    lines
}

/// Draws `lines` centred vertically in `area`, aligned as `align` says.
fn draw_lines(image: &mut RgbImage, lines: &[TextLine], area: Rect, align: Align) {
    let mut y = area.y + area.h.saturating_sub(block_height(lines)) / 2;
    for (index, line) in lines.iter().enumerate() {
        let x = match align {
            Align::Left => area.x,
            Align::Center => area.x + area.w.saturating_sub(line.width()) / 2,
        };
        draw_text(image, x, y, line);
        y += GLYPH * line.scale;
        if let Some(next) = lines.get(index + 1) {
            y += line_gap(line, next);
        }
    }
}

/// Draws one line of text with its top-left corner at (`x`, `y`).
fn draw_text(image: &mut RgbImage, x: u32, y: u32, line: &TextLine) {
    let advance = GLYPH * line.scale;
    for (index, &c) in line.chars.iter().enumerate() {
        let left = x.saturating_add(char_count(index).saturating_mul(advance));
        draw_glyph(image, left, y, glyph(c), line.scale, line.color);
    }
}

/// Draws one glyph bitmap; in each row byte the lowest bit is the leftmost pixel.
fn draw_glyph(image: &mut RgbImage, x: u32, y: u32, bitmap: [u8; 8], scale: u32, color: Rgb<u8>) {
    for (row, bits) in (0u32..).zip(bitmap) {
        for column in 0..GLYPH {
            if bits & (1 << column) != 0 {
                let cell = Rect {
                    x: x.saturating_add(column * scale),
                    y: y.saturating_add(row * scale),
                    w: scale,
                    h: scale,
                };
                fill_rect(image, cell, color);
            }
        }
    }
}

/// The bitmap for `c`: ASCII and Latin-1 from the font, `?` for anything else.
fn glyph(c: char) -> [u8; 8] {
    let found = if c.is_control() {
        None
    } else {
        BASIC_FONTS.get(c).or_else(|| LATIN_FONTS.get(c))
    };
    // The font always has '?'; the solid block is only a defensive fallback.
    found.or_else(|| BASIC_FONTS.get('?')).unwrap_or([0xFF; 8])
}

/// Fills `rect` with `color`, clipped to the image.
fn fill_rect(image: &mut RgbImage, rect: Rect, color: Rgb<u8>) {
    let (width, height) = image.dimensions();
    let x0 = rect.x.min(width) as usize;
    let x1 = rect.x.saturating_add(rect.w).min(width) as usize;
    let y0 = rect.y.min(height) as usize;
    let y1 = rect.y.saturating_add(rect.h).min(height) as usize;
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let stride = width as usize * 3;
    let buffer: &mut [u8] = image;
    for row in buffer.chunks_exact_mut(stride).take(y1).skip(y0) {
        for pixel in row[x0 * 3..x1 * 3].chunks_exact_mut(3) {
            pixel.copy_from_slice(&color.0);
        }
    }
}

/// Encodes `image` as a PNG in memory, favouring speed over size: the frame
/// is mostly flat colour, so fast compression with adaptive filtering still
/// makes a small file (about 15 KB at 800x480) in well under a millisecond.
fn encode_png(image: &RgbImage) -> Result<Vec<u8>, DisplayError> {
    let mut png = Vec::with_capacity(64 * 1024);
    let encoder =
        PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Adaptive);
    encoder
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::Rgb8,
        )
        .map_err(|error| DisplayError::Encode(Box::new(error)))?;
    Ok(png)
}

/// The directory holding `path`; the current directory for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes temporary file names unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A hidden temporary file next to the target, removed on drop unless it
/// was renamed into place.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Creates a new, empty temporary file in `dir` named after `target_name`.
    fn create(dir: &Path, target_name: &std::ffi::OsStr) -> io::Result<Self> {
        // A name can only clash with a leftover of a crashed process that had
        // the same process id, so a few attempts are plenty.
        let mut last_error = None;
        for _ in 0..8 {
            let path = dir.join(temp_name(target_name));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file: Some(file),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free temporary file name")))
    }

    /// Writes `bytes`, flushes them to disk and closes the file.
    fn write_synced(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the temporary file is already closed"))?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    /// Renames the file over `target`; after that, dropping it removes nothing.
    fn persist(mut self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            // Best effort: the write already failed and that error is reported.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The hidden temporary name for `target_name`: `.NAME.PID-N.tmp`.
fn temp_name(target_name: &std::ffi::OsStr) -> OsString {
    let mut name = OsString::from(".");
    name.push(target_name);
    let count = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".{}-{count}.tmp", std::process::id()));
    name
}

/// Flushes the directory entry of a rename to disk.
///
/// Some file systems do not support syncing a directory; there the rename is
/// as durable as it can be made, so that is not an error.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|handle| handle.sync_all()) {
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Directories cannot be synced on this platform; the rename is left as it is.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_plain_qr_image_decodes_to_its_payload() {
        let payload = "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN62150811Chuyen tien6304BBB8";
        let image = super::qr_image(payload, 6).expect("image");
        let gray = image::DynamicImage::ImageRgb8(image).to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(gray);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().expect("decodes");
        assert_eq!(content, payload);
    }

    use super::*;

    const VIETQR: &str = "00020101021238630010A000000727013300069704320119MQQ0759866wrYqzPLw70208QRIBFTTA5204549953037045405120005802VN5916QRPAYMENT UAT 216011HO CHI MINH62430109wrYqzPLw70708Q07598660814AP26146183702063042A9D";
    const QPAY: &str = "0002010102121531279404962794049600000000KKTQPAY52046010530349654031005802MN5913TEST_MERCHANT6011Ulaanbaatar6244010712345670504test0721G7ZEWdbzkppBhJ1nouBhZ6304879D";
    const RESOLUTIONS: [(u32, u32); 4] = [(800, 480), (480, 272), (1024, 600), (600, 1024)];

    /// The payloads under test: about 60, 160, 200 and 250 characters.
    fn payloads() -> Vec<String> {
        let short = "https://qpay.mn/s/4f7Kx2 invoice 8c1e9a20-55b1-4c3d-9e7a-012";
        let long: String = format!("{QPAY}{VIETQR}").chars().take(250).collect();
        assert_eq!(short.len(), 60);
        assert_eq!(long.len(), 250);
        vec![short.to_owned(), QPAY.to_owned(), VIETQR.to_owned(), long]
    }

    fn waiting(qr_text: &str) -> Frame<'_> {
        Frame {
            state: ScreenState::Waiting,
            qr_text: Some(qr_text),
            amount: Some("12,500.00 MNT"),
            provider: Some("QPay"),
            expires: Some("Pay before 14:35"),
            note: Some("Open your bank app and scan"),
            ..Frame::default()
        }
    }

    /// Decodes every QR code rqrr finds, as (raw ECC bits, content).
    fn decode_all(image: &RgbImage) -> Vec<(u16, String)> {
        let gray = image::DynamicImage::ImageRgb8(image.clone()).to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(gray);
        prepared
            .detect_grids()
            .iter()
            .map(|grid| {
                let (meta, content) = grid.decode().expect("the grid decodes");
                (meta.ecc_level, content)
            })
            .collect()
    }

    /// Ranks the raw format bits rqrr reports (M=0, L=1, H=2, Q=3) as L<M<Q<H.
    fn ecc_rank(raw: u16) -> u8 {
        match raw {
            1 => 0,
            0 => 1,
            3 => 2,
            2 => 3,
            other => panic!("unknown ECC bits {other}"),
        }
    }

    #[test]
    fn waiting_frames_decode_to_the_payload_at_level_m_or_higher() {
        for payload in payloads() {
            for (width, height) in RESOLUTIONS {
                let image = render(&waiting(&payload), width, height).expect("renders");
                assert_eq!(image.dimensions(), (width, height));
                let decoded = decode_all(&image);
                assert_eq!(decoded.len(), 1, "one QR at {width}x{height}");
                let (ecc, content) = &decoded[0];
                assert_eq!(content, &payload, "content at {width}x{height}");
                assert!(ecc_rank(*ecc) >= 1, "level M or higher at {width}x{height}");
            }
        }
    }

    #[test]
    fn partially_paid_frames_show_a_scannable_qr_and_the_paid_headline() {
        let frame = Frame {
            state: ScreenState::PartiallyPaid,
            paid: Some("5,000.00 MNT"),
            ..waiting(QPAY)
        };
        let image = render(&frame, 1920, 1080).expect("renders");
        let decoded = decode_all(&image);
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].1, QPAY);
        assert_eq!(headline(&frame), "Paid 5,000.00 of 12,500.00 MNT");
    }

    #[test]
    fn the_quiet_zone_is_white_and_modules_are_whole_pixels() {
        for (width, height) in RESOLUTIONS {
            let image = render(&waiting(VIETQR), width, height).expect("renders");
            let layout = Layout::new(width, height, true);
            let area = layout.qr_area.expect("a QR area");
            let plan = plan_qr(VIETQR, area, width, height).expect("fits");
            let p = plan.placement;
            assert!(p.module_px >= MIN_MODULE_PX);
            let (ox, oy) = p.code_origin();
            let code_side = p.modules * p.module_px;
            for y in p.y..p.y + p.side() {
                for x in p.x..p.x + p.side() {
                    let inside =
                        (ox..ox + code_side).contains(&x) && (oy..oy + code_side).contains(&y);
                    let pixel = *image.get_pixel(x, y);
                    if inside {
                        // Every pixel of a module matches the module's top-left pixel.
                        let mx = ox + (x - ox) / p.module_px * p.module_px;
                        let my = oy + (y - oy) / p.module_px * p.module_px;
                        assert!(pixel == WHITE || pixel == BLACK);
                        assert_eq!(pixel, *image.get_pixel(mx, my));
                    } else {
                        assert_eq!(pixel, WHITE, "quiet zone at ({x},{y}), {width}x{height}");
                    }
                }
            }
            // The finder pattern's corner is dark, so the code starts right at the origin.
            assert_eq!(*image.get_pixel(ox, oy), BLACK);
            assert_eq!(*image.get_pixel(ox - 1, oy), WHITE);
            assert_eq!(*image.get_pixel(ox, oy - 1), WHITE);
        }
    }

    #[test]
    fn the_level_is_raised_only_when_modules_keep_their_size() {
        let mut raised = 0;
        for payload in payloads() {
            for (width, height) in RESOLUTIONS {
                let area = Layout::new(width, height, true).qr_area.expect("a QR area");
                let plan = plan_qr(&payload, area, width, height).expect("fits");
                let at_m = encode_qr(&payload, EcLevel::M).expect("encodes");
                let m_px = QrPlacement::centred(area, code_modules(&at_m)).module_px;
                assert_eq!(plan.placement.module_px, m_px, "{width}x{height}");
                assert!(plan.code.error_correction_level() >= EcLevel::M);
                if plan.code.error_correction_level() > EcLevel::M {
                    raised += 1;
                }
            }
        }
        assert!(raised > 0, "some frames get a free upgrade above M");
    }

    #[test]
    fn the_qr_is_as_large_as_the_area_allows() {
        let layout = Layout::new(800, 480, true);
        let area = layout.qr_area.expect("a QR area");
        let plan = plan_qr(QPAY, area, 800, 480).expect("fits");
        let p = plan.placement;
        assert!(p.side() <= area.w && p.side() + (p.modules + 8) > area.w);
        assert!(p.x >= area.x && p.y >= area.y);
        let text = layout.text_area;
        assert!(p.x + p.side() <= text.x, "the QR stays left of the text");
    }

    #[test]
    fn portrait_puts_the_qr_above_the_text() {
        let layout = Layout::new(600, 1024, true);
        let area = layout.qr_area.expect("a QR area");
        assert!(area.y + area.h <= layout.text_area.y);
        assert_eq!(layout.text_align, Align::Center);
    }

    #[test]
    fn frames_without_a_qr_have_no_grid_and_the_right_size() {
        let states = [
            ScreenState::Idle,
            ScreenState::Paid,
            ScreenState::Expired,
            ScreenState::Cancelled,
            ScreenState::Failed,
        ];
        for state in states {
            for (width, height) in [(800, 480), (480, 272)] {
                let frame = Frame {
                    state,
                    ..waiting(QPAY)
                };
                let image = render(&frame, width, height).expect("renders");
                assert_eq!(image.dimensions(), (width, height));
                assert!(decode_all(&image).is_empty(), "{state:?} shows no QR");
                // The accent bar is drawn in the state's colour.
                assert_eq!(*image.get_pixel(width / 2, 0), accent(state));
            }
        }
    }

    #[test]
    fn waiting_without_a_payload_renders_text_only() {
        let frame = Frame {
            qr_text: None,
            ..waiting(QPAY)
        };
        let image = render(&frame, 800, 480).expect("renders");
        assert!(decode_all(&image).is_empty());
    }

    #[test]
    fn text_is_drawn_and_unknown_characters_become_question_marks() {
        assert_eq!(glyph('\u{416}'), glyph('?'));
        assert_eq!(glyph('\u{20AE}'), glyph('?'));
        assert_eq!(glyph('\n'), glyph('?'));
        assert_ne!(glyph('A'), glyph('?'));
        assert_ne!(
            glyph('\u{e9}'),
            glyph('?'),
            "Latin-1 letters come from the font"
        );
        let frame = Frame {
            state: ScreenState::Paid,
            amount: Some("12 500 \u{20AE}"),
            provider: Some("\u{413}\u{43E}\u{43B}\u{43E}\u{43C}\u{442} \u{1F600}"),
            note: Some(&"x".repeat(2000)),
            ..Frame::default()
        };
        let image = render(&frame, 160, 120).expect("renders");
        let dark = image.pixels().filter(|pixel| pixel.0[0] < 128).count();
        assert!(dark > 100, "some text is drawn");
    }

    #[test]
    fn long_texts_wrap_inside_the_text_area() {
        let area = Rect {
            x: 10,
            y: 10,
            w: 200,
            h: 400,
        };
        let items = vec![TextItem {
            text: "Scan the code with any Mongolian bank application please".to_owned(),
            weight: 3,
            color: BLACK,
        }];
        let lines = fit_text(&items, area, 480);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|line| line.width() <= area.w));
        assert!(block_height(&lines) <= area.h);
        assert_eq!(
            wrap_words("abcdefgh ij", 3),
            vec![
                vec!['a', 'b', 'c'],
                vec!['d', 'e', 'f'],
                vec!['g', 'h'],
                vec!['i', 'j'],
            ]
        );
    }

    #[test]
    fn headlines_follow_the_state() {
        let frame = |state| Frame {
            state,
            ..Frame::default()
        };
        assert_eq!(headline(&frame(ScreenState::Idle)), "Ready");
        assert_eq!(
            headline(&frame(ScreenState::Waiting)),
            "Waiting for payment",
            "no QR to scan"
        );
        assert_eq!(headline(&waiting(QPAY)), "Scan to pay");
        assert_eq!(headline(&frame(ScreenState::Paid)), "Paid - thank you");
        assert_eq!(headline(&frame(ScreenState::Expired)), "Payment expired");
        assert_eq!(
            headline(&frame(ScreenState::Cancelled)),
            "Payment cancelled"
        );
        assert_eq!(headline(&frame(ScreenState::Failed)), "Payment failed");
        assert_eq!(
            headline(&frame(ScreenState::PartiallyPaid)),
            "Partially paid"
        );
        assert_eq!(
            partial_headline(Some("5,000 VND"), Some("12,000 MNT")),
            "Paid 5,000 VND of 12,000 MNT"
        );
    }

    #[test]
    fn frames_below_the_minimum_are_too_small() {
        for (width, height) in [(159, 120), (160, 119), (100, 80), (0, 0)] {
            let result = render(&waiting(QPAY), width, height);
            assert!(
                matches!(result, Err(DisplayError::FrameTooSmall { width: w, height: h, .. }) if (w, h) == (width, height)),
                "{width}x{height}"
            );
        }
        let idle = render(&Frame::default(), 120, 160).expect("the portrait minimum renders");
        assert_eq!(idle.dimensions(), (120, 160));
    }

    #[test]
    fn a_qr_with_modules_under_two_pixels_is_too_small() {
        let long: String = format!("{QPAY}{VIETQR}").chars().take(250).collect();
        let result = render(&waiting(&long), 160, 120);
        assert!(matches!(result, Err(DisplayError::FrameTooSmall { .. })));
    }

    /// A card payment's page address as long as seed 004's (about 2 800 characters).
    fn long_page_address() -> String {
        let mut url =
            "https://ibanking.dev.appotapay.com/domestic-card/napas/confirm-otp?tran=".to_owned();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        url.extend(alphabet.chars().cycle().take(2800 - url.len() - 70));
        url.push_str("=&sign=97b25a7e38d6501bbaeb4fa0793670209e3f6987e9c48f6b1fc58f0d828f79fa");
        url
    }

    #[test]
    fn a_payload_too_long_for_level_m_falls_back_to_level_l() {
        let url = long_page_address();
        assert!(
            matches!(
                encode_qr(&url, EcLevel::M),
                Err(DisplayError::QrTooLong { .. })
            ),
            "too long for M"
        );
        let image = render(&waiting(&url), 800, 480).expect("renders at level L");
        let decoded = decode_all(&image);
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].1, url);
        assert_eq!(ecc_rank(decoded[0].0), 0, "level L");
        // Where even level L cannot keep modules of 2 pixels, the frame is refused as too
        // small (the caller then draws it without the QR).
        assert!(matches!(
            render(&waiting(&url), 480, 272),
            Err(DisplayError::FrameTooSmall { .. })
        ));
    }

    #[test]
    fn huge_frames_and_payloads_are_refused() {
        let result = render(&Frame::default(), 100_000, 100_000);
        assert!(matches!(result, Err(DisplayError::FrameTooLarge { .. })));
        let payload = "x".repeat(3000);
        assert!(matches!(
            render(&waiting(&payload), 800, 480),
            Err(DisplayError::QrTooLong { len: 3000 })
        ));
        assert!(matches!(
            terminal_qr(&payload),
            Err(DisplayError::QrTooLong { len: 3000 })
        ));
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("lists")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_png_atomic_writes_a_complete_png_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("frame.png");
        let image = render(&waiting(QPAY), 800, 480).expect("renders");
        write_png_atomic(&path, &image).expect("writes");
        assert_eq!(entries(dir.path()), vec!["frame.png".to_owned()]);
        let read = image::open(&path).expect("reads").to_rgb8();
        assert_eq!(read.dimensions(), (800, 480));
        assert_eq!(read, image, "the PNG round-trips losslessly");
    }

    #[test]
    fn write_frame_replaces_an_existing_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("frame.png");
        fs::write(&path, b"old").expect("writes the old file");
        write_frame(&path, &waiting(VIETQR), 480, 272).expect("writes");
        let read = image::open(&path).expect("reads").to_rgb8();
        assert_eq!(read.dimensions(), (480, 272));
        let paid = Frame {
            state: ScreenState::Paid,
            ..waiting(VIETQR)
        };
        write_frame(&path, &paid, 1024, 600).expect("writes again");
        let read = image::open(&path).expect("reads").to_rgb8();
        assert_eq!(read.dimensions(), (1024, 600));
        assert_eq!(entries(dir.path()), vec!["frame.png".to_owned()]);
    }

    #[test]
    fn writing_into_a_missing_directory_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing").join("frame.png");
        let image = RgbImage::from_pixel(160, 120, WHITE);
        let error = write_png_atomic(&path, &image).expect_err("fails");
        assert!(matches!(&error, DisplayError::Io { path: p, .. } if *p == path));
        assert!(error.to_string().contains(&path.display().to_string()));
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn terminal_qr_has_even_lines_and_a_quiet_zone() {
        let text = terminal_qr(QPAY).expect("encodes");
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines.is_empty());
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|line| line.chars().count() == width));
        let code = encode_qr(QPAY, EcLevel::M).expect("encodes");
        assert_eq!(width, code.width() + 8);
        assert_eq!(lines.len(), (code.width() + 8).div_ceil(2));
        // The first two lines are all quiet zone: light, full blocks.
        assert!(
            lines[..2]
                .iter()
                .all(|line| line.chars().all(|c| c == '\u{2588}'))
        );
        assert!(
            lines[2].contains(' '),
            "the code's dark modules start on line 3"
        );
    }

    #[test]
    fn terminal_qr_decodes_when_drawn_as_pixels() {
        let text = terminal_qr(VIETQR).expect("encodes");
        let lines: Vec<Vec<char>> = text.lines().map(|line| line.chars().collect()).collect();
        let scale = 4;
        let size = lines[0].len() as u32;
        let mut image = RgbImage::from_pixel(size * scale, lines.len() as u32 * 2 * scale, WHITE);
        for (row, line) in lines.iter().enumerate() {
            for (column, c) in line.iter().enumerate() {
                let (top_light, bottom_light) = match c {
                    '\u{2588}' => (true, true),
                    '\u{2580}' => (true, false),
                    '\u{2584}' => (false, true),
                    _ => (false, false),
                };
                for (half, light) in [(0, top_light), (1, bottom_light)] {
                    let rect = Rect {
                        x: column as u32 * scale,
                        y: (row as u32 * 2 + half) * scale,
                        w: scale,
                        h: scale,
                    };
                    fill_rect(&mut image, rect, if light { WHITE } else { BLACK });
                }
            }
        }
        let decoded = decode_all(&image);
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].1, VIETQR);
    }
}
