//! One supervisor task per attempt that still needs the daemon.
//!
//! For a payment attempt it resolves an invoice creation whose outcome is unknown, polls the
//! live invoice at the provider's interval (checking at once when nudged), backs off on
//! errors (honouring a rate limit's retry-after), expires the attempt with a final check, and
//! closes the invoice at the provider so no late money can go unnoticed. For a cancel or refund
//! attempt whose outcome is unknown it repeats the call with the same key until it is known.
//!
//! Every provider call holds the attempt's lock, so there is never more than one in flight for
//! an attempt, and a `Verify` or `Cancel` from the till waits its turn.

use std::time::Duration;

use rust_decimal::Decimal;
use tracing::Instrument;

use super::checkout::{create_request, load_pair_in, lookup_created};
use super::{Changes, Engine, EngineError};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Failure, OutboxKind, PaymentResult, Timestamp,
    Transaction, TransactionStatus, format_amount, status_for_money,
};
use crate::logging;
use crate::providers::{CancelOutcome, CheckResult, InvoiceState, ProviderError};
use crate::store::Tx;

/// The longest wait between two tries after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the supervisor should do next for an attempt.
enum Step {
    /// Wait this long (or until nudged), then look again.
    Wait(Duration),
    /// Nothing more to do.
    Done,
}

impl Engine {
    /// Starts the attempt's supervisor unless one is running.
    pub(super) fn supervise(&self, attempt_id: &str) {
        {
            let Ok(mut supervised) = self.inner.supervised.lock() else {
                return;
            };
            if !supervised.insert(attempt_id.to_owned()) {
                return;
            }
        }
        let engine = self.clone();
        let attempt_id = attempt_id.to_owned();
        let handle = self.handle(&attempt_id);
        let (loader, id) = (self.clone(), attempt_id.clone());
        let task = async move {
            let mut failures: u32 = 0;
            loop {
                let step = engine.step(&attempt_id).await;
                let wait = match step {
                    Ok(Step::Done) => break,
                    Ok(Step::Wait(wait)) => {
                        failures = 0;
                        wait
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        let wait = engine.backoff(&attempt_id, failures, &error).await;
                        tracing::warn!(
                            %error,
                            retry_in_ms = wait.as_millis() as u64,
                            "attempt step failed; will retry"
                        );
                        wait
                    }
                };
                if !wait.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = handle.wake.notified() => {}
                    }
                }
            }
            if let Ok(mut supervised) = engine.inner.supervised.lock() {
                supervised.remove(&attempt_id);
            }
            drop(handle);
            engine.release(&attempt_id);
        };
        // Every line the supervisor logs, its provider's included, names the attempt.
        tokio::spawn(async move {
            let span = loader.supervisor_span(&id).await;
            task.instrument(span).await;
        });
    }

    /// The span of an attempt's supervisor ([`logging::attempt_span`]); only the attempt's id
    /// when the attempt cannot be read now (its first step then fails on the same read).
    async fn supervisor_span(&self, attempt_id: &str) -> tracing::Span {
        match self.load_pair(attempt_id).await {
            Ok((_, attempt)) => {
                logging::attempt_span(&attempt.transaction_id, &attempt.id, &attempt.provider)
            }
            Err(_) => tracing::error_span!(parent: None, "attempt", attempt_id = %attempt_id),
        }
    }

    /// How long to wait after `failures` failed steps: the poll interval doubled per failure,
    /// at most a minute, at least what a rate limit asked for, and never past a live attempt's
    /// expiry (which must be processed on time, provider or not).
    async fn backoff(&self, attempt_id: &str, failures: u32, error: &StepError) -> Duration {
        let attempt = self.load_pair(attempt_id).await.ok().map(|(_, a)| a);
        let interval = attempt
            .as_ref()
            .and_then(|a| self.provider(&a.provider).ok())
            .map(|p| p.poll_interval())
            .unwrap_or(Duration::from_secs(5));
        let exponent = failures.min(8);
        let mut backoff = interval.saturating_mul(1 << exponent).min(MAX_BACKOFF);
        if let Some(expires_at) = attempt
            .as_ref()
            .filter(|a| a.status.is_open())
            .and_then(|a| a.expires_at)
        {
            let until_expiry = Timestamp::now().millis_until(expires_at);
            // A floor, so that a step failing for another reason at expiry cannot spin.
            backoff = backoff
                .min(Duration::from_millis(until_expiry))
                .max(Duration::from_millis(100));
        }
        match error {
            StepError::Provider(ProviderError::RateLimited {
                retry_after: Some(after),
            }) => backoff.max(*after),
            _ => backoff,
        }
    }

    /// One step of an attempt's supervision, under its lock.
    async fn step(&self, attempt_id: &str) -> Result<Step, StepError> {
        let handle = self.handle(attempt_id);
        let _guard = handle.lock.lock().await;
        let (_, attempt) = self.load_pair(attempt_id).await?;
        match attempt.kind {
            AttemptType::Payment => self.step_payment(attempt).await,
            AttemptType::RefundPayment => self.step_refund(attempt).await,
            AttemptType::CancelPayment => self.step_cancel(attempt).await,
        }
    }

    async fn step_payment(&self, attempt: Attempt) -> Result<Step, StepError> {
        let provider = self.provider(&attempt.provider)?;
        let now = Timestamp::now();
        match (attempt.status, &attempt.invoice_id) {
            (AttemptStatus::New, _) => {
                // Creation's outcome is unknown: find what the provider made, if anything. A
                // card or account payment is only ever looked up here: its details are gone.
                let (transaction, _) = self.load_pair(&attempt.id).await?;
                let request =
                    create_request(&transaction, &attempt, &self.inner.settings.terminal_id);
                match lookup_created(provider.as_ref(), &attempt, &request).await? {
                    Some(invoice) => {
                        // Found: record it, live if there is time left, otherwise expired so
                        // that it gets closed.
                        let target = if attempt.expires_at.is_some_and(|at| now >= at) {
                            AttemptStatus::Expired
                        } else {
                            AttemptStatus::Sent
                        };
                        self.record_invoice(&attempt.id, invoice, Some(target))
                            .await?;
                        Ok(Step::Wait(Duration::ZERO))
                    }
                    None => {
                        let failure = Failure {
                            code: "NOT_CREATED".to_owned(),
                            message: "the provider never created this payment".to_owned(),
                        };
                        self.fail_attempt(&attempt.id, failure).await?;
                        Ok(Step::Done)
                    }
                }
            }
            (AttemptStatus::Sent, Some(invoice_id)) => {
                let expires_at = attempt.expires_at.unwrap_or(now);
                if now >= expires_at {
                    self.expire(&attempt, invoice_id).await?;
                    return Ok(Step::Wait(Duration::ZERO));
                }
                let check = provider.check(invoice_id).await?;
                let attempt = self.apply_check(&attempt.id, check).await?;
                if !attempt.status.is_open() {
                    return Ok(Step::Wait(Duration::ZERO));
                }
                let until_expiry = Duration::from_millis(now.millis_until(expires_at));
                Ok(Step::Wait(provider.poll_interval().min(until_expiry)))
            }
            (_, Some(invoice_id)) if attempt.provider_open => {
                self.close_invoice(&attempt, invoice_id).await?;
                Ok(Step::Done)
            }
            _ => Ok(Step::Done),
        }
    }

    /// Asks the provider where the attempt's invoice stands and applies the answer (for the
    /// till's `Verify` and for reconciliation, in the attempt's span).
    pub(super) async fn check_now(
        &self,
        attempt: &Attempt,
    ) -> Result<(Attempt, CheckResult), EngineError> {
        let provider = self.provider(&attempt.provider)?;
        let invoice_id = attempt.invoice_id.clone().ok_or_else(|| {
            EngineError::InvalidTransactionStatus(format!(
                "attempt {} has no invoice at the provider yet",
                attempt.code
            ))
        })?;
        let span = logging::attempt_span(&attempt.transaction_id, &attempt.id, &attempt.provider);
        async {
            let check = provider.check(&invoice_id).await?;
            let updated = self.apply_check(&attempt.id, check.clone()).await?;
            Ok((updated, check))
        }
        .instrument(span)
        .await
    }

    /// At expiry: one final check (a late payment is never lost), then `501_EXPIRED` (or a
    /// partial `302_SUCCESS` if some money came), leaving the invoice to be closed.
    async fn expire(&self, attempt: &Attempt, invoice_id: &str) -> Result<(), EngineError> {
        let provider = self.provider(&attempt.provider)?;
        match provider.check(invoice_id).await {
            Ok(check) => {
                let updated = self.apply_check(&attempt.id, check).await?;
                if !updated.status.is_open() {
                    return Ok(());
                }
            }
            Err(error) => tracing::warn!(
                %error,
                "final check at expiry failed; expiring now and checking again when closing"
            ),
        }
        let id = attempt.id.clone();
        self.write(move |tx, changes| {
            let (transaction, mut attempt) = load_pair_in(tx, &id)?;
            if !attempt.status.is_open() {
                return Ok(());
            }
            let now = Timestamp::now();
            if attempt.paid > Decimal::ZERO {
                attempt.transition_to(AttemptStatus::Success, now)?;
            } else {
                attempt.transition_to(AttemptStatus::Expired, now)?;
                tx.append_outbox(
                    &transaction.id,
                    OutboxKind::AttemptExpired,
                    &attempt_event(&transaction, &attempt, now),
                    now,
                )?;
            }
            tx.update_attempt(&attempt)?;
            tracing::info!(
                attempt_id = %attempt.id,
                transaction_id = %transaction.id,
                provider = %attempt.provider,
                status = %attempt.status,
                "attempt expired"
            );
            changes.attempt(&attempt);
            changes.transaction(&transaction);
            Ok(())
        })
        .await
    }

    /// Closes an invoice that must not be paid any more, then checks once more so that money
    /// that raced the close is recorded. `INVOICE_PAID`-style answers settle instead.
    pub(super) async fn close_invoice(
        &self,
        attempt: &Attempt,
        invoice_id: &str,
    ) -> Result<CancelOutcome, EngineError> {
        let provider = self.provider(&attempt.provider)?;
        let outcome = provider.cancel(invoice_id).await?;
        let mut check = provider.check(invoice_id).await?;
        if check.state == InvoiceState::Closed {
            // Closed because we just closed it: the caller records why (cancel or expiry), so
            // only the money in this answer counts.
            check.state = InvoiceState::Open;
        }
        self.apply_check(&attempt.id, check).await?;
        let id = attempt.id.clone();
        self.write(move |tx, changes| {
            let (transaction, mut attempt) = load_pair_in(tx, &id)?;
            if attempt.provider_open {
                attempt.provider_open = false;
                attempt.updated_at = Timestamp::now();
                tx.update_attempt(&attempt)?;
                changes.attempt(&attempt);
                changes.transaction(&transaction);
            }
            Ok(())
        })
        .await?;
        tracing::info!(attempt_id = %attempt.id, provider = %attempt.provider, ?outcome, "invoice closed at the provider");
        Ok(outcome)
    }

    /// Applies a provider's check: records each payment once, moves money onto the attempt and
    /// the transaction, and settles, fails or leaves the attempt live as the answer says.
    pub(super) async fn apply_check(
        &self,
        attempt_id: &str,
        check: CheckResult,
    ) -> Result<Attempt, EngineError> {
        let id = attempt_id.to_owned();
        self.write(move |tx, changes| apply_check_in(tx, changes, &id, &check))
            .await
    }

    /// Fails an attempt that is still open, recording why; a closed one is left as it is.
    pub(super) async fn fail_attempt(
        &self,
        attempt_id: &str,
        failure: Failure,
    ) -> Result<Attempt, EngineError> {
        let id = attempt_id.to_owned();
        self.write(move |tx, changes| {
            let (transaction, mut attempt) = load_pair_in(tx, &id)?;
            if attempt.status.is_open() {
                attempt.failure = Some(failure);
                attempt.transition_to(AttemptStatus::Fail, Timestamp::now())?;
                tx.update_attempt(&attempt)?;
                changes.attempt(&attempt);
                changes.transaction(&transaction);
            }
            Ok(attempt)
        })
        .await
    }

    async fn step_refund(&self, refund: Attempt) -> Result<Step, StepError> {
        if !refund.status.is_open() {
            return Ok(Step::Done);
        }
        self.send_refund(&refund.id).await?;
        Ok(Step::Done)
    }

    async fn step_cancel(&self, cancel: Attempt) -> Result<Step, StepError> {
        if !cancel.status.is_open() {
            return Ok(Step::Done);
        }
        let Some(parent_id) = cancel.parent_id.clone() else {
            return Ok(Step::Done);
        };
        // The parent's lock is taken inside; this attempt's lock is held by `step`.
        self.finish_cancel(&parent_id, &cancel.id, None).await?;
        Ok(Step::Done)
    }
}

/// A supervisor step failed: a provider error (for back-off) or anything else.
#[derive(Debug, thiserror::Error)]
pub(super) enum StepError {
    #[error(transparent)]
    Provider(ProviderError),
    #[error(transparent)]
    Engine(EngineError),
}

impl From<ProviderError> for StepError {
    fn from(error: ProviderError) -> Self {
        StepError::Provider(error)
    }
}

impl From<EngineError> for StepError {
    fn from(error: EngineError) -> Self {
        StepError::Engine(error)
    }
}

/// The store step of [`Engine::apply_check`].
fn apply_check_in(
    tx: &Tx<'_>,
    changes: &mut Changes,
    attempt_id: &str,
    check: &CheckResult,
) -> Result<Attempt, EngineError> {
    let (mut transaction, mut attempt) = load_pair_in(tx, attempt_id)?;
    let before = (transaction.clone(), attempt.clone());
    let now = Timestamp::now();
    let mut received = Decimal::ZERO;
    for payment in &check.payments {
        let result = PaymentResult {
            attempt_id: attempt.id.clone(),
            provider: attempt.provider.clone(),
            provider_payment_id: payment.payment_id.clone(),
            amount: payment.amount,
            paid_at: payment.paid_at,
            observed_at: now,
        };
        if tx.insert_payment_result(&result)? {
            received += payment.amount;
            tracing::info!(
                attempt_id = %attempt.id,
                transaction_id = %transaction.id,
                provider = %attempt.provider,
                payment_id = %payment.payment_id,
                amount = %payment.amount,
                "payment received"
            );
        }
    }
    attempt.paid += received;
    transaction.paid += received;

    let fully_paid = attempt.paid >= attempt.amount;
    let target = match (&check.state, attempt.status) {
        (_, status) if fully_paid && status != AttemptStatus::Fail => Some(AttemptStatus::Success),
        (InvoiceState::Paid, status)
            if status != AttemptStatus::Fail && attempt.paid > Decimal::ZERO =>
        {
            Some(AttemptStatus::Success)
        }
        (
            InvoiceState::Failed { .. } | InvoiceState::Closed,
            AttemptStatus::New | AttemptStatus::Sent,
        ) if attempt.paid > Decimal::ZERO => Some(AttemptStatus::Success),
        (InvoiceState::Failed { code, message }, AttemptStatus::New | AttemptStatus::Sent) => {
            attempt.failure = Some(Failure {
                code: code.clone(),
                message: message.clone(),
            });
            Some(AttemptStatus::Fail)
        }
        (InvoiceState::Closed, AttemptStatus::New | AttemptStatus::Sent) => {
            Some(AttemptStatus::Expired)
        }
        (_, AttemptStatus::Expired) if received > Decimal::ZERO => Some(AttemptStatus::Success),
        _ => None,
    };
    if let Some(target) = target
        && target != attempt.status
    {
        attempt.transition_to(target, now)?;
        if target == AttemptStatus::Expired {
            tx.append_outbox(
                &transaction.id,
                OutboxKind::AttemptExpired,
                &attempt_event(&transaction, &attempt, now),
                now,
            )?;
        }
    }
    if matches!(
        check.state,
        InvoiceState::Paid | InvoiceState::Closed | InvoiceState::Failed { .. }
    ) || fully_paid
    {
        // Paid in full, closed or failed at the provider: nothing more can arrive.
        attempt.provider_open = false;
    }

    if received > Decimal::ZERO {
        let target = status_for_money(transaction.total, transaction.paid);
        if transaction.status.check_transition(target).is_ok() {
            transaction.transition_to(target, now)?;
        } else {
            // Money on a cancelled transaction: it is recorded (it is real), and the merchant
            // must refund it. Loudly.
            tracing::error!(
                transaction_id = %transaction.id,
                attempt_id = %attempt.id,
                status = %transaction.status,
                amount = %received,
                "money arrived for a transaction that can no longer take it; refund it"
            );
            transaction.updated_at = now;
        }
        append_money_event(tx, &transaction, &attempt, received, now)?;
        tx.update_transaction(&transaction)?;
    }
    if (transaction.clone(), attempt.clone()) != before {
        if attempt != before.1 {
            attempt.updated_at = now;
        }
        tx.update_attempt(&attempt)?;
        changes.attempt(&attempt);
        changes.transaction(&transaction);
    }
    Ok(attempt)
}

/// Queues the outbox event for money received: settled, or partially paid.
pub(super) fn append_money_event(
    tx: &Tx<'_>,
    transaction: &Transaction,
    attempt: &Attempt,
    received: Decimal,
    at: Timestamp,
) -> Result<(), EngineError> {
    let kind = if transaction.status == TransactionStatus::Settled {
        OutboxKind::TransactionSettled
    } else {
        OutboxKind::TransactionPartiallyPaid
    };
    let payload = serde_json::json!({
        "transaction_id": transaction.id,
        "transaction_number": transaction.number,
        "source": {
            "type": transaction.source.kind,
            "id": transaction.source.id,
            "uid": transaction.source.uid,
        },
        "status": transaction.status.code(),
        "currency": transaction.currency.code(),
        "total": format_amount(transaction.total),
        "paid": format_amount(transaction.paid),
        "received": format_amount(received),
        "attempt_id": attempt.id,
        "attempt_code": attempt.code,
        "provider": attempt.provider,
        "method": attempt.method,
        "at": at.to_rfc3339(),
    });
    tx.append_outbox(&transaction.id, kind, &payload, at)?;
    Ok(())
}

fn attempt_event(transaction: &Transaction, attempt: &Attempt, at: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "transaction_id": transaction.id,
        "transaction_number": transaction.number,
        "attempt_id": attempt.id,
        "attempt_code": attempt.code,
        "provider": attempt.provider,
        "amount": format_amount(attempt.amount),
        "status": attempt.status.code(),
        "at": at.to_rfc3339(),
    })
}
