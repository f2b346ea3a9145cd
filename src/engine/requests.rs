//! What the till asks of the engine, and what it answers. Requests carry the till's raw text
//! (amounts as strings); the engine validates them, so every front end gets the same rules.

use std::path::PathBuf;

use rust_decimal::Decimal;

use crate::domain::{Attempt, PaymentResult, Transaction};
use crate::providers::PaymentInstrument;

/// One line of a checkout's items, as the till sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemRequest {
    pub description: String,
    pub quantity: String,
    pub unit_price: String,
}

/// `Checkout`: take a payment for a source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub source_id: String,
    pub source_type: Option<String>,
    pub source_uid: Option<String>,
    pub amount: String,
    pub currency: Option<String>,
    pub provider: Option<String>,
    pub method: Option<String>,
    pub description: Option<String>,
    pub expires_in_ms: Option<u64>,
    pub allow_partial: Option<bool>,
    pub items: Vec<ItemRequest>,
    /// Cancel the order's open attempt and start this one in its place (instead of answering
    /// `InvalidTransactionStatus` when it differs).
    pub replace_open: Option<bool>,
    /// The customer's card or account, for the method `ATM`: used for the one create call and
    /// dropped with the request, never recorded.
    pub instrument: Option<PaymentInstrument>,
}

/// The answer to `Checkout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutReply {
    pub transaction: Transaction,
    pub attempt: Attempt,
    /// The customer display frame written for this attempt.
    pub display_png: Option<PathBuf>,
}

/// A transaction or one of its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Transaction(String),
    Attempt(String),
}

/// `ConfirmSystemPayment`: the cashier confirms money taken outside any provider (cash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmRequest {
    pub target: Target,
    pub tendered: String,
    pub note: Option<String>,
}

/// The answer to `ConfirmSystemPayment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmReply {
    pub transaction: Transaction,
    pub attempt: Attempt,
    pub change: Decimal,
}

/// The answer to `Cancel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelReply {
    pub transaction: Transaction,
    /// The `200_CANCEL_PAYMENT` attempts made.
    pub cancelled: Vec<Attempt>,
}

/// The answer to `Verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReply {
    pub attempt: Attempt,
    pub provider_code: String,
    pub provider_message: String,
}

/// `Refund`: give back some or all of a successful payment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub attempt_id: String,
    pub amount: String,
    pub reason: Option<String>,
    /// The till's own key for this refund: repeating a refund with the same key answers the
    /// same refund attempt instead of refunding again.
    pub request_id: Option<String>,
}

/// The answer to `Refund`: the `300_REFUND_PAYMENT` attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReply {
    pub refund: Attempt,
}

/// `GetTransaction`: a transaction with its attempts and the payments recorded for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionView {
    pub transaction: Transaction,
    pub attempts: Vec<Attempt>,
    pub payments: Vec<PaymentResult>,
}

/// `ListTransactions` / `CountTransactions` filter, as the till sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    pub status: Option<String>,
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only transactions that received more money than they needed.
    pub overpaid: Option<bool>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}
