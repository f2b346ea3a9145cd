//! The MQ-Pay gateway provider: every QR through the merchant's own MQ-Pay (seed 000's
//! `/payments/*` API), which in turn asks the bank or wallet named by `provider`
//! (`VNPAY_QR_MMS`, ...).
//!
//! It speaks to MQ-Pay through the one MQ-Pay client ([`crate::mqpay`]: the bearer key, the
//! request signature, MQ-Pay's error shape), which the upstream sync shares. It never touches
//! SQL except through [`ProviderState`], never decides an attempt's status, and never logs or
//! returns the API key or the signing secret.
//!
//! The invoice id the engine keeps is MQ-Pay's attempt id. Retry safety, which the engine
//! relies on:
//! - Every checkout carries the attempt's idempotency key as `Idempotency-Key`, and its answer
//!   is journalled (in the provider state) before `create` returns, so a repeat or a `lookup`
//!   finds it without asking MQ-Pay.
//! - A checkout whose answer was lost is looked up by its source before anything is created
//!   again: the MQ-Pay transaction whose `sourceId` is qrpayd's transaction id, then its
//!   attempts. The newest one of this payment (same gateway provider and amount, made after the
//!   first send, claimed by no other attempt) is adopted when it carries its QR; one without
//!   its QR was never shown, so nobody can have paid it: it is cancelled, and the engine starts
//!   again, in the same MQ-Pay transaction. One sale never makes two MQ-Pay transactions.
//! - A refund notes the refunds its attempt already had before it is first sent; a repeat
//!   looks for the one it made (a new refund of the same amount) before sending again, so a
//!   refund whose answer was lost is never made twice. Refunds are sent one at a time.

pub mod answers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::http::encode_component;
use super::{
    CancelOutcome, CheckResult, CreateRequest, Invoice, InvoiceState, ListedPayment, Provider,
    ProviderError, ProviderPayment, ProviderState, RefundOutcome, RefundRequest,
};
use crate::domain::{Currency, Timestamp};
use crate::mqpay::{Method, MqPay, MqPayError, MqPaySettings, Refusal, Request};
use answers::{AttemptRow, Checkout, ResultRow};

/// The default and the lowest poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(2000);
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1000);
/// The default time one request may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(10_000);
/// MQ-Pay's payment method for a QR.
pub const DEFAULT_METHOD: &str = "100_QR_CODE";
/// The most rows asked for in one page of a list.
const PAGE: usize = 100;
/// The most pages read for one day's reconciliation (100 000 payments).
const MAX_PAGES: usize = 1000;
/// How much earlier than qrpayd's first send MQ-Pay's clock may date an attempt it made.
const CLOCK_SLACK_MS: u64 = 5 * 60 * 1000;

/// How the provider reaches MQ-Pay, from `[providers.mqpay]`.
#[derive(Debug, Clone)]
pub struct MqPayGatewaySettings {
    /// `https://host/api/mq-pay`, without a trailing slash.
    pub base_url: String,
    /// Never printed: `SecretString`'s `Debug` is redacted.
    pub api_key: SecretString,
    pub signing_secret: Option<SecretString>,
    /// MQ-Pay's code of the bank or wallet behind the QR (`VNPAY_QR_MMS`).
    pub provider: String,
    /// MQ-Pay's payment method (`100_QR_CODE`).
    pub method: String,
    pub currencies: Vec<Currency>,
    pub poll_interval: Duration,
    pub request_timeout: Duration,
}

/// The provider could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqPayGatewayError {
    #[error("cannot start the MQ-Pay provider: {0}")]
    Client(String),
}

/// The MQ-Pay gateway provider.
pub struct MqPayGateway {
    settings: MqPayGatewaySettings,
    client: MqPay,
    state: Arc<dyn ProviderState>,
    /// Refunds look up and send one at a time, so that each finds only its own.
    refunds: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for MqPayGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqPayGateway")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What the journal keeps of a checkout MQ-Pay answered.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Journalled {
    transaction_id: String,
    attempt_id: String,
    qr_code: String,
    qr_url: Option<String>,
    expires_at: Option<i64>,
}

impl From<Journalled> for Invoice {
    fn from(journalled: Journalled) -> Invoice {
        Invoice {
            invoice_id: journalled.attempt_id,
            qr_text: journalled.qr_code,
            short_url: journalled.qr_url,
            deep_links: Vec::new(),
            expires_at: journalled.expires_at.map(Timestamp),
        }
    }
}

/// What the journal keeps of a refund: the refunds its attempt had before it was first sent,
/// and the one it made once known.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct RefundNote {
    before: Vec<String>,
    done: Option<String>,
}

/// The key, in the provider's state, of the checkout journalled for the attempt with this
/// idempotency key.
pub fn checkout_journal_key(idempotency_key: &str) -> String {
    format!("checkout:{idempotency_key}")
}

/// The MQ-Pay transaction a journalled checkout (the value under [`checkout_journal_key`])
/// belongs to: what the upstream sync links the local transaction to when it shares this
/// MQ-Pay.
pub fn journalled_transaction_id(journal: &str) -> Option<String> {
    serde_json::from_str::<Journalled>(journal)
        .ok()
        .map(|journalled| journalled.transaction_id)
}

impl MqPayGateway {
    /// The name the till and the config use.
    pub const NAME: &'static str = "mqpay";

    /// A provider for `settings`, sending `terminal_id` as `X-Terminal-Id`, keeping its journal
    /// in `state`.
    pub fn new(
        settings: MqPayGatewaySettings,
        terminal_id: &str,
        state: Arc<dyn ProviderState>,
    ) -> Result<MqPayGateway, MqPayGatewayError> {
        let client = MqPay::new(MqPaySettings {
            base_url: settings.base_url.clone(),
            api_key: settings.api_key.clone(),
            signing_secret: settings.signing_secret.clone(),
            request_timeout: settings.request_timeout,
            terminal_id: terminal_id.to_owned(),
        })
        .map_err(MqPayGatewayError::Client)?;
        Ok(MqPayGateway {
            settings,
            client,
            state,
            refunds: tokio::sync::Mutex::new(()),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
        object: &str,
    ) -> Result<serde_json::Value, ProviderError> {
        let request = Request {
            method,
            path,
            body: None,
            idempotency_key,
        };
        let answer = match body {
            Some(body) => self.client.send_json(request, body).await,
            None => self.client.send(request).await,
        };
        answer.map_err(|error| self.error(error, object))
    }

    async fn post(
        &self,
        path: &str,
        body: &impl Serialize,
        idempotency_key: Option<&str>,
        object: &str,
    ) -> Result<serde_json::Value, ProviderError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ProviderError::Rejected {
            code: "INVALID_ARGUMENT".to_owned(),
            message: format!("the request to MQ-Pay cannot be written: {e}"),
        })?;
        self.call(Method::Post, path, Some(bytes), idempotency_key, object)
            .await
    }

    /// `GET {collection}?filter=...`: every row of one list answer.
    async fn list(
        &self,
        collection: &str,
        filter: &serde_json::Value,
        object: &str,
    ) -> Result<Vec<serde_json::Value>, ProviderError> {
        let path = format!(
            "/{collection}?filter={}",
            encode_component(&filter.to_string())
        );
        let answer = self.call(Method::Get, &path, None, None, object).await?;
        Ok(answers::rows(&answer, object)?.to_vec())
    }

    /// A failed request in the engine's words. `object` names what it was about.
    fn error(&self, error: MqPayError, object: &str) -> ProviderError {
        match error {
            MqPayError::Unreachable(why) => ProviderError::Unavailable(why),
            MqPayError::Timeout(_) => ProviderError::Timeout,
            not_json @ MqPayError::NotJson { .. } => {
                ProviderError::Unavailable(not_json.to_string())
            }
            MqPayError::Refused(refusal) => self.refused(refusal, object),
        }
    }

    fn refused(&self, refusal: Refusal, object: &str) -> ProviderError {
        let message = refusal.message.clone().unwrap_or_default();
        match (refusal.status, refusal.code.as_deref()) {
            (_, Some("SIGNATURE_MISMATCH")) => ProviderError::Rejected {
                code: "SIGNATURE_MISMATCH".to_owned(),
                message: "MQ-Pay refused qrpayd's request signature: check that \
                          providers.mqpay.signing_secret is the one MQ-Pay has for this \
                          terminal, and that the terminal's clock is right"
                    .to_owned(),
            },
            (_, Some("PROVIDER_NOT_CONFIGURED")) => ProviderError::Rejected {
                code: "PROVIDER_NOT_CONFIGURED".to_owned(),
                message: format!(
                    "MQ-Pay has no provider {} enabled for this merchant (providers.mqpay.\
                     provider){}",
                    self.settings.provider,
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ),
            },
            (_, Some("PAYMENT_ATTEMPT_NOT_FOUND")) | (404, _) => {
                ProviderError::NotFound(object.to_owned())
            }
            (429, _) => ProviderError::RateLimited {
                retry_after: refusal.retry_after,
            },
            (401 | 403, _) => ProviderError::Unauthorized,
            (408 | 425 | 500..=599, _) => ProviderError::Unavailable(refusal.to_string()),
            (_, Some(code)) => ProviderError::Rejected {
                code: code.to_owned(),
                message,
            },
            (status, None) => ProviderError::Rejected {
                code: format!("HTTP_{status}"),
                message: refusal.to_string(),
            },
        }
    }

    fn load(&self, key: &str) -> Result<Option<String>, ProviderError> {
        self.state
            .load(key)
            .map_err(|e| ProviderError::Unavailable(format!("the MQ-Pay journal: {e}")))
    }

    fn save(&self, key: &str, value: &str) -> Result<(), ProviderError> {
        self.state
            .save(key, value)
            .map_err(|e| ProviderError::Unavailable(format!("the MQ-Pay journal: {e}")))
    }

    /// The checkout journalled under `key`, if MQ-Pay answered it.
    fn journalled(&self, key: &str) -> Result<Option<Invoice>, ProviderError> {
        let Some(text) = self.load(&checkout_journal_key(key))? else {
            return Ok(None);
        };
        let journalled: Journalled = serde_json::from_str(&text).map_err(|e| {
            ProviderError::Unavailable(format!("the MQ-Pay journal is unreadable: {e}"))
        })?;
        Ok(Some(journalled.into()))
    }

    /// Journals MQ-Pay's attempt as made for `key`; refuses one that another payment claimed.
    fn journal(&self, key: &str, checkout: &Checkout) -> Result<Invoice, ProviderError> {
        let claim = format!("claimed:{}", checkout.attempt_id);
        match self.load(&claim)? {
            Some(owner) if owner != key => {
                return Err(ProviderError::Rejected {
                    code: "DUPLICATE_ATTEMPT".to_owned(),
                    message: format!(
                        "MQ-Pay answered with attempt {}, which belongs to an earlier payment",
                        checkout.attempt_id
                    ),
                });
            }
            _ => self.save(&claim, key)?,
        }
        let journalled = Journalled {
            transaction_id: checkout.transaction_id.clone(),
            attempt_id: checkout.attempt_id.clone(),
            qr_code: checkout.qr_code.clone(),
            qr_url: checkout.qr_url.clone(),
            expires_at: checkout.expires_at.map(|t| t.0),
        };
        let text = serde_json::to_string(&journalled).map_err(|e| {
            ProviderError::Unavailable(format!("the MQ-Pay journal cannot be written: {e}"))
        })?;
        self.save(&checkout_journal_key(key), &text)?;
        Ok(journalled.into())
    }

    /// Finds what a checkout whose answer was lost made at MQ-Pay (see the module docs).
    async fn find_lost_checkout(
        &self,
        request: &CreateRequest,
        first_sent: Timestamp,
    ) -> Result<Option<Invoice>, ProviderError> {
        let filter = json!({"where": {
            "sourceType": request.source.kind,
            "sourceId": request.transaction_id,
        }});
        let transactions = self
            .list("transactions", &filter, "the transaction of this sale")
            .await?;
        let Some(transaction) = transactions
            .iter()
            .filter_map(|row| answers::transaction_row(row).ok())
            .find(|t| t.source_id.as_deref() == Some(request.transaction_id.as_str()))
        else {
            return Ok(None);
        };
        let filter = json!({"where": {"transactionId": transaction.id}});
        let rows = self
            .list("payment-attempts", &filter, "the attempts of this sale")
            .await?;
        let earliest = Timestamp(first_sent.0.saturating_sub(CLOCK_SLACK_MS as i64));
        let mut candidates = Vec::new();
        for row in rows.iter().filter_map(|row| answers::attempt_row(row).ok()) {
            let ours = row.kind.as_deref().is_none_or(|k| k == "100_PAYMENT")
                && row
                    .provider
                    .as_deref()
                    .is_none_or(|p| p == self.settings.provider)
                && row.amount.is_none_or(|a| a == request.amount)
                && row.created_at.is_none_or(|at| at >= earliest)
                && self.load(&format!("claimed:{}", row.id))?.is_none();
            if ours {
                candidates.push(row);
            }
        }
        candidates.sort_by_key(|row| row.created_at);
        let Some(newest) = candidates.pop() else {
            return Ok(None);
        };
        if let Some(qr_code) = newest.qr_code.clone() {
            let checkout = Checkout {
                transaction_id: transaction.id,
                attempt_id: newest.id,
                qr_code,
                qr_url: newest.qr_url,
                expires_at: newest.expires_at,
            };
            return self.journal(&request.idempotency_key, &checkout).map(Some);
        }
        // Made, but its QR never reached anyone: close it, so that the sale starts again.
        self.close_unshown(&newest).await?;
        Ok(None)
    }

    async fn close_unshown(&self, attempt: &AttemptRow) -> Result<(), ProviderError> {
        tracing::warn!(
            mqpay_attempt_id = %attempt.id,
            "an MQ-Pay attempt made by a checkout whose answer was lost has no QR; cancelling it"
        );
        match self.cancel_attempt(&attempt.id).await {
            Ok(_) | Err(ProviderError::NotFound(_)) => {
                self.save(&format!("claimed:{}", attempt.id), "abandoned")
            }
            Err(error) => Err(error),
        }
    }

    async fn verify(&self, attempt_id: &str) -> Result<answers::Verified, ProviderError> {
        let object = format!("attempt {attempt_id}");
        let answer = self
            .post(
                "/payments/verify",
                &json!({ "attemptId": attempt_id }),
                None,
                &object,
            )
            .await?;
        let verified = answers::verified(&answer)?;
        if verified.attempt.id != attempt_id {
            return Err(ProviderError::Unavailable(format!(
                "MQ-Pay answered a verify of {attempt_id} about {}",
                verified.attempt.id
            )));
        }
        Ok(verified)
    }

    async fn results_of(&self, attempt_id: &str) -> Result<Vec<ResultRow>, ProviderError> {
        let filter = json!({"where": {"attemptId": attempt_id}, "limit": PAGE * 10});
        let rows = self
            .list(
                "payment-results",
                &filter,
                &format!("the payments of attempt {attempt_id}"),
            )
            .await?;
        let mut results = Vec::with_capacity(rows.len());
        for row in &rows {
            let result = answers::result_row(row)?;
            // A server that ignores the filter lists other attempts' payments too.
            if result.attempt_id.as_deref() == Some(attempt_id) {
                results.push(result);
            }
        }
        Ok(results)
    }

    async fn cancel_attempt(&self, attempt_id: &str) -> Result<CancelOutcome, ProviderError> {
        let body = json!({"attemptId": attempt_id, "reason": "cancelled at the till"});
        let object = format!("attempt {attempt_id}");
        match self.post("/payments/cancel", &body, None, &object).await {
            Ok(_) => Ok(CancelOutcome::Cancelled),
            Err(ProviderError::Rejected { code, .. }) if code == "INVALID_TRANSACTION_STATUS" => {
                // Too late to cancel: the customer paid, or it had ended already.
                let verified = self.verify(attempt_id).await?;
                match state_of(&verified) {
                    InvoiceState::Open => {
                        let paid_some = !self.results_of(attempt_id).await?.is_empty();
                        if paid_some {
                            Ok(CancelOutcome::AlreadyPaid)
                        } else {
                            Err(ProviderError::Unavailable(format!(
                                "MQ-Pay refused to cancel attempt {attempt_id}, which it still \
                                 shows as {}",
                                verified.attempt.status
                            )))
                        }
                    }
                    InvoiceState::Paid => Ok(CancelOutcome::AlreadyPaid),
                    InvoiceState::Closed | InvoiceState::Failed { .. } => {
                        Ok(CancelOutcome::Cancelled)
                    }
                }
            }
            Err(error) => Err(error),
        }
    }

    /// The refunds MQ-Pay holds for a payment attempt.
    async fn refunds_of(&self, attempt_id: &str) -> Result<Vec<AttemptRow>, ProviderError> {
        let filter = json!({"where": {"parentId": attempt_id}});
        let rows = self
            .list(
                "payment-attempts",
                &filter,
                &format!("the refunds of attempt {attempt_id}"),
            )
            .await?;
        let mut refunds = Vec::new();
        for row in &rows {
            let attempt = answers::attempt_row(row)?;
            if attempt.parent_id.as_deref() == Some(attempt_id)
                && attempt.kind.as_deref() == Some("300_REFUND_PAYMENT")
            {
                refunds.push(attempt);
            }
        }
        Ok(refunds)
    }

    fn refund_note(&self, key: &str) -> Result<Option<RefundNote>, ProviderError> {
        match self.load(&format!("refund:{key}"))? {
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                ProviderError::Unavailable(format!("the MQ-Pay journal is unreadable: {e}"))
            }),
            None => Ok(None),
        }
    }

    fn save_refund_note(&self, key: &str, note: &RefundNote) -> Result<(), ProviderError> {
        let text = serde_json::to_string(note).map_err(|e| {
            ProviderError::Unavailable(format!("the MQ-Pay journal cannot be written: {e}"))
        })?;
        self.save(&format!("refund:{key}"), &text)
    }

    /// What became of a refund MQ-Pay made: done, failed, or still on its way.
    fn refund_outcome(
        &self,
        key: &str,
        refund: &AttemptRow,
    ) -> Result<RefundOutcome, ProviderError> {
        match refund.status.as_str() {
            "302_SUCCESS" => {
                let mut note = self.refund_note(key)?.unwrap_or_default();
                note.done = Some(refund.id.clone());
                self.save_refund_note(key, &note)?;
                Ok(RefundOutcome {
                    reference: refund.id.clone(),
                })
            }
            "500_FAIL" | "501_EXPIRED" => Err(ProviderError::Rejected {
                code: "REFUND_FAILED".to_owned(),
                message: format!("MQ-Pay's refund {} ended {}", refund.id, refund.status),
            }),
            other => Err(ProviderError::Unavailable(format!(
                "MQ-Pay's refund {} is still {other}",
                refund.id
            ))),
        }
    }
}

/// An amount as a JSON number written from its decimal digits, never through a float.
fn json_number(amount: Decimal) -> Result<Box<RawValue>, ProviderError> {
    RawValue::from_string(amount.normalize().to_string()).map_err(|e| ProviderError::Rejected {
        code: "INVALID_ARGUMENT".to_owned(),
        message: format!("amount {amount} cannot be written as JSON: {e}"),
    })
}

/// Where an attempt stands, from MQ-Pay's attempt status.
fn state_of(verified: &answers::Verified) -> InvoiceState {
    match verified.attempt.status.as_str() {
        "302_SUCCESS" => InvoiceState::Paid,
        "100_NEW" | "204_SENT" => InvoiceState::Open,
        "500_FAIL" => InvoiceState::Failed {
            code: verified
                .provider_code
                .clone()
                .unwrap_or_else(|| "500_FAIL".to_owned()),
            message: verified
                .provider_message
                .clone()
                .unwrap_or_else(|| "MQ-Pay failed the payment".to_owned()),
        },
        // 501_EXPIRED, and anything that can no longer be paid.
        _ => InvoiceState::Closed,
    }
}

#[derive(Serialize)]
struct CheckoutBody<'a> {
    source: CheckoutSource<'a>,
    payment: CheckoutPayment<'a>,
    expiration: CheckoutExpiration,
}

#[derive(Serialize)]
struct CheckoutSource<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    uid: &'a str,
}

#[derive(Serialize)]
struct CheckoutPayment<'a> {
    provider: &'a str,
    method: &'a str,
    total: Box<RawValue>,
    currency: &'a str,
}

#[derive(Serialize)]
struct CheckoutExpiration {
    mode: &'static str,
    milliseconds: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefundBody<'a> {
    attempt_id: &'a str,
    amount: Box<RawValue>,
    reason: &'a str,
}

#[async_trait]
impl Provider for MqPayGateway {
    fn name(&self) -> &str {
        MqPayGateway::NAME
    }

    fn display_name(&self) -> &str {
        "MQ-Pay"
    }

    fn currencies(&self) -> &[Currency] {
        &self.settings.currencies
    }

    fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    async fn create(&self, request: &CreateRequest) -> Result<Invoice, ProviderError> {
        let key = &request.idempotency_key;
        if let Some(invoice) = self.journalled(key)? {
            return Ok(invoice);
        }
        let sent = format!("sent:{key}");
        if self.load(&sent)?.is_none() {
            self.save(&sent, &Timestamp::now().0.to_string())?;
        }
        let body = CheckoutBody {
            source: CheckoutSource {
                kind: &request.source.kind,
                id: &request.transaction_id,
                uid: request
                    .source
                    .uid
                    .as_deref()
                    .unwrap_or(&request.transaction_number),
            },
            payment: CheckoutPayment {
                provider: &self.settings.provider,
                method: &self.settings.method,
                total: json_number(request.amount)?,
                currency: request.currency.code(),
            },
            expiration: CheckoutExpiration {
                mode: "duration",
                milliseconds: Timestamp::now().millis_until(request.expires_at).max(1000),
            },
        };
        let answer = self
            .post("/payments/checkout", &body, Some(key), "the checkout")
            .await?;
        let checkout = answers::checkout(&answer)?;
        self.journal(key, &checkout)
    }

    async fn lookup(&self, request: &CreateRequest) -> Result<Option<Invoice>, ProviderError> {
        let key = &request.idempotency_key;
        if let Some(invoice) = self.journalled(key)? {
            return Ok(Some(invoice));
        }
        let Some(first_sent) = self.load(&format!("sent:{key}"))? else {
            // Never sent: nothing can exist.
            return Ok(None);
        };
        let first_sent = Timestamp(first_sent.parse().unwrap_or(0));
        self.find_lost_checkout(request, first_sent).await
    }

    async fn check(&self, invoice_id: &str) -> Result<CheckResult, ProviderError> {
        let verified = self.verify(invoice_id).await?;
        let state = state_of(&verified);
        let results = self.results_of(invoice_id).await?;
        if state == InvoiceState::Paid && results.is_empty() {
            return Err(ProviderError::Unavailable(format!(
                "MQ-Pay says attempt {invoice_id} is paid but lists no payment for it yet"
            )));
        }
        Ok(CheckResult {
            state,
            payments: results
                .into_iter()
                .map(|r| ProviderPayment {
                    payment_id: r.id,
                    amount: r.amount,
                    paid_at: r.paid_at,
                })
                .collect(),
            code: verified
                .provider_code
                .unwrap_or_else(|| verified.attempt.status.clone()),
            message: verified.provider_message.unwrap_or_default(),
        })
    }

    async fn cancel(&self, invoice_id: &str) -> Result<CancelOutcome, ProviderError> {
        self.cancel_attempt(invoice_id).await
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        let _one_at_a_time = self.refunds.lock().await;
        let key = &request.idempotency_key;
        let attempt_id = &request.invoice_id;
        let note = self.refund_note(key)?;
        if let Some(done) = note.as_ref().and_then(|n| n.done.clone()) {
            return Ok(RefundOutcome { reference: done });
        }
        let existing = self.refunds_of(attempt_id).await?;
        match note {
            Some(note) => {
                // Sent before, answer unknown: the refund it made, if any, is new since.
                if let Some(made) = existing
                    .iter()
                    .find(|r| !note.before.contains(&r.id) && r.amount == Some(request.amount))
                {
                    return self.refund_outcome(key, made);
                }
            }
            None => self.save_refund_note(
                key,
                &RefundNote {
                    before: existing.iter().map(|r| r.id.clone()).collect(),
                    done: None,
                },
            )?,
        }
        let body = RefundBody {
            attempt_id,
            amount: json_number(request.amount)?,
            reason: &request.reason,
        };
        let answer = self
            .post(
                "/payments/refund",
                &body,
                Some(key),
                &format!("attempt {attempt_id}"),
            )
            .await?;
        let refund = answers::refunded(&answer)?;
        self.refund_outcome(key, &refund)
    }

    async fn list_payments(&self, date: time::Date) -> Result<Vec<ListedPayment>, ProviderError> {
        let start = date.midnight().assume_utc();
        let end = start + time::Duration::days(1);
        let rfc = |at: time::OffsetDateTime| Timestamp(at.unix_timestamp() * 1000).to_rfc3339();
        let mut listed = Vec::new();
        for page in 0..MAX_PAGES {
            let filter = json!({
                "where": {
                    "provider": self.settings.provider,
                    "paidAt": {"between": [rfc(start), rfc(end - time::Duration::milliseconds(1))]},
                },
                "order": ["paidAt ASC"],
                "limit": PAGE,
                "skip": page * PAGE,
            });
            let rows = self
                .list("payment-results", &filter, "the day's payments")
                .await?;
            for row in &rows {
                let result = answers::result_row(row)?;
                listed.push(ListedPayment {
                    payment_id: result.id,
                    invoice_id: result.attempt_id,
                    amount: result.amount,
                    currency: result.currency.unwrap_or_default(),
                    status: "PAID".to_owned(),
                    paid_at: result.paid_at,
                });
            }
            if rows.len() < PAGE {
                return Ok(listed);
            }
        }
        Err(ProviderError::Unavailable(format!(
            "MQ-Pay lists more than {} payments for {date}",
            PAGE * MAX_PAGES
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqpay::refusal_of;
    use crate::providers::qpay::MemoryState;

    fn gateway() -> MqPayGateway {
        let settings = MqPayGatewaySettings {
            base_url: "https://bo.example/api/mq-pay".to_owned(),
            api_key: SecretString::from("key-very-secret"),
            signing_secret: Some(SecretString::from("sign-very-secret")),
            provider: "VNPAY_QR_MMS".to_owned(),
            method: DEFAULT_METHOD.to_owned(),
            currencies: vec![Currency::Vnd],
            poll_interval: DEFAULT_POLL_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        };
        MqPayGateway::new(settings, "T-1", Arc::new(MemoryState::default())).expect("built")
    }

    fn refused(status: u16, body: &str, retry_after: Option<Duration>) -> ProviderError {
        gateway().refused(
            refusal_of(status, body.as_bytes(), retry_after),
            "attempt A",
        )
    }

    #[test]
    fn mqpay_errors_map_to_the_engines_by_code() {
        let after = Some(Duration::from_secs(3));
        assert_eq!(
            refused(429, "", after),
            ProviderError::RateLimited { retry_after: after }
        );
        assert_eq!(
            refused(503, "<html>", None).disposition(),
            crate::providers::Disposition::Unknown
        );
        assert_eq!(refused(401, "{}", None), ProviderError::Unauthorized);
        assert_eq!(
            refused(
                404,
                r#"{"error":{"code":"PAYMENT_ATTEMPT_NOT_FOUND","message":"no"}}"#,
                None
            ),
            ProviderError::NotFound("attempt A".to_owned())
        );
        let ProviderError::Rejected { code, message } = refused(
            400,
            r#"{"error":{"code":"PROVIDER_NOT_CONFIGURED","message":"off"}}"#,
            None,
        ) else {
            panic!("a refusal");
        };
        assert_eq!(code, "PROVIDER_NOT_CONFIGURED");
        assert!(message.contains("VNPAY_QR_MMS"), "{message}");
        let ProviderError::Rejected { code, .. } = refused(
            422,
            r#"{"error":{"code":"REFUND_EXCEEDS_REMAINING","message":"too much"}}"#,
            None,
        ) else {
            panic!("a refusal");
        };
        assert_eq!(code, "REFUND_EXCEEDS_REMAINING");
    }

    #[test]
    fn the_providers_debug_shows_no_secret() {
        let text = format!("{:?}", gateway());
        assert!(text.contains("VNPAY_QR_MMS"), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
    }

    #[test]
    fn amounts_are_written_as_json_numbers_from_their_digits() {
        let number = |text: &str| {
            json_number(text.parse().expect("decimal"))
                .expect("written")
                .get()
                .to_owned()
        };
        assert_eq!(number("100000.0000"), "100000");
        assert_eq!(number("123.45"), "123.45");
        assert_eq!(number("0.1"), "0.1");
        assert_eq!(
            number("79228162514264337593543950335"),
            "79228162514264337593543950335"
        );
    }
}
