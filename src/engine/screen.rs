//! The customer display driver: decides which attempt the screen shows and asks `display` to
//! render it. The screen follows the newest live payment attempt; an older attempt's change
//! never replaces it. Frames are rendered one at a time, so the file always holds the latest.
//!
//! A card or account payment (method `ATM`) shows the page where the customer finishes it as a
//! QR, with a line saying so. Such an address can be too long for any QR the frame can hold
//! (AppotaPay's run to about 2 800 characters): the frame is then drawn without the QR, its
//! texts still saying what is happening, rather than not at all.

use std::path::{Path, PathBuf};

use crate::display::{self, Frame, ScreenState};
use crate::domain::{Attempt, AttemptStatus, AttemptType, Transaction, format_for_display};

/// Where and how big the customer display frame is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenSettings {
    pub png_path: PathBuf,
    pub width: u32,
    pub height: u32,
    /// The offset of local time from UTC, for the expiry shown to the customer; `None` is UTC.
    pub utc_offset_seconds: Option<i32>,
}

pub(super) struct Screen {
    settings: ScreenSettings,
    /// What is on screen: the attempt it follows and the frame last written. Rendering holds
    /// this lock, so frames are written one at a time, in order.
    shown: tokio::sync::Mutex<Shown>,
}

#[derive(Default)]
struct Shown {
    attempt_id: Option<String>,
    /// The `seq` of the attempt's change last drawn: an older change of the same attempt that
    /// arrives late is not drawn.
    seq: u64,
    frame: Option<Owned>,
}

impl Screen {
    pub(super) fn new(settings: ScreenSettings) -> Screen {
        Screen {
            settings,
            shown: tokio::sync::Mutex::new(Shown::default()),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.settings.png_path
    }

    /// Shows the idle frame unless something is already on screen.
    pub(super) async fn show_idle_if_blank(&self) {
        let mut shown = self.shown.lock().await;
        if shown.frame.is_none() {
            self.render(&mut shown, Owned::idle()).await;
        }
    }

    /// Shows the attempt's state if the screen follows it (or it is a newer live attempt), and
    /// the change (`seq`) is newer than what the screen shows.
    pub(super) async fn update(
        &self,
        attempt: &Attempt,
        transaction: &Transaction,
        provider: String,
        seq: u64,
    ) {
        // A payment attempt not yet created at its provider has nothing to show yet (cash
        // attempts do: the amount to pay at the counter).
        let nothing_yet = attempt.status == AttemptStatus::New
            && attempt.qr_text.is_none()
            && attempt.provider != super::SYSTEM_PROVIDER;
        if attempt.kind != AttemptType::Payment || nothing_yet {
            return;
        }
        let mut shown = self.shown.lock().await;
        let follows = shown.attempt_id.as_deref() == Some(attempt.id.as_str());
        if follows && seq < shown.seq {
            // An older state of what is on screen, overtaken by a newer one.
            return;
        }
        if !follows && !attempt.status.is_open() {
            return;
        }
        shown.attempt_id = Some(attempt.id.clone());
        shown.seq = seq;
        let frame = Owned::for_attempt(
            attempt,
            transaction,
            provider,
            self.settings.utc_offset_seconds.unwrap_or(0),
        );
        self.render(&mut shown, frame).await;
    }

    /// Writes `frame` unless it is what the screen already shows. A QR that does not fit the
    /// frame (see the module documentation) leaves the frame without it.
    async fn render(&self, shown: &mut Shown, frame: Owned) {
        if shown.frame.as_ref() == Some(&frame) {
            return;
        }
        let mut result = self.write(&frame).await;
        if let Ok(Err(
            error @ (display::DisplayError::QrTooLong { .. }
            | display::DisplayError::FrameTooSmall { .. }),
        )) = &result
            && frame.qr_text.is_some()
        {
            tracing::warn!(%error, "the QR does not fit the customer display; showing the text only");
            let text_only = Owned {
                qr_text: None,
                ..frame.clone()
            };
            result = self.write(&text_only).await;
        }
        match result {
            // What was asked for is remembered, so the same frame is not tried again.
            Ok(Ok(())) => shown.frame = Some(frame),
            Ok(Err(error)) => tracing::error!(%error, "cannot write the customer display frame"),
            Err(error) => tracing::error!(%error, "the display task failed"),
        }
    }

    /// Renders and writes `frame` on a blocking thread.
    async fn write(
        &self,
        frame: &Owned,
    ) -> Result<Result<(), display::DisplayError>, tokio::task::JoinError> {
        let settings = self.settings.clone();
        let to_write = frame.clone();
        tokio::task::spawn_blocking(move || {
            display::write_frame(
                &settings.png_path,
                &to_write.as_frame(),
                settings.width,
                settings.height,
            )
        })
        .await
    }
}

/// The line under a card or account payment's QR.
const CARD_NOTE: &str = "Finish the payment on your phone";

/// An owned copy of a frame's text, to hand to a blocking thread.
#[derive(Clone, PartialEq, Eq)]
struct Owned {
    state: ScreenState,
    qr_text: Option<String>,
    amount: Option<String>,
    paid: Option<String>,
    provider: Option<String>,
    expires: Option<String>,
    note: Option<String>,
}

impl Owned {
    fn idle() -> Owned {
        Owned {
            state: ScreenState::Idle,
            qr_text: None,
            amount: None,
            paid: None,
            provider: None,
            expires: None,
            note: None,
        }
    }

    fn for_attempt(
        attempt: &Attempt,
        transaction: &Transaction,
        provider: String,
        utc_offset_seconds: i32,
    ) -> Owned {
        let currency = transaction.currency;
        let state = match attempt.status {
            AttemptStatus::New | AttemptStatus::Sent if attempt.paid.is_zero() => {
                ScreenState::Waiting
            }
            AttemptStatus::New | AttemptStatus::Sent => ScreenState::PartiallyPaid,
            AttemptStatus::Success if attempt.paid < attempt.amount => ScreenState::PartiallyPaid,
            AttemptStatus::Success => ScreenState::Paid,
            AttemptStatus::Expired => ScreenState::Expired,
            AttemptStatus::Fail
                if attempt
                    .failure
                    .as_ref()
                    .is_some_and(|f| f.code == "CANCELLED") =>
            {
                ScreenState::Cancelled
            }
            AttemptStatus::Fail => ScreenState::Failed,
        };
        let live = attempt.status.is_open();
        Owned {
            state,
            qr_text: if live { attempt.qr_text.clone() } else { None },
            amount: Some(format_for_display(attempt.amount, currency)),
            paid: Some(format_for_display(attempt.paid, currency)),
            provider: Some(provider),
            expires: match attempt.expires_at {
                Some(at) if live => {
                    Some(format!("Pay before {}", at.time_of_day(utc_offset_seconds)))
                }
                _ => None,
            },
            note: if live && attempt.qr_text.is_none() && attempt.provider == super::SYSTEM_PROVIDER
            {
                Some("Please pay at the counter".to_owned())
            } else if live && attempt.method == super::METHOD_ATM {
                Some(CARD_NOTE.to_owned())
            } else {
                None
            },
        }
    }

    fn as_frame(&self) -> Frame<'_> {
        Frame {
            state: self.state,
            qr_text: self.qr_text.as_deref(),
            amount: self.amount.as_deref(),
            paid: self.paid.as_deref(),
            provider: self.provider.as_deref(),
            expires: self.expires.as_deref(),
            note: self.note.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card_frame(url: &str) -> Owned {
        Owned {
            state: ScreenState::Waiting,
            qr_text: Some(url.to_owned()),
            amount: Some("150,000 VND".to_owned()),
            paid: Some("0 VND".to_owned()),
            provider: Some("AppotaPay".to_owned()),
            expires: Some("Pay before 14:35".to_owned()),
            note: Some(CARD_NOTE.to_owned()),
        }
    }

    /// The QR codes in the frame file, decoded.
    fn qr_codes_in(path: &Path) -> Vec<String> {
        let image = image::open(path).expect("a PNG").to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(image);
        prepared
            .detect_grids()
            .iter()
            .filter_map(|grid| grid.decode().ok().map(|(_, content)| content))
            .collect()
    }

    #[tokio::test]
    async fn a_page_address_too_long_for_the_frame_is_drawn_as_text_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "https://ibanking.appotapay.test/confirm-otp?tran={}",
            "A".repeat(2750)
        );
        for (width, height, shows_qr) in [(800, 480, true), (480, 272, false)] {
            let path = dir.path().join(format!("{width}x{height}.png"));
            let screen = Screen::new(ScreenSettings {
                png_path: path.clone(),
                width,
                height,
                utc_offset_seconds: None,
            });
            let frame = card_frame(&url);
            let mut shown = screen.shown.lock().await;
            screen.render(&mut shown, frame.clone()).await;
            assert!(shown.frame == Some(frame), "written at {width}x{height}");
            let codes = qr_codes_in(&path);
            if shows_qr {
                assert_eq!(codes, vec![url.clone()], "the QR at {width}x{height}");
            } else {
                assert!(codes.is_empty(), "no QR at {width}x{height}");
            }
        }
    }
}
