//! The QPay provider end to end: the till's D-Bus calls against a daemon whose `qpay`
//! provider talks real HTTP to the mock QPay (`mock_qpay`), plus a few calls straight to the
//! provider for what the till cannot reach (duplicate numbers, listings, look-ups).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use qrpayd::config::Config;
use qrpayd::daemon::Daemon;
use qrpayd::dbus::client::{Arg, Client, Request};
use qrpayd::dbus::{BusAddress, PrivateBus};
use qrpayd::domain::{Currency, Item, Timestamp};
use qrpayd::providers::qpay::{MemoryState, QpaySettings};
use qrpayd::providers::{
    CreateRequest, Provider, ProviderError, ProviderPayment, Qpay, RefundRequest,
};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::harness::*;
use crate::mock_qpay::*;

/// The config of a daemon with only the QPay provider, pointed at `base_url`.
fn qpay_config_text(state_dir: &Path, bus: &str, base_url: &str, secret_line: &str) -> String {
    daemon_sections(state_dir, bus, None) + &qpay_section(base_url, secret_line)
}

/// The `[providers.qpay]` section for the mock at `base_url`, with `secret_line` giving the
/// client secret.
pub(crate) fn qpay_section(base_url: &str, secret_line: &str) -> String {
    format!(
        r#"
[providers.qpay]
base_url = "{base_url}"
client_id = "{CLIENT_ID}"
{secret_line}
invoice_code = "{INVOICE_CODE}"
callback_url = "https://shop.example.mn/qpay/callback"
poll_interval_ms = 1000
request_timeout_ms = 2000
"#
    )
}

pub(crate) fn inline_secret() -> String {
    format!("client_secret = \"{CLIENT_SECRET}\"")
}

/// A daemon with the QPay provider on a private bus, and the mock it talks to.
pub(crate) struct QpayHarness {
    _dir: tempfile::TempDir,
    _bus: PrivateBus,
    _daemon: Daemon,
    pub(crate) client: Client,
    pub(crate) mock: MockQpay,
}

impl QpayHarness {
    pub(crate) async fn start() -> QpayHarness {
        let mock = MockQpay::start().await;
        QpayHarness::start_with(mock).await
    }

    /// Starts the daemon against a mock prepared beforehand.
    async fn start_with(mock: MockQpay) -> QpayHarness {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = PrivateBus::start(dir.path()).expect("private bus");
        let text = qpay_config_text(
            &dir.path().join("state"),
            bus.address(),
            &mock.base_url,
            &inline_secret(),
        );
        let config = Config::parse(&text, &dir.path().join("qrpayd.toml")).expect("config");
        let daemon = Daemon::start(&config).await.expect("daemon starts");
        let client = Client::connect(&BusAddress::parse(bus.address()))
            .await
            .expect("client connects");
        QpayHarness {
            _dir: dir,
            _bus: bus,
            _daemon: daemon,
            client,
            mock,
        }
    }

    /// The mock's invoice behind a Checkout reply.
    pub(crate) fn invoice_of(&self, reply: &Value) -> MockInvoice {
        invoice_by_qr(&self.mock, s(reply, "qr_text"))
    }
}

fn invoice_by_qr(mock: &MockQpay, qr_text: &str) -> MockInvoice {
    mock.invoices()
        .into_iter()
        .find(|i| i.qr_text == qr_text)
        .expect("the mock made the invoice on screen")
}

fn item(
    description: &str,
    quantity: &str,
    unit_price: &str,
) -> std::collections::BTreeMap<String, String> {
    [
        ("description", description),
        ("quantity", quantity),
        ("unit_price", unit_price),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qpay_payment_shows_the_qr_and_settles() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let checkout = with(
        order("q-settle", "4200"),
        "items",
        Arg::Dicts(vec![item("Tea", "2", "1500"), item("Bun", "1", "1200")]),
    );
    let reply = h.client.checkout(&checkout).await.expect("checkout");
    assert_eq!(s(&reply, "provider"), "qpay");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    qrpayd::emv::validate(s(&reply, "qr_text")).expect("the QR on screen is valid EMVCo");
    assert!(s(&reply, "short_url").starts_with("https://s.qpay.mn/"));
    assert_eq!(reply["deep_links"].as_array().map(Vec::len), Some(2));

    // What reached QPay.
    let invoice = h.invoice_of(&reply);
    let sent = &invoice.request;
    assert_eq!(sent["invoice_code"], INVOICE_CODE);
    assert_eq!(sent["invoice_receiver_code"], "terminal");
    assert_eq!(sent["sender_terminal_code"], "TEST-01");
    assert_eq!(
        sent["callback_url"],
        "https://shop.example.mn/qpay/callback"
    );
    assert_eq!(sent["allow_partial"], false);
    assert_eq!(sent["enable_expiry"], true);
    assert_eq!(sent["expiry_date"], reply["expires_at"]);
    assert_eq!(
        invoice.raw_amount, "4200",
        "the amount is an exact JSON number"
    );
    assert_eq!(invoice.sender_invoice_no.len(), 26);
    assert_eq!(sent["lines"][0]["line_description"], "Tea");
    assert_eq!(sent["lines"][1]["line_unit_price"], 1200);

    h.mock.pay(&invoice.invoice_id, "4200");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "paid"), "4200.0000");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(1));
    assert_eq!(h.mock.count(Route::Token), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_payment_is_300_partial_until_the_rest_arrives() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&partial("q-partial", "4200"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    assert_eq!(invoice.request["allow_partial"], true);
    let transaction_id = s(&reply, "transaction_id");
    h.mock.pay(&invoice.invoice_id, "1500");
    wait_transaction(&mut signals, transaction_id, "300_PARTIAL").await;
    h.mock.pay(&invoice.invoice_id, "2700");
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "paid"), "4200.0000");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(2));
}

/// QPay listing one payment twice must not count it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_reported_twice_under_one_id_counts_once() {
    let h = QpayHarness::start().await;
    let reply = h
        .client
        .checkout(&partial("q-dup", "4200"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    h.mock
        .pay_with_id(&invoice.invoice_id, "771000000000001", "1000");
    h.mock
        .pay_with_id(&invoice.invoice_id, "771000000000001", "1000");
    let attempt_id = s(&reply, "attempt_id");
    for _ in 0..2 {
        let verify = h.client.verify(attempt_id).await.expect("verify");
        assert_eq!(s(&verify, "provider_code"), "PARTIAL");
        assert_eq!(s(&verify, "paid"), "1000.0000");
    }
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "transaction_status"), "300_PARTIAL");
    assert_eq!(s(&view, "paid"), "1000.0000");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overpayment_settles_for_what_was_paid() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("q-over", "4200"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    h.mock.pay(&invoice.invoice_id, "5000");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "paid"), "5000.0000");
}

/// 150 payment rows come in two pages of QPay's check; all of them count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_beyond_the_first_page_of_the_check_count() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&partial("q-pages", "15000"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    h.mock.pay_many(&invoice.invoice_id, 150, "100");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "paid"), "15000.0000");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(150));
    assert!(
        h.mock
            .seen()
            .iter()
            .any(|seen| seen.route == Route::Check && seen.page == Some(2)),
        "the second page was read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_serves_many_payments() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    for n in 0..3 {
        let reply = h
            .client
            .checkout(&order(&format!("q-token-{n}"), "1000"))
            .await
            .expect("checkout");
        let invoice = h.invoice_of(&reply);
        h.mock.pay(&invoice.invoice_id, "1000");
        wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    }
    assert_eq!(h.mock.count(Route::Token), 1);
    assert_eq!(h.mock.count(Route::Refresh), 0);
}

/// QPay's `expires_in` is an absolute timestamp: the token is refreshed before it lapses, so
/// QPay never has to refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_refreshed_before_its_absolute_expiry() {
    let mock = MockQpay::start().await;
    mock.set_token_lifetime(Duration::from_secs(2));
    let h = QpayHarness::start_with(mock).await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("q-expiry", "1000"))
        .await
        .expect("checkout");
    h.mock
        .wait_for("refresh", |state| state.count(Route::Refresh) >= 1)
        .await;
    let invoice = h.invoice_of(&reply);
    h.mock.pay(&invoice.invoice_id, "1000");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let refused = h.mock.seen().iter().filter(|s| s.status == 401).count();
    assert_eq!(refused, 0, "no call went out with an expired token");
    assert_eq!(h.mock.count(Route::Token), 1);
}

/// A token QPay refuses is renewed once (a refresh) and the call repeated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_refreshed_once_and_the_call_repeated() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let first = h
        .client
        .checkout(&order("q-401-a", "1000"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&first);
    h.mock.pay(&invoice.invoice_id, "1000");
    wait_transaction(&mut signals, s(&first, "transaction_id"), "304_SETTLED").await;

    h.mock.expire_access_tokens();
    let second = h
        .client
        .checkout(&order("q-401-b", "2000"))
        .await
        .expect("checkout after the token expired");
    assert_eq!(s(&second, "attempt_status"), "204_SENT");
    let state = h.mock.state();
    assert_eq!(state.count_status(Route::CreateInvoice, 401), 1);
    assert_eq!(state.count_status(Route::CreateInvoice, 200), 2);
    assert_eq!(state.count(Route::Refresh), 1);
    assert_eq!(state.count(Route::Token), 1);
}

/// Refused again after the renewal: the credentials are wrong (or QPay is), the till hears
/// that the provider is unavailable, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_refused_twice_are_reported_and_retried_later() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    h.mock
        .fail_next(Route::CreateInvoice, 2, Failure::Status401);
    let error = h
        .client
        .checkout(&order("q-unauthorized", "1000"))
        .await
        .expect_err("refused twice");
    assert_eq!(error_name(&error), "ProviderUnavailable");
    assert!(error.to_string().contains("credentials"), "{error}");
    assert_eq!(h.mock.count(Route::Refresh), 1);
    // The supervisor repeats the create with the same number once QPay takes the token.
    let sent = wait_for(&mut signals, "the attempt sent", |s| {
        s.name == "AttemptChanged" && s.args["status"] == "204_SENT"
    })
    .await;
    let reply = h
        .client
        .checkout(&order("q-unauthorized", "1000"))
        .await
        .expect("checkout again");
    assert_eq!(reply["attempt_id"], sent.args["attempt_id"]);
    assert_eq!(h.mock.invoices().len(), 1);
}

/// 429 with `Retry-After: 3`: the next check waits at least three seconds, however short the
/// poll interval is (measured on the mock's clock, not by sleeping).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_the_next_check_for_retry_after() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    h.mock
        .fail_next(Route::Check, 1, Failure::Status429("3".to_owned()));
    let reply = h
        .client
        .checkout(&order("q-429", "1000"))
        .await
        .expect("checkout");
    h.mock
        .wait_for("a 429", |state| state.count_status(Route::Check, 429) == 1)
        .await;
    let invoice = h.invoice_of(&reply);
    h.mock.pay(&invoice.invoice_id, "1000");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let checks: Vec<Seen> = h
        .mock
        .seen()
        .into_iter()
        .filter(|s| s.route == Route::Check)
        .collect();
    let limited = checks
        .iter()
        .position(|s| s.status == 429)
        .expect("the 429");
    let next = checks.get(limited + 1).expect("a check after the 429");
    let gap = next.at.duration_since(checks[limited].at);
    assert!(
        gap >= Duration::from_millis(2900),
        "the next check came {gap:?} after the 429"
    );
}

/// A 500, a malformed answer, or one too slow: Checkout says the provider is unavailable, the
/// daemon finds or makes the one invoice, and asking again for the order gives the same
/// transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_creates_lose_nothing_and_make_one_invoice() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let failures = [
        Failure::Status500,
        Failure::MalformedJson,
        Failure::Slow(Duration::from_secs(4)),
    ];
    for (n, failure) in failures.into_iter().enumerate() {
        let source_id = format!("q-fail-{n}");
        h.mock.fail_next(Route::CreateInvoice, 1, failure.clone());
        let error = h
            .client
            .checkout(&order(&source_id, "1000"))
            .await
            .expect_err("the create failed");
        assert_eq!(error_name(&error), "ProviderUnavailable", "{failure:?}");
        let sent = wait_for(&mut signals, "the attempt sent", |s| {
            s.name == "AttemptChanged" && s.args["status"] == "204_SENT"
        })
        .await;
        let reply = h
            .client
            .checkout(&order(&source_id, "1000"))
            .await
            .expect("checkout again");
        assert_eq!(
            reply["transaction_id"], sent.args["transaction_id"],
            "{failure:?}"
        );
        assert_eq!(reply["attempt_id"], sent.args["attempt_id"], "{failure:?}");
        let invoice = h.invoice_of(&reply);
        let same_number = h
            .mock
            .invoices()
            .iter()
            .filter(|i| i.sender_invoice_no == invoice.sender_invoice_no)
            .count();
        assert_eq!(same_number, 1, "{failure:?}");
        assert_eq!(h.mock.invoices().len(), n + 1, "{failure:?}");
        h.mock.pay(&invoice.invoice_id, "1000");
        wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_qr_text_is_refused_and_its_invoice_closed() {
    let h = QpayHarness::start().await;
    h.mock.corrupt_next_qr();
    let error = h
        .client
        .checkout(&order("q-corrupt", "1000"))
        .await
        .expect_err("corrupt QR");
    assert_eq!(error_name(&error), "ProviderRejected");
    assert!(error.to_string().contains("INVALID_QR"), "{error}");
    h.mock
        .wait_for("the invoice closed", |state| {
            state.count(Route::CancelInvoice) == 1 && state.invoices[0].cancelled
        })
        .await;
}

/// 130 emoji pass the daemon's 255-character limit but are 260 of QPay's UTF-16 units: refused
/// by name before QPay hears anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_field_over_qpays_limit_is_refused_before_any_request() {
    let h = QpayHarness::start().await;
    let description = "😀".repeat(130);
    let error = h
        .client
        .checkout(&with(
            order("q-long", "1000"),
            "description",
            Arg::from(description.as_str()),
        ))
        .await
        .expect_err("too long for QPay");
    assert_eq!(error_name(&error), "InvalidArgument", "{error}");
    assert!(error.to_string().contains("invoice_description"), "{error}");
    assert!(h.mock.seen().is_empty(), "QPay heard nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_the_invoice_at_qpay() {
    let h = QpayHarness::start().await;
    let reply = h
        .client
        .checkout(&order("q-cancel", "1000"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    let cancel = h
        .client
        .cancel(&request(&[("attempt_id", s(&reply, "attempt_id"))]))
        .await
        .expect("cancel");
    assert_eq!(s(&cancel, "transaction_status"), "100_NEW");
    let state = h.mock.state();
    assert_eq!(state.count(Route::CancelInvoice), 1);
    assert!(
        state
            .invoice(&invoice.invoice_id)
            .expect("invoice")
            .cancelled
    );
}

/// The customer pays just before the cancel lands: QPay answers `INVOICE_PAID`, and the
/// daemon settles instead of cancelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_that_races_a_payment_settles_instead() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("q-race", "4200"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    h.mock.pay_when_cancelled(&invoice.invoice_id, "4200");
    let error = h
        .client
        .cancel(&request(&[("attempt_id", s(&reply, "attempt_id"))]))
        .await
        .expect_err("paid first");
    assert_eq!(error_name(&error), "InvalidTransactionStatus");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    assert!(
        !h.mock
            .state()
            .invoice(&invoice.invoice_id)
            .expect("invoice")
            .cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_attempt_deletes_its_invoice() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&with(
            order("q-expire", "1000"),
            "expires_in_ms",
            Arg::U64(1500),
        ))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    wait_attempt(&mut signals, s(&reply, "attempt_id"), "501_EXPIRED").await;
    h.mock
        .wait_for("the invoice deleted", |state| {
            state
                .invoice(&invoice.invoice_id)
                .is_some_and(|i| i.cancelled)
        })
        .await;
}

/// Pays `amounts` into a new order and returns the settled reply.
async fn settled_order(
    h: &QpayHarness,
    source_id: &str,
    total: &str,
    pay: impl FnOnce(&MockQpay, &str),
) -> Value {
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&partial(source_id, total))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    pay(&h.mock, &invoice.invoice_id);
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    reply
}

/// QPay gives back whole payments: an amount that is no payment's is refused before QPay hears
/// of it; a payment of today is voided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_payment_of_today_is_voided_and_other_amounts_are_refused() {
    let h = QpayHarness::start().await;
    let reply = settled_order(&h, "q-refund", "4200", |mock, invoice_id| {
        mock.pay(invoice_id, "3000");
        mock.pay(invoice_id, "1200");
    })
    .await;
    let attempt_id = s(&reply, "attempt_id");
    let before = h.mock.seen().len();
    let error = h
        .client
        .refund(&request(&[("attempt_id", attempt_id), ("amount", "1000")]))
        .await
        .expect_err("not a whole payment");
    assert_eq!(error_name(&error), "InvalidArgument");
    let message = error.to_string();
    assert!(
        message.contains("3000") && message.contains("1200"),
        "{message}"
    );
    assert_eq!(h.mock.seen().len(), before, "QPay heard nothing");

    let refund = h
        .client
        .refund(&request(&[
            ("attempt_id", attempt_id),
            ("amount", "1200"),
            ("reason", "returned the bun"),
        ]))
        .await
        .expect("refund one payment");
    assert_eq!(s(&refund, "status"), "302_SUCCESS");
    assert_eq!(h.mock.count(Route::VoidPayment), 1);
    assert_eq!(h.mock.count(Route::RefundPayment), 0);
    let invoice = invoice_by_qr(&h.mock, s(&reply, "qr_text"));
    let statuses: Vec<(String, String)> = invoice
        .payments
        .iter()
        .map(|p| (p.amount.to_string(), p.status.clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("3000".to_owned(), "PAID".to_owned()),
            ("1200".to_owned(), "CANCELED".to_owned())
        ]
    );

    // The 1200 payment is gone: another 1200 has nothing left to give back at QPay.
    let again = h
        .client
        .refund(&request(&[("attempt_id", attempt_id), ("amount", "1200")]))
        .await
        .expect_err("nothing left of 1200");
    assert_eq!(error_name(&again), "ProviderRejected");
}

/// Yesterday's payment (in Mongolia) cannot be voided: it is refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_of_an_earlier_day_is_refunded() {
    let h = QpayHarness::start().await;
    let reply = settled_order(&h, "q-refund-old", "4200", |mock, invoice_id| {
        let yesterday = SystemTime::now() - Duration::from_secs(26 * 3600);
        mock.pay_at(invoice_id, None, "4200", yesterday);
    })
    .await;
    let refund = h
        .client
        .refund(&request(&[
            ("attempt_id", s(&reply, "attempt_id")),
            ("amount", "4200"),
        ]))
        .await
        .expect("refund");
    assert_eq!(s(&refund, "status"), "302_SUCCESS");
    let state = h.mock.state();
    assert_eq!(state.count(Route::VoidPayment), 0);
    assert_eq!(state.count(Route::RefundPayment), 1);
    assert_eq!(state.invoices[0].payments[0].status, "REFUNDED");
}

/// Found by the soak (seed 629062671): a void answered 200 with a body that is not JSON, and
/// nothing done at QPay, was recorded as a refund made. Such an answer is no word from QPay:
/// the refund's outcome is unknown, and the daemon repeats it until QPay really voids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_answered_200_with_a_broken_body_is_not_taken_for_a_refund() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = settled_order(&h, "q-refund-garbled", "4200", |mock, invoice_id| {
        mock.pay(invoice_id, "4200");
    })
    .await;
    h.mock
        .fail_next(Route::VoidPayment, 1, Failure::MalformedJson);
    let refund = h
        .client
        .refund(&request(&[
            ("attempt_id", s(&reply, "attempt_id")),
            ("amount", "4200"),
        ]))
        .await
        .expect("recorded");
    assert_eq!(s(&refund, "status"), "204_SENT", "the outcome is unknown");
    wait_attempt(&mut signals, s(&refund, "refund_attempt_id"), "302_SUCCESS").await;
    let state = h.mock.state();
    assert_eq!(state.count(Route::VoidPayment), 2, "voided on the repeat");
    assert_eq!(state.invoices[0].payments[0].status, "CANCELED");
}

/// A void refused with `PAYMENT_SETTLED` falls back to a refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_payment_is_refunded_when_the_void_is_refused() {
    let h = QpayHarness::start().await;
    h.mock.settle_payments();
    let reply = settled_order(&h, "q-refund-settled", "4200", |mock, invoice_id| {
        mock.pay(invoice_id, "4200");
    })
    .await;
    h.client
        .refund(&request(&[
            ("attempt_id", s(&reply, "attempt_id")),
            ("amount", "4200"),
        ]))
        .await
        .expect("refund");
    let state = h.mock.state();
    assert_eq!(state.count_status(Route::VoidPayment, 400), 1);
    assert_eq!(state.count_status(Route::RefundPayment, 200), 1);
    assert_eq!(state.invoices[0].payments[0].status, "REFUNDED");
}

// Straight to the provider.

fn settings(mock: &MockQpay) -> QpaySettings {
    QpaySettings {
        base_url: mock.base_url.clone(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.into(),
        invoice_code: INVOICE_CODE.to_owned(),
        invoice_receiver_code: "terminal".to_owned(),
        callback_url: None,
        sender_branch_code: None,
        sender_staff_code: None,
        poll_interval: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
    }
}

/// A provider as a freshly started daemon has it: no tokens, no journal.
fn fresh_provider(mock: &MockQpay, terminal_id: &str) -> Qpay {
    Qpay::new(
        settings(mock),
        terminal_id,
        Arc::new(MemoryState::default()),
    )
    .expect("provider")
}

fn create_request(key: &str, amount: i64) -> CreateRequest {
    CreateRequest {
        transaction_id: "transaction-1".to_owned(),
        source: qrpayd_source(),
        attempt_id: format!("attempt-{key}"),
        attempt_code: "ATT000001".to_owned(),
        idempotency_key: key.to_owned(),
        transaction_number: "TXN000001".to_owned(),
        terminal_id: "TEST-01".to_owned(),
        amount: Decimal::from(amount),
        currency: Currency::Mnt,
        description: "order".to_owned(),
        expires_at: Timestamp::now().plus_millis(60_000),
        allow_partial: false,
        items: Vec::<Item>::new(),
    }
}

/// A create whose answer was lost (the daemon restarted while QPay was slow), repeated with the
/// same `sender_invoice_no`: QPay says duplicate, names the invoice, and it is found, not made
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_number_finds_the_invoice_qpay_names() {
    let mock = MockQpay::start().await;
    mock.duplicates_name_the_invoice();
    mock.fail_next(
        Route::CreateInvoice,
        1,
        Failure::Slow(Duration::from_secs(3)),
    );
    let request = create_request("QREPEATEDNUMBER0000000000A", 1000);
    let before_restart = fresh_provider(&mock, "TEST-01");
    let lost = before_restart.create(&request).await;
    assert_eq!(lost, Err(ProviderError::Timeout));
    mock.wait_for("the slow invoice", |state| state.invoices.len() == 1)
        .await;

    let after_restart = fresh_provider(&mock, "TEST-01");
    let found = after_restart
        .lookup(&request)
        .await
        .expect("lookup")
        .expect("found");
    let invoices = mock.invoices();
    assert_eq!(invoices.len(), 1);
    assert_eq!(found.invoice_id, invoices[0].invoice_id);
    assert_eq!(found.qr_text, invoices[0].qr_text);
    assert_eq!(mock.state().count_status(Route::CreateInvoice, 400), 1);
    assert_eq!(mock.count(Route::GetInvoice), 1);
    // Now journaled: a create answers from the journal without asking QPay.
    let again = after_restart.create(&request).await.expect("create");
    assert_eq!(again, found);
    assert_eq!(mock.count(Route::CreateInvoice), 2);
}

/// When QPay's duplicate answer does not say which invoice it holds, there is no documented
/// way to find it: the attempt fails (its QR was never shown, so it cannot be paid) and no
/// second invoice is made under the number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_number_qpay_does_not_name_makes_no_second_invoice() {
    let mock = MockQpay::start().await;
    mock.fail_next(
        Route::CreateInvoice,
        1,
        Failure::Slow(Duration::from_secs(3)),
    );
    let request = create_request("QREPEATEDNUMBER0000000000B", 1000);
    let before_restart = fresh_provider(&mock, "TEST-01");
    assert_eq!(
        before_restart.create(&request).await,
        Err(ProviderError::Timeout)
    );
    mock.wait_for("the slow invoice", |state| state.invoices.len() == 1)
        .await;

    let after_restart = fresh_provider(&mock, "TEST-01");
    assert_eq!(after_restart.lookup(&request).await, Ok(None));
    match after_restart.create(&request).await {
        Err(ProviderError::Rejected { code, .. }) => assert_eq!(code, "DUPLICATE_INVOICE"),
        other => panic!("expected DUPLICATE_INVOICE, got {other:?}"),
    }
    assert_eq!(mock.invoices().len(), 1);
}

/// A create still in flight is joined, not repeated: the late answer is the invoice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_create_answer_is_kept_and_reused() {
    let mock = MockQpay::start().await;
    mock.fail_next(
        Route::CreateInvoice,
        1,
        Failure::Slow(Duration::from_millis(1500)),
    );
    let request = create_request("QLATEANSWER000000000000000", 1000);
    let provider = fresh_provider(&mock, "TEST-01");
    assert_eq!(provider.create(&request).await, Err(ProviderError::Timeout));
    let found = provider
        .lookup(&request)
        .await
        .expect("lookup")
        .expect("the late answer");
    assert_eq!(mock.count(Route::CreateInvoice), 1);
    assert_eq!(found.invoice_id, mock.invoices()[0].invoice_id);
}

/// A refund whose answer was lost is repeated with its key: the payment QPay already voided
/// counts as done, and nothing is sent twice; another key finds nothing left to refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_repeated_with_its_key_gives_back_once() {
    let mock = MockQpay::start().await;
    let provider = fresh_provider(&mock, "TEST-01");
    let invoice = provider
        .create(&create_request("QREFUNDONCE000000000000000", 4200))
        .await
        .expect("create");
    let payment_id = mock.pay(&invoice.invoice_id, "4200");
    let refund = |key: &str| RefundRequest {
        idempotency_key: key.to_owned(),
        invoice_id: invoice.invoice_id.clone(),
        amount: Decimal::from(4200),
        currency: Currency::Mnt,
        reason: "returned".to_owned(),
        payments: vec![ProviderPayment {
            payment_id: payment_id.clone(),
            amount: Decimal::from(4200),
            paid_at: Some(Timestamp::now()),
        }],
    };
    // QPay voids the payment, but its answer comes too late.
    mock.fail_next(Route::VoidPayment, 1, Failure::Slow(Duration::from_secs(2)));
    assert_eq!(
        provider.refund(&refund("R1")).await,
        Err(ProviderError::Timeout)
    );
    let done = provider.refund(&refund("R1")).await.expect("repeated");
    assert_eq!(done.reference, payment_id);
    assert_eq!(mock.count(Route::VoidPayment), 1);
    assert_eq!(mock.count(Route::RefundPayment), 0);
    match provider.refund(&refund("R2")).await {
        Err(ProviderError::Rejected { code, .. }) => assert_eq!(code, "NO_REFUNDABLE_PAYMENT"),
        other => panic!("expected NO_REFUNDABLE_PAYMENT, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_and_the_days_listing_for_this_terminal() {
    let mock = MockQpay::start().await;
    let here = fresh_provider(&mock, "TEST-01");
    let elsewhere = fresh_provider(&mock, "OTHER-02");
    let mut ours = create_request("QLISTING000000000000000001", 1000);
    ours.terminal_id = "TEST-01".to_owned();
    let today = here.create(&ours).await.expect("create");
    let old = here
        .create(&create_request("QLISTING000000000000000002", 2000))
        .await
        .expect("create");
    let mut theirs = create_request("QLISTING000000000000000003", 3000);
    theirs.terminal_id = "OTHER-02".to_owned();
    let other = elsewhere.create(&theirs).await.expect("create");
    let paid_today = mock.pay(&today.invoice_id, "1000");
    mock.pay_at(
        &old.invoice_id,
        None,
        "2000",
        SystemTime::now() - Duration::from_secs(3 * 24 * 3600),
    );
    mock.pay(&other.invoice_id, "3000");

    let mongolia = time::UtcOffset::from_hms(8, 0, 0).expect("offset");
    let date = time::OffsetDateTime::now_utc().to_offset(mongolia).date();
    let listed = here.list_payments(date).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].payment_id, paid_today);
    assert_eq!(listed[0].amount, Decimal::from(1000));
    assert_eq!(listed[0].status, "PAID");

    let details = here.get_invoice(&today.invoice_id).await.expect("invoice");
    assert_eq!(
        details.sender_invoice_no.as_deref(),
        Some("QLISTING000000000000000001")
    );
    let payment = here.get_payment(&paid_today).await.expect("payment");
    assert_eq!(payment.payment_status.as_deref(), Some("PAID"));
    assert_eq!(
        here.check("no-such-invoice").await,
        Err(ProviderError::NotFound(
            "invoice no-such-invoice".to_owned()
        ))
    );
    assert_eq!(mock.count(Route::Token), 2, "one token per provider");
}

// A real daemon process (`harness::Process`).

/// A daemon process on a private bus with its secret in a file, and its paths.
struct ProcessSetup {
    dir: tempfile::TempDir,
    bus: PrivateBus,
    config: PathBuf,
    log: PathBuf,
}

fn process_setup(mock: &MockQpay) -> ProcessSetup {
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let secret = dir.path().join("qpay_client_secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).expect("secret file");
    let config = dir.path().join("qrpayd.toml");
    std::fs::write(
        &config,
        qpay_config_text(
            &dir.path().join("state"),
            bus.address(),
            &mock.base_url,
            &format!("client_secret_file = \"{}\"", secret.display()),
        ),
    )
    .expect("config");
    let log = dir.path().join("qrpayd.log");
    ProcessSetup {
        dir,
        bus,
        config,
        log,
    }
}

/// `kill -9` after the invoice is made and while the first check is on its way; the restarted
/// daemon reuses the stored token, finds the live attempt and settles it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_the_invoice_and_the_first_check_settles_once() {
    let mock = MockQpay::start().await;
    let setup = process_setup(&mock);
    let mut daemon = Process::start(&setup.config, Some(&setup.log));
    let client = ready_client(&setup.bus).await;
    mock.fail_next(Route::Check, 1, Failure::Hold);
    let reply = client
        .checkout(&order("q-crash", "4200"))
        .await
        .expect("checkout");
    mock.wait_for("the first check", |state| state.holding == 1)
        .await;
    daemon.kill_9();
    mock.release();

    daemon.spawn();
    let client = ready_client(&setup.bus).await;
    let mut signals = client.watch().await.expect("watch");
    let invoice = invoice_by_qr(&mock, s(&reply, "qr_text"));
    mock.pay(&invoice.invoice_id, "4200");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    daemon.kill_9();

    assert_eq!(mock.invoices().len(), 1);
    assert_eq!(
        mock.count(Route::Token),
        1,
        "the restarted daemon reused the token"
    );
    let store = qrpayd::store::Store::open(
        &setup
            .dir
            .path()
            .join("state")
            .join(qrpayd::store::Store::FILE_NAME),
    )
    .expect("store");
    let payments = store
        .read(|tx| {
            let attempt_id = s(&reply, "attempt_id");
            tx.payment_results_of(attempt_id)
        })
        .expect("read");
    assert_eq!(payments.len(), 1);
}

/// A full payment and refund by a real daemon logging at debug: neither the client secret nor
/// any token reaches its log, and in the database tokens appear only in the provider's token
/// row, the secret nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_or_the_database() {
    let mock = MockQpay::start().await;
    let setup = process_setup(&mock);
    let mut daemon = Process::start(&setup.config, Some(&setup.log));
    let client = ready_client(&setup.bus).await;
    let mut signals = client.watch().await.expect("watch");
    let reply = client
        .checkout(&order("q-secret", "4200"))
        .await
        .expect("checkout");
    let invoice = invoice_by_qr(&mock, s(&reply, "qr_text"));
    mock.expire_access_tokens();
    mock.pay(&invoice.invoice_id, "4200");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    client
        .refund(&request(&[
            ("attempt_id", s(&reply, "attempt_id")),
            ("amount", "4200"),
        ]))
        .await
        .expect("refund");
    daemon.kill_9();
    assert!(
        mock.count(Route::Refresh) >= 1,
        "a refreshed token was used too"
    );

    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let log = std::fs::read_to_string(&setup.log).expect("log");
    assert!(log.contains("QPay"), "the daemon logged its QPay calls");
    for secret in [CLIENT_SECRET, ACCESS_PREFIX, REFRESH_PREFIX, basic.as_str()] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }

    let state_dir = setup.dir.path().join("state");
    for file in std::fs::read_dir(&state_dir).expect("state dir") {
        let path = file.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !bytes
                .windows(CLIENT_SECRET.len())
                .any(|w| w == CLIENT_SECRET.as_bytes()),
            "{} holds the client secret",
            path.display()
        );
    }
    let db =
        rusqlite::Connection::open(state_dir.join(qrpayd::store::Store::FILE_NAME)).expect("db");
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("tables")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    let mut token_rows = 0;
    for table in tables {
        let mut statement = db
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .expect("select");
        let columns = statement.column_count();
        let names: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let mut rows = statement.query([]).expect("rows");
        while let Some(row) = rows.next().expect("row") {
            let texts: Vec<String> = (0..columns)
                .map(|i| match row.get_ref(i).expect("value") {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                    _ => String::new(),
                })
                .collect();
            let holds_token = texts
                .iter()
                .any(|t| t.contains(ACCESS_PREFIX) || t.contains(REFRESH_PREFIX));
            if holds_token {
                let key = names
                    .iter()
                    .position(|n| n == "key")
                    .map(|i| texts[i].as_str());
                assert_eq!(
                    (table.as_str(), key),
                    ("provider_state", Some("tokens")),
                    "a token outside the token row"
                );
                token_rows += 1;
            }
        }
    }
    assert_eq!(token_rows, 1);
}

/// The till's source of the test requests.
fn qrpayd_source() -> qrpayd::domain::Source {
    qrpayd::domain::Source {
        kind: "Order".to_owned(),
        id: "order-1".to_owned(),
        uid: None,
    }
}
