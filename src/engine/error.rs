//! The engine's errors: the vocabulary the till sees (mapped one-to-one to D-Bus error names by
//! the `dbus` module). Every message is one plain sentence and carries no secret.

use crate::domain::{AmountError, InvalidTransition, TextError};
use crate::providers::ProviderError;
use crate::store::StoreError;

/// Why a request to the engine failed. Nothing was changed unless the message says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidTransactionStatus(String),
    #[error("{0}")]
    TransactionNotFound(String),
    #[error("{0}")]
    PaymentAttemptNotFound(String),
    #[error("{0}")]
    DuplicateSource(String),
    #[error("{0}")]
    ProviderNotConfigured(String),
    #[error("{0}")]
    ProviderUnavailable(String),
    #[error("the provider refused: {code}: {message}")]
    ProviderRejected { code: String, message: String },
    #[error("{0}")]
    RefundExceedsRemaining(String),
    #[error("{0}")]
    AttemptNotSuccess(String),
    #[error("{0}")]
    SignatureMismatch(String),
    /// The daemon itself failed (its database, most likely). Logged in full.
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// An `InvalidArgument` for a field.
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> EngineError {
        EngineError::InvalidArgument(format!("{field}: {reason}"))
    }
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "database failure");
        EngineError::Internal(format!("the local database failed: {error}"))
    }
}

impl From<InvalidTransition> for EngineError {
    fn from(error: InvalidTransition) -> Self {
        EngineError::InvalidTransactionStatus(error.to_string())
    }
}

impl From<TextError> for EngineError {
    fn from(error: TextError) -> Self {
        EngineError::InvalidArgument(error.to_string())
    }
}

impl From<ProviderError> for EngineError {
    fn from(error: ProviderError) -> Self {
        match error {
            // A provider's own local check of the till's input: the input is at fault.
            ProviderError::Rejected { code, message } if code == "INVALID_ARGUMENT" => {
                EngineError::InvalidArgument(message)
            }
            // A gateway that keeps MQ-Pay's rules itself (the MQ-Pay provider) refuses in
            // qrpayd's own words: the till gets the same named error as from qrpayd's checks.
            ProviderError::Rejected { code, message } if code == "REFUND_EXCEEDS_REMAINING" => {
                EngineError::RefundExceedsRemaining(message)
            }
            ProviderError::Rejected { code, message } if code == "ATTEMPT_NOT_SUCCESS" => {
                EngineError::AttemptNotSuccess(message)
            }
            ProviderError::Rejected { code, message } => {
                EngineError::ProviderRejected { code, message }
            }
            ProviderError::NotFound(what) => EngineError::ProviderRejected {
                code: "NOT_FOUND".to_owned(),
                message: format!("the provider does not know {what}"),
            },
            other => EngineError::ProviderUnavailable(other.to_string()),
        }
    }
}

/// An amount error, named after the field it came from.
pub fn amount_error(field: &str, error: AmountError) -> EngineError {
    EngineError::invalid(field, error)
}
