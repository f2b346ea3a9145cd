//! Invoice creation: the wire request for an attempt (checked against QPay's limits before
//! anything is sent), the journal of invoices made, the single create in flight per
//! `sender_invoice_no`, and what a duplicate answer leads to.
//!
//! This module never shows a QR and never fails an attempt itself: it tells the engine what
//! QPay made, or why it made nothing, in the engine's vocabulary. See the provider's module
//! documentation for the retry rules.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::Instrument;

use super::client::{CallError, Refusal, parse_json};
use super::model::{InvoiceCreated, InvoiceLine, InvoiceRequest, WireDecimal};
use super::{Inner, lock, segment};
use crate::domain::{Currency, DeepLink, Item, Timestamp};
use crate::providers::{CreateRequest, Invoice, ProviderError};

/// The shortest and longest a late create answer is waited for in the background.
const MIN_GRACE: Duration = Duration::from_secs(30);
const MAX_GRACE: Duration = Duration::from_secs(120);

/// What one create (however many callers wait for it) came to.
#[derive(Debug, Clone)]
pub(super) enum CreateOutcome {
    Created(Invoice),
    /// QPay holds an invoice with this number and nothing says which.
    DuplicateUnresolved,
    Failed(ProviderError),
}

/// An invoice in the journal.
#[derive(Serialize, Deserialize)]
struct Journaled {
    invoice_id: String,
    qr_text: String,
    short_url: Option<String>,
    deep_links: Vec<DeepLink>,
    amount: Decimal,
}

impl Journaled {
    fn invoice(self) -> Invoice {
        Invoice {
            expires_at: None,
            invoice_id: self.invoice_id,
            qr_text: self.qr_text,
            short_url: self.short_url,
            deep_links: self.deep_links,
        }
    }
}

fn journal_key(sender_invoice_no: &str) -> String {
    format!("invoice/{sender_invoice_no}")
}

pub(super) fn amount_key(invoice_id: &str) -> String {
    format!("amount/{invoice_id}")
}

/// An invalid request, in the words the owner maps to the till's `InvalidArgument`.
fn invalid(message: String) -> ProviderError {
    ProviderError::Rejected {
        code: "INVALID_ARGUMENT".to_owned(),
        message,
    }
}

impl Inner {
    /// Creates the attempt's invoice, or returns the one made before for its key.
    pub(super) async fn create(
        self: &Arc<Self>,
        request: &CreateRequest,
    ) -> Result<Invoice, ProviderError> {
        let wire = self.invoice_request(request)?;
        if let Some(invoice) = self.journaled(&wire.sender_invoice_no).await {
            return Ok(invoice);
        }
        match self.create_once(wire, &request.attempt_id).await {
            CreateOutcome::Created(invoice) => Ok(invoice),
            CreateOutcome::DuplicateUnresolved => Err(ProviderError::Rejected {
                code: "DUPLICATE_INVOICE".to_owned(),
                message: format!(
                    "QPay already holds invoice number {} from an earlier try whose answer was \
                     lost, and cannot say which invoice it is; it was never shown, so nobody can \
                     pay it; start the payment again",
                    request.idempotency_key
                ),
            }),
            CreateOutcome::Failed(error) => Err(error),
        }
    }

    /// Finds the invoice an earlier create for this attempt made: the journal, a create still
    /// in flight, or the create repeated with the same number while the attempt can still be
    /// paid (QPay refuses a number it has seen, which is what makes the repeat safe).
    pub(super) async fn lookup(
        self: &Arc<Self>,
        request: &CreateRequest,
    ) -> Result<Option<Invoice>, ProviderError> {
        let Ok(wire) = self.invoice_request(request) else {
            // Refused before sending: nothing was ever made.
            return Ok(None);
        };
        if let Some(invoice) = self.journaled(&wire.sender_invoice_no).await {
            return Ok(Some(invoice));
        }
        let in_flight = lock(&self.in_flight).contains_key(&wire.sender_invoice_no);
        if !in_flight && request.expires_at <= Timestamp::now() {
            // Too late to be paid: an invoice made now would only be closed again.
            return Ok(None);
        }
        match self.create_once(wire, &request.attempt_id).await {
            CreateOutcome::Created(invoice) => Ok(Some(invoice)),
            CreateOutcome::DuplicateUnresolved => Ok(None),
            CreateOutcome::Failed(ProviderError::Rejected { code, message }) => {
                tracing::warn!(
                    attempt_id = %request.attempt_id,
                    provider = "qpay",
                    %code,
                    %message,
                    "QPay refused the repeated invoice; the attempt has no invoice"
                );
                Ok(None)
            }
            CreateOutcome::Failed(error) => Err(error),
        }
    }

    /// The wire request for an attempt, or `INVALID_ARGUMENT` naming the field over its limit.
    pub(super) fn invoice_request(
        &self,
        request: &CreateRequest,
    ) -> Result<InvoiceRequest, ProviderError> {
        if request.currency != Currency::Mnt {
            return Err(invalid(format!(
                "currency: QPay takes MNT, not {}",
                request.currency
            )));
        }
        let settings = &self.settings;
        let wire = InvoiceRequest {
            invoice_code: settings.invoice_code.clone(),
            sender_invoice_no: request.idempotency_key.clone(),
            sender_branch_code: settings.sender_branch_code.clone(),
            sender_staff_code: settings.sender_staff_code.clone(),
            sender_terminal_code: Some(request.terminal_id.clone()),
            invoice_receiver_code: settings.invoice_receiver_code.clone(),
            invoice_description: request.description.clone(),
            enable_expiry: Some(true),
            expiry_date: Some(request.expires_at.to_rfc3339()),
            allow_partial: Some(request.allow_partial),
            amount: Some(WireDecimal(request.amount)),
            callback_url: settings.callback_url.clone(),
            lines: lines_of(&request.items, request.amount),
            ..InvoiceRequest::default()
        };
        wire.validate().map_err(|e| {
            invalid(format!(
                "{}: QPay takes at most {} characters (a symbol outside the basic plane, such as \
                 an emoji, counts as two), this has {}",
                e.field, e.max, e.length
            ))
        })?;
        Ok(wire)
    }

    /// The one create for `wire.sender_invoice_no`: joins the one in flight or starts it, and
    /// waits for it at most one request timeout. The request itself goes on in the background
    /// for a grace period, so a late answer is still journaled.
    async fn create_once(
        self: &Arc<Self>,
        wire: InvoiceRequest,
        attempt_id: &str,
    ) -> CreateOutcome {
        let key = wire.sender_invoice_no.clone();
        let mut receiver = {
            let mut in_flight = lock(&self.in_flight);
            match in_flight.get(&key) {
                Some(receiver) => receiver.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    in_flight.insert(key.clone(), receiver.clone());
                    let inner = self.clone();
                    let attempt_id = attempt_id.to_owned();
                    // In the caller's span, so its lines name the attempt.
                    let post = async move {
                        let outcome = inner.post_invoice(&wire, &attempt_id).await;
                        let _ = sender.send(Some(outcome));
                        lock(&inner.in_flight).remove(&wire.sender_invoice_no);
                    };
                    tokio::spawn(post.in_current_span());
                    receiver
                }
            }
        };
        let timeout = self.api.transport.timeout();
        match tokio::time::timeout(timeout, receiver.wait_for(Option::is_some)).await {
            Ok(Ok(outcome)) => outcome
                .clone()
                .unwrap_or(CreateOutcome::Failed(ProviderError::Timeout)),
            Ok(Err(_)) => {
                // The request's task ended without a word: forget it, so the next try sends
                // the request again.
                lock(&self.in_flight).remove(&key);
                CreateOutcome::Failed(ProviderError::Unavailable(
                    "the QPay invoice request ended without an answer".to_owned(),
                ))
            }
            Err(_) => {
                tracing::warn!(
                    attempt_id,
                    provider = "qpay",
                    "QPay has not answered the invoice request yet; a late answer will still be \
                     recorded"
                );
                CreateOutcome::Failed(ProviderError::Timeout)
            }
        }
    }

    /// `POST /v2/invoice`, journaling what QPay made.
    async fn post_invoice(&self, wire: &InvoiceRequest, attempt_id: &str) -> CreateOutcome {
        let body = match serde_json::to_vec(wire) {
            Ok(body) => body,
            Err(error) => return CreateOutcome::Failed(invalid(error.to_string())),
        };
        let grace = (self.api.transport.timeout() * 6).clamp(MIN_GRACE, MAX_GRACE);
        let amount = wire.amount.map(|a| a.0).unwrap_or_default();
        let answer = self
            .api
            .call(Method::POST, CREATE_PATH, Some(&body), grace)
            .await
            .and_then(|bytes| created_answer(&bytes).map_err(CallError::Failed));
        match answer {
            Ok(invoice) => {
                self.remember(&wire.sender_invoice_no, &invoice, amount)
                    .await;
                tracing::info!(
                    attempt_id,
                    provider = "qpay",
                    invoice_id = %invoice.invoice_id,
                    "QPay made the invoice"
                );
                CreateOutcome::Created(invoice)
            }
            Err(CallError::Refused(refusal)) if is_duplicate(&refusal) => {
                self.resolve_duplicate(wire, refusal, amount, attempt_id)
                    .await
            }
            Err(error) => CreateOutcome::Failed(error.into_error(None)),
        }
    }

    /// QPay says it has an invoice with this number: find it if anything says which.
    async fn resolve_duplicate(
        &self,
        wire: &InvoiceRequest,
        refusal: Refusal,
        amount: Decimal,
        attempt_id: &str,
    ) -> CreateOutcome {
        if let Some(invoice) = self.journaled(&wire.sender_invoice_no).await {
            return CreateOutcome::Created(invoice);
        }
        if let Some(invoice_id) = refusal.invoice_id.clone() {
            match self.get_invoice(&invoice_id).await {
                Ok(details)
                    if details
                        .sender_invoice_no
                        .as_deref()
                        .is_none_or(|n| n == wire.sender_invoice_no) =>
                {
                    // The details may lack the QR text: the engine then fails the attempt for
                    // an invalid QR and closes the invoice, which is safe.
                    let invoice = Invoice {
                        expires_at: None,
                        invoice_id,
                        qr_text: details.qr_text.unwrap_or_default(),
                        short_url: None,
                        deep_links: Vec::new(),
                    };
                    self.remember(&wire.sender_invoice_no, &invoice, amount)
                        .await;
                    tracing::info!(
                        attempt_id,
                        provider = "qpay",
                        invoice_id = %invoice.invoice_id,
                        "found the invoice QPay reported as a duplicate"
                    );
                    return CreateOutcome::Created(invoice);
                }
                Ok(_) => {}
                Err(error) if error.outcome_unknown() => return CreateOutcome::Failed(error),
                Err(_) => {}
            }
        }
        tracing::warn!(
            attempt_id,
            provider = "qpay",
            code = %refusal.code,
            sender_invoice_no = %wire.sender_invoice_no,
            "QPay holds an invoice with this number from a try whose answer was lost, and does \
             not say which; it was never shown and cannot be paid"
        );
        CreateOutcome::DuplicateUnresolved
    }

    /// `GET /v2/invoice/{id}`.
    pub(super) async fn get_invoice(
        &self,
        invoice_id: &str,
    ) -> Result<super::InvoiceDetails, ProviderError> {
        self.api
            .call_json(
                Method::GET,
                &format!("/v2/invoice/{}", segment(invoice_id)),
                None,
                self.api.transport.timeout(),
            )
            .await
            .map_err(|e| e.into_error(Some(format!("invoice {invoice_id}"))))
    }

    /// The journaled invoice for a number.
    async fn journaled(&self, sender_invoice_no: &str) -> Option<Invoice> {
        let text = self.state.load(&journal_key(sender_invoice_no)).await?;
        match serde_json::from_str::<Journaled>(&text) {
            Ok(journaled) => {
                lock(&self.amounts).put(journaled.invoice_id.clone(), journaled.amount);
                Some(journaled.invoice())
            }
            Err(error) => {
                tracing::error!(provider = "qpay", %error, sender_invoice_no, "unreadable QPay journal entry");
                None
            }
        }
    }

    /// Journals an invoice and its amount. A failure is logged: the engine records the invoice
    /// in the same database right after, and cannot either if the database fails.
    async fn remember(&self, sender_invoice_no: &str, invoice: &Invoice, amount: Decimal) {
        lock(&self.amounts).put(invoice.invoice_id.clone(), amount);
        let journaled = Journaled {
            invoice_id: invoice.invoice_id.clone(),
            qr_text: invoice.qr_text.clone(),
            short_url: invoice.short_url.clone(),
            deep_links: invoice.deep_links.clone(),
            amount,
        };
        let saved = match serde_json::to_string(&journaled) {
            Ok(text) => self.state.save(&journal_key(sender_invoice_no), text).await,
            Err(error) => Err(error.to_string()),
        };
        let saved = match saved {
            Ok(()) => {
                self.state
                    .save(&amount_key(&invoice.invoice_id), amount.to_string())
                    .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = saved {
            tracing::error!(
                provider = "qpay",
                invoice_id = %invoice.invoice_id,
                %error,
                "cannot journal the QPay invoice"
            );
        }
    }
}

/// Whether a refusal says the `sender_invoice_no` was used before.
fn is_duplicate(refusal: &Refusal) -> bool {
    let code = refusal.code.to_ascii_uppercase();
    refusal.status == 409
        || code.contains("DUPLICAT")
        || code.contains("REGISTERED")
        || code.contains("ALREADY_EXIST")
}

/// The checkout's items as invoice lines, only when they add up to the amount asked: with
/// lines, QPay bills their total, and an attempt for what is left of a partly paid order must
/// not bill the whole order again.
fn lines_of(items: &[Item], amount: Decimal) -> Vec<InvoiceLine> {
    if items.is_empty() {
        return Vec::new();
    }
    let total: Option<Decimal> = items.iter().try_fold(Decimal::ZERO, |sum, item| {
        item.quantity
            .checked_mul(item.unit_price)
            .and_then(|line| sum.checked_add(line))
    });
    if total != Some(amount) {
        tracing::debug!(
            provider = "qpay",
            "the items do not add up to the amount; the invoice carries no lines"
        );
        return Vec::new();
    }
    items
        .iter()
        .map(|item| InvoiceLine {
            sender_product_code: None,
            tax_product_code: None,
            line_description: item.description.clone(),
            line_quantity: WireDecimal(item.quantity),
            line_unit_price: WireDecimal(item.unit_price),
            note: None,
            discounts: Vec::new(),
            surcharges: Vec::new(),
            taxes: Vec::new(),
        })
        .collect()
}

/// Where invoices are created.
const CREATE_PATH: &str = "/v2/invoice";

/// The invoice in QPay's answer to `POST /v2/invoice`: the one reading of that answer, for the
/// provider and the property run. JSON that is not the answer is `Unavailable` (the outcome is
/// unknown).
pub(super) fn created_answer(bytes: &[u8]) -> Result<Invoice, ProviderError> {
    parse_json::<InvoiceCreated>(CREATE_PATH, bytes).map(invoice_of)
}

/// What the engine keeps of QPay's answer.
fn invoice_of(created: InvoiceCreated) -> Invoice {
    let links = created.urls.or(created.deeplinks).unwrap_or_default();
    Invoice {
        expires_at: None,
        invoice_id: created.invoice_id,
        qr_text: created.qr_text.unwrap_or_default(),
        short_url: created.short_url.filter(|u| !u.is_empty()),
        deep_links: links
            .into_iter()
            .filter_map(|link| {
                let target = link.link.filter(|l| !l.is_empty())?;
                Some(DeepLink {
                    name: link
                        .name
                        .or(link.description)
                        .unwrap_or_else(|| "bank".to_owned()),
                    link: target,
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(description: &str, quantity: &str, price: &str) -> Item {
        Item {
            description: description.into(),
            quantity: Decimal::from_str_exact(quantity).expect("literal"),
            unit_price: Decimal::from_str_exact(price).expect("literal"),
        }
    }

    #[test]
    fn items_become_lines_only_when_they_add_up() {
        let items = [item("Tea", "2", "1500"), item("Bun", "1", "1200")];
        let lines = lines_of(&items, Decimal::from(4200));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line_quantity, WireDecimal(Decimal::from(2)));
        assert!(lines_of(&items, Decimal::from(2000)).is_empty());
        assert!(lines_of(&[], Decimal::from(2000)).is_empty());
    }

    #[test]
    fn the_seed_answer_becomes_an_invoice_with_its_links() {
        let created: InvoiceCreated = serde_json::from_str(
            r#"{"invoice_id": "00f94137-66fd-4d90-b2b2-8225c1b4ed2d", "qr_text": "000201",
            "qr_image": "iVBOR", "qPay_shortUrl": "https://s.qpay.mn/abc",
            "urls": [{"name": "Khan bank", "description": "Хаан банк", "logo": "x",
            "link": "khanbank://q?qPay_QRcode=000201"}, {"description": "no link"}]}"#,
        )
        .expect("parses");
        let invoice = invoice_of(created);
        assert_eq!(invoice.short_url.as_deref(), Some("https://s.qpay.mn/abc"));
        assert_eq!(
            invoice.deep_links,
            vec![DeepLink {
                name: "Khan bank".into(),
                link: "khanbank://q?qPay_QRcode=000201".into()
            }]
        );
    }

    #[test]
    fn duplicates_are_recognised_by_status_or_code() {
        let refusal = |status: u16, code: &str| Refusal {
            status,
            code: code.into(),
            message: String::new(),
            retry_after: None,
            invoice_id: None,
        };
        assert!(is_duplicate(&refusal(400, "INVOICE_CODE_REGISTERED")));
        assert!(is_duplicate(&refusal(409, "HTTP_409")));
        assert!(is_duplicate(&refusal(400, "SENDER_INVOICE_NO_DUPLICATED")));
        assert!(!is_duplicate(&refusal(400, "INVALID_AMOUNT")));
    }
}
