//! The upstream sync end to end: a real daemon syncing to the mock back office
//! (`tests/support/mock_backoffice.rs`) on 127.0.0.1, which checks the key and the signature,
//! keeps the records, and injects faults on command. Every test ends by comparing the back
//! office's records with the terminal's.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use qrpayd::dbus::PrivateBus;
use qrpayd::dbus::client::{Arg, Client, Signal};
use serde_json::Value;

use crate::harness::*;
use crate::mock_backoffice::{API_KEY, Fault, MockBackOffice, SIGNING_SECRET, upstream_section};

/// A daemon (the simulator, paying on command) syncing to `mock`, with extra `[upstream]` keys.
async fn daemon_for(mock: &MockBackOffice, upstream_extra: &str) -> Harness {
    Harness::start_with(&mock.upstream_section(upstream_extra)).await
}

/// Waits until the sync's properties satisfy `done`, woken by their change signals.
pub(crate) async fn wait_sync(
    client: &Client,
    signals: &mut (impl Stream<Item = Signal> + Unpin),
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let waited = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            let status = client.sync_status().await.expect("sync status");
            if done(&status) {
                return status;
            }
            // Any signal may be the change awaited; the properties are read again after each.
            if signals.next().await.is_none() {
                panic!("the signal stream ended before {what}");
            }
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("no {what} within {EVENT_TIMEOUT:?}"))
}

/// Waits until every event was accepted (none parked).
async fn wait_delivered(client: &Client, signals: &mut (impl Stream<Item = Signal> + Unpin)) {
    wait_sync(client, signals, "PendingSync 0", |s| {
        s["pending"] == 0 && s["state"] == "idle"
    })
    .await;
}

/// A paid sale of `amount` with two items; returns (transaction id, attempt id).
pub(crate) async fn paid_sale(h: &Harness, source_id: &str, amount: &str) -> (String, String) {
    let mut signals = h.client.watch().await.expect("watch");
    let request = with(
        order(source_id, amount),
        "items",
        Arg::Dicts(vec![
            [
                ("description", "Coffee"),
                ("quantity", "1"),
                ("unit_price", amount),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            [
                ("description", "Receipt"),
                ("quantity", "1"),
                ("unit_price", "0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ]),
    );
    let reply = h.client.checkout(&request).await.expect("checkout");
    let transaction_id = s(&reply, "transaction_id").to_owned();
    let attempt_id = s(&reply, "attempt_id").to_owned();
    h.client.simulate_pay(&attempt_id, "").await.expect("pay");
    wait_transaction(&mut signals, &transaction_id, "304_SETTLED").await;
    (transaction_id, attempt_id)
}

/// The back office holds exactly what the terminal holds: every transaction with its status
/// and amounts, every item, every attempt with its status and paid amount, every payment
/// result once.
async fn assert_upstream_equals_terminal(h: &Harness, mock: &MockBackOffice) {
    let mut transactions = Vec::new();
    loop {
        let page = h
            .client
            .list_transactions(
                &pairs(&[])
                    .into_iter()
                    .chain([
                        ("limit".to_owned(), Arg::U32(500)),
                        ("offset".to_owned(), Arg::U32(transactions.len() as u32)),
                    ])
                    .collect(),
            )
            .await
            .expect("list");
        let page = page.as_array().expect("array").clone();
        let done = page.len() < 500;
        transactions.extend(page);
        if done {
            break;
        }
    }
    let mut views = Vec::with_capacity(transactions.len());
    for listed in &transactions {
        let id = s(listed, "transaction_id");
        views.push(h.client.get_transaction(id).await.expect("get"));
    }
    let state = mock.state();
    assert_eq!(
        state.count("transactions"),
        transactions.len(),
        "transactions"
    );
    let (mut items, mut attempts, mut payments) = (0, 0, 0);
    for view in &views {
        let id = s(view, "transaction_id");
        let up = state
            .record("transactions", id)
            .unwrap_or_else(|| panic!("{id} upstream"));
        for (local, remote) in [
            ("transaction_status", "status"),
            ("total", "total"),
            ("paid", "paid"),
            ("refunded", "refunded"),
            ("transaction_number", "number"),
            ("currency", "currency"),
            ("source_id", "sourceId"),
        ] {
            assert_eq!(view[local], up[remote], "{id}: {local}");
        }
        items += view["items"].as_array().map_or(0, Vec::len);
        for attempt in view["attempts"].as_array().expect("attempts") {
            let aid = s(attempt, "id");
            let up = state
                .record("payment-attempts", aid)
                .unwrap_or_else(|| panic!("attempt {aid} upstream"));
            assert_eq!(attempt["status"], up["status"], "{aid}: status");
            assert_eq!(attempt["paid"], up["paid"], "{aid}: paid");
            assert_eq!(attempt["amount"], up["amount"], "{aid}: amount");
            assert_eq!(
                attempt.get("parent_id"),
                up.get("parentId").filter(|v| !v.is_null())
            );
            assert!(up.get("qrText").is_none() && up.get("shortUrl").is_none());
            attempts += 1;
        }
        payments += view["payments"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(state.count("transaction-items"), items, "items");
    assert_eq!(state.count("payment-attempts"), attempts, "attempts");
    assert_eq!(
        state.count("payment-results"),
        payments,
        "payment results, each once"
    );
}

/// The scenario: sales, a cancel and a refund, through 500s and a 429 with
/// `Retry-After`: everything arrives, once, and the back office equals the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_the_back_office_through_500s_and_429s() {
    let mock = MockBackOffice::start().await;
    mock.inject([Fault::Status500, Fault::Status500, Fault::Status429(1)]);
    let h = daemon_for(&mock, "").await;
    let mut signals = h.client.watch().await.expect("watch");
    let (_, paid_attempt) = paid_sale(&h, "sync-1", "12500").await;
    paid_sale(&h, "sync-2", "3000").await;
    // A cancelled sale, and a partial refund of the first.
    let open = h
        .client
        .checkout(&order("sync-3", "700"))
        .await
        .expect("checkout");
    h.client
        .cancel(&pairs(&[("transaction_id", s(&open, "transaction_id"))]))
        .await
        .expect("cancel");
    h.client
        .refund(&pairs(&[
            ("attempt_id", &paid_attempt),
            ("amount", "2500"),
            ("reason", "returned"),
        ]))
        .await
        .expect("refund");
    wait_delivered(&h.client, &mut signals).await;
    assert!(mock.state().answered(500) >= 2 && mock.state().answered(429) == 1);
    assert_upstream_equals_terminal(&h, &mock).await;
    // Every request carried the terminal's idempotency key: `<terminal id>-<outbox seq>`.
    assert!(mock.state().writes.iter().all(|w| {
        let seq = w.idempotency_key.strip_prefix("TEST-01-").unwrap_or("x");
        seq.trim_end_matches("-patch").parse::<u64>().is_ok()
    }));
    let status = h.client.sync_status().await.expect("status");
    assert_eq!(status["parked"], 0);
    assert_eq!(status["oldest_pending_seconds"], 0);
    assert_ne!(status["last_sync_at"], "", "{status}");
    let state = mock.state();
    let refunded = state
        .collection("transactions")
        .into_iter()
        .find(|t| t["sourceId"] == "sync-1")
        .expect("sync-1")
        .clone();
    assert_eq!(refunded["refunded"], "2500.0000");
    assert_eq!(refunded["status"], "304_SETTLED");
    let cancelled = state
        .collection("transactions")
        .into_iter()
        .find(|t| t["sourceId"] == "sync-3")
        .expect("sync-3")
        .clone();
    assert_eq!(cancelled["status"], "505_CANCELLED");
}

/// A 422 for one record parks its event: that transaction waits, the others go on; the parked
/// event is listed with the back office's answer, and once the cause is fixed a retry sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_is_parked_blocks_only_its_transaction_and_is_retried() {
    let mock = MockBackOffice::start().await;
    let h = daemon_for(&mock, "").await;
    let mut signals = h.client.watch().await.expect("watch");
    // The sales are made while the back office is down, so its first look at them is after
    // the refusal is set up.
    mock.set_down(true);
    let (blocked_id, attempt_id) = paid_sale(&h, "blocked", "500").await;
    mock.reject(&attempt_id);
    paid_sale(&h, "fine", "800").await;
    mock.set_down(false);
    h.client.sync_now().await.expect("sync now");
    let status = wait_sync(&h.client, &mut signals, "a parked event", |s| {
        s["parked"] == 1 && s["state"] == "idle"
    })
    .await;
    // The attempt's create is parked; its later events and the payment wait behind it.
    assert!(
        status["pending"].as_u64().expect("pending") >= 3,
        "{status}"
    );
    let parked = h.client.list_parked_sync().await.expect("parked");
    let parked = &parked.as_array().expect("rows")[0];
    assert_eq!(parked["transaction_id"], blocked_id.as_str());
    assert_eq!(parked["kind"], "attempt_created");
    assert!(s(parked, "answer").contains("422"), "{parked}");
    assert!(s(parked, "answer").contains("INVALID_RECORD"), "{parked}");
    // The other sale went through; the blocked one's attempt did not.
    assert!(
        mock.state()
            .collection("transactions")
            .iter()
            .any(|t| t["sourceId"] == "fine")
    );
    assert!(
        mock.state()
            .record("payment-attempts", &attempt_id)
            .is_none()
    );

    // Retrying an event that is not parked is a named error.
    let seq = parked["seq"].as_i64().expect("seq");
    let error = h
        .client
        .retry_sync(Some(seq + 100_000))
        .await
        .expect_err("not parked");
    assert_eq!(error_name(&error), "SyncEventNotParked");
    // What IT sees with qrpayctl: the parked event with the back office's answer, then the
    // retry once the cause is fixed.
    let listed = qrpayctl(&h, &["sync", "parked"]).await;
    assert!(
        listed.contains("TXN000001") && listed.contains("INVALID_RECORD"),
        "{listed}"
    );
    assert!(listed.contains("1 parked event(s)"), "{listed}");
    mock.clear_rejects();
    let retried = qrpayctl(&h, &["sync", "retry", &seq.to_string()]).await;
    assert!(
        retried.contains("1 parked event(s) sent again"),
        "{retried}"
    );
    wait_delivered(&h.client, &mut signals).await;
    let status = qrpayctl(&h, &["sync"]).await;
    assert!(
        status.contains("state: idle") && status.contains("pending: 0"),
        "{status}"
    );
    assert!(
        status.contains("parked: 0") && !status.contains("never"),
        "{status}"
    );
    assert_upstream_equals_terminal(&h, &mock).await;
}

/// Runs `qrpayctl --bus <the harness's bus> ARGS`, expecting exit code 0; returns its output.
async fn qrpayctl(h: &Harness, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_qrpayctl"))
        .arg("--bus")
        .arg(h.bus.address())
        .args(args)
        .env_remove("QRPAYD_BUS")
        .output()
        .await
        .expect("run qrpayctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(0), "qrpayctl {args:?}: {text}");
    text
}

/// The back office commits a create, then its answer is lost (held past the client's timeout):
/// the repeat converges (a replay of the idempotency key, or "exists" then a PATCH), and no
/// record is there twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_repeated_without_a_duplicate() {
    let mock = MockBackOffice::start().await;
    mock.inject([Fault::CommitThenHold(Duration::from_millis(1500))]);
    let h = daemon_for(&mock, "request_timeout_ms = 300").await;
    let mut signals = h.client.watch().await.expect("watch");
    paid_sale(&h, "lost-1", "900").await;
    wait_delivered(&h.client, &mut signals).await;
    {
        let state = mock.state();
        let creates_of_first = state
            .requests
            .iter()
            .filter(|(method, path, _)| method == "POST" && path.ends_with("/transactions"))
            .count();
        assert!(
            creates_of_first >= 2,
            "the create was sent again: {:?}",
            state.requests
        );
    }
    assert_upstream_equals_terminal(&h, &mock).await;
}

/// 401s pause the whole sync (`paused-auth`); once the key is fixed, `SyncNow` resumes it at
/// once instead of after the five-minute pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_pause_the_sync_until_sync_now() {
    let mock = MockBackOffice::start().await;
    mock.set_deny(true);
    let h = daemon_for(&mock, "").await;
    let mut signals = h.client.watch().await.expect("watch");
    paid_sale(&h, "auth-1", "1000").await;
    wait_sync(&h.client, &mut signals, "SyncState paused-auth", |s| {
        s["state"] == "paused-auth"
    })
    .await;
    let refused = mock.state().refused_auth;
    mock.set_deny(false);
    h.client.sync_now().await.expect("sync now");
    wait_delivered(&h.client, &mut signals).await;
    assert!(refused >= 1);
    assert_upstream_equals_terminal(&h, &mock).await;
}

/// The terminal's clock is ten minutes behind the back office's: the first signed request is
/// refused (its timestamp is outside the ±300 s window), its answer's `Date` shows the skew,
/// and the request is sent again at once on the back office's clock; everything arrives
/// without a pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_follow_the_back_offices_clock_when_the_local_one_is_off() {
    let mock = MockBackOffice::start().await;
    mock.state().clock_offset = 600;
    let h = daemon_for(&mock, "").await;
    let mut signals = h.client.watch().await.expect("watch");
    paid_sale(&h, "skew-1", "1500").await;
    wait_delivered(&h.client, &mut signals).await;
    assert_eq!(
        mock.state().refused_auth,
        1,
        "only the first request was refused"
    );
    assert_upstream_equals_terminal(&h, &mock).await;
}

/// A record the back office already holds (a 409 on create) is sent as a PATCH of its whole
/// current state, which replaces what the back office had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_exists_upstream_is_patched_to_the_current_state() {
    let mock = MockBackOffice::start().await;
    let h = daemon_for(&mock, "").await;
    let mut signals = h.client.watch().await.expect("watch");
    mock.set_down(true);
    let (transaction_id, _) = paid_sale(&h, "dup-1", "4200").await;
    // An earlier delivery left a stale copy upstream.
    mock.seed(
        "transactions",
        serde_json::json!({"id": transaction_id, "status": "100_NEW", "paid": "0.0000"}),
    );
    mock.set_down(false);
    h.client.sync_now().await.expect("sync now");
    wait_delivered(&h.client, &mut signals).await;
    assert!(mock.state().answered(409) >= 1);
    assert_upstream_equals_terminal(&h, &mock).await;
}

/// Without `[upstream]` the sync is off, says so, and refuses `SyncNow` with a named error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upstream_the_sync_is_disabled() {
    let h = Harness::start().await;
    let status = h.client.sync_status().await.expect("status");
    assert_eq!(status["state"], "disabled");
    assert_eq!(status["last_sync_at"], "");
    let error = h.client.sync_now().await.expect_err("disabled");
    assert_eq!(error_name(&error), "SyncDisabled");
}

/// The offline scenario: 2 000 payments while the back office is down (nothing
/// listens on its port), then it comes up: every record arrives, each child after its parent
/// (the mock refuses a child whose parent it lacks), and each transaction's writes in order.
/// The backlog is written into the database before the daemon starts (`support/backlog.rs`:
/// the same records and triggered events as cash sales), and a few more sales go through the
/// daemon while the back office is down; so the test takes seconds, not minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_payments_made_offline_all_arrive_in_order() {
    const BACKLOG: usize = 2000;
    const LIVE: usize = 20;
    // A port held for the back office, where nothing listens yet: connections are refused.
    let (reserved, address) = MockBackOffice::reserve();
    let base_url = format!("http://{address}{}", crate::mock_backoffice::BASE_PATH);
    let h = Harness::start_seeded("", "", &upstream_section(&base_url, true, ""), |state| {
        crate::backlog::write_backlog(state, "TEST-01", BACKLOG);
    })
    .await;
    let mut signals = h.client.watch().await.expect("watch");
    for i in 0..LIVE {
        let cash = with(
            order(&format!("offline-{i}"), "1000"),
            "provider",
            Arg::from("system"),
        );
        let reply = h.client.checkout(&cash).await.expect("checkout");
        h.client
            .confirm_system_payment(&pairs(&[
                ("attempt_id", s(&reply, "attempt_id")),
                ("tendered", "1000"),
            ]))
            .await
            .expect("cash");
    }
    let status = wait_sync(&h.client, &mut signals, "SyncState offline", |s| {
        s["state"] == "offline"
    })
    .await;
    let backlog = (BACKLOG * crate::backlog::EVENTS_PER_SALE) as u64;
    assert!(
        status["pending"].as_u64().expect("pending") > backlog,
        "{status}"
    );
    assert!(status["oldest_pending_seconds"].as_u64().is_some());

    let mock = MockBackOffice::start_reserved(reserved, true);
    h.client.sync_now().await.expect("sync now");
    wait_delivered(&h.client, &mut signals).await;
    {
        let state = mock.state();
        assert_eq!(state.count("transactions"), BACKLOG + LIVE);
        assert_eq!(state.count("payment-attempts"), BACKLOG + LIVE);
        assert_eq!(state.count("payment-results"), BACKLOG + LIVE);
        assert_eq!(state.answered(422), 0, "no child before its parent");
        // Transactions went several at a time, never more than `max_in_flight` (4).
        assert!(
            (2..=4).contains(&state.most_in_flight),
            "{} requests at once",
            state.most_in_flight
        );
        // Per transaction, the back office saw its writes in the order they happened.
        let mut last: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        for write in state
            .writes
            .iter()
            .filter(|w| w.collection == "transactions")
        {
            if let Some(at) = write.body["updatedAt"].as_str() {
                let before = last.insert(&write.id, at);
                assert!(
                    before.is_none_or(|b| b <= at),
                    "{}: {before:?} then {at}",
                    write.id
                );
            }
        }
        assert!(
            state
                .collection("transactions")
                .iter()
                .all(|t| t["status"] == "304_SETTLED" && t["paid"] == "1000.0000")
        );
    }
    assert_upstream_equals_terminal(&h, &mock).await;
}

/// `kill -9` while the back office holds an answer it already committed (the window between
/// its 2xx and the daemon marking the event delivered), then a restart: the events are sent
/// again, nothing is there twice, and `PendingSync` reaches 0. The log of the whole run holds
/// no secret, and no request carried one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_marking_delivered_duplicates_nothing_upstream() {
    let mock = MockBackOffice::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let config = dir.path().join("qrpayd.toml");
    std::fs::write(
        &config,
        config_text(
            &dir.path().join("state"),
            bus.address(),
            &mock.upstream_section(""),
        ),
    )
    .expect("config");
    let log = dir.path().join("qrpayd.log");
    // Hold every answer long enough to kill the daemon while it waits.
    mock.inject((0..8).map(|_| Fault::CommitThenHold(Duration::from_secs(30))));
    let mut daemon = Process::start(&config, Some(&log));
    let client = ready_client(&bus).await;
    let mut signals = client.watch().await.expect("watch");
    let reply = client
        .checkout(&order("kill-sync", "2500"))
        .await
        .expect("checkout");
    let transaction_id = s(&reply, "transaction_id").to_owned();
    client
        .simulate_pay(s(&reply, "attempt_id"), "")
        .await
        .expect("pay");
    wait_transaction(&mut signals, &transaction_id, "304_SETTLED").await;
    mock.wait_for("the transaction committed", EVENT_TIMEOUT, |state| {
        state.record("transactions", &transaction_id).is_some()
    })
    .await;
    daemon.kill_9();
    mock.state().faults_clear();
    daemon.spawn();
    let client = ready_client(&bus).await;
    let mut signals = client.watch().await.expect("watch");
    client.sync_now().await.expect("sync now");
    wait_delivered(&client, &mut signals).await;
    {
        let state = mock.state();
        assert_eq!(
            state.count("transactions"),
            1,
            "{:?}",
            state.collection("transactions")
        );
        assert_eq!(state.count("payment-attempts"), 1);
        assert_eq!(state.count("payment-results"), 1);
        let up = state
            .record("transactions", &transaction_id)
            .expect("upstream");
        assert_eq!(up["status"], "304_SETTLED");
        assert_eq!(up["paid"], "2500.0000");
        for line in &state.raw {
            assert!(
                !line.contains(SIGNING_SECRET),
                "a request carried the signing secret"
            );
            assert!(!line.contains("000201"), "a request carried a QR: {line}");
        }
    }
    daemon.kill_9();
    let log = std::fs::read_to_string(&log).expect("log");
    // One line per change of the sync's state; none per request accepted at info.
    assert!(log.contains("the upstream sync is idle"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains(" INFO ") && l.contains("/payment-results")),
        "a request was logged at info"
    );
    for (what, secret) in [
        ("the API key", API_KEY),
        ("the signing secret", SIGNING_SECRET),
    ] {
        assert!(!log.contains(secret), "{what} is in the log");
    }
    assert!(!log.contains("v1="), "a signature is in the log");
}

/// Retention through the daemon: a finished, delivered transaction older than
/// `retention_days` is deleted with everything of it on `SyncNow`; a recent one, and an old
/// one whose events were not all delivered, stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_delivered_finished_transactions_past_the_window() {
    let mock = MockBackOffice::start().await;
    let h = daemon_for(&mock, "retention_days = 30").await;
    let mut signals = h.client.watch().await.expect("watch");
    let (old, _) = paid_sale(&h, "old", "1000").await;
    let (recent, _) = paid_sale(&h, "recent", "1000").await;
    wait_delivered(&h.client, &mut signals).await;
    // A third sale, old too, whose events the back office refuses: never deleted.
    mock.set_down(true);
    let (undelivered, refused_attempt) = paid_sale(&h, "old-undelivered", "1000").await;
    mock.reject(&refused_attempt);
    mock.set_down(false);
    h.client.sync_now().await.expect("sync now");
    wait_sync(&h.client, &mut signals, "a parked event", |s| {
        s["parked"] == 1
    })
    .await;
    // Forty days pass for two of them (their times moved back in the file, as an old database
    // would hold them; this touches no synced field, so it queues nothing).
    {
        let database = h.state_dir().join(qrpayd::store::Store::FILE_NAME);
        let connection = rusqlite::Connection::open(database).expect("open");
        connection
            .busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        let forty_days = 40 * 86_400_000_i64;
        for id in [&old, &undelivered] {
            connection
                .execute(
                    "UPDATE transactions SET created_at = created_at - ?2,
                     updated_at = updated_at - ?2 WHERE id = ?1",
                    rusqlite::params![id, forty_days],
                )
                .expect("age");
        }
    }
    // SyncNow runs retention first. Deleting history signals nothing (no count the till sees
    // changes), so the test looks until the transaction is gone.
    h.client.sync_now().await.expect("sync now");
    let gone = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            match h.client.get_transaction(&old).await {
                Err(error) => return error,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the old transaction is deleted");
    assert_eq!(error_name(&gone), "TransactionNotFound");
    h.client
        .get_transaction(&recent)
        .await
        .expect("the recent one stays");
    h.client
        .get_transaction(&undelivered)
        .await
        .expect("the undelivered one stays");
    // The back office keeps what it was sent.
    assert!(mock.state().record("transactions", &old).is_some());
}
