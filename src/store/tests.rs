//! Store tests against real SQLite files in temporary directories.

use rust_decimal::Decimal;

use super::{Store, StoreError, schema::LATEST_VERSION};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Currency, DeepLink, Failure, Item, OutboxEvent,
    OutboxKind, OutboxRecord, PaymentResult, Source, Timestamp, Transaction, TransactionFilter,
    TransactionStatus,
};

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).expect("test literal")
}

pub(super) fn transaction(id: &str, source_id: &str, at: i64) -> Transaction {
    Transaction {
        id: id.into(),
        number: format!("TXN-{id}"),
        terminal_id: "T1".into(),
        source: Source {
            kind: "Order".into(),
            id: source_id.into(),
            uid: Some("ORD-1".into()),
        },
        currency: Currency::Mnt,
        total: dec("12500.50"),
        paid: Decimal::ZERO,
        refunded: Decimal::ZERO,
        overpaid: Decimal::ZERO,
        status: TransactionStatus::New,
        description: Some("Coffee".into()),
        items: vec![Item {
            description: "Latte".into(),
            quantity: dec("2"),
            unit_price: dec("6250.25"),
        }],
        created_at: Timestamp(at),
        updated_at: Timestamp(at),
    }
}

pub(super) fn attempt(id: &str, transaction_id: &str) -> Attempt {
    Attempt {
        id: id.into(),
        code: format!("ATT-{id}"),
        transaction_id: transaction_id.into(),
        kind: AttemptType::Payment,
        status: AttemptStatus::New,
        provider: "simulator".into(),
        method: "100_QR_CODE".into(),
        amount: dec("12500.50"),
        paid: Decimal::ZERO,
        refunded: Decimal::ZERO,
        overpaid: Decimal::ZERO,
        tendered: None,
        parent_id: None,
        idempotency_key: format!("key-{id}"),
        request_id: None,
        invoice_id: None,
        short_url: None,
        qr_text: None,
        deep_links: vec![],
        provider_open: false,
        allow_partial: false,
        expires_at: Some(Timestamp(5_000)),
        failure: None,
        note: None,
        created_at: Timestamp(1_000),
        updated_at: Timestamp(1_000),
    }
}

pub(super) fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join(Store::FILE_NAME)).expect("open");
    (dir, store)
}

#[test]
fn a_fresh_database_gets_the_latest_schema_and_pragmas() {
    let (_dir, store) = open_temp();
    let (version, journal, fk): (i64, String, i64) = {
        let connection = store.connection.lock().expect("lock");
        (
            connection
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .expect("version"),
            connection
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .expect("journal"),
            connection
                .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                .expect("fk"),
        )
    };
    assert_eq!(version, LATEST_VERSION);
    assert_eq!(journal, "wal");
    assert_eq!(fk, 1);
}

#[test]
fn records_survive_reopening_with_exact_amounts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(Store::FILE_NAME);
    let mut written_attempt = attempt("a1", "t1");
    written_attempt.deep_links = vec![DeepLink {
        name: "Khan bank".into(),
        link: "khanbank://q?qPay_QRcode=x".into(),
    }];
    written_attempt.tendered = Some(dec("20000"));
    {
        let store = Store::open(&path).expect("open");
        store
            .write(|tx| {
                tx.insert_transaction(&transaction("t1", "order-1", 1_000))?;
                tx.insert_attempt(&written_attempt)
            })
            .expect("write");
    }
    let store = Store::open(&path).expect("reopen");
    let (read_transaction, read_attempt) = store
        .read(|tx| {
            Ok::<_, StoreError>((
                tx.transaction("t1")?.expect("transaction"),
                tx.attempt("a1")?.expect("attempt"),
            ))
        })
        .expect("read");
    assert_eq!(read_transaction, transaction("t1", "order-1", 1_000));
    assert_eq!(read_attempt, written_attempt);
    assert_eq!(read_transaction.total.to_string(), "12500.50");
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let (_dir, store) = open_temp();
    let result: Result<(), StoreError> = store.write(|tx| {
        tx.insert_transaction(&transaction("t1", "order-1", 1_000))?;
        // The same source again violates the unique index: the whole write is rolled back.
        tx.insert_transaction(&transaction("t2", "order-1", 1_000))
    });
    assert!(matches!(result, Err(StoreError::Sql(_))));
    let found = store.read(|tx| tx.transaction("t1")).expect("read");
    assert_eq!(found, None);
}

#[test]
fn a_provider_payment_id_is_recorded_once() {
    let (_dir, store) = open_temp();
    let result = PaymentResult {
        attempt_id: "a1".into(),
        provider: "simulator".into(),
        provider_payment_id: "pay-1".into(),
        amount: dec("100"),
        paid_at: Some(Timestamp(2_000)),
        observed_at: Timestamp(2_100),
    };
    let (first, second, rows) = store
        .write(|tx| {
            tx.insert_transaction(&transaction("t1", "order-1", 1_000))?;
            tx.insert_attempt(&attempt("a1", "t1"))?;
            let first = tx.insert_payment_result(&result)?;
            let second = tx.insert_payment_result(&result)?;
            Ok::<_, StoreError>((first, second, tx.payment_results_of("a1")?))
        })
        .expect("write");
    assert!(first);
    assert!(!second);
    assert_eq!(rows, vec![result]);
}

#[test]
fn outbox_events_keep_their_order() {
    let (_dir, store) = open_temp();
    let events = store
        .write(|tx| {
            tx.insert_transaction(&transaction("t1", "order-1", 1_000))?;
            let kinds = [
                OutboxKind::TransactionPartiallyPaid,
                OutboxKind::TransactionSettled,
                OutboxKind::TransactionRefunded,
            ];
            for (i, kind) in kinds.into_iter().enumerate() {
                tx.append_outbox("t1", kind, &serde_json::json!({ "i": i }), Timestamp(1))?;
            }
            tx.pending_outbox(10)
        })
        .expect("write");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "transaction_created",
            "item_added",
            "transaction_partially_paid",
            "transaction_settled",
            "transaction_refunded"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        store.read(|tx| tx.pending_outbox_count()).expect("count"),
        5
    );
}

#[test]
fn counters_count_up_from_one() {
    let (_dir, store) = open_temp();
    let values = store
        .write(|tx| {
            Ok::<_, StoreError>([
                tx.next_counter("transaction")?,
                tx.next_counter("transaction")?,
                tx.next_counter("attempt")?,
            ])
        })
        .expect("write");
    assert_eq!(values, [1, 2, 1]);
}

#[test]
fn filters_select_and_count_transactions() {
    let (_dir, store) = open_temp();
    store
        .write(|tx| {
            for i in 0..5 {
                tx.insert_transaction(&transaction(&format!("t{i}"), &format!("o{i}"), i * 10))?;
            }
            let mut settled = tx.transaction("t3")?.expect("t3");
            settled.status = TransactionStatus::Settled;
            tx.update_transaction(&settled)
        })
        .expect("write");
    let filter = TransactionFilter {
        since: Some(Timestamp(10)),
        until: Some(Timestamp(40)),
        limit: 2,
        ..TransactionFilter::default()
    };
    let (page, count, settled) = store
        .read(|tx| {
            Ok::<_, StoreError>((
                tx.list_transactions(&filter)?,
                tx.count_transactions(&filter)?,
                tx.count_transactions(&TransactionFilter {
                    status: Some(TransactionStatus::Settled),
                    ..TransactionFilter::default()
                })?,
            ))
        })
        .expect("read");
    let ids: Vec<&str> = page.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t3", "t2"]);
    assert_eq!(count, 3);
    assert_eq!(settled, 1);
}

#[test]
fn a_database_from_a_newer_qrpayd_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(Store::FILE_NAME);
    drop(Store::open(&path).expect("create"));
    {
        let connection = rusqlite::Connection::open(&path).expect("raw open");
        connection
            .pragma_update(None, "user_version", LATEST_VERSION + 1)
            .expect("bump");
    }
    let err = Store::open(&path).expect_err("newer schema");
    assert!(matches!(err, StoreError::TooNew { found, .. } if found == LATEST_VERSION + 1));
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn a_corrupt_database_is_named_and_left_untouched() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(Store::FILE_NAME);
    let garbage = b"this is not a sqlite database, just some bytes on a bad day....".repeat(100);
    std::fs::write(&path, &garbage).expect("write garbage");
    let err = Store::open(&path).expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(std::fs::read(&path).expect("read back"), garbage);
}

#[test]
fn provider_state_is_kept_per_provider_and_replaced() {
    let (_dir, store) = open_temp();
    let (first, replaced, other) = store
        .write(|tx| {
            tx.put_provider_state("qpay", "token", "a", Timestamp(1))?;
            let first = tx.provider_state("qpay", "token")?;
            tx.put_provider_state("qpay", "token", "b", Timestamp(2))?;
            Ok::<_, StoreError>((
                first,
                tx.provider_state("qpay", "token")?,
                tx.provider_state("appotapay", "token")?,
            ))
        })
        .expect("write");
    assert_eq!(first.as_deref(), Some("a"));
    assert_eq!(replaced.as_deref(), Some("b"));
    assert_eq!(other, None);
}

#[test]
fn a_panic_inside_a_write_rolls_it_back_and_does_not_wedge_the_store() {
    let (_dir, store) = open_temp();
    let panicking = store.clone();
    let outcome = std::thread::spawn(move || {
        panicking.write(|tx| {
            tx.insert_transaction(&transaction("t1", "o-1", 1_000))?;
            if tx.transaction("t1")?.is_some() {
                panic!("a bug while the connection is held");
            }
            Ok::<_, StoreError>(())
        })
    })
    .join();
    assert!(outcome.is_err(), "the writer panicked");
    // The lock was poisoned; the store recovers it, and the half-done write is gone.
    let found = store
        .read(|tx| tx.transaction("t1"))
        .expect("the store still answers");
    assert_eq!(found, None, "the panicking write was rolled back");
    store
        .write(|tx| tx.insert_transaction(&transaction("t2", "o-2", 2_000)))
        .expect("and still writes");
}

#[test]
fn overpayments_and_request_ids_are_stored_and_found() {
    let (_dir, store) = open_temp();
    let mut t = transaction("t1", "o-1", 1_000);
    let mut a = attempt("a1", "t1");
    a.request_id = Some("till-1".into());
    store
        .write(|tx| {
            tx.insert_transaction(&t)?;
            tx.insert_attempt(&a)
        })
        .expect("insert");
    t.paid = dec("200");
    t.overpaid = dec("100.00");
    a.overpaid = dec("100.00");
    store
        .write(|tx| {
            tx.insert_transaction(&transaction("t2", "o-2", 2_000))?;
            tx.update_transaction(&t)?;
            tx.update_attempt(&a)
        })
        .expect("update");
    let (found, by_request, listed) = store
        .read(|tx| {
            let filter = TransactionFilter {
                overpaid_only: true,
                limit: 10,
                ..TransactionFilter::default()
            };
            Ok::<_, StoreError>((
                tx.transaction("t1")?,
                tx.attempt_by_request("till-1")?,
                tx.list_transactions(&filter)?,
            ))
        })
        .expect("read");
    assert_eq!(found.map(|t| t.overpaid), Some(dec("100.00")));
    assert_eq!(by_request.map(|a| a.id), Some("a1".to_owned()));
    assert_eq!(
        listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t1"],
        "only the overpaid transaction"
    );
}

/// Issue 11: every change of a transaction, item, attempt or payment result queues an event
/// in the SQL transaction that makes it, named for what changed; a write that changes no
/// synced field queues none.
#[test]
fn every_change_queues_an_outbox_event_by_trigger() {
    let (_dir, store) = open_temp();
    let events = store
        .write(|tx| {
            let mut t = transaction("t1", "order-1", 1_000);
            tx.insert_transaction(&t)?;
            let mut a = attempt("a1", "t1");
            tx.insert_attempt(&a)?;
            a.note = Some("not synced".into());
            tx.update_attempt(&a)?;
            a.status = AttemptStatus::Sent;
            tx.update_attempt(&a)?;
            tx.insert_payment_result(&PaymentResult {
                attempt_id: "a1".into(),
                provider: "simulator".into(),
                provider_payment_id: "p1".into(),
                amount: Decimal::from(1_000),
                paid_at: None,
                observed_at: Timestamp(5),
            })?;
            a.status = AttemptStatus::Success;
            a.paid = Decimal::from(1_000);
            tx.update_attempt(&a)?;
            t.status = TransactionStatus::Settled;
            t.paid = Decimal::from(1_000);
            tx.update_transaction(&t)?;
            t.paid = Decimal::from(1_500);
            t.overpaid = Decimal::from(500);
            tx.update_transaction(&t)?;
            a.status = AttemptStatus::Fail;
            a.failure = Some(Failure {
                code: "CANCELLED".into(),
                message: "by the till".into(),
            });
            tx.update_attempt(&a)?;
            tx.pending_outbox(100)
        })
        .expect("write");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "transaction_created",
            "item_added",
            "attempt_created",
            "attempt_sent",
            "payment_recorded",
            "attempt_succeeded",
            "transaction_settled",
            "overpayment_received",
            "attempt_cancelled",
        ]
    );
    assert_eq!(events[0].record, OutboxRecord::Transaction);
    assert!(matches!(events[1].record, OutboxRecord::Item(0)));
    assert_eq!(events[2].record, OutboxRecord::Attempt("a1".into()));
    assert!(matches!(events[4].record, OutboxRecord::Payment(_)));
    assert!(events.iter().all(|e| e.transaction_id == "t1"));
    let changed: Vec<&str> = events[6].changed_fields().collect();
    assert_eq!(changed, ["paid", "status"]);
    assert!(events[2].creates() && !events[3].creates());
}

/// Issue 11: retention deletes delivered events after their window, and finished transactions
/// whose every event was delivered after theirs; nothing undelivered, unfinished or recent.
#[test]
fn retention_deletes_only_delivered_finished_and_old_records() {
    let (_dir, store) = open_temp();
    let deleted = store
        .write(|tx| {
            // t-old: settled long ago, everything delivered: goes.
            // t-pending: settled long ago, one event undelivered: stays.
            // t-open: new (unfinished) long ago, delivered: stays.
            // t-recent: settled recently, delivered: stays.
            for (id, status, at) in [
                ("t-old", TransactionStatus::Settled, 1_000),
                ("t-pending", TransactionStatus::Settled, 1_000),
                ("t-open", TransactionStatus::New, 1_000),
                ("t-recent", TransactionStatus::Settled, 9_000),
            ] {
                let mut t = transaction(id, id, 0);
                t.created_at = Timestamp(at);
                t.updated_at = Timestamp(at);
                t.status = status;
                tx.insert_transaction(&t)?;
                let mut a = attempt(&format!("a-{id}"), id);
                a.status = AttemptStatus::Success;
                a.created_at = Timestamp(at);
                tx.insert_attempt(&a)?;
                tx.insert_payment_result(&PaymentResult {
                    attempt_id: a.id.clone(),
                    provider: "simulator".into(),
                    provider_payment_id: format!("p-{id}"),
                    amount: Decimal::ONE,
                    paid_at: None,
                    observed_at: Timestamp(at),
                })?;
            }
            let seqs: Vec<i64> = tx.pending_outbox(100)?.iter().map(|e| e.seq).collect();
            tx.mark_synced(&seqs, Timestamp(2_000))?;
            tx.append_outbox(
                "t-pending",
                OutboxKind::TransactionRefunded,
                &serde_json::json!({}),
                Timestamp(2_000),
            )?;
            let transactions = tx.delete_finished_transactions(Timestamp(5_000), 10)?;
            let events = tx.delete_synced_outbox(Timestamp(1_500), 100)?;
            Ok::<_, StoreError>((transactions, events))
        })
        .expect("write");
    assert_eq!(
        deleted,
        (1, 0),
        "one transaction; no event delivered before 1500"
    );
    let left = store
        .read(|tx| {
            let mut left = Vec::new();
            for id in ["t-old", "t-pending", "t-open", "t-recent"] {
                left.push((id, tx.transaction(id)?.is_some(), tx.attempts_of(id)?.len()));
            }
            Ok::<_, StoreError>(left)
        })
        .expect("read");
    assert_eq!(
        left,
        [
            ("t-old", false, 0),
            ("t-pending", true, 1),
            ("t-open", true, 1),
            ("t-recent", true, 1)
        ]
    );
    // Delivered events go after their own window; the undelivered one never does.
    let (events, pending) = store
        .write(|tx| {
            let events = tx.delete_synced_outbox(Timestamp(3_000), 100)?;
            Ok::<_, StoreError>((events, tx.pending_outbox_count()?))
        })
        .expect("write");
    assert!(events > 0);
    assert_eq!(pending, 1, "the undelivered event is kept");
}

/// Issue 11: migration 5 keeps every outbox row of an earlier qrpayd (each then sends its
/// whole transaction) and gives an open transaction that had none an event of its own; a
/// transaction that had events gets no second one.
#[test]
fn migration_5_keeps_old_events_and_backfills_open_transactions() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join(Store::FILE_NAME);
    {
        let connection = rusqlite::Connection::open(&path).expect("raw open");
        for sql in &super::schema::MIGRATIONS[..4] {
            connection.execute_batch(sql).expect("migration");
        }
        connection
            .pragma_update(None, "user_version", 4)
            .expect("version 4");
        for (id, status) in [("settled", "304_SETTLED"), ("open", "100_NEW")] {
            connection
                .execute(
                    "INSERT INTO transactions (id, number, terminal_id, source_type, source_id,
                     currency, total, paid, refunded, status, created_at, updated_at)
                     VALUES (?1, ?1, 'T1', 'Order', ?1, 'MNT', '1', '0', '0', ?2, 1, 1)",
                    rusqlite::params![id, status],
                )
                .expect("transaction");
        }
        connection
            .execute(
                "INSERT INTO outbox (transaction_id, kind, payload, created_at)
                 VALUES ('settled', 'transaction_settled', '{\"paid\":\"1\"}', 1)",
                [],
            )
            .expect("an old event");
    }
    let store = Store::open(&path).expect("migrates");
    let events = store.read(|tx| tx.pending_outbox(10)).expect("read");
    let summary: Vec<(&str, &str, &OutboxRecord)> = events
        .iter()
        .map(|e| (e.transaction_id.as_str(), e.kind.as_str(), &e.record))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "settled",
                "transaction_settled",
                &OutboxRecord::WholeTransaction
            ),
            (
                "open",
                "transaction_backfilled",
                &OutboxRecord::WholeTransaction
            ),
        ]
    );
    assert!(events.iter().all(OutboxEvent::creates));
    assert_eq!(
        store.read(|tx| tx.pending_outbox_count()).expect("count"),
        2
    );
}
