//! One scenario: the real engine and store, on a real SQLite file, driven on virtual time by
//! random till actions, customers and faults, all chosen by one seed.
//!
//! The daemon lives through several incarnations. Each runs on its own one-threaded tokio
//! runtime with the clock paused (waits take no real time, and happen in a determined order);
//! a crash drops the runtime, and with it every task of the daemon at whatever await it had
//! reached, exactly as `kill -9` leaves the database; the next incarnation opens the same file
//! and resumes. The provider (the simulator behind [`Faulty`]) outlives the crashes, as a remote
//! provider does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use tokio::sync::broadcast;

use qrpayd::domain::{AttemptStatus, AttemptType, Currency, Timestamp};
use qrpayd::engine::{
    CheckoutRequest, Clock, ConfirmRequest, Engine, EngineError, EngineSettings, Event, IdSource,
    RefundRequest, Target,
};
use qrpayd::providers::simulator::SimulatorSettings;
use qrpayd::providers::{Provider, Providers, Simulator};
use qrpayd::store::Store;

use crate::faults::{CrashPoint, FaultRates, Faulty};
use crate::invariants::{self, Records};

/// The wall clock of the simulation: a fixed start plus the virtual time that has passed, in
/// every incarnation so far and in this one (tokio's paused clock).
struct VirtualClock {
    start: Timestamp,
    /// Virtual milliseconds of the incarnations that ended.
    before: AtomicU64,
    /// Where this incarnation's tokio clock started.
    epoch: Mutex<Option<tokio::time::Instant>>,
}

impl VirtualClock {
    fn elapsed_here(&self) -> u64 {
        let epoch = *self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        epoch.map_or(0, |epoch| epoch.elapsed().as_millis() as u64)
    }

    /// A new incarnation starts: its tokio clock starts now.
    fn begin(&self) {
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
    }

    /// The incarnation ended (cleanly or by a crash).
    fn end(&self) {
        let here = self.elapsed_here();
        self.before.fetch_add(here, Ordering::SeqCst);
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        self.start
            .plus_millis(self.before.load(Ordering::SeqCst) + self.elapsed_here())
    }
}

/// Ids from the scenario's seed, so a replay makes the same ones.
struct SeededIds(Mutex<ChaCha8Rng>);

impl IdSource for SeededIds {
    fn new_id(&self) -> uuid::Uuid {
        let mut rng = self.0.lock().unwrap_or_else(|p| p.into_inner());
        uuid::Builder::from_random_bytes(rng.random()).into_uuid()
    }
}

/// An order the till rang up.
#[derive(Debug, Clone)]
struct Order {
    source_id: String,
    amount: String,
    cash: bool,
    allow_partial: bool,
}

/// How a scenario ended.
#[derive(Debug)]
pub struct Report {
    pub steps: u32,
    pub crashes: u32,
    pub provider_calls: u64,
}

/// The scenario of one seed.
pub struct World {
    seed: u64,
    rng: ChaCha8Rng,
    dir: tempfile::TempDir,
    provider: Arc<Faulty>,
    clock: Arc<VirtualClock>,
    ids: Arc<SeededIds>,
    orders: Vec<Order>,
    requests: Vec<RefundRequest>,
    /// What happened, step by step, for the report of a violation.
    log: Vec<String>,
    steps: u32,
    crashes: u32,
    /// The highest `seq` heard, across incarnations of this one daemon (it restarts at 0).
    last_seq: u64,
}

/// How an incarnation ended.
enum Ended {
    Crashed,
    Done,
}

const STEPS_MIN: u32 = 10;
const STEPS_MAX: u32 = 30;

/// A store file with every migration applied, made once per process: each scenario starts
/// from a copy, so the campaign spends its time on the scenarios rather than on creating the
/// same schema two thousand times. (Opening it still runs the migration check and the quick
/// integrity check, as the daemon's start does.)
fn migrated_store() -> &'static [u8] {
    static TEMPLATE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join(Store::FILE_NAME);
        drop(Store::open(&path).expect("a new store"));
        std::fs::read(&path).expect("the new store's file")
    })
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Files on a memory file system where there is one: the same SQLite, minus the disk.
        let dir = match std::path::Path::new("/dev/shm") {
            shm if shm.is_dir() => tempfile::tempdir_in(shm),
            _ => tempfile::tempdir(),
        }
        .expect("a temporary directory");
        std::fs::write(dir.path().join(Store::FILE_NAME), migrated_store())
            .expect("a copy of the migrated store");
        let simulator = Arc::new(
            Simulator::new(
                SimulatorSettings {
                    // QPay's own interval is 2 s; 5 s keeps a scenario's polls few.
                    poll_interval: Duration::from_secs(5),
                    ..SimulatorSettings::default()
                },
                None,
            )
            .expect("the simulator"),
        );
        let rates = FaultRates {
            fail_before: rng.random_range(0..120),
            lose_answer: rng.random_range(0..120),
            rate_limit: rng.random_range(0..40),
            duplicate_rows: rng.random_range(0..200),
            shuffle_rows: rng.random_range(0..200),
        };
        let provider = Arc::new(Faulty::new(simulator, seed, rates));
        let ids = Arc::new(SeededIds(Mutex::new(ChaCha8Rng::seed_from_u64(
            seed.rotate_left(17),
        ))));
        World {
            seed,
            rng,
            dir,
            provider,
            clock: Arc::new(VirtualClock {
                start: Timestamp(1_790_000_000_000),
                before: AtomicU64::new(0),
                epoch: Mutex::new(None),
            }),
            ids,
            orders: Vec::new(),
            requests: Vec::new(),
            log: Vec::new(),
            steps: 0,
            crashes: 0,
            last_seq: 0,
        }
    }

    /// Runs the scenario to its end; the error is the violation, with what led to it.
    pub fn run(mut self) -> Result<Report, String> {
        let total = self.rng.random_range(STEPS_MIN..=STEPS_MAX);
        loop {
            match self.incarnation(Some(total)) {
                Ok(Ended::Crashed) => {
                    self.crashes += 1;
                    self.note("-- kill -9; restart".to_owned());
                }
                Ok(Ended::Done) => break,
                Err(violation) => return Err(self.explain(violation)),
            }
        }
        // The world heals; the daemon is left alone until long after every deadline.
        self.provider.heal();
        self.note("-- the provider heals; time runs on".to_owned());
        match self.incarnation(None) {
            Ok(_) => Ok(Report {
                steps: self.steps,
                crashes: self.crashes,
                provider_calls: self.provider.calls(),
            }),
            Err(violation) => Err(self.explain(violation)),
        }
    }

    /// Records what happened, for the report of a violation (and, with
    /// `QRPAYD_CAMPAIGN_TRACE`, as it happens).
    fn note(&mut self, line: String) {
        if std::env::var_os("QRPAYD_CAMPAIGN_TRACE").is_some() {
            eprintln!("{} {line}", self.clock.now().0);
        }
        self.log.push(line);
    }

    fn explain(&self, violation: String) -> String {
        let tail: Vec<&String> = self.log.iter().rev().take(25).collect();
        let mut text = format!(
            "seed {}: {violation}\nlast steps (newest first):\n",
            self.seed
        );
        for line in tail {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// One life of the daemon: until a crash, until `total` steps were taken, or (with `None`)
    /// the final healing run and its checks.
    fn incarnation(&mut self, total: Option<u32>) -> Result<Ended, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|e| format!("no runtime: {e}"))?;
        let clock = self.clock.clone();
        // The virtual clock is read inside the runtime at both ends: outside it, tokio's
        // clock is the real one (found by the campaign: a replay drifted by real time).
        self.provider.daemon_restarted();
        let ended = runtime.block_on(async {
            clock.begin();
            let ended = self.live(total).await;
            clock.end();
            ended
        });
        drop(runtime);
        ended
    }

    /// The body of one incarnation, on its runtime.
    async fn live(&mut self, total: Option<u32>) -> Result<Ended, String> {
        let store = Store::open(&self.dir.path().join(Store::FILE_NAME))
            .map_err(|e| format!("the store does not open after a crash: {e}"))?;
        let providers = Providers::default().with(self.provider.clone() as Arc<dyn Provider>);
        let mut settings = EngineSettings::new(
            "SIM-01",
            Currency::Mnt,
            Simulator::NAME,
            Duration::from_secs(60),
        );
        settings.late_payment_watch = Duration::from_secs(600);
        let engine = Engine::builder(store.clone(), providers, settings)
            .clock(self.clock.clone())
            .ids(self.ids.clone())
            .inline_store(true)
            .build();
        let mut events = engine.subscribe();
        if total.is_some() && self.rng.random_bool(0.3) {
            self.provider.crash_at(Some(CrashPoint {
                at: self.rng.random_range(0..40),
                after_provider: self.rng.random_bool(0.5),
            }));
        }
        let crashed = self.provider.crashed.clone();
        let resumed = tokio::select! {
            biased;
            _ = crashed.notified() => return Ok(Ended::Crashed),
            resumed = engine.resume() => resumed,
        };
        resumed.map_err(|e| format!("resume failed: {e}"))?;
        self.check(&engine, &store, &mut events, false).await?;
        let Some(total) = total else {
            // Healing: a day and a half passes, in steps, with nothing else happening.
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
                self.check(&engine, &store, &mut events, false).await?;
            }
            self.check(&engine, &store, &mut events, true).await?;
            return Ok(Ended::Done);
        };
        while self.steps < total {
            self.steps += 1;
            let outcome = tokio::select! {
                biased;
                _ = crashed.notified() => return Ok(Ended::Crashed),
                outcome = self.act(&engine) => outcome,
            };
            if let Err(EngineError::Internal(message)) = &outcome {
                return Err(format!("the daemon failed inside: {message}"));
            }
            if outcome.is_err() {
                self.note(format!("   -> {outcome:?}"));
            }
            let pause = Duration::from_millis(self.rng.random_range(0..3000));
            tokio::select! {
                biased;
                _ = crashed.notified() => return Ok(Ended::Crashed),
                _ = tokio::time::sleep(pause) => {}
            }
            self.check(&engine, &store, &mut events, false).await?;
        }
        Ok(Ended::Done)
    }

    /// Checks the invariants, and that the signals heard so far came in commit order.
    async fn check(
        &mut self,
        engine: &Engine,
        store: &Store,
        events: &mut broadcast::Receiver<Event>,
        settled: bool,
    ) -> Result<(), String> {
        loop {
            let seq = match events.try_recv() {
                Ok(Event::AttemptChanged { seq, .. } | Event::TransactionChanged { seq, .. }) => {
                    seq
                }
                Ok(_) => continue,
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(error) => return Err(format!("signals lost: {error}")),
            };
            if seq <= self.last_seq {
                return Err(format!(
                    "a signal with seq {seq} came after seq {}",
                    self.last_seq
                ));
            }
            self.last_seq = seq;
        }
        if let Some(call) = self.provider.hammered() {
            return Err(format!("the daemon hammers the provider: {call}"));
        }
        let records = Records::read(store)?;
        let ledger = self.provider.simulator().invoices();
        let open = engine
            .open_attempts()
            .await
            .map_err(|e| format!("OpenAttempts cannot be read: {e}"))?;
        let now = self.clock.now();
        if settled {
            invariants::settled(&records, &ledger, now, open)
        } else {
            invariants::always(&records, &ledger, now, open)
        }
    }

    /// One random action of the till, a customer, the network or time.
    async fn act(&mut self, engine: &Engine) -> Result<(), EngineError> {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..20 => self.new_order(engine).await,
            20..26 => self.repeat_order(engine).await,
            26..40 => self.customer_pays(engine).await,
            40..47 => self.cancel(engine).await,
            47..55 => self.cash(engine).await,
            55..66 => self.refund(engine).await,
            66..72 => {
                let Some(attempt) = self.pick_attempt(engine, |_| true).await else {
                    return Ok(());
                };
                self.note(format!("verify {}", attempt.code));
                engine.verify(&attempt.id).await.map(|_| ())
            }
            72..76 => {
                let down = self.rng.random_bool(0.5);
                self.note(format!("provider down: {down}"));
                self.provider.set_down(down);
                Ok(())
            }
            76..80 => {
                self.note("kill -9 now".to_owned());
                self.provider.crash_at(Some(CrashPoint {
                    at: 0,
                    after_provider: false,
                }));
                // The next provider call crashes; time passes until one is made.
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            }
            _ => {
                let secs = *[1, 5, 20, 61, 130, 700]
                    .get(self.rng.random_range(0..6))
                    .unwrap_or(&1);
                self.note(format!("wait {secs} s"));
                tokio::time::sleep(Duration::from_secs(secs)).await;
                Ok(())
            }
        }
    }

    async fn new_order(&mut self, engine: &Engine) -> Result<(), EngineError> {
        let order = Order {
            source_id: format!("order-{}", self.orders.len() + 1),
            amount: ["1000", "2500", "10000", "123.45"][self.rng.random_range(0..4)].to_owned(),
            cash: self.rng.random_bool(0.2),
            allow_partial: self.rng.random_bool(0.4),
        };
        self.orders.push(order.clone());
        self.checkout(engine, &order, false).await
    }

    async fn repeat_order(&mut self, engine: &Engine) -> Result<(), EngineError> {
        if self.orders.is_empty() {
            return Ok(());
        }
        let mut order = self.orders[self.rng.random_range(0..self.orders.len())].clone();
        if self.rng.random_bool(0.2) {
            order.cash = !order.cash;
        }
        let replace = self.rng.random_bool(0.2);
        self.checkout(engine, &order, replace).await
    }

    async fn checkout(
        &mut self,
        engine: &Engine,
        order: &Order,
        replace_open: bool,
    ) -> Result<(), EngineError> {
        let expires_in_ms = [5_000, 30_000, 120_000][self.rng.random_range(0..3)];
        self.note(format!(
            "checkout {} {} cash={} partial={} replace={replace_open} expires={expires_in_ms}",
            order.source_id, order.amount, order.cash, order.allow_partial
        ));
        engine
            .checkout(CheckoutRequest {
                source_id: order.source_id.clone(),
                amount: order.amount.clone(),
                provider: Some(
                    if order.cash {
                        "system"
                    } else {
                        Simulator::NAME
                    }
                    .to_owned(),
                ),
                allow_partial: Some(order.allow_partial),
                expires_in_ms: Some(expires_in_ms),
                replace_open: Some(replace_open),
                ..CheckoutRequest::default()
            })
            .await
            .map(|_| ())
    }

    async fn customer_pays(&mut self, engine: &Engine) -> Result<(), EngineError> {
        let payable: Vec<_> = self
            .provider
            .simulator()
            .invoices()
            .into_iter()
            .filter(|i| i.payable)
            .collect();
        if payable.is_empty() {
            return Ok(());
        }
        let invoice = &payable[self.rng.random_range(0..payable.len())];
        let paid: Decimal = invoice.payments.iter().map(|(_, a)| *a).sum();
        let rest = invoice.amount - paid;
        let amount = if self.rng.random_bool(0.3) {
            (rest / Decimal::from(3))
                .round_dp(2)
                .max(Decimal::new(1, 2))
        } else {
            rest
        };
        let paid = self
            .provider
            .simulator()
            .pay(&invoice.invoice_id, Some(amount));
        self.note(format!(
            "customer pays {amount} of {}: {paid:?}",
            invoice.invoice_id
        ));
        if self.rng.random_bool(0.5) {
            // The provider notifies the terminal (an IPN).
            engine
                .invoice_notified(Simulator::NAME, &invoice.invoice_id)
                .await
                .map(|_| ())
        } else {
            Ok(())
        }
    }

    async fn cancel(&mut self, engine: &Engine) -> Result<(), EngineError> {
        if self.rng.random_bool(0.6) {
            let Some(attempt) = self
                .pick_attempt(engine, |a| a.kind == AttemptType::Payment)
                .await
            else {
                return Ok(());
            };
            self.note(format!("cancel attempt {}", attempt.code));
            engine
                .cancel(Target::Attempt(attempt.id), None)
                .await
                .map(|_| ())
        } else {
            let Some(transaction) = self.pick_transaction(engine).await else {
                return Ok(());
            };
            self.note(format!("cancel transaction {transaction}"));
            engine
                .cancel(Target::Transaction(transaction), None)
                .await
                .map(|_| ())
        }
    }

    async fn cash(&mut self, engine: &Engine) -> Result<(), EngineError> {
        let tendered = ["100", "1000", "2500", "20000"][self.rng.random_range(0..4)].to_owned();
        let target = if self.rng.random_bool(0.5) {
            let Some(attempt) = self
                .pick_attempt(engine, |a| {
                    a.kind == AttemptType::Payment && a.provider == "system"
                })
                .await
            else {
                return Ok(());
            };
            Target::Attempt(attempt.id)
        } else {
            let Some(transaction) = self.pick_transaction(engine).await else {
                return Ok(());
            };
            Target::Transaction(transaction)
        };
        self.note(format!("cash {tendered} for {target:?}"));
        engine
            .confirm_system_payment(ConfirmRequest {
                target,
                tendered,
                note: None,
            })
            .await
            .map(|_| ())
    }

    async fn refund(&mut self, engine: &Engine) -> Result<(), EngineError> {
        if !self.requests.is_empty() && self.rng.random_bool(0.25) {
            // The till repeats a refund whose answer it did not trust.
            let request = self.requests[self.rng.random_range(0..self.requests.len())].clone();
            self.note(format!("repeat refund {request:?}"));
            return engine.refund(request).await.map(|_| ());
        }
        let Some(attempt) = self
            .pick_attempt(engine, |a| {
                a.kind == AttemptType::Payment
                    && a.status == AttemptStatus::Success
                    && a.refundable() > Decimal::ZERO
            })
            .await
        else {
            return Ok(());
        };
        let refundable = attempt.refundable();
        let amount = if self.rng.random_bool(0.5) {
            refundable
        } else {
            (refundable / Decimal::from(2)).round_dp(2)
        };
        let request_id = self
            .rng
            .random_bool(0.6)
            .then(|| format!("refund-{}", self.requests.len() + 1));
        let request = RefundRequest {
            attempt_id: attempt.id,
            amount: amount.to_string(),
            reason: None,
            request_id,
        };
        self.note(format!("refund {request:?}"));
        if request.request_id.is_some() {
            self.requests.push(request.clone());
        }
        engine.refund(request).await.map(|_| ())
    }

    async fn pick_transaction(&mut self, engine: &Engine) -> Option<String> {
        let list = engine
            .list_transactions(qrpayd::engine::ListRequest {
                limit: Some(500),
                ..Default::default()
            })
            .await
            .ok()?;
        if list.is_empty() {
            return None;
        }
        Some(list[self.rng.random_range(0..list.len())].id.clone())
    }

    async fn pick_attempt(
        &mut self,
        engine: &Engine,
        wanted: impl Fn(&qrpayd::domain::Attempt) -> bool,
    ) -> Option<qrpayd::domain::Attempt> {
        let list = engine
            .list_transactions(qrpayd::engine::ListRequest {
                limit: Some(500),
                ..Default::default()
            })
            .await
            .ok()?;
        let mut candidates = Vec::new();
        for t in list {
            let view = engine.get_transaction(&t.id).await.ok()?;
            candidates.extend(view.attempts.into_iter().filter(|a| wanted(a)));
        }
        if candidates.is_empty() {
            return None;
        }
        Some(candidates.swap_remove(self.rng.random_range(0..candidates.len())))
    }
}
