//! The QPay provider's durable state, through the daemon's [`ProviderState`]: the tokens, the
//! journal of invoices made (by `sender_invoice_no`), each invoice's amount, and the payment
//! each refund key chose.
//!
//! This module only moves strings in and out, off the async threads (the store is SQLite). It
//! never logs a value, since the token row holds secrets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::providers::ProviderState;

/// Async access to a provider's state.
#[derive(Clone)]
pub(super) struct StateStore {
    inner: Arc<dyn ProviderState>,
}

impl StateStore {
    pub fn new(inner: Arc<dyn ProviderState>) -> StateStore {
        StateStore { inner }
    }

    /// State that lives only in memory.
    #[cfg(test)]
    pub fn in_memory() -> StateStore {
        StateStore::new(Arc::new(MemoryState::default()))
    }

    /// The value under `key`; a store failure is logged and reads as absent.
    pub async fn load(&self, key: &str) -> Option<String> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        match tokio::task::spawn_blocking(move || inner.load(&owned)).await {
            Ok(Ok(value)) => value,
            Ok(Err(error)) => {
                tracing::error!(provider = "qpay", key, %error, "cannot read the QPay state");
                None
            }
            Err(error) => {
                tracing::error!(provider = "qpay", key, %error, "the QPay state read failed");
                None
            }
        }
    }

    /// Stores `value` under `key`.
    pub async fn save(&self, key: &str, value: String) -> Result<(), String> {
        let inner = self.inner.clone();
        let owned = key.to_owned();
        tokio::task::spawn_blocking(move || inner.save(&owned, &value))
            .await
            .map_err(|e| e.to_string())?
    }
}

/// A [`ProviderState`] in memory.
#[derive(Default)]
pub struct MemoryState {
    values: Mutex<BTreeMap<String, String>>,
}

impl ProviderState for MemoryState {
    fn load(&self, key: &str) -> Result<Option<String>, String> {
        let values = self.values.lock().map_err(|_| "poisoned".to_owned())?;
        Ok(values.get(key).cloned())
    }

    fn save(&self, key: &str, value: &str) -> Result<(), String> {
        let mut values = self.values.lock().map_err(|_| "poisoned".to_owned())?;
        values.insert(key.to_owned(), value.to_owned());
        Ok(())
    }
}
