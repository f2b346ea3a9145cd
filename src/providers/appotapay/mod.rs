//! The AppotaPay provider: VietQR payments through AppotaPay's POS gateway (seed 003,
//! `https://pos-gw.appotapay.com`), domestic ATM card and bank-account payments through its
//! payment gateway (seed 004), and the verification of its IPNs.
//!
//! It owns everything AppotaPay-specific: the request authentication (`auth`: the HS256 JWT and
//! the body signature), the wire format (`model`), the HTTP connection and the error code table
//! (`client`), POS orders (`orders`), card payments (`card`), the QR of an answer (`qr`), the
//! journal of invoices made (`journal`), IPNs (`ipn`), and the optional local listener for them
//! (`listener`, with `ipn_queue` coalescing repeated IPNs). It speaks HTTP and nothing else: it
//! touches no SQL except through [`ProviderState`], never decides an attempt's status, and
//! never logs or returns a secret (the secret key, the API key, a JWT, a signature) or a card
//! or account number beyond its last 4 digits.
//!
//! What the seeds offer, and so what this provider does:
//! - **Create**: `POST /api/v2/partner/orders/payment/create` with `payment_method` `QR`. The
//!   attempt's idempotency key is the `partner_ref_id`, so a repeat is recognised by
//!   AppotaPay (code 30, duplicate) and resolved: first from the journal (the QR is written
//!   there before `create` returns), then from the status API.
//! - **Status**: `GET /api/v2/partner/orders/transaction/{partner_ref_id}`. `pending` and
//!   `processing` are open, `success` is paid (one payment: AppotaPay's `transaction_id`),
//!   `error` is failed with AppotaPay's code and message, and `void` (refunded or voided at
//!   AppotaPay) is closed: no money counts from a voided order, and an attempt already settled
//!   stays settled (the void shows in `Verify` as the code `void`).
//! - **Cancel**: the seeds document no cancel or void call. A cancel therefore checks the
//!   status: paid is `AlreadyPaid`, closed or failed is `Cancelled`, and a pending order is
//!   `StillPayable`: the QR leaves the display, but a customer who kept it can still pay until
//!   AppotaPay gives up on the order, so the engine keeps the attempt under watch (slow checks,
//!   IPNs applied) for `daemon.late_payment_watch_ms` after its expiry.
//! - **Refund**: no refund call in the seeds either: refused before anything is recorded
//!   (`check_refund`), and `refund` answers `Rejected { code: "UNSUPPORTED" }`. Refunds are made
//!   in AppotaPay's merchant portal.
//! - **Card / account** ([`Appotapay::create_card_payment`], and through the engine
//!   [`Provider::create_with_instrument`] for Checkout's method `ATM`): the invoice's `qr_text`
//!   is the OTP verification URL (not EMVCo), its id `card:<order id>`. An unknown outcome is
//!   resolved by [`Provider::lookup_instrument_payment`], never by sending the card again.
//! - **Payment list**: none in the seeds (the default `UNSUPPORTED`).

pub mod answers;
mod auth;
mod card;
mod client;
mod ipn;
mod ipn_queue;
mod journal;
mod listener;
mod model;
mod orders;
mod qr;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use secrecy::SecretString;

use super::{
    CancelOutcome, CheckResult, CreateRequest, Invoice, InvoiceState, PaymentInstrument, Provider,
    ProviderError, ProviderPayment, ProviderState, RefundOutcome, RefundRequest,
};
use crate::domain::Currency;
pub use auth::{JWT_HEADER, JWT_TTL, jwt, sign_hex as body_signature};
pub use card::{CARD_INVOICE_PREFIX, CardDetails, CardDetailsError, SensitiveNumber};
pub use client::INVALID_ARGUMENT;
pub use ipn::{IPN_ACK_BODY, IpnError, IpnPayload, verify_ipn};
pub use ipn_queue::IpnNotices;
pub use listener::{IPN_PATH, IpnLimits, IpnListener};
pub use model::OrderStatus;

/// `partnerReference.order.info` of a card payment at most (seed 004).
const CARD_MAX_ORDER_INFO: usize = 150;
/// A card payment's `notifyUrl` and `redirectUrl` at most (seed 004).
const CARD_MAX_URL: usize = 100;

/// The POS gateway's production host (dev: `https://pos-gw.dev.appotapay.com`).
pub const DEFAULT_BASE_URL: &str = "https://pos-gw.appotapay.com";
/// The default poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(2000);
/// The default time one request may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(10_000);
/// The smallest amount AppotaPay's POS gateway takes, in VND.
pub const MIN_AMOUNT_VND: i64 = 10_000;

/// How the provider reaches AppotaPay, from `[providers.appotapay]`.
#[derive(Clone)]
pub struct AppotapaySettings {
    /// The POS gateway, without a trailing slash.
    pub base_url: String,
    pub partner_code: String,
    /// Sent inside every JWT; never printed.
    pub api_key: String,
    /// Never printed: `SecretString`'s `Debug` is redacted.
    pub secret_key: SecretString,
    /// The terminal id AppotaPay issued (at most 20 characters).
    pub terminal_id: String,
    pub poll_interval: Duration,
    pub request_timeout: Duration,
    /// The payment gateway for card / account payments (seed 004), when it is not `base_url`.
    /// The seeds do not name its host; AppotaPay's documentation places it at
    /// `https://gateway.appotapay.com` (dev `https://gateway.dev.appotapay.com`).
    pub card_base_url: Option<String>,
    /// `notificationConfig.notifyUrl` of card payments (where AppotaPay sends the IPN).
    pub card_notify_url: Option<String>,
    /// `notificationConfig.redirectUrl` of card payments (where the OTP page ends).
    pub card_redirect_url: Option<String>,
}

impl std::fmt::Debug for AppotapaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppotapaySettings")
            .field("base_url", &self.base_url)
            .field("partner_code", &self.partner_code)
            .field("terminal_id", &self.terminal_id)
            .field("poll_interval", &self.poll_interval)
            .field("request_timeout", &self.request_timeout)
            .field("card_base_url", &self.card_base_url)
            .field("card_notify_url", &self.card_notify_url)
            .field("card_redirect_url", &self.card_redirect_url)
            .finish_non_exhaustive()
    }
}

/// The provider could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppotapayError {
    #[error("cannot start the AppotaPay provider: {0}")]
    Client(String),
    #[error("the AppotaPay setting {0} must be an http:// or https:// URL")]
    Url(&'static str),
}

/// The AppotaPay provider. Cheap to share: the state lives behind an `Arc`.
pub struct Appotapay {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Appotapay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appotapay")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: AppotapaySettings,
    transport: client::Transport,
    journal: journal::Journal,
}

impl Inner {
    fn card_base_url(&self) -> &str {
        self.settings
            .card_base_url
            .as_deref()
            .unwrap_or(&self.settings.base_url)
    }
}

impl Appotapay {
    /// The name the till and the config use.
    pub const NAME: &'static str = "appotapay";

    /// A provider for `settings`, keeping its journal of invoices in `state`.
    pub fn new(
        mut settings: AppotapaySettings,
        state: Arc<dyn ProviderState>,
    ) -> Result<Appotapay, AppotapayError> {
        settings.base_url = check_url("base_url", &settings.base_url)?;
        if let Some(url) = &settings.card_base_url {
            settings.card_base_url = Some(check_url("card_base_url", url)?);
        }
        let credentials = auth::Credentials {
            partner_code: settings.partner_code.clone(),
            api_key: settings.api_key.clone(),
            secret_key: settings.secret_key.clone(),
        };
        let transport = client::Transport::new(credentials, settings.request_timeout)
            .map_err(AppotapayError::Client)?;
        Ok(Appotapay {
            inner: Arc::new(Inner {
                settings,
                transport,
                journal: journal::Journal::new(state),
            }),
        })
    }

    /// Starts a domestic card or bank-account payment (seed 004, method `ATM`) for the attempt
    /// in `request`, with the customer's `card`. The invoice's `qr_text` (and `short_url`) is
    /// AppotaPay's OTP verification URL, to be shown as a QR and a link so the customer
    /// finishes on their own phone; its id is `card:<idempotency key>`, which `check` and
    /// `cancel` understand. The card details are sent once and kept nowhere.
    pub async fn create_card_payment(
        &self,
        request: &CreateRequest,
        card: &CardDetails,
    ) -> Result<Invoice, ProviderError> {
        self.inner.create_card_payment(request, card).await
    }

    /// Finds the card payment an earlier [`Appotapay::create_card_payment`] for this attempt
    /// made (the card counterpart of [`Provider::lookup`], which knows only POS orders): from
    /// the journal, else from AppotaPay, whose answer does not repeat the verification URL (the
    /// invoice then has an empty `qr_text`). `None` when AppotaPay does not know it.
    pub async fn lookup_card_payment(
        &self,
        request: &CreateRequest,
    ) -> Result<Option<Invoice>, ProviderError> {
        self.inner.lookup_card_payment(request).await
    }
}

/// The card details of a Checkout's instrument, checked: a bad value is `INVALID_ARGUMENT`
/// naming the field (the D-Bus key of the same name), never the value.
fn card_details(instrument: &PaymentInstrument) -> Result<CardDetails, ProviderError> {
    let details = match instrument {
        PaymentInstrument::Card {
            bank_code,
            number,
            holder_name,
            month,
            year,
        } => CardDetails::card(bank_code, number, holder_name, month, year),
        PaymentInstrument::Account {
            bank_code,
            number,
            holder_name,
            identification_number,
        } => CardDetails::account(bank_code, number, holder_name, identification_number),
    };
    details.map_err(|error| invalid_argument(error.field, error.reason))
}

impl Inner {
    /// What `create_card_payment` checks before sending, checked before anything is recorded:
    /// the order's limits of seed 004 and the notification URLs card payments need.
    fn check_card_limits(&self, request: &CreateRequest) -> Result<(), ProviderError> {
        if request.currency != Currency::Vnd {
            return Err(invalid_argument("currency", "must be VND for AppotaPay"));
        }
        if request.description.chars().count() > CARD_MAX_ORDER_INFO {
            return Err(invalid_argument(
                "description",
                "must be at most 150 characters for an AppotaPay card payment",
            ));
        }
        if model::vnd_integer(request.amount).is_none_or(|amount| amount <= 0) {
            return Err(invalid_argument(
                "amount",
                "must be a whole number of VND for AppotaPay",
            ));
        }
        let settings = &self.settings;
        match (&settings.card_notify_url, &settings.card_redirect_url) {
            (Some(notify), Some(redirect))
                if notify.len() <= CARD_MAX_URL && redirect.len() <= CARD_MAX_URL =>
            {
                Ok(())
            }
            _ => Err(ProviderError::Rejected {
                code: "UNSUPPORTED".to_owned(),
                message: "AppotaPay card payments need card_notify_url and card_redirect_url \
                          (at most 100 characters each) in the AppotaPay settings"
                    .to_owned(),
            }),
        }
    }
}

fn check_url(name: &'static str, url: &str) -> Result<String, AppotapayError> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.to_owned()),
        _ => Err(AppotapayError::Url(name)),
    }
}

/// Why AppotaPay cannot refund, in one sentence for the till.
const NO_REFUND: &str = "AppotaPay offers qrpayd no refund call; refund the payment in the \
                         AppotaPay merchant portal";

#[async_trait]
impl Provider for Appotapay {
    fn name(&self) -> &str {
        Appotapay::NAME
    }

    fn display_name(&self) -> &str {
        "AppotaPay"
    }

    fn currencies(&self) -> &[Currency] {
        &[Currency::Vnd]
    }

    fn check_create(&self, request: &CreateRequest) -> Result<(), String> {
        self.inner
            .check_create(request)
            .map(|_| ())
            .map_err(|error| match error {
                ProviderError::Rejected { message, .. } => message,
                other => other.to_string(),
            })
    }

    fn poll_interval(&self) -> Duration {
        self.inner.settings.poll_interval
    }

    async fn create(&self, request: &CreateRequest) -> Result<Invoice, ProviderError> {
        self.inner.create(request).await
    }

    async fn lookup(&self, request: &CreateRequest) -> Result<Option<Invoice>, ProviderError> {
        self.inner.lookup(request).await
    }

    fn check_with_instrument(
        &self,
        request: &CreateRequest,
        instrument: &PaymentInstrument,
    ) -> Result<(), ProviderError> {
        card_details(instrument)?;
        self.inner.check_card_limits(request)
    }

    async fn create_with_instrument(
        &self,
        request: &CreateRequest,
        instrument: &PaymentInstrument,
    ) -> Result<Invoice, ProviderError> {
        let card = card_details(instrument)?;
        self.inner.create_card_payment(request, &card).await
    }

    async fn lookup_instrument_payment(
        &self,
        request: &CreateRequest,
    ) -> Result<Option<Invoice>, ProviderError> {
        self.inner.lookup_card_payment(request).await
    }

    async fn check(&self, invoice_id: &str) -> Result<CheckResult, ProviderError> {
        match invoice_id.strip_prefix(CARD_INVOICE_PREFIX) {
            Some(order_id) => self.inner.check_card(order_id).await,
            None => self.inner.check_order(invoice_id).await,
        }
    }

    async fn cancel(&self, invoice_id: &str) -> Result<CancelOutcome, ProviderError> {
        // No cancel call exists (see the module documentation): an order that is still pending
        // stays payable until AppotaPay itself gives up on it, so the engine keeps watching it.
        match self.check(invoice_id).await {
            Ok(check) => Ok(match check.state {
                InvoiceState::Paid => CancelOutcome::AlreadyPaid,
                InvoiceState::Open => CancelOutcome::StillPayable,
                InvoiceState::Closed | InvoiceState::Failed { .. } => CancelOutcome::Cancelled,
            }),
            Err(ProviderError::NotFound(_)) => Ok(CancelOutcome::Cancelled),
            Err(error) => Err(error),
        }
    }

    async fn refund(&self, _request: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        Err(ProviderError::Rejected {
            code: "UNSUPPORTED".to_owned(),
            message: NO_REFUND.to_owned(),
        })
    }

    fn check_refund(&self, _amount: Decimal, _payments: &[ProviderPayment]) -> Result<(), String> {
        Err(NO_REFUND.to_owned())
    }
}

/// A local check failed: `Rejected` with [`INVALID_ARGUMENT`], naming the field.
fn invalid_argument(field: &str, reason: &str) -> ProviderError {
    ProviderError::Rejected {
        code: INVALID_ARGUMENT.to_owned(),
        message: format!("{field} {reason}"),
    }
}

/// The engine's view of an AppotaPay status (POS order or card payment).
fn status_result(
    status: OrderStatus,
    transaction_id: Option<String>,
    amount: Option<Decimal>,
    paid_at: Option<&str>,
    error_code: Option<String>,
    error_message: Option<String>,
) -> Result<CheckResult, ProviderError> {
    let word = status.as_str().to_owned();
    let message = error_message.map(|m| client::clean(&m)).unwrap_or_default();
    let (state, payments, message) = match status {
        OrderStatus::Pending | OrderStatus::Processing => (
            InvoiceState::Open,
            Vec::new(),
            or(message, "waiting for the customer"),
        ),
        OrderStatus::Success => {
            let payment_id = transaction_id.filter(|id| !id.trim().is_empty());
            let (Some(payment_id), Some(amount)) = (payment_id, amount) else {
                return Err(ProviderError::Unavailable(
                    "AppotaPay reported success without a transaction id and an amount".to_owned(),
                ));
            };
            if amount <= Decimal::ZERO {
                return Err(ProviderError::Unavailable(format!(
                    "AppotaPay reported success with the amount {amount}"
                )));
            }
            let payment = ProviderPayment {
                payment_id,
                amount,
                paid_at: paid_at.and_then(model::parse_time),
            };
            (InvoiceState::Paid, vec![payment], or(message, "paid"))
        }
        OrderStatus::Error => {
            let code = error_code
                .as_deref()
                .map(client::clean)
                .filter(|code| !code.is_empty())
                .unwrap_or_else(|| "error".to_owned());
            let message = or(message, "the payment failed");
            (
                InvoiceState::Failed {
                    code,
                    message: message.clone(),
                },
                Vec::new(),
                message,
            )
        }
        OrderStatus::Void => (
            InvoiceState::Closed,
            Vec::new(),
            or(message, "refunded or voided at AppotaPay"),
        ),
        OrderStatus::Other(word) => {
            return Err(ProviderError::Unavailable(format!(
                "AppotaPay reported the unknown status {:?}",
                client::clean(&word)
            )));
        }
    };
    let code = match (&state, error_code) {
        (InvoiceState::Failed { code, .. }, _) => code.clone(),
        _ => word,
    };
    Ok(CheckResult {
        state,
        payments,
        code,
        message,
    })
}

fn or(text: String, default: &str) -> String {
    if text.is_empty() {
        default.to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_invoice_states() {
        let open =
            status_result(OrderStatus::Processing, None, None, None, None, None).expect("open");
        assert_eq!(open.state, InvoiceState::Open);
        assert_eq!(open.code, "processing");
        let paid = status_result(
            OrderStatus::Success,
            Some("T1".into()),
            Some(Decimal::from(12000)),
            Some("2026-01-26T16:24:49"),
            Some("00".into()),
            None,
        )
        .expect("paid");
        assert_eq!(paid.state, InvoiceState::Paid);
        assert_eq!(paid.payments[0].payment_id, "T1");
        assert!(paid.payments[0].paid_at.is_some());
        let failed = status_result(
            OrderStatus::Error,
            None,
            None,
            None,
            Some("33".into()),
            Some("Giao dịch thất bại".into()),
        )
        .expect("failed");
        assert_eq!(
            failed.state,
            InvoiceState::Failed {
                code: "33".into(),
                message: "Giao dịch thất bại".into()
            }
        );
        let void = status_result(OrderStatus::Void, Some("T1".into()), None, None, None, None)
            .expect("void");
        assert_eq!((void.state, void.payments.len()), (InvoiceState::Closed, 0));
        assert!(matches!(
            status_result(
                OrderStatus::Success,
                None,
                Some(Decimal::ONE),
                None,
                None,
                None
            ),
            Err(ProviderError::Unavailable(_))
        ));
        assert!(matches!(
            status_result(OrderStatus::parse("frozen"), None, None, None, None, None),
            Err(ProviderError::Unavailable(_))
        ));
    }

    /// Found by the property run (`tests/parsers`): the texts of a transaction reported as
    /// `error` reached the error and the failure unfiltered (control characters, any length),
    /// while an error body's are cleaned.
    #[test]
    fn an_error_in_a_2xx_answer_is_cleaned_like_an_error_body() {
        let long = "x".repeat(5000);
        let body = format!(
            r#"{{"transaction":{{"status":"error","error_code":"3\u000b3","error_message":"bad\nline{long}"}},"payment_info":{{}}}}"#
        );
        let error = answers::order_created(body.as_bytes(), "Q1").expect_err("refused");
        let text = error.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.len() < 1000, "{} bytes", text.len());
        let card =
            br#"{"transaction":{"status":"error","errorCode":"\u0000","errorMessage":"a\rb"}}"#;
        let text = answers::card_payment_created(card, "Q1", &[])
            .expect_err("refused")
            .to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        let status =
            br#"{"order_id":"Q1","status":"error","error_code":"3\u000b3","error_message":"m\n"}"#;
        let check = answers::order_status(status, "Q1").expect("read");
        assert!(
            !check.code.chars().any(char::is_control),
            "{:?}",
            check.code
        );
        assert!(
            !check.message.chars().any(char::is_control),
            "{:?}",
            check.message
        );
    }

    #[test]
    fn settings_debug_shows_no_key() {
        let settings = AppotapaySettings {
            base_url: DEFAULT_BASE_URL.into(),
            partner_code: "PARTNER".into(),
            api_key: "api-key-value".into(),
            secret_key: SecretString::from("secret-key-value"),
            terminal_id: "TID1".into(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            card_base_url: None,
            card_notify_url: None,
            card_redirect_url: None,
        };
        let text = format!("{settings:?}");
        assert!(text.contains("PARTNER"), "{text}");
        assert!(!text.contains("api-key-value") && !text.contains("secret-key-value"));
    }

    #[test]
    fn an_instrument_becomes_card_details_and_shows_only_its_last_digits() {
        let card = PaymentInstrument::Card {
            bank_code: "VCB".into(),
            number: "9704 0000 0000 0018".into(),
            holder_name: "NGUYEN VAN A".into(),
            month: "03".into(),
            year: "07".into(),
        };
        let text = format!("{card:?}");
        assert!(text.contains("****0018") && text.contains("VCB"), "{text}");
        assert!(!text.contains("9704") && !text.contains("NGUYEN"), "{text}");
        assert_eq!(card_details(&card).expect("valid").last4(), "0018");
        let account = PaymentInstrument::Account {
            bank_code: "VCB".into(),
            number: "0011004455667".into(),
            holder_name: "TRAN THI B".into(),
            identification_number: "079123456789".into(),
        };
        let text = format!("{account:?}");
        assert!(!text.contains("0011004455667") && !text.contains("079123456789"));
        assert_eq!(card_details(&account).expect("valid").kind(), "account");
        let bad = PaymentInstrument::Card {
            bank_code: "VCB".into(),
            number: "9704000000000018".into(),
            holder_name: "A".into(),
            month: "13".into(),
            year: "07".into(),
        };
        assert_eq!(
            card_details(&bad),
            Err(ProviderError::Rejected {
                code: INVALID_ARGUMENT.to_owned(),
                message: "card_month must be 01 to 12".to_owned()
            })
        );
    }

    #[test]
    fn urls_are_checked_and_trimmed() {
        assert_eq!(
            check_url("base_url", "https://pos-gw.appotapay.com/"),
            Ok("https://pos-gw.appotapay.com".to_owned())
        );
        assert_eq!(
            check_url("base_url", "pos-gw.appotapay.com"),
            Err(AppotapayError::Url("base_url"))
        );
    }
}
