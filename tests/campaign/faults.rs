//! The provider of the simulation: the simulator behind a layer that injects the faults a real
//! network and a real provider produce, each chosen by the scenario's seeded generator.
//!
//! - The provider is down for a while: every call fails before it reaches it.
//! - A call fails before it reaches the provider (nothing happened there).
//! - A call reaches the provider and takes effect, but its answer is lost (a timeout).
//! - The provider asks to slow down (429 with a Retry-After).
//! - A check answers its payment rows twice, or out of order.
//! - The daemon crashes at this call: before it reaches the provider, or after the provider
//!   took it and before the answer arrives (the call then never returns; the world drops the
//!   daemon, as `kill -9` would).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;

use qrpayd::domain::Currency;
use qrpayd::providers::{
    CancelOutcome, CheckResult, CreateRequest, Invoice, Provider, ProviderError, RefundOutcome,
    RefundRequest, Simulator,
};

/// How often each fault happens, out of 1000 calls.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    pub fail_before: u32,
    pub lose_answer: u32,
    pub rate_limit: u32,
    pub duplicate_rows: u32,
    pub shuffle_rows: u32,
}

/// Where the next crash happens: at the `at`-th provider call from now, before or after the
/// provider took it.
#[derive(Debug, Clone, Copy)]
pub struct CrashPoint {
    pub at: u32,
    pub after_provider: bool,
}

struct State {
    rng: ChaCha8Rng,
    rates: FaultRates,
    down: bool,
    crash: Option<CrashPoint>,
    calls: u64,
    /// Calls per kind and object within the current virtual second, to catch a retry loop
    /// that hammers the provider.
    recent: std::collections::HashMap<String, (tokio::time::Instant, u32)>,
    hammered: Option<String>,
}

/// More calls than this on one object in one virtual second is a retry loop.
const MOST_CALLS_PER_SECOND: u32 = 10;

/// The simulator with faults. Shared by every incarnation of the daemon, as a remote provider
/// outlives the terminal's crashes.
pub struct Faulty {
    inner: Arc<Simulator>,
    state: Mutex<State>,
    /// Signalled when a crash point is reached.
    pub crashed: Arc<Notify>,
}

/// What to do with one call.
enum Fate {
    Normal,
    FailBefore,
    LoseAnswer,
    RateLimit(Duration),
    CrashBefore,
    CrashAfter,
}

impl Faulty {
    pub fn new(inner: Arc<Simulator>, seed: u64, rates: FaultRates) -> Faulty {
        use rand::SeedableRng;
        Faulty {
            inner,
            state: Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_fa17),
                rates,
                down: false,
                crash: None,
                calls: 0,
                recent: std::collections::HashMap::new(),
                hammered: None,
            }),
            crashed: Arc::new(Notify::new()),
        }
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.inner
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The provider is down (every call fails before it reaches it) or back.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Schedules the next crash.
    pub fn crash_at(&self, point: Option<CrashPoint>) {
        self.state().crash = point;
    }

    /// No more faults: the end of a scenario, when the world heals.
    pub fn heal(&self) {
        let mut state = self.state();
        state.down = false;
        state.crash = None;
        state.rates = FaultRates {
            fail_before: 0,
            lose_answer: 0,
            rate_limit: 0,
            duplicate_rows: 0,
            shuffle_rows: 0,
        };
    }

    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    /// A new incarnation of the daemon starts (its virtual clock is another runtime's).
    pub fn daemon_restarted(&self) {
        self.state().recent.clear();
    }

    /// The call that came more often than a provider would tolerate, if any.
    pub fn hammered(&self) -> Option<String> {
        self.state().hammered.clone()
    }

    fn count(&self, what: &str) {
        let now = tokio::time::Instant::now();
        let mut state = self.state();
        let entry = state.recent.entry(what.to_owned()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > MOST_CALLS_PER_SECOND && state.hammered.is_none() {
            state.hammered = Some(format!(
                "{what}: more than {MOST_CALLS_PER_SECOND} calls in one second"
            ));
        }
    }

    fn fate(&self) -> Fate {
        let mut state = self.state();
        state.calls += 1;
        if let Some(point) = &mut state.crash {
            if point.at == 0 {
                let after = point.after_provider;
                state.crash = None;
                return if after {
                    Fate::CrashAfter
                } else {
                    Fate::CrashBefore
                };
            }
            point.at -= 1;
        }
        if state.down {
            return Fate::FailBefore;
        }
        let rates = state.rates;
        let roll = state.rng.random_range(0..1000);
        if roll < rates.fail_before {
            Fate::FailBefore
        } else if roll < rates.fail_before + rates.lose_answer {
            Fate::LoseAnswer
        } else if roll < rates.fail_before + rates.lose_answer + rates.rate_limit {
            Fate::RateLimit(Duration::from_secs(state.rng.random_range(1..=30)))
        } else {
            Fate::Normal
        }
    }

    /// Runs `call` against the simulator as this call's fate says.
    async fn run<T>(
        &self,
        what: String,
        call: impl AsyncFnOnce() -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        if std::env::var_os("QRPAYD_CAMPAIGN_TRACE").is_some() {
            eprintln!("{:?} {what}", tokio::time::Instant::now());
        }
        self.count(&what);
        match self.fate() {
            Fate::Normal => call().await,
            Fate::FailBefore => Err(ProviderError::Unavailable(
                "the network dropped the request".to_owned(),
            )),
            Fate::LoseAnswer => {
                let _ = call().await;
                Err(ProviderError::Timeout)
            }
            Fate::RateLimit(after) => Err(ProviderError::RateLimited {
                retry_after: Some(after),
            }),
            Fate::CrashBefore => {
                self.crashed.notify_one();
                std::future::pending().await
            }
            Fate::CrashAfter => {
                let _ = call().await;
                self.crashed.notify_one();
                std::future::pending().await
            }
        }
    }

    /// A check's rows as a flaky provider may list them: twice, or out of order.
    fn garble(&self, mut check: CheckResult) -> CheckResult {
        let mut state = self.state();
        let rates = state.rates;
        if state.rng.random_range(0..1000) < rates.duplicate_rows {
            let again = check.payments.clone();
            check.payments.extend(again);
        }
        if state.rng.random_range(0..1000) < rates.shuffle_rows {
            check.payments.shuffle(&mut state.rng);
        }
        check
    }
}

#[async_trait]
impl Provider for Faulty {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn display_name(&self) -> &str {
        self.inner.display_name()
    }

    fn currencies(&self) -> &[Currency] {
        self.inner.currencies()
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }

    async fn create(&self, request: &CreateRequest) -> Result<Invoice, ProviderError> {
        self.run(format!("create {}", request.attempt_code), async || {
            self.inner.create(request).await
        })
        .await
    }

    async fn lookup(&self, request: &CreateRequest) -> Result<Option<Invoice>, ProviderError> {
        self.run(format!("lookup {}", request.attempt_code), async || {
            self.inner.lookup(request).await
        })
        .await
    }

    async fn check(&self, invoice_id: &str) -> Result<CheckResult, ProviderError> {
        let check = self
            .run(format!("check {invoice_id}"), async || {
                self.inner.check(invoice_id).await
            })
            .await?;
        Ok(self.garble(check))
    }

    async fn cancel(&self, invoice_id: &str) -> Result<CancelOutcome, ProviderError> {
        self.run(format!("cancel {invoice_id}"), async || {
            self.inner.cancel(invoice_id).await
        })
        .await
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        self.run(format!("refund {}", request.idempotency_key), async || {
            self.inner.refund(request).await
        })
        .await
    }
}
