//! AppotaPay's wire format: the POS gateway's order create and status answers (seed 003,
//! snake_case), the payment gateway's card / account payment (seed 004, camelCase), both error
//! bodies, and the lenient readers their examples need: `error_code` as a string or an integer,
//! amounts as JSON integers (or digit strings) read into [`Decimal`] without a float.
//!
//! This module only describes bytes. It holds no secret; the card request borrows the card
//! details only while it is serialized, and none of the request types derives `Debug`.

use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// The status of an AppotaPay transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Processing,
    Success,
    Error,
    /// Refunded or voided after the fact.
    Void,
    /// A word the documents do not list.
    Other(String),
}

impl OrderStatus {
    /// Reads AppotaPay's word, in any case.
    pub fn parse(word: &str) -> OrderStatus {
        match word.trim().to_ascii_lowercase().as_str() {
            "pending" => OrderStatus::Pending,
            "processing" => OrderStatus::Processing,
            "success" => OrderStatus::Success,
            "error" => OrderStatus::Error,
            "void" => OrderStatus::Void,
            _ => OrderStatus::Other(word.trim().to_owned()),
        }
    }

    /// The word as AppotaPay writes it.
    pub fn as_str(&self) -> &str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Processing => "processing",
            OrderStatus::Success => "success",
            OrderStatus::Error => "error",
            OrderStatus::Void => "void",
            OrderStatus::Other(word) => word,
        }
    }
}

impl<'de> Deserialize<'de> for OrderStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        Ok(OrderStatus::parse(&word))
    }
}

/// `POST /api/v2/partner/orders/payment/create`.
#[derive(Serialize)]
pub struct CreateOrder<'a> {
    pub partner_ref_id: &'a str,
    pub order_info: &'a str,
    pub terminal_id: &'a str,
    pub payment_method: &'a str,
    /// VND, a JSON integer.
    pub amount: i64,
}

/// The POS gateway's transaction fields, as the create answer nests them and the status
/// answer sends them (flat or nested: both are read).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PosTransaction {
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub partner_ref_id: Option<String>,
    /// The status answer's name for the partner's reference.
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub status: Option<OrderStatus>,
    #[serde(default, deserialize_with = "amount_opt")]
    pub amount: Option<Decimal>,
    #[serde(default, deserialize_with = "code_opt")]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub paid_at: Option<String>,
}

/// `payment_info` of a create answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PaymentInfo {
    /// A raw EMVCo string in practice; documented as a base64 image.
    #[serde(default)]
    pub qr_content: Option<String>,
    #[serde(default)]
    pub qr_url: Option<String>,
}

/// The answer to a create.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateAnswer {
    #[serde(default)]
    pub transaction: Option<PosTransaction>,
    #[serde(default)]
    pub payment_info: Option<PaymentInfo>,
}

/// The answer to `GET /api/v2/partner/orders/transaction/{partner_ref_id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusAnswer {
    #[serde(default)]
    pub transaction: Option<PosTransaction>,
    #[serde(flatten)]
    pub flat: PosTransaction,
}

impl StatusAnswer {
    /// The transaction, nested or flat.
    pub fn into_transaction(self) -> PosTransaction {
        match self.transaction {
            Some(nested) if nested.status.is_some() => nested,
            _ => self.flat,
        }
    }
}

/// Both error bodies: the POS gateway's `{error_code, error_message}` and the payment
/// gateway's `{errorCode, message, errors[]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default, deserialize_with = "code_opt")]
    pub error_code: Option<String>,
    #[serde(default, rename = "errorCode", deserialize_with = "code_opt")]
    pub error_code_camel: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default, rename = "errorMessage")]
    pub error_message_camel: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

impl ErrorBody {
    pub fn code(&self) -> Option<&str> {
        self.error_code
            .as_deref()
            .or(self.error_code_camel.as_deref())
    }

    pub fn message(&self) -> Option<&str> {
        self.error_message
            .as_deref()
            .or(self.error_message_camel.as_deref())
            .or(self.message.as_deref())
    }
}

/// One entry of `errors[]`: which field was wrong. Only the field's name is ever used.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FieldError {
    #[serde(default)]
    pub field: Option<serde_json::Value>,
}

// ---- Card / account payments (seed 004) ----

/// `POST /api/v2/orders/create-payment`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardPaymentRequest<'a> {
    pub transaction: CardTransaction<'a>,
    pub source_of_funds: SourceOfFunds<'a>,
    pub partner_reference: PartnerReference<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardTransaction<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub bank_code: &'a str,
    pub payment_method: &'a str,
    pub action: &'a str,
}

#[derive(Serialize)]
pub struct SourceOfFunds<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardFields<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountFields<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardFields<'a> {
    pub card_number: &'a str,
    pub card_holder_name: &'a str,
    pub card_month: &'a str,
    pub card_year: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountFields<'a> {
    pub account_number: &'a str,
    pub account_holder_name: &'a str,
    pub identification_number: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerReference<'a> {
    pub order: PartnerOrder<'a>,
    pub notification_config: NotificationConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerOrder<'a> {
    pub id: &'a str,
    pub info: &'a str,
    pub extra_data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationConfig<'a> {
    pub notify_url: &'a str,
    pub redirect_url: &'a str,
}

/// The payment gateway's transaction fields (create answer, status answer, IPN).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTransaction {
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub status: Option<OrderStatus>,
    #[serde(default, deserialize_with = "code_opt")]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    /// What the customer was charged (fees included).
    #[serde(default, deserialize_with = "amount_opt")]
    pub amount: Option<Decimal>,
    /// The order's own amount: what the merchant receives.
    #[serde(default, deserialize_with = "amount_opt")]
    pub order_amount: Option<Decimal>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    #[serde(default)]
    pub verification_url: Option<String>,
}

/// The answer to a card / account payment, and to its status query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayAnswer {
    #[serde(default)]
    pub transaction: Option<GatewayTransaction>,
    #[serde(default)]
    pub authentication: Option<Authentication>,
    #[serde(default)]
    pub partner_reference: Option<GatewayPartnerReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GatewayPartnerReference {
    #[serde(default)]
    pub order: Option<GatewayOrder>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GatewayOrder {
    #[serde(default)]
    pub id: Option<String>,
}

// ---- Lenient readers ----

/// `error_code` as a string (`"34"`), an integer (`34`) or null.
pub fn code_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct CodeVisitor;
    impl<'de> Visitor<'de> for CodeVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an error code as a string or an integer")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            Ok((!v.is_empty()).then(|| v.to_owned()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(CodeVisitor)
        }
    }
    deserializer.deserialize_any(CodeVisitor)
}

/// An amount as a JSON integer or a string of digits, never through a float: a JSON number with
/// a fraction or an exponent is refused.
pub fn amount_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    struct AmountVisitor;
    impl<'de> Visitor<'de> for AmountVisitor {
        type Value = Option<Decimal>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an amount as an integer or a decimal string")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Decimal::from(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Decimal::from(v)))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(
                "an amount with a fraction must be sent as a string",
            ))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            if !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err(E::custom("an amount string must be digits"));
            }
            Decimal::from_str_exact(v)
                .map(Some)
                .map_err(|_| E::custom("an amount string must be a decimal number"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(AmountVisitor)
        }
    }
    deserializer.deserialize_any(AmountVisitor)
}

/// An amount of VND as the integer AppotaPay's JSON carries, or `None` when it has a fraction
/// or does not fit.
pub fn vnd_integer(amount: Decimal) -> Option<i64> {
    let normalized = amount.normalize();
    if normalized.scale() != 0 {
        return None;
    }
    i64::try_from(normalized.mantissa()).ok()
}

/// A time AppotaPay wrote: RFC 3339, or ISO 8601 without an offset (`2026-01-26T16:24:49`,
/// also with a space and milliseconds), which is Vietnam's time (UTC+7). Empty is `None`.
pub fn parse_time(text: &str) -> Option<crate::domain::Timestamp> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Some(at) = crate::domain::Timestamp::parse_rfc3339(text) {
        return Some(at);
    }
    let normalized = text.replacen(' ', "T", 1);
    let (seconds_part, millis) = match normalized.split_once('.') {
        Some((head, fraction)) => {
            let digits: String = fraction.chars().take(3).collect();
            let millis = format!("{digits:0<3}").parse::<i64>().ok()?;
            (head.to_owned(), millis)
        }
        None => (normalized, 0),
    };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let local = time::PrimitiveDateTime::parse(&seconds_part, &format).ok()?;
    let vietnam = time::UtcOffset::from_hms(7, 0, 0).ok()?;
    let at = local.assume_offset(vietnam);
    Some(crate::domain::Timestamp(
        at.unix_timestamp() * 1000 + millis,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_as_strings_or_integers() {
        let body: ErrorBody = serde_json::from_str(r#"{"error_code":"34"}"#).expect("string");
        assert_eq!(body.code(), Some("34"));
        let body: ErrorBody = serde_json::from_str(r#"{"error_code":34}"#).expect("integer");
        assert_eq!(body.code(), Some("34"));
        let body: ErrorBody =
            serde_json::from_str(r#"{"errorCode":140,"message":"m"}"#).expect("camel");
        assert_eq!((body.code(), body.message()), (Some("140"), Some("m")));
        let body: ErrorBody = serde_json::from_str(r#"{"error_code":null}"#).expect("null");
        assert_eq!(body.code(), None);
    }

    #[test]
    fn amounts_are_integers_or_digit_strings_never_floats() {
        let t: PosTransaction = serde_json::from_str(r#"{"amount":12000}"#).expect("integer");
        assert_eq!(t.amount, Some(Decimal::from(12000)));
        let t: PosTransaction = serde_json::from_str(r#"{"amount":"12000"}"#).expect("string");
        assert_eq!(t.amount, Some(Decimal::from(12000)));
        assert!(serde_json::from_str::<PosTransaction>(r#"{"amount":12000.5}"#).is_err());
        assert!(serde_json::from_str::<PosTransaction>(r#"{"amount":"1e5"}"#).is_err());
    }

    #[test]
    fn status_answers_are_read_flat_or_nested() {
        let flat: StatusAnswer = serde_json::from_str(
            r#"{"order_id":"Q1","transaction_id":"T1","status":"success","amount":12000,"error_code":"00"}"#,
        )
        .expect("flat");
        let flat = flat.into_transaction();
        assert_eq!(flat.status, Some(OrderStatus::Success));
        assert_eq!(flat.order_id.as_deref(), Some("Q1"));
        let nested: StatusAnswer = serde_json::from_str(
            r#"{"transaction":{"partner_ref_id":"Q1","status":"PENDING","error_code":34}}"#,
        )
        .expect("nested");
        let nested = nested.into_transaction();
        assert_eq!(nested.status, Some(OrderStatus::Pending));
        assert_eq!(nested.error_code.as_deref(), Some("34"));
    }

    #[test]
    fn vnd_amounts_become_json_integers_only_when_whole() {
        assert_eq!(vnd_integer(Decimal::from(12000)), Some(12000));
        assert_eq!(vnd_integer(Decimal::new(1200000, 2)), Some(12000));
        assert_eq!(vnd_integer(Decimal::new(1200050, 2)), None);
        let body = serde_json::to_string(&CreateOrder {
            partner_ref_id: "Q",
            order_info: "i",
            terminal_id: "T",
            payment_method: "QR",
            amount: 12000,
        })
        .expect("serializes");
        assert!(body.ends_with(r#""amount":12000}"#), "{body}");
    }

    #[test]
    fn times_without_an_offset_are_vietnam_time() {
        let at = parse_time("2026-01-26T16:24:49").expect("parses");
        let utc = parse_time("2026-01-26T09:24:49Z").expect("parses");
        assert_eq!(at, utc);
        let millis = parse_time("2023-11-13 15:23:40.250").expect("parses");
        assert_eq!(millis.0 % 1000, 250);
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
