//! Store tests of bounded growth: the tallies the triggers keep, migration 3 on a database that
//! already holds history, no statement that scans a table, and the bounded start-up check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::{Connection, StatementStatus};

use super::tests::{attempt, open_temp, transaction};
use super::{Checked, Store, StoreError, quick_check, schema};
use crate::domain::{
    AttemptStatus, OutboxKind, PaymentResult, Timestamp, TransactionFilter, TransactionStatus,
};

/// What a raw `COUNT(*)` says, to hold the tallies against.
fn count(connection: &Connection, sql: &str) -> u64 {
    connection
        .query_row(sql, [], |row| row.get::<_, i64>(0))
        .expect("count") as u64
}

fn pending(store: &Store) -> u64 {
    store
        .read(|tx| tx.pending_outbox_count())
        .expect("pending count")
}

fn event(store: &Store, transaction_id: &str) -> i64 {
    store
        .write(|tx| {
            tx.append_outbox(
                transaction_id,
                OutboxKind::TransactionSettled,
                &serde_json::json!({ "n": 1 }),
                Timestamp(1),
            )
        })
        .expect("append")
}

#[test]
fn the_pending_count_follows_inserts_syncs_unsyncs_and_deletes() {
    let (_dir, store) = open_temp();
    store
        .write(|tx| tx.insert_transaction(&transaction("t1", "o1", 1)))
        .expect("transaction");
    // The transaction and its items queued events of their own (by trigger).
    let base = pending(&store);
    let seqs: Vec<i64> = (0..4).map(|_| event(&store, "t1")).collect();
    assert_eq!(pending(&store), base + 4);

    // What the upstream sync will do, in SQL, since no `Tx` method does it yet.
    let run = |sql: &str, seq: i64| {
        let connection = store.connection.lock().expect("lock");
        connection.execute(sql, [seq]).expect(sql);
    };
    run("UPDATE outbox SET synced_at = 99 WHERE seq = ?1", seqs[0]);
    assert_eq!(pending(&store), base + 3, "synced");
    run("UPDATE outbox SET synced_at = 100 WHERE seq = ?1", seqs[0]);
    assert_eq!(pending(&store), base + 3, "synced again: no change");
    run("UPDATE outbox SET synced_at = NULL WHERE seq = ?1", seqs[0]);
    assert_eq!(pending(&store), base + 4, "back to pending");
    run("UPDATE outbox SET synced_at = 101 WHERE seq = ?1", seqs[1]);
    run("DELETE FROM outbox WHERE seq = ?1", seqs[1]);
    assert_eq!(pending(&store), base + 3, "a delivered row deleted");
    run("DELETE FROM outbox WHERE seq = ?1", seqs[2]);
    assert_eq!(pending(&store), base + 2, "a pending row deleted");
    run("UPDATE outbox SET kind = 'x' WHERE seq = ?1", seqs[3]);
    assert_eq!(pending(&store), base + 2, "another column changed");

    let connection = store.connection.lock().expect("lock");
    assert_eq!(
        count(
            &connection,
            "SELECT COUNT(*) FROM outbox WHERE synced_at IS NULL"
        ),
        base + 2
    );
}

#[test]
fn transaction_counts_follow_inserts_and_status_changes() {
    let (_dir, store) = open_temp();
    store
        .write(|tx| {
            for i in 0..6 {
                tx.insert_transaction(&transaction(&format!("t{i}"), &format!("o{i}"), i))?;
            }
            for (id, status) in [
                ("t1", TransactionStatus::Partial),
                ("t2", TransactionStatus::Settled),
                ("t3", TransactionStatus::Settled),
                ("t3", TransactionStatus::Settled),
                ("t4", TransactionStatus::Cancelled),
            ] {
                let mut t = tx.transaction(id)?.expect("inserted");
                t.status = status;
                tx.update_transaction(&t)?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("write");
    let by_status = |status: Option<TransactionStatus>| {
        store
            .read(|tx| {
                tx.count_transactions(&TransactionFilter {
                    status,
                    ..TransactionFilter::default()
                })
            })
            .expect("count")
    };
    assert_eq!(by_status(None), 6);
    for &status in TransactionStatus::ALL {
        let counted = count(
            &store.connection.lock().expect("lock"),
            &format!(
                "SELECT COUNT(*) FROM transactions WHERE status = '{}'",
                status.code()
            ),
        );
        assert_eq!(by_status(Some(status)), counted, "{status}");
    }
    assert_eq!(by_status(Some(TransactionStatus::Settled)), 2);
    assert_eq!(by_status(Some(TransactionStatus::New)), 2);
}

#[test]
fn migration_3_counts_what_a_version_2_database_already_holds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(Store::FILE_NAME);
    {
        let connection = Connection::open(&path).expect("raw open");
        for sql in &schema::MIGRATIONS[..2] {
            connection.execute_batch(sql).expect("migration");
        }
        connection
            .pragma_update(None, "user_version", 2)
            .expect("version 2");
        for (i, status) in ["304_SETTLED", "304_SETTLED", "100_NEW"].iter().enumerate() {
            connection
                .execute(
                    "INSERT INTO transactions (id, number, terminal_id, source_type, source_id,
                     currency, total, paid, refunded, status, created_at, updated_at)
                     VALUES (?1, ?1, 'T1', 'Order', ?1, 'MNT', '1', '0', '0', ?2, 1, 1)",
                    rusqlite::params![format!("t{i}"), status],
                )
                .expect("transaction");
        }
        for synced_at in [None, Some(5), None, None, Some(6)] {
            connection
                .execute(
                    "INSERT INTO outbox (transaction_id, kind, payload, created_at, synced_at)
                     VALUES ('t0', 'transaction_settled', '{}', 1, ?1)",
                    [synced_at],
                )
                .expect("outbox");
        }
    }
    let store = Store::open(&path).expect("migrates");
    // The three pending rows, and migration 5's event for the open t2, which had none.
    assert_eq!(pending(&store), 4);
    let settled = store
        .read(|tx| {
            tx.count_transactions(&TransactionFilter {
                status: Some(TransactionStatus::Settled),
                ..TransactionFilter::default()
            })
        })
        .expect("count");
    assert_eq!(settled, 2);
    let connection = store.connection.lock().expect("lock");
    assert_eq!(
        count(&connection, "SELECT COUNT(*) FROM outbox"),
        6,
        "no row lost (and t2's added)"
    );
    assert_eq!(
        count(&connection, "PRAGMA user_version"),
        schema::LATEST_VERSION as u64
    );
}

/// Every statement run while `f` runs, with how many rows it stepped through in full scans.
fn full_scan_steps(store: &Store, f: impl FnOnce(&Store)) -> Vec<(String, i32)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let sink = seen.clone();
        let mut connection = store.connection.lock().expect("lock");
        connection
            .trace_v2(
                TraceEventCodes::SQLITE_TRACE_PROFILE,
                Some(move |event: TraceEvent<'_>| {
                    if let TraceEvent::Profile(statement, _) = event {
                        let steps = statement.get_status(StatementStatus::FullscanStep);
                        let mut seen = sink.lock().expect("trace sink");
                        seen.push((statement.sql().into_owned(), steps));
                    }
                }),
            )
            .expect("trace on");
    }
    f(store);
    store
        .connection
        .lock()
        .expect("lock")
        .trace_v2(TraceEventCodes::empty(), None::<fn(TraceEvent<'_>)>)
        .expect("trace off");
    seen.lock().expect("trace sink").clone()
}

/// The regression: with history, no query the daemon or the till makes reads through
/// a table. Every statement may step through at most one page of the newest transactions
/// (the unfiltered list), never through the 400 past ones.
#[test]
fn no_statement_scans_a_table_as_history_grows() {
    const HISTORY: i64 = 400;
    let (_dir, store) = open_temp();
    store
        .write(|tx| {
            for i in 0..HISTORY {
                let id = format!("t{i}");
                let mut t = transaction(&id, &format!("o{i}"), i);
                t.status = TransactionStatus::Settled;
                tx.insert_transaction(&t)?;
                let mut a = attempt(&format!("a{i}"), &id);
                a.status = AttemptStatus::Success;
                a.invoice_id = Some(format!("INV{i}"));
                tx.insert_attempt(&a)?;
                tx.insert_payment_result(&PaymentResult {
                    attempt_id: a.id.clone(),
                    provider: "simulator".into(),
                    provider_payment_id: format!("P{i}"),
                    amount: a.amount,
                    paid_at: Some(Timestamp(i)),
                    observed_at: Timestamp(i),
                })?;
                tx.append_outbox(
                    &id,
                    OutboxKind::TransactionSettled,
                    &serde_json::json!({}),
                    Timestamp(i),
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("history");

    let steps = full_scan_steps(&store, |store| {
        let filter = |f: fn(&mut TransactionFilter)| {
            let mut filter = TransactionFilter {
                limit: TransactionFilter::DEFAULT_LIMIT,
                ..TransactionFilter::default()
            };
            f(&mut filter);
            filter
        };
        let filters = [
            filter(|_| {}),
            filter(|f| f.source_id = Some("o7".into())),
            filter(|f| f.source_type = Some("Order".into())),
            filter(|f| f.status = Some(TransactionStatus::New)),
            filter(|f| f.since = Some(Timestamp(HISTORY - 3))),
            filter(|f| {
                f.status = Some(TransactionStatus::Settled);
                f.since = Some(Timestamp(HISTORY - 3));
            }),
        ];
        store
            .read(|tx| {
                tx.transaction("t5")?;
                tx.transaction_by_number("TXN-t5")?;
                tx.transaction_by_source("Order", "o5")?;
                for filter in &filters {
                    tx.list_transactions(filter)?;
                    tx.count_transactions(filter)?;
                }
                tx.attempt("a5")?;
                tx.attempts_of("t5")?;
                tx.attempts_to_resume()?;
                tx.open_payment_attempt_count()?;
                tx.payment_results_of("a5")?;
                tx.attempt_by_invoice("simulator", "INV5")?;
                tx.payment_result("simulator", "P5")?;
                tx.payment_results_between("simulator", Timestamp(10), Timestamp(20))?;
                tx.pending_outbox_count()?;
                tx.pending_outbox(10)?;
                tx.sendable_outbox(10)?;
                tx.transaction_records("t5")?;
                tx.oldest_pending_outbox()?;
                tx.parked_outbox(10)?;
                tx.parked_outbox_count()?;
                tx.provider_state("qpay", "token")?;
                Ok::<_, StoreError>(())
            })
            .expect("reads");
        store
            .write(|tx| {
                tx.next_counter("transaction")?;
                let mut t = transaction("new", "new-order", HISTORY);
                tx.insert_transaction(&t)?;
                t.status = TransactionStatus::Settled;
                tx.update_transaction(&t)?;
                let mut a = attempt("new-a", "new");
                tx.insert_attempt(&a)?;
                a.status = AttemptStatus::Sent;
                tx.update_attempt(&a)?;
                tx.append_outbox(
                    "new",
                    OutboxKind::TransactionSettled,
                    &serde_json::json!({}),
                    Timestamp(HISTORY),
                )?;
                tx.put_provider_state("qpay", "token", "t", Timestamp(HISTORY))?;
                // The upstream sync's writes, and retention.
                tx.mark_synced(&[1, 2], Timestamp(HISTORY))?;
                tx.park(3, "HTTP 422", Timestamp(HISTORY))?;
                tx.unpark(Some(3))?;
                tx.unpark(None)?;
                tx.delete_synced_outbox(Timestamp(HISTORY + 1), 10)?;
                tx.delete_finished_transactions(Timestamp(5), 10)?;
                Ok::<_, StoreError>(())
            })
            .expect("writes");
    });
    assert!(steps.len() > 30, "the trace saw the statements: {steps:?}");
    let page = i32::try_from(TransactionFilter::DEFAULT_LIMIT).expect("small") + 1;
    let scanning: Vec<_> = steps.iter().filter(|(_, n)| *n > page).collect();
    assert!(scanning.is_empty(), "statements that scan: {scanning:#?}");
}

#[test]
fn the_start_up_check_stops_at_its_budget_and_still_refuses_garbage() {
    let (dir, store) = open_temp();
    // About 200 pages: more than one step of the check's progress handler.
    store
        .write(|tx| {
            for i in 0..300 {
                let mut t = transaction(&format!("t{i}"), &format!("o{i}"), i);
                t.description = Some("x".repeat(2000));
                tx.insert_transaction(&t)?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("fill");
    drop(store);
    let path = dir.path().join(Store::FILE_NAME);
    let mut connection = Connection::open(&path).expect("raw open");
    assert_eq!(
        quick_check(&mut connection, &path, Duration::from_secs(60)).expect("whole"),
        Checked::Whole
    );
    assert_eq!(
        quick_check(&mut connection, &path, Duration::ZERO).expect("partly"),
        Checked::Partly
    );
    drop(connection);
    Store::open_checking_for(&path, Duration::ZERO).expect("opens past its budget");

    let garbage_path = dir.path().join("garbage.sqlite3");
    std::fs::write(&garbage_path, b"not a database at all, ".repeat(200)).expect("garbage");
    let err = Store::open_checking_for(&garbage_path, Duration::ZERO).expect_err("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}
