//! Every AppotaPay answer read into what the engine sees, as pure functions of the bytes
//! AppotaPay sent.
//!
//! The provider calls these very functions on what comes off the wire; they are public so that
//! the property run (`tests/parsers`) can feed them arbitrary bytes and JSON near AppotaPay's
//! shapes and prove that no answer, however wrong, panics the daemon. IPNs are read by
//! [`super::verify_ipn`], public already. They perform no I/O and log nothing.

use super::card::{CARD_INVOICE_PREFIX, card_created_answer, card_refusal, card_status_answer};
use super::client::{parse_retry_after, refusal_of};
pub use super::orders::OrderCreated;
use super::orders::{created_answer, pos_check, status_answer};
use crate::providers::{CheckResult, Invoice, ProviderError};

/// The 2xx answer to `POST /api/v2/partner/orders/payment/create` for `partner_ref_id`.
pub fn order_created(bytes: &[u8], partner_ref_id: &str) -> Result<OrderCreated, ProviderError> {
    created_answer(bytes, partner_ref_id)
}

/// The 2xx answer to `GET /api/v2/partner/orders/transaction/{partner_ref_id}`: where the
/// order stands.
pub fn order_status(bytes: &[u8], partner_ref_id: &str) -> Result<CheckResult, ProviderError> {
    status_answer(bytes, &format!("order {partner_ref_id}")).and_then(pos_check)
}

/// The 2xx answer to `POST /api/v2/orders/create-payment` for order `order_id`, with the
/// card's numbers `secrets` (redacted from any error).
pub fn card_payment_created(
    bytes: &[u8],
    order_id: &str,
    secrets: &[&str],
) -> Result<Invoice, ProviderError> {
    card_created_answer(bytes, &format!("{CARD_INVOICE_PREFIX}{order_id}"), secrets)
}

/// The 2xx answer to `GET /api/v2/orders/transaction` about card payment `order_id`.
pub fn card_payment_status(bytes: &[u8], order_id: &str) -> Result<CheckResult, ProviderError> {
    card_status_answer(bytes, &format!("card payment {order_id}"))
}

/// An error answer (HTTP `status` with `body` and the `Retry-After` header, read at `now`) to a
/// call about `object` (`order X`, which makes code 36 `NotFound`), in the engine's vocabulary.
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
    .into_error(object)
}

/// An error answer to a card payment's create, with the card's numbers `secrets` redacted.
pub fn card_payment_error(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    now: time::OffsetDateTime,
    secrets: &[&str],
) -> ProviderError {
    card_refusal(
        refusal_of(
            status,
            body,
            retry_after.and_then(|value| parse_retry_after(value, now)),
        )
        .redact(secrets),
    )
}
