//! The upstream sync: store-and-forward of the outbox to the merchant's MQ-Pay back office.
//!
//! It owns the outbox's far side. Its task reads undelivered events, sends each record's
//! current state (`wire`) through the MQ-Pay client (`crate::mqpay`), and marks the events
//! delivered once the back office accepted them: at least once, in order per transaction, up
//! to `max_in_flight` transactions at a time. Failures follow the client's one classification:
//! retried with back-off (`backoff`), a pause for refused credentials, or the event **parked**
//! (kept, listed, blocking only its own transaction) until someone retries it. It also deletes
//! what retention allows, in small batches.
//!
//! It never touches a record's state (only the outbox's delivery columns), never holds the
//! store for more than one short write, and never sends or logs a secret. It knows no D-Bus:
//! [`SyncHandle`] is what `dbus` and `daemon` hold.

mod backoff;
pub mod wire;
mod worker;

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use crate::config::UpstreamSettings;
use crate::domain::{ParkedEvent, Timestamp};
use crate::engine::Event;
use crate::mqpay::MqPay;
use crate::store::{Store, StoreError};

pub use backoff::backoff;

/// The sync's state, as `SyncState` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// No `[upstream]` section: nothing is sent.
    Disabled,
    /// Everything sendable was delivered (parked events excepted).
    Idle,
    /// Sending.
    Syncing,
    /// The back office cannot be reached or answers 5xx / 429: retrying with back-off.
    Offline,
    /// The back office refuses the API key (401 / 403): retried every five minutes.
    PausedAuth,
}

impl SyncState {
    /// The name on D-Bus and in the journal.
    pub fn name(self) -> &'static str {
        match self {
            SyncState::Disabled => "disabled",
            SyncState::Idle => "idle",
            SyncState::Syncing => "syncing",
            SyncState::Offline => "offline",
            SyncState::PausedAuth => "paused-auth",
        }
    }
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the sync publishes whenever something the till sees may have changed: its state, when
/// the back office last accepted a request, and a counter that grows with every change of the
/// outbox's delivery (the counts themselves are read from the store when asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    pub state: SyncState,
    pub last_sync_at: Option<Timestamp>,
    pub changes: u64,
}

/// Why a sync request from the till or IT failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the upstream sync is off: the config has no [upstream] section")]
    Disabled,
    #[error("no parked event has the number {0}; list them with qrpayctl sync parked")]
    NotParked(i64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the sync's database task failed: {0}")]
    Task(String),
}

/// The sync as the rest of the daemon sees it. Cloning is cheap; dropping the last clone
/// does not stop the task: [`SyncHandle::stop`] does (the daemon calls it as it stops).
#[derive(Clone)]
pub struct SyncHandle {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    enabled: bool,
    status: watch::Sender<SyncStatus>,
    /// `SyncNow`, a retry: wake at once, through any back-off or pause.
    now: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle")
            .field("enabled", &self.shared.enabled)
            .finish_non_exhaustive()
    }
}

impl SyncHandle {
    /// The handle of a daemon without `[upstream]`: the state says `disabled`, the counts are
    /// still read, nothing is sent or deleted.
    pub fn disabled(store: Store) -> SyncHandle {
        SyncHandle::new(store, false, None)
    }

    /// Starts the sync task with `settings`; `events` (the engine's) wake it when the till
    /// writes something.
    pub fn start(
        store: Store,
        settings: &UpstreamSettings,
        events: tokio::sync::broadcast::Receiver<Event>,
    ) -> Result<SyncHandle, String> {
        let client = MqPay::new(settings.mqpay.clone())?;
        let last_sync_at = store
            .read(|tx| tx.provider_state(worker::STATE_OWNER, worker::LAST_SYNC_KEY))
            .ok()
            .flatten()
            .and_then(|text| text.parse().ok())
            .map(Timestamp);
        let handle = SyncHandle::new(store, true, last_sync_at);
        let task = tokio::spawn(worker::run(
            handle.clone(),
            client,
            settings.clone(),
            events,
        ));
        *lock(&handle.shared.task) = Some(task);
        Ok(handle)
    }

    fn new(store: Store, enabled: bool, last_sync_at: Option<Timestamp>) -> SyncHandle {
        let state = if enabled {
            SyncState::Syncing
        } else {
            SyncState::Disabled
        };
        let (status, _) = watch::channel(SyncStatus {
            state,
            last_sync_at,
            changes: 0,
        });
        SyncHandle {
            shared: Arc::new(Shared {
                store,
                enabled,
                status,
                now: Notify::new(),
                task: Mutex::new(None),
            }),
        }
    }

    /// Stops the task (a request in flight is dropped; its events stay undelivered).
    pub fn stop(&self) {
        if let Some(task) = lock(&self.shared.task).take() {
            task.abort();
        }
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.shared.status.borrow().clone()
    }

    /// A receiver that sees every new status.
    pub fn subscribe(&self) -> watch::Receiver<SyncStatus> {
        self.shared.status.subscribe()
    }

    /// Wakes the sync at once, through any back-off or pause (`SyncNow`).
    pub fn sync_now(&self) -> Result<(), SyncError> {
        if !self.shared.enabled {
            return Err(SyncError::Disabled);
        }
        self.shared.now.notify_one();
        Ok(())
    }

    /// How many events wait for the back office, parked ones included (`PendingSync`).
    pub async fn pending_count(&self) -> Result<u64, SyncError> {
        self.on_store(|store| store.read(|tx| tx.pending_outbox_count()))
            .await
    }

    /// How many events are parked.
    pub async fn parked_count(&self) -> Result<u64, SyncError> {
        self.on_store(|store| store.read(|tx| tx.parked_outbox_count()))
            .await
    }

    /// Seconds since the oldest undelivered event was queued; 0 when there is none.
    pub async fn oldest_pending_seconds(&self) -> Result<u64, SyncError> {
        let oldest = self
            .on_store(|store| store.read(|tx| tx.oldest_pending_outbox()))
            .await?;
        Ok(oldest.map_or(0, |at| at.millis_until(Timestamp::now()) / 1000))
    }

    /// The parked events, oldest first (at most a thousand).
    pub async fn parked(&self) -> Result<Vec<ParkedEvent>, SyncError> {
        self.on_store(|store| store.read(|tx| tx.parked_outbox(1000)))
            .await
    }

    /// Sends parked events again: the one numbered `seq`, or every one. Returns how many.
    pub async fn retry(&self, seq: Option<i64>) -> Result<u64, SyncError> {
        if !self.shared.enabled {
            return Err(SyncError::Disabled);
        }
        let count = self
            .on_store(move |store| store.write(|tx| tx.unpark(seq)))
            .await?;
        if let (Some(seq), 0) = (seq, count) {
            return Err(SyncError::NotParked(seq));
        }
        if count > 0 {
            tracing::info!(count, "parked upstream events are retried");
            self.published(|_| {});
        }
        self.shared.now.notify_one();
        Ok(count as u64)
    }

    /// Runs store work on a blocking thread.
    async fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, SyncError> {
        let store = self.shared.store.clone();
        crate::logging::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| SyncError::Task(e.to_string()))?
            .map_err(SyncError::from)
    }

    /// Publishes a status changed by `change`, counting it as a change of the outbox.
    fn published(&self, change: impl FnOnce(&mut SyncStatus)) {
        self.shared.status.send_modify(|status| {
            change(status);
            status.changes = status.changes.wrapping_add(1);
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
