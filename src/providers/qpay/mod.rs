//! The QPay v2 provider: invoices with an EMVCo QR and bank-app links, payment checks, invoice
//! cancels, whole-payment refunds and same-day voids, and the payment list for reconciliation,
//! against QPay's merchant API (`https://merchant.qpay.mn`).
//!
//! It owns everything QPay-specific: the wire format (`model`), the HTTP connection and its
//! error vocabulary (`client`), the tokens (`auth`), invoice creation and its journal
//! (`invoice`), and checks, cancels, refunds and listings (`payments`). It speaks HTTP and
//! nothing else: it never touches SQL except through [`ProviderState`], never decides an
//! attempt's status, and never logs or returns a secret (the client secret, an access or a
//! refresh token).
//!
//! Retry safety, which the engine relies on:
//! - An invoice's `sender_invoice_no` is the attempt's idempotency key. Every invoice made is
//!   written to a journal in the provider state (by that number) before `create` returns, so a
//!   repeated `create` or a `lookup` finds it without asking QPay.
//! - A create whose answer is late keeps waiting in the background after the caller's timeout
//!   (up to a grace period) and journals the answer when it comes; a repeat meanwhile waits for
//!   it instead of sending a second request.
//! - Otherwise a repeat sends the same `sender_invoice_no` again. QPay refuses a number it has
//!   seen, and offers no documented way to find an invoice by that number; a refusal whose body
//!   names the invoice is followed up with `GET /v2/invoice/{id}`. When nothing names it, the
//!   invoice cannot be found: its QR was never shown, so nobody can pay it, and the attempt is
//!   failed (`create`: `DUPLICATE_INVOICE`; `lookup`: not found) so that the till can start
//!   again. See README.md, "QPay".
//! - A refund records which payment its key chose before it is sent, and a payment already
//!   refunded (or voided) under that key counts as done.

pub mod answers;
mod auth;
mod client;
mod invoice;
pub mod model;
mod payments;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use secrecy::SecretString;
use tokio::sync::watch;

use super::http::encode_component as segment;
use super::{
    CancelOutcome, CheckResult, CreateRequest, Invoice, ListedPayment, Provider, ProviderError,
    ProviderPayment, ProviderState, RefundOutcome, RefundRequest, lock,
};
use crate::domain::Currency;
use auth::TokenKeeper;
use client::{Api, Transport};
use invoice::CreateOutcome;
pub use model::{InvoiceDetails, PaymentRow};
pub use state::MemoryState;
use state::StateStore;

/// QPay's production host.
pub const DEFAULT_BASE_URL: &str = "https://merchant.qpay.mn";
/// The receiver code of an invoice for whoever scans it.
pub const DEFAULT_RECEIVER_CODE: &str = "terminal";
/// The default and the lowest poll interval (QPay objects to aggressive polling).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(2000);
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1000);
/// The default time one request may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(10_000);

/// How the provider reaches QPay, from `[providers.qpay]`.
#[derive(Debug, Clone)]
pub struct QpaySettings {
    /// `https://merchant.qpay.mn`, without a trailing slash.
    pub base_url: String,
    pub client_id: String,
    /// Never printed: `SecretString`'s `Debug` is redacted.
    pub client_secret: SecretString,
    /// The invoice code QPay issued to the merchant.
    pub invoice_code: String,
    pub invoice_receiver_code: String,
    pub callback_url: Option<String>,
    pub sender_branch_code: Option<String>,
    pub sender_staff_code: Option<String>,
    pub poll_interval: Duration,
    pub request_timeout: Duration,
}

/// The provider could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QpayError {
    #[error("cannot start the QPay provider: {0}")]
    Client(String),
}

/// The QPay provider. Cheap to share: the state lives behind an `Arc`.
pub struct Qpay {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Qpay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qpay")
            .field("settings", &self.inner.settings)
            .field("terminal_id", &self.inner.terminal_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    settings: QpaySettings,
    terminal_id: String,
    api: Api,
    state: StateStore,
    /// Creates whose answer is still awaited, by `sender_invoice_no`.
    in_flight: Mutex<HashMap<String, watch::Receiver<Option<CreateOutcome>>>>,
    /// The amounts of the invoices used most recently, by invoice id, to tell paid from partly
    /// paid. Bounded: every amount is also in the state, and read back from there on a miss.
    amounts: Mutex<lru::LruCache<String, Decimal>>,
    /// Refunds choose and claim payments one at a time.
    refunds: tokio::sync::Mutex<()>,
}

impl Qpay {
    /// The name the till and the config use.
    pub const NAME: &'static str = "qpay";

    /// A provider for `settings`, sending `terminal_id` as `sender_terminal_code`, keeping its
    /// tokens and journal in `state`.
    pub fn new(
        settings: QpaySettings,
        terminal_id: &str,
        state: Arc<dyn ProviderState>,
    ) -> Result<Qpay, QpayError> {
        let transport = Transport::new(&settings.base_url, settings.request_timeout)
            .map_err(QpayError::Client)?;
        let state = StateStore::new(state);
        let tokens = TokenKeeper::new(
            &settings.base_url,
            &settings.client_id,
            settings.client_secret.clone(),
            state.clone(),
        );
        Ok(Qpay {
            inner: Arc::new(Inner {
                settings,
                terminal_id: terminal_id.to_owned(),
                api: Api { transport, tokens },
                state,
                in_flight: Mutex::new(HashMap::new()),
                amounts: Mutex::new(super::recent_invoices()),
                refunds: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// `GET /v2/invoice/{id}`: what QPay holds for an invoice.
    pub async fn get_invoice(&self, invoice_id: &str) -> Result<InvoiceDetails, ProviderError> {
        self.inner.get_invoice(invoice_id).await
    }

    /// `GET /v2/payment/{id}`: one payment.
    pub async fn get_payment(&self, payment_id: &str) -> Result<PaymentRow, ProviderError> {
        self.inner.get_payment(payment_id).await
    }
}

#[async_trait]
impl Provider for Qpay {
    fn name(&self) -> &str {
        Qpay::NAME
    }

    fn display_name(&self) -> &str {
        "QPay"
    }

    fn currencies(&self) -> &[Currency] {
        &[Currency::Mnt]
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

    async fn check(&self, invoice_id: &str) -> Result<CheckResult, ProviderError> {
        self.inner.check(invoice_id).await
    }

    async fn cancel(&self, invoice_id: &str) -> Result<CancelOutcome, ProviderError> {
        self.inner.cancel(invoice_id).await
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        self.inner.refund(request).await
    }

    fn check_refund(&self, amount: Decimal, payments: &[ProviderPayment]) -> Result<(), String> {
        payments::check_whole_payment(amount, payments)
    }

    fn check_create(&self, request: &CreateRequest) -> Result<(), String> {
        self.inner
            .invoice_request(request)
            .map(|_| ())
            .map_err(|error| match error {
                ProviderError::Rejected { message, .. } => message,
                other => other.to_string(),
            })
    }

    fn day_offset(&self) -> time::UtcOffset {
        // QPay's days are Mongolia's (Ulaanbaatar, UTC+8, no daylight saving).
        time::macros::offset!(+8)
    }

    async fn list_payments(&self, date: time::Date) -> Result<Vec<ListedPayment>, ProviderError> {
        self.inner.list_payments(date).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings for a provider that is never called (its client secret is
    /// `very-secret-value`).
    pub(super) fn settings() -> QpaySettings {
        QpaySettings {
            base_url: DEFAULT_BASE_URL.into(),
            client_id: "client-1".into(),
            client_secret: SecretString::from("very-secret-value"),
            invoice_code: "TEST_INVOICE".into(),
            invoice_receiver_code: DEFAULT_RECEIVER_CODE.into(),
            callback_url: None,
            sender_branch_code: None,
            sender_staff_code: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    #[test]
    fn the_provider_debug_shows_no_secret() {
        let qpay = Qpay::new(settings(), "T1", Arc::new(MemoryState::default())).expect("builds");
        let text = format!("{qpay:?}");
        assert!(text.contains("client-1"), "{text}");
        assert!(!text.contains("very-secret-value"), "{text}");
    }
}
