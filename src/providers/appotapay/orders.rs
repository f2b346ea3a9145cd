//! POS gateway orders (seed 003): create with the local checks AppotaPay's limits call for,
//! duplicate resolution, look-up after an interruption, and the status query.
//!
//! The attempt's idempotency key is the order's `partner_ref_id` and its invoice id, so every
//! retry names the same order. Nothing is sent when a local check fails.

use reqwest::Method;

use super::client::{CallError, Refusal, encode_component, parse_json};
use super::model::{
    CreateAnswer, CreateOrder, ErrorBody, OrderStatus, PosTransaction, StatusAnswer,
};
use super::qr::qr_text;
use super::{Inner, MIN_AMOUNT_VND, invalid_argument, status_result};
use crate::domain::Currency;
use crate::providers::{CheckResult, CreateRequest, Invoice, ProviderError};

const CREATE_PATH: &str = "/api/v2/partner/orders/payment/create";
const STATUS_PATH: &str = "/api/v2/partner/orders/transaction/";
/// `partner_ref_id` at most.
const MAX_PARTNER_REF_ID: usize = 26;
/// `order_info` at most.
const MAX_ORDER_INFO: usize = 100;
/// `terminal_id` at most.
const MAX_TERMINAL_ID: usize = 20;

impl Inner {
    /// Creates the order, or finds the one an earlier create with the same key made.
    pub(super) async fn create(&self, request: &CreateRequest) -> Result<Invoice, ProviderError> {
        let amount = self.check_create(request)?;
        let partner_ref_id = request.idempotency_key.as_str();
        if let Some(invoice) = self.journal.find(partner_ref_id).await {
            return Ok(invoice);
        }
        let body = CreateOrder {
            partner_ref_id,
            order_info: &request.description,
            terminal_id: &self.settings.terminal_id,
            payment_method: "QR",
            amount,
        };
        let bytes = serde_json::to_vec(&body)
            .map_err(|_| invalid_argument("order", "cannot be encoded as AppotaPay's JSON"))?;
        let answer = match self
            .transport
            .send(
                Method::POST,
                &self.settings.base_url,
                CREATE_PATH,
                Some(bytes),
            )
            .await
        {
            Ok(answer) => answer,
            Err(CallError::Refused(refusal)) if refusal.number() == Some(30) => {
                return self.resolve_duplicate(request).await;
            }
            Err(error) => return Err(error.into_error(None)),
        };
        let (invoice, transaction_id) = match created_answer(&answer.bytes, partner_ref_id)? {
            OrderCreated::Made {
                invoice,
                transaction_id,
            } => (invoice, transaction_id),
            OrderCreated::Duplicate => return self.resolve_duplicate(request).await,
        };
        self.journal.record(&invoice).await;
        tracing::info!(
            provider = "appotapay",
            attempt_id = %request.attempt_id,
            invoice_id = %invoice.invoice_id,
            transaction_id = transaction_id.as_deref().unwrap_or(""),
            "AppotaPay order created"
        );
        Ok(invoice)
    }

    /// Finds the order an earlier create with this key made: from the journal, else from the
    /// status API. `None` when AppotaPay does not know it.
    pub(super) async fn lookup(
        &self,
        request: &CreateRequest,
    ) -> Result<Option<Invoice>, ProviderError> {
        let partner_ref_id = request.idempotency_key.as_str();
        if check_partner_ref_id(partner_ref_id).is_err() {
            // Such a key was never sent: no order can have it.
            return Ok(None);
        }
        if let Some(invoice) = self.journal.find(partner_ref_id).await {
            return Ok(Some(invoice));
        }
        match self.status(partner_ref_id).await {
            Ok(_) => {
                // AppotaPay has the order but its status answer carries no QR, and no journal
                // entry means the QR was never handed to the engine, so never shown: the
                // invoice is returned without one. The engine then fails the attempt (a QR
                // that is not EMVCo) and closes the invoice, which records any money.
                tracing::warn!(
                    provider = "appotapay",
                    attempt_id = %request.attempt_id,
                    invoice_id = partner_ref_id,
                    "AppotaPay has this order but its QR was never received; it cannot be shown"
                );
                Ok(Some(Invoice {
                    expires_at: None,
                    invoice_id: partner_ref_id.to_owned(),
                    qr_text: String::new(),
                    short_url: None,
                    deep_links: Vec::new(),
                }))
            }
            Err(ProviderError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// A create answered "duplicate order" (code 30): the order exists, so it is looked up.
    async fn resolve_duplicate(&self, request: &CreateRequest) -> Result<Invoice, ProviderError> {
        tracing::info!(
            provider = "appotapay",
            attempt_id = %request.attempt_id,
            invoice_id = %request.idempotency_key,
            "AppotaPay already has this order; looking it up"
        );
        self.lookup(request).await?.ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "AppotaPay calls order {} a duplicate but does not know it",
                request.idempotency_key
            ))
        })
    }

    /// Where a POS order stands.
    pub(super) async fn check_order(
        &self,
        partner_ref_id: &str,
    ) -> Result<CheckResult, ProviderError> {
        pos_check(self.status(partner_ref_id).await?)
    }

    /// `GET /api/v2/partner/orders/transaction/{partner_ref_id}` (see [`status_answer`]).
    async fn status(
        &self,
        partner_ref_id: &str,
    ) -> Result<super::model::PosTransaction, ProviderError> {
        let object = format!("order {partner_ref_id}");
        let path = format!("{STATUS_PATH}{}", encode_component(partner_ref_id));
        let answer = self
            .transport
            .send(Method::GET, &self.settings.base_url, &path, None)
            .await
            .map_err(|e| e.into_error(Some(&object)))?;
        status_answer(&answer.bytes, &object)
    }

    /// The checks AppotaPay's limits call for, before anything is sent; the amount as
    /// AppotaPay's integer.
    pub(super) fn check_create(&self, request: &CreateRequest) -> Result<i64, ProviderError> {
        if request.currency != Currency::Vnd {
            return Err(invalid_argument("currency", "must be VND for AppotaPay"));
        }
        check_partner_ref_id(&request.idempotency_key)?;
        let info_chars = request.description.chars().count();
        if info_chars == 0 || info_chars > MAX_ORDER_INFO {
            return Err(invalid_argument(
                "order_info",
                "must be 1 to 100 characters for AppotaPay",
            ));
        }
        let terminal = &self.settings.terminal_id;
        if terminal.is_empty() || terminal.chars().count() > MAX_TERMINAL_ID {
            return Err(invalid_argument(
                "terminal_id",
                "must be 1 to 20 characters for AppotaPay",
            ));
        }
        match super::model::vnd_integer(request.amount) {
            Some(amount) if amount >= MIN_AMOUNT_VND => Ok(amount),
            _ => Err(invalid_argument(
                "amount",
                "must be a whole number of VND, at least 10000, for AppotaPay",
            )),
        }
    }
}

/// What a 2xx answer to an order create says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCreated {
    /// The order, and the QR the customer pays.
    Made {
        invoice: Invoice,
        /// AppotaPay's id for it, for the log.
        transaction_id: Option<String>,
    },
    /// An error body with code 30: AppotaPay has an order with this `partner_ref_id` already.
    Duplicate,
}

/// The 2xx answer to the create of order `partner_ref_id`: the one reading of it, for the
/// provider and the property run. An error body inside it is a refusal, or
/// [`OrderCreated::Duplicate`].
pub(super) fn created_answer(
    bytes: &[u8],
    partner_ref_id: &str,
) -> Result<OrderCreated, ProviderError> {
    let parsed: CreateAnswer = parse_json("the order create", bytes)?;
    let (Some(transaction), Some(payment_info)) = (parsed.transaction, parsed.payment_info) else {
        // An error body in a 2xx answer.
        let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_default();
        let refusal = Refusal::from_body(200, &body, None);
        if refusal.number() == Some(30) {
            return Ok(OrderCreated::Duplicate);
        }
        if refusal.code.is_none() {
            return Err(ProviderError::Unavailable(
                "AppotaPay's create answer has neither the order nor an error code".to_owned(),
            ));
        }
        return Err(refusal.into_error(None));
    };
    if let Some(other) = &transaction.partner_ref_id
        && !other.is_empty()
        && other != partner_ref_id
    {
        return Err(ProviderError::Unavailable(
            "AppotaPay answered the create with another order".to_owned(),
        ));
    }
    if transaction.status == Some(OrderStatus::Error) {
        let refusal = Refusal::in_transaction(
            transaction.error_code.as_deref(),
            transaction.error_message.as_deref(),
        );
        return Err(refusal.into_error(None));
    }
    let content = payment_info.qr_content.unwrap_or_default();
    let qr_text = qr_text(&content).map_err(|e| ProviderError::Rejected {
        code: "INVALID_QR".to_owned(),
        message: e.to_string(),
    })?;
    let short_url = payment_info
        .qr_url
        .filter(|url| url.starts_with("https://") && !url.contains(char::is_whitespace));
    Ok(OrderCreated::Made {
        invoice: Invoice {
            expires_at: None,
            invoice_id: partner_ref_id.to_owned(),
            qr_text,
            short_url,
            deep_links: Vec::new(),
        },
        transaction_id: transaction.transaction_id,
    })
}

/// The 2xx answer to the status query about `object` (`order X`): the order's transaction,
/// nested or flat. An answer without a status is an error body (code 36 is `NotFound`).
pub(super) fn status_answer(bytes: &[u8], object: &str) -> Result<PosTransaction, ProviderError> {
    let parsed: StatusAnswer = parse_json("the order status", bytes)?;
    let transaction = parsed.into_transaction();
    if transaction.status.is_none() {
        let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_default();
        let refusal = Refusal::from_body(200, &body, None);
        if refusal.code.is_none() {
            return Err(ProviderError::Unavailable(
                "AppotaPay's status answer has no status".to_owned(),
            ));
        }
        return Err(refusal.into_error(Some(object)));
    }
    Ok(transaction)
}

/// Where a POS order stands, from its transaction.
pub(super) fn pos_check(transaction: PosTransaction) -> Result<CheckResult, ProviderError> {
    status_result(
        transaction.status.unwrap_or(OrderStatus::Pending),
        transaction.transaction_id,
        transaction.amount,
        transaction.paid_at.as_deref(),
        transaction.error_code,
        transaction.error_message,
    )
}

fn check_partner_ref_id(id: &str) -> Result<(), ProviderError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_PARTNER_REF_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid_argument(
            "partner_ref_id",
            "must be 1 to 26 letters, digits, '_' or '-'",
        ))
    }
}
