//! Typed reads and writes inside one SQL transaction.
//!
//! Amounts are stored as exact decimal text and timestamps as Unix milliseconds; the conversion
//! to and from domain types happens here and nowhere else.

use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, ToSql, params};
use rust_decimal::Decimal;

use super::StoreError;
use crate::domain::{
    Attempt, Currency, DeepLink, Failure, Item, OutboxEvent, OutboxKind, OutboxRecord,
    PaymentResult, Source, Timestamp, Transaction, TransactionFilter,
};

/// One open SQL transaction. Obtained from [`super::Store::write`] or [`super::Store::read`].
pub struct Tx<'c> {
    pub(super) inner: &'c rusqlite::Transaction<'c>,
}

const TRANSACTION_COLUMNS: &str = "id, number, terminal_id, source_type, source_id, source_uid, \
     currency, total, paid, refunded, status, description, created_at, updated_at, overpaid";

const ATTEMPT_COLUMNS: &str = "id, code, transaction_id, type, status, provider, method, amount, \
     paid, refunded, tendered, parent_id, idempotency_key, invoice_id, short_url, qr_text, \
     deep_links, provider_open, allow_partial, expires_at, failure_code, failure_message, note, \
     created_at, updated_at, overpaid, request_id";

impl<'c> Tx<'c> {
    pub(super) fn new(inner: &'c rusqlite::Transaction<'c>) -> Self {
        Tx { inner }
    }

    /// Runs one statement, prepared once per connection and kept in its statement cache.
    pub(super) fn execute(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> rusqlite::Result<usize> {
        self.inner.prepare_cached(sql)?.execute(params)
    }

    /// The one row `sql` selects, through the statement cache.
    pub(super) fn query_row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.inner.prepare_cached(sql)?.query_row(params, f)
    }

    /// Takes the next value of a named counter (1, 2, 3, ...), for `TXN000001`-style numbers.
    pub fn next_counter(&self, name: &str) -> Result<i64, StoreError> {
        let value: i64 = self.query_row(
            "INSERT INTO counters (name, value) VALUES (?1, 1)
             ON CONFLICT (name) DO UPDATE SET value = value + 1
             RETURNING value",
            [name],
            |row| row.get(0),
        )?;
        Ok(value)
    }

    // Transactions.

    /// Adds a new transaction with its items.
    pub fn insert_transaction(&self, t: &Transaction) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "INSERT INTO transactions ({TRANSACTION_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ),
            params![
                t.id,
                t.number,
                t.terminal_id,
                t.source.kind,
                t.source.id,
                t.source.uid,
                t.currency.code(),
                t.total.to_string(),
                t.paid.to_string(),
                t.refunded.to_string(),
                t.status.code(),
                t.description,
                t.created_at.0,
                t.updated_at.0,
                money(t.overpaid),
            ],
        )?;
        for (position, item) in t.items.iter().enumerate() {
            self.execute(
                "INSERT INTO transaction_items
                 (transaction_id, position, description, quantity, unit_price)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    t.id,
                    position as i64,
                    item.description,
                    item.quantity.to_string(),
                    item.unit_price.to_string(),
                ],
            )?;
        }
        Ok(())
    }

    /// Writes a transaction's mutable fields: money, status and the update time.
    pub fn update_transaction(&self, t: &Transaction) -> Result<(), StoreError> {
        self.execute(
            "UPDATE transactions SET paid = ?2, refunded = ?3, status = ?4, updated_at = ?5,
                 overpaid = ?6
             WHERE id = ?1",
            params![
                t.id,
                t.paid.to_string(),
                t.refunded.to_string(),
                t.status.code(),
                t.updated_at.0,
                money(t.overpaid),
            ],
        )?;
        Ok(())
    }

    /// The transaction with this id.
    pub fn transaction(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        self.transaction_where("id = ?1", &[&id])
    }

    /// The transaction with this number (`TXN000001`).
    pub fn transaction_by_number(&self, number: &str) -> Result<Option<Transaction>, StoreError> {
        self.transaction_where("number = ?1", &[&number])
    }

    /// The transaction for this source, if the till ever checked it out.
    pub fn transaction_by_source(
        &self,
        source_type: &str,
        source_id: &str,
    ) -> Result<Option<Transaction>, StoreError> {
        self.transaction_where(
            "source_type = ?1 AND source_id = ?2",
            &[&source_type, &source_id],
        )
    }

    fn transaction_where(
        &self,
        condition: &str,
        args: &[&dyn ToSql],
    ) -> Result<Option<Transaction>, StoreError> {
        let sql = format!("SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE {condition}");
        let found = self
            .query_row(&sql, args, read_transaction_row)
            .optional()?;
        match found {
            Some(row) => Ok(Some(self.finish_transaction(row?)?)),
            None => Ok(None),
        }
    }

    fn finish_transaction(&self, mut t: Transaction) -> Result<Transaction, StoreError> {
        let mut statement = self.inner.prepare_cached(
            "SELECT description, quantity, unit_price FROM transaction_items
             WHERE transaction_id = ?1 ORDER BY position",
        )?;
        let rows = statement.query_map([&t.id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (description, quantity, unit_price) = row?;
            t.items.push(Item {
                description,
                quantity: decimal("transaction_items.quantity", &quantity)?,
                unit_price: decimal("transaction_items.unit_price", &unit_price)?,
            });
        }
        Ok(t)
    }

    /// The transactions `filter` selects, newest first.
    pub fn list_transactions(
        &self,
        filter: &TransactionFilter,
    ) -> Result<Vec<Transaction>, StoreError> {
        let (condition, args) = filter_sql(filter);
        let sql = format!(
            "SELECT {TRANSACTION_COLUMNS} FROM transactions WHERE {condition}
             ORDER BY created_at DESC, number DESC LIMIT {} OFFSET {}",
            filter.limit, filter.offset
        );
        let mut statement = self.inner.prepare(&sql)?;
        let args: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let rows = statement.query_map(args.as_slice(), read_transaction_row)?;
        let mut transactions = Vec::new();
        for row in rows {
            transactions.push(self.finish_transaction(row??)?);
        }
        Ok(transactions)
    }

    /// How many transactions `filter` selects, ignoring its limit and offset. All of them, or
    /// all in one status, is one row read (the tallies the schema's triggers keep); any other
    /// filter is counted on its index.
    pub fn count_transactions(&self, filter: &TransactionFilter) -> Result<u64, StoreError> {
        let TransactionFilter {
            status,
            source_type: None,
            source_id: None,
            since: None,
            until: None,
            ..
        } = filter
        else {
            return self.count_transactions_where(filter);
        };
        match status {
            Some(status) => self.tally(&format!("transactions:{}", status.code())),
            None => self.tally("transactions"),
        }
    }

    fn count_transactions_where(&self, filter: &TransactionFilter) -> Result<u64, StoreError> {
        let (condition, args) = filter_sql(filter);
        let args: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let count: i64 = self.query_row(
            &format!("SELECT COUNT(*) FROM transactions WHERE {condition}"),
            args.as_slice(),
            |row| row.get(0),
        )?;
        Ok(count.max(0) as u64)
    }

    // Attempts.

    /// Adds a new attempt.
    pub fn insert_attempt(&self, a: &Attempt) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                  ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
            ),
            params![
                a.id,
                a.code,
                a.transaction_id,
                a.kind.code(),
                a.status.code(),
                a.provider,
                a.method,
                a.amount.to_string(),
                a.paid.to_string(),
                a.refunded.to_string(),
                a.tendered.map(|d| d.to_string()),
                a.parent_id,
                a.idempotency_key,
                a.invoice_id,
                a.short_url,
                a.qr_text,
                deep_links_json(&a.deep_links),
                a.provider_open,
                a.allow_partial,
                a.expires_at.map(|t| t.0),
                a.failure.as_ref().map(|f| f.code.as_str()),
                a.failure.as_ref().map(|f| f.message.as_str()),
                a.note,
                a.created_at.0,
                a.updated_at.0,
                money(a.overpaid),
                a.request_id,
            ],
        )?;
        Ok(())
    }

    /// Writes an attempt's mutable fields.
    pub fn update_attempt(&self, a: &Attempt) -> Result<(), StoreError> {
        self.execute(
            "UPDATE attempts SET status = ?2, paid = ?3, refunded = ?4, tendered = ?5,
                 invoice_id = ?6, short_url = ?7, qr_text = ?8, deep_links = ?9,
                 provider_open = ?10, expires_at = ?11, failure_code = ?12,
                 failure_message = ?13, note = ?14, updated_at = ?15, overpaid = ?16
             WHERE id = ?1",
            params![
                a.id,
                a.status.code(),
                a.paid.to_string(),
                a.refunded.to_string(),
                a.tendered.map(|d| d.to_string()),
                a.invoice_id,
                a.short_url,
                a.qr_text,
                deep_links_json(&a.deep_links),
                a.provider_open,
                a.expires_at.map(|t| t.0),
                a.failure.as_ref().map(|f| f.code.as_str()),
                a.failure.as_ref().map(|f| f.message.as_str()),
                a.note,
                a.updated_at.0,
                money(a.overpaid),
            ],
        )?;
        Ok(())
    }

    /// The attempt with this id.
    pub fn attempt(&self, id: &str) -> Result<Option<Attempt>, StoreError> {
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE id = ?1");
        self.query_row(&sql, [id], read_attempt_row)
            .optional()?
            .transpose()
    }

    /// The id of the attempt with this code (`ATT000001`), if any: the till may name an
    /// attempt by the code the daemon's own messages use.
    pub fn attempt_id_by_code(&self, code: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .query_row("SELECT id FROM attempts WHERE code = ?1", [code], |row| {
                row.get::<_, String>(0)
            })
            .optional()?)
    }

    /// The attempt the till's request with this `request_id` made, if any.
    pub fn attempt_by_request(&self, request_id: &str) -> Result<Option<Attempt>, StoreError> {
        Ok(self
            .attempts_where("request_id = ?1", &[&request_id])?
            .into_iter()
            .next())
    }

    /// Every attempt of a transaction, oldest first.
    pub fn attempts_of(&self, transaction_id: &str) -> Result<Vec<Attempt>, StoreError> {
        self.attempts_where(
            "transaction_id = ?1 ORDER BY created_at, code",
            &[&transaction_id],
        )
    }

    /// Every attempt, oldest first: one statement, for a whole-store audit (the fault campaign
    /// reads the store after every step) rather than the engine's work.
    pub fn all_attempts(&self) -> Result<Vec<Attempt>, StoreError> {
        self.attempts_where("1 ORDER BY created_at, code", &[])
    }

    /// The attempts that still need the daemon: open ones, and closed ones whose invoice may
    /// still be payable at the provider.
    ///
    /// The condition is exactly that of the partial index `attempts_to_resume` (migration 3),
    /// which SQLite uses only for a query naming the same condition: change both or neither.
    pub fn attempts_to_resume(&self) -> Result<Vec<Attempt>, StoreError> {
        self.attempts_where(
            "status IN ('100_NEW', '204_SENT') OR provider_open = 1 ORDER BY created_at, code",
            &[],
        )
    }

    /// How many payment attempts may still take money: open, or with an invoice not yet
    /// closed at the provider (`Attempt::may_take_money`), read on the index `attempts_live`,
    /// which holds the few such attempts apart from the finished history.
    pub fn open_payment_attempt_count(&self) -> Result<u32, StoreError> {
        let count: i64 = self.query_row(
            "SELECT COUNT(*) FROM attempts
             WHERE type = '100_PAYMENT' AND (status IN ('100_NEW', '204_SENT') OR provider_open = 1)",
            [],
            |row| row.get(0),
        )?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    fn attempts_where(
        &self,
        condition: &str,
        args: &[&dyn ToSql],
    ) -> Result<Vec<Attempt>, StoreError> {
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE {condition}");
        let mut statement = self.inner.prepare_cached(&sql)?;
        let rows = statement.query_map(args, read_attempt_row)?;
        let mut attempts = Vec::new();
        for row in rows {
            attempts.push(row??);
        }
        Ok(attempts)
    }

    // Payment results.

    /// Records a payment the provider reported. Returns `false`, and writes nothing, when this
    /// provider payment id was recorded before.
    pub fn insert_payment_result(&self, r: &PaymentResult) -> Result<bool, StoreError> {
        let inserted = self.execute(
            "INSERT INTO payment_results
             (attempt_id, provider, provider_payment_id, amount, paid_at, observed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (provider, provider_payment_id) DO NOTHING",
            params![
                r.attempt_id,
                r.provider,
                r.provider_payment_id,
                r.amount.to_string(),
                r.paid_at.map(|t| t.0),
                r.observed_at.0,
            ],
        )?;
        Ok(inserted == 1)
    }

    /// The payments recorded for an attempt, in the order they were seen.
    pub fn payment_results_of(&self, attempt_id: &str) -> Result<Vec<PaymentResult>, StoreError> {
        self.payment_results_where("attempt_id = ?1", &[&attempt_id])
    }

    /// Every payment recorded, in the order they were seen: one statement, for a whole-store
    /// audit.
    pub fn all_payment_results(&self) -> Result<Vec<PaymentResult>, StoreError> {
        self.payment_results_where("1", &[])
    }

    fn payment_results_where(
        &self,
        condition: &str,
        args: &[&dyn ToSql],
    ) -> Result<Vec<PaymentResult>, StoreError> {
        Ok(self
            .payment_rows_where(condition, args)?
            .into_iter()
            .map(|(_, result)| result)
            .collect())
    }

    /// The payment results `condition` selects, each with its row id, in the order seen.
    pub(super) fn payment_rows_where(
        &self,
        condition: &str,
        args: &[&dyn ToSql],
    ) -> Result<Vec<(i64, PaymentResult)>, StoreError> {
        let sql = format!(
            "SELECT id, attempt_id, provider, provider_payment_id, amount, paid_at, observed_at
             FROM payment_results WHERE {condition} ORDER BY id"
        );
        let mut statement = self.inner.prepare_cached(&sql)?;
        let rows = statement.query_map(args, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Option<i64>>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })?;
        let mut results = Vec::new();
        for row in rows {
            let (id, attempt_id, provider, provider_payment_id, amount, paid_at, observed_at) =
                row?;
            results.push((
                id,
                PaymentResult {
                    attempt_id,
                    provider,
                    provider_payment_id,
                    amount: decimal("payment_results.amount", &amount)?,
                    paid_at: paid_at.map(Timestamp),
                    observed_at: Timestamp(observed_at),
                },
            ));
        }
        Ok(results)
    }

    /// The attempt that owns a provider's invoice.
    pub fn attempt_by_invoice(
        &self,
        provider: &str,
        invoice_id: &str,
    ) -> Result<Option<Attempt>, StoreError> {
        Ok(self
            .attempts_where(
                "provider = ?1 AND invoice_id = ?2 AND type = '100_PAYMENT'",
                &[&provider, &invoice_id],
            )?
            .into_iter()
            .next())
    }

    /// The payment recorded under a provider's payment id.
    pub fn payment_result(
        &self,
        provider: &str,
        provider_payment_id: &str,
    ) -> Result<Option<PaymentResult>, StoreError> {
        Ok(self
            .payment_results_where(
                "provider = ?1 AND provider_payment_id = ?2",
                &[&provider, &provider_payment_id],
            )?
            .into_iter()
            .next())
    }

    /// A provider's payments paid (or, lacking a paid time, seen) in `[from, until)`.
    pub fn payment_results_between(
        &self,
        provider: &str,
        from: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<PaymentResult>, StoreError> {
        self.payment_results_where(
            "provider = ?1 AND COALESCE(paid_at, observed_at) >= ?2
             AND COALESCE(paid_at, observed_at) < ?3",
            &[&provider, &from.0, &until.0],
        )
    }

    // Provider state.

    /// A provider's stored value for `key`.
    pub fn provider_state(&self, provider: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .query_row(
                "SELECT value FROM provider_state WHERE provider = ?1 AND key = ?2",
                [provider, key],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Stores a provider's value for `key`.
    pub fn put_provider_state(
        &self,
        provider: &str,
        key: &str,
        value: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO provider_state (provider, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (provider, key) DO UPDATE SET value = excluded.value,
                 updated_at = excluded.updated_at",
            params![provider, key, value, at.0],
        )?;
        Ok(())
    }

    // Outbox.

    /// Appends an event for the upstream sync and returns its sequence number.
    pub fn append_outbox(
        &self,
        transaction_id: &str,
        kind: OutboxKind,
        payload: &serde_json::Value,
        at: Timestamp,
    ) -> Result<i64, StoreError> {
        self.execute(
            "INSERT INTO outbox (transaction_id, kind, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![transaction_id, kind.name(), payload.to_string(), at.0],
        )?;
        Ok(self.inner.last_insert_rowid())
    }

    /// How many outbox events wait for the upstream sync. One row read, however long the
    /// outbox: the count is kept by triggers on `outbox` (schema migration 3).
    pub fn pending_outbox_count(&self) -> Result<u64, StoreError> {
        self.tally("outbox_pending")
    }

    /// A count the schema's triggers keep in `tallies`; 0 when it was never counted.
    pub(super) fn tally(&self, name: &str) -> Result<u64, StoreError> {
        let value: Option<i64> = self
            .query_row("SELECT value FROM tallies WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(value.unwrap_or(0).max(0) as u64)
    }

    /// Outbox events not yet synced, oldest first, at most `limit`.
    pub fn pending_outbox(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        self.outbox_where("synced_at IS NULL ORDER BY seq LIMIT ?1", &[&limit])
    }

    /// The outbox events `condition` selects, read into domain types.
    pub(super) fn outbox_where(
        &self,
        condition: &str,
        args: &[&dyn ToSql],
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let mut statement = self.inner.prepare_cached(&format!(
            "SELECT seq, transaction_id, kind, payload, created_at, record, record_id FROM outbox
             WHERE {condition}"
        ))?;
        let rows = statement.query_map(args, |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (seq, transaction_id, kind, payload, created_at, record, record_id) = row?;
            let payload = serde_json::from_str(&payload).map_err(|_| StoreError::InvalidValue {
                column: "outbox.payload",
                value: payload.clone(),
            })?;
            events.push(OutboxEvent {
                seq,
                transaction_id,
                kind,
                record: outbox_record(record.as_deref(), record_id)?,
                payload,
                created_at: Timestamp(created_at),
            });
        }
        Ok(events)
    }
}

/// An outbox row's `record` and `record_id` (migration 5) as the domain's [`OutboxRecord`].
fn outbox_record(record: Option<&str>, id: Option<String>) -> Result<OutboxRecord, StoreError> {
    let position = |id: &str| {
        id.rsplit_once('-')
            .and_then(|(_, n)| n.parse::<i64>().ok())
            .ok_or_else(|| StoreError::InvalidValue {
                column: "outbox.record_id",
                value: id.to_owned(),
            })
    };
    match (record, id) {
        (None, _) => Ok(OutboxRecord::WholeTransaction),
        (Some("transaction"), _) => Ok(OutboxRecord::Transaction),
        (Some("item"), Some(id)) => Ok(OutboxRecord::Item(position(&id)?)),
        (Some("attempt"), Some(id)) => Ok(OutboxRecord::Attempt(id)),
        (Some("payment"), Some(id)) => {
            id.parse()
                .map(OutboxRecord::Payment)
                .map_err(|_| StoreError::InvalidValue {
                    column: "outbox.record_id",
                    value: id,
                })
        }
        (Some(other), _) => Err(StoreError::InvalidValue {
            column: "outbox.record",
            value: other.to_owned(),
        }),
    }
}

type RowResult<T> = rusqlite::Result<Result<T, StoreError>>;

fn read_transaction_row(row: &Row<'_>) -> RowResult<Transaction> {
    let currency: String = row.get(6)?;
    let total: String = row.get(7)?;
    let paid: String = row.get(8)?;
    let refunded: String = row.get(9)?;
    let status: String = row.get(10)?;
    let overpaid: String = row.get(14)?;
    let build = || -> Result<Transaction, StoreError> {
        Ok(Transaction {
            id: row.get(0)?,
            number: row.get(1)?,
            terminal_id: row.get(2)?,
            source: Source {
                kind: row.get(3)?,
                id: row.get(4)?,
                uid: row.get(5)?,
            },
            currency: parse_code("transactions.currency", &currency, Currency::from_str)?,
            total: decimal("transactions.total", &total)?,
            paid: decimal("transactions.paid", &paid)?,
            refunded: decimal("transactions.refunded", &refunded)?,
            status: parse_code("transactions.status", &status, str::parse)?,
            description: row.get(11)?,
            items: Vec::new(),
            created_at: Timestamp(row.get(12)?),
            updated_at: Timestamp(row.get(13)?),
            overpaid: decimal("transactions.overpaid", &overpaid)?,
        })
    };
    Ok(build())
}

fn read_attempt_row(row: &Row<'_>) -> RowResult<Attempt> {
    let build = || -> Result<Attempt, StoreError> {
        let kind: String = row.get(3)?;
        let status: String = row.get(4)?;
        let amount: String = row.get(7)?;
        let paid: String = row.get(8)?;
        let refunded: String = row.get(9)?;
        let tendered: Option<String> = row.get(10)?;
        let deep_links: String = row.get(16)?;
        let failure_code: Option<String> = row.get(20)?;
        let failure_message: Option<String> = row.get(21)?;
        let overpaid: String = row.get(25)?;
        Ok(Attempt {
            id: row.get(0)?,
            code: row.get(1)?,
            transaction_id: row.get(2)?,
            kind: parse_code("attempts.type", &kind, str::parse)?,
            status: parse_code("attempts.status", &status, str::parse)?,
            provider: row.get(5)?,
            method: row.get(6)?,
            amount: decimal("attempts.amount", &amount)?,
            paid: decimal("attempts.paid", &paid)?,
            refunded: decimal("attempts.refunded", &refunded)?,
            tendered: tendered
                .map(|t| decimal("attempts.tendered", &t))
                .transpose()?,
            parent_id: row.get(11)?,
            idempotency_key: row.get(12)?,
            invoice_id: row.get(13)?,
            short_url: row.get(14)?,
            qr_text: row.get(15)?,
            deep_links: serde_json::from_str(&deep_links).map_err(|_| {
                StoreError::InvalidValue {
                    column: "attempts.deep_links",
                    value: deep_links.clone(),
                }
            })?,
            provider_open: row.get(17)?,
            allow_partial: row.get(18)?,
            expires_at: row.get::<_, Option<i64>>(19)?.map(Timestamp),
            failure: failure_code.map(|code| Failure {
                code,
                message: failure_message.unwrap_or_default(),
            }),
            note: row.get(22)?,
            created_at: Timestamp(row.get(23)?),
            updated_at: Timestamp(row.get(24)?),
            overpaid: decimal("attempts.overpaid", &overpaid)?,
            request_id: row.get(26)?,
        })
    };
    Ok(build())
}

fn decimal(column: &'static str, value: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str_exact(value).map_err(|_| StoreError::InvalidValue {
        column,
        value: value.to_owned(),
    })
}

fn parse_code<T, E>(
    column: &'static str,
    value: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    parse(value).map_err(|_| StoreError::InvalidValue {
        column,
        value: value.to_owned(),
    })
}

/// An amount as stored; zero is always `0`, so that `overpaid <> '0'` finds the non-zero ones.
fn money(amount: Decimal) -> String {
    if amount.is_zero() {
        "0".to_owned()
    } else {
        amount.to_string()
    }
}

fn deep_links_json(links: &[DeepLink]) -> String {
    // Serialising a list of string pairs cannot fail.
    serde_json::to_string(links).unwrap_or_else(|_| "[]".to_owned())
}

fn filter_sql(filter: &TransactionFilter) -> (String, Vec<Box<dyn ToSql>>) {
    let mut conditions = vec!["1 = 1".to_owned()];
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut add = |condition: &str, value: Box<dyn ToSql>| {
        args.push(value);
        conditions.push(condition.replace('?', &format!("?{}", args.len())));
    };
    if let Some(status) = filter.status {
        add("status = ?", Box::new(status.code()));
    }
    if let Some(source_type) = &filter.source_type {
        add("source_type = ?", Box::new(source_type.clone()));
    }
    if let Some(source_id) = &filter.source_id {
        add("source_id = ?", Box::new(source_id.clone()));
    }
    if let Some(since) = filter.since {
        add("created_at >= ?", Box::new(since.0));
    }
    if let Some(until) = filter.until {
        add("created_at < ?", Box::new(until.0));
    }
    if filter.overpaid_only {
        conditions.push("overpaid <> '0'".to_owned());
    }
    (conditions.join(" AND "), args)
}
