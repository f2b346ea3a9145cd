//! A backlog for the upstream sync, written straight into a state directory's database before
//! the daemon starts: `count` paid sales, each as the engine records a cash sale (the
//! transaction created, then its attempt, its payment, the attempt and the transaction
//! settled), each write queuing its outbox events through the store's triggers. Shared by the
//! offline test and `benches/sync.rs`, so that a backlog of thousands takes a second to make.

#![allow(dead_code)]

use std::path::Path;

use qrpayd::domain::{
    Attempt, AttemptStatus, AttemptType, Currency, PaymentResult, Source, Timestamp, Transaction,
    TransactionStatus,
};
use qrpayd::store::{Store, StoreError};
use rust_decimal::Decimal;

/// Writes `count` paid sales of 1000 MNT into `<state_dir>/qrpayd.sqlite3`, queuing
/// `count` × [`EVENTS_PER_SALE`] undelivered events. Returns the transactions' ids.
pub fn write_backlog(state_dir: &Path, terminal_id: &str, count: usize) -> Vec<String> {
    std::fs::create_dir_all(state_dir).expect("state dir");
    let store = Store::open(&state_dir.join(Store::FILE_NAME)).expect("open the store");
    let amount = Decimal::from(1000);
    let start = Timestamp::now().0 - count as i64 * 10;
    let mut ids = Vec::with_capacity(count);
    store
        .write(|tx| {
            for i in 0..count {
                let at = Timestamp(start + i as i64 * 10);
                let id = uuid::Uuid::new_v4().to_string();
                let mut transaction = Transaction {
                    id: id.clone(),
                    number: format!("BACKLOG{i:06}"),
                    terminal_id: terminal_id.to_owned(),
                    source: Source {
                        kind: "Order".into(),
                        id: format!("backlog-{i}"),
                        uid: None,
                    },
                    currency: Currency::Mnt,
                    total: amount,
                    paid: Decimal::ZERO,
                    refunded: Decimal::ZERO,
                    overpaid: Decimal::ZERO,
                    status: TransactionStatus::New,
                    description: None,
                    items: vec![],
                    created_at: at,
                    updated_at: at,
                };
                tx.insert_transaction(&transaction)?;
                let mut attempt = Attempt {
                    id: uuid::Uuid::new_v4().to_string(),
                    code: format!("BACKLOG-ATT{i:06}"),
                    transaction_id: id.clone(),
                    kind: AttemptType::Payment,
                    status: AttemptStatus::New,
                    provider: "system".into(),
                    method: "CASH".into(),
                    amount,
                    paid: Decimal::ZERO,
                    refunded: Decimal::ZERO,
                    overpaid: Decimal::ZERO,
                    tendered: None,
                    parent_id: None,
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                    request_id: None,
                    invoice_id: None,
                    short_url: None,
                    qr_text: None,
                    deep_links: vec![],
                    provider_open: false,
                    allow_partial: false,
                    expires_at: None,
                    failure: None,
                    note: None,
                    created_at: at,
                    updated_at: at,
                };
                tx.insert_attempt(&attempt)?;
                let paid_at = Timestamp(at.0 + 5);
                tx.insert_payment_result(&PaymentResult {
                    attempt_id: attempt.id.clone(),
                    provider: "system".into(),
                    provider_payment_id: format!("backlog-cash-{i}"),
                    amount,
                    paid_at: Some(paid_at),
                    observed_at: paid_at,
                })?;
                attempt.status = AttemptStatus::Success;
                attempt.paid = amount;
                attempt.tendered = Some(amount);
                attempt.updated_at = paid_at;
                tx.update_attempt(&attempt)?;
                transaction.status = TransactionStatus::Settled;
                transaction.paid = amount;
                transaction.updated_at = paid_at;
                tx.update_transaction(&transaction)?;
                ids.push(id);
            }
            Ok::<_, StoreError>(())
        })
        .expect("write the backlog");
    ids
}

/// The events one backlog sale queues: transaction created, attempt created, payment
/// recorded, attempt succeeded, transaction settled.
pub const EVENTS_PER_SALE: usize = 5;
