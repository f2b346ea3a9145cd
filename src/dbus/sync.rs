//! The upstream sync on D-Bus: its errors as D-Bus errors, parked events as `a{sv}` rows, and
//! the task that turns the sync's status into `PropertiesChanged` for `PendingSync`,
//! `SyncState`, `OldestPendingSeconds`, `ParkedSync` and `LastSyncAt`.

use std::time::Duration;

use zbus::object_server::InterfaceRef;

use super::args::{self, VarDict, Writer};
use super::error::PayError;
use super::terminal::Terminal;
use crate::domain::ParkedEvent;
use crate::sync::{SyncError, SyncHandle};

impl From<SyncError> for PayError {
    fn from(error: SyncError) -> PayError {
        let message = error.to_string();
        match error {
            SyncError::Disabled => PayError::SyncDisabled(message),
            SyncError::NotParked(_) => PayError::SyncEventNotParked(message),
            SyncError::Store(_) | SyncError::Task(_) => PayError::Internal(message),
        }
    }
}

/// `ListParkedSync`'s rows.
pub fn parked_rows(events: &[ParkedEvent]) -> Result<Vec<VarDict>, PayError> {
    events
        .iter()
        .map(|event| {
            Writer::new()
                .value("seq", event.seq)
                .str("transaction_id", &event.transaction_id)
                .opt_str("transaction_number", event.transaction_number.clone())
                .str("kind", &event.kind)
                .str("answer", &event.answer)
                .str("parked_at", args::time(event.parked_at))
                .finish()
        })
        .collect()
}

/// `LastSyncAt`: RFC 3339, or empty when the back office never accepted anything.
pub fn last_sync_at(sync: &SyncHandle) -> String {
    sync.status()
        .last_sync_at
        .map(args::time)
        .unwrap_or_default()
}

/// How long a burst of changes is gathered into one round of signals.
const GATHER: Duration = Duration::from_millis(50);

/// The values of the sync's properties, to signal only those that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Values {
    state: &'static str,
    last_sync_at: String,
    pending: u64,
    parked: u64,
    oldest_pending_seconds: u64,
}

/// Emits `PropertiesChanged` for the sync's properties whenever its status moves, at most one
/// round per [`GATHER`], each property only when its value changed.
pub async fn forward_status(sync: SyncHandle, terminal: InterfaceRef<Terminal>) {
    let mut status = sync.subscribe();
    let mut last: Option<Values> = None;
    loop {
        if status.changed().await.is_err() {
            return;
        }
        tokio::time::sleep(GATHER).await;
        status.borrow_and_update();
        let Ok(now) = current(&sync).await else {
            continue;
        };
        let iface = terminal.get().await;
        let emitter = terminal.signal_emitter();
        let changed = |pick: fn(&Values) -> String| {
            last.as_ref()
                .is_none_or(|before| pick(before) != pick(&now))
        };
        let mut results = Vec::new();
        if changed(|v| v.state.to_owned()) {
            results.push(iface.sync_state_changed(emitter).await);
        }
        if changed(|v| v.last_sync_at.clone()) {
            results.push(iface.last_sync_at_changed(emitter).await);
        }
        if changed(|v| v.pending.to_string()) {
            results.push(iface.pending_sync_changed(emitter).await);
        }
        if changed(|v| v.parked.to_string()) {
            results.push(iface.parked_sync_changed(emitter).await);
        }
        if changed(|v| v.oldest_pending_seconds.to_string()) {
            results.push(iface.oldest_pending_seconds_changed(emitter).await);
        }
        for result in results {
            if let Err(error) = result {
                tracing::warn!(%error, "cannot signal a change of the sync's properties");
            }
        }
        last = Some(now);
    }
}

async fn current(sync: &SyncHandle) -> Result<Values, SyncError> {
    Ok(Values {
        state: sync.status().state.name(),
        last_sync_at: last_sync_at(sync),
        pending: sync.pending_count().await?,
        parked: sync.parked_count().await?,
        oldest_pending_seconds: sync.oldest_pending_seconds().await?,
    })
}
