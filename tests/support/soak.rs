//! The soak: the real `qrpayd` binary, as a separate process on a private bus, against the
//! tests' mock QPay and mock AppotaPay with faults switched on, killed with `kill -9` at random
//! moments, and held to the fault campaign's invariants (`tests/campaign/invariants.rs`)
//! against the mocks' ledgers. Shared by the long program (`benches/soak.rs`, the release
//! binary, 1 000 kills and more) and its short seeded form in `cargo test` (`tests/api/soak.rs`,
//! the debug binary).
//!
//! One seed decides everything this program decides: what the till does (Checkout of new and
//! repeated orders, by QPay, AppotaPay or cash, partial or not, replacing the open attempt or
//! not; Cancel by attempt and by transaction; cash; Refund with a `request_id`, and repeated;
//! Verify), what the customer pays and when, which faults the providers show (QPay: 500, an
//! answer that comes after the work was done and after the daemon gave up waiting, malformed
//! JSON, 429 with a `Retry-After`, 401, 404 for a payment, an invoice QPay loses; AppotaPay:
//! 500, 429, malformed JSON, "temporarily unavailable" in an error body or inside a 200), when
//! AppotaPay gives up on an order nobody paid, and when the daemon is killed: between steps,
//! while a till call is in flight, or once QPay has done the work of a call whose answer it
//! holds back. What it cannot decide is the timing of a real process, so a replay makes the
//! same choices but may interleave them differently with the daemon's own work.
//!
//! Checks:
//! - After every `kill -9`, with the daemon dead (so that its file and the ledgers are read at
//!   one moment): the campaign's `always` invariants. The daemon's `OpenAttempts` cannot be
//!   read then, so it is given the count the file implies; it is compared with the daemon's
//!   own answer at the end. A QR's deadline is checked with the time the daemon could not act
//!   taken off: its last downtime, and four request timeouts (a final check and a close each
//!   may wait that long for the provider).
//! - At the end: the providers heal, AppotaPay gives up on every order still unpaid, the
//!   daemon restarts (a last kill), the till cancels the cash attempts still waiting for a
//!   cashier, and the daemon must close everything by itself (awaited on its signals,
//!   bounded); then the campaign's `settled` invariants, with `OpenAttempts` as the daemon
//!   reports it.
//!
//! The mocks' ledgers become the campaign's (`SimulatedInvoice`). A QPay invoice's key is its
//! `sender_invoice_no`, the attempt's idempotency key; its payments are every payment ever
//! made on it; what was refunded is its voided and refunded payments; it can be paid while it
//! is neither cancelled, nor lost, nor fully paid, and its QR reached the till (QPay cannot
//! say which invoice a lost create made, and an invoice nobody was shown cannot be paid: see
//! README, "QPay"). An AppotaPay order's key and id are its `partner_ref_id`; it holds one
//! payment once `success` (or `void`, then refunded), and can be paid while `pending` or
//! `processing` and shown.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::Value;

use qrpayd::dbus::client::{Arg, Client, ClientError, Request};
use qrpayd::dbus::{BusAddress, PrivateBus};
use qrpayd::domain::{AttemptType, Timestamp};
use qrpayd::providers::simulator::SimulatedInvoice;
use qrpayd::store::Store;

use crate::invariants::{self, Records};
use crate::mock_appotapay::{self as appota, MockAppotapay, MockOrder, MockStatus};
use crate::mock_qpay::{
    CLIENT_ID, CLIENT_SECRET, Failure, INVOICE_CODE, MockInvoice, MockQpay, Route,
};

/// The daemon's QPay request timeout (the lowest it takes).
const REQUEST_TIMEOUT_MS: u64 = 1000;
/// How long the daemon may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one till call may take before the daemon counts as hung.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the healed daemon may take to close everything.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);
/// How many of the last steps a violation's report shows.
const STEPS_SHOWN: usize = 40;

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    /// How many times the daemon is killed (the last kill restarts it healed).
    pub kills: u32,
    /// The `qrpayd` binary.
    pub daemon: PathBuf,
    /// Print every step as it happens.
    pub trace: bool,
}

impl Settings {
    /// The settings `QRPAYD_SOAK_SEED`, `QRPAYD_SOAK_KILLS` and `QRPAYD_SOAK_TRACE` give, with
    /// these defaults (`seed` `None`: one taken from the clock).
    pub fn from_env(seed: Option<u64>, kills: u32, daemon: &str) -> Result<Settings, String> {
        let number = |name: &str| match std::env::var(name) {
            Ok(value) => value
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{name} must be a whole number, not {value:?}")),
            Err(_) => Ok(None),
        };
        let fresh = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
        };
        Ok(Settings {
            seed: number("QRPAYD_SOAK_SEED")?.or(seed).unwrap_or_else(fresh),
            kills: number("QRPAYD_SOAK_KILLS")?.map_or(kills, |k| k as u32),
            daemon: daemon.into(),
            trace: std::env::var_os("QRPAYD_SOAK_TRACE").is_some(),
        })
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub kills: u32,
    /// Kills while a till call was in flight.
    pub kills_mid_call: u32,
    /// Kills after QPay did the work of a call and before its answer.
    pub kills_after_provider: u32,
    pub actions: u64,
    pub checkouts: u64,
    /// Payments customers made at the mock.
    pub payments: u64,
    pub refunds: u64,
    /// Faults switched on at the mock.
    pub faults: u64,
    /// Requests that reached the mock QPay and the mock AppotaPay.
    pub calls: usize,
    pub appotapay_calls: usize,
    pub transactions: usize,
    pub attempts: usize,
    pub elapsed: Duration,
}

/// Runs the soak; the error is the first violation, with the seed and the steps before it.
pub async fn run(settings: Settings) -> Result<Report, String> {
    let mut soak = Soak::start(settings).await?;
    let result = soak.run().await;
    soak.daemon.kill_9();
    match result {
        Ok(()) => Ok(soak.report()),
        Err(violation) => Err(soak.explain(&violation)),
    }
}

/// A `qrpayd run` child process; dropping it kills it.
struct Daemon {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open the daemon's log: {e}"))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("cannot share the daemon's log: {e}"))?;
        let child = Command::new(&self.binary)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown code runs.
    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process ended on its own (a crash).
    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// An order the till rang up.
#[derive(Debug, Clone)]
struct Order {
    source_id: String,
    amount: &'static str,
    currency: &'static str,
    /// `qpay`, `appotapay`, or `system` (cash).
    provider: &'static str,
    allow_partial: bool,
}

/// How a life of the daemon ends.
#[derive(Debug, Clone, Copy)]
enum Death {
    BetweenSteps,
    MidCall,
    AfterProvider(Route),
}

struct Soak {
    settings: Settings,
    rng: ChaCha8Rng,
    /// Held for its lifetime: the bus socket, the state, the log.
    dir: tempfile::TempDir,
    bus: PrivateBus,
    mock: MockQpay,
    appota: MockAppotapay,
    daemon: Daemon,
    orders: Vec<Order>,
    /// Transactions the till heard of.
    transactions: Vec<String>,
    /// Refunds the till sent with a `request_id`, to repeat some.
    refunds: Vec<Request>,
    /// QR texts and invoice ids the till was shown or the daemon recorded: the invoices a
    /// customer can pay.
    shown_qrs: HashSet<String>,
    shown_invoices: HashSet<String>,
    log: VecDeque<String>,
    report: Report,
    started: Instant,
    /// When the daemon was last killed, and how long it then took to be ready.
    killed_at: Instant,
    downtime: Duration,
}

impl Soak {
    async fn start(settings: Settings) -> Result<Soak, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
        let bus = PrivateBus::start(dir.path()).map_err(|e| format!("no private bus: {e}"))?;
        let mock = MockQpay::start().await;
        let appota = MockAppotapay::start().await;
        let state = dir.path().join("state");
        let config = dir.path().join("qrpayd.toml");
        let text = config_text(&state, bus.address(), &mock.base_url, &appota.base_url);
        std::fs::write(&config, text).map_err(|e| format!("cannot write the config: {e}"))?;
        let daemon = Daemon {
            binary: settings.daemon.clone(),
            config,
            log: dir.path().join("daemon.log"),
            child: None,
        };
        Ok(Soak {
            rng: ChaCha8Rng::seed_from_u64(settings.seed),
            report: Report {
                seed: settings.seed,
                ..Report::default()
            },
            settings,
            dir,
            bus,
            mock,
            appota,
            daemon,
            orders: Vec::new(),
            transactions: Vec::new(),
            refunds: Vec::new(),
            shown_qrs: HashSet::new(),
            shown_invoices: HashSet::new(),
            log: VecDeque::new(),
            started: Instant::now(),
            killed_at: Instant::now(),
            downtime: Duration::ZERO,
        })
    }

    fn note(&mut self, line: String) {
        if self.settings.trace {
            eprintln!("{:>8.3} {line}", self.started.elapsed().as_secs_f64());
        }
        if self.log.len() == STEPS_SHOWN {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    fn explain(&self, violation: &str) -> String {
        let mut text = format!(
            "seed {}: {violation}\nafter {} kills; the last steps, oldest first:\n",
            self.settings.seed, self.report.kills
        );
        for line in &self.log {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("the daemon's last log lines:\n");
        text.push_str(&self.daemon.log_tail());
        text
    }

    fn report(&self) -> Report {
        let mut report = self.report.clone();
        report.appotapay_calls = self.appota.total();
        report.calls = self.mock.seen().len() + report.appotapay_calls;
        report.elapsed = self.started.elapsed();
        report
    }

    fn store_path(&self) -> PathBuf {
        self.dir.path().join("state").join(Store::FILE_NAME)
    }

    async fn run(&mut self) -> Result<(), String> {
        self.daemon.spawn()?;
        for _ in 1..self.settings.kills.max(1) {
            let client = self.ready().await?;
            let actions = self.rng.random_range(0..6);
            for _ in 0..actions {
                self.act(&client).await?;
            }
            let death = match self.rng.random_range(0..10) {
                0..4 => Death::BetweenSteps,
                4..8 => Death::MidCall,
                _ => Death::AfterProvider(
                    [
                        Route::CreateInvoice,
                        Route::Check,
                        Route::CancelInvoice,
                        Route::VoidPayment,
                        Route::Refresh,
                    ][self.rng.random_range(0..5)],
                ),
            };
            self.die(&client, death).await?;
        }
        self.settle().await
    }

    /// Waits for the restarted daemon; a client on the bus.
    async fn ready(&mut self) -> Result<Client, String> {
        let client = Client::connect(&BusAddress::parse(self.bus.address()))
            .await
            .map_err(|e| format!("cannot connect to the bus: {e}"))?;
        if let Err(error) = client.wait_for_daemon(READY_TIMEOUT).await {
            let exit = self.daemon.exited().unwrap_or_default();
            return Err(format!(
                "the daemon did not come up after a kill ({error}) {exit}"
            ));
        }
        self.downtime = self.killed_at.elapsed();
        Ok(client)
    }

    /// One till call, bounded; `Internal` and a hang are violations, other errors answers.
    async fn call(
        &mut self,
        what: String,
        call: impl Future<Output = Result<Value, ClientError>>,
    ) -> Result<Option<Value>, String> {
        self.report.actions += 1;
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Err(_) => Err(format!("{what}: no answer within {CALL_TIMEOUT:?}")),
            Ok(Ok(reply)) => {
                self.note(format!("{what} -> ok"));
                Ok(Some(reply))
            }
            Ok(Err(error)) if error.short_name() == Some("Internal") => {
                Err(format!("{what}: the daemon failed inside: {error}"))
            }
            Ok(Err(error)) => {
                self.note(format!(
                    "{what} -> {}",
                    error.short_name().unwrap_or("error")
                ));
                Ok(None)
            }
        }
    }

    /// One random action of the till, a customer, QPay or time.
    async fn act(&mut self, client: &Client) -> Result<(), String> {
        match self.rng.random_range(0..100) {
            0..22 => {
                let order = self.new_order();
                self.checkout(client, &order, false).await
            }
            22..28 => {
                if self.orders.is_empty() {
                    return Ok(());
                }
                let mut order = self.orders[self.rng.random_range(0..self.orders.len())].clone();
                if self.rng.random_bool(0.2) {
                    // The customer pays another way: cash instead of the QR, or the QR instead.
                    order.provider = match (order.provider, order.currency) {
                        ("system", "VND") => "appotapay",
                        ("system", _) => "qpay",
                        _ => "system",
                    };
                }
                let replace = self.rng.random_bool(0.3);
                self.checkout(client, &order, replace).await
            }
            28..45 => {
                self.customer_pays();
                Ok(())
            }
            45..52 => self.cancel(client).await,
            52..58 => self.cash(client).await,
            58..68 => self.refund(client).await,
            68..74 => {
                let Some(attempt) = self.pick_attempt(client, |_| true).await? else {
                    return Ok(());
                };
                let id = attempt["id"].as_str().unwrap_or("").to_owned();
                self.call(format!("verify {id}"), client.verify(&id))
                    .await
                    .map(|_| ())
            }
            74..88 => {
                self.fault();
                Ok(())
            }
            88..90 => {
                self.lose_an_invoice();
                Ok(())
            }
            _ => {
                // Time passes: the daemon polls, expires and closes on its own meanwhile.
                let ms = [50, 200, 600, 1500][self.rng.random_range(0..4)];
                self.note(format!("wait {ms} ms"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
        }
    }

    fn new_order(&mut self) -> Order {
        let source_id = format!("soak-{}", self.orders.len() + 1);
        let order = match self.rng.random_range(0..100) {
            // AppotaPay: whole VND, at least 10 000, paid in one go.
            0..30 => Order {
                source_id,
                amount: ["10000", "25000", "150000"][self.rng.random_range(0..3)],
                currency: "VND",
                provider: "appotapay",
                allow_partial: false,
            },
            roll => Order {
                source_id,
                amount: ["1000", "2500", "12500", "123.45"][self.rng.random_range(0..4)],
                currency: "MNT",
                provider: if roll < 45 { "system" } else { "qpay" },
                allow_partial: self.rng.random_bool(0.4),
            },
        };
        self.orders.push(order.clone());
        order
    }

    fn checkout_request(&mut self, order: &Order, replace_open: bool) -> Request {
        let expires_in_ms = [2_000u64, 4_000, 8_000][self.rng.random_range(0..3)];
        let mut request = Request::new();
        request.insert("source_id".into(), Arg::from(order.source_id.as_str()));
        request.insert("amount".into(), Arg::from(order.amount));
        request.insert("provider".into(), Arg::from(order.provider));
        request.insert("currency".into(), Arg::from(order.currency));
        request.insert("allow_partial".into(), Arg::Bool(order.allow_partial));
        request.insert("expires_in_ms".into(), Arg::U64(expires_in_ms));
        request.insert("replace_open".into(), Arg::Bool(replace_open));
        request
    }

    async fn checkout(
        &mut self,
        client: &Client,
        order: &Order,
        replace_open: bool,
    ) -> Result<(), String> {
        let request = self.checkout_request(order, replace_open);
        self.report.checkouts += 1;
        let what = format!(
            "checkout {} {} {} {} partial={} replace={replace_open}",
            order.source_id, order.amount, order.currency, order.provider, order.allow_partial
        );
        if let Some(reply) = self.call(what, client.checkout(&request)).await? {
            self.heard(&reply);
        }
        Ok(())
    }

    /// What the till learns from a Checkout reply: its transaction, and the QR on screen.
    fn heard(&mut self, reply: &Value) {
        if let Some(id) = reply["transaction_id"].as_str()
            && !self.transactions.iter().any(|t| t == id)
        {
            self.transactions.push(id.to_owned());
        }
        if let Some(qr) = reply["qr_text"].as_str()
            && !qr.is_empty()
        {
            self.shown_qrs.insert(qr.to_owned());
        }
    }

    fn shown(&self, invoice: &MockInvoice) -> bool {
        self.shown_invoices.contains(&invoice.invoice_id)
            || self.shown_qrs.contains(&invoice.qr_text)
    }

    /// Whether a customer could pay `invoice` now.
    fn payable(&self, invoice: &MockInvoice, forgotten: &HashSet<String>) -> bool {
        let paid: Decimal = invoice.payments.iter().map(|p| p.amount).sum();
        !invoice.cancelled
            && !forgotten.contains(&invoice.invoice_id)
            && paid < invoice.amount
            && self.shown(invoice)
    }

    /// Whether a customer could pay AppotaPay order `order` now.
    fn order_payable(&self, order: &MockOrder) -> bool {
        matches!(order.status.as_str(), "pending" | "processing")
            && (self.shown_invoices.contains(&order.reference)
                || self.shown_qrs.contains(&order.qr_text))
    }

    /// A customer pays (all or part of what is left) an invoice whose QR they were shown, at
    /// QPay or (in full) at AppotaPay.
    fn customer_pays(&mut self) {
        if self.rng.random_bool(0.3) {
            let orders: Vec<MockOrder> = self
                .appota
                .state()
                .orders
                .iter()
                .filter(|o| self.order_payable(o))
                .cloned()
                .collect();
            if let Some(order) = orders.get(self.rng.random_range(0..orders.len().max(1))) {
                self.appota
                    .set_status(&order.reference, MockStatus::Success);
                self.report.payments += 1;
                self.note(format!("customer pays AppotaPay order {}", order.reference));
            }
            return;
        }
        let forgotten = self.mock.state().forgotten.clone();
        let payable: Vec<MockInvoice> = self
            .mock
            .invoices()
            .into_iter()
            .filter(|i| self.payable(i, &forgotten))
            .collect();
        if payable.is_empty() {
            return;
        }
        let invoice = &payable[self.rng.random_range(0..payable.len())];
        let paid: Decimal = invoice.payments.iter().map(|p| p.amount).sum();
        let rest = invoice.amount - paid;
        let partial = invoice.request["allow_partial"] == true;
        let amount = if partial && self.rng.random_bool(0.4) {
            (rest / Decimal::from(3))
                .round_dp(2)
                .max(Decimal::new(1, 2))
        } else {
            rest
        };
        let id = self.mock.pay(&invoice.invoice_id, &amount.to_string());
        self.report.payments += 1;
        self.note(format!(
            "customer pays {amount} of {} ({id})",
            invoice.invoice_id
        ));
    }

    /// A transaction the till heard of, and its view.
    async fn pick_transaction(&mut self, client: &Client) -> Result<Option<Value>, String> {
        if self.transactions.is_empty() {
            return Ok(None);
        }
        let id = self.transactions[self.rng.random_range(0..self.transactions.len())].clone();
        let view = match tokio::time::timeout(CALL_TIMEOUT, client.get_transaction(&id)).await {
            Err(_) => {
                return Err(format!(
                    "get transaction {id}: no answer within {CALL_TIMEOUT:?}"
                ));
            }
            Ok(Ok(view)) => view,
            Ok(Err(_)) => return Ok(None),
        };
        for attempt in view["attempts"].as_array().into_iter().flatten() {
            if let Some(invoice) = attempt["invoice_id"].as_str() {
                self.shown_invoices.insert(invoice.to_owned());
            }
        }
        Ok(Some(view))
    }

    /// An attempt of a transaction the till heard of, chosen among those `wanted` accepts.
    async fn pick_attempt(
        &mut self,
        client: &Client,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, String> {
        let Some(view) = self.pick_transaction(client).await? else {
            return Ok(None);
        };
        let candidates: Vec<Value> = view["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| wanted(a))
            .cloned()
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            candidates[self.rng.random_range(0..candidates.len())].clone(),
        ))
    }

    /// What a Cancel or a cash confirmation names: an attempt that `wanted` accepts (most of
    /// the time `by_attempt`), or a transaction.
    async fn target(
        &mut self,
        client: &Client,
        by_attempt: f64,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Option<(&'static str, String)>, String> {
        if self.rng.random_bool(by_attempt) {
            let attempt = self.pick_attempt(client, wanted).await?;
            Ok(attempt.and_then(|a| Some(("attempt_id", a["id"].as_str()?.to_owned()))))
        } else {
            let view = self.pick_transaction(client).await?;
            Ok(view
                .and_then(|v| Some(("transaction_id", v["transaction_id"].as_str()?.to_owned()))))
        }
    }

    async fn cancel(&mut self, client: &Client) -> Result<(), String> {
        let target = self
            .target(client, 0.6, |a| a["type"] == "100_PAYMENT")
            .await?;
        let Some((key, id)) = target else {
            return Ok(());
        };
        let request = Request::from([(key.to_owned(), Arg::from(id))]);
        self.call(format!("cancel {request:?}"), client.cancel(&request))
            .await
            .map(|_| ())
    }

    async fn cash(&mut self, client: &Client) -> Result<(), String> {
        let tendered = ["100", "1000", "2500", "20000"][self.rng.random_range(0..4)];
        let target = self
            .target(client, 0.5, |a| {
                a["type"] == "100_PAYMENT" && a["provider"] == "system"
            })
            .await?;
        let Some((key, id)) = target else {
            return Ok(());
        };
        let request = Request::from([
            (key.to_owned(), Arg::from(id)),
            ("tendered".to_owned(), Arg::from(tendered)),
        ]);
        self.call(
            format!("cash {request:?}"),
            client.confirm_system_payment(&request),
        )
        .await
        .map(|_| ())
    }

    /// A refund of one whole payment (QPay gives back payments, not amounts), with a
    /// `request_id` most of the time; or a refund the till sent before, repeated.
    async fn refund(&mut self, client: &Client) -> Result<(), String> {
        if !self.refunds.is_empty() && self.rng.random_bool(0.25) {
            let request = self.refunds[self.rng.random_range(0..self.refunds.len())].clone();
            self.report.refunds += 1;
            return self
                .call(
                    format!("repeat refund {request:?}"),
                    client.refund(&request),
                )
                .await
                .map(|_| ());
        }
        let Some(view) = self.pick_transaction(client).await? else {
            return Ok(());
        };
        let payments: Vec<(String, String)> = view["payments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p["attempt_id"].as_str()?.to_owned(),
                    p["amount"].as_str()?.to_owned(),
                ))
            })
            .collect();
        if payments.is_empty() {
            return Ok(());
        }
        let (attempt_id, amount) = payments[self.rng.random_range(0..payments.len())].clone();
        let mut request = Request::new();
        request.insert("attempt_id".into(), Arg::from(attempt_id));
        request.insert("amount".into(), Arg::from(amount));
        if self.rng.random_bool(0.8) {
            let key = format!("refund-{}", self.refunds.len() + 1);
            request.insert("request_id".into(), Arg::from(key));
            self.refunds.push(request.clone());
        }
        self.report.refunds += 1;
        self.call(format!("refund {request:?}"), client.refund(&request))
            .await
            .map(|_| ())
    }

    /// QPay or AppotaPay misbehaves on the next few calls to one route.
    fn fault(&mut self) {
        if self.rng.random_bool(0.3) {
            let route = [
                appota::Route::CreateOrder,
                appota::Route::OrderStatus,
                appota::Route::Unknown,
            ][self.rng.random_range(0..3)];
            let failure = match self.rng.random_range(0..5) {
                0 => appota::Failure::Status500,
                1 => appota::Failure::Status429(self.rng.random_range(0..3u32).to_string()),
                2 => appota::Failure::MalformedJson,
                // "Temporarily unavailable", as an error body or inside a 200.
                _ => appota::Failure::Code {
                    http: [200, 400, 503][self.rng.random_range(0..3)],
                    code: [42, 93, 500][self.rng.random_range(0..3)],
                    code_as_string: self.rng.random_bool(0.5),
                    message: "Hệ thống đang bận".to_owned(),
                },
            };
            let n = self.rng.random_range(1..4);
            self.report.faults += 1;
            self.note(format!(
                "fault: the next {n} AppotaPay {route:?} answer {failure:?}"
            ));
            for _ in 0..n {
                self.appota.fail_next(route, failure.clone());
            }
            return;
        }
        let route = [
            Route::CreateInvoice,
            Route::Check,
            Route::CancelInvoice,
            Route::VoidPayment,
            Route::RefundPayment,
            Route::Refresh,
            Route::Unknown,
        ][self.rng.random_range(0..7)];
        let failure = match self.rng.random_range(0..7) {
            0 | 1 => Failure::Status500,
            // The work is done, the answer comes after the daemon stopped waiting (or not).
            2 | 3 => Failure::Slow(Duration::from_millis(
                [300, 1500, 3000][self.rng.random_range(0..3)],
            )),
            4 => Failure::MalformedJson,
            5 => Failure::Status429(self.rng.random_range(0..3u32).to_string()),
            _ => match route {
                Route::VoidPayment | Route::RefundPayment => Failure::NotFound("PAYMENT_NOTFOUND"),
                _ => Failure::Status401,
            },
        };
        let n = self.rng.random_range(1..4);
        self.report.faults += 1;
        self.note(format!("fault: the next {n} {route:?} answer {failure:?}"));
        self.mock.fail_next(route, n, failure);
    }

    /// QPay loses an unpaid invoice: it answers 404 about it from now on.
    fn lose_an_invoice(&mut self) {
        let unpaid: Vec<String> = self
            .mock
            .invoices()
            .into_iter()
            .filter(|i| i.payments.is_empty() && !i.cancelled)
            .map(|i| i.invoice_id)
            .collect();
        if unpaid.is_empty() {
            return;
        }
        let invoice = unpaid[self.rng.random_range(0..unpaid.len())].clone();
        self.report.faults += 1;
        self.note(format!("QPay loses invoice {invoice}"));
        self.mock.forget_invoice(&invoice);
    }

    /// Ends this life of the daemon as `death` says, then checks the invariants with the
    /// daemon dead, and starts the next life.
    async fn die(&mut self, client: &Client, death: Death) -> Result<(), String> {
        match death {
            Death::BetweenSteps => self.note("kill -9 between steps".to_owned()),
            Death::MidCall => {
                let order = self.new_order();
                let request = self.checkout_request(&order, false);
                let delay = self.rng.random_range(0..120);
                self.note(format!(
                    "kill -9 {delay} ms into checkout {} {}",
                    order.source_id, order.amount
                ));
                let in_flight = {
                    let client = client.clone();
                    tokio::spawn(async move { client.checkout(&request).await })
                };
                // The kill lands at a chosen moment of the call: deliberately timed.
                tokio::time::sleep(Duration::from_millis(delay)).await;
                self.kill_and_check().await?;
                let _ = tokio::time::timeout(CALL_TIMEOUT, in_flight).await;
                self.report.kills_mid_call += 1;
                return self.daemon.spawn();
            }
            Death::AfterProvider(route) => {
                let before = self.mock.count(route);
                self.mock
                    .fail_next(route, 1, Failure::Slow(Duration::from_secs(5)));
                self.note(format!(
                    "kill -9 once QPay did the work of {route:?}, before its answer"
                ));
                // Something that makes the daemon call `route`; a check comes with the next poll.
                let call: Option<tokio::task::JoinHandle<_>> = match route {
                    Route::CreateInvoice | Route::Refresh => {
                        if route == Route::Refresh {
                            // The next call finds its token refused and refreshes it.
                            self.mock.expire_access_tokens();
                        }
                        let order = self.new_order();
                        let order = Order {
                            provider: "qpay",
                            currency: "MNT",
                            ..order
                        };
                        let request = self.checkout_request(&order, false);
                        let client = client.clone();
                        Some(tokio::spawn(async move { client.checkout(&request).await }))
                    }
                    Route::CancelInvoice => {
                        let attempt = self
                            .pick_attempt(client, |a| {
                                a["type"] == "100_PAYMENT" && a["status"] == "204_SENT"
                            })
                            .await?;
                        attempt.map(|a| {
                            let mut request = Request::new();
                            request.insert(
                                "attempt_id".into(),
                                Arg::from(a["id"].as_str().unwrap_or("")),
                            );
                            let client = client.clone();
                            tokio::spawn(async move { client.cancel(&request).await })
                        })
                    }
                    Route::VoidPayment => {
                        self.refund(client).await?;
                        None
                    }
                    _ => None,
                };
                let reached = tokio::time::timeout(
                    Duration::from_secs(3),
                    self.mock
                        .wait_for("the held call", |state| state.count(route) > before),
                )
                .await
                .is_ok();
                if reached {
                    self.report.kills_after_provider += 1;
                } else {
                    self.note(format!("(no {route:?} came; killed anyway)"));
                }
                self.kill_and_check().await?;
                if let Some(call) = call {
                    let _ = tokio::time::timeout(CALL_TIMEOUT, call).await;
                }
                return self.daemon.spawn();
            }
        }
        self.kill_and_check().await?;
        self.daemon.spawn()
    }

    /// `kill -9`, then the invariants that hold at every moment, read with the daemon dead.
    async fn kill_and_check(&mut self) -> Result<(), String> {
        if let Some(exit) = self.daemon.exited() {
            return Err(format!("the daemon died on its own: {exit}"));
        }
        self.daemon.kill_9();
        self.killed_at = Instant::now();
        self.report.kills += 1;
        let records = self.records()?;
        let ledger = self.ledger();
        let open = records
            .attempts
            .iter()
            .filter(|a| a.may_take_money())
            .count() as u32;
        let slack = self.downtime + Duration::from_millis(4 * REQUEST_TIMEOUT_MS);
        let now = Timestamp(Timestamp::now().0 - slack.as_millis() as i64);
        invariants::always(&records, &ledger, now, open)?;
        self.appotapay_gives_up(&records, false);
        Ok(())
    }

    /// AppotaPay gives up on orders nobody paid some time after their deadline (as the real
    /// one does, within the daemon's `late_payment_watch_ms`), or on all of them (`all`).
    fn appotapay_gives_up(&mut self, records: &Records, all: bool) {
        let now = Timestamp::now();
        for attempt in records
            .attempts
            .iter()
            .filter(|a| a.provider == "appotapay")
        {
            let Some(reference) = &attempt.invoice_id else {
                continue;
            };
            let past = attempt.expires_at.is_some_and(|at| at < now);
            if !(all || past && self.rng.random_bool(0.3)) {
                continue;
            }
            let pending = self
                .appota
                .order(reference)
                .is_some_and(|o| matches!(o.status.as_str(), "pending" | "processing"));
            if pending {
                self.note(format!("AppotaPay gives up on order {reference}"));
                self.appota.set_status(
                    reference,
                    MockStatus::Error {
                        code: 67,
                        message: "Giao dịch hết hạn".to_owned(),
                    },
                );
            }
        }
    }

    /// The daemon's file, read as it stands.
    fn records(&mut self) -> Result<Records, String> {
        let store =
            Store::open(&self.store_path()).map_err(|e| format!("the store does not open: {e}"))?;
        let records = Records::read(&store)?;
        for attempt in &records.attempts {
            if let Some(invoice) = &attempt.invoice_id {
                self.shown_invoices.insert(invoice.clone());
            }
        }
        Ok(records)
    }

    /// The mock's ledger in the campaign's terms (see the module documentation).
    fn ledger(&self) -> Vec<SimulatedInvoice> {
        let forgotten = self.mock.state().forgotten.clone();
        self.mock
            .invoices()
            .iter()
            .map(|invoice| SimulatedInvoice {
                invoice_id: invoice.invoice_id.clone(),
                key: invoice.sender_invoice_no.clone(),
                amount: invoice.amount,
                payable: self.payable(invoice, &forgotten),
                payments: invoice
                    .payments
                    .iter()
                    .map(|p| (p.payment_id.clone(), p.amount))
                    .collect(),
                refunded: invoice
                    .payments
                    .iter()
                    .filter(|p| p.status != "PAID")
                    .map(|p| p.amount)
                    .sum(),
            })
            .chain(self.appota.state().orders.iter().map(|order| {
                let paid = matches!(order.status.as_str(), "success" | "void");
                SimulatedInvoice {
                    invoice_id: order.reference.clone(),
                    key: order.reference.clone(),
                    amount: Decimal::from(order.amount),
                    payable: self.order_payable(order),
                    payments: if paid {
                        vec![(order.transaction_id.clone(), Decimal::from(order.amount))]
                    } else {
                        Vec::new()
                    },
                    refunded: if order.status == "void" {
                        Decimal::from(order.amount)
                    } else {
                        Decimal::ZERO
                    },
                }
            }))
            .collect()
    }

    /// QPay heals, the daemon restarts once more, the cashier gives up on the cash still
    /// awaited, and the daemon must close everything by itself; then the settled invariants.
    async fn settle(&mut self) -> Result<(), String> {
        self.mock.heal();
        self.appota.heal();
        self.note("-- QPay and AppotaPay heal; kill -9 and restart".to_owned());
        self.kill_and_check().await?;
        let records = self.records()?;
        self.appotapay_gives_up(&records, true);
        self.daemon.spawn()?;
        let client = self.ready().await?;
        let mut signals = client
            .watch()
            .await
            .map_err(|e| format!("cannot watch the signals: {e}"))?;
        let cash: Vec<String> = self
            .records()?
            .attempts
            .iter()
            .filter(|a| {
                a.provider == "system" && a.kind == AttemptType::Payment && a.status.is_open()
            })
            .map(|a| a.id.clone())
            .collect();
        for attempt in cash {
            let mut request = Request::new();
            request.insert("attempt_id".into(), Arg::from(attempt.as_str()));
            self.call(
                format!("cancel waiting cash {attempt}"),
                client.cancel(&request),
            )
            .await?;
        }
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let open = loop {
            let open = match tokio::time::timeout(CALL_TIMEOUT, client.status()).await {
                Ok(Ok(status)) => status["open_attempts"].as_u64().unwrap_or(u64::MAX),
                _ => return Err("the healed daemon does not answer Status".to_owned()),
            };
            let records = self.records()?;
            let still_open = records.attempts.iter().find(|a| {
                a.may_take_money() || (a.kind != AttemptType::Payment && a.status.is_open())
            });
            match still_open {
                None if open == 0 => break open,
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "{SETTLE_TIMEOUT:?} after QPay healed, OpenAttempts is {open} and {} is \
                         still open",
                        still_open.map_or("nothing", |a| a.code.as_str())
                    ));
                }
                // Await the daemon's next change (a signal), at most a second.
                _ => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), signals.next()).await;
                }
            }
        };
        self.note("-- everything closed; kill -9".to_owned());
        self.daemon.kill_9();
        let records = self.records()?;
        self.report.transactions = records.transactions.len();
        self.report.attempts = records.attempts.len();
        let ledger = self.ledger();
        invariants::settled(&records, &ledger, Timestamp::now(), open as u32)
    }
}

/// The daemon's config: QPay (the mock) as the only provider, its shortest request timeout and
/// poll interval.
fn config_text(state: &Path, bus: &str, base_url: &str, appotapay_url: &str) -> String {
    format!(
        r#"[daemon]
bus = "{bus}"
state_dir = "{state}"
terminal_id = "SOAK-01"
default_currency = "MNT"
default_provider = "qpay"
max_amount = "10000000"
payment_timeout_ms = 60000
late_payment_watch_ms = 120000

[display]
png_path = "{png}"
width = 480
height = 272

[providers.qpay]
base_url = "{base_url}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
invoice_code = "{INVOICE_CODE}"
poll_interval_ms = 1000
request_timeout_ms = {REQUEST_TIMEOUT_MS}

[providers.appotapay]
base_url = "{appotapay_url}"
partner_code = "{partner_code}"
api_key = "{api_key}"
secret_key = "{secret_key}"
terminal_id = "{terminal_id}"
poll_interval_ms = 1000
request_timeout_ms = {REQUEST_TIMEOUT_MS}
"#,
        partner_code = appota::PARTNER_CODE,
        api_key = appota::API_KEY,
        secret_key = appota::SECRET_KEY,
        terminal_id = appota::TERMINAL_ID,
        state = state.display(),
        png = state.join("display.png").display(),
    )
}
