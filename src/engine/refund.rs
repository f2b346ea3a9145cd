//! Refunds: a `300_REFUND_PAYMENT` child of a successful payment attempt, at most what was paid
//! minus what was refunded or is being refunded, sent to the provider with the refund's own key.

use rust_decimal::Decimal;
use tracing::Instrument;

use super::checkout::{load_pair_in, new_attempt};
use super::error::amount_error;
use super::money::add;
use super::{Changes, Engine, EngineError, RefundReply, RefundRequest, SYSTEM_PROVIDER, Stamp};
use crate::domain::model::{MAX_ID_LEN, MAX_NOTE_LEN, check_id};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Failure, Timestamp, check_text, format_amount,
    format_for_display, parse_amount,
};
use crate::logging;
use crate::providers::{ProviderError, ProviderPayment};
use crate::store::Tx;

impl Engine {
    /// Refunds part or all of a successful payment attempt. Safe to repeat with the same
    /// `request_id`: the same refund is answered, never a second one. A refund whose outcome is
    /// unknown (the provider unreachable) is answered `204_SENT` and finished by its supervisor,
    /// which repeats it with the same key; its `AttemptChanged` follows.
    pub async fn refund(&self, request: RefundRequest) -> Result<RefundReply, EngineError> {
        check_id("attempt_id", &request.attempt_id, MAX_ID_LEN)?;
        let request = RefundRequest {
            attempt_id: self.attempt_id_of(&request.attempt_id).await?,
            ..request
        };
        if let Some(reason) = &request.reason {
            check_text("reason", reason, MAX_NOTE_LEN)?;
        }
        if let Some(request_id) = &request.request_id {
            check_id("request_id", request_id, MAX_ID_LEN)?;
        }
        let amount =
            crate::domain::parse_decimal(&request.amount).map_err(|e| amount_error("amount", e))?;
        if let Some(request_id) = request.request_id.clone() {
            let existing = self
                .read(move |tx| Ok(tx.attempt_by_request(&request_id)?))
                .await?;
            if let Some(existing) = existing {
                return self.repeated_refund(existing, &request, amount);
            }
        }
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
        let stamp = self.stamp();
        let recorded = {
            let request = request.clone();
            self.write(move |tx, changes| record_refund(tx, changes, request, &stamp))
                .await?
        };
        let refund = match recorded {
            Recorded::Existing(existing) => {
                return self.repeated_refund(existing, &request, amount);
            }
            Recorded::New(refund) => refund,
        };
        let handle = self.handle(&refund.id);
        let guard = handle.lock.lock().await;
        let span = logging::attempt_span(&refund.transaction_id, &refund.id, &refund.provider);
        let result = self.send_refund(&refund.id).instrument(span).await;
        drop(guard);
        let (refund, unknown) = result?;
        if let Some(error) = unknown {
            tracing::warn!(
                attempt_id = %refund.id,
                %error,
                "the refund's outcome is unknown; it is repeated with the same key until known"
            );
            self.supervise(&refund.id);
        }
        Ok(RefundReply { refund })
    }

    /// The answer to a `request_id` seen before: the refund it made, as it stands now, if the
    /// request is the same one; a different request under the same id is refused.
    fn repeated_refund(
        &self,
        existing: Attempt,
        request: &RefundRequest,
        amount: Decimal,
    ) -> Result<RefundReply, EngineError> {
        let same = existing.kind == AttemptType::RefundPayment
            && existing.parent_id.as_deref() == Some(request.attempt_id.as_str())
            && existing.amount == amount;
        if !same {
            return Err(EngineError::InvalidArgument(format!(
                "request_id {} was already used for {} {} of {}; use a new request_id for a \
                 different refund",
                request.request_id.as_deref().unwrap_or_default(),
                existing.kind,
                existing.code,
                format_amount(existing.amount)
            )));
        }
        if existing.status.is_open() {
            // Someone must be finishing it (after a restart, the resumed supervisor is).
            self.supervise(&existing.id);
        }
        Ok(RefundReply { refund: existing })
    }

    /// Sends a recorded refund to its provider and records the outcome. Safe to repeat: the
    /// provider refunds a key once. Holds the refund's lock (taken by the caller).
    ///
    /// Returns the refund as it stands, with the provider's error when the outcome is unknown
    /// (the refund is then `204_SENT`, to be repeated with the same key). A final refusal (the
    /// provider refused, or does not know the payment) fails the refund, releasing its amount,
    /// and is an error.
    pub(super) async fn send_refund(
        &self,
        refund_id: &str,
    ) -> Result<(Attempt, Option<ProviderError>), EngineError> {
        let (transaction, refund) = self.load_pair(refund_id).await?;
        if !refund.status.is_open() {
            return Ok((refund, None));
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
        let now = self.now();
        match outcome {
            Ok(reference) => {
                let refund = self
                    .write(move |tx, changes| record_refunded(tx, changes, &id, reference, now))
                    .await?;
                Ok((refund, None))
            }
            Err(error) if error.is_final() => {
                let failure = match &error {
                    ProviderError::Rejected { code, message } => Failure {
                        code: code.clone(),
                        message: message.clone(),
                    },
                    other => Failure {
                        code: "NOT_FOUND".to_owned(),
                        message: other.to_string(),
                    },
                };
                self.fail_attempt(&id, failure).await?;
                Err(EngineError::from(error))
            }
            Err(error) => {
                // Sent, outcome unknown: `204_SENT` until a repeat with the same key settles it.
                let refund = self
                    .write(move |tx, changes| {
                        let (transaction, mut refund) = load_pair_in(tx, &id)?;
                        if refund.status == AttemptStatus::New {
                            refund.transition_to(AttemptStatus::Sent, now)?;
                            tx.update_attempt(&refund)?;
                            changes.attempt(&refund, &transaction);
                        }
                        Ok(refund)
                    })
                    .await?;
                Ok((refund, Some(error)))
            }
        }
    }
}

/// What the store step of a refund found or made.
enum Recorded {
    /// The `request_id` made this attempt before (a concurrent repeat got there first).
    Existing(Attempt),
    New(Attempt),
}

/// The store step of a refund: MQ-Pay's rules, then the refund attempt.
fn record_refund(
    tx: &Tx<'_>,
    changes: &mut Changes,
    request: RefundRequest,
    stamp: &Stamp,
) -> Result<Recorded, EngineError> {
    if let Some(request_id) = &request.request_id
        && let Some(existing) = tx.attempt_by_request(request_id)?
    {
        return Ok(Recorded::Existing(existing));
    }
    let (transaction, attempt) = load_pair_in(tx, &request.attempt_id)?;
    if attempt.kind != AttemptType::Payment || attempt.status != AttemptStatus::Success {
        return Err(EngineError::AttemptNotSuccess(format!(
            "attempt {} is a {} in {}; only a 302_SUCCESS payment can be refunded",
            attempt.code, attempt.kind, attempt.status
        )));
    }
    let amount = parse_amount(&request.amount, transaction.currency, None)
        .map_err(|e| amount_error("amount", e))?;
    let pending: Vec<Attempt> = tx
        .attempts_of(&transaction.id)?
        .into_iter()
        .filter(|a| {
            a.kind == AttemptType::RefundPayment
                && a.parent_id.as_deref() == Some(attempt.id.as_str())
                && a.status.is_open()
        })
        .collect();
    if request.request_id.is_none()
        && let Some(same) = pending.iter().find(|a| a.amount == amount)
    {
        // Most likely the till repeating a refund whose answer it did not trust: refunding
        // again would give the customer the money twice.
        return Err(EngineError::InvalidTransactionStatus(format!(
            "refund {} of {} on attempt {} is still pending ({}); its AttemptChanged will say \
             how it ends. To repeat a refund safely, send it with a request_id",
            same.code,
            format_for_display(same.amount, transaction.currency),
            attempt.code,
            same.status
        )));
    }
    let in_flight: Decimal = pending.iter().map(|a| a.amount).sum();
    let remaining = attempt.refundable() - in_flight;
    if amount > remaining {
        return Err(EngineError::RefundExceedsRemaining(format!(
            "{} exceeds what is left to refund on attempt {}: {}",
            format_for_display(amount, transaction.currency),
            attempt.code,
            format_for_display(remaining.max(Decimal::ZERO), transaction.currency)
        )));
    }
    let mut refund = new_attempt(
        tx,
        &transaction,
        AttemptType::RefundPayment,
        &attempt.provider,
        &attempt.method,
        amount,
        Some(attempt.id.clone()),
        stamp,
    )?;
    refund.note = request.reason;
    refund.request_id = request.request_id;
    tx.insert_attempt(&refund)?;
    changes.attempt(&refund, &transaction);
    Ok(Recorded::New(refund))
}

/// The store step of a refund the provider confirmed.
fn record_refunded(
    tx: &Tx<'_>,
    changes: &mut Changes,
    refund_id: &str,
    reference: String,
    now: Timestamp,
) -> Result<Attempt, EngineError> {
    let (mut transaction, mut refund) = load_pair_in(tx, refund_id)?;
    if !refund.status.is_open() {
        return Ok(refund);
    }
    let parent_id = refund.parent_id.clone().unwrap_or_default();
    let (_, mut parent) = load_pair_in(tx, &parent_id)?;
    refund.invoice_id = Some(reference);
    refund.transition_to(AttemptStatus::Success, now)?;
    parent.refunded = add(
        parent.refunded,
        refund.amount,
        "the attempt's refunded amount",
    )?;
    parent.updated_at = now;
    transaction.refunded = add(
        transaction.refunded,
        refund.amount,
        "the transaction's refunded amount",
    )?;
    transaction.updated_at = now;
    tx.update_attempt(&refund)?;
    tx.update_attempt(&parent)?;
    tx.update_transaction(&transaction)?;
    changes.attempt(&refund, &transaction);
    changes.attempt(&parent, &transaction);
    changes.transaction(&transaction);
    tracing::info!(
        attempt_id = %refund.id,
        transaction_id = %transaction.id,
        provider = %refund.provider,
        amount = %refund.amount,
        "refund succeeded"
    );
    Ok(refund)
}
