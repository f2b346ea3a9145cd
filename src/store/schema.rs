//! The database schema, as an ordered list of migrations.
//!
//! `PRAGMA user_version` holds how many migrations the file has had. Migrations are only ever
//! appended: an applied one is never edited, so every terminal's database reaches the same
//! shape whatever version it started from.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Each entry is one migration; its index + 1 is the schema version it produces.
const MIGRATIONS: &[&str] = &[
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
    // 3: overpayments (money a sale did not need) and the till's own keys for refunds.
    r#"
    ALTER TABLE transactions ADD COLUMN overpaid TEXT NOT NULL DEFAULT '0';
    ALTER TABLE attempts ADD COLUMN overpaid TEXT NOT NULL DEFAULT '0';
    ALTER TABLE attempts ADD COLUMN request_id TEXT;
    CREATE UNIQUE INDEX attempts_by_request ON attempts (request_id)
        WHERE request_id IS NOT NULL;
    CREATE INDEX transactions_overpaid ON transactions (created_at) WHERE overpaid <> '0';
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
