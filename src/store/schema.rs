//! The database schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` holds how many migrations the file has had. Migrations are only ever
//! appended: an applied one is never edited, so every terminal's database reaches the same
//! shape whatever version it started from.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Each entry is one migration; its index + 1 is the schema version it produces.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the MQ-Pay model, the outbox and the counters behind human-readable numbers.
    r#"
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE transactions (
        id          TEXT PRIMARY KEY,
        number      TEXT NOT NULL UNIQUE,
        terminal_id TEXT NOT NULL,
        source_type TEXT NOT NULL,
        source_id   TEXT NOT NULL,
        source_uid  TEXT,
        currency    TEXT NOT NULL,
        total       TEXT NOT NULL,
        paid        TEXT NOT NULL,
        refunded    TEXT NOT NULL,
        status      TEXT NOT NULL,
        description TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        UNIQUE (source_type, source_id)
    ) STRICT;
    CREATE INDEX transactions_by_created ON transactions (created_at);
    CREATE INDEX transactions_by_status ON transactions (status, created_at);

    CREATE TABLE transaction_items (
        transaction_id TEXT NOT NULL REFERENCES transactions (id),
        position       INTEGER NOT NULL,
        description    TEXT NOT NULL,
        quantity       TEXT NOT NULL,
        unit_price     TEXT NOT NULL,
        PRIMARY KEY (transaction_id, position)
    ) STRICT;

    CREATE TABLE attempts (
        id              TEXT PRIMARY KEY,
        code            TEXT NOT NULL UNIQUE,
        transaction_id  TEXT NOT NULL REFERENCES transactions (id),
        type            TEXT NOT NULL,
        status          TEXT NOT NULL,
        provider        TEXT NOT NULL,
        method          TEXT NOT NULL,
        amount          TEXT NOT NULL,
        paid            TEXT NOT NULL,
        refunded        TEXT NOT NULL,
        tendered        TEXT,
        parent_id       TEXT REFERENCES attempts (id),
        idempotency_key TEXT NOT NULL UNIQUE,
        invoice_id      TEXT,
        short_url       TEXT,
        qr_text         TEXT,
        deep_links      TEXT NOT NULL,
        provider_open   INTEGER NOT NULL,
        allow_partial   INTEGER NOT NULL,
        expires_at      INTEGER,
        failure_code    TEXT,
        failure_message TEXT,
        note            TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX attempts_by_transaction ON attempts (transaction_id, created_at);
    CREATE INDEX attempts_live ON attempts (status, provider_open);

    CREATE TABLE payment_results (
        id                  INTEGER PRIMARY KEY,
        attempt_id          TEXT NOT NULL REFERENCES attempts (id),
        provider            TEXT NOT NULL,
        provider_payment_id TEXT NOT NULL,
        amount              TEXT NOT NULL,
        paid_at             INTEGER,
        observed_at         INTEGER NOT NULL,
        UNIQUE (provider, provider_payment_id)
    ) STRICT;

    CREATE TABLE outbox (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        transaction_id TEXT NOT NULL REFERENCES transactions (id),
        kind           TEXT NOT NULL,
        payload        TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        synced_at      INTEGER
    ) STRICT;
    CREATE INDEX outbox_pending ON outbox (synced_at, seq);
    "#,
    // 2: durable provider state (QPay's tokens survive a restart).
    r#"
    CREATE TABLE provider_state (
        provider   TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (provider, key)
    ) STRICT;
    "#,
    // 3: the indexes the till's queries need over years of history, and tallies kept by
    // triggers, so that no query the daemon makes on every commit grows with the history.
    r#"
    CREATE INDEX transactions_by_source_id ON transactions (source_id, created_at);
    CREATE INDEX transactions_by_source_type ON transactions (source_type, created_at);
    CREATE INDEX attempts_by_invoice ON attempts (provider, invoice_id);
    -- Exactly the condition of `Tx::attempts_to_resume`: SQLite uses a partial index only
    -- for a query that names its condition.
    CREATE INDEX attempts_to_resume ON attempts (created_at, code)
        WHERE status IN ('100_NEW', '204_SENT') OR provider_open = 1;
    CREATE INDEX payment_results_by_attempt ON payment_results (attempt_id);
    CREATE INDEX payment_results_by_time
        ON payment_results (provider, COALESCE(paid_at, observed_at));

    -- Counts kept up to date in the SQL transaction that changes what they count.
    CREATE TABLE tallies (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT;
    -- `outbox_pending`: the events not yet synced (`PendingSync`).
    INSERT INTO tallies (name, value)
        SELECT 'outbox_pending', COUNT(*) FROM outbox WHERE synced_at IS NULL;
    CREATE TRIGGER outbox_pending_on_insert AFTER INSERT ON outbox
        WHEN NEW.synced_at IS NULL
        BEGIN
            UPDATE tallies SET value = value + 1 WHERE name = 'outbox_pending';
        END;
    CREATE TRIGGER outbox_pending_on_update AFTER UPDATE OF synced_at ON outbox
        WHEN (OLD.synced_at IS NULL) != (NEW.synced_at IS NULL)
        BEGIN
            UPDATE tallies SET value = value + IIF(NEW.synced_at IS NULL, 1, -1)
                WHERE name = 'outbox_pending';
        END;
    CREATE TRIGGER outbox_pending_on_delete AFTER DELETE ON outbox
        WHEN OLD.synced_at IS NULL
        BEGIN
            UPDATE tallies SET value = value - 1 WHERE name = 'outbox_pending';
        END;
    -- `transactions` and `transactions:<status>`: how many there are, in all and by status.
    INSERT INTO tallies (name, value) SELECT 'transactions', COUNT(*) FROM transactions;
    INSERT INTO tallies (name, value)
        SELECT 'transactions:' || status, COUNT(*) FROM transactions GROUP BY status;
    CREATE TRIGGER transactions_tally_on_insert AFTER INSERT ON transactions
        BEGIN
            INSERT INTO tallies (name, value)
                VALUES ('transactions', 1), ('transactions:' || NEW.status, 1)
                ON CONFLICT (name) DO UPDATE SET value = value + 1;
        END;
    CREATE TRIGGER transactions_tally_on_update AFTER UPDATE OF status ON transactions
        WHEN OLD.status != NEW.status
        BEGIN
            UPDATE tallies SET value = value - 1 WHERE name = 'transactions:' || OLD.status;
            INSERT INTO tallies (name, value) VALUES ('transactions:' || NEW.status, 1)
                ON CONFLICT (name) DO UPDATE SET value = value + 1;
        END;
    CREATE TRIGGER transactions_tally_on_delete AFTER DELETE ON transactions
        BEGIN
            UPDATE tallies SET value = value - 1
                WHERE name IN ('transactions', 'transactions:' || OLD.status);
        END;
    "#,
    // 4: overpayments (money a sale did not need) and the till's own keys for refunds.
    r#"
    ALTER TABLE transactions ADD COLUMN overpaid TEXT NOT NULL DEFAULT '0';
    ALTER TABLE attempts ADD COLUMN overpaid TEXT NOT NULL DEFAULT '0';
    ALTER TABLE attempts ADD COLUMN request_id TEXT;
    CREATE UNIQUE INDEX attempts_by_request ON attempts (request_id)
        WHERE request_id IS NOT NULL;
    CREATE INDEX transactions_overpaid ON transactions (created_at) WHERE overpaid <> '0';
    "#,
    // 5: the upstream sync. Every change of a transaction, item, attempt or payment result
    // queues an outbox event, by trigger, in the SQL transaction that makes it: no write path
    // can forget one. An event names its record (`record`, `record_id`); the sync sends the
    // record's current state. Events of earlier versions (no record) are kept and send their
    // whole transaction. `parked_at` / `answer`: an event the back office refused for good,
    // kept until it is retried.
    r#"
    ALTER TABLE outbox ADD COLUMN record TEXT;
    ALTER TABLE outbox ADD COLUMN record_id TEXT;
    ALTER TABLE outbox ADD COLUMN parked_at INTEGER;
    ALTER TABLE outbox ADD COLUMN answer TEXT;
    CREATE INDEX outbox_by_transaction ON outbox (transaction_id, synced_at, seq);
    CREATE INDEX outbox_parked ON outbox (seq) WHERE parked_at IS NOT NULL AND synced_at IS NULL;
    -- `outbox_parked`: the events the back office refused, waiting for a retry (`ParkedSync`).
    INSERT INTO tallies (name, value) VALUES ('outbox_parked', 0);
    CREATE TRIGGER outbox_parked_on_update AFTER UPDATE OF parked_at, synced_at ON outbox
        WHEN (OLD.parked_at IS NOT NULL AND OLD.synced_at IS NULL)
            != (NEW.parked_at IS NOT NULL AND NEW.synced_at IS NULL)
        BEGIN
            UPDATE tallies SET value = value
                + IIF(NEW.parked_at IS NOT NULL AND NEW.synced_at IS NULL, 1, -1)
                WHERE name = 'outbox_parked';
        END;

    -- A transaction still open that never had an event (an earlier qrpayd queued none for an
    -- unpaid sale): one event of the whole transaction, so that its later changes find it
    -- upstream.
    INSERT INTO outbox (transaction_id, kind, payload, created_at)
        SELECT t.id, 'transaction_backfilled', '{}', t.updated_at FROM transactions AS t
        WHERE t.status IN ('100_NEW', '300_PARTIAL')
          AND NOT EXISTS (SELECT 1 FROM outbox AS o WHERE o.transaction_id = t.id);

    CREATE TRIGGER outbox_on_transaction_insert AFTER INSERT ON transactions
        BEGIN
            INSERT INTO outbox (transaction_id, kind, payload, created_at, record, record_id)
                VALUES (NEW.id, 'transaction_created', '{}', NEW.created_at, 'transaction', NEW.id);
        END;
    CREATE TRIGGER outbox_on_transaction_update AFTER UPDATE ON transactions
        WHEN OLD.status IS NOT NEW.status OR OLD.paid IS NOT NEW.paid
            OR OLD.refunded IS NOT NEW.refunded OR OLD.overpaid IS NOT NEW.overpaid
        BEGIN
            INSERT INTO outbox (transaction_id, kind, payload, created_at, record, record_id)
                VALUES (
                    NEW.id,
                    CASE
                        WHEN OLD.status IS NOT NEW.status THEN CASE NEW.status
                            WHEN '304_SETTLED' THEN 'transaction_settled'
                            WHEN '300_PARTIAL' THEN 'transaction_partially_paid'
                            WHEN '505_CANCELLED' THEN 'transaction_cancelled'
                            ELSE 'transaction_status_changed' END
                        WHEN OLD.overpaid IS NOT NEW.overpaid THEN 'overpayment_received'
                        WHEN OLD.refunded IS NOT NEW.refunded THEN 'transaction_refunded'
                        ELSE 'transaction_paid_changed'
                    END,
                    json_object(
                        'status', OLD.status IS NOT NEW.status,
                        'paid', OLD.paid IS NOT NEW.paid,
                        'refunded', OLD.refunded IS NOT NEW.refunded
                    ),
                    NEW.updated_at, 'transaction', NEW.id
                );
        END;
    CREATE TRIGGER outbox_on_item_insert AFTER INSERT ON transaction_items
        BEGIN
            INSERT INTO outbox (transaction_id, kind, payload, created_at, record, record_id)
                SELECT NEW.transaction_id, 'item_added', '{}', t.created_at, 'item',
                       NEW.transaction_id || '-' || NEW.position
                FROM transactions AS t WHERE t.id = NEW.transaction_id;
        END;
    CREATE TRIGGER outbox_on_attempt_insert AFTER INSERT ON attempts
        BEGIN
            INSERT INTO outbox (transaction_id, kind, payload, created_at, record, record_id)
                VALUES (NEW.transaction_id, 'attempt_created', '{}', NEW.created_at, 'attempt',
                        NEW.id);
        END;
    CREATE TRIGGER outbox_on_attempt_update AFTER UPDATE ON attempts
        WHEN OLD.status IS NOT NEW.status OR OLD.paid IS NOT NEW.paid
            OR OLD.failure_code IS NOT NEW.failure_code
            OR OLD.failure_message IS NOT NEW.failure_message
            OR OLD.expires_at IS NOT NEW.expires_at
        BEGIN
            INSERT INTO outbox (transaction_id, kind, payload, created_at, record, record_id)
                VALUES (
                    NEW.transaction_id,
                    CASE
                        WHEN OLD.status IS NOT NEW.status THEN CASE NEW.status
                            WHEN '204_SENT' THEN 'attempt_sent'
                            WHEN '302_SUCCESS' THEN 'attempt_succeeded'
                            WHEN '501_EXPIRED' THEN 'attempt_expired'
                            WHEN '500_FAIL' THEN IIF(NEW.failure_code = 'CANCELLED',
                                'attempt_cancelled', 'attempt_failed')
                            ELSE 'attempt_status_changed' END
                        ELSE 'attempt_updated'
                    END,
                    json_object(
                        'status', OLD.status IS NOT NEW.status,
                        'paid', OLD.paid IS NOT NEW.paid,
                        'failure', OLD.failure_code IS NOT NEW.failure_code
                            OR OLD.failure_message IS NOT NEW.failure_message,
                        'expiresAt', OLD.expires_at IS NOT NEW.expires_at
                    ),
                    NEW.updated_at, 'attempt', NEW.id
                );
        END;
    CREATE TRIGGER outbox_on_payment_insert AFTER INSERT ON payment_results
        BEGIN
            INSERT INTO outbox (transaction_id, kind, payload, created_at, record, record_id)
                SELECT a.transaction_id, 'payment_recorded', '{}', NEW.observed_at, 'payment',
                       CAST(NEW.id AS TEXT)
                FROM attempts AS a WHERE a.id = NEW.attempt_id;
        END;
    "#,
];

/// The schema version this binary writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`LATEST_VERSION`], one migration per SQL transaction. Refuses a
/// database newer than this binary.
pub fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > LATEST_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            supported: LATEST_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let version = index as i64 + 1;
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", version)?;
        transaction.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}
