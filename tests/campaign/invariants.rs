//! What must hold after every step of a scenario, and what must hold once the world has healed
//! and time has run past every deadline. Each check reads the daemon's store and the simulated
//! provider's ledger (the truth about money) and returns the first violation it finds, in words.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;

use qrpayd::domain::{
    Attempt, AttemptStatus, AttemptType, PaymentResult, Timestamp, Transaction, TransactionFilter,
    TransactionStatus, status_for_money,
};
use qrpayd::providers::simulator::SimulatedInvoice;
use qrpayd::store::{Store, StoreError};

/// Everything the daemon recorded.
pub struct Records {
    pub transactions: Vec<Transaction>,
    pub attempts: Vec<Attempt>,
    pub payments: Vec<PaymentResult>,
    /// Outbox event kinds, by transaction.
    pub outbox: HashMap<String, Vec<String>>,
}

impl Records {
    pub fn read(store: &Store) -> Result<Records, String> {
        store
            .read(|tx| {
                let transactions = tx.list_transactions(&TransactionFilter {
                    limit: 100_000,
                    ..TransactionFilter::default()
                })?;
                // Three statements, however many records: this runs after every step.
                let attempts = tx.all_attempts()?;
                let payments = tx.all_payment_results()?;
                let mut outbox: HashMap<String, Vec<String>> = HashMap::new();
                for event in tx.pending_outbox(1_000_000)? {
                    outbox
                        .entry(event.transaction_id)
                        .or_default()
                        .push(event.kind);
                }
                Ok::<_, StoreError>(Records {
                    transactions,
                    attempts,
                    payments,
                    outbox,
                })
            })
            .map_err(|e| format!("the store cannot be read: {e}"))
    }

    fn attempts_of<'a>(
        &'a self,
        transaction: &'a Transaction,
    ) -> impl Iterator<Item = &'a Attempt> {
        self.attempts
            .iter()
            .filter(move |a| a.transaction_id == transaction.id)
    }

    fn payments_of<'a>(&'a self, attempt: &'a Attempt) -> impl Iterator<Item = &'a PaymentResult> {
        self.payments
            .iter()
            .filter(move |p| p.attempt_id == attempt.id)
    }

    fn children_of<'a>(
        &'a self,
        attempt: &'a Attempt,
        kind: AttemptType,
    ) -> impl Iterator<Item = &'a Attempt> {
        self.attempts
            .iter()
            .filter(move |a| a.kind == kind && a.parent_id.as_deref() == Some(attempt.id.as_str()))
    }
}

fn sum(amounts: impl Iterator<Item = Decimal>) -> Decimal {
    amounts.fold(Decimal::ZERO, |a, b| a + b)
}

/// How long past its deadline a live QR may stay live: the supervisor's step, not a back-off.
const EXPIRY_GRACE_MS: u64 = 2_000;

/// The invariants that hold at every step, faults and all. `now` is the virtual wall clock,
/// `open_attempts` what the daemon reports as `OpenAttempts`.
pub fn always(
    records: &Records,
    ledger: &[SimulatedInvoice],
    now: Timestamp,
    open_attempts: u32,
) -> Result<(), String> {
    let may_take_money = records
        .attempts
        .iter()
        .filter(|a| a.may_take_money())
        .count();
    if usize::try_from(open_attempts).ok() != Some(may_take_money) {
        return Err(format!(
            "OpenAttempts is {open_attempts} but {may_take_money} attempts may take money"
        ));
    }
    if let Some(late) = records.attempts.iter().find(|a| {
        a.status == AttemptStatus::Sent
            && a.kind == AttemptType::Payment
            && a.expires_at
                .is_some_and(|at| at.plus_millis(EXPIRY_GRACE_MS) < now)
    }) {
        return Err(format!(
            "{} is still live {} ms after its deadline",
            late.code,
            late.expires_at.map_or(0, |at| at.millis_until(now))
        ));
    }
    let mut sources = BTreeMap::new();
    for t in &records.transactions {
        if let Some(other) = sources.insert((&t.source.kind, &t.source.id), &t.number) {
            return Err(format!(
                "order {} has two transactions: {other} and {}",
                t.source.id, t.number
            ));
        }
        let payments: Vec<&Attempt> = records
            .attempts_of(t)
            .filter(|a| a.kind == AttemptType::Payment)
            .collect();
        let paid = sum(payments.iter().map(|a| a.paid));
        let recorded = sum(payments
            .iter()
            .flat_map(|a| records.payments_of(a))
            .map(|p| p.amount));
        if t.paid != paid || t.paid != recorded {
            return Err(format!(
                "{}: paid {} but its attempts received {paid} and its payment results add up \
                 to {recorded}",
                t.number, t.paid
            ));
        }
        let refunded = sum(payments.iter().map(|a| a.refunded));
        let refunds_done = sum(records
            .attempts_of(t)
            .filter(|a| a.kind == AttemptType::RefundPayment && a.status == AttemptStatus::Success)
            .map(|a| a.amount));
        if t.refunded != refunded || t.refunded != refunds_done {
            return Err(format!(
                "{}: refunded {} but its attempts say {refunded} and its successful refunds \
                 {refunds_done}",
                t.number, t.refunded
            ));
        }
        let overpaid = sum(payments.iter().map(|a| a.overpaid));
        if t.overpaid != overpaid {
            return Err(format!(
                "{}: overpaid {} but its attempts say {overpaid}",
                t.number, t.overpaid
            ));
        }
        if t.status != TransactionStatus::Cancelled && t.status != status_for_money(t.total, t.paid)
        {
            return Err(format!(
                "{} is {} with {} of {} paid",
                t.number, t.status, t.paid, t.total
            ));
        }
        let settled_events = records.outbox.get(&t.id).map_or(0, |kinds| {
            kinds.iter().filter(|k| *k == "transaction_settled").count()
        });
        let settled = t.status == TransactionStatus::Settled;
        if settled_events != usize::from(settled) {
            return Err(format!(
                "{} is {} and has {settled_events} transaction_settled events",
                t.number, t.status
            ));
        }
    }
    let by_key: HashMap<&str, &Attempt> = records
        .attempts
        .iter()
        .map(|a| (a.idempotency_key.as_str(), a))
        .collect();
    for attempt in records
        .attempts
        .iter()
        .filter(|a| a.kind == AttemptType::Payment)
    {
        if attempt.refunded > attempt.paid {
            return Err(format!(
                "{} refunded {} of {} paid",
                attempt.code, attempt.refunded, attempt.paid
            ));
        }
        let reserved = sum(records
            .children_of(attempt, AttemptType::RefundPayment)
            .filter(|r| r.status.is_open() || r.status == AttemptStatus::Success)
            .map(|r| r.amount));
        if reserved > attempt.paid {
            return Err(format!(
                "{}: refunds of {reserved} on {} paid",
                attempt.code, attempt.paid
            ));
        }
    }
    for invoice in ledger {
        let Some(attempt) = by_key.get(invoice.key.as_str()) else {
            return Err(format!(
                "the provider has invoice {} that no attempt made",
                invoice.invoice_id
            ));
        };
        for recorded in records.payments_of(attempt) {
            let real = invoice
                .payments
                .iter()
                .find(|(id, _)| *id == recorded.provider_payment_id);
            if real.map(|(_, amount)| *amount) != Some(recorded.amount) {
                return Err(format!(
                    "{} recorded payment {} of {} that the provider does not have",
                    attempt.code, recorded.provider_payment_id, recorded.amount
                ));
            }
        }
        if invoice.payable && !attempt.may_take_money() {
            return Err(format!(
                "invoice {} can still be paid at the provider, but {} ({}) is no longer watched",
                invoice.invoice_id, attempt.code, attempt.status
            ));
        }
        let refunds = records.children_of(attempt, AttemptType::RefundPayment);
        let (mut done, mut possible) = (Decimal::ZERO, Decimal::ZERO);
        for refund in refunds {
            if refund.status == AttemptStatus::Success {
                done += refund.amount;
            }
            if refund.status.is_open() || refund.status == AttemptStatus::Success {
                possible += refund.amount;
            }
        }
        if invoice.refunded < done || invoice.refunded > possible {
            return Err(format!(
                "the provider refunded {} on {}, qrpayd has {done} done and {possible} at most",
                invoice.refunded, attempt.code
            ));
        }
    }
    Ok(())
}

/// What holds once every fault is healed and time has run past every deadline: nothing open,
/// nothing lost, nothing pending.
pub fn settled(
    records: &Records,
    ledger: &[SimulatedInvoice],
    now: Timestamp,
    open_attempts: u32,
) -> Result<(), String> {
    always(records, ledger, now, open_attempts)?;
    // A cash attempt waits for the cashier as long as it takes; nothing else may be left open.
    if let Some(open) = records.attempts.iter().find(|a| {
        let waits_for_cashier = a.provider == "system" && a.kind == AttemptType::Payment;
        !waits_for_cashier
            && (a.may_take_money() || (a.kind != AttemptType::Payment && a.status.is_open()))
    }) {
        return Err(format!(
            "{} ({} {}) is still open long after every deadline",
            open.code, open.kind, open.status
        ));
    }
    let by_key: HashMap<&str, &SimulatedInvoice> =
        ledger.iter().map(|i| (i.key.as_str(), i)).collect();
    for attempt in records
        .attempts
        .iter()
        .filter(|a| a.kind == AttemptType::Payment)
    {
        let Some(invoice) = by_key.get(attempt.idempotency_key.as_str()) else {
            continue;
        };
        let held = sum(invoice.payments.iter().map(|(_, amount)| *amount));
        if held != attempt.paid {
            return Err(format!(
                "the provider holds {held} for {} but qrpayd recorded {}",
                attempt.code, attempt.paid
            ));
        }
        if invoice.refunded != attempt.refunded {
            return Err(format!(
                "the provider refunded {} for {} but qrpayd recorded {}",
                invoice.refunded, attempt.code, attempt.refunded
            ));
        }
    }
    Ok(())
}
