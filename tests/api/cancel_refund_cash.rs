//! Both cancels, the refund rules and cash change.

use qrpayd::dbus::client::{Arg, Request};

use crate::harness::*;

fn request(pairs: &[(&str, &str)]) -> Request {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Arg::from(*v)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_attempt_returns_the_transaction_to_new() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("c-1", "3000"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id");
    let cancel = h
        .client
        .cancel(&request(&[
            ("attempt_id", attempt_id),
            ("reason", "customer changed mind"),
        ]))
        .await
        .expect("cancel");
    assert_eq!(s(&cancel, "transaction_status"), "100_NEW");
    let cancelled = &cancel["cancelled_attempts"][0];
    assert_eq!(cancelled["type"], "200_CANCEL_PAYMENT");
    assert_eq!(cancelled["status"], "302_SUCCESS");
    assert_eq!(cancelled["parent_id"], attempt_id);

    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    let parent = view["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .find(|a| a["id"] == attempt_id)
        .expect("parent");
    assert_eq!(parent["status"], "500_FAIL");
    assert_eq!(parent["failure_code"], "CANCELLED");
    // The invoice is closed at the provider: the customer can no longer pay it.
    let late = h
        .client
        .simulate_pay(attempt_id, "")
        .await
        .expect_err("closed");
    assert_eq!(error_name(&late), "InvalidTransactionStatus");
    // Cancelling again is refused: the attempt is no longer open.
    let again = h
        .client
        .cancel(&request(&[("attempt_id", attempt_id)]))
        .await
        .expect_err("again");
    assert_eq!(error_name(&again), "InvalidTransactionStatus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_transaction_cancels_its_attempts() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("c-2", "3000"))
        .await
        .expect("checkout");
    let transaction_id = s(&reply, "transaction_id");
    let cancel = h
        .client
        .cancel(&request(&[("transaction_id", transaction_id)]))
        .await
        .expect("cancel");
    assert_eq!(s(&cancel, "transaction_status"), "505_CANCELLED");
    assert_eq!(
        cancel["cancelled_attempts"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        cancel["cancelled_attempts"][0]["parent_id"],
        reply["attempt_id"]
    );
    // Every change is queued for the back office: the transaction and its attempt created, the
    // QR sent, the cancel attempt created and done, the payment attempt cancelled, the
    // transaction cancelled.
    assert_eq!(h.client.status().await.expect("status")["pending_sync"], 7);

    // Repeating the cancel is harmless; checking the order out again is refused.
    let again = h
        .client
        .cancel(&request(&[("transaction_id", transaction_id)]))
        .await
        .expect("idempotent");
    assert_eq!(s(&again, "transaction_status"), "505_CANCELLED");
    let checkout = h
        .client
        .checkout(&order("c-2", "3000"))
        .await
        .expect_err("cancelled");
    assert_eq!(error_name(&checkout), "InvalidTransactionStatus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_that_races_a_payment_settles_instead() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("c-3", "3000"))
        .await
        .expect("checkout");
    h.client
        .simulate_pay(s(&reply, "attempt_id"), "")
        .await
        .expect("pay");
    let cancel = h
        .client
        .cancel(&request(&[("attempt_id", s(&reply, "attempt_id"))]))
        .await
        .expect_err("paid first");
    assert_eq!(error_name(&cancel), "InvalidTransactionStatus");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_holding_money_is_refunded_not_cancelled() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&with(
            order("c-4", "3000"),
            "allow_partial",
            Arg::Bool(true),
        ))
        .await
        .expect("checkout");
    h.client
        .simulate_pay(s(&reply, "attempt_id"), "1000")
        .await
        .expect("pay part");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "300_PARTIAL").await;
    let cancel = h
        .client
        .cancel(&request(&[("transaction_id", s(&reply, "transaction_id"))]))
        .await
        .expect_err("holds money");
    assert_eq!(error_name(&cancel), "InvalidTransactionStatus");
    assert!(cancel.to_string().contains("refund"), "{cancel}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_follow_mq_pays_rules() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("r-1", "10000"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id");

    let too_early = h
        .client
        .refund(&request(&[("attempt_id", attempt_id), ("amount", "100")]))
        .await
        .expect_err("not paid yet");
    assert_eq!(error_name(&too_early), "AttemptNotSuccess");

    h.client.simulate_pay(attempt_id, "").await.expect("pay");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;

    let first = h
        .client
        .refund(&request(&[
            ("attempt_id", attempt_id),
            ("amount", "4000"),
            ("reason", "returned a cup"),
        ]))
        .await
        .expect("refund part");
    assert_eq!(s(&first, "type"), "300_REFUND_PAYMENT");
    assert_eq!(s(&first, "status"), "302_SUCCESS");
    assert_eq!(s(&first, "amount"), "4000.0000");
    assert_eq!(s(&first, "parent_id"), attempt_id);

    let too_much = h
        .client
        .refund(&request(&[
            ("attempt_id", attempt_id),
            ("amount", "6000.01"),
        ]))
        .await
        .expect_err("exceeds");
    assert_eq!(error_name(&too_much), "RefundExceedsRemaining");

    h.client
        .refund(&request(&[("attempt_id", attempt_id), ("amount", "6000")]))
        .await
        .expect("refund the rest");
    let nothing_left = h
        .client
        .refund(&request(&[("attempt_id", attempt_id), ("amount", "0.01")]))
        .await
        .expect_err("nothing left");
    assert_eq!(error_name(&nothing_left), "RefundExceedsRemaining");

    let refund_of_refund = h
        .client
        .refund(&request(&[
            ("attempt_id", s(&first, "refund_attempt_id")),
            ("amount", "1"),
        ]))
        .await
        .expect_err("a refund is not a payment");
    assert_eq!(error_name(&refund_of_refund), "AttemptNotSuccess");

    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "refunded"), "10000.0000");
    assert_eq!(s(&view, "transaction_status"), "304_SETTLED");
    // Every change is queued for the back office, in order: the sale (created, sent, paid,
    // settled), then each refund (created, done, the payment and the transaction refunded).
    assert_eq!(h.client.status().await.expect("status")["pending_sync"], 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cash_records_tendered_and_answers_change() {
    let h = Harness::start().await;
    let cash = with(order("cash-1", "12500"), "provider", Arg::from("system"));
    let reply = h.client.checkout(&cash).await.expect("cash checkout");
    assert_eq!(s(&reply, "method"), "200_CASH");
    assert_eq!(s(&reply, "attempt_status"), "100_NEW");
    assert!(reply.get("qr_text").is_none());
    let confirm = h
        .client
        .confirm_system_payment(&request(&[
            ("attempt_id", s(&reply, "attempt_id")),
            ("tendered", "20000"),
            ("note", "cash drawer 1"),
        ]))
        .await
        .expect("confirm");
    assert_eq!(s(&confirm, "transaction_status"), "304_SETTLED");
    assert_eq!(s(&confirm, "attempt_status"), "302_SUCCESS");
    assert_eq!(s(&confirm, "tendered"), "20000.0000");
    assert_eq!(s(&confirm, "change"), "7500.0000");
    assert_eq!(s(&confirm, "paid"), "12500.0000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cash_for_a_transaction_needs_its_qr_attempt_cancelled_first() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("cash-2", "5000"))
        .await
        .expect("checkout");
    let transaction_id = s(&reply, "transaction_id");
    let refused = h
        .client
        .confirm_system_payment(&request(&[
            ("transaction_id", transaction_id),
            ("tendered", "5000"),
        ]))
        .await
        .expect_err("QR still open");
    assert_eq!(error_name(&refused), "InvalidTransactionStatus");

    h.client
        .cancel(&request(&[("attempt_id", s(&reply, "attempt_id"))]))
        .await
        .expect("cancel QR");
    let part = h
        .client
        .confirm_system_payment(&request(&[
            ("transaction_id", transaction_id),
            ("tendered", "2000"),
        ]))
        .await
        .expect("part in cash");
    assert_eq!(s(&part, "transaction_status"), "300_PARTIAL");
    assert_eq!(s(&part, "change"), "0.0000");
    let rest = h
        .client
        .confirm_system_payment(&request(&[
            ("transaction_id", transaction_id),
            ("tendered", "5000"),
        ]))
        .await
        .expect("rest in cash");
    assert_eq!(s(&rest, "transaction_status"), "304_SETTLED");
    assert_eq!(s(&rest, "change"), "2000.0000");
    let more = h
        .client
        .confirm_system_payment(&request(&[
            ("transaction_id", transaction_id),
            ("tendered", "1"),
        ]))
        .await
        .expect_err("settled");
    assert_eq!(error_name(&more), "InvalidTransactionStatus");
}

/// Regression: the daemon's own messages name attempts by code (`ATT000001`), yet every call
/// that takes an attempt id answered "no payment attempt ATT000001" for one. A code is accepted
/// wherever an attempt id is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_taking_an_attempt_id_accepts_the_attempt_code() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let paid = h
        .client
        .checkout(&order("code-1", "5000"))
        .await
        .expect("checkout");
    let code = s(&paid, "attempt_code").to_owned();
    assert!(code.starts_with("ATT"), "{paid}");
    let transaction_id = s(&paid, "transaction_id");
    h.client.simulate_pay(&code, "").await.expect("pay by code");
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;
    let verified = h.client.verify(&code).await.expect("verify by code");
    assert_eq!(s(&verified, "attempt_id"), s(&paid, "attempt_id"));
    assert_eq!(s(&verified, "attempt_status"), "302_SUCCESS");
    let refund = h
        .client
        .refund(&request(&[("attempt_id", &code), ("amount", "1000")]))
        .await
        .expect("refund by code");
    assert_eq!(s(&refund, "parent_id"), s(&paid, "attempt_id"));

    let open = h
        .client
        .checkout(&order("code-2", "3000"))
        .await
        .expect("checkout");
    let cancel = h
        .client
        .cancel(&request(&[("attempt_id", s(&open, "attempt_code"))]))
        .await
        .expect("cancel by code");
    assert_eq!(
        cancel["cancelled_attempts"][0]["parent_id"],
        open["attempt_id"]
    );

    let cash = h
        .client
        .checkout(&with(
            order("code-3", "2000"),
            "provider",
            Arg::from("system"),
        ))
        .await
        .expect("cash checkout");
    let confirmed = h
        .client
        .confirm_system_payment(&request(&[
            ("attempt_id", s(&cash, "attempt_code")),
            ("tendered", "5000"),
        ]))
        .await
        .expect("cash by code");
    assert_eq!(s(&confirmed, "change"), "3000.0000");

    let unknown = h
        .client
        .verify("ATT999999")
        .await
        .expect_err("no such attempt");
    assert_eq!(error_name(&unknown), "PaymentAttemptNotFound");
    assert!(unknown.to_string().contains("ATT999999"), "{unknown}");
}
