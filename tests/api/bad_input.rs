//! Every bad input gets its named error, changes nothing, and the daemon keeps serving.

use std::collections::HashMap;

use qrpayd::dbus::client::{Arg, Request};
use zbus::{OwnedVariant, Variant};

use crate::harness::*;

fn long(n: usize) -> String {
    "x".repeat(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checkouts_are_refused_by_name_and_change_nothing() {
    let h = Harness::start().await;
    let item = |description: &str, quantity: &str, unit_price: &str| {
        Arg::Dicts(vec![
            [
                ("description".to_owned(), description.to_owned()),
                ("quantity".to_owned(), quantity.to_owned()),
                ("unit_price".to_owned(), unit_price.to_owned()),
            ]
            .into_iter()
            .collect(),
        ])
    };
    let mut missing_source = order("x", "100");
    missing_source.remove("source_id");
    let mut missing_amount = order("bad", "100");
    missing_amount.remove("amount");
    let cases: Vec<(&str, Request, &str)> = vec![
        ("no source_id", missing_source, "InvalidArgument"),
        ("no amount", missing_amount, "InvalidArgument"),
        ("exponent", order("bad", "1e5"), "InvalidArgument"),
        ("NaN", order("bad", "NaN"), "InvalidArgument"),
        ("negative", order("bad", "-5"), "InvalidArgument"),
        ("zero", order("bad", "0"), "InvalidArgument"),
        (
            "three decimals in MNT",
            order("bad", "1.001"),
            "InvalidArgument",
        ),
        (
            "above max_amount",
            order("bad", "10000000.01"),
            "InvalidArgument",
        ),
        ("spaces", order("bad", " 100"), "InvalidArgument"),
        (
            "decimals in VND",
            with(order("bad", "100.5"), "currency", Arg::from("VND")),
            "InvalidArgument",
        ),
        (
            "source_id too long",
            order(&long(65), "100"),
            "InvalidArgument",
        ),
        (
            "description too long",
            with(order("bad", "100"), "description", Arg::from(long(256))),
            "InvalidArgument",
        ),
        (
            "unknown key",
            with(order("bad", "100"), "tip", Arg::from("5")),
            "InvalidArgument",
        ),
        (
            "unknown currency",
            with(order("bad", "100"), "currency", Arg::from("USD")),
            "InvalidArgument",
        ),
        (
            "provider not enabled",
            with(order("bad", "100"), "provider", Arg::from("qpay")),
            "ProviderNotConfigured",
        ),
        (
            "unknown method",
            with(order("bad", "100"), "method", Arg::from("900_BARTER")),
            "InvalidArgument",
        ),
        (
            "expiry too short",
            with(order("bad", "100"), "expires_in_ms", Arg::U64(10)),
            "InvalidArgument",
        ),
        (
            "amount of the wrong type",
            with(order("bad", "100"), "amount", Arg::U64(100)),
            "InvalidArgument",
        ),
        (
            "allow_partial of the wrong type",
            with(order("bad", "100"), "allow_partial", Arg::from("yes")),
            "InvalidArgument",
        ),
        (
            "item with a zero quantity",
            with(order("bad", "100"), "items", item("Tea", "0", "100")),
            "InvalidArgument",
        ),
        (
            "item with a float price",
            with(order("bad", "100"), "items", item("Tea", "1", "1e2")),
            "InvalidArgument",
        ),
    ];
    for (what, request, expected) in cases {
        let error = h.client.checkout(&request).await.expect_err(what);
        assert_eq!(error_name(&error), expected, "{what}: {error}");
        assert!(!error.to_string().is_empty(), "{what} has a message");
    }
    assert_eq!(
        h.client
            .count_transactions(&Request::new())
            .await
            .expect("count"),
        0,
        "no bad request left a transaction behind"
    );
    // The daemon still serves.
    let reply = h
        .client
        .checkout(&order("good", "100"))
        .await
        .expect("still serving");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
}

/// Money as a D-Bus double is refused: floats never touch money.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_sent_as_a_double_is_refused() {
    let h = Harness::start().await;
    let connection = zbus::connection::Builder::address(h.bus.address())
        .build()
        .await
        .expect("connect");
    let mut request: HashMap<String, OwnedVariant> = HashMap::new();
    request.insert(
        "source_id".into(),
        Variant::from("float-order")
            .try_into_owned()
            .expect("owned"),
    );
    request.insert("amount".into(), OwnedVariant::from(100.5_f64));
    let reply = connection
        .call_method(
            Some("org.qrpayd.Pay1"),
            "/org/qrpayd/Pay1",
            Some("org.qrpayd.Pay1.Terminal"),
            "Checkout",
            &(request,),
        )
        .await
        .expect_err("a double is not money");
    let zbus::Error::MethodError(name, message, _) = reply else {
        panic!("expected an error reply, got {reply:?}");
    };
    assert_eq!(name.as_str(), "org.qrpayd.Pay1.Error.InvalidArgument");
    assert_eq!(
        message.as_deref(),
        Some("amount must be a string (s), not d")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_bad_requests_elsewhere_are_named() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("ok", "100"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id");
    let req = |pairs: &[(&str, &str)]| -> Request {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Arg::from(*v)))
            .collect()
    };

    let e = h
        .client
        .get_transaction("TXN999999")
        .await
        .expect_err("unknown");
    assert_eq!(error_name(&e), "TransactionNotFound");
    let e = h
        .client
        .verify("no-such-attempt")
        .await
        .expect_err("unknown");
    assert_eq!(error_name(&e), "PaymentAttemptNotFound");
    let e = h
        .client
        .refund(&req(&[("attempt_id", "no-such-attempt"), ("amount", "1")]))
        .await
        .expect_err("unknown");
    assert_eq!(error_name(&e), "PaymentAttemptNotFound");
    let e = h
        .client
        .cancel(&req(&[("attempt_id", attempt_id), ("transaction_id", "x")]))
        .await
        .expect_err("both");
    assert_eq!(error_name(&e), "InvalidArgument");
    let e = h.client.cancel(&Request::new()).await.expect_err("neither");
    assert_eq!(error_name(&e), "InvalidArgument");
    let e = h
        .client
        .cancel(&req(&[("attempt_id", attempt_id), ("reason", &long(1001))]))
        .await
        .expect_err("reason too long");
    assert_eq!(error_name(&e), "InvalidArgument");
    let e = h
        .client
        .confirm_system_payment(&req(&[("attempt_id", attempt_id), ("tendered", "1e3")]))
        .await
        .expect_err("float tendered");
    assert_eq!(error_name(&e), "InvalidArgument");
    let mut filter = Request::new();
    filter.insert("limit".into(), Arg::U32(501));
    let e = h
        .client
        .list_transactions(&filter)
        .await
        .expect_err("limit");
    assert_eq!(error_name(&e), "InvalidArgument");
    let e = h
        .client
        .list_transactions(&req(&[("status", "999_BOGUS")]))
        .await
        .expect_err("status");
    assert_eq!(error_name(&e), "InvalidArgument");
    let e = h
        .client
        .list_transactions(&req(&[("since", "yesterday")]))
        .await
        .expect_err("since");
    assert_eq!(error_name(&e), "InvalidArgument");
    let e = h
        .client
        .simulate_pay(attempt_id, "-1")
        .await
        .expect_err("negative");
    assert_eq!(error_name(&e), "InvalidArgument");

    // None of it disturbed the live attempt.
    let verify = h.client.verify(attempt_id).await.expect("verify");
    assert_eq!(s(&verify, "attempt_status"), "204_SENT");
}
