//! Cancelling: one payment attempt (a `200_CANCEL_PAYMENT` child attempt that closes the
//! invoice at the provider), or a whole transaction with every attempt that may still take money.
//!
//! MQ-Pay's rules: the cancelled payment attempt ends `500_FAIL` (`CANCELLED`) and the transaction
//! goes back to `100_NEW` unless money arrived; a cancelled transaction ends `505_CANCELLED`, and
//! one holding money that was not refunded cannot be cancelled.

use rust_decimal::Decimal;
use tracing::Instrument;

use super::checkout::{load_pair_in, new_attempt};
use super::supervisor::Closing;
use super::{CancelReply, Engine, EngineError, SYSTEM_PROVIDER, Target};
use crate::domain::model::{MAX_ID_LEN, MAX_NOTE_LEN, check_id};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Failure, Transaction, TransactionStatus, check_text,
    format_for_display,
};
use crate::logging;

impl Engine {
    /// Cancels one payment attempt, or a whole transaction with every attempt that may still
    /// take money.
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
                check_id("attempt_id", &attempt_id, MAX_ID_LEN)?;
                let attempt_id = self.attempt_id_of(&attempt_id).await?;
                let cancel = self.cancel_attempt(&attempt_id, reason).await?;
                let (transaction, _) = self.load_pair(&attempt_id).await?;
                Ok(CancelReply {
                    transaction,
                    cancelled: vec![cancel],
                })
            }
            Target::Transaction(id) => {
                check_id("transaction_id", &id, MAX_ID_LEN)?;
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
        for attempt in view.attempts.iter().filter(|a| a.may_take_money()) {
            if attempt.status.is_open() {
                cancelled.push(self.cancel_attempt(&attempt.id, reason.clone()).await?);
            } else {
                self.close_stale(attempt).await;
            }
        }
        let id = transaction.id.clone();
        let now = self.now();
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
                transaction.transition_to(TransactionStatus::Cancelled, now)?;
                tx.update_transaction(&transaction)?;
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

    /// Tries once, now, to close the invoice of an attempt that is no longer open but may still
    /// take money (an expired QR whose close has not gone through), before the till takes the
    /// money another way. A shop cannot stop selling: if the provider cannot be reached, the
    /// attempt's supervisor keeps trying, and money that still arrives on it is recorded as an
    /// overpayment (and refunded where the provider can).
    pub(super) async fn close_stale(&self, attempt: &Attempt) {
        let handle = self.handle(&attempt.id);
        let closed = {
            let _guard = handle.lock.lock().await;
            let span =
                logging::attempt_span(&attempt.transaction_id, &attempt.id, &attempt.provider);
            async {
                let (_, attempt) = self.load_pair(&attempt.id).await?;
                match attempt.invoice_id.clone() {
                    Some(invoice_id) if !attempt.status.is_open() && attempt.provider_open => {
                        self.close_invoice(&attempt, &invoice_id).await.map(Some)
                    }
                    _ => Ok(None),
                }
            }
            .instrument(span)
            .await
        };
        match closed {
            Ok(Some(Closing::StillPayable)) | Err(_) => {
                if let Err(error) = closed {
                    tracing::warn!(
                        attempt_id = %attempt.id,
                        transaction_id = %attempt.transaction_id,
                        %error,
                        "an earlier invoice could not be closed now; going ahead (money that \
                         still arrives on it will be an overpayment)"
                    );
                }
                self.supervise(&attempt.id);
            }
            Ok(_) => {}
        }
    }

    /// Cancels one open payment attempt: records the cancel attempt, closes the invoice at the
    /// provider, then marks both.
    pub(super) async fn cancel_attempt(
        &self,
        attempt_id: &str,
        reason: Option<String>,
    ) -> Result<Attempt, EngineError> {
        let id = attempt_id.to_owned();
        let note = reason.clone();
        let stamp = self.stamp();
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
                    return Err(not_cancellable(&attempt));
                }
                let mut cancel = new_attempt(
                    tx,
                    &transaction,
                    AttemptType::CancelPayment,
                    &attempt.provider,
                    &attempt.method,
                    attempt.amount,
                    Some(attempt.id.clone()),
                    &stamp,
                )?;
                cancel.note = note;
                tx.insert_attempt(&cancel)?;
                changes.attempt(&cancel, &transaction);
                Ok(cancel)
            })
            .await?;
        let handle = self.handle(&cancel.id);
        let _guard = handle.lock.lock().await;
        let span = logging::attempt_span(&cancel.transaction_id, &cancel.id, &cancel.provider);
        self.finish_cancel(attempt_id, &cancel.id, reason)
            .instrument(span)
            .await
    }

    /// Closes the parent's invoice and records the cancel's outcome. Safe to repeat: the
    /// provider treats a second cancel as done. Holds the parent's lock, so a cash confirmation
    /// or a check of the same attempt happens wholly before or wholly after it: whichever comes
    /// first wins, and a cancel of an attempt that was just paid is refused.
    pub(super) async fn finish_cancel(
        &self,
        parent_id: &str,
        cancel_id: &str,
        reason: Option<String>,
    ) -> Result<Attempt, EngineError> {
        let handle = self.handle(parent_id);
        let _guard = handle.lock.lock().await;
        let (_, parent) = self.load_pair(parent_id).await?;
        if !parent.status.is_open() {
            return self.cancel_refused(&parent, cancel_id).await;
        }
        let closing = if parent.provider == SYSTEM_PROVIDER {
            Ok(Closing::Closed)
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
                Ok(None) => Ok(Closing::Closed),
                Err(error) => Err(EngineError::from(error)),
            }
        } else {
            Ok(Closing::Closed)
        };
        let cancel_key = cancel_id.to_owned();
        match closing {
            Ok(Closing::Closed | Closing::StillPayable) => {
                let parent_key = parent_id.to_owned();
                let now = self.now();
                let cancelled = self
                    .write(move |tx, changes| {
                        let (transaction, mut parent) = load_pair_in(tx, &parent_key)?;
                        let (_, mut cancel) = load_pair_in(tx, &cancel_key)?;
                        if !parent.status.is_open() {
                            // Paid in full by money the close found.
                            return Ok(None);
                        }
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
                        tx.update_attempt(&parent)?;
                        changes.attempt(&parent, &transaction);
                        cancel.transition_to(AttemptStatus::Success, now)?;
                        tx.update_attempt(&cancel)?;
                        changes.attempt(&cancel, &transaction);
                        tracing::info!(
                            attempt_id = %parent.id,
                            transaction_id = %transaction.id,
                            provider = %parent.provider,
                            "attempt cancelled"
                        );
                        Ok(Some((cancel, parent.provider_open)))
                    })
                    .await?;
                match cancelled {
                    Some((cancel, still_payable)) => {
                        if still_payable {
                            // The QR is off the screen, but the provider may still take money
                            // for it: its supervisor watches it.
                            self.supervise(parent_id);
                        }
                        Ok(cancel)
                    }
                    None => {
                        let (_, parent) = self.load_pair(parent_id).await?;
                        self.cancel_refused(&parent, cancel_id).await
                    }
                }
            }
            Ok(Closing::Paid) => {
                let (_, parent) = self.load_pair(parent_id).await?;
                self.cancel_refused(&parent, cancel_id).await
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

    /// The parent is no longer open (paid, expired or cancelled first): the cancel attempt
    /// fails, and the till is told what happened instead.
    async fn cancel_refused(
        &self,
        parent: &Attempt,
        cancel_id: &str,
    ) -> Result<Attempt, EngineError> {
        let failure = if parent.status == AttemptStatus::Success {
            Failure {
                code: "ALREADY_PAID".to_owned(),
                message: "the customer paid before the cancel reached the provider".to_owned(),
            }
        } else {
            Failure {
                code: "ALREADY_CLOSED".to_owned(),
                message: format!("the attempt was already {}", parent.status),
            }
        };
        self.fail_attempt(cancel_id, failure).await?;
        let transaction = self.load_transaction(&parent.transaction_id).await?;
        Err(match parent.status {
            AttemptStatus::Success => EngineError::InvalidTransactionStatus(format!(
                "attempt {} was paid before it could be cancelled; transaction {} is {}",
                parent.code, transaction.number, transaction.status
            )),
            _ => not_cancellable(parent),
        })
    }
}

/// Why an attempt that is not open cannot be cancelled.
fn not_cancellable(attempt: &Attempt) -> EngineError {
    EngineError::InvalidTransactionStatus(format!(
        "attempt {} is {} and cannot be cancelled{}",
        attempt.code,
        attempt.status,
        if attempt.status == AttemptStatus::Success {
            "; refund it instead"
        } else {
            ""
        }
    ))
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
