//! Payment providers: the trait every provider implements, and the registry of the enabled ones.
//!
//! A provider turns a payment attempt into something the customer can pay (an invoice with a
//! QR), reports what was paid, and cancels or refunds. This module is the only place that speaks
//! to providers (and, once the HTTP providers land, the only place that speaks HTTP). It knows
//! nothing of SQLite or D-Bus, and it never decides what a payment's status is: it reports what
//! the provider says, and the engine decides.
//!
//! Every call must be safe to retry: `create` is keyed by the attempt's idempotency key, and
//! [`Provider::lookup`] finds what an earlier, interrupted `create` made.

pub mod appotapay;
pub(crate) mod http;
pub mod mqpay;
pub mod qpay;
pub mod simulator;
pub mod vietqr;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;

use crate::domain::{Currency, DeepLink, Item, Source, Timestamp};

pub use qpay::Qpay;
pub use simulator::Simulator;

/// What the engine asks a provider to create for a payment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The transaction the attempt pays, and the till's source of it.
    pub transaction_id: String,
    pub source: Source,
    pub attempt_id: String,
    pub attempt_code: String,
    /// Stable across retries of the same attempt; providers use it to recognise a repeat.
    pub idempotency_key: String,
    pub transaction_number: String,
    pub terminal_id: String,
    pub amount: Decimal,
    pub currency: Currency,
    pub description: String,
    pub expires_at: Timestamp,
    pub allow_partial: bool,
    pub items: Vec<Item>,
}

/// The customer's card or bank account, which the till passes for one payment made with it
/// (method `ATM`). It lives in memory for the one create call and nowhere else: it is never
/// stored, logged, signalled or put into an error, and its `Debug` shows the bank, the kind and
/// the last 4 characters of the number only. The provider checks the values.
#[derive(Clone, PartialEq, Eq)]
pub enum PaymentInstrument {
    /// A domestic ATM card.
    Card {
        bank_code: String,
        number: String,
        holder_name: String,
        /// The month and year printed on the card, two digits each.
        month: String,
        year: String,
    },
    /// A bank account, with its holder's identification number.
    Account {
        bank_code: String,
        number: String,
        holder_name: String,
        identification_number: String,
    },
}

impl PaymentInstrument {
    /// `card` or `account`.
    pub fn kind(&self) -> &'static str {
        match self {
            PaymentInstrument::Card { .. } => "card",
            PaymentInstrument::Account { .. } => "account",
        }
    }

    /// The last 4 letters or digits of the card or account number (fewer for a shorter one).
    pub fn last4(&self) -> String {
        let number = match self {
            PaymentInstrument::Card { number, .. } | PaymentInstrument::Account { number, .. } => {
                number
            }
        };
        let mut last: Vec<char> = number
            .chars()
            .rev()
            .filter(char::is_ascii_alphanumeric)
            .take(4)
            .collect();
        last.reverse();
        last.into_iter().collect()
    }
}

impl std::fmt::Debug for PaymentInstrument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bank_code = match self {
            PaymentInstrument::Card { bank_code, .. }
            | PaymentInstrument::Account { bank_code, .. } => bank_code,
        };
        f.debug_struct("PaymentInstrument")
            .field("kind", &self.kind())
            .field("bank_code", bank_code)
            .field("number", &format_args!("****{}", self.last4()))
            .finish_non_exhaustive()
    }
}

/// What the provider made for an attempt: something the customer can pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The provider's id for it, used by every later call.
    pub invoice_id: String,
    /// The EMVCo payload to show as a QR; for a payment with the customer's card or account,
    /// the https page where the customer finishes it.
    pub qr_text: String,
    pub short_url: Option<String>,
    pub deep_links: Vec<DeepLink>,
    /// When the provider stops taking payments on it, when it says; the attempt's deadline
    /// moves to this time when it is earlier than the one qrpayd asked for.
    pub expires_at: Option<Timestamp>,
}

/// One payment the provider reports against an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPayment {
    /// The provider's id for the payment; the engine records each one once.
    pub payment_id: String,
    pub amount: Decimal,
    pub paid_at: Option<Timestamp>,
}

/// Where an invoice stands at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceState {
    /// Still payable.
    Open,
    /// Paid in full (or as far as the provider will take it).
    Paid,
    /// Cancelled or expired at the provider: no more money can arrive.
    Closed,
    /// The provider failed the payment.
    Failed { code: String, message: String },
}

/// The answer to a payment check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub state: InvoiceState,
    /// Every payment the provider knows for the invoice, whether seen before or not.
    pub payments: Vec<ProviderPayment>,
    /// The provider's own status code and message, for `Verify`.
    pub code: String,
    pub message: String,
}

/// The answer to a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The invoice is closed (now or before); no more money can arrive.
    Cancelled,
    /// The customer paid before the cancel arrived: check and settle instead.
    AlreadyPaid,
    /// The provider has no way to close the invoice: it stays payable until the provider's own
    /// expiry, so the engine keeps watching it (AppotaPay's POS orders).
    StillPayable,
}

/// What the engine asks a provider to refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The refund attempt's key, stable across retries.
    pub idempotency_key: String,
    pub invoice_id: String,
    pub amount: Decimal,
    pub currency: Currency,
    pub reason: String,
    /// The recorded payments of the attempt being refunded.
    pub payments: Vec<ProviderPayment>,
}

/// A refund the provider confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutcome {
    /// The provider's reference for the refund.
    pub reference: String,
}

/// A payment the provider lists for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPayment {
    pub payment_id: String,
    /// The provider's invoice the payment paid, when it says.
    pub invoice_id: Option<String>,
    pub amount: Decimal,
    pub currency: String,
    /// The provider's own status word (`PAID`, `REFUNDED`, ...).
    pub status: String,
    pub paid_at: Option<Timestamp>,
}

/// Locks a std mutex, recovering a poisoned one: the providers' critical sections are each one
/// map operation, which a panic cannot leave half done.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many invoices a provider keeps in memory, the most recently used (QPay's amounts,
/// AppotaPay's journal). Each is also in the provider's durable [`ProviderState`], so one that
/// was forgotten is read back from the store when it is needed again: the bound costs a store
/// read, never a fact. A terminal has a handful of invoices live at once; a few hundred cover
/// every one still being checked, and the memory stays flat however many payments the daemon
/// takes in its life.
pub(crate) fn recent_invoices<V>() -> lru::LruCache<String, V> {
    const RECENT_INVOICES: std::num::NonZeroUsize = std::num::NonZeroUsize::MIN.saturating_add(255);
    lru::LruCache::new(RECENT_INVOICES)
}

/// Durable state a provider keeps across restarts (QPay's tokens, say). The daemon backs it with
/// the database; values are stored as given, so a provider stores only what it must.
pub trait ProviderState: Send + Sync {
    /// The value stored under `key`, if any.
    fn load(&self, key: &str) -> Result<Option<String>, String>;
    /// Stores `value` under `key`, replacing any earlier value.
    fn save(&self, key: &str, value: &str) -> Result<(), String>;
}

/// How a provider call failed. None of these carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Not reachable, failed on its side, or answered nonsense: try again later.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// No answer in time: the call may or may not have taken effect.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider refused the request.
    #[error("the provider refused the request: {code}: {message}")]
    Rejected { code: String, message: String },
    /// Credentials were refused even after one refresh.
    #[error("the provider refused qrpayd's credentials")]
    Unauthorized,
    /// Too many requests: wait before the next.
    #[error("the provider asked qrpayd to slow down")]
    RateLimited { retry_after: Option<Duration> },
    /// The provider does not know the invoice or payment.
    #[error("the provider does not know {0}")]
    NotFound(String),
}

/// What a failed provider call means for the next step: the one classification every caller
/// uses, so that no call site decides it on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The provider answered, and repeating the call will not change its answer (a refusal,
    /// an unknown invoice or payment): act on it.
    Final,
    /// The call did not take effect (credentials refused, rate-limited): it may be repeated,
    /// after `after` when the provider said how long.
    Retry { after: Option<Duration> },
    /// No answer, or an unusable one: the call may or may not have taken effect. Look it up,
    /// or repeat it with the same idempotency key.
    Unknown,
}

impl ProviderError {
    /// How the engine must treat this failure; see [`Disposition`].
    pub fn disposition(&self) -> Disposition {
        match self {
            ProviderError::Rejected { .. } | ProviderError::NotFound(_) => Disposition::Final,
            ProviderError::Unauthorized => Disposition::Retry { after: None },
            ProviderError::RateLimited { retry_after } => Disposition::Retry {
                after: *retry_after,
            },
            ProviderError::Unavailable(_) | ProviderError::Timeout => Disposition::Unknown,
        }
    }

    /// Whether the call's outcome is unknown, so that it must be looked up before it is retried.
    pub fn outcome_unknown(&self) -> bool {
        self.disposition() == Disposition::Unknown
    }

    /// Whether the provider gave its final word: repeating the call is pointless.
    pub fn is_final(&self) -> bool {
        self.disposition() == Disposition::Final
    }
}

/// A payment provider. Implementations must make every method safe to call again after an
/// interruption (see the module documentation).
#[async_trait]
pub trait Provider: Send + Sync {
    /// The name the till and the config use (`simulator`, `qpay`, ...).
    fn name(&self) -> &str;

    /// The name shown to the customer (`Simulator`, `QPay`, ...).
    fn display_name(&self) -> &str;

    /// The currencies it can take.
    fn currencies(&self) -> &[Currency];

    /// How often to check a live invoice.
    fn poll_interval(&self) -> Duration;

    /// Creates an invoice. Repeating a create with the same idempotency key returns the same
    /// invoice, never a second one.
    async fn create(&self, request: &CreateRequest) -> Result<Invoice, ProviderError>;

    /// Finds the invoice an earlier `create` with this key made, if any.
    async fn lookup(&self, request: &CreateRequest) -> Result<Option<Invoice>, ProviderError>;

    /// Reports where an invoice stands and every payment against it.
    async fn check(&self, invoice_id: &str) -> Result<CheckResult, ProviderError>;

    /// Closes an invoice so that no more money can arrive. Cancelling a closed invoice is a
    /// success.
    async fn cancel(&self, invoice_id: &str) -> Result<CancelOutcome, ProviderError>;

    /// Gives money back. Repeating a refund with the same idempotency key refunds once.
    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProviderError>;

    /// Checks a request against the provider's own limits (field lengths, minimum amounts)
    /// before anything is recorded or sent. The error is one sentence naming the field.
    fn check_create(&self, request: &CreateRequest) -> Result<(), String> {
        let _ = request;
        Ok(())
    }

    /// Checks a payment with the customer's card or account (method `ATM`) against the
    /// provider's own rules, before anything is recorded or sent: the instrument's values and
    /// the limits of such payments (which stand in for [`Provider::check_create`]'s). A bad
    /// value is `Rejected` with the code `INVALID_ARGUMENT` and a message naming the field,
    /// never its value. Providers that take no cards or accounts say so (the default).
    fn check_with_instrument(
        &self,
        request: &CreateRequest,
        instrument: &PaymentInstrument,
    ) -> Result<(), ProviderError> {
        let _ = (request, instrument);
        Err(ProviderError::Rejected {
            code: "INVALID_ARGUMENT".to_owned(),
            message: format!(
                "method: {} takes no card or account payments (ATM)",
                self.name()
            ),
        })
    }

    /// Creates a payment with the customer's card or account (method `ATM`): the invoice's
    /// `qr_text` is then the https page where the customer finishes it (an OTP), not EMVCo.
    /// The instrument is used for this call only and kept nowhere. Repeating it with the same
    /// idempotency key never makes a second payment (the provider may refuse the repeat).
    async fn create_with_instrument(
        &self,
        request: &CreateRequest,
        instrument: &PaymentInstrument,
    ) -> Result<Invoice, ProviderError> {
        let _ = (request, instrument);
        Err(ProviderError::Rejected {
            code: "UNSUPPORTED".to_owned(),
            message: format!("{} takes no card or account payments", self.name()),
        })
    }

    /// Finds the payment an earlier [`Provider::create_with_instrument`] with this key made, if
    /// any: what [`Provider::lookup`] is for invoices. Its `qr_text` is empty when the page's
    /// address was never received. A provider that implements `create_with_instrument` must
    /// implement this too; the default knows of none.
    async fn lookup_instrument_payment(
        &self,
        request: &CreateRequest,
    ) -> Result<Option<Invoice>, ProviderError> {
        let _ = request;
        Ok(None)
    }

    /// Whether the cashier confirms this provider's payments (`ConfirmSystemPayment`) because no
    /// gateway reports them (the local VietQR provider).
    fn confirmed_by_cashier(&self) -> bool {
        false
    }

    /// Checks, before anything is recorded, that the provider can refund `amount` of a payment
    /// attempt whose recorded payments are `payments` (QPay refunds whole payments only). The
    /// error is one sentence for the till.
    fn check_refund(&self, amount: Decimal, payments: &[ProviderPayment]) -> Result<(), String> {
        let _ = (amount, payments);
        Ok(())
    }

    /// The offset from UTC of the provider's business day, which `list_payments` lists by
    /// (QPay's is Mongolia's, UTC+8). Reconciliation picks the local payments of the same day.
    fn day_offset(&self) -> time::UtcOffset {
        time::UtcOffset::UTC
    }

    /// The payments the provider knows for this terminal on `date` (the provider's own day), for
    /// reconciliation. Providers that cannot list say so with `Rejected`.
    async fn list_payments(&self, date: time::Date) -> Result<Vec<ListedPayment>, ProviderError> {
        let _ = date;
        Err(ProviderError::Rejected {
            code: "UNSUPPORTED".to_owned(),
            message: format!("{} cannot list payments", self.name()),
        })
    }
}

/// The enabled providers, by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    simulator: Option<Arc<Simulator>>,
}

impl Providers {
    /// Adds the simulator, which also answers the simulator's commands.
    pub fn with_simulator(mut self, simulator: Arc<Simulator>) -> Self {
        self.by_name
            .insert(simulator.name().to_owned(), simulator.clone());
        self.simulator = Some(simulator);
        self
    }

    /// Adds any other provider.
    pub fn with(mut self, provider: Arc<dyn Provider>) -> Self {
        self.by_name.insert(provider.name().to_owned(), provider);
        self
    }

    /// The provider with this name, if enabled.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// The simulator, if enabled.
    pub fn simulator(&self) -> Option<&Arc<Simulator>> {
        self.simulator.as_ref()
    }

    /// The names of the enabled providers, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_error_has_one_disposition() {
        let rejected = ProviderError::Rejected {
            code: "X".into(),
            message: "no".into(),
        };
        assert_eq!(rejected.disposition(), Disposition::Final);
        assert_eq!(
            ProviderError::NotFound("payment P1".into()).disposition(),
            Disposition::Final,
            "an unknown payment will not become known by asking again"
        );
        assert_eq!(
            ProviderError::Unavailable("down".into()).disposition(),
            Disposition::Unknown
        );
        assert_eq!(ProviderError::Timeout.disposition(), Disposition::Unknown);
        assert_eq!(
            ProviderError::Unauthorized.disposition(),
            Disposition::Retry { after: None }
        );
        let after = Some(Duration::from_secs(7));
        assert_eq!(
            ProviderError::RateLimited { retry_after: after }.disposition(),
            Disposition::Retry { after }
        );
        assert!(ProviderError::Timeout.outcome_unknown());
        assert!(rejected.is_final());
    }
}
