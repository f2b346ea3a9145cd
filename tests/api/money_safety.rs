//! Regression tests for the ways a payment could be lost, taken twice or refunded twice that a
//! review of the engine, a fuzzing run and concurrency races found. Each is named after the bug
//! it pins down, and failed before its fix.

use futures_util::future::join_all;
use serde_json::Value;

use qrpayd::config::Config;
use qrpayd::daemon::Daemon;
use qrpayd::dbus::client::{Arg, Client, Request};
use qrpayd::dbus::{BusAddress, PrivateBus};
use rust_decimal::Decimal;

use crate::appotapay_ipn::{free_port, ipn_body, post_ipn};
use crate::harness::*;
use crate::mock_appotapay::{
    API_KEY, MockAppotapay, MockStatus, PARTNER_CODE, Route as ApRoute, SECRET_KEY, TERMINAL_ID,
};
use crate::mock_qpay::{Failure, Route};
use crate::qpay::QpayHarness;
use crate::vietqr::{VIETQR, vnd_order};

/// The attempt of `kind` (`300_REFUND_PAYMENT`, ...) among a transaction's attempts.
fn attempts_of_type<'a>(view: &'a Value, kind: &str) -> Vec<&'a Value> {
    view["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter(|a| a["type"] == kind)
        .collect()
}

fn attempt_by_id<'a>(view: &'a Value, id: &str) -> &'a Value {
    view["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("attempt {id} in {view}"))
}

/// A simulator QR expires while the simulator is unreachable (so it cannot be closed), the
/// cashier takes cash for the order, then the customer pays the old QR after all. Returns the
/// transaction and the QR attempt.
async fn cash_then_late_qr_money(
    h: &Harness,
    signals: &mut (impl futures_util::Stream<Item = qrpayd::dbus::client::Signal> + Unpin),
    source_id: &str,
) -> (String, String) {
    let reply = h
        .client
        .checkout(&with(
            order(source_id, "5000"),
            "expires_in_ms",
            Arg::U64(1000),
        ))
        .await
        .expect("checkout");
    let (transaction_id, attempt_id) = (
        s(&reply, "transaction_id").to_owned(),
        s(&reply, "attempt_id").to_owned(),
    );
    h.client.simulate_offline(true).await.expect("offline");
    wait_attempt(signals, &attempt_id, "501_EXPIRED").await;
    let cash = h
        .client
        .confirm_system_payment(&pairs(&[
            ("transaction_id", &transaction_id),
            ("tendered", "5000"),
        ]))
        .await
        .expect("a shop cannot stop selling: the cash is taken");
    assert_eq!(s(&cash, "transaction_status"), "304_SETTLED");
    h.client.simulate_offline(false).await.expect("online");
    // The customer pays the QR that could not be closed (this also wakes its supervisor).
    h.client
        .simulate_pay(&attempt_id, "")
        .await
        .expect("the old QR is still payable at the provider");
    wait_for(signals, "the overpayment", |sig| {
        sig.name == "TransactionChanged"
            && sig.args["transaction_id"] == transaction_id.as_str()
            && sig.args["details"]["overpaid"] == "5000.0000"
    })
    .await;
    (transaction_id, attempt_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_money_on_a_qr_that_could_not_be_closed_after_cash_is_an_overpayment_refunded_automatically()
 {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let (transaction_id, attempt_id) = cash_then_late_qr_money(&h, &mut signals, "ms-1").await;
    let refund = wait_for(&mut signals, "the automatic refund", |sig| {
        sig.name == "AttemptChanged"
            && sig.args["details"]["type"] == "300_REFUND_PAYMENT"
            && sig.args["details"]["parent_id"] == attempt_id.as_str()
            && sig.args["status"] == "302_SUCCESS"
    })
    .await;
    assert_eq!(refund.args["details"]["amount"], "5000.0000");
    let view = h
        .client
        .get_transaction(&transaction_id)
        .await
        .expect("get");
    assert_eq!(s(&view, "transaction_status"), "304_SETTLED");
    assert_eq!(s(&view, "paid"), "10000.0000", "both payments are recorded");
    assert_eq!(s(&view, "overpaid"), "5000.0000");
    assert_eq!(s(&view, "refunded"), "5000.0000");
    assert_eq!(
        attempt_by_id(&view, &attempt_id)["status"],
        "302_SUCCESS",
        "late money makes the expired attempt a success"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overpayment_is_listed_for_the_merchant_when_automatic_refunds_are_off() {
    let h = Harness::start_configured("auto_refund_overpayment = false", "").await;
    let mut signals = h.client.watch().await.expect("watch");
    let (transaction_id, _) = cash_then_late_qr_money(&h, &mut signals, "ms-2").await;
    h.client
        .checkout(&order("ms-2-other", "100"))
        .await
        .expect("another order");
    let listed = h
        .client
        .list_transactions(&with(Request::new(), "overpaid", Arg::Bool(true)))
        .await
        .expect("list");
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["transaction_id"], transaction_id.as_str());
    assert_eq!(listed[0]["overpaid"], "5000.0000");
    let view = h
        .client
        .get_transaction(&transaction_id)
        .await
        .expect("get");
    assert!(attempts_of_type(&view, "300_REFUND_PAYMENT").is_empty());
    assert_eq!(s(&view, "refunded"), "0.0000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_retried_while_the_provider_is_offline_refunds_once() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("ms-r", "3000"))
        .await
        .expect("checkout");
    let (transaction_id, attempt_id) = (s(&reply, "transaction_id"), s(&reply, "attempt_id"));
    h.client.simulate_pay(attempt_id, "").await.expect("pay");
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;
    h.client.simulate_offline(true).await.expect("offline");

    // The outcome is unknown: a reply, not an error the till would retry.
    let first = h
        .client
        .refund(&pairs(&[("attempt_id", attempt_id), ("amount", "1000")]))
        .await
        .expect("recorded, outcome unknown");
    assert_eq!(s(&first, "status"), "204_SENT");
    let repeated = h
        .client
        .refund(&pairs(&[("attempt_id", attempt_id), ("amount", "1000")]))
        .await
        .expect_err("a repeat of a pending refund without request_id");
    assert_eq!(error_name(&repeated), "InvalidTransactionStatus");
    assert!(
        repeated
            .to_string()
            .contains(s(&first, "refund_attempt_code")),
        "{repeated}"
    );

    let keyed = pairs(&[
        ("attempt_id", attempt_id),
        ("amount", "500"),
        ("request_id", "till-77"),
    ]);
    let k1 = h.client.refund(&keyed).await.expect("keyed refund");
    let k2 = h
        .client
        .refund(&keyed)
        .await
        .expect("the same request again");
    assert_eq!(s(&k1, "refund_attempt_id"), s(&k2, "refund_attempt_id"));
    let other = h
        .client
        .refund(&pairs(&[
            ("attempt_id", attempt_id),
            ("amount", "700"),
            ("request_id", "till-77"),
        ]))
        .await
        .expect_err("another refund under the same request_id");
    assert_eq!(error_name(&other), "InvalidArgument");

    h.client.simulate_offline(false).await.expect("online");
    for refund in [&first, &k1] {
        wait_attempt(&mut signals, s(refund, "refund_attempt_id"), "302_SUCCESS").await;
    }
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "refunded"), "1500.0000", "refunded once each");
    assert_eq!(attempts_of_type(&view, "300_REFUND_PAYMENT").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_the_provider_does_not_know_fails_and_releases_its_amount() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("ms-nf", "1000"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    let (transaction_id, attempt_id) = (s(&reply, "transaction_id"), s(&reply, "attempt_id"));
    h.mock.pay(&invoice.invoice_id, "1000");
    h.client.verify(attempt_id).await.expect("verify");
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;

    h.mock
        .fail_next(Route::VoidPayment, 1, Failure::NotFound("PAYMENT_NOTFOUND"));
    let refused = h
        .client
        .refund(&pairs(&[("attempt_id", attempt_id), ("amount", "1000")]))
        .await
        .expect_err("QPay does not know the payment");
    assert_eq!(error_name(&refused), "ProviderRejected", "{refused}");
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    let refunds = attempts_of_type(&view, "300_REFUND_PAYMENT");
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        refunds[0]["status"], "500_FAIL",
        "final, not retried for ever"
    );

    let again = h
        .client
        .refund(&pairs(&[("attempt_id", attempt_id), ("amount", "1000")]))
        .await
        .expect("the failed refund's amount is free again");
    assert_eq!(s(&again, "status"), "302_SUCCESS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_on_a_cancelled_attempt_makes_it_a_success_that_can_be_refunded() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("ms-fail", "1000"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    let (transaction_id, attempt_id) = (s(&reply, "transaction_id"), s(&reply, "attempt_id"));
    h.client
        .cancel(&pairs(&[("attempt_id", attempt_id)]))
        .await
        .expect("cancel");
    h.client
        .confirm_system_payment(&pairs(&[
            ("transaction_id", transaction_id),
            ("tendered", "1000"),
        ]))
        .await
        .expect("paid in cash instead");
    // QPay took the money after all (its cancel raced a payment).
    h.mock.pay(&invoice.invoice_id, "1000");
    let verified = h.client.verify(attempt_id).await.expect("verify");
    assert_eq!(s(&verified, "attempt_status"), "302_SUCCESS");
    assert_eq!(s(&verified, "paid"), "1000.0000");
    let refund = wait_for(&mut signals, "the automatic refund", |sig| {
        sig.name == "AttemptChanged"
            && sig.args["details"]["type"] == "300_REFUND_PAYMENT"
            && sig.args["status"] == "302_SUCCESS"
    })
    .await;
    assert_eq!(refund.args["details"]["parent_id"], attempt_id);
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "overpaid"), "1000.0000");
    assert_eq!(s(&view, "refunded"), "1000.0000");
    // A repeated Checkout of the settled order answers it, not an internal error.
    let repeated = h
        .client
        .checkout(&order("ms-fail", "1000"))
        .await
        .expect("repeated checkout");
    assert_eq!(s(&repeated, "transaction_status"), "304_SETTLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_the_provider_no_longer_has_is_closed_instead_of_retried_for_ever() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    h.mock.fail_next(
        Route::CancelInvoice,
        1000,
        Failure::NotFound("INVOICE_NOTFOUND"),
    );
    let reply = h
        .client
        .checkout(&with(
            order("ms-gone", "1000"),
            "expires_in_ms",
            Arg::U64(1000),
        ))
        .await
        .expect("checkout");
    wait_attempt(&mut signals, s(&reply, "attempt_id"), "501_EXPIRED").await;
    wait_open_attempts(&mut signals, 0).await;
    assert_eq!(
        h.mock.count(Route::CancelInvoice),
        1,
        "closed on the first 404"
    );
}

/// The AppotaPay section of a daemon that polls once a minute, so that only an IPN makes it
/// look again within a test.
fn appotapay_section(mock: &MockAppotapay, port: u16) -> String {
    format!(
        "\n[providers.appotapay]\nbase_url = \"{}\"\npartner_code = \"{PARTNER_CODE}\"\napi_key = \"{API_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\nterminal_id = \"{TERMINAL_ID}\"\npoll_interval_ms = 60000\nipn_listener = true\nipn_listen_address = \"127.0.0.1:{port}\"\n",
        mock.base_url
    )
}

fn vnd_via_appotapay(source_id: &str, expires_in_ms: u64) -> Request {
    let request = with(order(source_id, "150000"), "currency", Arg::from("VND"));
    let request = with(request, "provider", Arg::from("appotapay"));
    with(request, "expires_in_ms", Arg::U64(expires_in_ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appotapay_qr_paid_after_it_expired_is_recorded_from_its_ipn() {
    let mock = MockAppotapay::start().await;
    let port = free_port();
    let h = Harness::start_with(&appotapay_section(&mock, port)).await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&vnd_via_appotapay("ms-ap-late", 1000))
        .await
        .expect("checkout");
    let (transaction_id, attempt_id) = (s(&reply, "transaction_id"), s(&reply, "attempt_id"));
    wait_attempt(&mut signals, attempt_id, "501_EXPIRED").await;
    // AppotaPay cannot close the order: it stays payable, and so it stays counted.
    assert_eq!(h.client.status().await.expect("status")["open_attempts"], 1);

    let reference = mock.state().orders[0].reference.clone();
    mock.set_status(&reference, MockStatus::Success);
    let (status, body) = post_ipn(port, &ipn_body(&reference, SECRET_KEY)).await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, r#"{"status":"ok"}"#);
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "paid"), "150000.0000");
    assert_eq!(attempt_by_id(&view, attempt_id)["status"], "302_SUCCESS");
    wait_open_attempts(&mut signals, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_the_provider_cannot_close_is_watched_only_for_the_late_payment_window() {
    let mock = MockAppotapay::start().await;
    let port = free_port();
    let h = Harness::start_configured(
        "late_payment_watch_ms = 1000",
        &appotapay_section(&mock, port),
    )
    .await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&vnd_via_appotapay("ms-ap-window", 1000))
        .await
        .expect("checkout");
    wait_attempt(&mut signals, s(&reply, "attempt_id"), "501_EXPIRED").await;
    wait_open_attempts(&mut signals, 0).await;
    assert!(
        mock.count(ApRoute::OrderStatus) >= 2,
        "checked before it was let go"
    );
}

/// Sends Cancel and ConfirmSystemPayment for one cashier-confirmed attempt at the same time,
/// `rounds` times: exactly one of them wins each time, and the records agree with it.
async fn race_cancel_and_confirm(h: &Harness, rounds: usize, checkout: impl Fn(usize) -> Request) {
    for i in 0..rounds {
        let reply = h.client.checkout(&checkout(i)).await.expect("checkout");
        let attempt_id = s(&reply, "attempt_id");
        let amount = s(&reply, "amount");
        let cancel = pairs(&[("attempt_id", attempt_id)]);
        let confirm = pairs(&[("attempt_id", attempt_id), ("tendered", amount)]);
        let (cancelled, confirmed) = tokio::join!(
            h.client.cancel(&cancel),
            h.client.confirm_system_payment(&confirm)
        );
        assert!(
            cancelled.is_ok() != confirmed.is_ok(),
            "round {i}: exactly one wins: {cancelled:?} / {confirmed:?}"
        );
        let view = h
            .client
            .get_transaction(s(&reply, "transaction_id"))
            .await
            .expect("get");
        let attempt = attempt_by_id(&view, attempt_id);
        let cancel_succeeded = attempts_of_type(&view, "200_CANCEL_PAYMENT")
            .iter()
            .any(|c| c["status"] == "302_SUCCESS");
        let loser = match (&cancelled, &confirmed) {
            (Err(loser), Ok(_)) => {
                assert_eq!(attempt["status"], "302_SUCCESS", "round {i}");
                assert!(
                    !cancel_succeeded,
                    "round {i}: a paid attempt is not cancelled"
                );
                loser
            }
            (Ok(_), Err(loser)) => {
                assert_eq!(attempt["status"], "500_FAIL", "round {i}");
                assert!(cancel_succeeded, "round {i}");
                assert_eq!(s(&view, "paid"), "0.0000", "round {i}");
                loser
            }
            _ => unreachable!("checked above"),
        };
        assert_eq!(error_name(loser), "InvalidTransactionStatus", "round {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_cash_confirmation_of_one_attempt_never_both_succeed() {
    let h = Harness::start().await;
    race_cancel_and_confirm(&h, 50, |i| {
        with(
            order(&format!("race-{i}"), "1000"),
            "provider",
            Arg::from("system"),
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_confirmation_of_one_vietqr_transfer_never_both_succeed() {
    let h = Harness::start_with(VIETQR).await;
    race_cancel_and_confirm(&h, 20, |i| vnd_order(&format!("race-vn-{i}"), "20000")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_partial_cash_confirmations_are_signalled_in_commit_order() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    for i in 0..10 {
        let reply = h
            .client
            .checkout(&with(
                order(&format!("order-{i}"), "9000"),
                "provider",
                Arg::from("system"),
            ))
            .await
            .expect("checkout");
        let transaction_id = s(&reply, "transaction_id").to_owned();
        h.client
            .cancel(&pairs(&[("attempt_id", s(&reply, "attempt_id"))]))
            .await
            .expect("the cashier takes the cash by transaction instead");
        let confirm = pairs(&[("transaction_id", &transaction_id), ("tendered", "3000")]);
        let confirms = join_all((0..3).map(|_| h.client.confirm_system_payment(&confirm))).await;
        assert!(confirms.iter().all(Result::is_ok), "{confirms:?}");
        // Every change of the transaction, in arrival order, up to its settlement.
        let mut seen: Vec<(u64, Decimal)> = Vec::new();
        while seen.last().map(|(_, paid)| *paid) != Some(Decimal::from(9000)) {
            let signal = wait_for(&mut signals, "a change of the transaction", |sig| {
                sig.name == "TransactionChanged" && sig.args["transaction_id"] == transaction_id
            })
            .await;
            let details = &signal.args["details"];
            seen.push((
                details["seq"].as_u64().expect("seq"),
                details["paid"]
                    .as_str()
                    .and_then(|paid| Decimal::from_str_exact(paid).ok())
                    .expect("paid"),
            ));
        }
        assert!(
            seen.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "order {i}: signals out of commit order: {seen:?}"
        );
        let view = h
            .client
            .get_transaction(&transaction_id)
            .await
            .expect("get");
        assert_eq!(s(&view, "transaction_status"), "304_SETTLED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_change_that_leaves_its_transaction_unchanged_does_not_republish_it() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&with(
            order("ms-quiet", "700"),
            "expires_in_ms",
            Arg::U64(1000),
        ))
        .await
        .expect("checkout");
    let transaction_id = s(&reply, "transaction_id");
    let attempt_id = s(&reply, "attempt_id");
    let mut transaction_changes = 0;
    let mut expired = false;
    // The close is the first `OpenAttempts` 0 after the attempt expired: the daemon's start
    // publishes an `OpenAttempts` 0 of its own (resume's write), which a busy machine may
    // deliver after the till subscribed.
    wait_for(&mut signals, "the expired attempt's close", |sig| {
        if sig.name == "TransactionChanged" && sig.args["transaction_id"] == transaction_id {
            transaction_changes += 1;
        }
        if sig.name == "AttemptChanged"
            && sig.args["attempt_id"] == attempt_id
            && sig.args["status"] == "501_EXPIRED"
        {
            expired = true;
        }
        expired && sig.name == "PropertiesChanged" && sig.args["changed"]["OpenAttempts"] == 0
    })
    .await;
    assert_eq!(
        transaction_changes, 1,
        "only its creation changed the transaction; the attempt's send, expiry and close did not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_naming_another_provider_than_the_open_attempt_is_refused_or_replaces_it() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("ms-switch", "2500"))
        .await
        .expect("QR checkout");
    let cash = with(order("ms-switch", "2500"), "provider", Arg::from("system"));
    let refused = h
        .client
        .checkout(&cash)
        .await
        .expect_err("a QR attempt is open");
    assert_eq!(error_name(&refused), "InvalidTransactionStatus");
    let message = refused.to_string();
    assert!(message.contains(s(&reply, "attempt_code")), "{message}");
    assert!(message.contains("replace_open"), "{message}");

    let replaced = h
        .client
        .checkout(&with(cash, "replace_open", Arg::Bool(true)))
        .await
        .expect("replaced");
    assert_eq!(s(&replaced, "provider"), "system");
    assert_ne!(s(&replaced, "attempt_id"), s(&reply, "attempt_id"));
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    let old = attempt_by_id(&view, s(&reply, "attempt_id"));
    assert_eq!(old["status"], "500_FAIL");
    assert_eq!(old["failure_code"], "CANCELLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_neither_cash_attempts_nor_those_of_a_removed_provider() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bus = PrivateBus::start(dir.path()).expect("private bus");
    let state = dir.path().join("state");
    let path = dir.path().join("qrpayd.toml");
    let with_simulator = config_text(&state, bus.address(), "");
    {
        let config = Config::parse(&with_simulator, &path).expect("config");
        let daemon = Daemon::start(&config).await.expect("daemon starts");
        let client = Client::connect(&BusAddress::parse(bus.address()))
            .await
            .expect("client");
        client
            .checkout(&order("ms-qr", "1000"))
            .await
            .expect("a QR left open");
        client
            .checkout(&with(
                order("ms-cash", "1000"),
                "provider",
                Arg::from("system"),
            ))
            .await
            .expect("a cash attempt left open");
        drop(daemon);
    }
    // The simulator is removed from the config.
    let without = daemon_sections(&state, bus.address(), Some("system"));
    let config = Config::parse(&without, &path).expect("config");
    let daemon = Daemon::start(&config).await.expect("daemon restarts");
    let client = ready_client(&bus).await;
    let status = client.status().await.expect("status");
    assert_eq!(status["orphaned_attempts"], 1, "{status}");
    assert_eq!(status["open_attempts"], 2, "both may still take money");
    assert_eq!(
        daemon.engine.handles_in_memory(),
        0,
        "no supervisor for the cash attempt nor the orphan"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_unknown_for_too_long_is_reported_to_the_till() {
    let h = Harness::start_configured("unknown_outcome_alert_after_ms = 1000", "").await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("ms-alert", "1000"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id");
    h.client.simulate_pay(attempt_id, "").await.expect("pay");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    h.client.simulate_offline(true).await.expect("offline");
    let refund = h
        .client
        .refund(&pairs(&[("attempt_id", attempt_id), ("amount", "1000")]))
        .await
        .expect("recorded");
    let alert = wait_for(&mut signals, "AttemptUnresolved", |sig| {
        sig.name == "AttemptUnresolved"
    })
    .await;
    assert_eq!(alert.args["attempt_id"], s(&refund, "refund_attempt_id"));
    assert!(
        alert.args["details"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("offline"))
    );
    assert_eq!(
        h.client.status().await.expect("status")["unresolved_attempts"],
        1
    );
    h.client.simulate_offline(false).await.expect("online");
    wait_attempt(&mut signals, s(&refund, "refund_attempt_id"), "302_SUCCESS").await;
    wait_for(&mut signals, "UnresolvedAttempts 0", |sig| {
        sig.name == "PropertiesChanged" && sig.args["changed"]["UnresolvedAttempts"] == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vietqr_transfer_the_cashier_sees_after_expiry_is_confirmed_as_late_money() {
    let h = Harness::start_with(VIETQR).await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&with(
            vnd_order("ms-vn-late", "20000"),
            "expires_in_ms",
            Arg::U64(1000),
        ))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id");
    wait_attempt(&mut signals, attempt_id, "501_EXPIRED").await;
    let late = h
        .client
        .confirm_system_payment(&pairs(&[("attempt_id", attempt_id), ("tendered", "20000")]))
        .await
        .expect("the transfer arrived after all: the drawer must reconcile");
    assert_eq!(s(&late, "attempt_status"), "302_SUCCESS");
    assert_eq!(s(&late, "transaction_status"), "304_SETTLED");
    assert_eq!(s(&late, "paid"), "20000.0000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_asking_to_wait_never_keeps_a_dead_qr_on_screen_past_its_expiry() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    // Every check is answered "slow down, come back in ten minutes".
    h.mock
        .fail_next(Route::Check, 1000, Failure::Status429("600".to_owned()));
    let reply = h
        .client
        .checkout(&with(
            order("ms-429", "1000"),
            "expires_in_ms",
            Arg::U64(1500),
        ))
        .await
        .expect("checkout");
    let expired = wait_attempt(&mut signals, s(&reply, "attempt_id"), "501_EXPIRED").await;
    assert!(
        expired.args["details"].get("qr_text").is_none(),
        "the QR leaves with the expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_seq_keeps_growing_across_a_daemon_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bus = PrivateBus::start(dir.path()).expect("private bus");
    let path = dir.path().join("qrpayd.toml");
    let text = config_text(&dir.path().join("state"), bus.address(), "");
    let mut last_seq = 0;
    for round in 0..2 {
        let config = Config::parse(&text, &path).expect("config");
        let daemon = Daemon::start(&config).await.expect("daemon starts");
        let client = ready_client(&bus).await;
        let mut signals = client.watch().await.expect("watch");
        let reply = client
            .checkout(&order(&format!("ms-seq-{round}"), "1000"))
            .await
            .expect("checkout");
        let signal = wait_attempt(&mut signals, s(&reply, "attempt_id"), "204_SENT").await;
        let seq = signal.args["details"]["seq"].as_u64().expect("seq");
        assert!(
            seq > last_seq,
            "round {round}: seq {seq} after {last_seq}: a till would discard the news as stale"
        );
        last_seq = seq;
        drop(daemon);
    }
}
