//! The till's other requests: cancel, refund, cash confirmation, verify, look-ups, and the
//! simulator's commands.
//!
//! MQ-Pay's rules, enforced here:
//! - A refund is at most the attempt's paid amount minus what was refunded or is being refunded,
//!   and only from a `302_SUCCESS` payment attempt.
//! - Cancelling an attempt is a `200_CANCEL_PAYMENT` child attempt; the transaction goes back to
//!   `100_NEW` unless money arrived. Cancelling a transaction cancels every open attempt and ends
//!   `505_CANCELLED`; a transaction holding money that was not refunded cannot be cancelled.
//! - A cash confirmation records `tendered` and answers the `change`.

use rust_decimal::Decimal;
use tracing::Instrument;

use super::checkout::{load_pair_in, new_attempt};
use super::error::amount_error;
use super::supervisor::append_money_event;
use super::{
    CancelReply, Changes, ConfirmReply, ConfirmRequest, Engine, EngineError, ListRequest,
    METHOD_CASH, RefundReply, RefundRequest, SYSTEM_PROVIDER, Target, TransactionView, VerifyReply,
};
use crate::domain::model::{MAX_ID_LEN, MAX_NOTE_LEN};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Failure, OutboxKind, PaymentResult, Timestamp,
    Transaction, TransactionFilter, TransactionStatus, check_text, format_amount,
    format_for_display, parse_amount, status_for_money,
};
use crate::logging;
use crate::providers::{CancelOutcome, ProviderError, ProviderPayment};
use crate::store::Tx;

impl Engine {
    /// Cancels one payment attempt, or a whole transaction with all its open attempts.
    pub async fn cancel(
        &self,
        target: Target,
        reason: Option<String>,
    ) -> Result<CancelReply, EngineError> {
        if let Some(reason) = &reason {
            check_text("reason", reason, MAX_NOTE_LEN)?;
        }
        match target {
            Target::Attempt(attempt_id) => {
                check_text("attempt_id", &attempt_id, MAX_ID_LEN)?;
                let cancel = self.cancel_attempt(&attempt_id, reason).await?;
                let (transaction, _) = self.load_pair(&attempt_id).await?;
                Ok(CancelReply {
                    transaction,
                    cancelled: vec![cancel],
                })
            }
            Target::Transaction(id) => {
                check_text("transaction_id", &id, MAX_ID_LEN)?;
                self.cancel_transaction(&id, reason).await
            }
        }
    }

    async fn cancel_transaction(
        &self,
        id_or_number: &str,
        reason: Option<String>,
    ) -> Result<CancelReply, EngineError> {
        let view = self.get_transaction(id_or_number).await?;
        let transaction = view.transaction;
        match transaction.status {
            TransactionStatus::Cancelled => {
                return Ok(CancelReply {
                    transaction,
                    cancelled: Vec::new(),
                });
            }
            TransactionStatus::New | TransactionStatus::Partial => {}
            status => {
                return Err(EngineError::InvalidTransactionStatus(format!(
                    "transaction {} is {status} and cannot be cancelled{}",
                    transaction.number,
                    if status == TransactionStatus::Settled {
                        "; refund it instead"
                    } else {
                        ""
                    }
                )));
            }
        }
        check_nothing_to_refund(&transaction)?;
        let mut cancelled = Vec::new();
        for attempt in view
            .attempts
            .iter()
            .filter(|a| a.kind == AttemptType::Payment && a.status.is_open())
        {
            cancelled.push(self.cancel_attempt(&attempt.id, reason.clone()).await?);
        }
        let id = transaction.id.clone();
        let transaction = self
            .write(move |tx, changes| {
                let mut transaction = tx.transaction(&id)?.ok_or_else(|| {
                    EngineError::TransactionNotFound(format!("no transaction {id}"))
                })?;
                if transaction.status == TransactionStatus::Cancelled {
                    return Ok(transaction);
                }
                // Money may have arrived while the attempts were being cancelled.
                check_nothing_to_refund(&transaction)?;
                if tx
                    .attempts_of(&transaction.id)?
                    .iter()
                    .any(|a| a.kind == AttemptType::Payment && a.status.is_open())
                {
                    return Err(EngineError::InvalidTransactionStatus(format!(
                        "transaction {} got a new attempt while it was being cancelled",
                        transaction.number
                    )));
                }
                let now = Timestamp::now();
                transaction.transition_to(TransactionStatus::Cancelled, now)?;
                tx.update_transaction(&transaction)?;
                tx.append_outbox(
                    &transaction.id,
                    OutboxKind::TransactionCancelled,
                    &serde_json::json!({
                        "transaction_id": transaction.id,
                        "transaction_number": transaction.number,
                        "source": { "type": transaction.source.kind, "id": transaction.source.id },
                        "status": transaction.status.code(),
                        "at": now.to_rfc3339(),
                    }),
                    now,
                )?;
                changes.transaction(&transaction);
                tracing::info!(transaction_id = %transaction.id, "transaction cancelled");
                Ok(transaction)
            })
            .await?;
        Ok(CancelReply {
            transaction,
            cancelled,
        })
    }

    /// Cancels one open payment attempt: records the cancel attempt, closes the invoice at the
    /// provider, then marks both.
    async fn cancel_attempt(
        &self,
        attempt_id: &str,
        reason: Option<String>,
    ) -> Result<Attempt, EngineError> {
        let id = attempt_id.to_owned();
        let note = reason.clone();
        let cancel = self
            .write(move |tx, changes| {
                let (transaction, attempt) = load_pair_in(tx, &id)?;
                if attempt.kind != AttemptType::Payment {
                    return Err(EngineError::InvalidArgument(format!(
                        "attempt {} is a {}, not a payment",
                        attempt.code, attempt.kind
                    )));
                }
                if !attempt.status.is_open() {
                    return Err(EngineError::InvalidTransactionStatus(format!(
                        "attempt {} is {} and cannot be cancelled{}",
                        attempt.code,
                        attempt.status,
                        if attempt.status == AttemptStatus::Success {
                            "; refund it instead"
                        } else {
                            ""
                        }
                    )));
                }
                let now = Timestamp::now();
                let mut cancel = new_attempt(
                    tx,
                    &transaction,
                    AttemptType::CancelPayment,
                    &attempt.provider,
                    &attempt.method,
                    attempt.amount,
                    Some(attempt.id.clone()),
                    now,
                )?;
                cancel.note = note;
                tx.insert_attempt(&cancel)?;
                changes.attempt(&cancel);
                changes.transaction(&transaction);
                Ok(cancel)
            })
            .await?;
        let handle = self.handle(&cancel.id);
        let _guard = handle.lock.lock().await;
        let span = logging::attempt_span(&cancel.transaction_id, &cancel.id, &cancel.provider);
        let result = self
            .finish_cancel(attempt_id, &cancel.id, reason)
            .instrument(span)
            .await;
        drop(_guard);
        self.release(&cancel.id);
        result
    }

    /// Closes the parent's invoice and records the cancel's outcome. Safe to repeat: the
    /// provider treats a second cancel as done. Holds the parent's lock.
    pub(super) async fn finish_cancel(
        &self,
        parent_id: &str,
        cancel_id: &str,
        reason: Option<String>,
    ) -> Result<Attempt, EngineError> {
        let handle = self.handle(parent_id);
        let _guard = handle.lock.lock().await;
        let (_, parent) = self.load_pair(parent_id).await?;
        let outcome = if parent.provider == SYSTEM_PROVIDER {
            Ok(CancelOutcome::Cancelled)
        } else if let Some(invoice_id) = parent.invoice_id.clone() {
            self.close_invoice(&parent, &invoice_id).await
        } else if parent.status == AttemptStatus::New {
            // Never confirmed as created: if the provider has it, it must be closed too.
            let (transaction, _) = self.load_pair(parent_id).await?;
            let request = super::checkout::create_request(
                &transaction,
                &parent,
                &self.inner.settings.terminal_id,
            );
            let provider = self.provider(&parent.provider)?;
            match super::checkout::lookup_created(provider.as_ref(), &parent, &request).await {
                Ok(Some(invoice)) => {
                    let invoice_id = invoice.invoice_id.clone();
                    let parent = self.record_invoice(parent_id, invoice, None).await?;
                    self.close_invoice(&parent, &invoice_id).await
                }
                Ok(None) => Ok(CancelOutcome::Cancelled),
                Err(error) => Err(EngineError::from(error)),
            }
        } else {
            Ok(CancelOutcome::Cancelled)
        };
        let parent_key = parent_id.to_owned();
        let cancel_key = cancel_id.to_owned();
        match outcome {
            Ok(CancelOutcome::Cancelled) => {
                self.write(move |tx, changes| {
                    let (transaction, mut parent) = load_pair_in(tx, &parent_key)?;
                    let (_, mut cancel) = load_pair_in(tx, &cancel_key)?;
                    let now = Timestamp::now();
                    if parent.status.is_open() {
                        if parent.paid > Decimal::ZERO {
                            parent.transition_to(AttemptStatus::Success, now)?;
                        } else {
                            parent.failure = Some(Failure {
                                code: "CANCELLED".to_owned(),
                                message: reason
                                    .unwrap_or_else(|| "cancelled by the till".to_owned()),
                            });
                            parent.transition_to(AttemptStatus::Fail, now)?;
                        }
                        parent.provider_open = false;
                        tx.update_attempt(&parent)?;
                        changes.attempt(&parent);
                    }
                    cancel.transition_to(AttemptStatus::Success, now)?;
                    tx.update_attempt(&cancel)?;
                    changes.attempt(&cancel);
                    changes.transaction(&transaction);
                    tracing::info!(
                        attempt_id = %parent.id,
                        transaction_id = %transaction.id,
                        provider = %parent.provider,
                        "attempt cancelled"
                    );
                    Ok(cancel)
                })
                .await
            }
            Ok(CancelOutcome::AlreadyPaid) => {
                let failure = Failure {
                    code: "ALREADY_PAID".to_owned(),
                    message: "the customer paid before the cancel reached the provider".to_owned(),
                };
                self.fail_attempt(&cancel_key, failure).await?;
                let transaction = self.load_transaction(&parent.transaction_id).await?;
                Err(EngineError::InvalidTransactionStatus(format!(
                    "attempt {} was paid before it could be cancelled; transaction {} is {}",
                    parent.code, transaction.number, transaction.status
                )))
            }
            Err(error) => {
                // The parent is untouched; the cancel attempt records why it did not happen.
                let failure = match &error {
                    EngineError::ProviderRejected { code, message } => Failure {
                        code: code.clone(),
                        message: message.clone(),
                    },
                    other => Failure {
                        code: "PROVIDER_UNAVAILABLE".to_owned(),
                        message: other.to_string(),
                    },
                };
                self.fail_attempt(&cancel_key, failure).await?;
                Err(error)
            }
        }
    }

    /// Refunds part or all of a successful payment attempt.
    pub async fn refund(&self, request: RefundRequest) -> Result<RefundReply, EngineError> {
        check_text("attempt_id", &request.attempt_id, MAX_ID_LEN)?;
        if let Some(reason) = &request.reason {
            check_text("reason", reason, MAX_NOTE_LEN)?;
        }
        let amount =
            crate::domain::parse_decimal(&request.amount).map_err(|e| amount_error("amount", e))?;
        // The provider's own limits (QPay refunds whole payments), checked before anything is
        // recorded.
        let (_, attempt) = self.load_pair(&request.attempt_id).await?;
        let refundable =
            attempt.kind == AttemptType::Payment && attempt.status == AttemptStatus::Success;
        if let Some(provider) = self
            .inner
            .providers
            .get(&attempt.provider)
            .filter(|_| refundable)
        {
            let id = attempt.id.clone();
            let payments: Vec<ProviderPayment> = self
                .read(move |tx| Ok(tx.payment_results_of(&id)?))
                .await?
                .into_iter()
                .map(|p| ProviderPayment {
                    payment_id: p.provider_payment_id,
                    amount: p.amount,
                    paid_at: p.paid_at,
                })
                .collect();
            provider
                .check_refund(amount, &payments)
                .map_err(EngineError::InvalidArgument)?;
        }
        let id = request.attempt_id.clone();
        let refund = self
            .write(move |tx, changes| {
                let (transaction, attempt) = load_pair_in(tx, &id)?;
                if attempt.kind != AttemptType::Payment || attempt.status != AttemptStatus::Success
                {
                    return Err(EngineError::AttemptNotSuccess(format!(
                        "attempt {} is a {} in {}; only a 302_SUCCESS payment can be refunded",
                        attempt.code, attempt.kind, attempt.status
                    )));
                }
                let amount = parse_amount(&request.amount, transaction.currency, None)
                    .map_err(|e| amount_error("amount", e))?;
                let in_flight: Decimal = tx
                    .attempts_of(&transaction.id)?
                    .iter()
                    .filter(|a| {
                        a.kind == AttemptType::RefundPayment
                            && a.parent_id.as_deref() == Some(attempt.id.as_str())
                            && a.status.is_open()
                    })
                    .map(|a| a.amount)
                    .sum();
                let remaining = attempt.refundable() - in_flight;
                if amount > remaining {
                    return Err(EngineError::RefundExceedsRemaining(format!(
                        "{} exceeds what is left to refund on attempt {}: {}",
                        format_for_display(amount, transaction.currency),
                        attempt.code,
                        format_for_display(remaining.max(Decimal::ZERO), transaction.currency)
                    )));
                }
                let now = Timestamp::now();
                let mut refund = new_attempt(
                    tx,
                    &transaction,
                    AttemptType::RefundPayment,
                    &attempt.provider,
                    &attempt.method,
                    amount,
                    Some(attempt.id.clone()),
                    now,
                )?;
                refund.note = request.reason;
                tx.insert_attempt(&refund)?;
                changes.attempt(&refund);
                changes.transaction(&transaction);
                Ok(refund)
            })
            .await?;
        let handle = self.handle(&refund.id);
        let guard = handle.lock.lock().await;
        let span = logging::attempt_span(&refund.transaction_id, &refund.id, &refund.provider);
        let result = self.send_refund(&refund.id).instrument(span).await;
        drop(guard);
        let refund = match result {
            Ok(refund) => refund,
            Err(error) => {
                if matches!(error, EngineError::ProviderUnavailable(_)) {
                    // The outcome is unknown: the supervisor repeats it with the same key.
                    self.supervise(&refund.id);
                } else {
                    self.release(&refund.id);
                }
                return Err(error);
            }
        };
        self.release(&refund.id);
        Ok(RefundReply { refund })
    }

    /// Sends a recorded refund to its provider and records the outcome. Safe to repeat: the
    /// provider refunds a key once. Holds the refund's lock (taken by the caller).
    pub(super) async fn send_refund(&self, refund_id: &str) -> Result<Attempt, EngineError> {
        let (transaction, refund) = self.load_pair(refund_id).await?;
        if !refund.status.is_open() {
            return Ok(refund);
        }
        let parent_id = refund.parent_id.clone().unwrap_or_default();
        let (_, parent) = self.load_pair(&parent_id).await?;
        let outcome = if parent.provider == SYSTEM_PROVIDER {
            Ok(format!("cash-{}", refund.code))
        } else {
            let id = parent.id.clone();
            let payments = self.read(move |tx| Ok(tx.payment_results_of(&id)?)).await?;
            let request = crate::providers::RefundRequest {
                idempotency_key: refund.idempotency_key.clone(),
                invoice_id: parent.invoice_id.clone().unwrap_or_default(),
                amount: refund.amount,
                currency: transaction.currency,
                reason: refund.note.clone().unwrap_or_else(|| "refund".to_owned()),
                payments: payments
                    .into_iter()
                    .map(|p| ProviderPayment {
                        payment_id: p.provider_payment_id,
                        amount: p.amount,
                        paid_at: p.paid_at,
                    })
                    .collect(),
            };
            self.provider(&parent.provider)?
                .refund(&request)
                .await
                .map(|o| o.reference)
        };
        let id = refund_id.to_owned();
        match outcome {
            Ok(reference) => {
                self.write(move |tx, changes| {
                    let (mut transaction, mut refund) = load_pair_in(tx, &id)?;
                    let parent_id = refund.parent_id.clone().unwrap_or_default();
                    let (_, mut parent) = load_pair_in(tx, &parent_id)?;
                    let now = Timestamp::now();
                    refund.invoice_id = Some(reference);
                    refund.transition_to(AttemptStatus::Success, now)?;
                    parent.refunded += refund.amount;
                    parent.updated_at = now;
                    transaction.refunded += refund.amount;
                    transaction.updated_at = now;
                    tx.update_attempt(&refund)?;
                    tx.update_attempt(&parent)?;
                    tx.update_transaction(&transaction)?;
                    tx.append_outbox(
                        &transaction.id,
                        OutboxKind::RefundSucceeded,
                        &serde_json::json!({
                            "transaction_id": transaction.id,
                            "transaction_number": transaction.number,
                            "refund_attempt_id": refund.id,
                            "refund_attempt_code": refund.code,
                            "parent_id": parent.id,
                            "provider": refund.provider,
                            "currency": transaction.currency.code(),
                            "amount": format_amount(refund.amount),
                            "refunded": format_amount(transaction.refunded),
                            "at": now.to_rfc3339(),
                        }),
                        now,
                    )?;
                    changes.attempt(&refund);
                    changes.attempt(&parent);
                    changes.transaction(&transaction);
                    tracing::info!(
                        attempt_id = %refund.id,
                        transaction_id = %transaction.id,
                        provider = %refund.provider,
                        amount = %refund.amount,
                        "refund succeeded"
                    );
                    Ok(refund)
                })
                .await
            }
            Err(ProviderError::Rejected { code, message }) => {
                let failure = Failure {
                    code: code.clone(),
                    message: message.clone(),
                };
                self.fail_attempt(&id, failure).await?;
                Err(EngineError::ProviderRejected { code, message })
            }
            Err(error) => {
                // Sent, outcome unknown: `204_SENT` until a repeat with the same key settles it.
                self.write(move |tx, changes| {
                    let (transaction, mut refund) = load_pair_in(tx, &id)?;
                    if refund.status == AttemptStatus::New {
                        refund.transition_to(AttemptStatus::Sent, Timestamp::now())?;
                        tx.update_attempt(&refund)?;
                        changes.attempt(&refund);
                        changes.transaction(&transaction);
                    }
                    Ok(())
                })
                .await?;
                Err(EngineError::ProviderUnavailable(format!(
                    "refund {} is recorded and will be retried: {error}",
                    refund.code
                )))
            }
        }
    }

    /// Records money the cashier took outside any provider (MQ-Pay's system IPN).
    pub async fn confirm_system_payment(
        &self,
        request: ConfirmRequest,
    ) -> Result<ConfirmReply, EngineError> {
        if let Some(note) = &request.note {
            check_text("note", note, MAX_NOTE_LEN)?;
        }
        match &request.target {
            Target::Attempt(id) => check_text("attempt_id", id, MAX_ID_LEN)?,
            Target::Transaction(id) => check_text("transaction_id", id, MAX_ID_LEN)?,
        }
        // The grammar is checked before anything is looked up; the currency's decimal places
        // once the transaction is known.
        crate::domain::parse_decimal(&request.tendered).map_err(|e| amount_error("tendered", e))?;
        // Besides cash attempts, the cashier confirms the attempts of providers that no gateway
        // reports (a VietQR transfer to the merchant's own account).
        let cashier_confirms = match &request.target {
            Target::Attempt(id) => {
                let (_, attempt) = self.load_pair(id).await?;
                self.inner
                    .providers
                    .get(&attempt.provider)
                    .is_some_and(|p| p.confirmed_by_cashier())
            }
            Target::Transaction(_) => false,
        };
        let reply = self
            .write(move |tx, changes| confirm_in(tx, changes, request, cashier_confirms))
            .await?;
        Ok(reply)
    }

    /// Asks the provider about an attempt now and applies the answer.
    pub async fn verify(&self, attempt_id: &str) -> Result<VerifyReply, EngineError> {
        check_text("attempt_id", attempt_id, MAX_ID_LEN)?;
        let handle = self.handle(attempt_id);
        let guard = handle.lock.lock().await;
        let result = async {
            let (_, attempt) = self.load_pair(attempt_id).await?;
            if attempt.provider == SYSTEM_PROVIDER {
                return Ok(VerifyReply {
                    provider_code: "SYSTEM".to_owned(),
                    provider_message: "confirmed by the cashier, not a provider".to_owned(),
                    attempt,
                });
            }
            if attempt.kind != AttemptType::Payment || attempt.invoice_id.is_none() {
                return Ok(VerifyReply {
                    provider_code: attempt
                        .failure
                        .as_ref()
                        .map(|f| f.code.clone())
                        .unwrap_or_else(|| "NONE".to_owned()),
                    provider_message: "no invoice at the provider to check".to_owned(),
                    attempt,
                });
            }
            let (attempt, check) = self.check_now(&attempt).await?;
            Ok(VerifyReply {
                attempt,
                provider_code: check.code,
                provider_message: check.message,
            })
        }
        .await;
        drop(guard);
        self.release(attempt_id);
        result
    }

    /// A provider says one of its invoices changed (an IPN): the attempt's supervisor checks
    /// with the provider at once, so the notification is applied exactly like a poll result,
    /// only once the provider's own status API agrees. Returns whether the invoice is known.
    pub async fn invoice_notified(
        &self,
        provider: &str,
        invoice_id: &str,
    ) -> Result<bool, EngineError> {
        let (name, id) = (provider.to_owned(), invoice_id.to_owned());
        let attempt = self
            .read(move |tx| Ok(tx.attempt_by_invoice(&name, &id)?))
            .await?;
        let Some(attempt) = attempt else {
            tracing::warn!(provider, invoice_id, "notification for an unknown invoice");
            return Ok(false);
        };
        if attempt.status.is_open() || attempt.provider_open {
            self.supervise(&attempt.id);
            self.nudge(&attempt.id);
        }
        Ok(true)
    }

    /// A transaction by id or number, with its attempts and recorded payments.
    pub async fn get_transaction(
        &self,
        id_or_number: &str,
    ) -> Result<TransactionView, EngineError> {
        check_text("id", id_or_number, MAX_ID_LEN)?;
        let key = id_or_number.to_owned();
        self.read(move |tx| {
            let transaction = match tx.transaction(&key)? {
                Some(t) => t,
                None => tx.transaction_by_number(&key)?.ok_or_else(|| {
                    EngineError::TransactionNotFound(format!("no transaction {key}"))
                })?,
            };
            let attempts = tx.attempts_of(&transaction.id)?;
            let mut payments = Vec::new();
            for attempt in &attempts {
                payments.extend(tx.payment_results_of(&attempt.id)?);
            }
            Ok(TransactionView {
                transaction,
                attempts,
                payments,
            })
        })
        .await
    }

    /// Transactions matching the filter, newest first.
    pub async fn list_transactions(
        &self,
        request: ListRequest,
    ) -> Result<Vec<Transaction>, EngineError> {
        let filter = validate_filter(request)?;
        self.read(move |tx| Ok(tx.list_transactions(&filter)?))
            .await
    }

    /// How many transactions match the filter (limit and offset ignored).
    pub async fn count_transactions(&self, request: ListRequest) -> Result<u64, EngineError> {
        let filter = validate_filter(request)?;
        self.read(move |tx| Ok(tx.count_transactions(&filter)?))
            .await
    }

    /// Simulator: the customer pays `amount` (the rest when `None`) of the attempt's invoice.
    pub async fn simulate_pay(
        &self,
        attempt_id: &str,
        amount: Option<&str>,
    ) -> Result<(), EngineError> {
        let (transaction, attempt) = self.simulated_attempt(attempt_id).await?;
        let amount = amount
            .filter(|a| !a.is_empty())
            .map(|a| parse_amount(a, transaction.currency, None))
            .transpose()
            .map_err(|e| amount_error("amount", e))?;
        let simulator = self.simulator()?;
        let invoice_id = attempt.invoice_id.unwrap_or_default();
        simulator
            .pay(&invoice_id, amount)
            .map_err(|e| EngineError::InvalidTransactionStatus(e.to_string()))?;
        self.nudge(attempt_id);
        Ok(())
    }

    /// Simulator: the provider fails the attempt's invoice.
    pub async fn simulate_fail(&self, attempt_id: &str) -> Result<(), EngineError> {
        let (_, attempt) = self.simulated_attempt(attempt_id).await?;
        let simulator = self.simulator()?;
        simulator
            .fail(&attempt.invoice_id.unwrap_or_default())
            .map_err(|e| EngineError::InvalidTransactionStatus(e.to_string()))?;
        self.nudge(attempt_id);
        Ok(())
    }

    /// Simulator: play offline (every call answers unavailable) or come back.
    pub fn simulate_offline(&self, offline: bool) -> Result<(), EngineError> {
        self.simulator()?.set_offline(offline);
        Ok(())
    }

    fn simulator(&self) -> Result<&std::sync::Arc<crate::providers::Simulator>, EngineError> {
        self.inner.providers.simulator().ok_or_else(|| {
            EngineError::ProviderNotConfigured("the simulator is not enabled".to_owned())
        })
    }

    async fn simulated_attempt(
        &self,
        attempt_id: &str,
    ) -> Result<(Transaction, Attempt), EngineError> {
        check_text("attempt_id", attempt_id, MAX_ID_LEN)?;
        let (transaction, attempt) = self.load_pair(attempt_id).await?;
        if attempt.provider != crate::providers::Simulator::NAME || attempt.invoice_id.is_none() {
            return Err(EngineError::InvalidArgument(format!(
                "attempt {} is not a simulator payment with an invoice",
                attempt.code
            )));
        }
        Ok((transaction, attempt))
    }
}

fn check_nothing_to_refund(transaction: &Transaction) -> Result<(), EngineError> {
    if transaction.paid > transaction.refunded {
        return Err(EngineError::InvalidTransactionStatus(format!(
            "transaction {} holds {} that was not refunded; refund it before cancelling",
            transaction.number,
            format_for_display(
                transaction.paid - transaction.refunded,
                transaction.currency
            )
        )));
    }
    Ok(())
}

/// The store step of a cash confirmation.
fn confirm_in(
    tx: &Tx<'_>,
    changes: &mut Changes,
    request: ConfirmRequest,
    cashier_confirms: bool,
) -> Result<ConfirmReply, EngineError> {
    let now = Timestamp::now();
    let (mut transaction, attempt) = match &request.target {
        Target::Attempt(id) => {
            let (transaction, attempt) = load_pair_in(tx, id)?;
            let by_cashier = attempt.provider == SYSTEM_PROVIDER || cashier_confirms;
            if !by_cashier || attempt.kind != AttemptType::Payment {
                return Err(EngineError::InvalidTransactionStatus(format!(
                    "attempt {} is a {} payment; only cash and VietQR-transfer attempts are confirmed by the cashier",
                    attempt.code, attempt.provider
                )));
            }
            if !attempt.status.is_open() {
                return Err(EngineError::InvalidTransactionStatus(format!(
                    "attempt {} is already {}",
                    attempt.code, attempt.status
                )));
            }
            (transaction, attempt)
        }
        Target::Transaction(id) => {
            let transaction = match tx.transaction(id)? {
                Some(t) => t,
                None => tx.transaction_by_number(id)?.ok_or_else(|| {
                    EngineError::TransactionNotFound(format!("no transaction {id}"))
                })?,
            };
            let attempts = tx.attempts_of(&transaction.id)?;
            let open: Vec<&Attempt> = attempts
                .iter()
                .filter(|a| a.kind == AttemptType::Payment && a.status.is_open())
                .collect();
            if let Some(qr) = open.iter().find(|a| a.provider != SYSTEM_PROVIDER) {
                return Err(EngineError::InvalidTransactionStatus(format!(
                    "attempt {} ({}) is still open; cancel it before taking cash, so the customer cannot pay twice",
                    qr.code, qr.provider
                )));
            }
            if !matches!(
                transaction.status,
                TransactionStatus::New | TransactionStatus::Partial
            ) {
                return Err(EngineError::InvalidTransactionStatus(format!(
                    "transaction {} is {} and takes no more money",
                    transaction.number, transaction.status
                )));
            }
            let attempt = match open.first() {
                Some(cash) => (*cash).clone(),
                None => {
                    let attempt = new_attempt(
                        tx,
                        &transaction,
                        AttemptType::Payment,
                        SYSTEM_PROVIDER,
                        METHOD_CASH,
                        transaction.remaining(),
                        None,
                        now,
                    )?;
                    tx.insert_attempt(&attempt)?;
                    attempt
                }
            };
            (transaction, attempt)
        }
    };
    let mut attempt = attempt;
    let tendered = parse_amount(&request.tendered, transaction.currency, None)
        .map_err(|e| amount_error("tendered", e))?;
    let due = attempt.amount.min(transaction.remaining());
    let taken = tendered.min(due);
    let change = tendered - taken;
    attempt.tendered = Some(tendered);
    attempt.paid += taken;
    attempt.note = request.note;
    attempt.transition_to(AttemptStatus::Success, now)?;
    tx.insert_payment_result(&PaymentResult {
        attempt_id: attempt.id.clone(),
        provider: attempt.provider.clone(),
        provider_payment_id: format!("cashier-{}", attempt.id),
        amount: taken,
        paid_at: Some(now),
        observed_at: now,
    })?;
    tx.update_attempt(&attempt)?;
    transaction.paid += taken;
    transaction.transition_to(status_for_money(transaction.total, transaction.paid), now)?;
    tx.update_transaction(&transaction)?;
    append_money_event(tx, &transaction, &attempt, taken, now)?;
    changes.attempt(&attempt);
    changes.transaction(&transaction);
    tracing::info!(
        attempt_id = %attempt.id,
        transaction_id = %transaction.id,
        provider = %attempt.provider,
        tendered = %tendered,
        change = %change,
        "cash payment confirmed"
    );
    Ok(ConfirmReply {
        transaction,
        attempt,
        change,
    })
}

fn validate_filter(request: ListRequest) -> Result<TransactionFilter, EngineError> {
    let status = request
        .status
        .map(|s| {
            s.parse::<TransactionStatus>()
                .map_err(|e| EngineError::invalid("status", e))
        })
        .transpose()?;
    let time = |field: &str, value: Option<String>| {
        value
            .map(|v| {
                Timestamp::parse_rfc3339(&v).ok_or_else(|| {
                    EngineError::invalid(field, format!("{v:?} is not an RFC 3339 time"))
                })
            })
            .transpose()
    };
    for (field, value) in [
        ("source_type", &request.source_type),
        ("source_id", &request.source_id),
    ] {
        if let Some(value) = value {
            check_text(field, value, MAX_ID_LEN)?;
        }
    }
    let limit = request.limit.unwrap_or(TransactionFilter::DEFAULT_LIMIT);
    if limit == 0 || limit > TransactionFilter::MAX_LIMIT {
        return Err(EngineError::invalid(
            "limit",
            format!("{limit} is outside 1..={}", TransactionFilter::MAX_LIMIT),
        ));
    }
    Ok(TransactionFilter {
        status,
        source_type: request.source_type,
        source_id: request.source_id,
        since: time("since", request.since)?,
        until: time("until", request.until)?,
        limit,
        offset: request.offset.unwrap_or(0),
    })
}
