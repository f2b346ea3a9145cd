//! Money arriving on a payment attempt: the one place that adds it up, decides how much of it
//! the sale did not need (an overpayment), moves the transaction's status, and refunds an
//! overpayment automatically where the provider can. (The outbox events are the store's: its
//! triggers queue one for every change written, in the same SQL transaction.)
//!
//! Nothing here drops money. Arithmetic is checked (an amount near `Decimal::MAX` is an error,
//! never a panic), amounts a provider reports are checked before they are used, and money that
//! arrives for a settled or cancelled transaction is recorded as `overpaid`.

use rust_decimal::Decimal;

use super::checkout::new_attempt;
use super::{Changes, EngineError, Stamp};
use crate::domain::{
    Attempt, AttemptStatus, AttemptType, Currency, Timestamp, Transaction, TransactionStatus,
    format_for_display, status_for_money,
};
use crate::providers::{Provider, ProviderPayment};
use crate::store::Tx;

/// The largest single payment a provider may report, in the currency's major unit: far above
/// any sale a terminal makes, far below where sums could overflow.
const PROVIDER_AMOUNT_CEILING: i64 = 1_000_000_000_000;

/// The note of a refund qrpayd makes by itself for an overpayment.
pub(super) const OVERPAYMENT_REFUND_NOTE: &str = "overpayment, refunded automatically";

/// Checks an amount a provider reported before it is used: positive, in the currency's
/// decimal places, and below a sane ceiling. The error is one sentence for the log and the
/// failure.
pub(super) fn check_provider_amount(
    payment: &ProviderPayment,
    currency: Currency,
) -> Result<(), EngineError> {
    let amount = payment.amount;
    let problem = if amount <= Decimal::ZERO {
        Some("is not positive")
    } else if amount.normalize().scale() > currency.decimals() {
        Some("has more decimal places than the currency")
    } else if amount > Decimal::from(PROVIDER_AMOUNT_CEILING) {
        Some("is beyond any plausible payment")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => {
            tracing::error!(
                payment_id = %payment.payment_id,
                amount = %amount,
                currency = %currency.code(),
                "the provider reported a payment amount that {problem}; it was not recorded"
            );
            Err(EngineError::ProviderRejected {
                code: "INVALID_PROVIDER_AMOUNT".to_owned(),
                message: format!(
                    "the provider reported payment {} with the amount {amount}, which {problem}",
                    payment.payment_id
                ),
            })
        }
    }
}

/// `a + b`, or an error naming what overflowed.
pub(super) fn add(a: Decimal, b: Decimal, what: &str) -> Result<Decimal, EngineError> {
    a.checked_add(b)
        .ok_or_else(|| EngineError::ProviderRejected {
            code: "AMOUNT_OVERFLOW".to_owned(),
            message: format!("{what} would overflow"),
        })
}

/// Adds `received` to the attempt and its transaction, records how much of it the sale did not
/// need, moves the transaction's status (a cancelled one stays cancelled: the money is an
/// overpayment) and writes the transaction (its outbox event comes with it). The attempt's own status
/// is the caller's, and so is writing the attempt. Returns the overpaid part.
pub(super) fn record_money(
    tx: &Tx<'_>,
    changes: &mut Changes,
    transaction: &mut Transaction,
    attempt: &mut Attempt,
    received: Decimal,
    now: Timestamp,
) -> Result<Decimal, EngineError> {
    if received <= Decimal::ZERO {
        return Ok(Decimal::ZERO);
    }
    let excess = transaction.excess_of(received);
    attempt.paid = add(attempt.paid, received, "the attempt's paid amount")?;
    attempt.overpaid = add(attempt.overpaid, excess, "the attempt's overpaid amount")?;
    transaction.paid = add(transaction.paid, received, "the transaction's paid amount")?;
    transaction.overpaid = add(
        transaction.overpaid,
        excess,
        "the transaction's overpaid amount",
    )?;
    transaction.updated_at = now;
    if matches!(
        transaction.status,
        TransactionStatus::New | TransactionStatus::Partial
    ) {
        transaction.transition_to(status_for_money(transaction.total, transaction.paid), now)?;
    }
    if excess > Decimal::ZERO {
        tracing::warn!(
            attempt_id = %attempt.id,
            transaction_id = %transaction.id,
            provider = %attempt.provider,
            status = %transaction.status,
            overpaid = %excess,
            "money arrived that the sale did not need; it is recorded as an overpayment"
        );
    }
    tx.update_transaction(transaction)?;
    changes.transaction(transaction);
    Ok(excess)
}

/// Refunds `excess` of a successful payment attempt automatically, when the daemon is set to and
/// the provider can refund that amount: the refund attempt is recorded with the money, so a
/// crash before it is sent leaves it for the supervisor. Otherwise the overpayment stays listed
/// (`ListTransactions` with `overpaid`) for the merchant.
pub(super) fn refund_overpayment(
    tx: &Tx<'_>,
    changes: &mut Changes,
    transaction: &Transaction,
    attempt: &Attempt,
    excess: Decimal,
    provider: Option<&dyn Provider>,
    stamp: &Stamp,
) -> Result<Option<Attempt>, EngineError> {
    if excess <= Decimal::ZERO || attempt.status != AttemptStatus::Success {
        return Ok(None);
    }
    let leave = |why: &str| {
        tracing::warn!(
            attempt_id = %attempt.id,
            transaction_id = %transaction.id,
            provider = %attempt.provider,
            overpaid = %excess,
            "the overpayment is not refunded automatically ({why}); refund it, or list it with \
             qrpayctl list --overpaid"
        );
        Ok(None)
    };
    let Some(provider) = provider else {
        return leave("automatic refunds are off, or the provider refunds nothing");
    };
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
    let amount = excess.min(attempt.refundable() - in_flight);
    if amount <= Decimal::ZERO {
        return leave("nothing is left to refund on the attempt");
    }
    let payments: Vec<ProviderPayment> = tx
        .payment_results_of(&attempt.id)?
        .into_iter()
        .map(|p| ProviderPayment {
            payment_id: p.provider_payment_id,
            amount: p.amount,
            paid_at: p.paid_at,
        })
        .collect();
    if let Err(why) = provider.check_refund(amount, &payments) {
        return leave(&why);
    }
    let mut refund = new_attempt(
        tx,
        transaction,
        AttemptType::RefundPayment,
        &attempt.provider,
        &attempt.method,
        amount,
        Some(attempt.id.clone()),
        stamp,
    )?;
    refund.note = Some(OVERPAYMENT_REFUND_NOTE.to_owned());
    tx.insert_attempt(&refund)?;
    changes.attempt(&refund, transaction);
    changes.supervise(&refund.id);
    tracing::info!(
        attempt_id = %refund.id,
        transaction_id = %transaction.id,
        provider = %refund.provider,
        amount = %format_for_display(amount, transaction.currency),
        "refunding an overpayment automatically"
    );
    Ok(Some(refund))
}
