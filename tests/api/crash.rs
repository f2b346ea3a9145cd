//! `kill -9` of a real daemon process at any moment, then a restart: nothing is lost and
//! nothing is taken twice.

use std::path::Path;
use std::time::Duration;

use qrpayd::dbus::PrivateBus;
use qrpayd::dbus::client::Request;
use qrpayd::store::{Store, StoreError};

use crate::harness::*;

fn write_config(dir: &Path, bus: &PrivateBus, simulator_extra: &str) -> std::path::PathBuf {
    let path = dir.join("qrpayd.toml");
    std::fs::write(
        &path,
        config_text(&dir.join("state"), bus.address(), simulator_extra),
    )
    .expect("config");
    path
}

/// What the database holds for one order, read straight from the file.
struct Ledger {
    transactions: u64,
    payments: usize,
    settled_events: usize,
    status: String,
}

fn ledger_of(state_dir: &Path, source_id: &str) -> Ledger {
    let store = Store::open(&state_dir.join(Store::FILE_NAME)).expect("open store");
    store
        .read(|tx| {
            let filter = qrpayd::domain::TransactionFilter {
                source_id: Some(source_id.to_owned()),
                limit: 10,
                ..Default::default()
            };
            let transactions = tx.count_transactions(&filter)?;
            let found = tx.list_transactions(&filter)?;
            let transaction = found.first().expect("the order's transaction");
            let mut payments = 0;
            for attempt in tx.attempts_of(&transaction.id)? {
                payments += tx.payment_results_of(&attempt.id)?.len();
            }
            let settled_events = tx
                .pending_outbox(10_000)?
                .iter()
                .filter(|e| e.transaction_id == transaction.id && e.kind == "transaction_settled")
                .count();
            Ok::<_, StoreError>(Ledger {
                transactions,
                payments,
                settled_events,
                status: transaction.status.code().to_owned(),
            })
        })
        .expect("read")
}

/// The scenario: a live attempt, `kill -9`, restart: it settles, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_attempt_survives_kill_9_and_settles_once() {
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let config = write_config(dir.path(), &bus, "");
    let mut daemon = Process::start(&config, None);
    let client = ready_client(&bus).await;
    let reply = client
        .checkout(&order("crash-1", "4200"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id").to_owned();

    daemon.kill_9();
    daemon.spawn();
    let client = ready_client(&bus).await;
    let mut signals = client.watch().await.expect("watch");
    assert_eq!(client.status().await.expect("status")["open_attempts"], 1);
    client
        .simulate_pay(&attempt_id, "")
        .await
        .expect("pay after restart");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    daemon.kill_9();

    let ledger = ledger_of(&dir.path().join("state"), "crash-1");
    assert_eq!(ledger.transactions, 1);
    assert_eq!(ledger.payments, 1);
    assert_eq!(ledger.settled_events, 1);
    assert_eq!(ledger.status, "304_SETTLED");
}

/// `kill -9` at many moments around a checkout (before the call lands, while it is being
/// recorded, while the invoice is created, after): the till retries, and every order ends
/// settled exactly once with one transaction and one payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_moment_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    // The simulated customer pays 300 ms after each invoice is made, whether or not the
    // daemon is running at that moment.
    let config = write_config(dir.path(), &bus, "auto_pay_after_ms = 300");
    let mut daemon = Process::start(&config, None);
    let delays_ms = [0u64, 1, 3, 7, 15, 30, 60, 120, 250, 400];
    for (i, delay) in delays_ms.iter().enumerate() {
        let source_id = format!("kill-{i}");
        let client = ready_client(&bus).await;
        let request = order(&source_id, "1500");
        let in_flight = {
            let client = client.clone();
            let request: Request = request.clone();
            tokio::spawn(async move { client.checkout(&request).await })
        };
        // The kill lands at a chosen moment of the checkout: deliberately timed, not awaited.
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        daemon.kill_9();
        let _ = in_flight.await;
        daemon.spawn();

        // The till did not get (or did not trust) an answer: it asks again for the same order.
        let client = ready_client(&bus).await;
        let mut signals = client.watch().await.expect("watch");
        let reply = client
            .checkout(&request)
            .await
            .expect("checkout after restart");
        let transaction_id = s(&reply, "transaction_id").to_owned();
        if s(&reply, "transaction_status") != "304_SETTLED" {
            wait_transaction(&mut signals, &transaction_id, "304_SETTLED").await;
        }
    }
    daemon.kill_9();
    for i in 0..delays_ms.len() {
        let ledger = ledger_of(&dir.path().join("state"), &format!("kill-{i}"));
        assert_eq!(ledger.transactions, 1, "kill-{i}: one transaction");
        assert_eq!(ledger.payments, 1, "kill-{i}: one payment");
        assert_eq!(ledger.settled_events, 1, "kill-{i}: settled once");
        assert_eq!(ledger.status, "304_SETTLED", "kill-{i}");
    }
}
