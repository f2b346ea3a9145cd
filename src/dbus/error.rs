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
    /// `SyncNow` or `RetrySync` on a daemon without an `[upstream]` section.
    SyncDisabled(String),
    /// `RetrySync` of an event that is not parked.
    SyncEventNotParked(String),
    Internal(String),
}

/// The longest message an error reply carries, in characters. Every value from the till is
/// quoted cut short where its message is made (`domain::model::quote_for_error`); this is the
/// last guard, so that no message, a provider's included, can grow without bound.
const MAX_MESSAGE_CHARS: usize = 1000;

/// `message`, cut after [`MAX_MESSAGE_CHARS`] characters with its whole length said.
fn bounded(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => message,
        Some((cut, _)) => format!(
            "{}…(cut short: {} characters)",
            &message[..cut],
            message.chars().count()
        ),
    }
}

impl From<EngineError> for PayError {
    fn from(error: EngineError) -> Self {
        let message = bounded(error.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_cut_at_its_limit_and_says_how_long_it_was() {
        let short = "x".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(bounded(short.clone()), short);
        let long = "ө".repeat(MAX_MESSAGE_CHARS + 1);
        let cut = bounded(long);
        assert!(cut.starts_with(&"ө".repeat(MAX_MESSAGE_CHARS)));
        assert!(cut.ends_with("…(cut short: 1001 characters)"), "{cut}");
        let PayError::InvalidArgument(message) =
            PayError::from(EngineError::InvalidArgument("y".repeat(1_000_000)))
        else {
            panic!("the same error name");
        };
        assert!(message.chars().count() < MAX_MESSAGE_CHARS + 40);
    }
}
