//! The sync task: passes over the outbox, one transaction per unit of work, and the waits
//! between them.
//!
//! A pass reads up to [`BATCH`] sendable events (oldest first; none of a transaction with a
//! parked event), groups them by transaction, and syncs up to `max_in_flight` transactions at
//! once. Within a transaction the events' records are sent in the order of their first event
//! (so a parent always goes before its child), each record once, in its current state: the
//! events of one record are coalesced into one request. The first failure stops that
//! transaction; what the back office accepted in the whole pass is marked delivered in one
//! short write at its end.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::wire::{self, GatewayLink, Outgoing, RecordKey, WireRecord};
use super::{SyncHandle, SyncState, backoff};
use crate::config::UpstreamSettings;
use crate::domain::{AttemptStatus, OutboxEvent, Timestamp};
use crate::engine::Event;
use crate::mqpay::{Disposition, Method, MqPay, MqPayError, Request};
use crate::store::{StoreError, TransactionRecords};

/// The most events one pass reads.
pub const BATCH: u32 = 512;
/// How long a pause for refused credentials lasts before the next try.
pub const AUTH_PAUSE: Duration = Duration::from_secs(300);
/// How often the sync looks at the outbox when nothing woke it.
const IDLE_LOOK: Duration = Duration::from_secs(60);
/// How long delivered events are kept.
pub const DELIVERED_KEPT: Duration = Duration::from_secs(7 * 86_400);
/// How often retention runs (and at start, and on `SyncNow`).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted per retention write.
const RETENTION_BATCH: u32 = 200;
/// Transactions deleted per retention write.
const RETENTION_TRANSACTIONS: u32 = 50;

/// Where the time of the last accepted request is kept across restarts (`provider_state`).
pub const STATE_OWNER: &str = "upstream";
pub const LAST_SYNC_KEY: &str = "last_sync_at";

/// How a unit of work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Every event given was delivered, or parked.
    Done,
    /// Try again later, not before `after` when the server said so.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// The credentials were refused.
    Auth { why: String },
}

impl Outcome {
    /// The worse of two outcomes: a pause for credentials over a retry over done.
    fn worst(self, other: Outcome) -> Outcome {
        match (self, other) {
            (auth @ Outcome::Auth { .. }, _) | (_, auth @ Outcome::Auth { .. }) => auth,
            (Outcome::Retry { after: a, why }, Outcome::Retry { after: b, .. }) => Outcome::Retry {
                after: a.max(b),
                why,
            },
            (retry @ Outcome::Retry { .. }, _) | (_, retry @ Outcome::Retry { .. }) => retry,
            _ => Outcome::Done,
        }
    }
}

struct Worker {
    handle: SyncHandle,
    client: MqPay,
    settings: UpstreamSettings,
}

/// The task: passes, then waits, until the daemon stops it.
pub async fn run(
    handle: SyncHandle,
    client: MqPay,
    settings: UpstreamSettings,
    mut events: broadcast::Receiver<Event>,
) {
    let worker = Worker {
        handle,
        client,
        settings,
    };
    let mut failures: u32 = 0;
    let mut last_retention: Option<Instant> = None;
    let mut forced = true;
    loop {
        if forced || last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
            worker.retention().await;
            last_retention = Some(Instant::now());
        }
        forced = false;
        let (outcome, more) = match worker.pass().await {
            Ok(result) => result,
            Err(error) => {
                tracing::error!(%error, "the upstream sync cannot read the outbox");
                (
                    Outcome::Retry {
                        after: None,
                        why: error.to_string(),
                    },
                    false,
                )
            }
        };
        let wait = match outcome {
            Outcome::Done => {
                failures = 0;
                if more {
                    worker.set_state(SyncState::Syncing, None);
                    continue;
                }
                worker.set_state(SyncState::Idle, None);
                None
            }
            Outcome::Retry { after, why } => {
                failures = failures.saturating_add(1);
                worker.set_state(SyncState::Offline, Some(&why));
                Some(backoff(failures, super::backoff::random(), after))
            }
            Outcome::Auth { why } => {
                worker.set_state(SyncState::PausedAuth, Some(&why));
                Some(AUTH_PAUSE)
            }
        };
        forced = worker.wait(&mut events, wait).await;
        if forced {
            failures = 0;
        }
    }
}

impl Worker {
    /// Waits for `SyncNow`, for the till's next write (only when not backing off), or for
    /// `wait` (a back-off, a pause; else a look every minute). Returns whether `SyncNow` woke
    /// it.
    async fn wait(&self, events: &mut broadcast::Receiver<Event>, wait: Option<Duration>) -> bool {
        let sleep = tokio::time::sleep(wait.unwrap_or(IDLE_LOOK));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = self.handle.shared.now.notified() => return true,
                _ = &mut sleep => return false,
                event = events.recv(), if wait.is_none() => match event {
                    Ok(Event::HealthChanged { .. }) => {}
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return false,
                    // The engine is gone: the daemon is stopping. Wait for `SyncNow` or time.
                    Err(broadcast::error::RecvError::Closed) => {
                        (&mut sleep).await;
                        return false;
                    }
                },
            }
        }
    }

    /// Publishes a new state, logging the change once: a warning when the sync goes offline or
    /// is paused, a line at info when it recovers, and the to and fro between `syncing` and
    /// `idle` that every sale makes at debug only.
    fn set_state(&self, state: SyncState, why: Option<&str>) {
        let before = self.handle.status().state;
        if before == state {
            return;
        }
        let troubled = |s: SyncState| matches!(s, SyncState::Offline | SyncState::PausedAuth);
        if troubled(state) {
            tracing::warn!(
                state = state.name(),
                reason = why.unwrap_or_default(),
                "the upstream sync is {state}"
            );
        } else if troubled(before) || before == SyncState::Disabled {
            tracing::info!(state = state.name(), "the upstream sync is {state}");
        } else {
            tracing::debug!(state = state.name(), "the upstream sync is {state}");
        }
        self.handle.published(|status| status.state = state);
    }

    /// One pass over up to [`BATCH`] events. Returns how it ended and whether more may wait.
    async fn pass(&self) -> Result<(Outcome, bool), super::SyncError> {
        let events = self
            .handle
            .on_store(|store| store.read(|tx| tx.sendable_outbox(BATCH)))
            .await?;
        if events.is_empty() {
            return Ok((Outcome::Done, false));
        }
        let full = events.len() as u32 == BATCH;
        // From idle the sync is syncing; offline or paused it stays so until a pass succeeds
        // (a retry is no news).
        if self.handle.status().state == SyncState::Idle {
            self.set_state(SyncState::Syncing, None);
        }
        let mut groups: Vec<(String, Vec<OutboxEvent>)> = Vec::new();
        for event in events {
            match groups
                .iter_mut()
                .find(|(id, _)| *id == event.transaction_id)
            {
                Some((_, group)) => group.push(event),
                None => groups.push((event.transaction_id.clone(), vec![event])),
            }
        }
        let results: Vec<(Outcome, Vec<i64>)> = futures_util::stream::iter(groups)
            .map(|(id, events)| self.sync_transaction(id, events))
            .buffer_unordered(self.settings.max_in_flight)
            .collect()
            .await;
        let mut delivered = Vec::new();
        let mut outcome = Outcome::Done;
        for (result, seqs) in results {
            outcome = outcome.worst(result);
            delivered.extend(seqs);
        }
        // One short write for the whole pass: the till's writes wait for one commit, not one
        // per transaction. A crash before it only sends these events again (at least once).
        if !delivered.is_empty()
            && let Err(error) = self.mark_delivered(delivered).await
        {
            tracing::error!(%error, "cannot mark upstream events delivered");
            outcome = outcome.worst(Outcome::Retry {
                after: None,
                why: error.to_string(),
            });
        }
        Ok((outcome, full))
    }

    /// Syncs one transaction's pending events, in order, stopping at the first failure.
    /// Returns how it ended and the events the back office accepted.
    async fn sync_transaction(
        &self,
        transaction_id: String,
        events: Vec<OutboxEvent>,
    ) -> (Outcome, Vec<i64>) {
        let id = transaction_id.clone();
        let records = match self
            .handle
            .on_store(move |store| store.read(|tx| tx.transaction_records(&id)))
            .await
        {
            Ok(Some(records)) => records,
            Ok(None) => {
                let first = events.first().map_or(0, |e| e.seq);
                self.park(
                    &transaction_id,
                    first,
                    "the transaction is not in the database",
                )
                .await;
                return (Outcome::Done, Vec::new());
            }
            Err(error) => {
                let retry = Outcome::Retry {
                    after: None,
                    why: error.to_string(),
                };
                return (retry, Vec::new());
            }
        };
        let link = match self.gateway_link(&records).await {
            Ok(link) => link,
            Err(error) => {
                let retry = Outcome::Retry {
                    after: None,
                    why: error.to_string(),
                };
                return (retry, Vec::new());
            }
        };
        if let Some(link) = &link
            && link.transaction_id.is_none()
            && records
                .attempts
                .iter()
                .any(|a| a.provider == link.provider && a.status == AttemptStatus::New)
        {
            // A gateway checkout is on its way to MQ-Pay: what it makes or finds there decides
            // whether this sale is created or patched. Held until its answer is recorded (an
            // event that wakes the sync), so the two never make the sale twice.
            return (Outcome::Done, Vec::new());
        }
        let steps = plan(&events, &records);
        let mut delivered = Vec::new();
        let mut outcome = Outcome::Done;
        for step in &steps {
            let record = match wire::record(&step.key, &records, link.as_ref()) {
                Some(Outgoing::Send(record)) => record,
                Some(Outgoing::Known) => {
                    delivered.extend(&step.seqs);
                    continue;
                }
                None => {
                    self.park(
                        &transaction_id,
                        step.first_seq,
                        "the record is not in the database",
                    )
                    .await;
                    break;
                }
            };
            match self.send(step, &record).await {
                Ok(()) => delivered.extend(&step.seqs),
                Err(error) => match error.disposition() {
                    Disposition::Retry { after } => {
                        outcome = Outcome::Retry {
                            after,
                            why: error.to_string(),
                        };
                        break;
                    }
                    Disposition::Auth => {
                        outcome = Outcome::Auth {
                            why: error.to_string(),
                        };
                        break;
                    }
                    Disposition::Exists | Disposition::NotFound | Disposition::Rejected => {
                        self.park(&transaction_id, step.first_seq, &error.to_string())
                            .await;
                        break;
                    }
                },
            }
        }
        (outcome, delivered)
    }

    /// How the sale meets the back office when it is the MQ-Pay the gateway provider takes
    /// payments through (see [`GatewayLink`]): MQ-Pay's transaction, read from the gateway's
    /// checkout journal once a checkout made or found it.
    async fn gateway_link(
        &self,
        records: &TransactionRecords,
    ) -> Result<Option<GatewayLink>, super::SyncError> {
        if !self.settings.shares_gateway {
            return Ok(None);
        }
        let provider = crate::providers::mqpay::MqPayGateway::NAME;
        let keys: Vec<String> = records
            .attempts
            .iter()
            .filter(|a| a.provider == provider)
            .map(|a| crate::providers::mqpay::checkout_journal_key(&a.idempotency_key))
            .collect();
        let transaction_id = self
            .handle
            .on_store(move |store| {
                store.read(|tx| {
                    for key in &keys {
                        if let Some(journal) = tx.provider_state(provider, key)?
                            && let Some(id) =
                                crate::providers::mqpay::journalled_transaction_id(&journal)
                        {
                            return Ok(Some(id));
                        }
                    }
                    Ok(None)
                })
            })
            .await?;
        Ok(Some(GatewayLink {
            transaction_id,
            provider,
        }))
    }

    /// Sends one record: a create (answered "exists": a PATCH of its whole state), or a PATCH
    /// of what changed (answered "not found": a create). A record the back office made itself
    /// is only patched.
    async fn send(&self, step: &Step, record: &WireRecord) -> Result<(), MqPayError> {
        let key = format!("{}-{}", self.settings.mqpay.terminal_id, step.key_seq);
        let path = record.path();
        let whole = record.patch(&[]);
        let create = Request {
            method: Method::Post,
            path: record.collection,
            body: Some(&record.body),
            idempotency_key: Some(&key),
        };
        let fallback_key;
        if record.patch_only {
            self.client
                .send(Request {
                    method: Method::Patch,
                    path: &path,
                    body: Some(&whole),
                    idempotency_key: Some(&key),
                })
                .await
                .map(drop)
        } else if step.create {
            match self.client.send(create).await {
                Err(error) if error.disposition() == Disposition::Exists => {
                    fallback_key = format!("{key}-patch");
                    self.client
                        .send(Request {
                            method: Method::Patch,
                            path: &path,
                            body: Some(&whole),
                            idempotency_key: Some(&fallback_key),
                        })
                        .await
                        .map(drop)
                }
                other => other.map(drop),
            }
        } else {
            let changed: Vec<&str> = step.changed.iter().map(String::as_str).collect();
            let patch = record.patch(&changed);
            match self
                .client
                .send(Request {
                    method: Method::Patch,
                    path: &path,
                    body: Some(&patch),
                    idempotency_key: Some(&key),
                })
                .await
            {
                Err(error) if error.disposition() == Disposition::NotFound => {
                    fallback_key = format!("{key}-create");
                    self.client
                        .send(Request {
                            idempotency_key: Some(&fallback_key),
                            ..create
                        })
                        .await
                        .map(drop)
                }
                other => other.map(drop),
            }
        }
    }

    /// Marks `seqs` delivered, with the time of this success.
    async fn mark_delivered(&self, seqs: Vec<i64>) -> Result<(), super::SyncError> {
        let now = Timestamp::now();
        self.handle
            .on_store(move |store| {
                store.write(|tx| {
                    tx.mark_synced(&seqs, now)?;
                    tx.put_provider_state(STATE_OWNER, LAST_SYNC_KEY, &now.0.to_string(), now)
                })
            })
            .await?;
        self.handle
            .published(|status| status.last_sync_at = Some(now));
        Ok(())
    }

    /// Parks event `seq` with the back office's `answer`, and says so in the journal.
    async fn park(&self, transaction_id: &str, seq: i64, answer: &str) {
        let now = Timestamp::now();
        let text = answer.to_owned();
        let parked = self
            .handle
            .on_store(move |store| store.write(|tx| tx.park(seq, &text, now)))
            .await;
        match parked {
            Ok(()) => {
                tracing::warn!(
                    transaction_id,
                    seq,
                    answer,
                    "the back office refused an upstream event; it is parked and its transaction \
                     waits: fix the cause, then qrpayctl sync retry {seq}"
                );
                self.handle.published(|_| {});
            }
            Err(error) => {
                tracing::error!(%error, transaction_id, seq, "cannot park an upstream event");
            }
        }
    }

    /// Deletes what retention allows, a small batch per write: delivered events older than
    /// a week, then finished, fully delivered transactions older than `retention_days`.
    async fn retention(&self) {
        let now = Timestamp::now();
        let events_before = Timestamp(now.0 - DELIVERED_KEPT.as_millis() as i64);
        let transactions_before = Timestamp(now.0 - self.settings.retention.as_millis() as i64);
        let mut deleted = (0usize, 0usize);
        loop {
            let result = self
                .handle
                .on_store(move |store| {
                    store.write(|tx| {
                        let events = tx.delete_synced_outbox(events_before, RETENTION_BATCH)?;
                        let transactions = tx.delete_finished_transactions(
                            transactions_before,
                            RETENTION_TRANSACTIONS,
                        )?;
                        Ok::<_, StoreError>((events, transactions))
                    })
                })
                .await;
            match result {
                Ok((0, 0)) => break,
                Ok((events, transactions)) => {
                    deleted.0 += events;
                    deleted.1 += transactions;
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    tracing::error!(%error, "retention could not delete old records");
                    break;
                }
            }
        }
        if deleted != (0, 0) {
            tracing::info!(
                events = deleted.0,
                transactions = deleted.1,
                "retention deleted delivered events and finished transactions"
            );
            self.handle.published(|_| {});
        }
    }
}

/// One request's worth of work: a record, whether the back office may not know it yet, the
/// fields that changed, and the events it delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    key: RecordKey,
    create: bool,
    changed: BTreeSet<String>,
    /// The events accepted with it (an event of a qrpayd before the sync goes with its last
    /// record).
    seqs: Vec<i64>,
    /// The first event it reports: parked when the back office refuses it.
    first_seq: i64,
    /// The newest event it reports: names the request's `Idempotency-Key`.
    key_seq: i64,
}

/// The requests for `events` of one transaction: a step per record, in the order of its first
/// event, each with all its events coalesced.
fn plan(events: &[OutboxEvent], records: &TransactionRecords) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for event in events {
        let keys = RecordKey::of_event(&event.record, records);
        let last = keys.len().saturating_sub(1);
        for (index, key) in keys.into_iter().enumerate() {
            let position = match steps.iter().position(|s| s.key == key) {
                Some(position) => position,
                None => {
                    steps.push(Step {
                        key,
                        create: false,
                        changed: BTreeSet::new(),
                        seqs: Vec::new(),
                        first_seq: event.seq,
                        key_seq: event.seq,
                    });
                    steps.len() - 1
                }
            };
            let step = &mut steps[position];
            step.create |= event.creates();
            step.changed
                .extend(event.changed_fields().map(str::to_owned));
            step.key_seq = step.key_seq.max(event.seq);
            if index == last {
                step.seqs.push(event.seq);
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OutboxRecord;

    #[test]
    fn the_events_of_a_record_go_in_one_request_parents_first() {
        let event = |seq, kind: &str, record, payload| OutboxEvent {
            seq,
            transaction_id: "t".into(),
            kind: kind.into(),
            record,
            payload,
            created_at: Timestamp(0),
        };
        let none = serde_json::json!({});
        let events = vec![
            event(
                1,
                "transaction_created",
                OutboxRecord::Transaction,
                none.clone(),
            ),
            event(
                2,
                "attempt_created",
                OutboxRecord::Attempt("a".into()),
                none.clone(),
            ),
            event(
                3,
                "transaction_settled",
                OutboxRecord::Transaction,
                serde_json::json!({"status": 1, "paid": 1, "refunded": 0}),
            ),
            event(
                4,
                "payment_recorded",
                OutboxRecord::Payment(7),
                none.clone(),
            ),
            event(
                5,
                "attempt_succeeded",
                OutboxRecord::Attempt("a".into()),
                serde_json::json!({"status": 1, "paid": 1}),
            ),
        ];
        let records = crate::sync::worker::tests::empty_records();
        let steps = plan(&events, &records);
        let keys: Vec<_> = steps
            .iter()
            .map(|s| (&s.key, s.create, s.seqs.clone()))
            .collect();
        assert_eq!(
            keys,
            vec![
                (&RecordKey::Transaction, true, vec![1, 3]),
                (&RecordKey::Attempt("a".into()), true, vec![2, 5]),
                (&RecordKey::Payment(7), true, vec![4]),
            ]
        );
        assert_eq!(steps[0].key_seq, 3);
        assert_eq!(steps[1].first_seq, 2);

        // Updates alone are a PATCH of what changed.
        let steps = plan(&events[2..3], &records);
        assert!(!steps[0].create);
        assert_eq!(
            steps[0].changed.iter().collect::<Vec<_>>(),
            vec!["paid", "status"]
        );
    }

    pub(super) fn empty_records() -> TransactionRecords {
        use crate::domain::{Currency, Source, Transaction, TransactionStatus};
        use rust_decimal::Decimal;
        TransactionRecords {
            transaction: Transaction {
                id: "t".into(),
                number: "TXN000001".into(),
                terminal_id: "T".into(),
                source: Source {
                    kind: "Order".into(),
                    id: "o".into(),
                    uid: None,
                },
                currency: Currency::Mnt,
                total: Decimal::ONE,
                paid: Decimal::ZERO,
                refunded: Decimal::ZERO,
                overpaid: Decimal::ZERO,
                status: TransactionStatus::New,
                description: None,
                items: vec![],
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
            },
            attempts: vec![],
            payments: vec![],
        }
    }
}
