//! The domain: MQ-Pay's model of transactions, attempts and results, money, and the one table of
//! legal status transitions.
//!
//! Pure code: this module does no I/O and knows nothing of SQLite, HTTP or D-Bus. Everything
//! else speaks in its types.

pub mod model;
pub mod money;
pub mod status;

pub use model::{
    Attempt, DeepLink, Failure, Item, OutboxEvent, OutboxKind, OutboxRecord, ParkedEvent,
    PaymentResult, Source, TextError, Timestamp, Transaction, TransactionFilter, check_text,
    status_for_money,
};
pub use money::{
    AmountError, Currency, format_amount, format_for_display, parse_amount, parse_decimal,
};
pub use status::{AttemptStatus, AttemptType, InvalidTransition, TransactionStatus};
