//! Checkout: validate the till's request, record the transaction and attempt, and create the
//! invoice at the provider.
//!
//! Checkout is idempotent on the source (`source_type`, `source_id`): asking again for the same
//! open order returns the same transaction and attempt without a second provider call, so a till
//! that lost the reply can simply ask again.

use rust_decimal::Decimal;

use super::error::amount_error;
use super::{
    Changes, CheckoutReply, CheckoutRequest, Engine, EngineError, METHOD_CASH, METHOD_QR,
    SYSTEM_PROVIDER,
};
use crate::domain::model::{MAX_DESCRIPTION_LEN, MAX_ID_LEN, MAX_ITEMS};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Currency, Failure, Item, Source, Timestamp, Transaction,
    TransactionStatus, check_text, format_for_display, parse_amount, parse_decimal,
};
use crate::providers::{CreateRequest, Invoice, ProviderError};
use crate::store::Tx;

/// The shortest payment window the till may ask for.
pub const MIN_EXPIRES_IN_MS: u64 = 1_000;
/// The longest payment window the till may ask for (a day).
pub const MAX_EXPIRES_IN_MS: u64 = 86_400_000;
/// The source type when the till names none.
pub const DEFAULT_SOURCE_TYPE: &str = "Order";

/// A checkout request that passed validation.
#[derive(Debug, Clone)]
struct ValidCheckout {
    source: Source,
    amount: Decimal,
    currency: Currency,
    provider: String,
    method: String,
    description: Option<String>,
    expires_in_ms: u64,
    allow_partial: bool,
    items: Vec<Item>,
}

/// What the store step of a checkout decided.
enum Decision {
    /// A new or still-unsent attempt: create it at the provider.
    Send(Transaction, Attempt),
    /// Already done or already live: answer with what exists.
    Existing(Transaction, Attempt),
}

impl Engine {
    /// Takes a payment: see the module documentation.
    pub async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutReply, EngineError> {
        let valid = self.validate_checkout(request)?;
        let terminal_id = self.inner.settings.terminal_id.clone();
        // An unsent attempt found by a repeated checkout may be resolved by its supervisor
        // (failed: the provider never made it) while this call waits for its lock; then the
        // decision is taken again, and makes a fresh attempt. Twice is enough: a fresh attempt
        // has no supervisor yet.
        let mut tries = 0;
        let (transaction, attempt) = loop {
            tries += 1;
            let valid = valid.clone();
            let terminal_id = terminal_id.clone();
            let decision = self
                .write(move |tx, changes| decide_checkout(tx, changes, &valid, &terminal_id))
                .await?;
            match decision {
                Decision::Existing(transaction, attempt) => break (transaction, attempt),
                Decision::Send(transaction, attempt) if attempt.provider == SYSTEM_PROVIDER => {
                    break (transaction, attempt);
                }
                Decision::Send(_, attempt) => {
                    let attempt = self.send_attempt(&attempt.id).await?;
                    if attempt.status.is_open() || attempt.status == AttemptStatus::Success {
                        let transaction = self.load_transaction(&attempt.transaction_id).await?;
                        break (transaction, attempt);
                    }
                    if tries >= 3 {
                        return Err(EngineError::ProviderUnavailable(format!(
                            "attempt {} ended {} before it could be sent; try again",
                            attempt.code, attempt.status
                        )));
                    }
                }
            }
        };
        // The frame was written when the attempt's change was published; a repeated checkout
        // shows its attempt again (a no-op when it is on screen already).
        let display_png = match &self.inner.screen {
            Some(screen) => {
                screen
                    .update(&attempt, &transaction, self.display_name(&attempt.provider))
                    .await;
                Some(screen.path().to_owned())
            }
            None => None,
        };
        Ok(CheckoutReply {
            transaction,
            attempt,
            display_png,
        })
    }

    fn validate_checkout(&self, request: CheckoutRequest) -> Result<ValidCheckout, EngineError> {
        let settings = &self.inner.settings;
        check_text("source_id", &request.source_id, MAX_ID_LEN)?;
        let source_type = request
            .source_type
            .unwrap_or_else(|| DEFAULT_SOURCE_TYPE.to_owned());
        check_text("source_type", &source_type, MAX_ID_LEN)?;
        if let Some(uid) = &request.source_uid {
            check_text("source_uid", uid, MAX_ID_LEN)?;
        }
        let currency = match &request.currency {
            Some(code) => code
                .parse::<Currency>()
                .map_err(|e| amount_error("currency", e))?,
            None => settings.default_currency,
        };
        let amount = parse_amount(&request.amount, currency, settings.max_amount)
            .map_err(|e| amount_error("amount", e))?;
        let provider = request
            .provider
            .unwrap_or_else(|| settings.default_provider.clone());
        check_text("provider", &provider, MAX_ID_LEN)?;
        let method = if provider == SYSTEM_PROVIDER {
            request.method.unwrap_or_else(|| METHOD_CASH.to_owned())
        } else {
            let provider_impl = self.provider(&provider)?;
            if !provider_impl.currencies().contains(&currency) {
                return Err(EngineError::invalid(
                    "currency",
                    format!("the provider {provider} does not take {currency}"),
                ));
            }
            request.method.unwrap_or_else(|| METHOD_QR.to_owned())
        };
        let allowed_method = if provider == SYSTEM_PROVIDER {
            METHOD_CASH
        } else {
            METHOD_QR
        };
        if method != allowed_method {
            return Err(EngineError::invalid(
                "method",
                format!("{provider} takes the method {allowed_method}, not {method:?}"),
            ));
        }
        if let Some(description) = &request.description {
            check_text("description", description, MAX_DESCRIPTION_LEN)?;
        }
        let expires_in_ms = request
            .expires_in_ms
            .unwrap_or(settings.payment_timeout.as_millis() as u64);
        if !(MIN_EXPIRES_IN_MS..=MAX_EXPIRES_IN_MS).contains(&expires_in_ms) {
            return Err(EngineError::invalid(
                "expires_in_ms",
                format!(
                    "{expires_in_ms} is outside {MIN_EXPIRES_IN_MS}..={MAX_EXPIRES_IN_MS} milliseconds"
                ),
            ));
        }
        if request.items.len() > MAX_ITEMS {
            return Err(EngineError::invalid(
                "items",
                format!(
                    "{} items, the most allowed is {MAX_ITEMS}",
                    request.items.len()
                ),
            ));
        }
        let mut items = Vec::with_capacity(request.items.len());
        for (index, item) in request.items.into_iter().enumerate() {
            check_text("items.description", &item.description, MAX_DESCRIPTION_LEN)?;
            let quantity = parse_decimal(&item.quantity)
                .map_err(|e| amount_error(&format!("items[{index}].quantity"), e))?;
            if quantity.is_zero() {
                return Err(EngineError::invalid(
                    &format!("items[{index}].quantity"),
                    "must be greater than zero",
                ));
            }
            let unit_price = parse_decimal(&item.unit_price)
                .map_err(|e| amount_error(&format!("items[{index}].unit_price"), e))?;
            crate::domain::money::check_scale(unit_price, currency)
                .map_err(|e| amount_error(&format!("items[{index}].unit_price"), e))?;
            items.push(Item {
                description: item.description,
                quantity,
                unit_price,
            });
        }
        let valid = ValidCheckout {
            source: Source {
                kind: source_type,
                id: request.source_id,
                uid: request.source_uid,
            },
            amount,
            currency,
            provider,
            method,
            description: request.description,
            expires_in_ms,
            allow_partial: request.allow_partial.unwrap_or(false),
            items,
        };
        // The provider's own limits, checked on a draft of the request it would get, before
        // anything is recorded: a refusal here leaves nothing behind.
        if valid.provider != SYSTEM_PROVIDER {
            let draft = draft_request(&valid, &settings.terminal_id);
            self.provider(&valid.provider)?
                .check_create(&draft)
                .map_err(EngineError::InvalidArgument)?;
        }
        Ok(valid)
    }

    /// Creates an attempt's invoice at its provider, under the attempt's lock. Repeating it is
    /// safe: the provider recognises the idempotency key. A refusal fails the attempt; an
    /// unknown outcome leaves it `100_NEW` for its supervisor to resolve.
    pub(super) async fn send_attempt(&self, attempt_id: &str) -> Result<Attempt, EngineError> {
        let handle = self.handle(attempt_id);
        let _guard = handle.lock.lock().await;
        let (transaction, attempt) = self.load_pair(attempt_id).await?;
        if attempt.status != AttemptStatus::New {
            return Ok(attempt);
        }
        let provider = self.provider(&attempt.provider)?;
        let request = create_request(&transaction, &attempt, &self.inner.settings.terminal_id);
        let created = provider.create(&request).await;
        let result = match created {
            Ok(invoice) => {
                self.record_invoice(&attempt.id, invoice, Some(AttemptStatus::Sent))
                    .await
            }
            Err(ProviderError::Rejected { code, message }) => {
                let failure = Failure {
                    code: code.clone(),
                    message: message.clone(),
                };
                self.fail_attempt(&attempt.id, failure).await?;
                Err(EngineError::ProviderRejected { code, message })
            }
            Err(error) => {
                tracing::warn!(
                    attempt_id = %attempt.id,
                    provider = %attempt.provider,
                    %error,
                    "invoice creation failed; the attempt stays 100_NEW until its outcome is known"
                );
                Err(EngineError::from(error))
            }
        };
        drop(_guard);
        // Whatever happened, a supervisor now owns the attempt: it polls a live invoice, closes
        // one that must not be paid, or resolves an unknown outcome.
        self.supervise(attempt_id);
        let attempt = result?;
        if attempt.status == AttemptStatus::Fail {
            return Err(EngineError::ProviderRejected {
                code: attempt
                    .failure
                    .as_ref()
                    .map(|f| f.code.clone())
                    .unwrap_or_default(),
                message: attempt
                    .failure
                    .as_ref()
                    .map(|f| f.message.clone())
                    .unwrap_or_default(),
            });
        }
        tracing::info!(
            attempt_id = %attempt.id,
            transaction_id = %attempt.transaction_id,
            provider = %attempt.provider,
            invoice_id = attempt.invoice_id.as_deref().unwrap_or(""),
            "invoice created"
        );
        Ok(attempt)
    }

    /// Records the invoice the provider made for an attempt, and moves the attempt to `target`
    /// (`204_SENT` for a live one; a QR that is not valid EMVCo fails it instead, leaving the
    /// invoice to be closed).
    pub(super) async fn record_invoice(
        &self,
        attempt_id: &str,
        invoice: Invoice,
        target: Option<AttemptStatus>,
    ) -> Result<Attempt, EngineError> {
        let qr_check = crate::emv::validate(&invoice.qr_text).map(|_| ());
        let id = attempt_id.to_owned();
        self.write(move |tx, changes| {
            let (transaction, mut attempt) = load_pair_in(tx, &id)?;
            let now = Timestamp::now();
            attempt.invoice_id = Some(invoice.invoice_id);
            attempt.short_url = invoice.short_url;
            attempt.deep_links = invoice.deep_links;
            attempt.provider_open = true;
            attempt.updated_at = now;
            match (qr_check, target) {
                (Err(error), Some(AttemptStatus::Sent)) => {
                    attempt.failure = Some(Failure {
                        code: "INVALID_QR".to_owned(),
                        message: format!("the provider's QR text is not valid EMVCo: {error}"),
                    });
                    attempt.transition_to(AttemptStatus::Fail, now)?;
                }
                (qr_check, target) => {
                    if qr_check.is_ok() {
                        attempt.qr_text = Some(invoice.qr_text);
                    }
                    if let Some(target) = target {
                        attempt.transition_to(target, now)?;
                    }
                }
            }
            tx.update_attempt(&attempt)?;
            changes.attempt(&attempt);
            changes.transaction(&transaction);
            Ok(attempt)
        })
        .await
    }

    pub(super) async fn load_pair(
        &self,
        attempt_id: &str,
    ) -> Result<(Transaction, Attempt), EngineError> {
        let id = attempt_id.to_owned();
        self.read(move |tx| load_pair_in(tx, &id)).await
    }

    pub(super) async fn load_transaction(&self, id: &str) -> Result<Transaction, EngineError> {
        let id = id.to_owned();
        self.read(move |tx| {
            tx.transaction(&id)?
                .ok_or_else(|| EngineError::TransactionNotFound(format!("no transaction {id}")))
        })
        .await
    }
}

/// Loads an attempt and its transaction inside a store transaction.
pub(super) fn load_pair_in(
    tx: &Tx<'_>,
    attempt_id: &str,
) -> Result<(Transaction, Attempt), EngineError> {
    let attempt = tx.attempt(attempt_id)?.ok_or_else(|| {
        EngineError::PaymentAttemptNotFound(format!("no payment attempt {attempt_id}"))
    })?;
    let transaction = tx.transaction(&attempt.transaction_id)?.ok_or_else(|| {
        EngineError::Internal(format!(
            "attempt {attempt_id} has no transaction {}",
            attempt.transaction_id
        ))
    })?;
    Ok((transaction, attempt))
}

/// The request a provider would get for a new attempt of `valid`, with placeholder ids of the
/// real ones' length, for the provider's own checks before anything is recorded.
fn draft_request(valid: &ValidCheckout, terminal_id: &str) -> CreateRequest {
    let now = Timestamp::now();
    let transaction_number = "TXN000000".to_owned();
    CreateRequest {
        attempt_id: uuid::Uuid::nil().to_string(),
        attempt_code: "ATT000000".to_owned(),
        idempotency_key: format!("Q{}", "0".repeat(25)),
        description: valid.description.clone().unwrap_or_else(|| {
            format!(
                "{transaction_number} {}",
                format_for_display(valid.amount, valid.currency)
            )
        }),
        transaction_number,
        terminal_id: terminal_id.to_owned(),
        amount: valid.amount,
        currency: valid.currency,
        expires_at: now.plus_millis(valid.expires_in_ms),
        allow_partial: valid.allow_partial,
        items: valid.items.clone(),
    }
}

/// The provider request for an attempt, the same on every retry.
pub(super) fn create_request(
    transaction: &Transaction,
    attempt: &Attempt,
    terminal_id: &str,
) -> CreateRequest {
    CreateRequest {
        attempt_id: attempt.id.clone(),
        attempt_code: attempt.code.clone(),
        idempotency_key: attempt.idempotency_key.clone(),
        transaction_number: transaction.number.clone(),
        terminal_id: terminal_id.to_owned(),
        amount: attempt.amount,
        currency: transaction.currency,
        description: transaction.description.clone().unwrap_or_else(|| {
            format!(
                "{} {}",
                transaction.number,
                format_for_display(attempt.amount, transaction.currency)
            )
        }),
        expires_at: attempt.expires_at.unwrap_or(attempt.created_at),
        allow_partial: attempt.allow_partial,
        items: transaction.items.clone(),
    }
}

/// The store step of a checkout: find the source's transaction or make one, and pick or make
/// the attempt.
fn decide_checkout(
    tx: &Tx<'_>,
    changes: &mut Changes,
    valid: &ValidCheckout,
    terminal_id: &str,
) -> Result<Decision, EngineError> {
    let now = Timestamp::now();
    let existing = tx.transaction_by_source(&valid.source.kind, &valid.source.id)?;
    let transaction = match existing {
        Some(transaction) => {
            if transaction.total != valid.amount || transaction.currency != valid.currency {
                return Err(EngineError::DuplicateSource(format!(
                    "{} {} is already transaction {} for {}, not {}",
                    valid.source.kind,
                    valid.source.id,
                    transaction.number,
                    format_for_display(transaction.total, transaction.currency),
                    format_for_display(valid.amount, valid.currency),
                )));
            }
            let attempts = tx.attempts_of(&transaction.id)?;
            let mut payments = attempts.iter().filter(|a| a.kind == AttemptType::Payment);
            match transaction.status {
                TransactionStatus::Settled => {
                    let last_paid = payments
                        .rfind(|a| a.status == AttemptStatus::Success)
                        .cloned();
                    return match last_paid {
                        Some(attempt) => Ok(Decision::Existing(transaction, attempt)),
                        None => Err(EngineError::Internal(format!(
                            "settled transaction {} has no successful attempt",
                            transaction.number
                        ))),
                    };
                }
                TransactionStatus::New | TransactionStatus::Partial => {
                    if let Some(open) = payments.clone().find(|a| a.status.is_open()).cloned() {
                        return Ok(if open.status == AttemptStatus::New {
                            Decision::Send(transaction, open)
                        } else {
                            Decision::Existing(transaction, open)
                        });
                    }
                    transaction
                }
                status => {
                    return Err(EngineError::InvalidTransactionStatus(format!(
                        "{} {} is transaction {}, which is {status}; use a new source_id",
                        valid.source.kind, valid.source.id, transaction.number
                    )));
                }
            }
        }
        None => {
            let number = tx.next_counter("transaction")?;
            let transaction = Transaction {
                id: uuid::Uuid::new_v4().to_string(),
                number: format!("TXN{number:06}"),
                terminal_id: terminal_id.to_owned(),
                source: valid.source.clone(),
                currency: valid.currency,
                total: valid.amount,
                paid: Decimal::ZERO,
                refunded: Decimal::ZERO,
                status: TransactionStatus::New,
                description: valid.description.clone(),
                items: valid.items.clone(),
                created_at: now,
                updated_at: now,
            };
            tx.insert_transaction(&transaction)?;
            transaction
        }
    };
    let attempt = new_attempt(
        tx,
        &transaction,
        AttemptType::Payment,
        &valid.provider,
        &valid.method,
        transaction.remaining(),
        None,
        now,
    )?;
    let attempt = Attempt {
        allow_partial: valid.allow_partial,
        expires_at: (valid.provider != SYSTEM_PROVIDER)
            .then(|| now.plus_millis(valid.expires_in_ms)),
        ..attempt
    };
    tx.insert_attempt(&attempt)?;
    changes.transaction(&transaction);
    changes.attempt(&attempt);
    tracing::info!(
        transaction_id = %transaction.id,
        attempt_id = %attempt.id,
        provider = %attempt.provider,
        number = %transaction.number,
        amount = %attempt.amount,
        "checkout recorded"
    );
    Ok(Decision::Send(transaction, attempt))
}

/// A fresh attempt in `100_NEW` with its own code and idempotency key (not yet inserted).
#[allow(clippy::too_many_arguments)]
pub(super) fn new_attempt(
    tx: &Tx<'_>,
    transaction: &Transaction,
    kind: AttemptType,
    provider: &str,
    method: &str,
    amount: Decimal,
    parent_id: Option<String>,
    now: Timestamp,
) -> Result<Attempt, EngineError> {
    let code = tx.next_counter("attempt")?;
    let id = uuid::Uuid::new_v4();
    Ok(Attempt {
        id: id.to_string(),
        code: format!("ATT{code:06}"),
        transaction_id: transaction.id.clone(),
        kind,
        status: AttemptStatus::New,
        provider: provider.to_owned(),
        method: method.to_owned(),
        amount,
        paid: Decimal::ZERO,
        refunded: Decimal::ZERO,
        tendered: None,
        parent_id,
        // 26 characters of [A-Z0-9]: within every provider's reference limits (AppotaPay's
        // partner_ref_id is the tightest at 26), and unique without a central counter.
        idempotency_key: format!("Q{}", &id.simple().to_string()[..25]).to_uppercase(),
        invoice_id: None,
        short_url: None,
        qr_text: None,
        deep_links: Vec::new(),
        provider_open: false,
        allow_partial: false,
        expires_at: None,
        failure: None,
        note: None,
        created_at: now,
        updated_at: now,
    })
}
