//! Card and bank-account payments (seed 004): the till passes the customer's domestic ATM card
//! or account, qrpayd sends it once to `POST /api/v2/orders/create-payment` (method `ATM`), and
//! AppotaPay answers with `authentication.verificationUrl`, the OTP page the customer finishes
//! on their own phone.
//!
//! This module owns the card details while they exist. They are held in [`CardDetails`], whose
//! `Debug` and `Display` show the bank, the kind and the last 4 digits only, and whose values
//! leave it only to be serialized into the one request body. They are never logged, stored
//! (the journal keeps the verification URL), nor put into an error: a provider message that
//! echoes one is redacted, and validation errors name the field, never the value.

use std::fmt;

use reqwest::Method;

use super::client::{CallError, INVALID_ARGUMENT, Refusal, encode_component, parse_json};
use super::model::{
    AccountFields, CardFields, CardPaymentRequest, CardTransaction, ErrorBody, GatewayAnswer,
    NotificationConfig, OrderStatus, PartnerOrder, PartnerReference, SourceOfFunds,
};
use super::{Inner, invalid_argument, status_result};
use crate::domain::Currency;
use crate::providers::{CheckResult, CreateRequest, Invoice, ProviderError};

/// The prefix of a card payment's invoice id (`card:<order id>`); a POS order's id is its
/// `partner_ref_id`, which cannot contain a colon.
pub const CARD_INVOICE_PREFIX: &str = "card:";
/// `partnerReference.order.id` at most (seed 004).
const MAX_ORDER_ID: usize = 50;
/// `partnerReference.order.info` at most (seed 004).
const MAX_ORDER_INFO: usize = 150;
/// `notifyUrl` and `redirectUrl` at most (seed 004).
const MAX_URL: usize = 100;
/// The longest verification URL accepted.
const MAX_VERIFICATION_URL: usize = 8192;

/// A card or account number, or an identification number: only its last 4 characters are
/// ever shown.
#[derive(Clone, PartialEq, Eq)]
pub struct SensitiveNumber(String);

impl SensitiveNumber {
    /// The last 4 characters (fewer for a shorter value).
    pub fn last4(&self) -> &str {
        let start = self.0.len().saturating_sub(4);
        self.0.get(start..).unwrap_or("")
    }

    /// The value, for the request body only.
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SensitiveNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"****{}\"", self.last4())
    }
}

impl fmt::Display for SensitiveNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "****{}", self.last4())
    }
}

/// A value that is shown as `[redacted]` (holder names, card dates).
#[derive(Clone, PartialEq, Eq)]
struct Hidden(String);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where the money comes from.
#[derive(Clone, PartialEq, Eq)]
enum Source {
    Card {
        number: SensitiveNumber,
        holder_name: Hidden,
        month: Hidden,
        year: Hidden,
    },
    Account {
        number: SensitiveNumber,
        holder_name: Hidden,
        identification_number: SensitiveNumber,
    },
}

/// The card or account details the till passes for one payment.
#[derive(Clone, PartialEq, Eq)]
pub struct CardDetails {
    bank_code: String,
    source: Source,
}

impl fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("CardDetails");
        out.field("bank_code", &self.bank_code)
            .field("kind", &self.kind());
        match &self.source {
            Source::Card { number, .. } | Source::Account { number, .. } => {
                out.field("number", number);
            }
        }
        out.finish_non_exhaustive()
    }
}

impl fmt::Display for CardDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ****{}", self.bank_code, self.kind(), self.last4())
    }
}

/// Card details the till sent that cannot be used. Names the field, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct CardDetailsError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl CardDetails {
    /// A domestic ATM card. Spaces and dashes in the number are ignored.
    pub fn card(
        bank_code: &str,
        card_number: &str,
        holder_name: &str,
        month: &str,
        year: &str,
    ) -> Result<CardDetails, CardDetailsError> {
        let number = digits_only("card_number", card_number, 12, 19)?;
        let month = two_digits("card_month", month)?;
        if !(1..=12).contains(&month.parse::<u8>().unwrap_or(0)) {
            return Err(CardDetailsError {
                field: "card_month",
                reason: "must be 01 to 12",
            });
        }
        Ok(CardDetails {
            bank_code: check_bank_code(bank_code)?,
            source: Source::Card {
                number,
                holder_name: Hidden(holder("card_holder_name", holder_name)?),
                month: Hidden(month),
                year: Hidden(two_digits("card_year", year)?),
            },
        })
    }

    /// A bank account with its holder's identification number.
    pub fn account(
        bank_code: &str,
        account_number: &str,
        holder_name: &str,
        identification_number: &str,
    ) -> Result<CardDetails, CardDetailsError> {
        Ok(CardDetails {
            bank_code: check_bank_code(bank_code)?,
            source: Source::Account {
                number: alphanumeric("account_number", account_number, 4, 30)?,
                holder_name: Hidden(holder("account_holder_name", holder_name)?),
                identification_number: alphanumeric(
                    "identification_number",
                    identification_number,
                    6,
                    20,
                )?,
            },
        })
    }

    /// AppotaPay's bank code (`VCB`).
    pub fn bank_code(&self) -> &str {
        &self.bank_code
    }

    /// `card` or `account`, as `sourceOfFunds.type` says.
    pub fn kind(&self) -> &'static str {
        match self.source {
            Source::Card { .. } => "card",
            Source::Account { .. } => "account",
        }
    }

    /// The last 4 digits of the card or account number.
    pub fn last4(&self) -> &str {
        match &self.source {
            Source::Card { number, .. } | Source::Account { number, .. } => number.last4(),
        }
    }

    /// Every value that must never appear in an error, for redaction.
    fn secrets(&self) -> Vec<&str> {
        match &self.source {
            Source::Card { number, .. } => vec![number.expose()],
            Source::Account {
                number,
                identification_number,
                ..
            } => vec![number.expose(), identification_number.expose()],
        }
    }

    fn source_of_funds(&self) -> SourceOfFunds<'_> {
        match &self.source {
            Source::Card {
                number,
                holder_name,
                month,
                year,
            } => SourceOfFunds {
                kind: "card",
                card: Some(CardFields {
                    card_number: number.expose(),
                    card_holder_name: &holder_name.0,
                    card_month: &month.0,
                    card_year: &year.0,
                }),
                account: None,
            },
            Source::Account {
                number,
                holder_name,
                identification_number,
            } => SourceOfFunds {
                kind: "account",
                card: None,
                account: Some(AccountFields {
                    account_number: number.expose(),
                    account_holder_name: &holder_name.0,
                    identification_number: identification_number.expose(),
                }),
            },
        }
    }
}

fn check_bank_code(code: &str) -> Result<String, CardDetailsError> {
    let code = code.trim();
    let ok = (2..=20).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(code.to_owned())
    } else {
        Err(CardDetailsError {
            field: "bank_code",
            reason: "must be 2 to 20 letters, digits or underscores",
        })
    }
}

fn digits_only(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<SensitiveNumber, CardDetailsError> {
    let compact: String = value.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if (min..=max).contains(&compact.len()) && compact.bytes().all(|b| b.is_ascii_digit()) {
        Ok(SensitiveNumber(compact))
    } else {
        Err(CardDetailsError {
            field,
            reason: "must be 12 to 19 digits",
        })
    }
}

fn alphanumeric(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<SensitiveNumber, CardDetailsError> {
    let value = value.trim();
    if (min..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(SensitiveNumber(value.to_owned()))
    } else {
        Err(CardDetailsError {
            field,
            reason: "has the wrong length or characters",
        })
    }
}

fn two_digits(field: &'static str, value: &str) -> Result<String, CardDetailsError> {
    let value = value.trim();
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err(CardDetailsError {
            field,
            reason: "must be two digits",
        })
    }
}

fn holder(field: &'static str, value: &str) -> Result<String, CardDetailsError> {
    let value = value.trim();
    let count = value.chars().count();
    if (1..=100).contains(&count) && !value.chars().any(char::is_control) {
        Ok(value.to_owned())
    } else {
        Err(CardDetailsError {
            field,
            reason: "must be 1 to 100 characters",
        })
    }
}

impl Inner {
    /// See [`super::Appotapay::create_card_payment`].
    pub(super) async fn create_card_payment(
        &self,
        request: &CreateRequest,
        card: &CardDetails,
    ) -> Result<Invoice, ProviderError> {
        let order_id = request.idempotency_key.as_str();
        let amount = self.check_card_request(request)?;
        let (notify_url, redirect_url) = self.card_urls()?;
        let invoice_id = format!("{CARD_INVOICE_PREFIX}{order_id}");
        if let Some(invoice) = self.journal.find(&invoice_id).await {
            return Ok(invoice);
        }
        let body = CardPaymentRequest {
            transaction: CardTransaction {
                amount,
                currency: Currency::Vnd.code(),
                bank_code: card.bank_code(),
                payment_method: "ATM",
                action: "PAY",
            },
            source_of_funds: card.source_of_funds(),
            partner_reference: PartnerReference {
                order: PartnerOrder {
                    id: order_id,
                    info: &request.description,
                    extra_data: "",
                },
                notification_config: NotificationConfig {
                    notify_url,
                    redirect_url,
                },
            },
        };
        let bytes = serde_json::to_vec(&body).map_err(|_| ProviderError::Rejected {
            code: INVALID_ARGUMENT.to_owned(),
            message: "the card payment request cannot be encoded".to_owned(),
        })?;
        let secrets = card.secrets();
        let answer = self
            .transport
            .send(
                Method::POST,
                self.card_base_url(),
                "/api/v2/orders/create-payment",
                Some(bytes),
            )
            .await
            .map_err(|error| match error {
                CallError::Refused(refusal) => card_refusal(refusal.redact(&secrets)),
                CallError::Failed(error) => error,
            })?;
        let invoice = card_created_answer(&answer.bytes, &invoice_id, &secrets)?;
        tracing::info!(
            provider = "appotapay",
            attempt_id = %request.attempt_id,
            invoice_id = %invoice_id,
            kind = card.kind(),
            bank_code = card.bank_code(),
            last4 = card.last4(),
            "AppotaPay card payment created; waiting for the customer's OTP"
        );
        self.journal.record(&invoice).await;
        Ok(invoice)
    }

    /// See [`super::Appotapay::lookup_card_payment`].
    pub(super) async fn lookup_card_payment(
        &self,
        request: &CreateRequest,
    ) -> Result<Option<Invoice>, ProviderError> {
        let order_id = request.idempotency_key.as_str();
        let invoice_id = format!("{CARD_INVOICE_PREFIX}{order_id}");
        if let Some(invoice) = self.journal.find(&invoice_id).await {
            return Ok(Some(invoice));
        }
        match self.check_card(order_id).await {
            Ok(_) => {
                // As for POS orders: AppotaPay knows the payment, but the verification URL was
                // never received, so never shown; it is returned without one.
                tracing::warn!(
                    provider = "appotapay",
                    attempt_id = %request.attempt_id,
                    invoice_id = %invoice_id,
                    "AppotaPay has this card payment but its verification URL was never received"
                );
                Ok(Some(Invoice {
                    expires_at: None,
                    invoice_id,
                    qr_text: String::new(),
                    short_url: None,
                    deep_links: Vec::new(),
                }))
            }
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Where a card payment stands: `GET /api/v2/orders/transaction` by the partner's order id.
    ///
    /// Seed 004 documents no status call; this is the payment gateway's transaction query as
    /// AppotaPay's public client libraries use it (`referenceId`, `type=PARTNER_ORDER_ID`), with
    /// the answer in seed 004's `transaction` shape.
    pub(super) async fn check_card(&self, order_id: &str) -> Result<CheckResult, ProviderError> {
        let object = format!("card payment {order_id}");
        let path = format!(
            "/api/v2/orders/transaction?referenceId={}&type=PARTNER_ORDER_ID",
            encode_component(order_id)
        );
        let answer = self
            .transport
            .send(Method::GET, self.card_base_url(), &path, None)
            .await
            .map_err(|e| e.into_error(Some(&object)))?;
        card_status_answer(&answer.bytes, &object)
    }

    /// The amount as AppotaPay's integer, after the checks seed 004 allows before sending.
    fn check_card_request(&self, request: &CreateRequest) -> Result<i64, ProviderError> {
        if request.currency != Currency::Vnd {
            return Err(invalid_argument("currency", "AppotaPay takes VND only"));
        }
        let order_id = &request.idempotency_key;
        if order_id.is_empty()
            || order_id.len() > MAX_ORDER_ID
            || !order_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(invalid_argument(
                "order_id",
                "must be 1 to 50 letters, digits, '_' or '-'",
            ));
        }
        if request.description.chars().count() > MAX_ORDER_INFO {
            return Err(invalid_argument(
                "order_info",
                "is longer than 150 characters",
            ));
        }
        match super::model::vnd_integer(request.amount) {
            Some(amount) if amount > 0 => Ok(amount),
            _ => Err(invalid_argument(
                "amount",
                "must be a whole number of VND greater than zero",
            )),
        }
    }

    fn card_urls(&self) -> Result<(&str, &str), ProviderError> {
        let settings = &self.settings;
        match (&settings.card_notify_url, &settings.card_redirect_url) {
            (Some(notify), Some(redirect))
                if notify.len() <= MAX_URL && redirect.len() <= MAX_URL =>
            {
                Ok((notify, redirect))
            }
            (Some(_), Some(_)) => Err(invalid_argument(
                "card_notify_url",
                "and card_redirect_url must be at most 100 characters",
            )),
            _ => Err(ProviderError::Rejected {
                code: "UNSUPPORTED".to_owned(),
                message: "AppotaPay card payments need card_notify_url and card_redirect_url \
                          in the AppotaPay settings"
                    .to_owned(),
            }),
        }
    }
}

/// The 2xx answer to a card payment's create, made as `invoice_id` (`card:<order id>`): the
/// one reading of it, for the provider and the property run. An error in it is a refusal, with
/// every one of `secrets` (the card's numbers) redacted from its message.
pub(super) fn card_created_answer(
    bytes: &[u8],
    invoice_id: &str,
    secrets: &[&str],
) -> Result<Invoice, ProviderError> {
    let parsed: GatewayAnswer = parse_json("the card payment", bytes)?;
    let Some(transaction) = parsed.transaction else {
        let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_default();
        return Err(card_refusal(
            Refusal::from_body(200, &body, None).redact(secrets),
        ));
    };
    if transaction.status == Some(OrderStatus::Error) {
        let refusal = Refusal::in_transaction(
            transaction.error_code.as_deref(),
            transaction.error_message.as_deref(),
        );
        return Err(card_refusal(refusal.redact(secrets)));
    }
    let url = parsed
        .authentication
        .and_then(|a| a.verification_url)
        .unwrap_or_default();
    let url = check_verification_url(&url)?;
    Ok(Invoice {
        expires_at: None,
        invoice_id: invoice_id.to_owned(),
        qr_text: url.clone(),
        short_url: Some(url),
        deep_links: Vec::new(),
    })
}

/// The 2xx answer to the status query about card payment `object`: where it stands. An
/// answer without a status is an error body.
pub(super) fn card_status_answer(bytes: &[u8], object: &str) -> Result<CheckResult, ProviderError> {
    let parsed: GatewayAnswer = parse_json("the card payment status", bytes)?;
    let Some(transaction) = parsed.transaction.filter(|t| t.status.is_some()) else {
        let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_default();
        return Err(Refusal::from_body(200, &body, None).into_error(Some(object)));
    };
    status_result(
        transaction.status.unwrap_or(OrderStatus::Pending),
        transaction.transaction_id,
        // The merchant's money is the order amount; `amount` adds the customer's fee.
        transaction.order_amount.or(transaction.amount),
        transaction.updated_at.as_deref(),
        transaction.error_code,
        transaction.error_message,
    )
}

/// A card payment's refusal: the common table, and seed 004's codes spelled out.
pub(super) fn card_refusal(refusal: Refusal) -> ProviderError {
    match refusal.number() {
        Some(30) => ProviderError::Rejected {
            code: "30".to_owned(),
            message: "AppotaPay error 30: the order id was used before; its verification page \
                      cannot be fetched again, so start a new payment"
                .to_owned(),
        },
        _ => refusal.into_error(None),
    }
}

/// A verification URL fit to show: `https://`, no whitespace or control characters, bounded.
fn check_verification_url(url: &str) -> Result<String, ProviderError> {
    let ok = url.starts_with("https://")
        && url.len() > "https://".len()
        && url.len() <= MAX_VERIFICATION_URL
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(url.to_owned())
    } else {
        Err(ProviderError::Rejected {
            code: "INVALID_VERIFICATION_URL".to_owned(),
            message: "AppotaPay's answer has no usable https verification URL".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_details_show_only_the_last_four_digits() {
        let card = CardDetails::card("VCB", "9704 0000 0000 0018", "NGUYEN VAN A", "03", "07")
            .expect("valid");
        for text in [format!("{card:?}"), format!("{card}")] {
            assert!(!text.contains("9704000000000018"), "{text}");
            assert!(!text.contains("NGUYEN"), "{text}");
            assert!(text.contains("0018"), "{text}");
        }
        assert_eq!(card.last4(), "0018");
        let account = CardDetails::account("VCB", "0011004455667", "TRAN THI B", "079123456789")
            .expect("valid");
        let text = format!("{account:?}");
        assert!(!text.contains("0011004455667") && !text.contains("079123456789"));
        assert!(text.contains("****5667"), "{text}");
    }

    #[test]
    fn bad_card_details_name_the_field_not_the_value() {
        let error =
            CardDetails::card("VCB", "9704-0000-0000-001X", "A", "03", "07").expect_err("letter");
        assert_eq!(error.field, "card_number");
        assert!(!error.to_string().contains("9704"));
        assert_eq!(
            CardDetails::card("VCB", "9704000000000018", "A", "13", "07")
                .expect_err("month")
                .field,
            "card_month"
        );
        assert_eq!(
            CardDetails::card("V C B", "9704000000000018", "A", "03", "07")
                .expect_err("bank")
                .field,
            "bank_code"
        );
    }

    #[test]
    fn verification_urls_must_be_https() {
        assert!(check_verification_url("https://ibanking.appotapay.com/x?tran=1").is_ok());
        assert!(check_verification_url("http://ibanking.appotapay.com/x").is_err());
        assert!(check_verification_url("https://a b").is_err());
        assert!(check_verification_url("").is_err());
    }
}
