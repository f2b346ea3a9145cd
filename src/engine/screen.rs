//! The customer display driver: decides which attempt the screen shows and asks `display` to
//! render it. The screen follows the newest live payment attempt; an older attempt's change
//! never replaces it. Frames are rendered one at a time, so the file always holds the latest.

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

    /// The local time's offset from UTC, when known.
    pub(super) fn utc_offset_seconds(&self) -> Option<i32> {
        self.settings.utc_offset_seconds
    }

    /// Shows the idle frame unless something is already on screen.
    pub(super) async fn show_idle_if_blank(&self) {
        let mut shown = self.shown.lock().await;
        if shown.frame.is_none() {
            self.render(&mut shown, Owned::idle()).await;
        }
    }

    /// Shows the attempt's state if the screen follows it (or it is a newer live attempt).
    pub(super) async fn update(
        &self,
        attempt: &Attempt,
        transaction: &Transaction,
        provider: String,
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
        if !follows && !attempt.status.is_open() {
            return;
        }
        shown.attempt_id = Some(attempt.id.clone());
        let frame = Owned::for_attempt(
            attempt,
            transaction,
            provider,
            self.settings.utc_offset_seconds.unwrap_or(0),
        );
        self.render(&mut shown, frame).await;
    }

    /// Writes `frame` unless it is what the screen already shows.
    async fn render(&self, shown: &mut Shown, frame: Owned) {
        if shown.frame.as_ref() == Some(&frame) {
            return;
        }
        let settings = self.settings.clone();
        let to_write = frame.clone();
        let result = tokio::task::spawn_blocking(move || {
            display::write_frame(
                &settings.png_path,
                &to_write.as_frame(),
                settings.width,
                settings.height,
            )
        })
        .await;
        match result {
            Ok(Ok(())) => shown.frame = Some(frame),
            Ok(Err(error)) => tracing::error!(%error, "cannot write the customer display frame"),
            Err(error) => tracing::error!(%error, "the display task failed"),
        }
    }
}

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
