//! The engine on its own: a real SQLite file and the simulator, no D-Bus. These pin down what
//! the D-Bus tests cannot reach: the clock seam, the watchdog's round trip, the checks on what
//! a provider reports, and the memory a finished payment leaves behind.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rust_decimal::Decimal;

use super::*;
use crate::domain::{AttemptStatus, Currency};
use crate::providers::simulator::SimulatorSettings;
use crate::providers::{CheckResult, InvoiceState, ProviderPayment, Simulator};

/// A wall clock the test can step, as NTP would.
#[derive(Default)]
struct SteppedClock {
    offset_ms: AtomicI64,
}

impl SteppedClock {
    fn step(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Timestamp {
        Timestamp(Timestamp::now().0 + self.offset_ms.load(Ordering::SeqCst))
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    store: Store,
    simulator: Arc<Simulator>,
}

fn fixture(clock: Arc<dyn Clock>) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join(Store::FILE_NAME)).expect("store");
    let simulator = Arc::new(
        Simulator::new(
            SimulatorSettings {
                poll_interval: Duration::from_millis(50),
                ..SimulatorSettings::default()
            },
            None,
        )
        .expect("simulator"),
    );
    let providers = Providers::default().with_simulator(simulator.clone());
    let settings = EngineSettings::new(
        "TEST-01",
        Currency::Mnt,
        Simulator::NAME,
        Duration::from_secs(60),
    );
    let engine = Engine::with_clock(store.clone(), providers, settings, None, clock);
    Fixture {
        _dir: dir,
        engine,
        store,
        simulator,
    }
}

fn order(source_id: &str, amount: &str) -> CheckoutRequest {
    CheckoutRequest {
        source_id: source_id.to_owned(),
        amount: amount.to_owned(),
        allow_partial: Some(true),
        ..CheckoutRequest::default()
    }
}

/// The next change of `attempt_id`, in whatever status.
async fn next_change(events: &mut broadcast::Receiver<Event>, attempt_id: &str) -> Attempt {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Event::AttemptChanged { attempt, .. }) = events.recv().await
                && attempt.id == attempt_id
            {
                return attempt;
            }
        }
    })
    .await
    .expect("the attempt changes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_step_does_not_expire_a_live_qr() {
    let clock = Arc::new(SteppedClock::default());
    let f = fixture(clock.clone());
    let mut events = f.engine.subscribe();
    let reply = f
        .engine
        .checkout(order("ntp-1", "1000"))
        .await
        .expect("checkout");
    let attempt = reply.attempt;
    assert_eq!(attempt.status, AttemptStatus::Sent);
    // NTP steps the clock two hours forward, far past the QR's one minute.
    clock.step(Duration::from_secs(7200));
    let invoice = attempt.invoice_id.clone().expect("invoice");
    f.simulator
        .pay(&invoice, Some(Decimal::from(400)))
        .expect("part paid");
    f.engine.nudge(&attempt.id);
    let changed = loop {
        let changed = next_change(&mut events, &attempt.id).await;
        if changed.paid > Decimal::ZERO {
            break changed;
        }
    };
    assert_eq!(changed.paid, Decimal::from(400));
    assert_eq!(
        changed.status,
        AttemptStatus::Sent,
        "the deadline follows the monotonic clock: the QR is still live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_is_not_alive_while_the_store_does_not_answer() {
    let f = fixture(Arc::new(SystemClock));
    f.engine
        .alive(Duration::from_secs(5))
        .await
        .expect("alive at rest");
    let (held, hold) = mpsc::channel::<()>();
    let (release, wait) = mpsc::channel::<()>();
    let store = f.store.clone();
    let holder = std::thread::spawn(move || {
        store.write(|_| {
            held.send(()).expect("held");
            wait.recv().expect("released");
            Ok::<_, crate::store::StoreError>(())
        })
    });
    hold.recv().expect("the store is held");
    let stuck = f.engine.alive(Duration::from_millis(200)).await;
    assert!(
        matches!(stuck, Err(EngineError::Internal(_))),
        "{stuck:?}: the watchdog must not be fed"
    );
    release.send(()).expect("release");
    holder.join().expect("holder").expect("write");
    f.engine
        .alive(Duration::from_secs(5))
        .await
        .expect("alive again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_amount_that_is_negative_fractional_or_absurd_is_refused_and_not_recorded() {
    let f = fixture(Arc::new(SystemClock));
    let reply = f
        .engine
        .checkout(order("bad-1", "1000"))
        .await
        .expect("checkout");
    let attempt = reply.attempt;
    for amount in [
        "-5",
        "0",
        "0.001",
        "1000000000000.01",
        "79228162514264337593543950335",
    ] {
        let check = CheckResult {
            state: InvoiceState::Paid,
            payments: vec![ProviderPayment {
                payment_id: format!("P-{amount}"),
                amount: Decimal::from_str_exact(amount).expect("literal"),
                paid_at: None,
            }],
            code: "PAID".to_owned(),
            message: String::new(),
        };
        let refused = f.engine.apply_check(&attempt, check).await;
        assert!(
            matches!(&refused, Err(EngineError::ProviderRejected { code, .. }) if code == "INVALID_PROVIDER_AMOUNT"),
            "{amount}: {refused:?}"
        );
    }
    let view = f
        .engine
        .get_transaction(&attempt.transaction_id)
        .await
        .expect("get");
    assert!(view.payments.is_empty(), "nothing recorded");
    assert_eq!(view.transaction.paid, Decimal::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sums_that_would_overflow_are_refused_never_a_panic() {
    let f = fixture(Arc::new(SystemClock));
    let reply = f
        .engine
        .checkout(order("big-1", "1000"))
        .await
        .expect("checkout");
    let attempt = reply.attempt;
    // Each payment passes the per-payment ceiling; their sum is checked too.
    let payments = (0..3)
        .map(|i| ProviderPayment {
            payment_id: format!("P{i}"),
            amount: Decimal::from(999_999_999_999_i64),
            paid_at: None,
        })
        .collect();
    let check = CheckResult {
        state: InvoiceState::Paid,
        payments,
        code: "PAID".to_owned(),
        message: String::new(),
    };
    let recorded = f
        .engine
        .apply_check(&attempt, check)
        .await
        .expect("recorded");
    assert_eq!(recorded.paid, Decimal::from(2_999_999_999_997_i64));
    assert_eq!(
        money::add(Decimal::MAX, Decimal::ONE, "a sum").map_err(|e| e.to_string()),
        Err("the provider refused: AMOUNT_OVERFLOW: a sum would overflow".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_payment_leaves_no_handle_in_memory() {
    let f = fixture(Arc::new(SystemClock));
    let mut events = f.engine.subscribe();
    for i in 0..20 {
        let reply = f
            .engine
            .checkout(order(&format!("mem-{i}"), "1000"))
            .await
            .expect("checkout");
        let attempt = reply.attempt;
        f.engine.simulate_pay(&attempt.id, None).await.expect("pay");
        loop {
            let changed = next_change(&mut events, &attempt.id).await;
            if changed.status == AttemptStatus::Success && !changed.provider_open {
                break;
            }
        }
        f.engine.verify(&attempt.id).await.expect("verify");
    }
    // Supervisors end once their attempt is done; their handles go with them.
    tokio::time::timeout(Duration::from_secs(20), async {
        while f.engine.handles_in_memory() > 0 || !lock(&f.engine.inner.supervised).is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every handle is released");
}

/// The simulator, except that checking an invoice is a bug that panics.
struct PanicsOnCheck(Simulator);

#[async_trait::async_trait]
impl Provider for PanicsOnCheck {
    fn name(&self) -> &str {
        "panicky"
    }

    fn display_name(&self) -> &str {
        "Panicky"
    }

    fn currencies(&self) -> &[Currency] {
        self.0.currencies()
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(50)
    }

    async fn create(
        &self,
        request: &crate::providers::CreateRequest,
    ) -> Result<crate::providers::Invoice, crate::providers::ProviderError> {
        self.0.create(request).await
    }

    async fn lookup(
        &self,
        request: &crate::providers::CreateRequest,
    ) -> Result<Option<crate::providers::Invoice>, crate::providers::ProviderError> {
        self.0.lookup(request).await
    }

    async fn check(
        &self,
        _invoice_id: &str,
    ) -> Result<CheckResult, crate::providers::ProviderError> {
        panic!("a bug in a provider's check");
    }

    async fn cancel(
        &self,
        invoice_id: &str,
    ) -> Result<crate::providers::CancelOutcome, crate::providers::ProviderError> {
        self.0.cancel(invoice_id).await
    }

    async fn refund(
        &self,
        request: &crate::providers::RefundRequest,
    ) -> Result<crate::providers::RefundOutcome, crate::providers::ProviderError> {
        self.0.refund(request).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_that_keeps_panicking_makes_the_daemon_unhealthy_for_the_watchdog() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join(Store::FILE_NAME)).expect("store");
    let simulator = Simulator::new(SimulatorSettings::default(), None).expect("simulator");
    let providers = Providers::default().with(Arc::new(PanicsOnCheck(simulator)));
    let settings =
        EngineSettings::new("TEST-01", Currency::Mnt, "panicky", Duration::from_secs(60));
    let engine = Engine::new(store, providers, settings, None);
    let reply = engine
        .checkout(order("panic-1", "1000"))
        .await
        .expect("checkout");
    assert_eq!(reply.attempt.status, AttemptStatus::Sent);
    // Restarted a few times (a second apart), then the watchdog is no longer fed.
    tokio::time::timeout(Duration::from_secs(20), async {
        while engine.alive(Duration::from_secs(5)).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the engine reports itself unhealthy");
    let panics = lock(&engine.inner.health)
        .panics
        .get(&reply.attempt.id)
        .copied();
    assert_eq!(panics, Some(super::supervisor::SUPERVISOR_RESTARTS + 1));
}
