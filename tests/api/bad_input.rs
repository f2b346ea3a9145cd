//! Every bad input gets its named error, changes nothing, and the daemon keeps serving.

use std::collections::HashMap;

use qrpayd::dbus::client::{Arg, ClientError, Request};
use zbus::{OwnedVariant, Variant};

use crate::harness::*;

fn long(n: usize) -> String {
    "x".repeat(n)
}

/// Checkout's `items` with one item.
fn item(description: &str, quantity: &str, unit_price: &str) -> Arg {
    Arg::Dicts(vec![
        [
            ("description".to_owned(), description.to_owned()),
            ("quantity".to_owned(), quantity.to_owned()),
            ("unit_price".to_owned(), unit_price.to_owned()),
        ]
        .into_iter()
        .collect(),
    ])
}

/// A request of string values.
fn req(pairs: &[(&str, &str)]) -> Request {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Arg::from(*v)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checkouts_are_refused_by_name_and_change_nothing() {
    let h = Harness::start().await;
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

/// The message of an error reply, without its name.
fn remote_message(error: &ClientError) -> &str {
    match error {
        ClientError::Remote { message, .. } => message,
        other => panic!("expected an error reply, got {other}"),
    }
}

/// Asserts that `result` is `InvalidArgument` with a message under 200 bytes (not counting the
/// list of known keys that an unknown-key message ends with: fixed text).
fn assert_short_refusal(what: &str, result: Result<serde_json::Value, ClientError>) {
    let error = result.expect_err(what);
    assert_eq!(error_name(&error), "InvalidArgument", "{what}");
    let message = remote_message(&error);
    let message = message
        .split_once("; known keys are")
        .map_or(message, |(head, _)| head);
    assert!(
        message.len() < 200,
        "{what}: {} bytes: {message:.300}",
        message.len()
    );
}

/// A megabyte, the size of value the fuzzing run sent.
const MEGABYTE: usize = 1 << 20;

/// Issue 9, item 1: an error message repeated a 1 MB value whole. Every value the till sends is
/// quoted cut short; the longest of these messages is a sentence, not the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_does_not_repeat_a_one_megabyte_value() {
    let h = Harness::start().await;
    let huge = "9".repeat(MEGABYTE);
    let not_a_number = "1e".repeat(MEGABYTE / 2);
    let checkouts: Vec<(&str, Request)> = vec![
        ("source_id", order(&huge, "100")),
        (
            "source_type",
            with(order("o", "100"), "source_type", Arg::from(huge.as_str())),
        ),
        (
            "source_uid",
            with(order("o", "100"), "source_uid", Arg::from(huge.as_str())),
        ),
        ("amount of digits", order("o", &huge)),
        ("amount not a number", order("o", &not_a_number)),
        (
            "unknown key",
            with(order("o", "100"), &huge, Arg::from("1")),
        ),
        (
            "currency",
            with(order("o", "100"), "currency", Arg::from(huge.as_str())),
        ),
        (
            "provider",
            with(order("o", "100"), "provider", Arg::from(huge.as_str())),
        ),
        (
            "method",
            with(order("o", "100"), "method", Arg::from(huge.as_str())),
        ),
        (
            "description",
            with(order("o", "100"), "description", Arg::from(huge.as_str())),
        ),
        (
            "item quantity",
            with(
                order("o", "100"),
                "items",
                item("Tea", &not_a_number, "100"),
            ),
        ),
        (
            "item unit_price",
            with(order("o", "100"), "items", item("Tea", "1", &huge)),
        ),
        (
            "item description",
            with(order("o", "100"), "items", item(&huge, "1", "100")),
        ),
    ];
    for (what, request) in checkouts {
        assert_short_refusal(what, h.client.checkout(&request).await);
    }

    let reply = h
        .client
        .checkout(&order("ok", "100"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id").to_owned();
    let others = [
        (
            "refund amount",
            h.client
                .refund(&req(&[
                    ("attempt_id", &attempt_id),
                    ("amount", &not_a_number),
                ]))
                .await,
        ),
        (
            "tendered",
            h.client
                .confirm_system_payment(&req(&[("attempt_id", &attempt_id), ("tendered", &huge)]))
                .await,
        ),
        (
            "attempt_id",
            h.client.cancel(&req(&[("attempt_id", &huge)])).await,
        ),
        ("get_transaction", h.client.get_transaction(&huge).await),
        ("verify", h.client.verify(&huge).await),
        (
            "filter source_id",
            h.client
                .list_transactions(&req(&[("source_id", &huge)]))
                .await,
        ),
    ];
    for (what, result) in others {
        assert_short_refusal(what, result);
    }
    assert_short_refusal(
        "simulated amount",
        h.client
            .simulate_pay(&attempt_id, &not_a_number)
            .await
            .map(|()| serde_json::Value::Null),
    );

    // Messages made in the engine's look-ups (a status or a time filter) are held by the last
    // guard at the D-Bus edge: at most a thousand characters.
    for (key, value) in [("status", &huge), ("since", &huge)] {
        let error = h
            .client
            .list_transactions(&req(&[(key, value)]))
            .await
            .expect_err(key);
        assert_eq!(error_name(&error), "InvalidArgument", "{key}");
        assert!(
            remote_message(&error).chars().count() < 1100,
            "{key}: {error:.300}"
        );
    }

    // The live attempt is untouched and the daemon serves on.
    let verify = h.client.verify(&attempt_id).await.expect("verify");
    assert_eq!(s(&verify, "attempt_status"), "204_SENT");
}

/// An `a{sv}` written entry by entry, so that a key can be given twice: the client's
/// `HashMap`s cannot hold such a request, a hand-made D-Bus message can.
struct RawMap(Vec<(&'static str, RawValue)>);

enum RawValue {
    Str(String),
    Maps(Vec<RawMap>),
}

impl From<&str> for RawValue {
    fn from(text: &str) -> Self {
        RawValue::Str(text.to_owned())
    }
}

impl zbus::Type for RawMap {
    const SIGNATURE: &'static zbus::Signature =
        &zbus::Signature::static_dict(&zbus::Signature::Str, &zbus::Signature::Variant);
}

impl serde::Serialize for RawMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl serde::Serialize for RawValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self {
            RawValue::Str(text) => Variant::from(text.as_str()).serialize(serializer),
            // A variant goes on the wire as its signature, then its value.
            RawValue::Maps(maps) => {
                let signature = zbus::Signature::static_array(<RawMap as zbus::Type>::SIGNATURE);
                let mut variant = serializer.serialize_struct("Variant", 2)?;
                variant.serialize_field("signature", &signature)?;
                variant.serialize_field("value", maps)?;
                variant.end()
            }
        }
    }
}

/// Calls a Terminal method with one hand-made `a{sv}`; the error reply's name and message.
async fn call_raw(
    connection: &zbus::Connection,
    method: &str,
    request: RawMap,
) -> (String, String) {
    let error = connection
        .call_method(
            Some("org.qrpayd.Pay1"),
            "/org/qrpayd/Pay1",
            Some("org.qrpayd.Pay1.Terminal"),
            method,
            &(request,),
        )
        .await
        .expect_err("refused");
    let zbus::Error::MethodError(name, message, _) = error else {
        panic!("expected an error reply, got {error:?}");
    };
    (name.as_str().to_owned(), message.unwrap_or_default())
}

/// Issue 9, item 3: a key given twice in one `a{sv}` was accepted, the last one winning. It is
/// refused by name, at the top of a request and inside Checkout's items, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_given_twice_is_refused_not_won_by_the_last() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("paid", "100"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id");
    let connection = zbus::connection::Builder::address(h.bus.address())
        .build()
        .await
        .expect("connect");
    let raw_item = |price: &str| {
        RawMap(vec![
            ("description", "Tea".into()),
            ("unit_price", "100".into()),
            ("unit_price", price.into()),
        ])
    };
    let cases = [
        (
            "Checkout",
            RawMap(vec![
                ("source_id", "twice".into()),
                ("amount", "100".into()),
                ("amount", "1".into()),
            ]),
            "amount",
        ),
        (
            "Checkout",
            RawMap(vec![
                ("source_id", "twice".into()),
                ("source_id", "twice".into()),
                ("amount", "100".into()),
            ]),
            "source_id",
        ),
        (
            "Checkout",
            RawMap(vec![
                ("source_id", "items".into()),
                ("amount", "100".into()),
                ("items", RawValue::Maps(vec![raw_item("1")])),
            ]),
            "unit_price",
        ),
        (
            "ConfirmSystemPayment",
            RawMap(vec![
                ("attempt_id", attempt_id.into()),
                ("tendered", "100".into()),
                ("tendered", "1000000".into()),
            ]),
            "tendered",
        ),
        (
            "Refund",
            RawMap(vec![
                ("attempt_id", attempt_id.into()),
                ("amount", "1".into()),
                ("amount", "100".into()),
            ]),
            "amount",
        ),
        (
            "Cancel",
            RawMap(vec![
                ("attempt_id", "another".into()),
                ("attempt_id", attempt_id.into()),
            ]),
            "attempt_id",
        ),
        (
            "ListTransactions",
            RawMap(vec![
                ("source_id", "paid".into()),
                ("source_id", "other".into()),
            ]),
            "source_id",
        ),
    ];
    for (method, request, key) in cases {
        let (name, message) = call_raw(&connection, method, request).await;
        assert_eq!(
            name, "org.qrpayd.Pay1.Error.InvalidArgument",
            "{method} {key}"
        );
        assert_eq!(
            message,
            format!("{key} is given twice; give each key once"),
            "{method}"
        );
    }
    // Nothing was recorded or changed, and the daemon serves on.
    assert_eq!(
        h.client
            .count_transactions(&Request::new())
            .await
            .expect("count"),
        1
    );
    let verify = h.client.verify(attempt_id).await.expect("verify");
    assert_eq!(s(&verify, "attempt_status"), "204_SENT");
    // Each key once is as before.
    let mut once = order("items", "100");
    once.insert("items".to_owned(), item("Tea", "1", "100"));
    h.client.checkout(&once).await.expect("each key once");
}

/// Issue 9, item 4: ids with invisible format characters or surrounding spaces made a separate
/// order for what a person reads as the same one. Every id the till sends refuses them, by name,
/// and nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_with_a_hidden_character_is_refused_not_made_a_second_order() {
    let h = Harness::start().await;
    let reply = h
        .client
        .checkout(&order("order-1", "100"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id");
    let transaction_id = s(&reply, "transaction_id");
    let hidden = [
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{200E}',
        '\u{200F}',
        '\u{202A}',
        '\u{202E}',
        '\u{2060}',
        '\u{2066}',
        '\u{2069}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{180E}',
        '\u{E0001}',
        '\u{FE0F}',
        '\u{034F}',
        '\u{3164}',
        '\u{00A0}',
        '\u{2007}',
        '\u{202F}',
        '\u{3000}',
    ];
    for c in hidden {
        let lookalike = format!("order-{c}1");
        let what = format!("U+{:04X}", u32::from(c));
        let checkouts = [
            ("source_id", order(&lookalike, "100")),
            (
                "source_type",
                with(
                    order("order-1", "100"),
                    "source_type",
                    Arg::from(format!("Or{c}der")),
                ),
            ),
            (
                "source_uid",
                with(
                    order("order-2", "100"),
                    "source_uid",
                    Arg::from(lookalike.as_str()),
                ),
            ),
        ];
        for (field, request) in checkouts {
            let error = h.client.checkout(&request).await.expect_err(&what);
            assert_eq!(error_name(&error), "InvalidArgument", "{what} in {field}");
            assert!(
                remote_message(&error).starts_with(&format!("{field} contains {what}")),
                "{what} in {field}: {error}"
            );
        }
        let hidden_attempt = format!("{c}{attempt_id}");
        let hidden_transaction = format!("{transaction_id}{c}");
        let others = [
            h.client
                .cancel(&req(&[("attempt_id", &hidden_attempt)]))
                .await,
            h.client
                .cancel(&req(&[("transaction_id", &hidden_transaction)]))
                .await,
            h.client
                .confirm_system_payment(&req(&[("attempt_id", &hidden_attempt), ("tendered", "1")]))
                .await,
            h.client
                .refund(&req(&[("attempt_id", &hidden_attempt), ("amount", "1")]))
                .await,
            h.client.verify(&hidden_attempt).await,
            h.client.get_transaction(&hidden_transaction).await,
            h.client
                .list_transactions(&req(&[("source_id", &lookalike)]))
                .await,
        ];
        for (index, result) in others.into_iter().enumerate() {
            let error = result.expect_err(&what);
            assert_eq!(
                error_name(&error),
                "InvalidArgument",
                "{what}, call {index}: {error}"
            );
        }
    }
    for padded in [" order-1", "order-1 ", "\torder-1"] {
        let error = h
            .client
            .checkout(&order(padded, "100"))
            .await
            .expect_err(padded);
        assert_eq!(error_name(&error), "InvalidArgument", "{padded:?}");
    }
    assert_eq!(
        h.client
            .count_transactions(&Request::new())
            .await
            .expect("count"),
        1,
        "no second order was made"
    );
    let verify = h.client.verify(attempt_id).await.expect("verify");
    assert_eq!(s(&verify, "attempt_status"), "204_SENT");
}
