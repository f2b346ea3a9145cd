//! QPay's answers (`qrpayd::providers::qpay::answers`, the functions the provider itself calls
//! on what QPay sends): tokens, the created invoice, invoice details, single payments, pages of
//! a payment check and of the payment list, and error bodies with `Retry-After`.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use rust_decimal::Decimal;

use qrpayd::providers::ProviderError;
use qrpayd::providers::qpay::answers;

use crate::json::{Shape, any_body, any_json, body_near};

/// The access token of every generated token answer that uses the known one: it must never
/// show in an error.
const SECRET_TOKEN: &str = "MOCK-ACCESS-TOKEN-7f3a-secret";

fn token_shape() -> Shape {
    Shape::Object(vec![
        ("access_token", Shape::Word(&[SECRET_TOKEN])),
        ("refresh_token", Shape::Word(&["MOCK-REFRESH-TOKEN-1", ""])),
        ("expires_in", Shape::Count),
        ("refresh_expires_in", Shape::Count),
        ("token_type", Shape::Word(&["bearer"])),
        ("scope", Shape::Text),
    ])
}

fn link_shape() -> Shape {
    Shape::Object(vec![
        ("name", Shape::Text),
        ("description", Shape::Text),
        ("logo", Shape::Url),
        ("link", Shape::Url),
    ])
}

fn invoice_created_shape() -> Shape {
    Shape::Object(vec![
        ("invoice_id", Shape::Id),
        ("qr_text", Shape::Qr),
        ("qr_image", Shape::Text),
        ("qPay_shortUrl", Shape::Url),
        ("urls", Shape::Array(Box::new(link_shape()))),
        ("qPay_deeplink", Shape::Array(Box::new(link_shape()))),
    ])
}

fn invoice_details_shape() -> Shape {
    Shape::Object(vec![
        ("invoice_id", Shape::Id),
        (
            "invoice_status",
            Shape::Word(&["OPEN", "PAID", "CANCELLED"]),
        ),
        ("sender_invoice_no", Shape::Id),
        ("sender_terminal_code", Shape::Text),
        ("invoice_description", Shape::Text),
        ("total_amount", Shape::Amount),
        ("amount", Shape::Amount),
        ("qr_text", Shape::Qr),
    ])
}

const STATUSES: &[&str] = &["PAID", "REFUNDED", "CANCELED", "paid", "FAILED", ""];

fn row_shape() -> Shape {
    Shape::Object(vec![
        ("payment_id", Shape::Id),
        ("payment_status", Shape::Word(STATUSES)),
        ("payment_date", Shape::Date),
        ("payment_amount", Shape::Amount),
        ("payment_fee", Shape::Amount),
        ("payment_currency", Shape::Word(&["MNT", "USD"])),
        ("payment_wallet", Shape::Text),
        ("transaction_type", Shape::Word(&["P2P", "CARD"])),
        ("paid_by", Shape::Text),
        ("object_type", Shape::Word(&["INVOICE", "QR"])),
        ("object_id", Shape::Word(&["QRPAYD_TEST_INVOICE", "inv-1"])),
    ])
}

fn page_shape() -> Shape {
    Shape::Object(vec![
        ("count", Shape::Count),
        ("paid_amount", Shape::Amount),
        ("rows", Shape::Array(Box::new(row_shape()))),
    ])
}

fn details_shape() -> Shape {
    Shape::Object(vec![("invoice_id", Shape::Id)])
}

/// `{"error": "CODE", "message": "..."}`
fn flat_error_shape() -> Shape {
    Shape::Object(vec![
        (
            "error",
            Shape::Word(&["INVOICE_PAID", "INVOICE_NOTFOUND", "PAYMENT_SETTLED"]),
        ),
        ("message", Shape::Text),
        ("details", details_shape()),
        ("invoice_id", Shape::Id),
    ])
}

/// `{"error": {"code": "...", "message": "...", "details": {...}}}`
fn nested_error_shape() -> Shape {
    Shape::Object(vec![
        (
            "error",
            Shape::Object(vec![
                (
                    "code",
                    Shape::Word(&["INVALID_REQUEST", "INVOICE_CODE_REGISTERED"]),
                ),
                ("message", Shape::Text),
                ("details", details_shape()),
            ]),
        ),
        ("code", Shape::Text),
        ("message", Shape::Text),
        ("details", details_shape()),
    ])
}

/// `Retry-After` values, well and badly formed.
fn retry_after() -> BoxedStrategy<Option<String>> {
    proptest::option::of(prop_oneof![
        "[0-9]{1,25}",
        "-[0-9]{1,5}",
        proptest::sample::select(
            &[
                "Sat, 21 Nov 2026 10:00:07 GMT",
                "Fri, 31 Dec 9999 23:59:59 GMT",
                "Mon, 01 Jan 0000 00:00:00 GMT",
                "Sat, 21 Nov 2026 10:00:07 UTC",
                "",
                " 3 ",
                "3.5",
            ][..]
        )
        .prop_map(str::to_owned),
        "[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        "\\PC{0,20}",
    ])
    .boxed()
}

/// What an invoice asked for, as the provider may know it.
fn invoice_amount() -> BoxedStrategy<Option<Decimal>> {
    proptest::option::of(prop_oneof![
        (1i64..100_000_000, 0u32..3).prop_map(|(n, scale)| Decimal::new(n, scale)),
        Just(Decimal::MAX),
        Just(Decimal::ZERO),
        Just(Decimal::new(-5, 0)),
    ])
    .boxed()
}

/// An error's text is one plain, bounded line: what the till and the journal may be shown.
fn one_line(error: &ProviderError) -> Result<(), TestCaseError> {
    crate::plain_line(&error.to_string())
}

fn each_error<T>(result: &Result<T, ProviderError>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(error) => one_line(error),
    }
}

/// Every reader on one body.
fn exercise(bytes: &[u8], amount: Option<Decimal>) -> Result<(), TestCaseError> {
    let token = answers::token(bytes, 1_769_670_125);
    if let Ok(lifetimes) = &token {
        prop_assert!(lifetimes.renew_at <= lifetimes.access_expires_at);
    }
    if let Err(error) = &token {
        prop_assert!(!error.to_string().contains(SECRET_TOKEN));
    }
    each_error(&token)?;
    each_error(&answers::invoice_created(bytes))?;
    each_error(&answers::invoice_details(bytes))?;
    each_error(&answers::payment(bytes))?;
    each_error(&answers::done(bytes))?;
    check_properties(&[bytes], amount)?;
    let listed = answers::payment_list_pages(
        &[bytes],
        time::macros::date!(2020 - 10 - 19),
        "QRPAYD_TEST_INVOICE",
    );
    if let Ok(listed) = &listed {
        let mut ids: Vec<&str> = listed.iter().map(|p| p.payment_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), listed.len(), "a payment listed twice");
    }
    each_error(&listed)?;
    Ok(())
}

/// A check's result: each payment once, and paid only when the payments cover the amount.
fn check_properties(pages: &[&[u8]], amount: Option<Decimal>) -> Result<(), TestCaseError> {
    let result = answers::check_pages(pages, amount);
    if let Ok(check) = &result {
        let mut ids: Vec<&str> = check
            .payments
            .iter()
            .map(|p| p.payment_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), check.payments.len(), "a payment counted twice");
        if check.state == qrpayd::providers::InvoiceState::Paid {
            let paid = check
                .payments
                .iter()
                .try_fold(Decimal::ZERO, |sum, p| sum.checked_add(p.amount));
            prop_assert!(
                matches!((paid, amount), (Some(paid), Some(amount)) if paid >= amount),
                "paid without the payments covering the amount"
            );
        }
    }
    each_error(&result)
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn qpay_answers_never_panic_on_arbitrary_bytes(
        bytes in any_body(400),
        amount in invoice_amount(),
    ) {
        exercise(&bytes, amount)?;
    }

    #[test]
    fn qpay_answers_never_panic_on_arbitrary_json(json in any_json(), amount in invoice_amount()) {
        exercise(json.text().as_bytes(), amount)?;
    }

    #[test]
    fn qpay_token_answers_near_the_real_shape(body in body_near(&token_shape())) {
        exercise(&body, None)?;
    }

    #[test]
    fn qpay_invoice_answers_near_the_real_shape(
        created in body_near(&invoice_created_shape()),
        details in body_near(&invoice_details_shape()),
        row in body_near(&row_shape()),
    ) {
        let invoice = answers::invoice_created(&created);
        if let Ok(invoice) = &invoice {
            prop_assert!(invoice.deep_links.iter().all(|l| !l.link.is_empty()));
            prop_assert!(invoice.short_url.as_deref() != Some(""));
        }
        each_error(&invoice)?;
        each_error(&answers::invoice_details(&details))?;
        each_error(&answers::payment(&row))?;
    }

    #[test]
    fn qpay_payment_pages_near_the_real_shape(
        pages in proptest::collection::vec(body_near(&page_shape()), 1..4),
        amount in invoice_amount(),
    ) {
        let pages: Vec<&[u8]> = pages.iter().map(|page| &**page).collect();
        check_properties(&pages, amount)?;
        let listed = answers::payment_list_pages(
            &pages,
            time::macros::date!(2020 - 10 - 19),
            "QRPAYD_TEST_INVOICE",
        );
        each_error(&listed)?;
    }

    #[test]
    fn qpay_error_answers_near_the_real_shape(
        status in prop_oneof![100u16..600, 0u16..=u16::MAX],
        body in prop_oneof![
            body_near(&flat_error_shape()),
            body_near(&nested_error_shape()),
            any_body(100),
        ],
        retry_after in retry_after(),
        object in proptest::option::of(Just("invoice inv-1")),
    ) {
        let error = answers::error(status, &body, retry_after.as_deref(), crate::now(), object);
        one_line(&error)?;
        if status == 429 {
            let rate_limited = matches!(error, ProviderError::RateLimited { .. });
            prop_assert!(rate_limited, "429 read as {:?}", error);
        }
    }
}
