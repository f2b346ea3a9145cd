//! Refunds: a `300_REFUND_PAYMENT` child of a successful payment attempt, at most what was paid
//! minus what was refunded or is being refunded, sent to the provider with the refund's own key.

use rust_decimal::Decimal;
use tracing::Instrument;

use super::checkout::{load_pair_in, new_attempt};
use super::error::amount_error;
use super::{Engine, EngineError, RefundReply, RefundRequest, SYSTEM_PROVIDER};
use crate::domain::model::{MAX_ID_LEN, MAX_NOTE_LEN};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Failure, OutboxKind, Timestamp, check_text, format_amount,
    format_for_display, parse_amount,
};
use crate::logging;
use crate::providers::{ProviderError, ProviderPayment};

impl Engine {
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
}
