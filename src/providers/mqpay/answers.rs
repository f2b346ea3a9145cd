//! Every MQ-Pay answer the gateway provider reads, as pure functions of the JSON MQ-Pay sent.
//!
//! The provider calls these very functions on what comes off the wire; they are public so that
//! the property run (`tests/parsers`) can feed them arbitrary JSON near MQ-Pay's shapes and
//! prove that no answer, however wrong, panics the daemon. They perform no I/O and log nothing.
//!
//! MQ-Pay writes amounts as decimal strings with four places (`"100000.0000"`). A whole JSON
//! number is read exactly too; a fractional one is refused, since it has been through a float.

use rust_decimal::Decimal;
use serde_json::Value;

use crate::domain::{Timestamp, parse_decimal};
use crate::providers::ProviderError;
use crate::providers::http::clean;

/// The longest id kept from MQ-Pay: ids are UUIDs or short codes.
const MAX_ID: usize = 128;
/// The longest QR text accepted (EMVCo's payloads are at most 512 characters).
const MAX_QR: usize = 1024;
/// The longest `qrUrl` kept.
const MAX_URL: usize = 2048;

/// What `POST /payments/checkout` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub transaction_id: String,
    pub attempt_id: String,
    pub qr_code: String,
    pub qr_url: Option<String>,
    pub expires_at: Option<Timestamp>,
}

/// An attempt as MQ-Pay lists it (`/payment-attempts`), or as `verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub id: String,
    pub transaction_id: Option<String>,
    pub status: String,
    pub kind: Option<String>,
    pub provider: Option<String>,
    pub amount: Option<Decimal>,
    pub parent_id: Option<String>,
    /// The QR, when MQ-Pay keeps it on the attempt.
    pub qr_code: Option<String>,
    pub qr_url: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Option<Timestamp>,
}

/// The answer to `POST /payments/verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub attempt: AttemptRow,
    /// `providerStatus.responseCode` and `.message`, passed through to `Verify`.
    pub provider_code: Option<String>,
    pub provider_message: Option<String>,
}

/// A payment result as MQ-Pay lists it (`/payment-results`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub id: String,
    pub attempt_id: Option<String>,
    pub transaction_id: Option<String>,
    pub provider: Option<String>,
    pub provider_payment_id: Option<String>,
    pub amount: Decimal,
    pub currency: Option<String>,
    pub paid_at: Option<Timestamp>,
}

/// A transaction as MQ-Pay lists it (`/transactions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRow {
    pub id: String,
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    pub status: Option<String>,
    pub paid: Option<Decimal>,
}

/// An answer that cannot be used: the call's outcome is unknown, and it is looked up or
/// repeated.
fn unusable(what: &str, why: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(format!("MQ-Pay's answer to {what} is unusable: {why}"))
}

/// `object[key]` as a string, cleaned; `None` when absent, null or empty.
fn text(object: &Value, key: &str) -> Option<String> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(clean)
        .filter(|s| !s.is_empty())
}

/// `object[key]` as an id: present, a string or a whole number, of a sane length, with no
/// control character or whitespace.
fn id(object: &Value, key: &str, what: &str) -> Result<String, ProviderError> {
    let value = match object.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(_) => return Err(unusable(what, format!("{key} is not an id"))),
        None => return Err(unusable(what, format!("{key} is missing"))),
    };
    if value.is_empty()
        || value.len() > MAX_ID
        || value.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(unusable(what, format!("{key} is not an id")));
    }
    Ok(value)
}

fn optional_id(object: &Value, key: &str, what: &str) -> Result<Option<String>, ProviderError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => id(object, key, what).map(Some),
    }
}

/// An amount: a decimal string, or a whole JSON number; never negative.
pub fn amount(value: &Value, what: &str) -> Result<Decimal, ProviderError> {
    let parsed = match value {
        Value::String(s) => parse_decimal(s.trim()).ok(),
        Value::Number(n) if n.is_u64() => n.as_u64().map(Decimal::from),
        Value::Number(n) if n.is_i64() => n.as_i64().map(Decimal::from),
        _ => None,
    };
    match parsed {
        Some(amount) if amount >= Decimal::ZERO => Ok(amount),
        _ => Err(unusable(what, "an amount is not a decimal string")),
    }
}

fn optional_amount(
    object: &Value,
    key: &str,
    what: &str,
) -> Result<Option<Decimal>, ProviderError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => amount(value, what).map(Some),
    }
}

/// A time: RFC 3339; an unreadable one is as good as none (times only inform).
fn time(object: &Value, key: &str) -> Option<Timestamp> {
    object
        .get(key)
        .and_then(Value::as_str)
        .and_then(Timestamp::parse_rfc3339)
}

/// The rows of a list answer: a bare array, or IGNIS's `{"count": N, "data": [...]}`.
pub fn rows<'a>(answer: &'a Value, what: &str) -> Result<&'a [Value], ProviderError> {
    match answer {
        Value::Array(rows) => Ok(rows),
        Value::Object(object) => match object.get("data") {
            Some(Value::Array(rows)) => Ok(rows),
            _ => Err(unusable(what, "it is neither a list nor {count, data}")),
        },
        _ => Err(unusable(what, "it is not a list")),
    }
}

/// The 2xx answer to `POST /payments/checkout`.
pub fn checkout(answer: &Value) -> Result<Checkout, ProviderError> {
    const WHAT: &str = "the checkout";
    let object = |key: &str| {
        answer
            .get(key)
            .filter(|v| v.is_object())
            .ok_or_else(|| unusable(WHAT, format!("{key} is missing")))
    };
    let transaction = object("transaction")?;
    let attempt = object("attempt")?;
    let payment = object("payment")?;
    let qr_code = qr(payment, WHAT)?.ok_or_else(|| unusable(WHAT, "payment.qrCode is missing"))?;
    Ok(Checkout {
        transaction_id: id(transaction, "id", WHAT)?,
        attempt_id: id(attempt, "id", WHAT)?,
        qr_code,
        qr_url: url(payment),
        expires_at: time(payment, "expiresAt"),
    })
}

/// A QR text: one line of printable ASCII (EMVCo's alphabet), bounded.
fn qr(object: &Value, what: &str) -> Result<Option<String>, ProviderError> {
    match object.get("qrCode") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= MAX_QR
                && s.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(unusable(what, "qrCode is not a QR text")),
    }
}

/// `qrUrl` when it is an https address of a sane length; anything else is dropped (it is only
/// a convenience link).
fn url(object: &Value) -> Option<String> {
    object
        .get("qrUrl")
        .and_then(Value::as_str)
        .filter(|u| {
            u.starts_with("https://")
                && u.len() <= MAX_URL
                && !u.chars().any(|c| c.is_control() || c.is_whitespace())
        })
        .map(str::to_owned)
}

/// One attempt row.
pub fn attempt_row(row: &Value) -> Result<AttemptRow, ProviderError> {
    const WHAT: &str = "an attempt";
    if !row.is_object() {
        return Err(unusable(WHAT, "it is not an object"));
    }
    let status = text(row, "status").ok_or_else(|| unusable(WHAT, "status is missing"))?;
    Ok(AttemptRow {
        id: id(row, "id", WHAT)?,
        transaction_id: optional_id(row, "transactionId", WHAT)?,
        status,
        kind: text(row, "type"),
        provider: text(row, "provider"),
        amount: optional_amount(row, "amount", WHAT)?,
        parent_id: optional_id(row, "parentId", WHAT)?,
        qr_code: qr(row, WHAT)?,
        qr_url: url(row),
        expires_at: time(row, "expiresAt"),
        created_at: time(row, "createdAt"),
    })
}

/// The 2xx answer to `POST /payments/verify`.
pub fn verified(answer: &Value) -> Result<Verified, ProviderError> {
    let attempt = answer
        .get("attempt")
        .ok_or_else(|| unusable("the verify", "attempt is missing"))?;
    let status = answer.get("providerStatus").unwrap_or(&Value::Null);
    let code = match status.get("responseCode") {
        Some(Value::String(s)) => Some(clean(s)),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(Verified {
        attempt: attempt_row(attempt)?,
        provider_code: code.filter(|c| !c.is_empty()),
        provider_message: text(status, "message"),
    })
}

/// One payment result row.
pub fn result_row(row: &Value) -> Result<ResultRow, ProviderError> {
    const WHAT: &str = "a payment result";
    if !row.is_object() {
        return Err(unusable(WHAT, "it is not an object"));
    }
    let amount = row
        .get("amount")
        .ok_or_else(|| unusable(WHAT, "amount is missing"))
        .and_then(|value| amount(value, WHAT))?;
    Ok(ResultRow {
        id: id(row, "id", WHAT)?,
        attempt_id: optional_id(row, "attemptId", WHAT)?,
        transaction_id: optional_id(row, "transactionId", WHAT)?,
        provider: text(row, "provider"),
        provider_payment_id: text(row, "providerPaymentId"),
        amount,
        currency: text(row, "currency"),
        paid_at: time(row, "paidAt"),
    })
}

/// One transaction row.
pub fn transaction_row(row: &Value) -> Result<TransactionRow, ProviderError> {
    const WHAT: &str = "a transaction";
    if !row.is_object() {
        return Err(unusable(WHAT, "it is not an object"));
    }
    Ok(TransactionRow {
        id: id(row, "id", WHAT)?,
        source_type: text(row, "sourceType"),
        source_id: text(row, "sourceId"),
        status: text(row, "status"),
        paid: optional_amount(row, "paid", WHAT)?,
    })
}

/// The 2xx answer to `POST /payments/refund`: the refund attempt MQ-Pay made.
pub fn refunded(answer: &Value) -> Result<AttemptRow, ProviderError> {
    let refund = answer
        .get("refundAttempt")
        .ok_or_else(|| unusable("the refund", "refundAttempt is missing"))?;
    attempt_row(refund)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seeds_checkout_answer_is_read() {
        let answer = json!({
            "transaction": {"id": "txn-uuid-001", "number": "TXN001", "status": "100_NEW",
                            "total": "100000.0000", "paid": "0.0000"},
            "attempt": {"id": "att-uuid-001", "code": "ATT001", "status": "204_SENT",
                        "provider": "VNPAY_QR_MMS", "method": "100_QR_CODE"},
            "payment": {"qrCode": "00020101021238...", "qrUrl": "https://pay.example/q/1",
                        "expiresAt": "2024-01-15T10:35:00Z"}
        });
        let checkout = checkout(&answer).expect("read");
        assert_eq!(checkout.transaction_id, "txn-uuid-001");
        assert_eq!(checkout.attempt_id, "att-uuid-001");
        assert_eq!(checkout.qr_url.as_deref(), Some("https://pay.example/q/1"));
        assert_eq!(
            checkout.expires_at,
            Timestamp::parse_rfc3339("2024-01-15T10:35:00Z")
        );
    }

    #[test]
    fn amounts_are_read_exactly_and_floats_refused() {
        assert_eq!(
            amount(&json!("100000.0000"), "x").ok(),
            Some(Decimal::from(100_000))
        );
        assert_eq!(amount(&json!(5000), "x").ok(), Some(Decimal::from(5000)));
        assert!(amount(&json!(0.1), "x").is_err(), "a float is refused");
        assert!(amount(&json!("-1"), "x").is_err());
        assert!(amount(&json!("1e5"), "x").is_err());
    }

    #[test]
    fn both_list_shapes_are_read() {
        assert_eq!(rows(&json!([1, 2]), "x").map(<[Value]>::len).ok(), Some(2));
        assert_eq!(
            rows(&json!({"count": 1, "data": [1]}), "x")
                .map(<[Value]>::len)
                .ok(),
            Some(1)
        );
        assert!(rows(&json!({"count": 1}), "x").is_err());
    }

    #[test]
    fn a_qr_with_a_control_character_or_no_id_is_unusable() {
        let mut answer = json!({
            "transaction": {"id": "t"}, "attempt": {"id": "a"},
            "payment": {"qrCode": "0002\n01"}
        });
        assert!(checkout(&answer).is_err());
        answer["payment"]["qrCode"] = json!("000201");
        answer["attempt"]["id"] = json!("");
        assert!(checkout(&answer).is_err());
    }

    #[test]
    fn the_verify_answer_passes_the_provider_status_through() {
        let answer = json!({
            "attempt": {"id": "att-1", "status": "302_SUCCESS", "provider": "VNPAY_QR_MMS"},
            "providerStatus": {"responseCode": "00", "message": "Success"}
        });
        let verified = verified(&answer).expect("read");
        assert_eq!(verified.attempt.status, "302_SUCCESS");
        assert_eq!(verified.provider_code.as_deref(), Some("00"));
        assert_eq!(verified.provider_message.as_deref(), Some("Success"));
    }
}
