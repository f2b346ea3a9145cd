//! `Reconcile` with QPay end to end: the till's D-Bus call against a daemon whose `qpay`
//! provider lists the day's payments (`POST /v2/payment/list`) at the mock QPay.
//!
//! QPay's day is Mongolia's (UTC+8), so every date asked for here is the Mongolian date of the
//! payment, computed from the payment's time exactly as the provider's listing reads it.

use std::time::{Duration, SystemTime};

use qrpayd::dbus::client::{Arg, Request};
use serde_json::Value;

use crate::harness::*;
use crate::mock_qpay::*;
use crate::qpay::QpayHarness;

/// What reconciliation tests ask of the QPay harness of `qpay.rs`.
impl QpayHarness {
    /// The mock's payment `payment_id`.
    fn payment(&self, payment_id: &str) -> MockPayment {
        self.mock
            .invoices()
            .into_iter()
            .flat_map(|i| i.payments)
            .find(|p| p.payment_id == payment_id)
            .expect("the mock has the payment")
    }

    /// `Reconcile` of QPay's `date`.
    async fn reconcile(&self, date: &str, record_missing: bool) -> Vec<Value> {
        let mut request = Request::new();
        request.insert("provider".into(), Arg::from("qpay"));
        request.insert("date".into(), Arg::from(date));
        request.insert("record_missing".into(), Arg::Bool(record_missing));
        let rows = self.client.reconcile(&request).await.expect("reconcile");
        rows.as_array().expect("rows").clone()
    }
}

/// QPay's day of a moment: its date in Mongolia (UTC+8), `YYYY-MM-DD`.
fn mongolian_day(at: time::OffsetDateTime) -> String {
    let mongolia = time::UtcOffset::from_hms(8, 0, 0).expect("offset");
    let date = at.to_offset(mongolia).date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// QPay's day of a payment the mock holds, from its `payment_date`.
fn day_of(payment: &MockPayment) -> String {
    let at = time::OffsetDateTime::parse(
        &payment.date,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("an RFC 3339 payment date");
    mongolian_day(at)
}

/// The day before `day` (`YYYY-MM-DD`).
fn day_before(day: &str) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &format).expect("a date");
    let before = date.previous_day().expect("a day before");
    before.format(&format).expect("formatted")
}

/// The row of `payment_id`, asserting there is exactly one.
fn row_of<'a>(rows: &'a [Value], payment_id: &str) -> &'a Value {
    let found: Vec<&Value> = rows
        .iter()
        .filter(|r| r["payment_id"] == payment_id)
        .collect();
    assert_eq!(found.len(), 1, "one row for {payment_id} in {rows:?}");
    found[0]
}

/// (a) Payments the daemon recorded are matched, each on its own row naming its invoice,
/// attempt and transaction; another day has nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_qpay_payments_are_matched() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&with(
            order("qrec-matched", "4200"),
            "allow_partial",
            Arg::Bool(true),
        ))
        .await
        .expect("checkout");
    let transaction_id = s(&reply, "transaction_id");
    let attempt_id = s(&reply, "attempt_id");
    let invoice = h.invoice_of(&reply);
    let first = h.mock.pay(&invoice.invoice_id, "1500");
    wait_transaction(&mut signals, transaction_id, "300_PARTIAL").await;
    let second = h.mock.pay(&invoice.invoice_id, "2700");
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;

    let day = day_of(&h.payment(&first));
    assert_eq!(day, day_of(&h.payment(&second)), "paid within a second");
    let rows = h.reconcile(&day, false).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (payment_id, amount) in [(&first, "1500.0000"), (&second, "2700.0000")] {
        let row = row_of(&rows, payment_id);
        assert_eq!(row["verdict"], "matched", "{row}");
        assert_eq!(row["provider_amount"], amount, "{row}");
        assert_eq!(row["local_amount"], amount, "{row}");
        assert_eq!(row["provider_status"], "PAID", "{row}");
        assert_eq!(row["invoice_id"], invoice.invoice_id.as_str(), "{row}");
        assert_eq!(row["attempt_id"], attempt_id, "{row}");
        assert_eq!(row["transaction_id"], transaction_id, "{row}");
    }
    assert!(
        h.reconcile(&day_before(&day), false).await.is_empty(),
        "QPay lists nothing the day before"
    );
    assert_eq!(h.mock.count(Route::ListPayments), 2);
}

/// (b) The attempt expired and its invoice was closed; QPay then lists a payment of that
/// invoice that the daemon never saw (its last check came before it). `Reconcile` calls it
/// `missing` and changes nothing; with `record_missing` the daemon checks the invoice, records
/// the payment as a late one (`501_EXPIRED` → `302_SUCCESS`), the transaction settles, and the
/// row is `recorded`; the next reconciliation finds it `matched`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_the_daemon_missed_is_missing_then_recorded_then_matched() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&with(
            order("qrec-missing", "4200"),
            "expires_in_ms",
            Arg::U64(1000),
        ))
        .await
        .expect("checkout");
    let transaction_id = s(&reply, "transaction_id");
    let attempt_id = s(&reply, "attempt_id");
    let invoice = h.invoice_of(&reply);
    wait_attempt(&mut signals, attempt_id, "501_EXPIRED").await;
    // The daemon deletes the invoice and checks it once more; after that answer it never asks
    // about this invoice again on its own.
    h.mock
        .wait_for("a check after the invoice was deleted", |state| {
            state
                .seen
                .iter()
                .position(|seen| seen.route == Route::CancelInvoice)
                .is_some_and(|at| state.seen[at + 1..].iter().any(|s| s.route == Route::Check))
        })
        .await;
    let checks_before = h.mock.count(Route::Check);
    let payment_id = h.mock.pay(&invoice.invoice_id, "4200");
    let day = day_of(&h.payment(&payment_id));

    let rows = h.reconcile(&day, false).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = row_of(&rows, &payment_id);
    assert_eq!(row["verdict"], "missing", "{row}");
    assert_eq!(row["provider_amount"], "4200.0000", "{row}");
    assert!(row["local_amount"].is_null(), "{row}");
    assert_eq!(row["invoice_id"], invoice.invoice_id.as_str(), "{row}");
    assert_eq!(row["attempt_id"], attempt_id, "{row}");
    assert_eq!(row["transaction_id"], transaction_id, "{row}");
    assert_eq!(
        h.mock.count(Route::Check),
        checks_before,
        "without record_missing the invoice is not checked"
    );
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "transaction_status"), "100_NEW");
    assert_eq!(s(&view, "paid"), "0.0000");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(0));

    let rows = h.reconcile(&day, true).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = row_of(&rows, &payment_id);
    assert_eq!(row["verdict"], "recorded", "{row}");
    assert_eq!(row["local_amount"], "4200.0000", "{row}");
    assert_eq!(row["attempt_id"], attempt_id, "{row}");
    assert_eq!(row["transaction_id"], transaction_id, "{row}");
    assert_eq!(h.mock.count(Route::Check), checks_before + 1);
    wait_attempt(&mut signals, attempt_id, "302_SUCCESS").await;
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "transaction_status"), "304_SETTLED");
    assert_eq!(s(&view, "paid"), "4200.0000");
    let payments = view["payments"].as_array().expect("payments");
    assert_eq!(payments.len(), 1, "{payments:?}");

    for record_missing in [false, true] {
        let rows = h.reconcile(&day, record_missing).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = row_of(&rows, &payment_id);
        assert_eq!(row["verdict"], "matched", "{row}");
        assert_eq!(row["local_amount"], "4200.0000", "{row}");
    }
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "paid"), "4200.0000", "recorded once");
}

/// (c) QPay reports a recorded payment with another amount: `amount_differs`, both amounts
/// shown, and `record_missing` leaves the recorded money alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amount_qpay_reports_differently_is_flagged() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("qrec-differs", "4200"))
        .await
        .expect("checkout");
    let transaction_id = s(&reply, "transaction_id");
    let invoice = h.invoice_of(&reply);
    let payment_id = h.mock.pay(&invoice.invoice_id, "4200");
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;
    h.mock.set_payment_amount(&payment_id, "4000");
    let day = day_of(&h.payment(&payment_id));

    for record_missing in [false, true] {
        let rows = h.reconcile(&day, record_missing).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        let row = row_of(&rows, &payment_id);
        assert_eq!(row["verdict"], "amount_differs", "{row}");
        assert_eq!(row["provider_amount"], "4000.0000", "{row}");
        assert_eq!(row["local_amount"], "4200.0000", "{row}");
        assert_eq!(row["attempt_id"], s(&reply, "attempt_id"), "{row}");
        assert_eq!(row["transaction_id"], transaction_id, "{row}");
    }
    let view = h.client.get_transaction(transaction_id).await.expect("get");
    assert_eq!(s(&view, "paid"), "4200.0000");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(1));
}

/// A payment at 20:00 UTC is made at 04:00 the next day in Mongolia, so QPay lists it under
/// that next day: reconciling the UTC day must not flag it `local_only`, and reconciling the
/// Mongolian day must find it `matched`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_side_of_a_qpay_day_is_mongolias_day() {
    let h = QpayHarness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("qrec-day", "4200"))
        .await
        .expect("checkout");
    let invoice = h.invoice_of(&reply);
    // Two days ago at 20:00 UTC: far enough back that it is no edge of today.
    let utc_day = time::OffsetDateTime::now_utc().date() - time::Duration::days(2);
    let at = utc_day.with_hms(20, 0, 0).expect("time").assume_utc();
    let paid_at = SystemTime::UNIX_EPOCH + Duration::from_secs(at.unix_timestamp() as u64);
    let payment_id = h.mock.pay_at(&invoice.invoice_id, None, "4200", paid_at);
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;

    let day = day_of(&h.payment(&payment_id));
    let utc_date = day_before(&day);
    let rows = h.reconcile(&day, false).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(row_of(&rows, &payment_id)["verdict"], "matched");
    let rows = h.reconcile(&utc_date, false).await;
    assert!(
        rows.is_empty(),
        "QPay lists nothing on {utc_date} and nothing was paid then in Mongolia: {rows:?}"
    );
}
