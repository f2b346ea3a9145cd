//! Money the cashier takes outside any provider (MQ-Pay's system IPN): cash, and transfers to
//! the merchant's own account that no gateway reports. Records `tendered` and answers the
//! `change`.

use rust_decimal::Decimal;

use super::checkout::{load_pair_in, new_attempt};
use super::error::amount_error;
use super::money::{record_money, refund_overpayment};
use super::{
    Changes, ConfirmReply, ConfirmRequest, Engine, EngineError, METHOD_CASH, SYSTEM_PROVIDER,
    Stamp, Target,
};
use crate::domain::model::{MAX_ID_LEN, MAX_NOTE_LEN, check_id};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, PaymentResult, Transaction, TransactionStatus, check_text,
    parse_amount,
};
use crate::providers::Provider;
use crate::store::Tx;

impl Engine {
    /// Records money the cashier took outside any provider (MQ-Pay's system IPN).
    pub async fn confirm_system_payment(
        &self,
        request: ConfirmRequest,
    ) -> Result<ConfirmReply, EngineError> {
        if let Some(note) = &request.note {
            check_text("note", note, MAX_NOTE_LEN)?;
        }
        match &request.target {
            Target::Attempt(id) => check_id("attempt_id", id, MAX_ID_LEN)?,
            Target::Transaction(id) => check_id("transaction_id", id, MAX_ID_LEN)?,
        }
        let request = ConfirmRequest {
            target: self.resolve_target(request.target).await?,
            ..request
        };
        // The grammar is checked before anything is looked up; the currency's decimal places
        // once the transaction is known.
        crate::domain::parse_decimal(&request.tendered).map_err(|e| amount_error("tendered", e))?;
        // Besides cash attempts, the cashier confirms the attempts of providers that no gateway
        // reports (a VietQR transfer to the merchant's own account). A confirmation of an
        // attempt holds that attempt's lock, so a cancel of it comes wholly before or after.
        let (handle, cashier_confirms, refunder) = match &request.target {
            Target::Attempt(id) => {
                let (_, attempt) = self.load_pair(id).await?;
                let cashier_confirms = self
                    .inner
                    .providers
                    .get(&attempt.provider)
                    .is_some_and(|p| p.confirmed_by_cashier());
                (
                    Some(self.handle(id)),
                    cashier_confirms,
                    self.refunder(&attempt.provider),
                )
            }
            Target::Transaction(id) => {
                // Earlier QR invoices that may still take money are closed first, so the
                // customer cannot pay twice; if the provider cannot be reached, the cash is
                // taken all the same and late money on them becomes an overpayment.
                let view = self.get_transaction(id).await?;
                for stale in view
                    .attempts
                    .iter()
                    .filter(|a| a.may_take_money() && !a.status.is_open())
                {
                    self.close_stale(stale).await;
                }
                (None, false, None)
            }
        };
        let guard = match &handle {
            Some(handle) => Some(handle.lock.lock().await),
            None => None,
        };
        let stamp = self.stamp();
        let attempt_id = match &request.target {
            Target::Attempt(id) if cashier_confirms => Some(id.clone()),
            _ => None,
        };
        let reply = self
            .write(move |tx, changes| {
                confirm_in(
                    tx,
                    changes,
                    request,
                    cashier_confirms,
                    refunder.as_deref(),
                    &stamp,
                )
            })
            .await?;
        drop(guard);
        if let Some(id) = attempt_id {
            // A confirmed transfer ends its QR: the supervisor closes it now rather than at its
            // next look, a minute away, so `OpenAttempts` says at once that nothing is payable.
            self.nudge(&id);
        }
        Ok(reply)
    }
}

/// The store step of a cash confirmation.
fn confirm_in(
    tx: &Tx<'_>,
    changes: &mut Changes,
    request: ConfirmRequest,
    cashier_confirms: bool,
    refunder: Option<&dyn Provider>,
    stamp: &Stamp,
) -> Result<ConfirmReply, EngineError> {
    let now = stamp.now;
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
            // A transfer the cashier sees after the QR expired is late money on that attempt:
            // it is recorded, never lost, and the drawer reconciles. A cancelled attempt is not
            // confirmed: the cancel won, and the cashier was told so.
            let late_transfer = cashier_confirms && attempt.status == AttemptStatus::Expired;
            if !attempt.status.is_open() && !late_transfer {
                return Err(EngineError::InvalidTransactionStatus(format!(
                    "attempt {} is already {}",
                    attempt.code, attempt.status
                )));
            }
            if attempt.provider == SYSTEM_PROVIDER && !takes_money(&transaction) {
                return Err(EngineError::InvalidTransactionStatus(format!(
                    "transaction {} is {} and takes no more money; give the cash back",
                    transaction.number, transaction.status
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
            if !takes_money(&transaction) {
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
                        stamp,
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
    // Cash beyond what is due goes back as change. A transfer is money already in the
    // merchant's account: all of it up to the attempt's amount is recorded, and what the sale
    // did not need becomes an overpayment.
    let due = if attempt.provider == SYSTEM_PROVIDER {
        attempt.amount.min(transaction.remaining())
    } else {
        (attempt.amount - attempt.paid).max(Decimal::ZERO)
    };
    let taken = tendered.min(due);
    let change = tendered - taken;
    attempt.tendered = Some(tendered);
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
    let excess = record_money(tx, changes, &mut transaction, &mut attempt, taken, now)?;
    tx.update_attempt(&attempt)?;
    changes.attempt(&attempt, &transaction);
    refund_overpayment(tx, changes, &transaction, &attempt, excess, refunder, stamp)?;
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

/// Whether the transaction still takes money from the till.
fn takes_money(transaction: &Transaction) -> bool {
    matches!(
        transaction.status,
        TransactionStatus::New | TransactionStatus::Partial
    )
}
