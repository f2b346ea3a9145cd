//! `payment_info.qr_content`: seed 003 documents it as a base64 image of the QR, while the live
//! example carries the raw EMVCo VietQR text. This module turns either into the text: raw text
//! is passed through untouched (the engine validates it with the EMVCo codec), and an image
//! (PNG or JPEG, optionally as a `data:` URL) is decoded and its QR read.
//!
//! It never repairs a code and never logs the content.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// The largest image accepted, decoded (a QR PNG is a few kilobytes).
const MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;
/// The largest side accepted, in pixels.
const MAX_SIDE: u32 = 4096;

/// Why `qr_content` gave no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrContentError {
    #[error("qr_content is empty")]
    Empty,
    #[error("qr_content is an image that cannot be decoded: {0}")]
    Image(String),
    #[error("qr_content is an image with no readable QR code: {0}")]
    NoCode(String),
}

/// The QR text of `qr_content`.
pub fn qr_text(content: &str) -> Result<String, QrContentError> {
    let trimmed = content.trim();
    if trimmed.is_empty() {
        return Err(QrContentError::Empty);
    }
    match image_bytes(trimmed) {
        Some(bytes) => read_qr_image(&bytes),
        // Not an image: the text itself (untrimmed: a code is never rewritten).
        None => Ok(content.to_owned()),
    }
}

/// The image bytes when `content` is a base64 (or `data:` URL) PNG or JPEG.
fn image_bytes(content: &str) -> Option<Vec<u8>> {
    let payload = match content.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map(|(_, data)| data)?,
        None => content,
    };
    // An EMVCo payload is digits and text; only a string that is entirely base64 can be an
    // image, and only the image's own magic bytes make it one.
    let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = STANDARD
        .decode(&compact)
        .or_else(|_| STANDARD_NO_PAD.decode(&compact))
        .ok()?;
    let is_png = bytes.starts_with(b"\x89PNG\r\n\x1a\n");
    let is_jpeg = bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
    (is_png || is_jpeg).then_some(bytes)
}

/// Reads the first QR code of a PNG or JPEG image.
pub fn read_qr_image(bytes: &[u8]) -> Result<String, QrContentError> {
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(QrContentError::Image(format!(
            "{} bytes, the most accepted is {MAX_IMAGE_BYTES}",
            bytes.len()
        )));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| QrContentError::Image(e.to_string()))?;
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| QrContentError::Image(e.to_string()))?;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(QrContentError::Image(format!(
            "{width}x{height} pixels, the most accepted is {MAX_SIDE} a side"
        )));
    }
    let luma = image::load_from_memory(bytes)
        .map_err(|e| QrContentError::Image(e.to_string()))?
        .to_luma8();
    let (width, height) = (luma.width() as usize, luma.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        // Coordinates come from rqrr within the given size.
        luma.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    let Some(grid) = grids.first() else {
        return Err(QrContentError::NoCode("no QR code found".to_owned()));
    };
    let (_, text) = grid
        .decode()
        .map_err(|e| QrContentError::NoCode(e.to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIETQR: &str = "00020101021238630010A000000727013300069704320119MQQ0759866wrYqzPLw70208QRIBFTTA5204549953037045405120005802VN5916QRPAYMENT UAT 216011HO CHI MINH62430109wrYqzPLw70708Q07598660814AP26146183702063042A9D";

    fn png_of(text: &str) -> Vec<u8> {
        let image = crate::display::qr_image(text, 4).expect("renders");
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(image)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encodes");
        png
    }

    #[test]
    fn raw_emvco_text_passes_through() {
        assert_eq!(qr_text(VIETQR), Ok(VIETQR.to_owned()));
    }

    #[test]
    fn a_base64_png_is_read() {
        let encoded = STANDARD.encode(png_of(VIETQR));
        assert_eq!(qr_text(&encoded), Ok(VIETQR.to_owned()));
        let data_url = format!("data:image/png;base64,{encoded}");
        assert_eq!(qr_text(&data_url), Ok(VIETQR.to_owned()));
    }

    #[test]
    fn an_image_without_a_code_or_a_broken_image_is_an_error() {
        let blank = image::RgbImage::from_pixel(64, 64, image::Rgb([255, 255, 255]));
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(blank)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encodes");
        assert!(matches!(
            qr_text(&STANDARD.encode(&png)),
            Err(QrContentError::NoCode(_))
        ));
        let mut broken = png_of(VIETQR);
        broken.truncate(40);
        assert!(matches!(
            qr_text(&STANDARD.encode(&broken)),
            Err(QrContentError::Image(_))
        ));
        assert_eq!(qr_text("  "), Err(QrContentError::Empty));
    }
}
