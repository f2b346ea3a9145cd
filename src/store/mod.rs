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
mod sync;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use queries::Tx;
pub use sync::TransactionRecords;

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
        Store::open_checking_for(path, QUICK_CHECK_BUDGET)
    }

    /// [`Store::open`], with `check_budget` for the integrity check.
    fn open_checking_for(path: &Path, check_budget: Duration) -> Result<Store, StoreError> {
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
        let mut connection = connection;
        quick_check(&mut connection, path, check_budget)?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(corrupt)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(corrupt)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(corrupt)?;
        // A 1 MiB page cache holds the working set (the indexes' upper levels and the newest
        // pages), even with years of history behind it: the history benchmark's Checkout
        // is as fast on 600 MB as on an empty store. Older pages come from the kernel's cache.
        connection
            .pragma_update(None, "cache_size", -1024)
            .map_err(corrupt)?;
        // The query planner's stability guarantee: a statement keeps the plan it was prepared
        // with. Without it the bundled SQLite (built with STAT4) re-prepares cached statements
        // when their bound values change, which was a fifth of the store's time in the fault
        // campaign; our queries have one good plan each.
        connection
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )
            .map_err(corrupt)?;
        // Every statement the daemon repeats stays prepared (about thirty of them).
        connection.set_prepared_statement_cache_capacity(64);
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
        self.write_then(f, |value| value)
    }

    /// As [`Store::write`], then runs `committed` on `f`'s value once the transaction has
    /// committed, while this store still admits no other transaction: what `committed` does
    /// (announcing the change, say) happens in commit order.
    pub fn write_then<T, U, E>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
        committed: impl FnOnce(T) -> U,
    ) -> Result<U, E>
    where
        E: From<StoreError>,
    {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let value = f(&Tx::new(&transaction))?;
        transaction.commit().map_err(StoreError::from)?;
        Ok(committed(value))
    }

    /// Runs `f` against one consistent snapshot of the database.
    pub fn read<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::from)?;
        let value = f(&Tx::new(&transaction))?;
        transaction.commit().map_err(StoreError::from)?;
        Ok(value)
    }

    /// The connection. A panic while it was held (a bug) poisons the lock; the transaction the
    /// panicking code had open was rolled back as it unwound (rusqlite rolls back on drop), so
    /// the connection is sound and is used again rather than failing every later call.
    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| {
            tracing::error!("a database user panicked; its transaction was rolled back");
            self.connection.clear_poison();
            poisoned.into_inner()
        })
    }
}

/// How long [`Store::open`] spends checking the database's integrity at most.
///
/// `PRAGMA quick_check` reads every page of the file: 0.3 s for a year of a busy till (about
/// 200 MB) on a warm page cache, but seconds for a 1 GB file, and far more right after a boot,
/// when every page comes off the flash. Within this budget a database is checked whole, as
/// before, for its first years; beyond it the check stops (logged) and the daemon starts
/// anyway. The trade-off: damage in the part left unchecked is no longer found at start-up,
/// but by SQLite when a query first reads the damaged page, and that query fails with an
/// error naming the database (`Internal` to the till) instead of the whole terminal refusing
/// to start. Damage on the pages the daemon reads at once (the schema, the open attempts)
/// still stops it at start-up.
const QUICK_CHECK_BUDGET: Duration = Duration::from_millis(1000);

/// How much of the database the start-up check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Whole,
    /// The budget ran out first.
    Partly,
}

/// Runs `PRAGMA quick_check` for at most `budget`: a database that fails it is refused, one
/// that passes, or that is too large to finish within the budget, is opened.
fn quick_check(
    connection: &mut Connection,
    path: &Path,
    budget: Duration,
) -> Result<Checked, StoreError> {
    let deadline = std::time::Instant::now() + budget;
    // The check asks every 100 pages it walks (well under a millisecond); past the deadline,
    // it stops with SQLITE_INTERRUPT.
    connection.progress_handler(100, Some(move || std::time::Instant::now() >= deadline))?;
    let check = connection.query_row("PRAGMA quick_check", [], |row| row.get::<_, String>(0));
    connection.progress_handler(0, None::<fn() -> bool>)?;
    match check {
        Ok(check) if check == "ok" => Ok(Checked::Whole),
        Ok(check) => Err(StoreError::Corrupt {
            path: path.to_owned(),
            detail: check,
        }),
        Err(error)
            if error.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
        {
            tracing::info!(
                path = %path.display(),
                budget_ms = budget.as_millis() as u64,
                "the database is too large to check whole at start-up; checked what the budget allowed"
            );
            Ok(Checked::Partly)
        }
        Err(error) => Err(classify_open_error(path, error)),
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
