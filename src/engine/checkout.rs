//! Checkout: validate the till's request, record the transaction and attempt, and create the
//! invoice at the provider.
//!
//! Checkout is idempotent on the source (`source_type`, `source_id`): asking again for the same
//! open order returns the same transaction and attempt without a second provider call, so a till
//! that lost the reply can simply ask again.
//!
//! A payment with the customer's card or account (method `ATM`) carries its
//! [`PaymentInstrument`] beside the request, never inside what is recorded: it is checked by the
//! provider before anything is recorded, handed to the one create call, and dropped with the
//! request. Such an attempt can therefore only be created while its Checkout is running; when
//! that create's outcome is unknown, the attempt is resolved by looking it up, never created
//! again without the details (a repeated Checkout must bring them again).

use rust_decimal::Decimal;
use tracing::Instrument;

use super::error::amount_error;
use super::{
    Changes, CheckoutReply, CheckoutRequest, Engine, EngineError, METHOD_ATM, METHOD_CASH,
    METHOD_QR, PaymentInstrument, SYSTEM_PROVIDER, Stamp,
};
use crate::domain::model::{MAX_DESCRIPTION_LEN, MAX_ID_LEN, MAX_ITEMS, check_id};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Currency, Failure, Item, Source, Timestamp, Transaction,
    TransactionStatus, check_text, format_for_display, parse_amount, parse_decimal,
};
use crate::logging;
use crate::providers::{CreateRequest, Invoice, Provider, ProviderError};
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
    replace_open: bool,
}

/// What the store step of a checkout decided.
enum Decision {
    /// A new or still-unsent attempt: create it at the provider.
    Send(Transaction, Attempt),
    /// Already done or already live: answer with what exists.
    Existing(Transaction, Attempt),
    /// Earlier attempts' invoices may still take money: close them, then decide again.
    CloseFirst(Vec<Attempt>),
    /// The till asked to replace this open attempt: cancel it, then decide again.
    Replace(Attempt),
}

impl Engine {
    /// Takes a payment: see the module documentation.
    pub async fn checkout(
        &self,
        mut request: CheckoutRequest,
    ) -> Result<CheckoutReply, EngineError> {
        // Kept apart from everything that is recorded, and dropped when this call ends.
        let instrument = request.instrument.take();
        let valid = self.validate_checkout(request, instrument.as_ref())?;
        let terminal_id = self.inner.settings.terminal_id.clone();
        // An unsent attempt found by a repeated checkout may be resolved by its supervisor
        // (failed: the provider never made it) while this call waits for its lock; then the
        // decision is taken again, and makes a fresh attempt. Earlier invoices that may still
        // take money are closed first (once), and an open attempt the till asked to replace is
        // cancelled first; a few rounds are enough.
        let mut tries = 0;
        let mut closed_stale = false;
        let (transaction, attempt) = loop {
            tries += 1;
            if tries > 4 {
                return Err(EngineError::ProviderUnavailable(
                    "the order's attempts kept changing while a new one was being made; try again"
                        .to_owned(),
                ));
            }
            let valid = valid.clone();
            let terminal_id = terminal_id.clone();
            let stamp = self.stamp();
            let decision = self
                .write(move |tx, changes| {
                    decide_checkout(tx, changes, &valid, &terminal_id, closed_stale, &stamp)
                })
                .await?;
            match decision {
                Decision::Existing(transaction, attempt) => break (transaction, attempt),
                Decision::Send(transaction, attempt) if attempt.provider == SYSTEM_PROVIDER => {
                    break (transaction, attempt);
                }
                Decision::Send(_, attempt) => {
                    let span = logging::attempt_span(
                        &attempt.transaction_id,
                        &attempt.id,
                        &attempt.provider,
                    );
                    let attempt = self
                        .send_attempt(&attempt.id, instrument.as_ref())
                        .instrument(span)
                        .await?;
                    if attempt.status.is_open() || attempt.status == AttemptStatus::Success {
                        let transaction = self.load_transaction(&attempt.transaction_id).await?;
                        break (transaction, attempt);
                    }
                }
                Decision::CloseFirst(stale) => {
                    for attempt in &stale {
                        self.close_stale(attempt).await;
                    }
                    closed_stale = true;
                }
                Decision::Replace(open) => {
                    tracing::info!(
                        attempt_id = %open.id,
                        transaction_id = %open.transaction_id,
                        "replacing the open attempt, as the till asked"
                    );
                    self.cancel_attempt(&open.id, Some("replaced by a new checkout".to_owned()))
                        .await?;
                }
            }
        };
        // The frame was written when the attempt's change was published; a repeated checkout
        // shows its attempt again (a no-op when it is on screen already), as it stands now:
        // read with the sequence number of the last change, so a newer change wins.
        let display_png = match &self.inner.screen {
            Some(screen) => {
                let publisher = self.inner.publisher.clone();
                let id = attempt.id.clone();
                let (seq, transaction, attempt) = self
                    .read(move |tx| {
                        let (transaction, attempt) = load_pair_in(tx, &id)?;
                        Ok((publisher.current_seq(), transaction, attempt))
                    })
                    .await?;
                screen
                    .update(
                        &attempt,
                        &transaction,
                        self.display_name(&attempt.provider),
                        seq,
                    )
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

    fn validate_checkout(
        &self,
        request: CheckoutRequest,
        instrument: Option<&PaymentInstrument>,
    ) -> Result<ValidCheckout, EngineError> {
        let settings = &self.inner.settings;
        // The source is the key of idempotency: it must read as exactly what it is.
        check_id("source_id", &request.source_id, MAX_ID_LEN)?;
        let source_type = request
            .source_type
            .unwrap_or_else(|| DEFAULT_SOURCE_TYPE.to_owned());
        check_id("source_type", &source_type, MAX_ID_LEN)?;
        if let Some(uid) = &request.source_uid {
            check_id("source_uid", uid, MAX_ID_LEN)?;
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
        let default_method = if provider == SYSTEM_PROVIDER {
            METHOD_CASH
        } else {
            let provider_impl = self.provider(&provider)?;
            if !provider_impl.currencies().contains(&currency) {
                return Err(EngineError::invalid(
                    "currency",
                    format!("the provider {provider} does not take {currency}"),
                ));
            }
            if instrument.is_some() {
                METHOD_ATM
            } else {
                METHOD_QR
            }
        };
        let method = request.method.unwrap_or_else(|| default_method.to_owned());
        // Bounded before `check_method` repeats it in its message.
        check_text("method", &method, MAX_ID_LEN)?;
        check_method(&provider, &method, instrument.is_some())?;
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
        // What the items come to is held to the same ceiling as the amount, so that no line,
        // and no sum of them a provider might bill, can grow past what one payment may be.
        let max_amount = crate::domain::money::max_amount_for(currency, settings.max_amount);
        let mut items_total = Decimal::ZERO;
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
            items_total = quantity
                .checked_mul(unit_price)
                .and_then(|line| items_total.checked_add(line))
                .filter(|total| *total <= max_amount)
                .ok_or_else(|| {
                    EngineError::invalid(
                        &format!("items[{index}]"),
                        format!(
                            "the items' quantity × unit_price come to more than the maximum \
                             of {} {currency}",
                            max_amount.normalize()
                        ),
                    )
                })?;
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
            replace_open: request.replace_open.unwrap_or(false),
        };
        // The provider's own limits, checked on a draft of the request it would get, before
        // anything is recorded: a refusal here leaves nothing behind.
        if valid.provider != SYSTEM_PROVIDER {
            let draft = draft_request(&valid, &settings.terminal_id);
            let provider = self.provider(&valid.provider)?;
            match instrument {
                Some(instrument) => provider
                    .check_with_instrument(&draft, instrument)
                    .map_err(EngineError::from)?,
                None => provider
                    .check_create(&draft)
                    .map_err(EngineError::InvalidArgument)?,
            }
        }
        Ok(valid)
    }

    /// Creates an attempt's invoice at its provider, under the attempt's lock. Repeating it is
    /// safe: the provider recognises the idempotency key. A refusal fails the attempt; an
    /// unknown outcome leaves it `100_NEW` for its supervisor to resolve.
    ///
    /// An `ATM` attempt is created only with the `instrument` its Checkout brought; without
    /// one (a repeated Checkout that did not bring the details again) nothing is sent, the
    /// supervisor resolves the attempt by looking it up, and the till is told to bring them.
    ///
    /// Runs in the attempt's span ([`logging::attempt_span`]), which names it in every line.
    pub(super) async fn send_attempt(
        &self,
        attempt_id: &str,
        instrument: Option<&PaymentInstrument>,
    ) -> Result<Attempt, EngineError> {
        let handle = self.handle(attempt_id);
        let _guard = handle.lock.lock().await;
        let (transaction, attempt) = self.load_pair(attempt_id).await?;
        if attempt.status != AttemptStatus::New {
            return Ok(attempt);
        }
        let provider = self.provider(&attempt.provider)?;
        let request = create_request(&transaction, &attempt, &self.inner.settings.terminal_id);
        let created = match (attempt.method == METHOD_ATM, instrument) {
            (true, Some(instrument)) => provider.create_with_instrument(&request, instrument).await,
            (true, None) => {
                drop(_guard);
                self.supervise(attempt_id);
                return Err(EngineError::InvalidArgument(format!(
                    "attempt {} is a card or account payment that {} has not confirmed yet; \
                     send Checkout again with the card or account details",
                    attempt.code, attempt.provider
                )));
            }
            (false, _) => provider.create(&request).await,
        };
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
                // Mapped as every provider error is: the provider's verdict that the till's
                // input is invalid (AppotaPay's codes 1 and 32) is `InvalidArgument`.
                Err(EngineError::from(ProviderError::Rejected { code, message }))
            }
            Err(error) => {
                tracing::warn!(
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
            invoice_id = attempt.invoice_id.as_deref().unwrap_or(""),
            "invoice created"
        );
        Ok(attempt)
    }

    /// Records the invoice the provider made for an attempt, and moves the attempt to `target`
    /// (`204_SENT` for a live one; a QR that is not valid EMVCo, or for an `ATM` attempt a page
    /// that is not an https URL, fails it instead, leaving the invoice to be closed).
    pub(super) async fn record_invoice(
        &self,
        attempt_id: &str,
        invoice: Invoice,
        target: Option<AttemptStatus>,
    ) -> Result<Attempt, EngineError> {
        let id = attempt_id.to_owned();
        let now = self.now();
        self.write(move |tx, changes| {
            let (transaction, mut attempt) = load_pair_in(tx, &id)?;
            let qr_check = check_qr_text(
                &attempt.method,
                &invoice.qr_text,
                attempt.amount,
                transaction.currency,
            );
            attempt.invoice_id = Some(invoice.invoice_id);
            attempt.short_url = invoice.short_url;
            attempt.deep_links = invoice.deep_links;
            // The provider's own deadline, when it is earlier than ours: the QR stops working
            // then, so the till and the customer screen must not promise more.
            if let (Some(theirs), Some(ours)) = (invoice.expires_at, attempt.expires_at)
                && theirs < ours
            {
                attempt.expires_at = Some(theirs);
            }
            attempt.provider_open = true;
            attempt.updated_at = now;
            match (qr_check, target) {
                (Err(failure), Some(AttemptStatus::Sent)) => {
                    attempt.failure = Some(failure);
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
            changes.attempt(&attempt, &transaction);
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

/// Whether the till may use `method` with `provider`, given whether it passed a card or account.
fn check_method(provider: &str, method: &str, with_instrument: bool) -> Result<(), EngineError> {
    let allowed: &[&str] = if provider == SYSTEM_PROVIDER {
        &[METHOD_CASH]
    } else {
        &[METHOD_QR, METHOD_ATM]
    };
    if !allowed.contains(&method) {
        return Err(EngineError::invalid(
            "method",
            format!(
                "{provider} takes the method {}, not {method:?}",
                allowed.join(" or ")
            ),
        ));
    }
    match (method == METHOD_ATM, with_instrument) {
        (true, false) => Err(EngineError::invalid(
            "method",
            "ATM needs the card (bank_code, card_number, card_holder_name, card_month, \
             card_year) or the account (bank_code, account_number, account_holder_name, \
             identification_number)",
        )),
        (false, true) => Err(EngineError::invalid(
            "method",
            format!("card and account details go with the method ATM, not {method:?}"),
        )),
        _ => Ok(()),
    }
}

/// The longest page address an `ATM` attempt records (AppotaPay's are about 2 800 characters).
const MAX_PAGE_URL: usize = 8192;

/// Checks what an invoice asks the display to show: an EMVCo payload that asks for exactly
/// the attempt's `amount` in its `currency` (and that currency's country), or for an `ATM`
/// attempt the https page where the customer finishes the payment. The failure names the
/// problem: `INVALID_QR` for a code that is not EMVCo, `QR_MISMATCH` for one that asks for
/// another payment (what the customer sees must be what is charged).
fn check_qr_text(
    method: &str,
    qr_text: &str,
    amount: Decimal,
    currency: Currency,
) -> Result<(), Failure> {
    if method != METHOD_ATM {
        let payload = crate::emv::validate(qr_text).map_err(|error| Failure {
            code: "INVALID_QR".to_owned(),
            message: format!("the provider's QR text is not valid EMVCo: {error}"),
        })?;
        return crate::emv::check_payment(
            &payload,
            amount,
            currency.numeric_code(),
            currency.country_code(),
        )
        .map_err(|mismatch| Failure {
            code: "QR_MISMATCH".to_owned(),
            message: format!("the provider's QR does not match the payment: {mismatch}"),
        });
    }
    let fits = qr_text
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && qr_text.len() <= MAX_PAGE_URL
        && !qr_text.chars().any(|c| c.is_whitespace() || c.is_control());
    match (fits, qr_text.is_empty()) {
        (true, _) => Ok(()),
        (false, true) => Err(Failure {
            code: "INVALID_VERIFICATION_URL".to_owned(),
            message: "the provider has this payment but its verification page was never \
                      received, so the customer cannot finish it; start a new payment"
                .to_owned(),
        }),
        (false, false) => Err(Failure {
            code: "INVALID_VERIFICATION_URL".to_owned(),
            message: "the provider's verification page is not an https URL".to_owned(),
        }),
    }
}

/// Finds what an interrupted create made for a `100_NEW` attempt: an invoice, or for an `ATM`
/// attempt the card or account payment (which is never created again: its details are gone).
pub(super) async fn lookup_created(
    provider: &dyn Provider,
    attempt: &Attempt,
    request: &CreateRequest,
) -> Result<Option<Invoice>, ProviderError> {
    if attempt.method == METHOD_ATM {
        provider.lookup_instrument_payment(request).await
    } else {
        provider.lookup(request).await
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
        transaction_id: uuid::Uuid::nil().to_string(),
        source: valid.source.clone(),
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
        transaction_id: transaction.id.clone(),
        source: transaction.source.clone(),
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
    closed_stale: bool,
    stamp: &Stamp,
) -> Result<Decision, EngineError> {
    let now = stamp.now;
    let existing = tx.transaction_by_source(&valid.source.kind, &valid.source.id)?;
    let created = existing.is_none();
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
            let payments: Vec<&Attempt> = attempts
                .iter()
                .filter(|a| a.kind == AttemptType::Payment)
                .collect();
            match transaction.status {
                TransactionStatus::Settled => {
                    // The attempt that settled it; any that received money otherwise.
                    let last_paid = payments
                        .iter()
                        .rfind(|a| a.status == AttemptStatus::Success)
                        .or_else(|| payments.iter().rfind(|a| a.paid > Decimal::ZERO))
                        .map(|a| (*a).clone());
                    return match last_paid {
                        Some(attempt) => Ok(Decision::Existing(transaction, attempt)),
                        None => Err(EngineError::Internal(format!(
                            "settled transaction {} has no attempt that received money",
                            transaction.number
                        ))),
                    };
                }
                TransactionStatus::New | TransactionStatus::Partial => {
                    if let Some(open) = payments.iter().find(|a| a.status.is_open()) {
                        let open = (*open).clone();
                        if valid.replace_open {
                            return Ok(Decision::Replace(open));
                        }
                        if open.provider != valid.provider || open.method != valid.method {
                            return Err(EngineError::InvalidTransactionStatus(format!(
                                "{} {} (transaction {}) already has attempt {} open with {} ({}); \
                                 cancel it first (Cancel with attempt_id {}), or send Checkout \
                                 with replace_open=true to cancel it and start the new one",
                                valid.source.kind,
                                valid.source.id,
                                transaction.number,
                                open.code,
                                open.provider,
                                open.method,
                                open.id
                            )));
                        }
                        return Ok(if open.status == AttemptStatus::New {
                            Decision::Send(transaction, open)
                        } else {
                            Decision::Existing(transaction, open)
                        });
                    }
                    let stale: Vec<Attempt> = payments
                        .iter()
                        .filter(|a| a.may_take_money())
                        .map(|a| (*a).clone())
                        .collect();
                    if !closed_stale && !stale.is_empty() {
                        return Ok(Decision::CloseFirst(stale));
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
                id: stamp.new_id().to_string(),
                number: format!("TXN{number:06}"),
                terminal_id: terminal_id.to_owned(),
                source: valid.source.clone(),
                currency: valid.currency,
                total: valid.amount,
                paid: Decimal::ZERO,
                refunded: Decimal::ZERO,
                overpaid: Decimal::ZERO,
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
        stamp,
    )?;
    let attempt = Attempt {
        allow_partial: valid.allow_partial,
        expires_at: (valid.provider != SYSTEM_PROVIDER)
            .then(|| now.plus_millis(valid.expires_in_ms)),
        ..attempt
    };
    tx.insert_attempt(&attempt)?;
    if created {
        changes.transaction(&transaction);
    }
    changes.attempt(&attempt, &transaction);
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
    stamp: &Stamp,
) -> Result<Attempt, EngineError> {
    let code = tx.next_counter("attempt")?;
    let id = stamp.new_id();
    let now = stamp.now;
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
        overpaid: Decimal::ZERO,
        tendered: None,
        parent_id,
        // 26 characters of [A-Z0-9]: within every provider's reference limits (AppotaPay's
        // partner_ref_id is the tightest at 26), and unique without a central counter.
        idempotency_key: format!("Q{}", &id.simple().to_string()[..25]).to_uppercase(),
        request_id: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_follow_the_provider_and_the_instrument() {
        let ok = |provider, method, with_instrument| {
            check_method(provider, method, with_instrument).is_ok()
        };
        assert!(ok("qpay", METHOD_QR, false));
        assert!(ok("appotapay", METHOD_ATM, true));
        assert!(ok(SYSTEM_PROVIDER, METHOD_CASH, false));
        assert!(!ok(SYSTEM_PROVIDER, METHOD_ATM, true), "no card for cash");
        assert!(!ok("appotapay", METHOD_ATM, false), "ATM needs the details");
        assert!(!ok("appotapay", METHOD_QR, true), "details need ATM");
        assert!(!ok("qpay", METHOD_CASH, false));
    }

    /// The QPay sample of the provider notes: 100 MNT, dynamic.
    const QPAY_QR: &str = "0002010102121531279404962794049600000000KKTQPAY52046010530349654031005802MN5913TEST_MERCHANT6011Ulaanbaatar6244010712345670504test0721G7ZEWdbzkppBhJ1nouBhZ6304879D";

    fn dec(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("literal")
    }

    /// `check_qr_text` for an attempt of 100 MNT, its failure code only.
    fn qr_code_of(method: &str, qr_text: &str) -> Result<(), String> {
        check_qr_text(method, qr_text, dec("100"), Currency::Mnt).map_err(|f| f.code)
    }

    #[test]
    fn a_qr_for_another_payment_is_a_mismatch_never_shown() {
        assert_eq!(qr_code_of(METHOD_QR, QPAY_QR), Ok(()));
        let cases = [
            (
                dec("100.01"),
                Currency::Mnt,
                "asks for 100 (tag 54), the payment is 100.01",
            ),
            (
                dec("1000"),
                Currency::Mnt,
                "asks for 100 (tag 54), the payment is 1000",
            ),
            (
                dec("100"),
                Currency::Vnd,
                "currency (tag 53) is \"496\", the payment's is 704",
            ),
        ];
        for (amount, currency, says) in cases {
            let failure =
                check_qr_text(METHOD_QR, QPAY_QR, amount, currency).expect_err("a mismatch");
            assert_eq!(failure.code, "QR_MISMATCH");
            assert!(failure.message.contains(says), "{}", failure.message);
        }
    }

    #[test]
    fn an_atm_attempt_shows_an_https_page_and_others_emvco() {
        let page = "https://ibanking.appotapay.com/confirm-otp?tran=abc&sign=01";
        assert_eq!(qr_code_of(METHOD_ATM, page), Ok(()));
        assert_eq!(qr_code_of(METHOD_QR, page), Err("INVALID_QR".to_owned()));
        for bad in [
            "",
            "http://ibanking.appotapay.com/x",
            "https://",
            "https:///path",
            "https://a b",
            "https://a\u{7}b",
        ] {
            assert_eq!(
                qr_code_of(METHOD_ATM, bad),
                Err("INVALID_VERIFICATION_URL".to_owned()),
                "{bad:?}"
            );
        }
        let long = format!("https://a.test/{}", "x".repeat(MAX_PAGE_URL));
        assert!(qr_code_of(METHOD_ATM, &long).is_err());
    }
}
