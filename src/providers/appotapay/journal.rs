//! The journal of invoices AppotaPay made, by invoice id, kept in the provider's durable state.
//!
//! AppotaPay's status API does not repeat an order's QR (nor a card payment's verification URL),
//! so the only way to find them again after an interruption is to have written them down before
//! `create` returned. Hence a repeated `create` and a `lookup` after a restart find the invoice
//! here without asking AppotaPay, and a duplicate-order answer is resolved from here first.
//!
//! It stores only what the customer display shows (the QR text or the verification URL): never
//! a card number, a token or a key. It never logs a value.

use std::sync::{Arc, Mutex};

use lru::LruCache;
use serde::{Deserialize, Serialize};

use crate::providers::{Invoice, ProviderState, lock, recent_invoices};

/// A journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    qr_text: String,
    short_url: Option<String>,
}

/// The journal.
#[derive(Clone)]
pub(super) struct Journal {
    state: Arc<dyn ProviderState>,
    /// The entries used most recently. Bounded: every entry is also in the state, and read
    /// back from there on a miss.
    cache: Arc<Mutex<LruCache<String, Entry>>>,
}

impl Journal {
    pub fn new(state: Arc<dyn ProviderState>) -> Journal {
        Journal {
            state,
            cache: Arc::new(Mutex::new(recent_invoices())),
        }
    }

    /// The invoice recorded under `invoice_id`, if any. A state that cannot be read is logged
    /// and reads as absent (the caller then asks AppotaPay).
    pub async fn find(&self, invoice_id: &str) -> Option<Invoice> {
        let cached = lock(&self.cache).get(invoice_id).cloned();
        let entry = match cached {
            Some(entry) => entry,
            None => {
                let state = self.state.clone();
                let key = key_of(invoice_id);
                let loaded = tokio::task::spawn_blocking(move || state.load(&key)).await;
                let text = match loaded {
                    Ok(Ok(Some(text))) => text,
                    Ok(Ok(None)) => return None,
                    Ok(Err(error)) => {
                        tracing::error!(provider = "appotapay", invoice_id, %error, "cannot read the AppotaPay journal");
                        return None;
                    }
                    Err(error) => {
                        tracing::error!(provider = "appotapay", invoice_id, %error, "the AppotaPay journal read failed");
                        return None;
                    }
                };
                let entry: Entry = match serde_json::from_str(&text) {
                    Ok(entry) => entry,
                    Err(error) => {
                        tracing::error!(provider = "appotapay", invoice_id, %error, "an AppotaPay journal entry is unreadable");
                        return None;
                    }
                };
                lock(&self.cache).put(invoice_id.to_owned(), entry.clone());
                entry
            }
        };
        Some(Invoice {
            expires_at: None,
            invoice_id: invoice_id.to_owned(),
            qr_text: entry.qr_text,
            short_url: entry.short_url,
            deep_links: Vec::new(),
        })
    }

    /// Records an invoice before it is handed to the engine. A failure to write is logged: the
    /// invoice is still good, only a later lookup after a crash could miss it.
    pub async fn record(&self, invoice: &Invoice) {
        let entry = Entry {
            qr_text: invoice.qr_text.clone(),
            short_url: invoice.short_url.clone(),
        };
        lock(&self.cache).put(invoice.invoice_id.clone(), entry.clone());
        let Ok(text) = serde_json::to_string(&entry) else {
            return;
        };
        let state = self.state.clone();
        let key = key_of(&invoice.invoice_id);
        let saved = tokio::task::spawn_blocking(move || state.save(&key, &text)).await;
        let error = match saved {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(error) => error.to_string(),
        };
        tracing::error!(
            provider = "appotapay",
            invoice_id = %invoice.invoice_id,
            %error,
            "cannot journal an AppotaPay invoice; a lookup after a crash may not find its QR"
        );
    }
}

fn key_of(invoice_id: &str) -> String {
    format!("invoice:{invoice_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::qpay::MemoryState;

    fn invoice(n: usize) -> Invoice {
        Invoice {
            expires_at: None,
            invoice_id: format!("INV{n}"),
            qr_text: format!("000201-{n}"),
            short_url: None,
            deep_links: Vec::new(),
        }
    }

    #[tokio::test]
    async fn the_cache_keeps_the_recent_invoices_and_reloads_the_others() {
        let journal = Journal::new(Arc::new(MemoryState::default()));
        let capacity = lock(&journal.cache).cap().get();
        for n in 0..capacity + 100 {
            journal.record(&invoice(n)).await;
        }
        assert_eq!(lock(&journal.cache).len(), capacity, "bounded");
        assert!(
            !lock(&journal.cache).contains("INV0"),
            "the oldest was evicted"
        );
        // Forgotten in memory, not in the journal: read back from the state.
        assert_eq!(journal.find("INV0").await, Some(invoice(0)));
        assert!(lock(&journal.cache).contains("INV0"), "and cached again");
        assert_eq!(lock(&journal.cache).len(), capacity);
        assert_eq!(journal.find("INV-NONE").await, None);
    }
}
