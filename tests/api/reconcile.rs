//! Reconciliation against the simulator's ledger.

use qrpayd::dbus::client::{Arg, Request};

use crate::harness::*;

fn request(provider: &str, date: &str) -> Request {
    let mut request = Request::new();
    request.insert("provider".into(), Arg::from(provider));
    request.insert("date".into(), Arg::from(date));
    request
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_payments_match_the_providers_list() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    for order_id in ["rec-1", "rec-2"] {
        let reply = h
            .client
            .checkout(&order(order_id, "2500"))
            .await
            .expect("checkout");
        h.client
            .simulate_pay(s(&reply, "attempt_id"), "")
            .await
            .expect("pay");
        wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    }
    let rows = h
        .client
        .reconcile(&request("simulator", &today()))
        .await
        .expect("reconcile");
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!(row["verdict"], "matched", "{row}");
        assert_eq!(row["provider_amount"], row["local_amount"]);
        assert!(row["transaction_id"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reconcile_requests_are_named() {
    let h = Harness::start().await;
    let cases = [
        (request("simulator", "21.11.2026"), "InvalidArgument"),
        (request("system", &today()), "InvalidArgument"),
        (request("qpay", &today()), "ProviderNotConfigured"),
    ];
    for (request, expected) in cases {
        let error = h.client.reconcile(&request).await.expect_err("refused");
        assert_eq!(error_name(&error), expected, "{error}");
    }
}
