//! The engine: what qrpayd does with a payment, from checkout to settlement.
//!
//! It orchestrates the store and the providers in domain types: it records every request
//! before it reaches a provider, supervises each live attempt with one task (polling, expiry,
//! closing the invoice), applies what providers report, keeps the customer display current, and
//! publishes an [`Event`] after every committed change. It knows neither zbus nor HTTP; the
//! `dbus` module turns its requests and events into the D-Bus API.
//!
//! Invariants:
//! - Every state change and its outbox event are written in one store transaction
//!   (`Engine::write`), and the status change is checked against the domain's table.
//! - At most one provider call is in flight for an attempt: every call on an attempt's invoice
//!   holds that attempt's lock ([`AttemptHandle`]).
//! - A provider call whose outcome is unknown is looked up (or repeated with the same
//!   idempotency key) before anything else is done for that attempt.

mod cancel;
mod cash;
mod checkout;
mod error;
mod queries;
mod reconcile;
mod refund;
mod requests;
mod screen;
mod simulator;
mod supervisor;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::sync::{Notify, broadcast};

use crate::domain::{Attempt, Currency, Transaction};
use crate::providers::{Provider, Providers};
use crate::store::{Store, Tx};

pub use error::EngineError;
pub use reconcile::{ReconcileRequest, ReconcileRow, Verdict};
pub use requests::{
    CancelReply, CheckoutReply, CheckoutRequest, ConfirmReply, ConfirmRequest, ItemRequest,
    ListRequest, RefundReply, RefundRequest, Target, TransactionView, VerifyReply,
};
pub use screen::ScreenSettings;

pub use crate::providers::PaymentInstrument;

/// The provider name of payments the cashier confirms (cash): no provider call is made.
pub const SYSTEM_PROVIDER: &str = "system";
/// The method of a QR payment.
pub const METHOD_QR: &str = "100_QR_CODE";
/// The method of a cash payment confirmed by the cashier.
pub const METHOD_CASH: &str = "200_CASH";
/// The method of a payment with the customer's domestic ATM card or bank account, whose
/// details the till passes ([`PaymentInstrument`]); the customer finishes it on a web page
/// (an OTP) that the display shows as a QR.
pub const METHOD_ATM: &str = "ATM";

/// The engine's settings, from the `[daemon]` section of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    pub terminal_id: String,
    pub default_currency: Currency,
    pub default_provider: String,
    pub payment_timeout: Duration,
    pub max_amount: Option<Decimal>,
}

/// Something changed; published after the change is committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    TransactionChanged(Transaction),
    AttemptChanged(Attempt),
    /// The number of open payment attempts or of events waiting for the upstream sync changed;
    /// each is `Some` when it changed.
    CountsChanged {
        open_attempts: Option<u32>,
        pending_sync: Option<u64>,
    },
}

/// What a write changed, collected while it runs and published once it commits.
#[derive(Debug, Default)]
pub struct Changes {
    transactions: Vec<Transaction>,
    attempts: Vec<Attempt>,
}

impl Changes {
    /// Notes a changed transaction (the latest version wins).
    pub fn transaction(&mut self, transaction: &Transaction) {
        self.transactions.retain(|t| t.id != transaction.id);
        self.transactions.push(transaction.clone());
    }

    /// Notes a changed attempt (the latest version wins).
    pub fn attempt(&mut self, attempt: &Attempt) {
        self.attempts.retain(|a| a.id != attempt.id);
        self.attempts.push(attempt.clone());
    }

    fn is_empty(&self) -> bool {
        self.transactions.is_empty() && self.attempts.is_empty()
    }
}

/// The per-attempt lock and wake-up: provider calls on an attempt hold `lock`; `wake` makes its
/// supervisor check at once (a simulator payment, an IPN, `Verify`).
#[derive(Debug, Default)]
pub struct AttemptHandle {
    lock: tokio::sync::Mutex<()>,
    wake: Notify,
}

/// The payment engine. Cloning is cheap; every clone is the same engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    providers: Providers,
    settings: EngineSettings,
    events: broadcast::Sender<Event>,
    handles: Mutex<HashMap<String, Arc<AttemptHandle>>>,
    supervised: Mutex<std::collections::HashSet<String>>,
    screen: Option<screen::Screen>,
    last_counts: Mutex<Option<(u32, u64)>>,
}

impl Engine {
    /// An engine over `store` with the enabled `providers`. Call [`Engine::resume`] once the
    /// listeners are subscribed, to pick up the attempts a previous run left open.
    pub fn new(
        store: Store,
        providers: Providers,
        settings: EngineSettings,
        screen: Option<ScreenSettings>,
    ) -> Engine {
        let (events, _) = broadcast::channel(4096);
        Engine {
            inner: Arc::new(Inner {
                store,
                providers,
                settings,
                events,
                handles: Mutex::new(HashMap::new()),
                supervised: Mutex::new(Default::default()),
                screen: screen.map(screen::Screen::new),
                last_counts: Mutex::new(None),
            }),
        }
    }

    /// Subscribes to the engine's events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The names of the enabled providers (plus `system`, always there for cash).
    pub fn provider_names(&self) -> Vec<String> {
        let mut names = self.inner.providers.names();
        names.push(SYSTEM_PROVIDER.to_owned());
        names.sort();
        names
    }

    /// Whether the simulator is enabled.
    pub fn has_simulator(&self) -> bool {
        self.inner.providers.simulator().is_some()
    }

    /// How many payment attempts are open.
    pub async fn open_attempts(&self) -> Result<u32, EngineError> {
        self.read(|tx| Ok(tx.open_payment_attempt_count()?)).await
    }

    /// How many outbox events wait for the upstream sync.
    pub async fn pending_sync(&self) -> Result<u64, EngineError> {
        self.read(|tx| Ok(tx.pending_outbox_count()?)).await
    }

    /// Picks up every attempt a previous run left unfinished and shows the current state on the
    /// customer display.
    pub async fn resume(&self) -> Result<usize, EngineError> {
        let attempts = self.read(|tx| Ok(tx.attempts_to_resume()?)).await?;
        let count = attempts.len();
        for attempt in attempts {
            tracing::info!(
                attempt_id = %attempt.id,
                transaction_id = %attempt.transaction_id,
                provider = %attempt.provider,
                status = %attempt.status,
                "resuming attempt"
            );
            self.supervise(&attempt.id);
        }
        if let Some(screen) = &self.inner.screen {
            screen.show_idle_if_blank().await;
        }
        self.publish_counts().await;
        Ok(count)
    }

    /// Runs `f` in one store transaction on a blocking thread, then publishes what it changed.
    async fn write<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>, &mut Changes) -> Result<T, EngineError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        let (value, changes) = crate::logging::spawn_blocking(move || {
            store.write(|tx| {
                let mut changes = Changes::default();
                let value = f(tx, &mut changes)?;
                Ok::<_, EngineError>((value, changes))
            })
        })
        .await
        .map_err(|e| EngineError::Internal(format!("a database task failed: {e}")))??;
        if !changes.is_empty() {
            self.publish(changes).await;
        }
        Ok(value)
    }

    /// Runs `f` against a consistent snapshot on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, EngineError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        crate::logging::spawn_blocking(move || store.read(f))
            .await
            .map_err(|e| EngineError::Internal(format!("a database task failed: {e}")))?
    }

    async fn publish(&self, changes: Changes) {
        // Attempts first: an attempt's success is what settles its transaction.
        for attempt in &changes.attempts {
            let _ = self
                .inner
                .events
                .send(Event::AttemptChanged(attempt.clone()));
        }
        for transaction in &changes.transactions {
            let _ = self
                .inner
                .events
                .send(Event::TransactionChanged(transaction.clone()));
        }
        if let Some(screen) = &self.inner.screen {
            for attempt in &changes.attempts {
                if let Some(transaction) = changes
                    .transactions
                    .iter()
                    .find(|t| t.id == attempt.transaction_id)
                {
                    screen
                        .update(attempt, transaction, self.display_name(&attempt.provider))
                        .await;
                }
            }
        }
        self.publish_counts().await;
    }

    async fn publish_counts(&self) {
        let counts = self
            .read(|tx| Ok((tx.open_payment_attempt_count()?, tx.pending_outbox_count()?)))
            .await;
        let Ok((open_attempts, pending_sync)) = counts else {
            return;
        };
        let previous = {
            let Ok(mut last) = self.inner.last_counts.lock() else {
                return;
            };
            last.replace((open_attempts, pending_sync))
        };
        let open_changed = previous.is_none_or(|(open, _)| open != open_attempts);
        let pending_changed = previous.is_none_or(|(_, pending)| pending != pending_sync);
        if open_changed || pending_changed {
            let _ = self.inner.events.send(Event::CountsChanged {
                open_attempts: open_changed.then_some(open_attempts),
                pending_sync: pending_changed.then_some(pending_sync),
            });
        }
    }

    fn display_name(&self, provider: &str) -> String {
        match self.inner.providers.get(provider) {
            Some(p) => p.display_name().to_owned(),
            None if provider == SYSTEM_PROVIDER => "Cash".to_owned(),
            None => provider.to_owned(),
        }
    }

    fn provider(&self, name: &str) -> Result<Arc<dyn Provider>, EngineError> {
        self.inner.providers.get(name).cloned().ok_or_else(|| {
            EngineError::ProviderNotConfigured(format!(
                "the provider {name:?} is not enabled on this terminal (enabled: {})",
                self.provider_names().join(", ")
            ))
        })
    }

    /// The lock and wake-up of an attempt, shared by everyone working on it.
    fn handle(&self, attempt_id: &str) -> Arc<AttemptHandle> {
        let mut handles = match self.inner.handles.lock() {
            Ok(handles) => handles,
            Err(poisoned) => poisoned.into_inner(),
        };
        handles.entry(attempt_id.to_owned()).or_default().clone()
    }

    /// Drops an attempt's handle once nobody but the table holds it.
    fn release(&self, attempt_id: &str) {
        if let Ok(mut handles) = self.inner.handles.lock()
            && handles
                .get(attempt_id)
                .is_some_and(|h| Arc::strong_count(h) == 1)
        {
            handles.remove(attempt_id);
        }
    }

    /// Makes the attempt's supervisor check with the provider now.
    pub fn nudge(&self, attempt_id: &str) {
        let exists = self
            .inner
            .handles
            .lock()
            .map(|h| h.contains_key(attempt_id))
            .unwrap_or(false);
        if exists {
            self.handle(attempt_id).wake.notify_one();
        }
    }
}
