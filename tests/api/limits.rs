//! What the customer is asked for, and what the till may ask, stay
//! within what is meant (the currency ceiling, partial payments only when allowed, a QR that
//! says what is charged).

use qrpayd::config::Config;
use qrpayd::daemon::Daemon;
use qrpayd::dbus::client::{Arg, Client, Request};
use qrpayd::dbus::{BusAddress, PrivateBus};

use crate::harness::*;
use crate::mock_qpay::Route;
use crate::qpay::QpayHarness;

/// `Decimal::MAX`, the amount the fuzzing run got accepted.
const DECIMAL_MAX: &str = "79228162514264337593543950335";

/// A daemon with the simulator and no `max_amount` in its config, and a client.
struct Unlimited {
    /// Held for its lifetime: the state and the bus socket live in it.
    _dir: tempfile::TempDir,
    _bus: PrivateBus,
    _daemon: Daemon,
    client: Client,
}

impl Unlimited {
    async fn start() -> Unlimited {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = PrivateBus::start(dir.path()).expect("private bus");
        let text = config_text(&dir.path().join("state"), bus.address(), "")
            .replace("max_amount = \"10000000\"\n", "");
        assert!(!text.contains("max_amount"), "{text}");
        let config = Config::parse(&text, &dir.path().join("qrpayd.toml")).expect("config");
        let daemon = Daemon::start(&config).await.expect("daemon starts");
        let client = Client::connect(&BusAddress::parse(bus.address()))
            .await
            .expect("client connects");
        Unlimited {
            _dir: dir,
            _bus: bus,
            _daemon: daemon,
            client,
        }
    }
}

/// A request of string values.
fn strings(pairs: &[(&str, &str)]) -> Request {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), Arg::from(*value)))
        .collect()
}

/// A cash Checkout of `amount` in `currency`.
fn cash(source_id: &str, amount: &str, currency: &str) -> Request {
    let request = with(order(source_id, amount), "provider", Arg::from("system"));
    with(request, "currency", Arg::from(currency))
}

/// Issue 9, item 2: a cash amount of 79 228 162 514 264 337 593 543 950 335 was accepted when
/// `max_amount` was unset. The currency's ceiling holds for Checkout's amount, its items, the
/// cash tendered and a refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cash_amount_of_decimal_max_is_refused_when_max_amount_is_unset() {
    let u = Unlimited::start().await;
    let refused = [
        ("Decimal::MAX MNT", cash("max", DECIMAL_MAX, "MNT")),
        ("Decimal::MAX VND", cash("max", DECIMAL_MAX, "VND")),
        ("above the MNT ceiling", cash("mnt", "500000000.01", "MNT")),
        ("above the VND ceiling", cash("vnd", "5000000001", "VND")),
        (
            "items above the ceiling",
            with(
                cash("items", "1000", "MNT"),
                "items",
                Arg::Dicts(vec![
                    [
                        ("description".to_owned(), "Gold".to_owned()),
                        ("quantity".to_owned(), "2".to_owned()),
                        ("unit_price".to_owned(), "300000000".to_owned()),
                    ]
                    .into_iter()
                    .collect(),
                ]),
            ),
        ),
    ];
    for (what, request) in refused {
        let error = u.client.checkout(&request).await.expect_err(what);
        assert_eq!(error_name(&error), "InvalidArgument", "{what}: {error}");
        assert!(error.to_string().contains("maximum"), "{what}: {error}");
    }
    assert_eq!(
        u.client
            .count_transactions(&Request::new())
            .await
            .expect("count"),
        0,
        "nothing was recorded"
    );

    // The ceiling itself is a valid amount.
    let reply = u
        .client
        .checkout(&cash("big", "500000000", "MNT"))
        .await
        .expect("the ceiling is allowed");
    let attempt_id = s(&reply, "attempt_id").to_owned();
    let confirm = |tendered: &str| strings(&[("attempt_id", &attempt_id), ("tendered", tendered)]);
    let error = u
        .client
        .confirm_system_payment(&confirm(DECIMAL_MAX))
        .await
        .expect_err("tendered above the ceiling");
    assert_eq!(error_name(&error), "InvalidArgument", "{error}");
    let paid = u
        .client
        .confirm_system_payment(&confirm("500000000"))
        .await
        .expect("paid");
    assert_eq!(s(&paid, "transaction_status"), "304_SETTLED");

    let refund = |amount: &str| strings(&[("attempt_id", &attempt_id), ("amount", amount)]);
    let error = u
        .client
        .refund(&refund(DECIMAL_MAX))
        .await
        .expect_err("refund above the ceiling");
    assert_eq!(error_name(&error), "InvalidArgument", "{error}");
    assert!(
        error.to_string().contains("maximum of 500000000 MNT"),
        "{error}"
    );
    let view = u
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(
        s(&view, "refunded"),
        "0.0000",
        "the refused refund changed nothing"
    );
}

/// Issue 9, item 5: the simulator accepted a partial payment on a checkout without
/// `allow_partial`. It refuses it as a provider would; the whole amount still settles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_payment_is_refused_on_a_checkout_without_allow_partial() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("whole-only", "1000"))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id");
    let error = h
        .client
        .simulate_pay(attempt_id, "400")
        .await
        .expect_err("a partial payment");
    assert_eq!(error_name(&error), "InvalidTransactionStatus", "{error}");
    assert!(error.to_string().contains("partial"), "{error}");
    let verify = h.client.verify(attempt_id).await.expect("verify");
    assert_eq!(s(&verify, "attempt_status"), "204_SENT");
    assert_eq!(s(&verify, "paid"), "0.0000");

    h.client
        .simulate_pay(attempt_id, "1000")
        .await
        .expect("the whole amount");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
}

/// Issue 9, item 6 (§4, "What the customer sees matches what is charged"): a provider's QR that
/// asks for another amount fails its attempt (`QR_MISMATCH`), is never shown or signalled, and
/// its invoice is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_for_another_amount_fails_the_attempt_and_is_never_shown() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    h.mock.next_qr_asks_for("100");
    let error = h
        .client
        .checkout(&order("q-mismatch", "1000"))
        .await
        .expect_err("a QR for 100 on a payment of 1000");
    assert_eq!(error_name(&error), "ProviderRejected", "{error}");
    let message = error.to_string();
    assert!(
        message.contains("QR_MISMATCH")
            && message.contains("asks for 100 (tag 54), the payment is 1000"),
        "{message}"
    );

    let failed = wait_for(&mut signals, "AttemptChanged 500_FAIL", |signal| {
        if signal.name == "AttemptChanged" {
            assert!(
                signal.args["details"].get("qr_text").is_none(),
                "the mismatched QR was signalled: {}",
                signal.args
            );
        }
        signal.name == "AttemptChanged" && signal.args["status"] == "500_FAIL"
    })
    .await;
    assert_eq!(failed.args["details"]["failure_code"], "QR_MISMATCH");
    let view = h
        .client
        .get_transaction(failed.args["transaction_id"].as_str().expect("an id"))
        .await
        .expect("get");
    let attempt = &view["attempts"][0];
    assert_eq!(attempt["status"], "500_FAIL");
    assert!(attempt.get("qr_text").is_none(), "{attempt}");
    h.mock
        .wait_for("the invoice closed", |state| {
            state.count(Route::CancelInvoice) == 1 && state.invoices[0].cancelled
        })
        .await;

    // A QR for the payment itself is shown as before.
    let reply = h
        .client
        .checkout(&order("q-match", "1000"))
        .await
        .expect("a matching QR");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
}
