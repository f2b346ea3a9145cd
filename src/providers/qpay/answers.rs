//! Every QPay answer read into what the engine sees, as pure functions of the bytes QPay sent.
//!
//! The provider calls these very functions on what comes off the wire; they are public so that
//! the property run (`tests/parsers`) can feed them arbitrary bytes and JSON near QPay's shapes
//! and prove that no answer, however wrong, panics the daemon. They perform no I/O, log
//! nothing, and hold no secret: a token answer is summed up by its lifetimes only.

use rust_decimal::Decimal;
use std::collections::HashSet;

use super::InvoiceDetails;
use super::client::{parse_json, parse_retry_after, refusal_of};
use super::model::{PaymentPage, PaymentRow};
use super::payments::{CHECK_PATH, InvoiceRows, LIST_PATH, MAX_PAGES, Pages, check_result};
use crate::providers::{CheckResult, Invoice, ListedPayment, ProviderError};

/// When the tokens of a token answer expire and are renewed (Unix seconds): all the keeper
/// keeps of them but the tokens themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub access_expires_at: i64,
    /// When the keeper renews the access token (before it expires).
    pub renew_at: i64,
    pub refresh_expires_at: Option<i64>,
    pub has_refresh_token: bool,
}

/// The answer to `POST /v2/auth/token`, received at `now` (Unix seconds).
pub fn token(bytes: &[u8], now: i64) -> Result<TokenLifetimes, ProviderError> {
    super::auth::token_answer("/v2/auth/token", bytes, None, now).map(|t| t.lifetimes())
}

/// The answer to `POST /v2/invoice`: the invoice the engine records and shows.
pub fn invoice_created(bytes: &[u8]) -> Result<Invoice, ProviderError> {
    super::invoice::created_answer(bytes)
}

/// The answer to `GET /v2/invoice/{id}`.
pub fn invoice_details(bytes: &[u8]) -> Result<InvoiceDetails, ProviderError> {
    parse_json("/v2/invoice", bytes)
}

/// The answer to `GET /v2/payment/{id}`.
pub fn payment(bytes: &[u8]) -> Result<PaymentRow, ProviderError> {
    parse_json("/v2/payment", bytes)
}

/// A 2xx answer to `DELETE /v2/invoice/{id}`, `/v2/payment/cancel/{id}` or
/// `/v2/payment/refund/{id}`: done, or an unknown outcome when the body is not QPay's.
pub fn done(bytes: &[u8]) -> Result<(), ProviderError> {
    super::payments::done_answer("/v2/payment/cancel", bytes)
}

/// The pages QPay answered to `POST /v2/payment/check` for an invoice that asked for
/// `invoice_amount` (when this daemon made it), read as the provider reads them: page after
/// page until the last (at most as many as it would fetch), then what the invoice received.
pub fn check_pages(
    pages: &[&[u8]],
    invoice_amount: Option<Decimal>,
) -> Result<CheckResult, ProviderError> {
    let mut rows = InvoiceRows::default();
    let mut read = Pages::default();
    for bytes in pages.iter().take(MAX_PAGES as usize) {
        let page: PaymentPage = parse_json(CHECK_PATH, bytes)?;
        if read.take(page, |row| rows.add(row))? {
            break;
        }
    }
    check_result(&rows, invoice_amount)
}

/// The pages QPay answered to `POST /v2/payment/list`, read as reconciliation reads them: the
/// payments of `date` (Mongolian time), each once. `invoice_code` is the merchant's.
pub fn payment_list_pages(
    pages: &[&[u8]],
    date: time::Date,
    invoice_code: &str,
) -> Result<Vec<ListedPayment>, ProviderError> {
    let mut listed = Vec::new();
    let mut seen = HashSet::new();
    let mut read = Pages::default();
    for bytes in pages.iter().take(MAX_PAGES as usize) {
        let page: PaymentPage = parse_json(LIST_PATH, bytes)?;
        let last = read.take(page, |raw| {
            if let Some(payment) = super::payments::listed_row(raw, date, invoice_code, &mut seen)?
            {
                listed.push(payment);
            }
            Ok(())
        })?;
        if last {
            break;
        }
    }
    Ok(listed)
}

/// An error answer: HTTP `status` with `body` and the `Retry-After` header (read at `now`), to
/// a call about `object` (`invoice X`, which makes a not-found answer `NotFound`), in the
/// engine's vocabulary.
pub fn error(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    now: time::OffsetDateTime,
    object: Option<&str>,
) -> ProviderError {
    refusal_of(
        status,
        body,
        retry_after.and_then(|value| parse_retry_after(value, now)),
    )
    .into_error(object.map(str::to_owned))
}
