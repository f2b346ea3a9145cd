//! The Linux framebuffer sink (`[display.framebuffer]`), for terminals with a screen but no
//! browser: the same frame as the PNG, written straight to `/dev/fbN`.
//!
//! At start it asks the device for its geometry and pixel format (the fbdev ioctls
//! `FBIOGET_VSCREENINFO` and `FBIOGET_FSCREENINFO`): the visible size, the offset of the visible
//! page, the bytes per line, and where red, green and blue sit in a pixel. Each snapshot is
//! rendered at that size, converted to that format, and only the lines that changed are
//! written; a snapshot that shows the same as the last one is not drawn at all.
//!
//! A file that does not answer those ioctls (a regular file standing in for the device, as in
//! the tests, or a driver that reports nothing) is used with the geometry the config gives
//! (`width`, `height`, `format`); without one it is refused.
//!
//! The shipped unit has `PrivateDevices=yes`, so the daemon sees no framebuffer until the
//! drop-in `systemd/qrpayd.service.d/framebuffer.conf` is installed (see README).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use image::{Rgb, RgbImage};

use super::model::Snapshot;
use super::{DisplayError, Hub};

/// `[display.framebuffer]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramebufferSettings {
    /// The device, e.g. `/dev/fb0`.
    pub device: PathBuf,
    /// The geometry to use when the device does not report one.
    pub fallback: Option<Geometry>,
}

/// Where one colour sits in a pixel: its lowest bit and its number of bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub offset: u32,
    pub length: u32,
}

/// A pixel format: the bits per pixel (16, 24 or 32; stored little-endian) and its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u32,
    pub red: Channel,
    pub green: Channel,
    pub blue: Channel,
}

impl PixelFormat {
    /// 32 bits, `0x00RRGGBB`: the usual PC and HDMI framebuffer.
    pub const XRGB8888: PixelFormat = PixelFormat::new(32, (16, 8), (8, 8), (0, 8));
    /// 32 bits, `0x00BBGGRR`.
    pub const XBGR8888: PixelFormat = PixelFormat::new(32, (0, 8), (8, 8), (16, 8));
    /// 24 bits, bytes B, G, R.
    pub const RGB888: PixelFormat = PixelFormat::new(24, (16, 8), (8, 8), (0, 8));
    /// 16 bits, 5-6-5: small SPI panels.
    pub const RGB565: PixelFormat = PixelFormat::new(16, (11, 5), (5, 6), (0, 5));

    const fn new(bits: u32, red: (u32, u32), green: (u32, u32), blue: (u32, u32)) -> Self {
        PixelFormat {
            bits_per_pixel: bits,
            red: Channel {
                offset: red.0,
                length: red.1,
            },
            green: Channel {
                offset: green.0,
                length: green.1,
            },
            blue: Channel {
                offset: blue.0,
                length: blue.1,
            },
        }
    }

    /// The bytes of one pixel.
    pub fn bytes_per_pixel(self) -> usize {
        (self.bits_per_pixel / 8) as usize
    }

    /// Checks that pixels of this format can be written: 16, 24 or 32 bits, each channel 1 to
    /// 8 bits inside the pixel.
    fn check(self) -> Result<(), String> {
        if ![16, 24, 32].contains(&self.bits_per_pixel) {
            return Err(format!("{} bits per pixel", self.bits_per_pixel));
        }
        for (name, channel) in [
            ("red", self.red),
            ("green", self.green),
            ("blue", self.blue),
        ] {
            if !(1..=8).contains(&channel.length)
                || channel.offset + channel.length > self.bits_per_pixel
            {
                return Err(format!(
                    "{name} at bit {} with {} bits",
                    channel.offset, channel.length
                ));
            }
        }
        Ok(())
    }

    /// One pixel, little-endian, into `out` (`bytes_per_pixel` long).
    fn encode(self, pixel: Rgb<u8>, out: &mut [u8]) {
        let put = |value: u8, channel: Channel| {
            (u32::from(value) >> (8 - channel.length)) << channel.offset
        };
        let value =
            put(pixel.0[0], self.red) | put(pixel.0[1], self.green) | put(pixel.0[2], self.blue);
        let bytes = value.to_le_bytes();
        out.copy_from_slice(&bytes[..out.len()]);
    }

    /// The pixel in `bytes` (little-endian), each channel widened back to 8 bits.
    fn decode(self, bytes: &[u8]) -> Rgb<u8> {
        let mut word = [0u8; 4];
        word[..bytes.len()].copy_from_slice(bytes);
        let value = u32::from_le_bytes(word);
        let get = |channel: Channel| {
            let max = (1u32 << channel.length) - 1;
            let raw = (value >> channel.offset) & max;
            // Scaled back to 0..=255, so full scale stays full scale.
            ((raw * 255 + max / 2) / max) as u8
        };
        Rgb([get(self.red), get(self.green), get(self.blue)])
    }
}

impl FromStr for PixelFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<PixelFormat, String> {
        match text {
            "xrgb8888" => Ok(PixelFormat::XRGB8888),
            "xbgr8888" => Ok(PixelFormat::XBGR8888),
            "rgb888" => Ok(PixelFormat::RGB888),
            "rgb565" => Ok(PixelFormat::RGB565),
            other => Err(format!(
                "{other:?} is not one of \"xrgb8888\", \"xbgr8888\", \"rgb888\", \"rgb565\""
            )),
        }
    }
}

/// The visible part of a framebuffer and how its pixels are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Bytes from one line to the next (at least `width` pixels).
    pub line_length: u32,
    /// Where the visible page starts, in bytes.
    pub offset: u64,
}

impl Geometry {
    /// A packed geometry of `width` x `height` pixels of `format`, starting at byte 0.
    pub fn packed(width: u32, height: u32, format: PixelFormat) -> Geometry {
        Geometry {
            width,
            height,
            format,
            line_length: width * format.bits_per_pixel / 8,
            offset: 0,
        }
    }

    /// `image` (this geometry's size) as the bytes of the framebuffer's visible page.
    pub fn encode(&self, image: &RgbImage) -> Vec<u8> {
        let bpp = self.format.bytes_per_pixel();
        let line = self.line_length as usize;
        let mut bytes = vec![0u8; line * self.height as usize];
        for (y, row) in bytes.chunks_exact_mut(line).enumerate() {
            for (x, out) in row[..self.width as usize * bpp]
                .chunks_exact_mut(bpp)
                .enumerate()
            {
                self.format
                    .encode(*image.get_pixel(x as u32, y as u32), out);
            }
        }
        bytes
    }

    /// The visible page in `bytes` as an image (to read a frame back).
    pub fn decode(&self, bytes: &[u8]) -> RgbImage {
        let bpp = self.format.bytes_per_pixel();
        RgbImage::from_fn(self.width, self.height, |x, y| {
            let at = y as usize * self.line_length as usize + x as usize * bpp;
            bytes
                .get(at..at + bpp)
                .map_or(Rgb([0, 0, 0]), |pixel| self.format.decode(pixel))
        })
    }
}

/// An open framebuffer.
#[derive(Debug)]
pub struct Framebuffer {
    path: PathBuf,
    file: File,
    geometry: Geometry,
    /// What the visible page holds now, as written.
    shown: Option<Vec<u8>>,
}

impl Framebuffer {
    /// Opens the device and reads its geometry (or uses the config's, for a file that does not
    /// answer the fbdev ioctls).
    ///
    /// # Errors
    ///
    /// [`DisplayError::Io`] when the device cannot be opened or asked, or does not answer and
    /// the config gives no geometry; [`DisplayError::PixelFormat`] for a format it cannot draw.
    pub fn open(settings: &FramebufferSettings) -> Result<Framebuffer, DisplayError> {
        let path = settings.device.clone();
        let io_error = |source| DisplayError::Io {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_error)?;
        let geometry = match query(&file) {
            Ok(geometry) => geometry,
            Err(error) if error.raw_os_error() == Some(libc::ENOTTY) => {
                settings.fallback.ok_or_else(|| {
                    io_error(std::io::Error::other(
                        "not a framebuffer (no fbdev ioctls) and no width, height and format in \
                         [display.framebuffer]",
                    ))
                })?
            }
            Err(error) => return Err(io_error(error)),
        };
        geometry
            .format
            .check()
            .map_err(|detail| DisplayError::PixelFormat {
                path: path.clone(),
                detail,
            })?;
        if geometry.line_length < geometry.width * geometry.format.bits_per_pixel / 8 {
            return Err(DisplayError::PixelFormat {
                path,
                detail: format!(
                    "{} bytes a line is too few for {} pixels",
                    geometry.line_length, geometry.width
                ),
            });
        }
        Ok(Framebuffer {
            path,
            file,
            geometry,
            shown: None,
        })
    }

    /// The geometry in use.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Draws `snapshot`, writing only the lines that differ from what is on screen. Returns
    /// how many lines were written.
    ///
    /// # Errors
    ///
    /// Any error of rendering, and [`DisplayError::Io`] when writing fails.
    pub fn draw(&mut self, snapshot: &Snapshot) -> Result<usize, DisplayError> {
        let image = super::png::render(snapshot, self.geometry.width, self.geometry.height)?;
        let bytes = self.geometry.encode(&image);
        let line = self.geometry.line_length as usize;
        let mut written = 0;
        for (y, row) in bytes.chunks_exact(line).enumerate() {
            let unchanged = self
                .shown
                .as_ref()
                .and_then(|shown| shown.get(y * line..(y + 1) * line))
                .is_some_and(|old| old == row);
            if unchanged {
                continue;
            }
            let at = self.geometry.offset + (y * line) as u64;
            self.file
                .write_all_at(row, at)
                .map_err(|source| DisplayError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            written += 1;
        }
        self.shown = Some(bytes);
        Ok(written)
    }
}

/// Starts the framebuffer sink: it draws every snapshot that shows something new, and
/// acknowledges each version.
pub fn spawn_sink(hub: &Arc<Hub>, framebuffer: Framebuffer) -> tokio::task::JoinHandle<()> {
    let drawn = hub.attach_frame_sink();
    let mut snapshots = hub.subscribe();
    tokio::spawn(async move {
        let mut framebuffer = Some(framebuffer);
        let mut last: Option<Arc<Snapshot>> = None;
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            let version = snapshot.version;
            let same = last.as_ref().is_some_and(|l| l.shows_the_same(&snapshot));
            if !same && let Some(mut fb) = framebuffer.take() {
                let to_draw = snapshot.clone();
                let result = crate::logging::spawn_blocking(move || {
                    let result = fb.draw(&to_draw);
                    (fb, result)
                })
                .await;
                match result {
                    Ok((fb, drew)) => {
                        if let Err(error) = drew {
                            tracing::error!(%error, "cannot draw on the framebuffer");
                        }
                        framebuffer = Some(fb);
                    }
                    Err(error) => tracing::error!(%error, "the framebuffer task failed"),
                }
                last = Some(snapshot);
            }
            drawn.done(version);
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    })
}

/// `struct fb_bitfield` of `<linux/fb.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbBitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

/// `struct fb_var_screeninfo` of `<linux/fb.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbVarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
    nonstd: u32,
    activate: u32,
    height: u32,
    width: u32,
    accel_flags: u32,
    pixclock: u32,
    left_margin: u32,
    right_margin: u32,
    upper_margin: u32,
    lower_margin: u32,
    hsync_len: u32,
    vsync_len: u32,
    sync: u32,
    vmode: u32,
    rotate: u32,
    colorspace: u32,
    reserved: [u32; 4],
}

/// `struct fb_fix_screeninfo` of `<linux/fb.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct FbFixScreeninfo {
    id: [u8; 16],
    smem_start: libc::c_ulong,
    smem_len: u32,
    kind: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: libc::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;

/// Asks the device for its geometry.
fn query(file: &File) -> std::io::Result<Geometry> {
    let mut var = FbVarScreeninfo::default();
    let mut fix = FbFixScreeninfo::default();
    let fd = file.as_raw_fd();
    // SAFETY: both requests write exactly one struct of the layout declared above (copied from
    // <linux/fb.h>) into memory we own for the duration of the call.
    let results = unsafe {
        [
            libc::ioctl(
                fd,
                FBIOGET_VSCREENINFO as _,
                &mut var as *mut FbVarScreeninfo,
            ),
            libc::ioctl(
                fd,
                FBIOGET_FSCREENINFO as _,
                &mut fix as *mut FbFixScreeninfo,
            ),
        ]
    };
    if results.iter().any(|r| *r < 0) {
        return Err(std::io::Error::last_os_error());
    }
    let channel = |field: FbBitfield| Channel {
        offset: field.offset,
        length: field.length,
    };
    let format = PixelFormat {
        bits_per_pixel: var.bits_per_pixel,
        red: channel(var.red),
        green: channel(var.green),
        blue: channel(var.blue),
    };
    let bytes = u64::from(var.bits_per_pixel / 8);
    let offset =
        u64::from(var.yoffset) * u64::from(fix.line_length) + u64::from(var.xoffset) * bytes;
    let geometry = Geometry {
        width: var.xres,
        height: var.yres,
        format,
        line_length: fix.line_length,
        offset,
    };
    let needed = offset + u64::from(fix.line_length) * u64::from(var.yres);
    if fix.smem_len != 0 && needed > u64::from(fix.smem_len) {
        return Err(std::io::Error::other(format!(
            "the visible page ({needed} bytes) is larger than the framebuffer's memory ({})",
            fix.smem_len
        )));
    }
    Ok(geometry)
}

/// Reads back what a framebuffer file holds, as an image (for tests and diagnostics).
///
/// # Errors
///
/// [`DisplayError::Io`] when the file cannot be read.
pub fn read_back(path: &Path, geometry: &Geometry) -> Result<RgbImage, DisplayError> {
    let bytes = std::fs::read(path).map_err(|source| DisplayError::Io {
        path: path.to_owned(),
        source,
    })?;
    let start = usize::try_from(geometry.offset).unwrap_or(usize::MAX);
    Ok(geometry.decode(bytes.get(start..).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::model::DisplayModel;
    use crate::display::model::tests::{QPAY, attempt, settings, transaction};
    use crate::display::strings::Language;
    use crate::domain::{AttemptStatus, Currency};

    fn waiting() -> Snapshot {
        let t = transaction(Currency::Mnt, "12500");
        let mut a = attempt(AttemptStatus::Sent, "12500", "0");
        a.qr_text = Some(QPAY.to_owned());
        Snapshot::new(
            &DisplayModel::for_attempt(&a, &t, "QPay"),
            &settings(Language::Mn),
            2,
        )
    }

    #[test]
    fn pixels_convert_to_every_format_and_back() {
        let colours = [
            Rgb([0, 0, 0]),
            Rgb([255, 255, 255]),
            Rgb([198, 40, 40]),
            Rgb([31, 78, 140]),
        ];
        for format in [
            PixelFormat::XRGB8888,
            PixelFormat::XBGR8888,
            PixelFormat::RGB888,
        ] {
            let mut bytes = vec![0; format.bytes_per_pixel()];
            for colour in colours {
                format.encode(colour, &mut bytes);
                assert_eq!(
                    format.decode(&bytes),
                    colour,
                    "{format:?}: 8 bits a channel are exact"
                );
            }
        }
        let mut bytes = [0u8; 2];
        PixelFormat::RGB565.encode(Rgb([255, 0, 0]), &mut bytes);
        assert_eq!(u16::from_le_bytes(bytes), 0xF800);
        PixelFormat::RGB565.encode(Rgb([198, 40, 40]), &mut bytes);
        let back = PixelFormat::RGB565.decode(&bytes);
        for (a, b) in back.0.iter().zip([198u8, 40, 40]) {
            assert!(a.abs_diff(b) < 8, "{back:?}");
        }
        PixelFormat::XRGB8888.encode(Rgb([1, 2, 3]), &mut [0u8; 4]);
        assert!(PixelFormat::RGB565.check().is_ok());
        let odd = PixelFormat {
            bits_per_pixel: 8,
            ..PixelFormat::RGB565
        };
        assert!(odd.check().is_err());
        assert_eq!("rgb565".parse::<PixelFormat>(), Ok(PixelFormat::RGB565));
        assert!("yuv".parse::<PixelFormat>().is_err());
    }

    #[test]
    fn a_file_standing_in_for_the_device_holds_the_png_frame_and_only_changes_are_written() {
        let dir = tempfile::tempdir().expect("dir");
        let device = dir.path().join("fb0");
        std::fs::write(&device, b"").expect("file");
        let mut settings = FramebufferSettings {
            device: device.clone(),
            fallback: None,
        };
        let refused = Framebuffer::open(&settings).expect_err("no geometry");
        assert!(
            refused.to_string().contains("not a framebuffer"),
            "{refused}"
        );

        // RGB565 with padded lines: the frame read back is the PNG's, quantised.
        let geometry = Geometry {
            line_length: 480 * 2 + 64,
            ..Geometry::packed(480, 272, PixelFormat::RGB565)
        };
        settings.fallback = Some(geometry);
        let mut framebuffer = Framebuffer::open(&settings).expect("opens");
        let snapshot = waiting();
        assert_eq!(
            framebuffer.draw(&snapshot).expect("draws"),
            272,
            "every line the first time"
        );
        let png = crate::display::png::render(&snapshot, 480, 272).expect("renders");
        let expected = geometry.decode(&geometry.encode(&png));
        assert_eq!(read_back(&device, &geometry).expect("reads"), expected);
        assert_eq!(
            framebuffer.draw(&snapshot).expect("draws"),
            0,
            "nothing changed, nothing written"
        );
        let paid = Snapshot {
            state: crate::display::ScreenState::Paid,
            ..snapshot
        };
        let written = framebuffer.draw(&paid).expect("draws");
        assert!(
            written > 0 && written < 272,
            "only the lines that changed: {written}"
        );

        // XRGB8888, packed: exactly the PNG.
        let geometry = Geometry::packed(480, 272, PixelFormat::XRGB8888);
        settings.fallback = Some(geometry);
        let mut framebuffer = Framebuffer::open(&settings).expect("opens");
        framebuffer.draw(&waiting()).expect("draws");
        assert_eq!(read_back(&device, &geometry).expect("reads"), png);
    }
}
