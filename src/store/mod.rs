//! The store: the local SQLite queue every transaction lives in.
//!
//! This module is the only user of rusqlite. It opens the database file in `state_dir` (WAL,
//! `synchronous=FULL`, foreign keys, a busy timeout), applies the versioned migrations of
//! `schema`, and offers typed reads and writes in domain types. Every write runs inside
//! [`Store::write`]: one SQL transaction, committed only when the closure succeeds, so a status
//! change and its outbox event land together or not at all.
//!
//! It never decides anything about payments: which status follows which is the domain's
//! business, and the engine calls it. It never recreates a database it cannot read.

mod queries;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use queries::Tx;

/// What can go wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the database {path} is corrupt or not a qrpayd database ({detail}); it was left untouched"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the database {path} has schema version {found}, newer than this qrpayd supports ({supported}); install a newer qrpayd or restore a backup"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the database holds an invalid value in {column}: {value:?}")]
    InvalidValue { column: &'static str, value: String },
    #[error("the database lock was poisoned by a panic")]
    Poisoned,
}

/// The database, shared by every task of the daemon. Cloning is cheap.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// The database file's name inside `state_dir`.
    pub const FILE_NAME: &'static str = "qrpayd.sqlite3";

    /// Opens (creating if absent) the database at `path` and brings its schema up to date.
    ///
    /// A file that is not a database, fails its integrity check, or was written by a newer
    /// qrpayd is an error naming the file; it is never overwritten.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection =
            Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        let corrupt = |e: rusqlite::Error| classify_open_error(path, e);
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(corrupt)?;
        let check: String = connection
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(corrupt)?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                detail: check,
            });
        }
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(corrupt)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(corrupt)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(corrupt)?;
        // A terminal's database is small: a 1 MiB page cache holds its working set.
        connection
            .pragma_update(None, "cache_size", -1024)
            .map_err(corrupt)?;
        // Every statement the daemon repeats stays prepared (about thirty of them).
        connection.set_prepared_statement_cache_capacity(64);
        let mut connection = connection;
        schema::migrate(&mut connection, path)?;
        Ok(Store {
            connection: Arc::new(Mutex::new(connection)),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate SQL transaction and commits it if `f` returns `Ok`; on `Err`
    /// nothing `f` wrote is kept.
    pub fn write<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.run(TransactionBehavior::Immediate, f)
    }

    /// Runs `f` against one consistent snapshot of the database.
    pub fn read<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        self.run(TransactionBehavior::Deferred, f)
    }

    fn run<T, E>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut connection = self.connection.lock().map_err(|_| StoreError::Poisoned)?;
        let transaction = connection
            .transaction_with_behavior(behavior)
            .map_err(StoreError::from)?;
        let value = f(&Tx::new(&transaction))?;
        transaction.commit().map_err(StoreError::from)?;
        Ok(value)
    }
}

fn classify_open_error(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt {
                path: path.to_owned(),
                detail: error.to_string(),
            }
        }
        _ => StoreError::Open {
            path: path.to_owned(),
            source: error,
        },
    }
}

#[cfg(test)]
mod growth_tests;
#[cfg(test)]
mod tests;
