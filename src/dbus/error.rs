//! The D-Bus error replies: one name per engine error, `org.qrpayd.Pay1.Error.<Name>`, with a
//! one-sentence message.

use zbus::DBusError;

use crate::engine::EngineError;

/// An error reply to the till.
#[derive(Debug, DBusError)]
#[zbus(prefix = "org.qrpayd.Pay1.Error")]
pub enum PayError {
    /// A failure of D-Bus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// A request argument is missing, of the wrong type, too long or malformed.
    InvalidArgument(String),
    /// The transaction or attempt is not in a status that allows the request.
    InvalidTransactionStatus(String),
    /// No transaction with that id or number.
    TransactionNotFound(String),
    /// No payment attempt with that id.
    PaymentAttemptNotFound(String),
    /// The source was checked out before with another amount or currency.
    DuplicateSource(String),
    /// The provider named is not enabled on this terminal.
    ProviderNotConfigured(String),
    /// The provider could not be reached or did not answer in time; try again.
    ProviderUnavailable(String),
    /// The provider refused the request; the message carries its code.
    ProviderRejected(String),
    /// The refund is larger than what is left to refund.
    RefundExceedsRemaining(String),
    /// Only a `302_SUCCESS` payment attempt can be refunded.
    AttemptNotSuccess(String),
    /// A provider notification failed its signature check.
    SignatureMismatch(String),
    /// The daemon failed internally (its database); see the journal.
    Internal(String),
}

impl From<EngineError> for PayError {
    fn from(error: EngineError) -> Self {
        let message = error.to_string();
        match error {
            EngineError::InvalidArgument(_) => PayError::InvalidArgument(message),
            EngineError::InvalidTransactionStatus(_) => PayError::InvalidTransactionStatus(message),
            EngineError::TransactionNotFound(_) => PayError::TransactionNotFound(message),
            EngineError::PaymentAttemptNotFound(_) => PayError::PaymentAttemptNotFound(message),
            EngineError::DuplicateSource(_) => PayError::DuplicateSource(message),
            EngineError::ProviderNotConfigured(_) => PayError::ProviderNotConfigured(message),
            EngineError::ProviderUnavailable(_) => PayError::ProviderUnavailable(message),
            EngineError::ProviderRejected { .. } => PayError::ProviderRejected(message),
            EngineError::RefundExceedsRemaining(_) => PayError::RefundExceedsRemaining(message),
            EngineError::AttemptNotSuccess(_) => PayError::AttemptNotSuccess(message),
            EngineError::SignatureMismatch(_) => PayError::SignatureMismatch(message),
            EngineError::Internal(_) => PayError::Internal(message),
        }
    }
}
