//! QPay v2's wire format: the request and response bodies as typed serde structs, the exact
//! decimal encoding of amounts, and the documented length limits.
//!
//! This module owns the shapes only. It never sends anything, never logs, and never holds a
//! credential. Amounts cross it as `rust_decimal::Decimal` in both directions and are never
//! turned into a float: they are written as JSON numbers made from the decimal's own digits
//! (through `serde_json`'s `RawValue`) and read from the raw JSON text of a number or a string.
//!
//! The request model is the full one of QPay's reference (receiver, branch, staff and terminal
//! data, lines with discounts, surcharges and taxes, transactions with bank accounts, partial
//! payment, expiry, VAT). Its length limits are checked by [`InvoiceRequest::validate`] before
//! anything is sent. Limits count UTF-16 code units (QPay's service runs on Node.js, where a
//! string's length is counted that way), which is never fewer than the characters, so a text
//! that passes here is within the limit whichever way QPay counts.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A decimal amount as QPay's JSON carries it.
///
/// Written as a JSON number with exactly the decimal's digits (`12500`, `99.5`); read from a
/// JSON number (`100`, `100.00`, `1e2`) or a string (`"100.00"`) without passing through `f64`.
/// Only `serde_json` can write it (it is a raw JSON fragment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireDecimal(pub Decimal);

impl Serialize for WireDecimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Display never uses an exponent, so the text is a valid JSON number.
        let raw =
            RawValue::from_string(self.0.normalize().to_string()).map_err(S::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WireDecimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = unquote(raw.get()).map_err(D::Error::custom)?;
        parse_decimal_text(&text)
            .map(WireDecimal)
            .ok_or_else(|| D::Error::custom(format!("{text:?} is not a decimal amount")))
    }
}

/// An identifier QPay sends as a string or as a bare number (`payment_id` is both in its
/// documents); kept as the exact text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WireId(pub String);

impl<'de> Deserialize<'de> for WireId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = unquote(raw.get()).map_err(D::Error::custom)?;
        if text.is_empty() {
            return Err(D::Error::custom("an empty identifier"));
        }
        Ok(WireId(text))
    }
}

/// A count QPay may send as a number or a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireCount(pub u64);

impl<'de> Deserialize<'de> for WireCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = unquote(raw.get()).map_err(D::Error::custom)?;
        text.parse::<u64>()
            .map(WireCount)
            .map_err(|_| D::Error::custom(format!("{text:?} is not a count")))
    }
}

/// The text of a raw JSON scalar: a string's content, or a number's digits.
fn unquote(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw)
            .map(|s| s.trim().to_owned())
            .map_err(|e| e.to_string())
    } else if raw
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        && !raw.is_empty()
    {
        Ok(raw.to_owned())
    } else {
        Err("expected a number or a string".to_owned())
    }
}

/// Parses `100`, `-1.5`, `100.00` or `1e2` exactly.
pub fn parse_decimal_text(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text).ok()
    }
}

// Requests.

/// `POST /v2/invoice`: the full invoice model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvoiceRequest {
    pub invoice_code: String,
    /// The merchant's number for the invoice: unique forever, stable across retries.
    pub sender_invoice_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_branch_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_branch_data: Option<PartyData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_staff_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_staff_data: Option<PartyData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_terminal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_terminal_data: Option<TerminalData>,
    pub invoice_receiver_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_receiver_data: Option<PartyData>,
    pub invoice_description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_due_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_expiry: Option<bool>,
    /// RFC 3339 in UTC (`2026-11-21T10:35:00.000Z`): QPay's documents type it "date", the type
    /// they also give `payment_date`, whose example is in this form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calculate_vat: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_customer_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_tax_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_partial: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum_amount: Option<WireDecimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_exceed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_amount: Option<WireDecimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<WireDecimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<InvoiceLine>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub transactions: Vec<InvoiceTransaction>,
}

/// Branch, staff or receiver data: who they are and where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartyData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zipcode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TerminalData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_product_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_product_code: Option<String>,
    pub line_description: String,
    pub line_quantity: WireDecimal,
    pub line_unit_price: WireDecimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Adjustment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub surcharges: Vec<Adjustment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taxes: Vec<Tax>,
}

/// A discount (`discount_code`) or a surcharge (`surcharge_code`) of a line; the code's name
/// is set by the list it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Adjustment {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surcharge_code: Option<String>,
    pub description: String,
    pub amount: WireDecimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tax {
    /// `VAT`, `CITY_TAX`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_code: Option<String>,
    pub description: String,
    pub amount: WireDecimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city_tax: Option<WireDecimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A transaction of an invoice: where (part of) the money goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceTransaction {
    pub description: String,
    pub amount: WireDecimal,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<BankAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BankAccount {
    pub account_bank_code: String,
    pub account_number: String,
    pub account_name: String,
    pub account_currency: String,
}

/// `offset` of the paged requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Offset {
    pub page_number: u32,
    pub page_limit: u32,
}

/// `POST /v2/payment/check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRequest<'a> {
    pub object_type: &'a str,
    pub object_id: &'a str,
    pub offset: Offset,
}

/// `POST /v2/payment/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRequest<'a> {
    pub object_type: &'a str,
    pub object_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_branch_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_terminal_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_staff_code: Option<&'a str>,
    pub offset: Offset,
}

/// The body of `DELETE /v2/payment/cancel/{id}` and `DELETE /v2/payment/refund/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentReversal<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<&'a str>,
    pub note: &'a str,
}

// Responses. Unknown fields are ignored: QPay adds fields over time.

/// The answer to `POST /v2/auth/token` and `POST /v2/auth/refresh`. Holds secrets: never
/// `Debug`-printed (it has no `Debug`).
#[derive(Deserialize)]
pub struct TokenReply {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<WireCount>,
    pub refresh_expires_in: Option<WireCount>,
}

/// A bank-app link of an invoice.
#[derive(Debug, Clone, Deserialize)]
pub struct BankLink {
    pub name: Option<String>,
    pub description: Option<String>,
    pub link: Option<String>,
}

/// The answer to `POST /v2/invoice`.
#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceCreated {
    pub invoice_id: String,
    pub qr_text: Option<String>,
    #[serde(rename = "qPay_shortUrl")]
    pub short_url: Option<String>,
    pub urls: Option<Vec<BankLink>>,
    /// Some answers name the links this way instead.
    #[serde(rename = "qPay_deeplink")]
    pub deeplinks: Option<Vec<BankLink>>,
}

/// The answer to `GET /v2/invoice/{id}` (the fields qrpayd reads; QPay sends more).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InvoiceDetails {
    pub invoice_id: Option<String>,
    pub invoice_status: Option<String>,
    pub sender_invoice_no: Option<String>,
    pub sender_terminal_code: Option<String>,
    pub invoice_description: Option<String>,
    pub total_amount: Option<WireDecimal>,
    pub amount: Option<WireDecimal>,
    pub qr_text: Option<String>,
}

/// One row of `POST /v2/payment/check`, `POST /v2/payment/list`, or `GET /v2/payment/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentRow {
    pub payment_id: Option<WireId>,
    pub payment_status: Option<String>,
    pub payment_date: Option<String>,
    pub payment_amount: Option<WireDecimal>,
    pub payment_fee: Option<WireDecimal>,
    pub payment_currency: Option<String>,
    pub payment_wallet: Option<String>,
    pub transaction_type: Option<String>,
    pub paid_by: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
}

/// A page of payments.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentPage {
    pub count: Option<WireCount>,
    /// Absent when `count` is 0; not trusted for anything (rows are summed instead).
    pub paid_amount: Option<WireDecimal>,
    #[serde(default)]
    pub rows: Vec<PaymentRow>,
}

// Length limits.

/// A field over QPay's documented limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthError {
    pub field: String,
    pub length: usize,
    pub max: usize,
}

impl fmt::Display for LengthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} characters, QPay takes at most {}",
            self.field, self.length, self.max
        )
    }
}

/// The length QPay measures: UTF-16 code units (see the module documentation).
pub fn qpay_length(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Checks one text against its limit.
pub fn check_length(field: &str, value: &str, max: usize) -> Result<(), LengthError> {
    let length = qpay_length(value);
    if length > max {
        return Err(LengthError {
            field: field.to_owned(),
            length,
            max,
        });
    }
    Ok(())
}

fn check_opt(field: &str, value: &Option<String>, max: usize) -> Result<(), LengthError> {
    match value {
        Some(value) => check_length(field, value, max),
        None => Ok(()),
    }
}

/// The limits of seed 002, field by field.
pub mod limits {
    pub const INVOICE_CODE: usize = 45;
    pub const SENDER_INVOICE_NO: usize = 45;
    pub const SENDER_BRANCH_CODE: usize = 45;
    pub const SENDER_STAFF_CODE: usize = 100;
    pub const SENDER_TERMINAL_CODE: usize = 45;
    pub const INVOICE_RECEIVER_CODE: usize = 45;
    pub const INVOICE_DESCRIPTION: usize = 255;
    pub const CALLBACK_URL: usize = 255;
    pub const NOTE: usize = 1000;
    pub const REGISTER: usize = 20;
    pub const NAME: usize = 100;
    pub const EMAIL: usize = 255;
    pub const PHONE: usize = 20;
    pub const ADDRESS_PART: usize = 100;
    pub const ZIPCODE: usize = 20;
    pub const COORDINATE: usize = 20;
    pub const PRODUCT_CODE: usize = 45;
    pub const LINE_DESCRIPTION: usize = 255;
    pub const ADJUSTMENT_CODE: usize = 45;
    pub const ADJUSTMENT_DESCRIPTION: usize = 100;
    pub const TRANSACTION_DESCRIPTION: usize = 100;
    pub const ACCOUNT_NUMBER: usize = 100;
    pub const ACCOUNT_NAME: usize = 100;
}

impl InvoiceRequest {
    /// Checks every documented length limit; the error names the first field over its limit
    /// (`lines[2].line_description`).
    pub fn validate(&self) -> Result<(), LengthError> {
        use limits::*;
        check_length("invoice_code", &self.invoice_code, INVOICE_CODE)?;
        check_length(
            "sender_invoice_no",
            &self.sender_invoice_no,
            SENDER_INVOICE_NO,
        )?;
        check_opt(
            "sender_branch_code",
            &self.sender_branch_code,
            SENDER_BRANCH_CODE,
        )?;
        if let Some(data) = &self.sender_branch_data {
            data.validate("sender_branch_data")?;
        }
        check_opt(
            "sender_staff_code",
            &self.sender_staff_code,
            SENDER_STAFF_CODE,
        )?;
        if let Some(data) = &self.sender_staff_data {
            data.validate("sender_staff_data")?;
        }
        check_opt(
            "sender_terminal_code",
            &self.sender_terminal_code,
            SENDER_TERMINAL_CODE,
        )?;
        if let Some(data) = &self.sender_terminal_data {
            check_opt("sender_terminal_data.name", &data.name, NAME)?;
        }
        check_length(
            "invoice_receiver_code",
            &self.invoice_receiver_code,
            INVOICE_RECEIVER_CODE,
        )?;
        if let Some(data) = &self.invoice_receiver_data {
            data.validate("invoice_receiver_data")?;
        }
        check_length(
            "invoice_description",
            &self.invoice_description,
            INVOICE_DESCRIPTION,
        )?;
        check_opt("callback_url", &self.callback_url, CALLBACK_URL)?;
        check_opt("note", &self.note, NOTE)?;
        for (index, line) in self.lines.iter().enumerate() {
            line.validate(&format!("lines[{index}]"))?;
        }
        for (index, transaction) in self.transactions.iter().enumerate() {
            let field = format!("transactions[{index}]");
            check_length(
                &format!("{field}.description"),
                &transaction.description,
                TRANSACTION_DESCRIPTION,
            )?;
            for (a, account) in transaction.accounts.iter().enumerate() {
                check_length(
                    &format!("{field}.accounts[{a}].account_number"),
                    &account.account_number,
                    ACCOUNT_NUMBER,
                )?;
                check_length(
                    &format!("{field}.accounts[{a}].account_name"),
                    &account.account_name,
                    ACCOUNT_NAME,
                )?;
            }
        }
        Ok(())
    }
}

impl PartyData {
    fn validate(&self, field: &str) -> Result<(), LengthError> {
        use limits::*;
        check_opt(&format!("{field}.register"), &self.register, REGISTER)?;
        check_opt(&format!("{field}.name"), &self.name, NAME)?;
        check_opt(&format!("{field}.email"), &self.email, EMAIL)?;
        check_opt(&format!("{field}.phone"), &self.phone, PHONE)?;
        if let Some(address) = &self.address {
            let field = format!("{field}.address");
            for (name, value, max) in [
                ("city", &address.city, ADDRESS_PART),
                ("district", &address.district, ADDRESS_PART),
                ("street", &address.street, ADDRESS_PART),
                ("building", &address.building, ADDRESS_PART),
                ("address", &address.address, ADDRESS_PART),
                ("zipcode", &address.zipcode, ZIPCODE),
                ("longitude", &address.longitude, COORDINATE),
                ("latitude", &address.latitude, COORDINATE),
            ] {
                check_opt(&format!("{field}.{name}"), value, max)?;
            }
        }
        Ok(())
    }
}

impl InvoiceLine {
    fn validate(&self, field: &str) -> Result<(), LengthError> {
        use limits::*;
        check_opt(
            &format!("{field}.sender_product_code"),
            &self.sender_product_code,
            PRODUCT_CODE,
        )?;
        check_opt(
            &format!("{field}.tax_product_code"),
            &self.tax_product_code,
            PRODUCT_CODE,
        )?;
        check_length(
            &format!("{field}.line_description"),
            &self.line_description,
            LINE_DESCRIPTION,
        )?;
        check_opt(&format!("{field}.note"), &self.note, NOTE)?;
        for (list, adjustments) in [
            ("discounts", &self.discounts),
            ("surcharges", &self.surcharges),
        ] {
            for (index, adjustment) in adjustments.iter().enumerate() {
                let field = format!("{field}.{list}[{index}]");
                check_opt(
                    &format!("{field}.discount_code"),
                    &adjustment.discount_code,
                    ADJUSTMENT_CODE,
                )?;
                check_opt(
                    &format!("{field}.surcharge_code"),
                    &adjustment.surcharge_code,
                    ADJUSTMENT_CODE,
                )?;
                check_length(
                    &format!("{field}.description"),
                    &adjustment.description,
                    ADJUSTMENT_DESCRIPTION,
                )?;
            }
        }
        for (index, tax) in self.taxes.iter().enumerate() {
            check_length(
                &format!("{field}.taxes[{index}].description"),
                &tax.description,
                ADJUSTMENT_DESCRIPTION,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("literal")
    }

    #[test]
    fn amounts_are_written_as_exact_json_numbers() {
        #[derive(Serialize)]
        struct Body {
            amount: WireDecimal,
            price: WireDecimal,
            big: WireDecimal,
        }
        let body = Body {
            amount: WireDecimal(dec("12500.00")),
            price: WireDecimal(dec("0.10")),
            // More digits than an f64 holds: it must arrive as written.
            big: WireDecimal(dec("12345678901234567.89")),
        };
        let text = serde_json::to_string(&body).expect("serialises");
        assert_eq!(
            text,
            r#"{"amount":12500,"price":0.1,"big":12345678901234567.89}"#
        );
    }

    #[test]
    fn amounts_are_read_exactly_from_numbers_and_strings() {
        #[derive(Deserialize)]
        struct Body {
            a: WireDecimal,
            b: WireDecimal,
            c: WireDecimal,
            d: Option<WireDecimal>,
            e: Option<WireDecimal>,
        }
        let body: Body = serde_json::from_str(
            r#"{"a": "100.00", "b": 12345678901234567.89, "c": 1e2, "d": null}"#,
        )
        .expect("parses");
        assert_eq!(body.a.0, dec("100.00"));
        assert_eq!(body.b.0, dec("12345678901234567.89"));
        assert_eq!(body.c.0, dec("100"));
        assert_eq!(body.d, None);
        assert_eq!(body.e, None);
        assert!(serde_json::from_str::<WireDecimal>(r#""12,5""#).is_err());
        assert!(serde_json::from_str::<WireDecimal>("true").is_err());
    }

    #[test]
    fn payment_ids_may_be_numbers_or_strings() {
        let row: PaymentRow =
            serde_json::from_str(r#"{"payment_id": 593744473409193, "payment_amount": "100.00"}"#)
                .expect("parses");
        assert_eq!(row.payment_id, Some(WireId("593744473409193".into())));
        let row: PaymentRow =
            serde_json::from_str(r#"{"payment_id": "593744473409193"}"#).expect("parses");
        assert_eq!(row.payment_id, Some(WireId("593744473409193".into())));
    }

    #[test]
    fn the_seed_check_answer_parses() {
        let page: PaymentPage = serde_json::from_str(
            r#"{"count": 1, "paid_amount": 100, "rows": [{"payment_id": "593744473409193",
            "payment_status": "PAID", "payment_date": "2020-10-19T08:58:46.641Z",
            "payment_fee": "1.00", "payment_amount": "100.00", "payment_currency": "MNT",
            "payment_wallet": "0fc9b71c-cd87-4ffd-9cac-2279ebd9deb0", "transaction_type": "P2P",
            "card_transactions": [], "p2p_transactions": [{"x": 1.5}]}]}"#,
        )
        .expect("parses");
        assert_eq!(page.count, Some(WireCount(1)));
        assert_eq!(
            page.rows[0].payment_amount,
            Some(WireDecimal(dec("100.00")))
        );
        let empty: PaymentPage = serde_json::from_str(r#"{"count": 0, "rows": []}"#).expect("ok");
        assert_eq!(empty.paid_amount, None);
    }

    fn request() -> InvoiceRequest {
        InvoiceRequest {
            invoice_code: "TEST_INVOICE".into(),
            sender_invoice_no: "Q0123456789ABCDEF012345678".into(),
            invoice_receiver_code: "terminal".into(),
            invoice_description: "Order 1".into(),
            amount: Some(WireDecimal(dec("100"))),
            ..InvoiceRequest::default()
        }
    }

    #[test]
    fn the_full_model_serialises_with_the_seed_field_names() {
        let mut request = request();
        request.invoice_receiver_data = Some(PartyData {
            register: Some("TA89102712".into()),
            name: Some("Бат".into()),
            address: Some(Address {
                city: Some("Ulaanbaatar".into()),
                ..Address::default()
            }),
            ..PartyData::default()
        });
        request.lines = vec![InvoiceLine {
            sender_product_code: None,
            tax_product_code: Some("83051".into()),
            line_description: "Tea".into(),
            line_quantity: WireDecimal(dec("2")),
            line_unit_price: WireDecimal(dec("50.00")),
            note: None,
            discounts: vec![Adjustment {
                discount_code: Some("NONE".into()),
                surcharge_code: None,
                description: "uPoint".into(),
                amount: WireDecimal(dec("10")),
                note: None,
            }],
            surcharges: vec![],
            taxes: vec![Tax {
                tax_code: Some("VAT".into()),
                description: "НӨАТ".into(),
                amount: WireDecimal(dec("9.09")),
                city_tax: None,
                note: None,
            }],
        }];
        request.transactions = vec![InvoiceTransaction {
            description: "to the shop".into(),
            amount: WireDecimal(dec("100")),
            accounts: vec![BankAccount {
                account_bank_code: "050000".into(),
                account_number: "5000000000".into(),
                account_name: "KKTT".into(),
                account_currency: "MNT".into(),
            }],
        }];
        let value: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&request).expect("serialises"))
                .expect("valid JSON");
        assert_eq!(
            value["invoice_receiver_data"]["address"]["city"],
            "Ulaanbaatar"
        );
        assert_eq!(value["lines"][0]["discounts"][0]["discount_code"], "NONE");
        assert_eq!(value["lines"][0]["taxes"][0]["tax_code"], "VAT");
        assert_eq!(
            value["transactions"][0]["accounts"][0]["account_name"],
            "KKTT"
        );
        assert!(value.get("note").is_none(), "absent fields are left out");
        assert!(request.validate().is_ok());
    }

    #[test]
    fn every_limit_names_its_field() {
        type Change = Box<dyn Fn(&mut InvoiceRequest)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|r| r.invoice_description = "x".repeat(256)),
                "invoice_description",
            ),
            (
                Box::new(|r| r.sender_staff_code = Some("s".repeat(101))),
                "sender_staff_code",
            ),
            (Box::new(|r| r.note = Some("n".repeat(1001))), "note"),
            (
                Box::new(|r| {
                    r.invoice_receiver_data = Some(PartyData {
                        phone: Some("9".repeat(21)),
                        ..PartyData::default()
                    })
                }),
                "invoice_receiver_data.phone",
            ),
            (
                Box::new(|r| {
                    r.lines = vec![InvoiceLine {
                        sender_product_code: None,
                        tax_product_code: None,
                        line_description: "ok".into(),
                        line_quantity: WireDecimal(Decimal::ONE),
                        line_unit_price: WireDecimal(Decimal::ONE),
                        note: None,
                        discounts: vec![],
                        surcharges: vec![Adjustment {
                            discount_code: None,
                            surcharge_code: None,
                            description: "d".repeat(101),
                            amount: WireDecimal(Decimal::ONE),
                            note: None,
                        }],
                        taxes: vec![],
                    }]
                }),
                "lines[0].surcharges[0].description",
            ),
        ];
        for (change, field) in cases {
            let mut request = request();
            change(&mut request);
            let error = request.validate().expect_err(field);
            assert_eq!(error.field, field);
            assert!(error.to_string().starts_with(field), "{error}");
        }
    }

    #[test]
    fn lengths_count_utf16_units_so_emoji_count_twice() {
        assert_eq!(qpay_length("Бат"), 3);
        assert_eq!(qpay_length("😀"), 2);
        assert!(check_length("f", &"ө".repeat(255), 255).is_ok());
        assert!(check_length("f", &"😀".repeat(128), 255).is_err());
    }
}
