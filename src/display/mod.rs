//! The customer display: what the customer sees on the screen facing them, in their language.
//!
//! One model, several sinks. The engine decides which payment is on screen and hands this
//! module a [`DisplayModel`] built from committed state (`model.rs`); the [`Hub`] puts it into
//! the display's words ([`Snapshot`]: `strings.rs` for the sentences of each language,
//! `format.rs` for amounts) and publishes it on a `tokio::sync::watch` channel, each change with
//! a growing `version`. Every sink renders the same snapshot:
//!
//! - `png.rs`: the frame as a PNG file at `display.png_path`, drawn with the embedded font
//!   (`font.rs`) and written atomically (`atomic.rs`, which knows nothing of drawing);
//! - `framebuffer.rs`: the same frame on a Linux framebuffer (`[display.framebuffer]`);
//! - `web.rs`: the kiosk page (`[display.web]`): the page, its Server-Sent Events of full
//!   snapshots, and the snapshot as JSON.
//!
//! The frame sinks (PNG, framebuffer) acknowledge each version they have drawn; the engine
//! waits for them ([`Hub::drawn`]), so a change is on every screen by the time the call that
//! made it returns, and a QR leaves every sink with the commit that ends its attempt.
//! `qr.rs` encodes and places the QR (also as an SVG path for the page, and for `qrpayctl`).
//!
//! This module makes no business decision (the model is built from what the engine
//! committed), touches no SQL and speaks HTTP only as the kiosk page's local server.

pub mod atomic;
pub mod font;
pub mod format;
pub mod framebuffer;
pub mod model;
pub mod png;
pub mod qr;
pub mod strings;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use image::{Rgb, RgbImage};
use tokio::sync::watch;

pub use format::{AmountFormat, AmountFormats};
pub use framebuffer::{FramebufferSettings, PixelFormat};
pub use model::{DisplayModel, PayMode, ScreenState, Snapshot};
pub use png::{render, write_png_atomic};
pub use qr::{qr_image, terminal_qr};
pub use strings::Language;

/// How long the engine waits for a frame sink to draw a change before it goes on without it.
const DRAW_TIMEOUT: Duration = Duration::from_secs(2);

/// The display's settings, from the `[display]` section of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplaySettings {
    /// Where the PNG frame is written.
    pub png_path: PathBuf,
    /// The PNG frame's size in pixels.
    pub width: u32,
    pub height: u32,
    /// The offset of local time from UTC, for the expiry shown on the frame; `None` is UTC.
    pub utc_offset_seconds: Option<i32>,
    /// The language of every word on the display.
    pub language: Language,
    /// How each currency's amounts are written.
    pub amounts: AmountFormats,
    /// How long "paid" stays on screen before the idle screen.
    pub paid_hold: Duration,
    /// How long "expired", "cancelled" and "failed" stay on screen before the idle screen.
    pub ended_hold: Duration,
    /// The kiosk page, when on.
    pub web: Option<WebSettings>,
    /// The framebuffer, when on.
    pub framebuffer: Option<FramebufferSettings>,
}

/// `[display.web]`: the kiosk page's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSettings {
    /// Where it listens (`127.0.0.1:8090` unless set otherwise).
    pub listen: SocketAddr,
}

impl DisplaySettings {
    /// The defaults of every key, with the frame at `png_path` and words in `language`.
    pub fn with_defaults(png_path: PathBuf, language: Language) -> DisplaySettings {
        DisplaySettings {
            png_path,
            width: 800,
            height: 480,
            utc_offset_seconds: None,
            language,
            amounts: AmountFormats::default(),
            paid_hold: Duration::from_millis(5000),
            ended_hold: Duration::from_millis(10_000),
            web: None,
            framebuffer: None,
        }
    }

    /// English, the frame nowhere (for tests that never write it).
    #[cfg(test)]
    pub(crate) fn for_tests() -> DisplaySettings {
        DisplaySettings::with_defaults(PathBuf::from("/nonexistent/display.png"), Language::En)
    }
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
    /// The frame is larger than any real display, so it is refused rather than allocated.
    #[error("the display frame {width}x{height} is too large: at most {max} pixels a side")]
    FrameTooLarge {
        /// The requested frame width in pixels.
        width: u32,
        /// The requested frame height in pixels.
        height: u32,
        /// The largest width or height accepted.
        max: u32,
    },
    /// Writing the frame file (or the framebuffer) failed.
    #[error("cannot write the display frame {}: {source}", path.display())]
    Io {
        /// The file or device that was to be written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The framebuffer's pixel format is not one this module converts to.
    #[error("the framebuffer {} has a pixel format qrpayd cannot draw: {detail}", path.display())]
    PixelFormat {
        /// The device.
        path: PathBuf,
        /// What it reported.
        detail: String,
    },
    /// Encoding the QR code or the PNG failed for a reason other than size.
    #[error("cannot encode the display frame: {0}")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Publishes the display's snapshots to its sinks, and tells the engine when the frame sinks
/// have drawn one.
#[derive(Debug)]
pub struct Hub {
    settings: DisplaySettings,
    snapshots: watch::Sender<Arc<Snapshot>>,
    /// What each frame sink has drawn: the version of its last snapshot.
    drawn: Mutex<Vec<watch::Receiver<u64>>>,
}

/// A frame sink's acknowledgement: the version it has just drawn (or failed to draw; a failure
/// is logged by the sink and does not hold the engine up).
#[derive(Debug, Clone)]
pub struct Drawn(Arc<watch::Sender<u64>>);

impl Drawn {
    /// Says that the snapshot `version` is drawn.
    pub fn done(&self, version: u64) {
        self.0.send_if_modified(|drawn| {
            let newer = version > *drawn;
            *drawn = (*drawn).max(version);
            newer
        });
    }
}

impl Hub {
    /// A hub showing the idle screen (version 1).
    pub fn new(settings: DisplaySettings) -> Hub {
        let idle = Snapshot::new(&DisplayModel::idle(), &settings, 1);
        let (snapshots, _) = watch::channel(Arc::new(idle));
        Hub {
            settings,
            snapshots,
            drawn: Mutex::new(Vec::new()),
        }
    }

    /// The display's settings.
    pub fn settings(&self) -> &DisplaySettings {
        &self.settings
    }

    /// Puts `model` on every screen, unless they show it already. Returns the new snapshot's
    /// version, or `None` when nothing changed.
    pub fn show(&self, model: &DisplayModel) -> Option<u64> {
        let mut version = None;
        self.snapshots.send_if_modified(|current| {
            let next = Snapshot::new(model, &self.settings, current.version + 1);
            if next.shows_the_same(current) {
                return false;
            }
            version = Some(next.version);
            *current = Arc::new(next);
            true
        });
        version
    }

    /// What the screens show now.
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// Every snapshot from now on, starting with the current one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.subscribe()
    }

    /// Registers a frame sink whose drawing [`Hub::drawn`] waits for.
    pub fn attach_frame_sink(&self) -> Drawn {
        let (sender, receiver) = watch::channel(0);
        lock(&self.drawn).push(receiver);
        Drawn(Arc::new(sender))
    }

    /// Waits until every frame sink has drawn `version` (or a later one), each for at most two
    /// seconds: a stuck sink is logged, never allowed to stall payments.
    pub async fn drawn(&self, version: u64) {
        let sinks: Vec<watch::Receiver<u64>> = lock(&self.drawn).clone();
        for mut sink in sinks {
            match tokio::time::timeout(DRAW_TIMEOUT, sink.wait_for(|drawn| *drawn >= version)).await
            {
                // A sink that stopped has nothing more to draw.
                Ok(Ok(_) | Err(_)) => {}
                Err(_) => tracing::warn!(
                    version,
                    "a customer display sink did not draw within {DRAW_TIMEOUT:?}"
                ),
            }
        }
    }
}

/// Locks a mutex of plain bookkeeping, ignoring poison (nothing half-written can matter here).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A rectangle in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) w: u32,
    pub(crate) h: u32,
}

/// Fills `rect` with `color`, clipped to the image.
pub(crate) fn fill_rect(image: &mut RgbImage, rect: Rect, color: Rgb<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::model::tests::{attempt, transaction};
    use crate::domain::{AttemptStatus, Currency};

    #[tokio::test]
    async fn the_hub_publishes_changes_only_and_waits_for_its_frame_sinks() {
        let hub = Hub::new(DisplaySettings::for_tests());
        let mut snapshots = hub.subscribe();
        assert_eq!(snapshots.borrow_and_update().state, ScreenState::Idle);
        assert_eq!(
            hub.show(&DisplayModel::idle()),
            None,
            "the idle screen is there already"
        );
        assert!(!snapshots.has_changed().expect("open"));

        let t = transaction(Currency::Mnt, "12500");
        let waiting =
            DisplayModel::for_attempt(&attempt(AttemptStatus::Sent, "12500", "0"), &t, "QPay");
        let sink = hub.attach_frame_sink();
        let version = hub.show(&waiting).expect("a change");
        assert_eq!(version, 2);
        assert_eq!(hub.show(&waiting), None);
        assert!(snapshots.has_changed().expect("open"));
        assert_eq!(snapshots.borrow_and_update().state, ScreenState::Waiting);

        let waiter = hub.drawn(version);
        tokio::pin!(waiter);
        assert!(
            futures_util::FutureExt::now_or_never(waiter.as_mut()).is_none(),
            "not drawn yet"
        );
        sink.done(version);
        waiter.await;
        // A sink that is gone holds nothing up.
        drop(sink);
        hub.drawn(99).await;
    }
}
