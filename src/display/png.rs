//! The frame: the snapshot drawn as an RGB image, the same content as the kiosk page, for the
//! PNG file at `display.png_path` (and for the framebuffer), and the PNG sink that keeps that
//! file current.
//!
//! Layout, for any size from 160×120 up: a header in the state's colour with the provider's
//! name and the QR's expiry; below it, while the customer can pay, the QR on the left (on top
//! in portrait) and beside it what to pay, how, the cart and its total; otherwise a sign (a
//! check mark for paid, a cross for an ended payment), the state in large letters, the amount
//! and what to do, centred. Texts shrink to fit, and cart lines that do not fit become
//! "+ N more". A QR too dense for its space (modules under two pixels) is left off and the
//! texts still say what is happening.

use std::sync::Arc;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};

use super::font::{self, Weight};
use super::model::{ScreenState, Snapshot};
use super::qr::{self, QrPlan};
use super::{DisplayError, Hub, Rect, atomic, fill_rect};

/// The smallest frame accepted, as (long side, short side) in pixels.
const MIN_FRAME: (u32, u32) = (160, 120);
/// The largest width or height accepted, in pixels, to bound memory use.
const MAX_SIDE: u32 = 8192;

/// The page's colours, shared by the frame.
pub mod palette {
    use image::Rgb;

    use crate::display::model::ScreenState;

    pub const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
    pub const TEXT: Rgb<u8> = Rgb([26, 31, 43]);
    pub const MUTED: Rgb<u8> = Rgb([91, 100, 116]);
    pub const RULE: Rgb<u8> = Rgb([222, 226, 232]);
    pub const ON_ACCENT: Rgb<u8> = Rgb([255, 255, 255]);

    /// The state's colour: blue while waiting, amber for a partial payment, green when paid,
    /// red when the payment ended without it.
    pub fn accent(state: ScreenState) -> Rgb<u8> {
        match state {
            ScreenState::Idle | ScreenState::Waiting => Rgb([31, 78, 140]),
            ScreenState::PartiallyPaid => Rgb([178, 106, 0]),
            ScreenState::Paid => Rgb([30, 142, 62]),
            ScreenState::Expired | ScreenState::Cancelled | ScreenState::Failed => {
                Rgb([198, 40, 40])
            }
        }
    }
}

use palette::{BACKGROUND, MUTED, ON_ACCENT, RULE, TEXT, accent};

/// Renders `snapshot` as a `width` x `height` frame.
///
/// # Errors
///
/// [`DisplayError::FrameTooSmall`] under 160x120 (120x160 in portrait),
/// [`DisplayError::FrameTooLarge`] above 8192 pixels a side.
pub fn render(snapshot: &Snapshot, width: u32, height: u32) -> Result<RgbImage, DisplayError> {
    check_frame_size(width, height)?;
    let mut image = RgbImage::from_pixel(width, height, BACKGROUND);
    let unit = width.min(height) as f32 / 100.0;
    let margin = (unit * 4.0).round() as u32;
    let color = accent(snapshot.state);

    let header = Rect {
        x: 0,
        y: 0,
        w: width,
        h: (unit * 11.0).round() as u32,
    };
    fill_rect(&mut image, header, color);
    draw_header(&mut image, snapshot, header, margin, unit);

    let body = Rect {
        x: margin,
        y: header.h + margin,
        w: width - 2 * margin,
        h: height - header.h - 2 * margin,
    };
    let with_qr = snapshot.qr_text.as_deref().and_then(|text| {
        let (area, column) = split_for_qr(body, margin);
        match qr::plan_qr(text, area, width, height) {
            Ok(plan) => Some((plan, column)),
            Err(error) => {
                tracing::debug!(%error, "the QR does not fit the frame; drawing the texts only");
                None
            }
        }
    });
    match with_qr {
        Some((plan, column)) => {
            qr::draw(&mut image, &plan);
            let align = if column.y > plan_bottom(&plan) - 1 {
                Align::Center
            } else {
                Align::Left
            };
            let blocks = blocks(snapshot, false);
            draw_column(
                &mut image,
                (&blocks, snapshot.text.more_items),
                column,
                unit,
                align,
            );
        }
        None => {
            let column_width = body.w.min((unit * 120.0) as u32);
            let column = Rect {
                x: body.x + (body.w - column_width) / 2,
                w: column_width,
                ..body
            };
            let blocks = blocks(snapshot, true);
            draw_column(
                &mut image,
                (&blocks, snapshot.text.more_items),
                column,
                unit,
                Align::Center,
            );
        }
    }
    Ok(image)
}

/// Renders `snapshot` and writes it to `path` atomically as a PNG.
///
/// # Errors
///
/// Any error of [`render`] or [`write_png_atomic`].
pub fn write_frame(
    path: &std::path::Path,
    snapshot: &Snapshot,
    width: u32,
    height: u32,
) -> Result<(), DisplayError> {
    let image = render(snapshot, width, height)?;
    write_png_atomic(path, &image)
}

/// Writes `image` as a PNG to `path` atomically (see `atomic.rs`).
///
/// # Errors
///
/// [`DisplayError::Io`] naming `path` when any file operation fails, and
/// [`DisplayError::Encode`] when PNG encoding fails.
pub fn write_png_atomic(path: &std::path::Path, image: &RgbImage) -> Result<(), DisplayError> {
    atomic::write_atomic(path, &encode_png(image)?)
}

/// Starts the PNG sink: it draws every snapshot the hub publishes into `display.png_path`, the
/// newest first when several came while it drew, and acknowledges each.
pub fn spawn_sink(hub: &Arc<Hub>) -> tokio::task::JoinHandle<()> {
    let drawn = hub.attach_frame_sink();
    let mut snapshots = hub.subscribe();
    let settings = hub.settings().clone();
    tokio::spawn(async move {
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            let version = snapshot.version;
            let path = settings.png_path.clone();
            let (width, height) = (settings.width, settings.height);
            // Drawn once readers see it: the directory's fsync (durability, not visibility)
            // comes after.
            let drawn_now = drawn.clone();
            let written = crate::logging::spawn_blocking(move || {
                let image = render(&snapshot, width, height)?;
                let png = encode_png(&image)?;
                atomic::write_atomic_then(&path, &png, || drawn_now.done(version))
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, "cannot write the customer display frame")
                }
                Err(error) => tracing::error!(%error, "the customer display task failed"),
            }
            drawn.done(version);
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    })
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

/// The QR's square and the texts' column: side by side in landscape (the QR at most half the
/// width), stacked in portrait (the QR at most 55% of the height).
fn split_for_qr(body: Rect, margin: u32) -> (Rect, Rect) {
    if body.w >= body.h {
        let side = body.h.min((body.w - margin) / 2);
        let area = Rect {
            x: body.x,
            y: body.y + (body.h - side) / 2,
            w: side,
            h: side,
        };
        let column = Rect {
            x: body.x + side + margin,
            y: body.y,
            w: body.w - side - margin,
            h: body.h,
        };
        (area, column)
    } else {
        let side = body.w.min(body.h * 55 / 100);
        let area = Rect {
            x: body.x + (body.w - side) / 2,
            y: body.y,
            w: side,
            h: side,
        };
        let column = Rect {
            x: body.x,
            y: body.y + side + margin,
            w: body.w,
            h: body.h - side - margin,
        };
        (area, column)
    }
}

/// The bottom edge of the QR with its quiet zone.
fn plan_bottom(plan: &QrPlan) -> u32 {
    plan.placement.y + plan.placement.side()
}

/// The header: the provider's name on the left, the QR's expiry on the right, both in white
/// on the state's colour.
fn draw_header(image: &mut RgbImage, snapshot: &Snapshot, header: Rect, margin: u32, unit: f32) {
    let inner = header.w.saturating_sub(2 * margin) as f32;
    let mut right_width = 0.0;
    if let Some(until) = snapshot
        .valid_until
        .as_deref()
        .filter(|_| snapshot.qr.is_some())
    {
        let px = fit_px(until, Weight::Regular, unit * 4.2, inner * 0.6);
        right_width = font::width(until, Weight::Regular, px);
        let x = header.w as f32 - margin as f32 - right_width;
        let baseline = centred_baseline(header, Weight::Regular, px);
        font::draw(image, until, Weight::Regular, px, (x, baseline), ON_ACCENT);
    }
    if let Some(provider) = snapshot.provider.as_deref() {
        let room = inner - right_width - margin as f32;
        let px = fit_px(provider, Weight::Bold, unit * 5.5, room.max(unit));
        let baseline = centred_baseline(header, Weight::Bold, px);
        let text = ellipsize(provider, Weight::Bold, px, room);
        font::draw(
            image,
            &text,
            Weight::Bold,
            px,
            (margin as f32, baseline),
            ON_ACCENT,
        );
    }
}

/// The baseline that centres a line of `px` pixels in `area` vertically.
fn centred_baseline(area: Rect, weight: Weight, px: f32) -> f32 {
    area.y as f32 + (area.h as f32 - font::line_height(px)) / 2.0 + font::baseline(weight, px)
}

/// The size at most `px` at which `text` fits `width` on one line (never under 6 pixels).
fn fit_px(text: &str, weight: Weight, px: f32, width: f32) -> f32 {
    let natural = font::width(text, weight, px);
    if natural <= width || natural <= 0.0 {
        px
    } else {
        (px * width / natural).max(6.0)
    }
}

/// `text` cut with `…` to fit `width` on one line.
fn ellipsize(text: &str, weight: Weight, px: f32, width: f32) -> String {
    if font::width(text, weight, px) <= width {
        return text.to_owned();
    }
    let chars: Vec<char> = font::nfc(text).chars().collect();
    let mut keep = chars.len();
    while keep > 0 {
        keep -= 1;
        let candidate: String = chars[..keep]
            .iter()
            .collect::<String>()
            .trim_end()
            .to_owned()
            + "…";
        if font::width(&candidate, weight, px) <= width {
            return candidate;
        }
    }
    "…".to_owned()
}

/// Horizontal alignment of a column's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Center,
}

/// A sign drawn above the state on frames without a QR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Check,
    Cross,
}

/// One part of a column; sizes are in hundredths of the frame's shorter side.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    /// Wrapped text, at most `lines` lines.
    Text {
        text: String,
        weight: Weight,
        size: f32,
        color: Rgb<u8>,
        lines: usize,
    },
    /// A label on the left and a value on the right (a cart line, paid, remaining, total).
    Row {
        label: String,
        value: String,
        weight: Weight,
        size: f32,
        color: Rgb<u8>,
    },
    /// A thin horizontal line.
    Rule,
    Sign(Sign, Rgb<u8>),
}

/// The column's blocks for `snapshot`; `centred` is the layout without a QR.
fn blocks(snapshot: &Snapshot, centred: bool) -> Vec<Block> {
    let color = accent(snapshot.state);
    let text = |text: &str, weight, size, color, lines| Block::Text {
        text: text.to_owned(),
        weight,
        size,
        color,
        lines,
    };
    let mut blocks = Vec::new();
    let emphatic = centred || snapshot.state == ScreenState::PartiallyPaid;
    match snapshot.state {
        ScreenState::Paid => blocks.push(Block::Sign(Sign::Check, color)),
        ScreenState::Expired | ScreenState::Cancelled | ScreenState::Failed => {
            blocks.push(Block::Sign(Sign::Cross, color));
        }
        _ => {}
    }
    if emphatic {
        blocks.push(text(&snapshot.title, Weight::Bold, 8.0, color, 2));
    } else {
        blocks.push(text(&snapshot.title, Weight::Regular, 5.0, MUTED, 2));
    }
    if let Some(amount) = &snapshot.amount {
        let (size, tint) = match snapshot.state {
            ScreenState::Expired | ScreenState::Cancelled | ScreenState::Failed => (9.0, MUTED),
            _ => (13.0, TEXT),
        };
        blocks.push(text(amount, Weight::Bold, size, tint, 1));
    }
    for row in &snapshot.rows {
        blocks.push(Block::Row {
            label: row.label.clone(),
            value: row.value.clone(),
            weight: Weight::Bold,
            size: 5.5,
            color: TEXT,
        });
    }
    if let Some(instruction) = &snapshot.instruction {
        blocks.push(text(instruction, Weight::Regular, 5.0, TEXT, 3));
    }
    let shows_cart = matches!(
        snapshot.state,
        ScreenState::Waiting | ScreenState::PartiallyPaid
    );
    if shows_cart && !snapshot.items.is_empty() {
        blocks.push(Block::Rule);
        for line in &snapshot.items {
            let label = if line.quantity.is_empty() {
                line.description.clone()
            } else {
                format!("{} × {}", line.quantity, line.description)
            };
            blocks.push(Block::Row {
                label,
                value: line.amount.clone(),
                weight: Weight::Regular,
                size: 4.2,
                color: MUTED,
            });
        }
        if let Some(total) = &snapshot.total {
            blocks.push(Block::Rule);
            blocks.push(Block::Row {
                label: total.label.clone(),
                value: total.value.clone(),
                weight: Weight::Bold,
                size: 4.8,
                color: TEXT,
            });
        }
    }
    blocks
}

/// A block laid out: what to draw, and its height in pixels.
#[derive(Debug, Clone)]
enum Placed {
    Lines {
        lines: Vec<String>,
        weight: Weight,
        px: f32,
        color: Rgb<u8>,
    },
    Row {
        label: String,
        value: String,
        weight: Weight,
        px: f32,
        color: Rgb<u8>,
    },
    Rule,
    Sign(Sign, Rgb<u8>, f32),
}

impl Placed {
    fn height(&self) -> f32 {
        match self {
            Placed::Lines { lines, px, .. } => lines.len() as f32 * font::line_height(*px),
            Placed::Row { px, .. } => font::line_height(*px),
            Placed::Rule => 1.0,
            Placed::Sign(_, _, side) => *side,
        }
    }

    /// The space above this block when `previous` comes before it.
    fn gap(&self, previous: &Placed, unit: f32) -> f32 {
        match (previous, self) {
            (Placed::Row { .. }, Placed::Row { .. }) => 0.0,
            (_, Placed::Rule) | (Placed::Rule, _) => unit * 1.6,
            _ => unit * 2.2,
        }
    }
}

/// Lays `blocks` out for a column `width` wide at `scale` times their sizes.
fn place(blocks: &[Block], width: f32, unit: f32, scale: f32) -> Vec<Placed> {
    blocks
        .iter()
        .map(|block| match block {
            Block::Text {
                text,
                weight,
                size,
                color,
                lines,
            } => {
                let px = unit * size * scale;
                let px = if *lines == 1 {
                    fit_px(text, *weight, px, width)
                } else {
                    px
                };
                Placed::Lines {
                    lines: wrap(text, *weight, px, width, *lines),
                    weight: *weight,
                    px,
                    color: *color,
                }
            }
            Block::Row {
                label,
                value,
                weight,
                size,
                color,
            } => Placed::Row {
                label: label.clone(),
                value: value.clone(),
                weight: *weight,
                px: unit * size * scale,
                color: *color,
            },
            Block::Rule => Placed::Rule,
            Block::Sign(sign, color) => Placed::Sign(*sign, *color, unit * 16.0 * scale),
        })
        .collect()
}

/// The height of `placed` stacked with their gaps.
fn stacked_height(placed: &[Placed], unit: f32) -> f32 {
    let mut height = 0.0;
    for (index, block) in placed.iter().enumerate() {
        if index > 0 {
            height += block.gap(&placed[index - 1], unit);
        }
        height += block.height();
    }
    height
}

/// Fits `blocks` into `area` (cart lines first become "+ N more", then everything shrinks)
/// and draws them, centred vertically.
fn draw_column(
    image: &mut RgbImage,
    (blocks, more): (&[Block], &str),
    area: Rect,
    unit: f32,
    align: Align,
) {
    let width = area.w as f32;
    let is_cart_line = |block: &Block| {
        matches!(
            block,
            Block::Row {
                weight: Weight::Regular,
                ..
            }
        )
    };
    let cart_lines = blocks.iter().filter(|b| is_cart_line(b)).count();
    let mut chosen = None;
    'scales: for scale in [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.42, 0.35] {
        for shown in (0..=cart_lines).rev() {
            let trimmed = trim_cart(blocks, shown, cart_lines, more);
            let placed = place(&trimmed, width, unit, scale);
            if stacked_height(&placed, unit) <= area.h as f32 {
                chosen = Some(placed);
                break 'scales;
            }
        }
    }
    // At the smallest size, what still does not fit is cut at the bottom.
    let placed = chosen.unwrap_or_else(|| {
        let mut placed = place(&trim_cart(blocks, 0, cart_lines, more), width, unit, 0.35);
        while placed.len() > 1 && stacked_height(&placed, unit) > area.h as f32 {
            placed.pop();
        }
        placed
    });
    let mut y = area.y as f32 + (area.h as f32 - stacked_height(&placed, unit)).max(0.0) / 2.0;
    for (index, block) in placed.iter().enumerate() {
        if index > 0 {
            y += block.gap(&placed[index - 1], unit);
        }
        draw_block(image, block, area, y, align);
        y += block.height();
    }
}

/// `blocks` with only the first `shown` of the `total` cart lines, and a line from the `more`
/// template ("+ {n} more items") in place of the rest.
fn trim_cart(blocks: &[Block], shown: usize, total: usize, more: &str) -> Vec<Block> {
    let mut out = Vec::with_capacity(blocks.len());
    let mut seen = 0;
    for block in blocks {
        if let Block::Row {
            weight: Weight::Regular,
            size,
            color,
            ..
        } = block
        {
            seen += 1;
            if seen <= shown {
                out.push(block.clone());
            } else if seen == shown + 1 {
                out.push(Block::Row {
                    label: more.replace("{n}", &(total - shown).to_string()),
                    value: String::new(),
                    weight: Weight::Regular,
                    size: *size,
                    color: *color,
                });
            }
            continue;
        }
        out.push(block.clone());
    }
    out
}

/// Draws one placed block whose top is at `y`.
fn draw_block(image: &mut RgbImage, block: &Placed, area: Rect, y: f32, align: Align) {
    let left = area.x as f32;
    let width = area.w as f32;
    match block {
        Placed::Lines {
            lines,
            weight,
            px,
            color,
        } => {
            let line_height = font::line_height(*px);
            for (index, line) in lines.iter().enumerate() {
                let line_width = font::width(line, *weight, *px);
                let x = match align {
                    Align::Left => left,
                    Align::Center => left + (width - line_width).max(0.0) / 2.0,
                };
                let baseline = y + index as f32 * line_height + font::baseline(*weight, *px);
                font::draw(image, line, *weight, *px, (x, baseline), *color);
            }
        }
        Placed::Row {
            label,
            value,
            weight,
            px,
            color,
        } => {
            let baseline = y + font::baseline(*weight, *px);
            let value_width = font::width(value, *weight, *px);
            let value_px = fit_px(value, *weight, *px, width * 0.6);
            let value_width = value_width.min(font::width(value, *weight, value_px));
            let gap = if value.is_empty() { 0.0 } else { px * 0.8 };
            let label = ellipsize(label, *weight, *px, width - value_width - gap);
            font::draw(image, &label, *weight, *px, (left, baseline), *color);
            let value_x = left + width - value_width;
            font::draw(image, value, *weight, value_px, (value_x, baseline), *color);
        }
        Placed::Rule => fill_rect(
            image,
            Rect {
                x: area.x,
                y: y.round() as u32,
                w: area.w,
                h: 1,
            },
            RULE,
        ),
        Placed::Sign(sign, color, side) => {
            let centre_x = match align {
                Align::Left => left + side / 2.0,
                Align::Center => left + width / 2.0,
            };
            draw_sign(image, *sign, (centre_x, y + side / 2.0), side / 2.0, *color);
        }
    }
}

/// Splits `text` into at most `max_lines` lines no wider than `width`, at spaces (a no-break
/// space keeps an amount whole), cutting a word longer than a line, and ending with `…` when
/// text is left over.
fn wrap(text: &str, weight: Weight, px: f32, width: f32, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in font::nfc(text).split(' ').filter(|w| !w.is_empty()) {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if font::width(&candidate, weight, px) <= width {
            current = candidate;
            continue;
        }
        if !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        // A word wider than the line is cut where it must be.
        let mut piece = String::new();
        for c in word.chars() {
            piece.push(c);
            if font::width(&piece, weight, px) > width && piece.chars().count() > 1 {
                piece.pop();
                lines.push(std::mem::take(&mut piece));
                piece.push(c);
            }
        }
        current = piece;
    }
    if !current.is_empty() {
        lines.push(current);
    }
    if lines.len() > max_lines {
        let rest = lines.split_off(max_lines - 1).join(" ");
        lines.push(ellipsize(&rest, weight, px, width));
    }
    lines
}

/// A filled disc of `color` with a white check mark or cross, antialiased.
fn draw_sign(image: &mut RgbImage, sign: Sign, (cx, cy): (f32, f32), radius: f32, color: Rgb<u8>) {
    let stroke = radius * 0.16;
    let segments: Vec<((f32, f32), (f32, f32))> = match sign {
        Sign::Check => vec![((-0.45, 0.02), (-0.12, 0.35)), ((-0.12, 0.35), (0.5, -0.3))],
        Sign::Cross => vec![
            ((-0.35, -0.35), (0.35, 0.35)),
            ((-0.35, 0.35), (0.35, -0.35)),
        ],
    };
    let (width, height) = image.dimensions();
    let x0 = (cx - radius - 1.0).max(0.0) as u32;
    let y0 = (cy - radius - 1.0).max(0.0) as u32;
    let x1 = ((cx + radius + 1.0).max(0.0) as u32).min(width);
    let y1 = ((cy + radius + 1.0).max(0.0) as u32).min(height);
    for y in y0..y1 {
        for x in x0..x1 {
            let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let disc = (radius - (px * px + py * py).sqrt() + 0.5).clamp(0.0, 1.0);
            if disc <= 0.0 {
                continue;
            }
            let mark = segments
                .iter()
                .map(|&((ax, ay), (bx, by))| {
                    let d = distance_to_segment(
                        (px, py),
                        (ax * radius, ay * radius),
                        (bx * radius, by * radius),
                    );
                    (stroke / 2.0 - d + 0.5).clamp(0.0, 1.0)
                })
                .fold(0.0_f32, f32::max);
            let pixel = image.get_pixel_mut(x, y);
            for (index, channel) in pixel.0.iter_mut().enumerate() {
                let inside =
                    f32::from(color.0[index]) * (1.0 - mark) + f32::from(ON_ACCENT.0[index]) * mark;
                let blended = f32::from(*channel) * (1.0 - disc) + inside * disc;
                *channel = blended.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// The distance from `p` to the segment `a`–`b`.
fn distance_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length = dx * dx + dy * dy;
    let t = if length > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - qx).powi(2) + (p.1 - qy).powi(2)).sqrt()
}

/// Encodes `image` as a PNG in memory, favouring speed over size: the frame is mostly flat
/// colour, so fast compression with adaptive filtering still makes a small file.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::model::tests::{QPAY, attempt, settings, transaction};
    use crate::display::model::{DisplayModel, PayMode};
    use crate::display::qr::{MIN_MODULE_PX, QUIET_ZONE, code_modules, encode_qr};
    use crate::display::strings::Language;
    use crate::domain::{AttemptStatus, Currency, Failure};
    use qrcode::EcLevel;

    const VIETQR: &str = "00020101021238630010A000000727013300069704320119MQQ0759866wrYqzPLw70208QRIBFTTA5204549953037045405120005802VN5916QRPAYMENT UAT 216011HO CHI MINH62430109wrYqzPLw70708Q07598660814AP26146183702063042A9D";
    const RESOLUTIONS: [(u32, u32); 6] = [
        (800, 480),
        (1024, 600),
        (1280, 800),
        (1920, 1080),
        (480, 272),
        (600, 1024),
    ];

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

    /// A snapshot of every state in `language`, with the QR `qr`.
    fn snapshots(language: Language, qr: &str) -> Vec<(String, Snapshot)> {
        let currency = match language {
            Language::Vi => Currency::Vnd,
            _ => Currency::Mnt,
        };
        let t = transaction(currency, "12500");
        let with_qr = |mut a: crate::domain::Attempt| {
            a.qr_text = Some(qr.to_owned());
            a
        };
        let mut cancelled = attempt(AttemptStatus::Fail, "12500", "0");
        cancelled.failure = Some(Failure {
            code: "CANCELLED".to_owned(),
            message: String::new(),
        });
        let mut card = with_qr(attempt(AttemptStatus::Sent, "12500", "0"));
        card.method = "ATM".to_owned();
        let mut cash = attempt(AttemptStatus::Sent, "12500", "0");
        cash.provider = "system".to_owned();
        cash.qr_text = None;
        let cases = [
            (
                "waiting",
                with_qr(attempt(AttemptStatus::Sent, "12500", "0")),
            ),
            (
                "partial",
                with_qr(attempt(AttemptStatus::Sent, "12500", "5000")),
            ),
            ("paid", attempt(AttemptStatus::Success, "12500", "12500")),
            ("expired", attempt(AttemptStatus::Expired, "12500", "0")),
            ("cancelled", cancelled),
            ("failed", attempt(AttemptStatus::Fail, "12500", "0")),
            ("phone", card),
            ("cash", cash),
        ];
        let settings = settings(language);
        let mut out = vec![(
            "idle".to_owned(),
            Snapshot::new(&DisplayModel::idle(), &settings, 1),
        )];
        for (name, a) in cases {
            let provider = if a.provider == "system" {
                "Cash"
            } else {
                "QPay"
            };
            let model = DisplayModel::for_attempt(&a, &t, provider);
            out.push((name.to_owned(), Snapshot::new(&model, &settings, 1)));
        }
        out
    }

    /// Every state in every language at every size: the QR decodes to exactly the payload where
    /// the customer can pay, and nowhere else. With `QRPAYD_SAVE_FRAMES=DIR` the frames are
    /// also written there, to look at.
    #[test]
    fn every_state_renders_and_its_qr_decodes_to_exactly_the_payload() {
        let save = std::env::var_os("QRPAYD_SAVE_FRAMES").map(std::path::PathBuf::from);
        for language in Language::ALL {
            for (name, snapshot) in snapshots(language, QPAY) {
                for (width, height) in RESOLUTIONS {
                    let image = render(&snapshot, width, height).expect("renders");
                    assert_eq!(image.dimensions(), (width, height));
                    let decoded = decode_all(&image);
                    if snapshot.qr.is_some() {
                        assert_eq!(decoded.len(), 1, "{language} {name} {width}x{height}");
                        assert_eq!(decoded[0].1, QPAY, "{language} {name} {width}x{height}");
                        assert!(ecc_rank(decoded[0].0) >= 1, "level M or higher");
                    } else {
                        assert!(decoded.is_empty(), "{language} {name}: no QR");
                    }
                    // The header carries the state's colour.
                    assert_eq!(*image.get_pixel(1, 1), accent(snapshot.state));
                    if let Some(dir) = &save {
                        let path = dir.join(format!("{language}-{name}-{width}x{height}.png"));
                        write_png_atomic(&path, &image).expect("saves");
                    }
                }
            }
        }
    }

    #[test]
    fn text_is_drawn_in_the_column_beside_the_qr() {
        let (_, waiting) = snapshots(Language::Mn, VIETQR).remove(1);
        let image = render(&waiting, 800, 480).expect("renders");
        // Dark text pixels right of the QR (which takes at most the left half).
        let text_pixels = (420..780)
            .flat_map(|x| (60..470).map(move |y| (x, y)))
            .filter(|&(x, y)| image.get_pixel(x, y).0[0] < 100)
            .count();
        assert!(text_pixels > 3000, "{text_pixels}");
    }

    #[test]
    fn the_quiet_zone_is_white_and_modules_are_whole_pixels() {
        for (width, height) in RESOLUTIONS {
            let (_, waiting) = snapshots(Language::Vi, VIETQR).remove(1);
            let image = render(&waiting, width, height).expect("renders");
            let unit = width.min(height) as f32 / 100.0;
            let margin = (unit * 4.0).round() as u32;
            let header = (unit * 11.0).round() as u32;
            let body = Rect {
                x: margin,
                y: header + margin,
                w: width - 2 * margin,
                h: height - header - 2 * margin,
            };
            let (area, _) = split_for_qr(body, margin);
            let plan = qr::plan_qr(VIETQR, area, width, height).expect("fits");
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
                        let mx = ox + (x - ox) / p.module_px * p.module_px;
                        let my = oy + (y - oy) / p.module_px * p.module_px;
                        assert!(pixel == qr::LIGHT || pixel == qr::DARK);
                        assert_eq!(pixel, *image.get_pixel(mx, my));
                    } else {
                        assert_eq!(
                            pixel,
                            qr::LIGHT,
                            "quiet zone at ({x},{y}), {width}x{height}"
                        );
                    }
                }
            }
            assert_eq!(*image.get_pixel(ox, oy), qr::DARK);
            assert_eq!(QUIET_ZONE, 4);
        }
    }

    #[test]
    fn the_level_is_raised_only_when_modules_keep_their_size() {
        let area = Rect {
            x: 0,
            y: 0,
            w: 400,
            h: 400,
        };
        let plan = qr::plan_qr(QPAY, area, 800, 480).expect("fits");
        let at_m = encode_qr(QPAY, EcLevel::M).expect("encodes");
        let m_px = qr::QrPlacement::centred(area, code_modules(&at_m)).module_px;
        assert_eq!(plan.placement.module_px, m_px);
        assert!(plan.code.error_correction_level() >= EcLevel::M);
    }

    /// A card payment's page address as long as AppotaPay's (about 2 800 characters).
    fn long_page_address() -> String {
        let mut url =
            "https://ibanking.dev.appotapay.com/domestic-card/napas/confirm-otp?tran=".to_owned();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        url.extend(alphabet.chars().cycle().take(2800 - url.len() - 70));
        url.push_str("=&sign=97b25a7e38d6501bbaeb4fa0793670209e3f6987e9c48f6b1fc58f0d828f79fa");
        url
    }

    #[test]
    fn a_page_address_too_long_for_the_frame_is_drawn_as_text_only() {
        let url = long_page_address();
        let (_, phone) = snapshots(Language::Vi, &url).remove(7);
        assert_eq!(phone.mode, PayMode::Phone);
        let large = render(&phone, 1920, 1080).expect("renders");
        let decoded = decode_all(&large);
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].1, url);
        assert_eq!(ecc_rank(decoded[0].0), 0, "level L");
        let small = render(&phone, 480, 272).expect("renders without the QR");
        assert!(decode_all(&small).is_empty());
    }

    #[test]
    fn long_cart_lines_and_texts_fit_the_frame() {
        let mut t = transaction(Currency::Mnt, "12500");
        t.items = (0..30)
            .map(|i| crate::domain::Item {
                description: format!("Бүтээгдэхүүн {i} маш урт нэртэй бараа, 500 грамм"),
                quantity: rust_decimal::Decimal::ONE,
                unit_price: rust_decimal::Decimal::from(100),
            })
            .collect();
        let mut a = attempt(AttemptStatus::Sent, "12500", "0");
        a.qr_text = Some(QPAY.to_owned());
        let model =
            DisplayModel::for_attempt(&a, &t, "QPay with a provider name far too long to fit");
        let snapshot = Snapshot::new(&model, &settings(Language::Mn), 1);
        for (width, height) in [(800, 480), (160, 120), (120, 160)] {
            let image = render(&snapshot, width, height).expect("renders");
            assert_eq!(image.dimensions(), (width, height));
        }
        let lines = wrap("a b c d e f g h i j", Weight::Regular, 40.0, 60.0, 2);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with('…'), "{lines:?}");
    }

    #[test]
    fn frames_outside_the_limits_are_refused() {
        let idle = Snapshot::new(&DisplayModel::idle(), &settings(Language::En), 1);
        for (width, height) in [(159, 120), (160, 119), (0, 0)] {
            assert!(matches!(
                render(&idle, width, height),
                Err(DisplayError::FrameTooSmall { .. })
            ));
        }
        assert!(matches!(
            render(&idle, 100_000, 100),
            Err(DisplayError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn a_frame_round_trips_through_the_png_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("frame.png");
        let (_, waiting) = snapshots(Language::Mn, QPAY).remove(1);
        let image = render(&waiting, 800, 480).expect("renders");
        write_png_atomic(&path, &image).expect("writes");
        let read = image::open(&path).expect("reads").to_rgb8();
        assert_eq!(read, image, "lossless");
    }
}
