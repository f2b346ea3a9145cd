//! Checkout, signals, settlement.

use qrpayd::dbus::client::Arg;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_signals_and_settles() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("order-1", "12500"))
        .await
        .expect("checkout");
    assert_eq!(s(&reply, "transaction_status"), "100_NEW");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    assert_eq!(s(&reply, "total"), "12500.0000");
    assert_eq!(s(&reply, "currency"), "MNT");
    assert_eq!(s(&reply, "transaction_number"), "TXN000001");
    let qr = s(&reply, "qr_text").to_owned();
    qrpayd::emv::validate(&qr).expect("valid EMVCo QR");
    let png = std::path::PathBuf::from(s(&reply, "display_png"));
    assert!(png.exists());
    let transaction_id = s(&reply, "transaction_id").to_owned();
    let attempt_id = s(&reply, "attempt_id").to_owned();

    h.client.simulate_pay(&attempt_id, "").await.expect("pay");
    wait_attempt(&mut signals, &attempt_id, "302_SUCCESS").await;
    let settled = wait_transaction(&mut signals, &transaction_id, "304_SETTLED").await;
    assert_eq!(settled.args["details"]["paid"], "12500.0000");
    // The properties follow: nothing open any more, one event waiting for the back office.
    wait_for(&mut signals, "OpenAttempts = 0", |s| {
        s.name == "PropertiesChanged" && s.args["changed"]["OpenAttempts"] == 0
    })
    .await;

    let view = h
        .client
        .get_transaction(&transaction_id)
        .await
        .expect("get");
    assert_eq!(s(&view, "transaction_status"), "304_SETTLED");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_display_frame_decodes_to_exactly_the_qr_text() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("order-qr", "99.50"))
        .await
        .expect("checkout");
    let image = image::open(s(&reply, "display_png"))
        .expect("frame")
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR on the frame");
    let (_, content) = grids[0].decode().expect("decodes");
    assert_eq!(content, s(&reply, "qr_text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_is_idempotent_on_the_source() {
    let h = Harness::start().await;
    let first = h
        .client
        .checkout(&order("order-2", "5000"))
        .await
        .expect("first");
    let second = h
        .client
        .checkout(&order("order-2", "5000"))
        .await
        .expect("second");
    for key in ["transaction_id", "attempt_id", "qr_text", "expires_at"] {
        assert_eq!(first[key], second[key], "{key}");
    }
    let view = h
        .client
        .get_transaction(s(&first, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(view["attempts"].as_array().map(Vec::len), Some(1));

    let other_amount = h
        .client
        .checkout(&order("order-2", "5001"))
        .await
        .expect_err("other amount");
    assert_eq!(error_name(&other_amount), "DuplicateSource");

    // Once settled, the same checkout answers with the settled transaction: never a second payment.
    let mut signals = h.client.watch().await.expect("watch");
    h.client
        .simulate_pay(s(&first, "attempt_id"), "")
        .await
        .expect("pay");
    wait_transaction(&mut signals, s(&first, "transaction_id"), "304_SETTLED").await;
    let replay = h
        .client
        .checkout(&order("order-2", "5000"))
        .await
        .expect("replay");
    assert_eq!(s(&replay, "transaction_status"), "304_SETTLED");
    assert_eq!(replay["attempt_id"], first["attempt_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_payments_then_the_rest_settle() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&with(
            order("order-3", "12500"),
            "allow_partial",
            Arg::Bool(true),
        ))
        .await
        .expect("checkout");
    let (transaction_id, attempt_id) = (s(&reply, "transaction_id"), s(&reply, "attempt_id"));
    h.client
        .simulate_pay(attempt_id, "5000")
        .await
        .expect("pay part");
    let partial = wait_transaction(&mut signals, transaction_id, "300_PARTIAL").await;
    assert_eq!(partial.args["details"]["paid"], "5000.0000");
    h.client
        .simulate_pay(attempt_id, "")
        .await
        .expect("pay rest");
    let settled = wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;
    assert_eq!(settled.args["details"]["paid"], "12500.0000");
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_attempt_expires_and_the_order_can_be_tried_again() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let request = with(order("order-4", "700"), "expires_in_ms", Arg::U64(1000));
    let reply = h.client.checkout(&request).await.expect("checkout");
    wait_attempt(&mut signals, s(&reply, "attempt_id"), "501_EXPIRED").await;
    // The expired QR counts as open until its invoice is closed at the provider.
    wait_open_attempts(&mut signals, 0).await;
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "transaction_status"), "100_NEW");
    let status = h.client.status().await.expect("status");
    assert_eq!(status["open_attempts"], 0);
    assert_eq!(
        status["pending_sync"], 4,
        "every change is queued for the back office: the transaction and its attempt \
         created, the QR sent, the attempt expired"
    );

    let again = h
        .client
        .checkout(&order("order-4", "700"))
        .await
        .expect("again");
    assert_eq!(again["transaction_id"], reply["transaction_id"]);
    assert_ne!(again["attempt_id"], reply["attempt_id"]);
    assert_eq!(s(&again, "attempt_status"), "204_SENT");
}

/// Money that arrives after expiry, while the provider could not be reached to close the
/// invoice, is found when the daemon closes it, and settles the transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_payment_after_expiry_is_never_lost() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let request = with(order("order-5", "800"), "expires_in_ms", Arg::U64(1000));
    let reply = h.client.checkout(&request).await.expect("checkout");
    let attempt_id = s(&reply, "attempt_id");
    h.client.simulate_offline(true).await.expect("offline");
    wait_attempt(&mut signals, attempt_id, "501_EXPIRED").await;
    // The customer's bank still pays the invoice the daemon could not close.
    h.client
        .simulate_pay(attempt_id, "")
        .await
        .expect("late pay");
    h.client.simulate_offline(false).await.expect("online");
    wait_attempt(&mut signals, attempt_id, "302_SUCCESS").await;
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failure_fails_the_attempt_with_its_code() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("order-6", "900"))
        .await
        .expect("checkout");
    h.client
        .simulate_fail(s(&reply, "attempt_id"))
        .await
        .expect("fail");
    let failed = wait_attempt(&mut signals, s(&reply, "attempt_id"), "500_FAIL").await;
    assert_eq!(failed.args["details"]["failure_code"], "SIMULATED_FAILURE");
    let verify = h
        .client
        .verify(s(&reply, "attempt_id"))
        .await
        .expect("verify");
    assert_eq!(s(&verify, "attempt_status"), "500_FAIL");
    assert_eq!(s(&verify, "provider_code"), "SIMULATED_FAILURE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_reported_and_a_retry_succeeds() {
    let h = Harness::start().await;
    h.client.simulate_offline(true).await.expect("offline");
    let error = h
        .client
        .checkout(&order("order-7", "1000"))
        .await
        .expect_err("offline");
    assert_eq!(error_name(&error), "ProviderUnavailable");
    h.client.simulate_offline(false).await.expect("online");
    let reply = h
        .client
        .checkout(&order("order-7", "1000"))
        .await
        .expect("retry");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    let open: Vec<_> = view["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter(|a| a["status"] == "204_SENT" || a["status"] == "100_NEW")
        .collect();
    assert_eq!(open.len(), 1, "exactly one live attempt: {view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_the_providers_view() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("order-8", "100"))
        .await
        .expect("checkout");
    let verify = h
        .client
        .verify(s(&reply, "attempt_id"))
        .await
        .expect("verify");
    assert_eq!(s(&verify, "attempt_status"), "204_SENT");
    assert_eq!(s(&verify, "provider"), "simulator");
    assert_eq!(s(&verify, "provider_code"), "NEW");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_count_filter_transactions() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    for i in 0..4 {
        h.client
            .checkout(&order(&format!("list-{i}"), "100"))
            .await
            .expect("checkout");
    }
    let paid = h
        .client
        .checkout(&with(
            order("list-paid", "100"),
            "source_type",
            Arg::from("Invoice"),
        ))
        .await
        .expect("checkout");
    h.client
        .simulate_pay(s(&paid, "attempt_id"), "")
        .await
        .expect("pay");
    wait_transaction(&mut signals, s(&paid, "transaction_id"), "304_SETTLED").await;

    let mut settled = qrpayd::dbus::client::Request::new();
    settled.insert("status".into(), Arg::from("304_SETTLED"));
    let list = h.client.list_transactions(&settled).await.expect("list");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["source_type"], "Invoice");
    assert_eq!(
        h.client
            .count_transactions(&Default::default())
            .await
            .expect("count"),
        5
    );

    let mut page = qrpayd::dbus::client::Request::new();
    page.insert("limit".into(), Arg::U32(2));
    page.insert("offset".into(), Arg::U32(1));
    let list = h.client.list_transactions(&page).await.expect("page");
    let numbers: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|t| s(t, "transaction_number"))
        .collect();
    assert_eq!(numbers, ["TXN000004", "TXN000003"]);
}

/// A second daemon on the same bus neither takes the name nor starts: the first keeps
/// serving the till.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_cannot_take_the_name() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let text = config_text(&dir.path().join("state"), h.bus.address(), "");
    let config =
        qrpayd::config::Config::parse(&text, &dir.path().join("qrpayd.toml")).expect("config");
    let error = match qrpayd::daemon::Daemon::start(&config).await {
        Ok(_) => panic!("a second daemon started on a name already owned"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("already owned"), "{error}");

    let reply = h
        .client
        .checkout(&order("after-the-second", "100"))
        .await
        .expect("the first daemon still serves");
    assert_eq!(s(&reply, "transaction_number"), "TXN000001");
}
