//! Which payment the customer display shows: the engine's decision, from committed state. The
//! screen follows the newest live payment attempt; an older attempt's change never replaces it,
//! and an older change of the attempt on screen (a lower `seq`) never replaces a newer one.
//! "Paid" stays for `display.paid_hold_ms`, an ended payment (expired, cancelled, failed) for
//! `display.ended_hold_ms`, then the screen goes idle.
//!
//! What it shows is `display`'s business: this module hands it a [`DisplayModel`] built from the
//! committed attempt and transaction, and waits until the frame sinks have drawn it, so a change
//! is on screen when the call that made it returns.

use std::path::Path;
use std::sync::Arc;

use crate::display::{DisplayModel, Hub};
use crate::domain::{Attempt, AttemptStatus, AttemptType, Transaction};

pub use crate::display::DisplaySettings as ScreenSettings;

pub(super) struct Screen {
    hub: Arc<Hub>,
    shown: Arc<tokio::sync::Mutex<Shown>>,
}

#[derive(Default)]
struct Shown {
    attempt_id: Option<String>,
    /// The `seq` of the attempt's change last shown: an older change of the same attempt that
    /// arrives late is not shown.
    seq: u64,
    /// Grows with every model shown; a hold that finds it changed leaves the screen alone.
    generation: u64,
}

impl Screen {
    pub(super) fn new(settings: ScreenSettings) -> Screen {
        Screen {
            hub: Arc::new(Hub::new(settings)),
            shown: Arc::new(tokio::sync::Mutex::new(Shown::default())),
        }
    }

    /// The hub the display's sinks render from.
    pub(super) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    pub(super) fn path(&self) -> &Path {
        &self.hub.settings().png_path
    }

    /// Shows the attempt's state if the screen follows it (or it is a newer live attempt), and
    /// the change (`seq`) is newer than what the screen shows; returns once it is drawn.
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
        let version = {
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
            let model = DisplayModel::for_attempt(attempt, transaction, &provider);
            self.show(&mut shown, &model)
        };
        if let Some(version) = version {
            self.hub.drawn(version).await;
        }
    }

    /// Publishes `model`; a state that does not last is followed by the idle screen after its
    /// hold, unless something else is shown meanwhile.
    fn show(&self, shown: &mut Shown, model: &DisplayModel) -> Option<u64> {
        shown.generation += 1;
        let version = self.hub.show(model);
        let settings = self.hub.settings();
        let hold = match model.state {
            state if state.is_lasting() => return version,
            crate::display::ScreenState::Paid => settings.paid_hold,
            _ => settings.ended_hold,
        };
        let generation = shown.generation;
        let hub = self.hub.clone();
        let shown = self.shown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let mut shown = shown.lock().await;
            if shown.generation == generation {
                shown.generation += 1;
                hub.show(&DisplayModel::idle());
            }
        });
        version
    }
}

/// The attempt the screen shows after a restart: the newest payment attempt still open.
pub(super) fn on_screen_after_restart(attempts: &[Attempt]) -> Option<String> {
    attempts
        .iter()
        .filter(|a| a.kind == AttemptType::Payment && a.status.is_open())
        .max_by_key(|a| (a.created_at, a.code.clone()))
        .map(|a| a.id.clone())
}

impl super::Engine {
    /// The display's hub, for its sinks; `None` when the display is off.
    pub fn display_hub(&self) -> Option<Arc<Hub>> {
        self.inner
            .screen
            .as_ref()
            .map(|screen| screen.hub().clone())
    }

    /// After a restart, puts the payment still open on screen again (the screen starts idle).
    pub(super) async fn show_after_restart(&self, attempt_id: Option<String>) {
        let (Some(screen), Some(attempt_id)) = (&self.inner.screen, attempt_id) else {
            return;
        };
        let publisher = self.inner.publisher.clone();
        let read = self
            .read(move |tx| {
                let (transaction, attempt) = super::checkout::load_pair_in(tx, &attempt_id)?;
                Ok((publisher.current_seq(), transaction, attempt))
            })
            .await;
        match read {
            Ok((seq, transaction, attempt)) => {
                let provider = self.display_name(&attempt.provider);
                screen.update(&attempt, &transaction, provider, seq).await;
            }
            Err(error) => tracing::warn!(%error, "cannot show the open payment after a restart"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::display::model::tests::{attempt, transaction};
    use crate::display::{Language, ScreenState};
    use crate::domain::Currency;

    fn screen() -> Screen {
        let mut settings = ScreenSettings::with_defaults("/nonexistent.png".into(), Language::Mn);
        settings.paid_hold = Duration::from_millis(5000);
        settings.ended_hold = Duration::from_millis(10_000);
        Screen::new(settings)
    }

    #[tokio::test(start_paused = true)]
    async fn paid_is_held_then_the_screen_goes_idle() {
        let screen = screen();
        let mut snapshots = screen.hub().subscribe();
        let t = transaction(Currency::Mnt, "12500");
        screen
            .update(
                &attempt(AttemptStatus::Sent, "12500", "0"),
                &t,
                "QPay".into(),
                1,
            )
            .await;
        assert_eq!(snapshots.borrow_and_update().state, ScreenState::Waiting);
        screen
            .update(
                &attempt(AttemptStatus::Success, "12500", "12500"),
                &t,
                "QPay".into(),
                3,
            )
            .await;
        assert_eq!(snapshots.borrow_and_update().state, ScreenState::Paid);
        let paid_at = tokio::time::Instant::now();
        snapshots.changed().await.expect("the idle screen follows");
        assert_eq!(snapshots.borrow_and_update().state, ScreenState::Idle);
        assert_eq!(paid_at.elapsed(), Duration::from_millis(5000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_payment_during_the_hold_is_not_replaced_by_idle() {
        let screen = screen();
        let mut snapshots = screen.hub().subscribe();
        let t = transaction(Currency::Mnt, "12500");
        screen
            .update(
                &attempt(AttemptStatus::Expired, "12500", "0"),
                &t,
                "QPay".into(),
                1,
            )
            .await;
        assert_eq!(
            snapshots.borrow_and_update().state,
            ScreenState::Idle,
            "not followed: closed"
        );
        screen
            .update(
                &attempt(AttemptStatus::Sent, "12500", "0"),
                &t,
                "QPay".into(),
                2,
            )
            .await;
        screen
            .update(
                &attempt(AttemptStatus::Expired, "12500", "0"),
                &t,
                "QPay".into(),
                3,
            )
            .await;
        assert_eq!(snapshots.borrow_and_update().state, ScreenState::Expired);
        tokio::time::sleep(Duration::from_millis(4000)).await;
        let mut next = attempt(AttemptStatus::Sent, "9000", "0");
        next.id = "a-2".to_owned();
        screen.update(&next, &t, "QPay".into(), 4).await;
        assert_eq!(snapshots.borrow_and_update().state, ScreenState::Waiting);
        tokio::time::sleep(Duration::from_millis(20_000)).await;
        assert!(
            !snapshots.has_changed().expect("open"),
            "the new payment stays"
        );
        // An older change of the attempt on screen is not shown.
        screen.update(&next, &t, "QPay".into(), 2).await;
        assert!(!snapshots.has_changed().expect("open"));
    }

    #[test]
    fn after_a_restart_the_newest_open_payment_is_shown() {
        let mut old = attempt(AttemptStatus::Sent, "1", "0");
        old.id = "old".to_owned();
        let mut new = attempt(AttemptStatus::Sent, "1", "0");
        new.id = "new".to_owned();
        new.created_at.0 += 1;
        let mut closed = attempt(AttemptStatus::Expired, "1", "0");
        closed.created_at.0 += 2;
        assert_eq!(
            on_screen_after_restart(&[old, new, closed]),
            Some("new".to_owned())
        );
        assert_eq!(on_screen_after_restart(&[]), None);
    }
}
