//! The MQ-Pay gateway provider end to end: the till's D-Bus calls against a daemon whose
//! `mqpay` provider talks real HTTP to the mock MQ-Pay (`mock_mqpay`), which checks the API key
//! and every request's signature.

use std::path::{Path, PathBuf};

use futures_util::Stream;
use qrpayd::config::Config;
use qrpayd::daemon::Daemon;
use qrpayd::dbus::PrivateBus;
use qrpayd::dbus::client::{Arg, Client, Request, Signal};
use serde_json::Value;

use crate::harness::*;
use crate::mock_mqpay::*;

/// The `[providers.mqpay]` section for the mock at `base_url`, signed with `secret` if any.
fn mqpay_section(base_url: &str, secret: Option<&str>) -> String {
    let signing = secret
        .map(|secret| format!("signing_secret = \"{secret}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[providers.mqpay]
base_url = "{base_url}"
api_key = "{API_KEY}"
{signing}provider = "{GATEWAY}"
poll_interval_ms = 1000
request_timeout_ms = 2000
"#
    )
}

/// A daemon whose only provider is `mqpay`, on a private bus, and the mock it talks to.
struct MqPayHarness {
    dir: tempfile::TempDir,
    bus: PrivateBus,
    daemon: Option<Daemon>,
    client: Client,
    mock: MockMqPay,
    config: PathBuf,
}

impl MqPayHarness {
    async fn start() -> MqPayHarness {
        MqPayHarness::start_signed_with(SIGNING_SECRET).await
    }

    /// A daemon that signs with `secret` (the mock checks [`SIGNING_SECRET`]).
    async fn start_signed_with(secret: &str) -> MqPayHarness {
        MqPayHarness::start_with(MockMqPay::start_signed().await, Some(secret)).await
    }

    /// A daemon whose `[upstream]` is the same MQ-Pay as its gateway provider.
    async fn start_shared() -> MqPayHarness {
        let mock = MockMqPay::start_signed().await;
        let upstream = format!(
            "\n[upstream]\nbase_url = \"{}\"\napi_key = \"{API_KEY}\"\nsigning_secret = \
             \"{SIGNING_SECRET}\"\n",
            mock.base_url
        );
        MqPayHarness::start_configured(mock, Some(SIGNING_SECRET), &upstream).await
    }

    /// A daemon that does not sign, and a mock that checks only the API key.
    async fn start_unsigned() -> MqPayHarness {
        MqPayHarness::start_with(MockMqPay::start().await, None).await
    }

    async fn start_with(mock: MockMqPay, secret: Option<&str>) -> MqPayHarness {
        MqPayHarness::start_configured(mock, secret, "").await
    }

    async fn start_configured(mock: MockMqPay, secret: Option<&str>, extra: &str) -> MqPayHarness {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = PrivateBus::start(dir.path()).expect("private bus");
        let text = daemon_sections(&dir.path().join("state"), bus.address(), None)
            + &mqpay_section(&mock.base_url, secret)
            + extra;
        let config = dir.path().join("qrpayd.toml");
        std::fs::write(&config, text).expect("config");
        let daemon = start_daemon(&config).await;
        let client = ready_client(&bus).await;
        MqPayHarness {
            dir,
            bus,
            daemon: Some(daemon),
            client,
            mock,
            config,
        }
    }

    /// Stops the daemon (as a crash would leave its files) and starts it again.
    async fn restart(&mut self) {
        drop(self.daemon.take());
        self.daemon = Some(start_daemon(&self.config).await);
        self.client = ready_client(&self.bus).await;
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

async fn start_daemon(path: &Path) -> Daemon {
    let text = std::fs::read_to_string(path).expect("config text");
    let config = Config::parse(&text, path).expect("config");
    Daemon::start(&config).await.expect("daemon starts")
}

fn request(pairs: &[(&str, &str)]) -> Request {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Arg::from(*v)))
        .collect()
}

fn partial(source_id: &str, amount: &str) -> Request {
    with(order(source_id, amount), "allow_partial", Arg::Bool(true))
}

/// Wakes the sync and waits until every event was accepted, none parked.
async fn synced(client: &Client, signals: &mut (impl Stream<Item = Signal> + Unpin)) {
    client.sync_now().await.expect("sync now");
    let waited = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            let status = client.sync_status().await.expect("sync status");
            if status["pending"] == 0 && status["parked"] == 0 {
                return;
            }
            futures_util::StreamExt::next(signals).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the sync did not deliver everything");
}

/// Waits until `attempt_id` is `status`, whether it already is or becomes so.
async fn attempt_reaches(
    client: &Client,
    signals: &mut (impl Stream<Item = Signal> + Unpin),
    transaction_id: &str,
    attempt_id: &str,
    status: &str,
) {
    let view = client.get_transaction(transaction_id).await.expect("get");
    let now = view["attempts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == attempt_id))
        .map(|a| a["status"].clone());
    if now != Some(Value::from(status)) {
        wait_attempt(signals, attempt_id, status).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqpay_payment_shows_the_gateways_qr_and_settles() {
    let h = MqPayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&with(
            order("mq-settle", "4200.50"),
            "source_uid",
            Arg::from("ORD-7"),
        ))
        .await
        .expect("checkout");
    assert_eq!(s(&reply, "provider"), "mqpay");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    let attempt = h.mock.attempt_by_qr(s(&reply, "qr_text"));
    assert_eq!(
        s(&reply, "short_url"),
        format!("https://pay.example/q/{}", attempt.id)
    );
    assert_eq!(
        attempt.raw_total, "4200.5",
        "the total is a JSON number written from its digits"
    );
    {
        let state = h.mock.state();
        let transaction = &state.transactions[0];
        assert_eq!(transaction.source_id, s(&reply, "transaction_id"));
        assert_eq!(transaction.source_type, "Order");
        assert_eq!(transaction.source_uid, "ORD-7");
        assert_eq!(state.bad_signatures, 0, "every request was signed");
        let checkout = state
            .seen
            .iter()
            .find(|s| s.route == Route::Checkout)
            .expect("the checkout");
        assert_eq!(checkout.idempotency_key.as_deref().map(str::len), Some(26));
    }

    let result = h.mock.pay(&attempt.id, "4200.50");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "paid"), "4200.5000");
    let payments = view["payments"].as_array().expect("payments");
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["provider_payment_id"], result.as_str());
    let verify = h
        .client
        .verify(s(&reply, "attempt_id"))
        .await
        .expect("verify");
    assert_eq!(s(&verify, "provider_code"), "00");
    assert_eq!(s(&verify, "provider_message"), "Success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_mqpay_payment_waits_for_the_rest() {
    let h = MqPayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&partial("mq-partial", "4200"))
        .await
        .expect("checkout");
    let attempt = h.mock.attempt_by_qr(s(&reply, "qr_text"));
    let transaction_id = s(&reply, "transaction_id");
    h.mock.pay(&attempt.id, "1500");
    wait_transaction(&mut signals, transaction_id, "300_PARTIAL").await;
    h.mock.pay(&attempt.id, "2700");
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "paid"), "4200.0000");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqpay_attempt_expires_or_fails_as_the_gateway_says() {
    let h = MqPayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let expiring = h
        .client
        .checkout(&order("mq-expire", "1000"))
        .await
        .expect("checkout");
    h.mock
        .expire(&h.mock.attempt_by_qr(s(&expiring, "qr_text")).id);
    wait_attempt(&mut signals, s(&expiring, "attempt_id"), "501_EXPIRED").await;

    let failing = h
        .client
        .checkout(&order("mq-fail", "1000"))
        .await
        .expect("checkout");
    h.mock.fail(
        &h.mock.attempt_by_qr(s(&failing, "qr_text")).id,
        "51",
        "Insufficient funds",
    );
    wait_attempt(&mut signals, s(&failing, "attempt_id"), "500_FAIL").await;
    let verify = h
        .client
        .verify(s(&failing, "attempt_id"))
        .await
        .expect("verify");
    assert_eq!(s(&verify, "provider_code"), "51", "{verify}");
    assert_eq!(
        s(&verify, "provider_message"),
        "Insufficient funds",
        "{verify}"
    );
}

/// MQ-Pay's attempt runs out before the one qrpayd asked for: the attempt takes MQ-Pay's
/// deadline, so the till and the customer screen never promise a QR that no longer works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_earlier_expiry_is_the_attempts() {
    let h = MqPayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    h.mock.expire_attempts_after(1500);
    let reply = h
        .client
        .checkout(&order("mq-short", "1000"))
        .await
        .expect("checkout");
    let expires_at =
        qrpayd::domain::Timestamp::parse_rfc3339(s(&reply, "expires_at")).expect("an expiry");
    let created_at =
        qrpayd::domain::Timestamp::parse_rfc3339(s(&reply, "created_at")).expect("a creation time");
    let lasts = created_at.millis_until(expires_at);
    assert!(
        lasts < 5_000,
        "MQ-Pay's 1.5 s, not the configured 60 s: {lasts} ms"
    );
    wait_attempt(&mut signals, s(&reply, "attempt_id"), "501_EXPIRED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_closes_the_mqpay_attempt_unless_the_customer_paid_first() {
    let h = MqPayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("mq-cancel", "1000"))
        .await
        .expect("checkout");
    let attempt = h.mock.attempt_by_qr(s(&reply, "qr_text"));
    h.client
        .cancel(&request(&[("attempt_id", s(&reply, "attempt_id"))]))
        .await
        .expect("cancel");
    assert_eq!(h.mock.state().count(Route::Cancel), 1);
    let closed = h
        .mock
        .state()
        .attempts
        .iter()
        .find(|a| a.id == attempt.id)
        .map(|a| a.status.clone());
    assert_eq!(closed.as_deref(), Some("500_FAIL"), "closed at MQ-Pay");

    // The customer pays just as the cashier cancels: MQ-Pay refuses the cancel, and the sale
    // settles instead.
    let paid = h
        .client
        .checkout(&order("mq-cancel-paid", "1000"))
        .await
        .expect("checkout");
    let attempt = h.mock.attempt_by_qr(s(&paid, "qr_text"));
    h.mock.pay_on_cancel(&attempt.id, "1000");
    let _ = h
        .client
        .cancel(&request(&[("attempt_id", s(&paid, "attempt_id"))]))
        .await;
    wait_transaction(&mut signals, s(&paid, "transaction_id"), "304_SETTLED").await;
    let view = h
        .client
        .get_transaction(s(&paid, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "paid"), "1000.0000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqpay_refunds_are_partial_capped_and_never_made_twice() {
    let h = MqPayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("mq-refund", "4200"))
        .await
        .expect("checkout");
    let attempt = h.mock.attempt_by_qr(s(&reply, "qr_text"));
    h.mock.pay(&attempt.id, "4200");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let attempt_id = s(&reply, "attempt_id");

    let refund = h
        .client
        .refund(&request(&[("attempt_id", attempt_id), ("amount", "1000")]))
        .await
        .expect("a partial refund");
    assert_eq!(s(&refund, "status"), "302_SUCCESS", "{refund}");

    // The answer to the next refund is lost after MQ-Pay made it (the mock ignores
    // Idempotency-Key): qrpayd finds the refund it made instead of making another.
    h.mock.fail_next(Route::Refund, 1, Failure::LoseAnswer);
    let lost = h
        .client
        .refund(&request(&[
            ("attempt_id", attempt_id),
            ("amount", "500"),
            ("request_id", "mq-refund-2"),
        ]))
        .await
        .expect("the refund is recorded, its outcome unknown");
    wait_attempt(&mut signals, s(&lost, "refund_attempt_id"), "302_SUCCESS").await;
    assert_eq!(
        h.mock.state().refunds_of(&attempt.id).len(),
        2,
        "two refunds at MQ-Pay, not three"
    );

    // The back office refunded 2000 itself: MQ-Pay refuses what qrpayd still thinks remains,
    // with qrpayd's own error name.
    h.mock.refund_elsewhere(&attempt.id, "2000");
    let error = h
        .client
        .refund(&request(&[("attempt_id", attempt_id), ("amount", "1000")]))
        .await
        .expect_err("more than remains at MQ-Pay");
    assert_eq!(error_name(&error), "RefundExceedsRemaining", "{error}");
    assert_eq!(h.mock.state().refunds_of(&attempt.id).len(), 3);
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "refunded"), "1500.0000");
}

/// The checkout's answer is lost after MQ-Pay made the attempt, and the daemon stops before it
/// could look: after the restart it finds and adopts that attempt. One MQ-Pay transaction, one
/// attempt, and the QR that MQ-Pay made is the one on screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_whose_answer_was_lost_is_adopted_after_a_restart() {
    let mut h = MqPayHarness::start().await;
    h.mock.fail_next(Route::Checkout, 1, Failure::LoseAnswer);
    // The first look-up fails too, so the restart is likely to be what finds it.
    h.mock
        .fail_next(Route::ListTransactions, 1, Failure::Status500);
    let error = h
        .client
        .checkout(&order("mq-lost", "1000"))
        .await
        .expect_err("the answer was lost");
    assert_eq!(error_name(&error), "ProviderUnavailable");
    h.restart().await;
    let mut signals = h.client.watch().await.expect("watch");
    let view = h
        .client
        .list_transactions(&request(&[("source_id", "mq-lost")]))
        .await
        .expect("list");
    let transaction = &view.as_array().expect("rows")[0];
    let transaction_id = s(transaction, "transaction_id").to_owned();
    let view = h
        .client
        .get_transaction(&transaction_id)
        .await
        .expect("get");
    let attempt_id = s(&view["attempts"][0], "id").to_owned();
    attempt_reaches(
        &h.client,
        &mut signals,
        &transaction_id,
        &attempt_id,
        "204_SENT",
    )
    .await;
    {
        let state = h.mock.state();
        assert_eq!(state.transactions.len(), 1, "one MQ-Pay transaction");
        assert_eq!(state.payments().len(), 1, "one MQ-Pay attempt");
    }
    let view = h
        .client
        .get_transaction(&transaction_id)
        .await
        .expect("get");
    let on_screen = s(&view["attempts"][0], "qr_text").to_owned();
    let made = h.mock.attempt_by_qr(&on_screen);
    h.mock.pay(&made.id, "1000");
    wait_transaction(&mut signals, &transaction_id, "304_SETTLED").await;
    assert!(h.state_dir().exists());
}

/// A lost checkout whose attempt MQ-Pay lists without its QR: nobody can have seen that QR,
/// so it is cancelled at MQ-Pay and the till starts again in the same MQ-Pay transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_checkout_without_its_qr_is_cancelled_and_made_again_in_the_same_sale() {
    let h = MqPayHarness::start().await;
    h.mock.no_qr_on_attempts();
    h.mock.bare_lists();
    let mut signals = h.client.watch().await.expect("watch");
    h.mock.fail_next(Route::Checkout, 1, Failure::Malformed);
    let error = h
        .client
        .checkout(&order("mq-unshown", "1000"))
        .await
        .expect_err("the answer was unusable");
    assert_eq!(error_name(&error), "ProviderUnavailable");
    let failed = wait_for(&mut signals, "the attempt given up", |s| {
        s.name == "AttemptChanged" && s.args["status"] == "500_FAIL"
    })
    .await;
    h.mock
        .wait_for("the unshown attempt cancelled", |s| {
            s.count(Route::Cancel) == 1
        })
        .await;
    let reply = h
        .client
        .checkout(&order("mq-unshown", "1000"))
        .await
        .expect("checkout again");
    assert_eq!(reply["transaction_id"], failed.args["transaction_id"]);
    let state = h.mock.state();
    assert_eq!(state.transactions.len(), 1, "one MQ-Pay transaction");
    assert_eq!(state.payments().len(), 2);
    assert_eq!(
        state.payments()[0].status,
        "500_FAIL",
        "the unshown one is closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqpay_outages_and_broken_answers_delay_but_never_lose_a_payment() {
    let h = MqPayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("mq-outage", "1000"))
        .await
        .expect("checkout");
    let attempt = h.mock.attempt_by_qr(s(&reply, "qr_text"));
    h.mock.fail_next(Route::Verify, 1, Failure::Status500);
    h.mock.fail_next(Route::ListResults, 1, Failure::Malformed);
    h.mock.pay(&attempt.id, "1000");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(1));
    let state = h.mock.state();
    let seen: Vec<(Route, u16)> = state.seen.iter().map(|s| (s.route, s.status)).collect();
    assert!(seen.contains(&(Route::Verify, 500)), "{seen:?}");
    assert!(
        seen.iter()
            .filter(|(route, _)| *route == Route::ListResults)
            .count()
            >= 2,
        "the broken list of results, then a good one: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signing_secret_is_named_in_the_error() {
    let h = MqPayHarness::start_signed_with("not-the-secret").await;
    let error = h
        .client
        .checkout(&order("mq-badsig", "1000"))
        .await
        .expect_err("MQ-Pay refuses the signature");
    assert_eq!(error_name(&error), "ProviderRejected", "{error}");
    let text = error.to_string();
    assert!(text.contains("providers.mqpay.signing_secret"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
    assert!(!text.contains(API_KEY), "{text}");
    assert_eq!(h.mock.state().bad_signatures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqpay_payments_are_reconciled_with_the_local_records() {
    let h = MqPayHarness::start_unsigned().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&partial("mq-rec", "3000"))
        .await
        .expect("checkout");
    let attempt = h.mock.attempt_by_qr(s(&reply, "qr_text"));
    let first = h.mock.pay(&attempt.id, "1000");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "300_PARTIAL").await;
    let second = h.mock.pay(&attempt.id, "2000");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let day = {
        let state = h.mock.state();
        state.results[0].paid_at[..10].to_owned()
    };
    let mut request = Request::new();
    request.insert("provider".into(), Arg::from("mqpay"));
    request.insert("date".into(), Arg::from(day.as_str()));
    let rows = h.client.reconcile(&request).await.expect("reconcile");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (payment_id, amount) in [(&first, "1000.0000"), (&second, "2000.0000")] {
        let row = rows
            .iter()
            .find(|r| r["payment_id"] == payment_id.as_str())
            .unwrap_or_else(|| panic!("a row for {payment_id} in {rows:?}"));
        assert_eq!(row["verdict"], "matched", "{row}");
        assert_eq!(row["provider_amount"], amount, "{row}");
        assert_eq!(row["attempt_id"], reply["attempt_id"], "{row}");
    }
}

/// `[upstream]` and `[providers.mqpay]` are the same MQ-Pay: a sale paid partly in cash (synced
/// at once), then through the gateway, reaches the back office once. The sync keys the sale
/// by the source the gateway's checkout sends, so the checkout finds it; from then on the sync
/// only patches it, and sends neither the gateway's attempt nor its payment, which MQ-Pay made
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_paid_through_the_gateway_reaches_the_back_office_once() {
    let h = MqPayHarness::start_shared().await;
    let (mock, client) = (&h.mock, &h.client);
    let mut signals = client.watch().await.expect("watch");

    let item = |description: &str, quantity: &str, unit_price: &str| {
        [
            ("description", description),
            ("quantity", quantity),
            ("unit_price", unit_price),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<std::collections::BTreeMap<String, String>>()
    };
    // First cash, then the gateway's QR for the rest.
    let cash = with(
        with(
            with(
                order("mq-synced", "3000"),
                "source_uid",
                Arg::from("ORD-42"),
            ),
            "items",
            Arg::Dicts(vec![item("Tea", "2", "1000"), item("Bun", "1", "1000")]),
        ),
        "provider",
        Arg::from("system"),
    );
    let cash = client.checkout(&cash).await.expect("cash attempt");
    let transaction_id = s(&cash, "transaction_id").to_owned();
    client
        .confirm_system_payment(&request(&[
            ("attempt_id", s(&cash, "attempt_id")),
            ("tendered", "1000"),
        ]))
        .await
        .expect("cash");
    wait_transaction(&mut signals, &transaction_id, "300_PARTIAL").await;
    let reply = client
        .checkout(&order("mq-synced", "3000"))
        .await
        .expect("the QR for the rest");
    assert_eq!(s(&reply, "provider"), "mqpay");
    let attempt = mock.attempt_by_qr(s(&reply, "qr_text"));
    mock.pay(&attempt.id, "2000");
    wait_transaction(&mut signals, &transaction_id, "304_SETTLED").await;
    synced(client, &mut signals).await;

    let state = mock.state();
    assert_eq!(
        state.transactions.len(),
        1,
        "one sale at MQ-Pay: {:?}",
        state.transactions
    );
    let upstream_id = state.transactions[0].id.clone();
    let created: Vec<(&str, &Value)> = state
        .created
        .iter()
        .map(|(collection, record)| (collection.as_str(), record))
        .collect();
    assert_eq!(
        state.payments()[0].transaction_id,
        upstream_id,
        "the gateway's checkout found the sale the sync sent first"
    );
    let items: Vec<&&Value> = created
        .iter()
        .filter(|(c, _)| *c == "/transaction-items")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(items.len(), 2, "{created:?}");
    assert!(
        items
            .iter()
            .all(|i| i["transactionId"] == upstream_id.as_str())
    );
    let attempts: Vec<&&Value> = created
        .iter()
        .filter(|(c, _)| *c == "/payment-attempts")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(attempts.len(), 1, "only the cash attempt: {created:?}");
    assert_eq!(attempts[0]["provider"], "system");
    assert_eq!(attempts[0]["transactionId"], upstream_id.as_str());
    let results: Vec<&&Value> = created
        .iter()
        .filter(|(c, _)| *c == "/payment-results")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(results.len(), 1, "only the cash payment: {created:?}");
    assert_eq!(state.results.len(), 1, "the gateway's payment, once");
    let patch = state
        .patched
        .iter()
        .rev()
        .find(|(path, _)| *path == format!("/transactions/{upstream_id}"))
        .map(|(_, fields)| fields.clone())
        .expect("MQ-Pay's transaction patched");
    assert!(
        patch["number"]
            .as_str()
            .is_some_and(|n| n.starts_with("TXN")),
        "{patch}"
    );
    assert_eq!(patch["sourceUid"], "ORD-42");
    assert_eq!(patch["terminalId"], "TEST-01");
    assert_eq!(state.bad_signatures, 0);
}

/// The same, for a sale paid through the gateway alone: one transaction at MQ-Pay, with the
/// items the sync added and the number it patched; no attempt or payment sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_sale_is_patched_not_created_again() {
    let h = MqPayHarness::start_shared().await;
    let mut signals = h.client.watch().await.expect("watch");
    let item = [
        ("description", "Tea"),
        ("quantity", "3"),
        ("unit_price", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let reply = h
        .client
        .checkout(&with(
            order("mq-gateway-only", "3000"),
            "items",
            Arg::Dicts(vec![item]),
        ))
        .await
        .expect("checkout");
    let attempt = h.mock.attempt_by_qr(s(&reply, "qr_text"));
    h.mock.pay(&attempt.id, "3000");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    synced(&h.client, &mut signals).await;

    let state = h.mock.state();
    assert_eq!(state.transactions.len(), 1, "{:?}", state.transactions);
    let upstream_id = state.transactions[0].id.clone();
    assert_eq!(attempt.transaction_id, upstream_id);
    let created = |collection: &str| {
        state
            .created
            .iter()
            .filter(|(c, _)| c == collection)
            .map(|(_, record)| record.clone())
            .collect::<Vec<Value>>()
    };
    assert!(
        created("/payment-attempts").is_empty(),
        "{:?}",
        state.created
    );
    assert!(
        created("/payment-results").is_empty(),
        "{:?}",
        state.created
    );
    let items = created("/transaction-items");
    assert_eq!(items.len(), 1, "{:?}", state.created);
    assert_eq!(items[0]["transactionId"], upstream_id.as_str());
    assert!(
        state.patched.iter().any(
            |(path, fields)| *path == format!("/transactions/{upstream_id}")
                && fields["number"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("TXN"))
        ),
        "{:?}",
        state.patched
    );
}
