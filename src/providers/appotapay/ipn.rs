//! AppotaPay's instant payment notifications (IPN): `{"data": base64(json), "signature":
//! hex(HMAC-SHA256(data, secret key))}`, sent for final states only.
//!
//! [`verify_ipn`] checks the signature over the raw `data` string exactly as received, in
//! constant time, before anything else touches the data; only then is it decoded. A verified
//! IPN is a hint, not a fact: the caller applies it through the status API (as AppotaPay itself
//! advises), exactly like a poll result. Both shapes are read: the POS gateway's order (seed
//! 003's transaction fields) and the payment gateway's (`transaction` + `partnerReference`,
//! seed 004).
//!
//! This module never logs the data or the signature, and never acts on an unverified IPN.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rust_decimal::Decimal;
use secrecy::SecretString;

use super::auth::verify_hex;
use super::card::CARD_INVOICE_PREFIX;
use super::model::{GatewayAnswer, OrderStatus, StatusAnswer};

/// The answer AppotaPay expects to an IPN it may stop repeating.
pub const IPN_ACK_BODY: &str = r#"{"status":"ok"}"#;

/// What a verified IPN says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpnPayload {
    /// The invoice it is about, as qrpayd knows it: a POS order's `partner_ref_id`, or
    /// `card:<order id>` for a card payment.
    pub invoice_id: String,
    pub transaction_id: Option<String>,
    pub status: OrderStatus,
    /// The order's amount (for a card payment, without the customer's fee).
    pub amount: Option<Decimal>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Why an IPN was refused. None of these carries the data or the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpnError {
    /// The signature is not the HMAC of the data: nothing may change.
    #[error("the IPN signature does not match its data")]
    SignatureMismatch,
    /// Signed correctly, but not an IPN qrpayd can read.
    #[error("the IPN is signed but cannot be read: {0}")]
    Malformed(&'static str),
}

/// Verifies an IPN and reads it. See the module documentation.
pub fn verify_ipn(
    secret: &SecretString,
    data: &str,
    signature: &str,
) -> Result<IpnPayload, IpnError> {
    if !verify_hex(secret, data.as_bytes(), signature) {
        return Err(IpnError::SignatureMismatch);
    }
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    let json = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(&compact).ok())
        .ok_or(IpnError::Malformed("data is not base64"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&json).map_err(|_| IpnError::Malformed("data is not JSON"))?;
    if value.get("partnerReference").is_some() {
        read_gateway(value)
    } else {
        read_pos(value)
    }
}

fn read_pos(value: serde_json::Value) -> Result<IpnPayload, IpnError> {
    let answer: StatusAnswer = serde_json::from_value(value)
        .map_err(|_| IpnError::Malformed("unexpected fields or values"))?;
    let transaction = answer.into_transaction();
    let invoice_id = transaction
        .partner_ref_id
        .or(transaction.order_id)
        .filter(|id| !id.is_empty())
        .ok_or(IpnError::Malformed("no partner_ref_id"))?;
    Ok(IpnPayload {
        invoice_id,
        transaction_id: transaction.transaction_id,
        status: transaction.status.ok_or(IpnError::Malformed("no status"))?,
        amount: transaction.amount,
        error_code: transaction.error_code,
        error_message: transaction.error_message,
    })
}

fn read_gateway(value: serde_json::Value) -> Result<IpnPayload, IpnError> {
    let answer: GatewayAnswer = serde_json::from_value(value)
        .map_err(|_| IpnError::Malformed("unexpected fields or values"))?;
    let order_id = answer
        .partner_reference
        .and_then(|r| r.order)
        .and_then(|o| o.id)
        .filter(|id| !id.is_empty())
        .ok_or(IpnError::Malformed("no partnerReference.order.id"))?;
    let transaction = answer
        .transaction
        .ok_or(IpnError::Malformed("no transaction"))?;
    Ok(IpnPayload {
        invoice_id: format!("{CARD_INVOICE_PREFIX}{order_id}"),
        transaction_id: transaction.transaction_id,
        status: transaction.status.ok_or(IpnError::Malformed("no status"))?,
        amount: transaction.order_amount.or(transaction.amount),
        error_code: transaction.error_code,
        error_message: transaction.error_message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::appotapay::auth::sign_hex;

    fn signed(secret: &SecretString, json: &str) -> (String, String) {
        let data = STANDARD.encode(json);
        let signature = sign_hex(secret, data.as_bytes());
        (data, signature)
    }

    #[test]
    fn a_card_payment_ipn_names_the_card_invoice() {
        let secret = SecretString::from("s");
        let (data, signature) = signed(
            &secret,
            r#"{"transaction":{"transactionId":"AP1","status":"success","errorCode":0,"amount":11327,"orderAmount":10000},"partnerReference":{"order":{"id":"QKEY"}}}"#,
        );
        let payload = verify_ipn(&secret, &data, &signature).expect("verified");
        assert_eq!(payload.invoice_id, "card:QKEY");
        assert_eq!(payload.amount, Some(Decimal::from(10000)));
        assert_eq!(payload.error_code.as_deref(), Some("0"));
    }

    #[test]
    fn signed_garbage_is_malformed_and_unsigned_garbage_a_mismatch() {
        let secret = SecretString::from("s");
        let data = "not base64 at all!";
        let signature = sign_hex(&secret, data.as_bytes());
        assert_eq!(
            verify_ipn(&secret, data, &signature),
            Err(IpnError::Malformed("data is not base64"))
        );
        assert_eq!(
            verify_ipn(&secret, data, "00"),
            Err(IpnError::SignatureMismatch)
        );
        let (data, signature) = signed(&secret, r#"{"status":"success"}"#);
        assert_eq!(
            verify_ipn(&secret, &data, &signature),
            Err(IpnError::Malformed("no partner_ref_id"))
        );
    }
}
