//! The upstream sync's reads and writes: the next events to send, marking them delivered,
//! parking and retrying refused ones, the figures the till sees, and retention.
//!
//! Every statement reads an index (`outbox_pending`, `outbox_by_transaction`, `outbox_parked`,
//! `transactions_by_status`); none grows with the delivered history.

use rusqlite::{OptionalExtension, params};

use super::StoreError;
use super::queries::Tx;
use crate::domain::{
    Attempt, OutboxEvent, ParkedEvent, PaymentResult, Timestamp, Transaction, TransactionStatus,
};

/// A transaction as the back office should hold it: the transaction with its items, its
/// attempts (oldest first) and its payment results with their row ids.
#[derive(Debug, Clone)]
pub struct TransactionRecords {
    pub transaction: Transaction,
    pub attempts: Vec<Attempt>,
    pub payments: Vec<(i64, PaymentResult)>,
}

/// The statuses after which a transaction changes no more, unless money arrives late (which
/// retention waits out: it keeps what changed within the window).
const FINISHED: &[TransactionStatus] = &[
    TransactionStatus::Settled,
    TransactionStatus::Cancelled,
    TransactionStatus::Closed,
];

impl Tx<'_> {
    /// Undelivered events, oldest first, at most `limit`, leaving out every event of a
    /// transaction that has a parked event: a parked event blocks its own transaction only.
    pub fn sendable_outbox(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        self.outbox_where(
            "synced_at IS NULL AND parked_at IS NULL AND transaction_id NOT IN (
                 SELECT transaction_id FROM outbox
                 WHERE parked_at IS NOT NULL AND synced_at IS NULL)
             ORDER BY seq LIMIT ?1",
            &[&limit],
        )
    }

    /// Everything the back office should hold of one transaction; `None` when it is gone.
    pub fn transaction_records(&self, id: &str) -> Result<Option<TransactionRecords>, StoreError> {
        let Some(transaction) = self.transaction(id)? else {
            return Ok(None);
        };
        let attempts = self.attempts_of(id)?;
        let mut payments = Vec::new();
        for attempt in &attempts {
            payments.extend(self.payment_rows_where("attempt_id = ?1", &[&attempt.id])?);
        }
        Ok(Some(TransactionRecords {
            transaction,
            attempts,
            payments,
        }))
    }

    /// Marks events delivered (and no longer parked). Returns how many were still undelivered.
    pub fn mark_synced(&self, seqs: &[i64], at: Timestamp) -> Result<usize, StoreError> {
        let mut marked = 0;
        for seq in seqs {
            marked += self.execute(
                "UPDATE outbox SET synced_at = ?2, parked_at = NULL, answer = NULL
                 WHERE seq = ?1 AND synced_at IS NULL",
                params![seq, at.0],
            )?;
        }
        Ok(marked)
    }

    /// Parks an undelivered event with the back office's answer.
    pub fn park(&self, seq: i64, answer: &str, at: Timestamp) -> Result<(), StoreError> {
        self.execute(
            "UPDATE outbox SET parked_at = ?2, answer = ?3 WHERE seq = ?1 AND synced_at IS NULL",
            params![seq, at.0, answer],
        )?;
        Ok(())
    }

    /// Sends parked events again: the one numbered `seq`, or all of them. Returns how many.
    pub fn unpark(&self, seq: Option<i64>) -> Result<usize, StoreError> {
        Ok(match seq {
            Some(seq) => self.execute(
                "UPDATE outbox SET parked_at = NULL, answer = NULL
                 WHERE seq = ?1 AND parked_at IS NOT NULL AND synced_at IS NULL",
                [seq],
            )?,
            None => self.execute(
                "UPDATE outbox SET parked_at = NULL, answer = NULL
                 WHERE parked_at IS NOT NULL AND synced_at IS NULL",
                [],
            )?,
        })
    }

    /// The parked events, oldest first, at most `limit`.
    pub fn parked_outbox(&self, limit: u32) -> Result<Vec<ParkedEvent>, StoreError> {
        let mut statement = self.inner.prepare_cached(
            "SELECT o.seq, o.transaction_id, t.number, o.kind, o.answer, o.parked_at
             FROM outbox AS o LEFT JOIN transactions AS t ON t.id = o.transaction_id
             WHERE o.parked_at IS NOT NULL AND o.synced_at IS NULL ORDER BY o.seq LIMIT ?1",
        )?;
        let rows = statement.query_map([limit], |row| {
            Ok(ParkedEvent {
                seq: row.get(0)?,
                transaction_id: row.get(1)?,
                transaction_number: row.get(2)?,
                kind: row.get(3)?,
                answer: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
                parked_at: Timestamp(row.get(5)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many events are parked. One row read (a tally kept by a trigger).
    pub fn parked_outbox_count(&self) -> Result<u64, StoreError> {
        self.tally("outbox_parked")
    }

    /// When the oldest undelivered event was queued.
    pub fn oldest_pending_outbox(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .query_row(
                "SELECT created_at FROM outbox WHERE synced_at IS NULL ORDER BY seq LIMIT 1",
                [],
                |row| row.get::<_, i64>(0),
            )
            .optional()?
            .map(Timestamp))
    }

    // Retention.

    /// Deletes at most `limit` delivered events delivered before `before`. Returns how many.
    pub fn delete_synced_outbox(&self, before: Timestamp, limit: u32) -> Result<usize, StoreError> {
        Ok(self.execute(
            "DELETE FROM outbox WHERE seq IN (
                 SELECT seq FROM outbox WHERE synced_at IS NOT NULL AND synced_at < ?1
                 LIMIT ?2)",
            params![before.0, limit],
        )?)
    }

    /// Deletes at most `limit` finished transactions (settled, cancelled, closed) created and
    /// last changed before `before`, whose events were all delivered and none of whose
    /// attempts may still take money or is open, with their items, attempts, payment results
    /// and delivered events. Returns how many.
    pub fn delete_finished_transactions(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<usize, StoreError> {
        let mut ids = Vec::new();
        for status in FINISHED {
            if ids.len() >= limit as usize {
                break;
            }
            let mut statement = self.inner.prepare_cached(
                "SELECT t.id FROM transactions AS t
                 WHERE t.status = ?1 AND t.created_at < ?2 AND t.updated_at < ?2
                   AND NOT EXISTS (SELECT 1 FROM outbox AS o
                                   WHERE o.transaction_id = t.id AND o.synced_at IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM attempts AS a
                                   WHERE a.transaction_id = t.id
                                     AND (a.status IN ('100_NEW', '204_SENT')
                                          OR a.provider_open = 1))
                 ORDER BY t.created_at LIMIT ?3",
            )?;
            let rows = statement.query_map(
                params![status.code(), before.0, i64::from(limit) - ids.len() as i64],
                |row| row.get::<_, String>(0),
            )?;
            for row in rows {
                ids.push(row?);
            }
        }
        for id in &ids {
            self.execute(
                "DELETE FROM payment_results WHERE attempt_id IN
                     (SELECT id FROM attempts WHERE transaction_id = ?1)",
                [id],
            )?;
            self.execute("DELETE FROM attempts WHERE transaction_id = ?1", [id])?;
            self.execute(
                "DELETE FROM transaction_items WHERE transaction_id = ?1",
                [id],
            )?;
            self.execute("DELETE FROM outbox WHERE transaction_id = ?1", [id])?;
            self.execute("DELETE FROM transactions WHERE id = ?1", [id])?;
        }
        Ok(ids.len())
    }
}
