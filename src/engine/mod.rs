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
//!   (`Engine::write`; the store's triggers add the event to every write), and the status change is checked against the domain's table.
//! - Changes are published in commit order, each with a monotonic `seq`, and only what changed
//!   is published.
//! - At most one provider call is in flight for an attempt, and no two of the till's actions on
//!   an attempt interleave: each holds that attempt's lock ([`AttemptHandle`]).
//! - A provider call whose outcome is unknown is looked up (or repeated with the same
//!   idempotency key) before anything else is done for that attempt.
//! - Whether a payment may still take money is one rule, `Attempt::may_take_money`, asked by
//!   every guard that must not let a customer pay twice.

mod cancel;
mod cash;
mod checkout;
mod error;
mod money;
mod queries;
mod reconcile;
mod refund;
mod requests;
mod screen;
mod simulator;
mod supervisor;
#[cfg(test)]
mod tests;
mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::sync::{Notify, broadcast};

use crate::domain::{Attempt, Currency, Timestamp, Transaction};
use crate::providers::{Provider, Providers};
use crate::store::{Store, StoreError, Tx};

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
    /// Refund money a sale did not need (a late payment on a settled or cancelled transaction)
    /// automatically, where the provider refunds.
    pub auto_refund_overpayment: bool,
    /// How long after its expiry an invoice the provider cannot close is still watched for
    /// money (AppotaPay's POS orders stay payable at AppotaPay).
    pub late_payment_watch: Duration,
    /// How long a provider call's outcome may stay unknown (the provider unreachable) before
    /// the till is told (`AttemptUnresolved`, `UnresolvedAttempts`).
    pub unknown_outcome_alert_after: Duration,
}

impl EngineSettings {
    /// Settings with the defaults of everything but the terminal and its currency, provider
    /// and payment window (what tests and benchmarks set).
    pub fn new(
        terminal_id: &str,
        default_currency: Currency,
        default_provider: &str,
        payment_timeout: Duration,
    ) -> EngineSettings {
        EngineSettings {
            terminal_id: terminal_id.to_owned(),
            default_currency,
            default_provider: default_provider.to_owned(),
            payment_timeout,
            max_amount: None,
            auto_refund_overpayment: true,
            late_payment_watch: Duration::from_secs(86_400),
            unknown_outcome_alert_after: Duration::from_secs(3_600),
        }
    }
}

/// Where the engine reads the wall-clock time it records: a seam, so that a simulation can run
/// the real engine on virtual time. Waits and deadlines of a running daemon use tokio's
/// monotonic clock instead, so a step of the wall clock never expires a live QR.
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> Timestamp;
}

/// Where the engine gets the ids of new transactions and attempts (and so their idempotency
/// keys): a seam, so that a simulation replays the same ids from its seed.
pub trait IdSource: Send + Sync {
    /// A new, unique id.
    fn new_id(&self) -> uuid::Uuid;
}

/// Random (version 4) UUIDs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn new_id(&self) -> uuid::Uuid {
        uuid::Uuid::new_v4()
    }
}

/// The time and the id source one write works with, taken before it starts.
#[derive(Clone)]
pub(crate) struct Stamp {
    pub(crate) now: Timestamp,
    ids: Arc<dyn IdSource>,
}

impl Stamp {
    pub(crate) fn new_id(&self) -> uuid::Uuid {
        self.ids.new_id()
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Builds an [`Engine`], choosing its seams: the wall clock, the id source, whether store work
/// runs on blocking threads (the daemon) or inline (a one-threaded simulation), the display.
pub struct EngineBuilder {
    store: Store,
    providers: Providers,
    settings: EngineSettings,
    screen: Option<ScreenSettings>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    inline_store: bool,
}

impl EngineBuilder {
    /// The customer display, if any.
    pub fn screen(mut self, screen: Option<ScreenSettings>) -> Self {
        self.screen = screen;
        self
    }

    /// The wall clock (the system's by default).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The id source (random by default).
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// Runs store work on the calling task rather than a blocking thread: for a simulation
    /// that drives the engine on one thread, never for the daemon.
    pub fn inline_store(mut self, inline: bool) -> Self {
        self.inline_store = inline;
        self
    }

    pub fn build(self) -> Engine {
        Engine::from_builder(self)
    }
}

/// Something changed; published after the change is committed, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A transaction changed. `seq` grows with every event, so a listener can discard one that
    /// arrives after a newer one.
    TransactionChanged { seq: u64, transaction: Transaction },
    /// An attempt changed.
    AttemptChanged { seq: u64, attempt: Attempt },
    /// The number of payment attempts that may take money or of events waiting for the
    /// upstream sync changed; each is `Some` when it changed.
    CountsChanged {
        open_attempts: Option<u32>,
        pending_sync: Option<u64>,
    },
    /// A provider call on this attempt has had no known outcome for longer than
    /// `unknown_outcome_alert_after`; qrpayd keeps retrying.
    AttemptUnresolved {
        seq: u64,
        attempt: Attempt,
        since: Timestamp,
        reason: String,
    },
    /// What the daemon cannot resolve by itself changed: attempts whose outcome has been
    /// unknown too long, and attempts of providers no longer configured.
    HealthChanged { unresolved: u32, orphaned: u32 },
}

/// What a write changed, collected while it runs and published once it commits.
#[derive(Debug, Default)]
pub struct Changes {
    /// Each changed attempt, with its transaction as it stood (for the display).
    attempts: Vec<(Attempt, Transaction)>,
    /// The transactions that changed.
    transactions: Vec<Transaction>,
    /// Attempts made by the write that need a supervisor once it commits.
    supervise: Vec<String>,
}

impl Changes {
    /// Notes a changed attempt (the latest version wins), with its transaction for context;
    /// the transaction is published only if it is noted with [`Changes::transaction`] too.
    pub fn attempt(&mut self, attempt: &Attempt, transaction: &Transaction) {
        self.attempts.retain(|(a, _)| a.id != attempt.id);
        self.attempts.push((attempt.clone(), transaction.clone()));
    }

    /// Notes a changed transaction (the latest version wins).
    pub fn transaction(&mut self, transaction: &Transaction) {
        self.transactions.retain(|t| t.id != transaction.id);
        self.transactions.push(transaction.clone());
    }

    /// Starts the attempt's supervisor once the write has committed.
    pub fn supervise(&mut self, attempt_id: &str) {
        self.supervise.push(attempt_id.to_owned());
    }

    fn is_empty(&self) -> bool {
        self.transactions.is_empty() && self.attempts.is_empty()
    }
}

/// The counts the till sees as properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    open_attempts: u32,
    pending_sync: u64,
}

impl Counts {
    fn read(tx: &Tx<'_>) -> Result<Counts, StoreError> {
        Ok(Counts {
            open_attempts: tx.open_payment_attempt_count()?,
            pending_sync: tx.pending_outbox_count()?,
        })
    }
}

/// Publishes committed changes. Called while the store still holds the committing
/// transaction's lock, so events leave in commit order.
struct Publisher {
    events: broadcast::Sender<Event>,
    seq: AtomicU64,
    last_counts: Mutex<Option<Counts>>,
}

/// An attempt change as published, for the customer display.
struct Shown {
    seq: u64,
    attempt: Attempt,
    transaction: Transaction,
}

impl Publisher {
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The `seq` of the last change published. Read under the store's lock, it is at least that
    /// of every change visible in the same read.
    fn current_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    fn publish(&self, changes: &Changes, counts: Option<Counts>) -> Vec<Shown> {
        let mut shown = Vec::with_capacity(changes.attempts.len());
        // Attempts first: an attempt's success is what settles its transaction.
        for (attempt, context) in &changes.attempts {
            let seq = self.next_seq();
            let _ = self.events.send(Event::AttemptChanged {
                seq,
                attempt: attempt.clone(),
            });
            let transaction = changes
                .transactions
                .iter()
                .find(|t| t.id == context.id)
                .unwrap_or(context);
            shown.push(Shown {
                seq,
                attempt: attempt.clone(),
                transaction: transaction.clone(),
            });
        }
        for transaction in &changes.transactions {
            let _ = self.events.send(Event::TransactionChanged {
                seq: self.next_seq(),
                transaction: transaction.clone(),
            });
        }
        if let Some(counts) = counts {
            self.publish_counts(counts);
        }
        shown
    }

    fn publish_counts(&self, counts: Counts) {
        let previous = lock(&self.last_counts).replace(counts);
        let open_changed = previous.is_none_or(|p| p.open_attempts != counts.open_attempts);
        let pending_changed = previous.is_none_or(|p| p.pending_sync != counts.pending_sync);
        if open_changed || pending_changed {
            let _ = self.events.send(Event::CountsChanged {
                open_attempts: open_changed.then_some(counts.open_attempts),
                pending_sync: pending_changed.then_some(counts.pending_sync),
            });
        }
    }
}

/// The per-attempt lock and wake-up: provider calls and the till's actions on an attempt hold
/// `lock`; `wake` makes its supervisor check at once (a simulator payment, an IPN, `Verify`).
#[derive(Debug, Default)]
pub struct AttemptHandle {
    lock: tokio::sync::Mutex<()>,
    wake: Notify,
}

type HandleTable = Arc<Mutex<HashMap<String, Arc<AttemptHandle>>>>;

/// A use of an attempt's handle. The table keeps a handle only while someone uses it: the last
/// `HandleRef` dropped removes it, so a finished attempt leaves nothing behind in memory.
pub(crate) struct HandleRef {
    table: HandleTable,
    attempt_id: String,
    handle: Option<Arc<AttemptHandle>>,
}

impl std::ops::Deref for HandleRef {
    type Target = AttemptHandle;

    fn deref(&self) -> &AttemptHandle {
        // Present from creation until `drop`.
        self.handle.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for HandleRef {
    fn drop(&mut self) {
        // Released under the table's lock, like every clone is made, so the last user sees a
        // count of one and removes the entry.
        let mut table = lock(&self.table);
        drop(self.handle.take());
        if table
            .get(&self.attempt_id)
            .is_some_and(|h| Arc::strong_count(h) == 1)
        {
            table.remove(&self.attempt_id);
        }
    }
}

/// What the daemon cannot resolve by itself, for the till and the watchdog.
#[derive(Debug, Default)]
struct Health {
    /// Attempts whose provider call has had no known outcome for too long, with why.
    unresolved: HashMap<String, String>,
    /// Attempts of providers no longer configured, left alone.
    orphaned: HashSet<String>,
    /// Supervisors that panicked, by attempt: each is restarted a few times, then the daemon
    /// reports itself unhealthy so that systemd restarts it.
    panics: HashMap<String, u32>,
    wedged: bool,
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
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    /// Run store work on the calling task instead of a blocking thread (a simulation on one
    /// thread, where every step must happen in a determined order).
    inline_store: bool,
    publisher: Arc<Publisher>,
    handles: HandleTable,
    supervised: Mutex<HashSet<String>>,
    /// Attempts to check once more although they are closed (an IPN arrived for them).
    rechecks: Mutex<HashSet<String>>,
    health: Mutex<Health>,
    screen: Option<screen::Screen>,
}

/// Locks a mutex of plain in-memory bookkeeping. A panic while it was held cannot leave it
/// half-written in a way that matters more than stopping the daemon would, so the poison is
/// ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        Engine::with_clock(store, providers, settings, screen, Arc::new(SystemClock))
    }

    /// As [`Engine::new`], reading the wall-clock time from `clock`.
    pub fn with_clock(
        store: Store,
        providers: Providers,
        settings: EngineSettings,
        screen: Option<ScreenSettings>,
        clock: Arc<dyn Clock>,
    ) -> Engine {
        Engine::builder(store, providers, settings)
            .screen(screen)
            .clock(clock)
            .build()
    }

    /// An engine with every seam chosen: see [`EngineBuilder`].
    pub fn builder(store: Store, providers: Providers, settings: EngineSettings) -> EngineBuilder {
        EngineBuilder {
            store,
            providers,
            settings,
            screen: None,
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            inline_store: false,
        }
    }

    fn from_builder(builder: EngineBuilder) -> Engine {
        let EngineBuilder {
            store,
            providers,
            settings,
            screen,
            clock,
            ids,
            inline_store,
        } = builder;
        let (events, _) = broadcast::channel(4096);
        Engine {
            inner: Arc::new(Inner {
                store,
                providers,
                settings,
                clock,
                ids,
                inline_store,
                publisher: Arc::new(Publisher {
                    events,
                    seq: AtomicU64::new(0),
                    last_counts: Mutex::new(None),
                }),
                handles: HandleTable::default(),
                supervised: Mutex::new(HashSet::new()),
                rechecks: Mutex::new(HashSet::new()),
                health: Mutex::new(Health::default()),
                screen: screen.map(screen::Screen::new),
            }),
        }
    }

    /// Subscribes to the engine's events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.publisher.events.subscribe()
    }

    /// The current wall-clock time, from the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The time and ids a write is to use.
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            now: self.now(),
            ids: self.inner.ids.clone(),
        }
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

    /// How many payment attempts may still take money (open, or with an invoice not yet closed
    /// at the provider).
    pub async fn open_attempts(&self) -> Result<u32, EngineError> {
        self.read(|tx| Ok(tx.open_payment_attempt_count()?)).await
    }

    /// How many outbox events wait for the upstream sync.
    pub async fn pending_sync(&self) -> Result<u64, EngineError> {
        self.read(|tx| Ok(tx.pending_outbox_count()?)).await
    }

    /// How many attempts have had a provider call with no known outcome for longer than
    /// `unknown_outcome_alert_after`.
    pub fn unresolved_attempts(&self) -> u32 {
        u32::try_from(lock(&self.inner.health).unresolved.len()).unwrap_or(u32::MAX)
    }

    /// How many unfinished attempts belong to providers no longer configured.
    pub fn orphaned_attempts(&self) -> u32 {
        u32::try_from(lock(&self.inner.health).orphaned.len()).unwrap_or(u32::MAX)
    }

    /// Picks up every attempt a previous run left unfinished that needs the daemon, and shows
    /// the current state on the customer display. A cash attempt waits for the cashier and
    /// needs no supervisor; an attempt of a provider no longer configured is reported once,
    /// counted (`OrphanedAttempts`) and left alone.
    pub async fn resume(&self) -> Result<usize, EngineError> {
        // Signals' `seq` must keep growing across restarts, or a till would take a restarted
        // daemon's news for stale: each run counts from its own epoch, kept in the store.
        let epoch = self
            .write(|tx, _| Ok(tx.next_counter("signal_epoch")?))
            .await?;
        self.inner
            .publisher
            .seq
            .fetch_max(u64::try_from(epoch).unwrap_or(0) << 32, Ordering::Relaxed);
        let attempts = self.read(|tx| Ok(tx.attempts_to_resume()?)).await?;
        let on_screen = screen::on_screen_after_restart(&attempts);
        let mut resumed = 0;
        for attempt in attempts {
            if attempt.provider == SYSTEM_PROVIDER {
                if attempt.kind == crate::domain::AttemptType::Payment {
                    continue;
                }
            } else if self.inner.providers.get(&attempt.provider).is_none() {
                self.orphaned(&attempt);
                continue;
            }
            tracing::info!(
                attempt_id = %attempt.id,
                transaction_id = %attempt.transaction_id,
                provider = %attempt.provider,
                status = %attempt.status,
                "resuming attempt"
            );
            self.supervise(&attempt.id);
            resumed += 1;
        }
        self.show_after_restart(on_screen).await;
        let counts = self.read(|tx| Ok(Counts::read(tx)?)).await?;
        self.inner.publisher.publish_counts(counts);
        Ok(resumed)
    }

    /// Whether the engine is alive: a round trip through the store answers in time and no
    /// supervisor is wedged. The watchdog is fed only while it is.
    pub async fn alive(&self, within: Duration) -> Result<(), EngineError> {
        if lock(&self.inner.health).wedged {
            return Err(EngineError::Internal(
                "a payment supervisor keeps failing; restarting is safer".to_owned(),
            ));
        }
        match tokio::time::timeout(within, self.open_attempts()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(EngineError::Internal(format!(
                "the database did not answer within {within:?}"
            ))),
        }
    }

    /// Runs `f` in one store transaction on a blocking thread. What it changed is published in
    /// commit order (signals, counts), then shown on the customer display, and the attempts it
    /// asked for get their supervisors.
    async fn write<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>, &mut Changes) -> Result<T, EngineError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        let publisher = self.inner.publisher.clone();
        let (value, shown, supervise) = self
            .on_store(move || {
                store.write_then(
                    |tx| {
                        let mut changes = Changes::default();
                        let value = f(tx, &mut changes)?;
                        let counts = if changes.is_empty() {
                            None
                        } else {
                            Some(Counts::read(tx)?)
                        };
                        Ok::<_, EngineError>((value, changes, counts))
                    },
                    |(value, changes, counts)| {
                        let shown = publisher.publish(&changes, counts);
                        (value, shown, changes.supervise)
                    },
                )
            })
            .await?;
        if let Some(screen) = &self.inner.screen {
            for shown in shown {
                screen
                    .update(
                        &shown.attempt,
                        &shown.transaction,
                        self.display_name(&shown.attempt.provider),
                        shown.seq,
                    )
                    .await;
            }
        }
        for attempt_id in supervise {
            self.supervise(&attempt_id);
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
        self.on_store(move || store.read(f)).await
    }

    /// Runs store work on a blocking thread (or, in a simulation, right here).
    async fn on_store<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, EngineError> + Send + 'static,
    {
        if self.inner.inline_store {
            return f();
        }
        crate::logging::spawn_blocking(f)
            .await
            .map_err(|e| EngineError::Internal(format!("a database task failed: {e}")))?
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
    fn handle(&self, attempt_id: &str) -> HandleRef {
        let table = self.inner.handles.clone();
        let handle = lock(&table)
            .entry(attempt_id.to_owned())
            .or_default()
            .clone();
        HandleRef {
            table,
            attempt_id: attempt_id.to_owned(),
            handle: Some(handle),
        }
    }

    /// How many attempts have a handle in memory (for tests of the memory bound).
    pub fn handles_in_memory(&self) -> usize {
        lock(&self.inner.handles).len()
    }

    /// Makes the attempt's supervisor check with the provider now.
    pub fn nudge(&self, attempt_id: &str) {
        if let Some(handle) = lock(&self.inner.handles).get(attempt_id) {
            handle.wake.notify_one();
        }
    }

    /// Notes an attempt of a provider that is no longer configured: reported once, counted.
    fn orphaned(&self, attempt: &Attempt) {
        let (newly, counts) = {
            let mut health = lock(&self.inner.health);
            let newly = health.orphaned.insert(attempt.id.clone());
            (newly, (health.unresolved.len(), health.orphaned.len()))
        };
        if newly {
            tracing::warn!(
                attempt_id = %attempt.id,
                transaction_id = %attempt.transaction_id,
                provider = %attempt.provider,
                status = %attempt.status,
                "this attempt's provider is no longer configured; it is left as it is (configure \
                 the provider again to finish it, or settle it in the provider's portal)"
            );
            self.publish_health(counts);
        }
    }

    fn publish_health(&self, (unresolved, orphaned): (usize, usize)) {
        let _ = self.inner.publisher.events.send(Event::HealthChanged {
            unresolved: u32::try_from(unresolved).unwrap_or(u32::MAX),
            orphaned: u32::try_from(orphaned).unwrap_or(u32::MAX),
        });
    }
}
