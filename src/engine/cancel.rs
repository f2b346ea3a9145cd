//! Cancelling: one payment attempt (a `200_CANCEL_PAYMENT` child attempt that closes the
//! invoice at the provider), or a whole transaction with every attempt that may still take money.
//!
//! MQ-Pay's rules: the cancelled payment attempt ends `500_FAIL` (`CANCELLED`) and the transaction
//! goes back to `100_NEW` unless money arrived; a cancelled transaction ends `505_CANCELLED`, and
//! one holding money that was not refunded cannot be cancelled.

use rust_decimal::Decimal;
use tracing::Instrument;

use super::checkout::{load_pair_in, new_attempt};
use super::{CancelReply, Engine, EngineError, SYSTEM_PROVIDER, Target};
use crate::domain::model::{MAX_ID_LEN, MAX_NOTE_LEN};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Failure, OutboxKind, Timestamp, Transaction,
    TransactionStatus, check_text, format_for_display,
};
use crate::logging;
use crate::providers::CancelOutcome;

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
