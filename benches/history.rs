//! qrpayd's history benchmark: does the cost of what a till does grow with the history the
//! store holds?
//!
//! Two daemons run side by side, each the release `qrpayd` binary as its own process on a
//! private D-Bus broker hosted by this program, with the simulator as provider (the daemon, the
//! calls and the figures come from `benches/common`, shared with `benches/checkout.rs`):
//!
//! 1. **Empty store**: a daemon on a fresh state directory.
//! 2. **History store**: before its daemon starts, this program writes `H` past transactions
//!    (default 300 000: a year of a busy till) into its database through `qrpayd::store`, as the
//!    engine leaves a finished simulator payment: the transaction settled, its attempt
//!    `302_SUCCESS` with its QR, one payment result, and the outbox events the store's
//!    triggers queue for each of those writes (never delivered: the daemons here have no
//!    `[upstream]`); every fifth transaction first had an attempt that expired
//!    (`501_EXPIRED`). Their times are spread
//!    over the year before now. They are written in big SQL transactions; the time it takes and
//!    the file's size are printed.
//!
//! On each daemon, measured over D-Bus with `qrpayd::dbus::client`, as a till does; the
//! checkouts and the queries alternate between the two daemons (which one goes first too), so
//! that whatever else the machine does at a moment weighs on both alike:
//!
//! - **Start-up**: from spawning `qrpayd run` to its log saying `qrpayd is ready` (the store
//!   open and checked, the bus name owned, the open attempts resumed: when it tells systemd
//!   `READY=1`); the time to the bus name is printed too.
//! - **Checkout → frame written**: after the warm-up, `N` sequential `Checkout`s, each paid and
//!   settled (not timed) before the next, as `benches/checkout.rs` phase 2 does.
//! - **Queries**, `Q` of each, in rotation, each on a different transaction: `status()` (the
//!   `Version`, `Providers`, `OpenAttempts` and `PendingSync` properties: four calls; the last
//!   two are counts the daemon also recomputes after every commit), `ListTransactions` by
//!   `source_id`, `GetTransaction` by number and by id, `CountTransactions` of today
//!   (`since` midnight UTC) and of everything (no filter), and the default `ListTransactions`
//!   (the newest 50).
//!
//! Targets, printed as PASS or MISS: every query's p50 under 5 ms with the history (its p99 is
//! printed beside it), and the Checkout p99 with the history within 20 % of the empty store's.
//! The program exits non-zero only when the harness itself fails.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench history                          # 300 000 past transactions
//! QRPAYD_BENCH_SHORT=1 cargo bench --bench history     # 20 000, 100 checkouts: a quick look
//! QRPAYD_BENCH_HISTORY=500000 cargo bench --bench history    # about 1 GB: the start-up figure
//! ```
//!
//! `QRPAYD_BENCH_HISTORY` sets `H`, `QRPAYD_BENCH_CHECKOUTS` `N` (default 500, short 100) and
//! `QRPAYD_BENCH_QUERIES` `Q` (default 200, short 50). Everything lives in a temporary
//! directory that is removed at the end (300 000 transactions take about 600 MB), unless
//! `QRPAYD_BENCH_KEEP` is set.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use qrpayd::dbus::BusAddress;
use qrpayd::dbus::client::{Arg, Client, Request};
use qrpayd::domain::{
    Attempt, AttemptStatus, AttemptType, Currency, OutboxKind, PaymentResult, Source, Timestamp,
    Transaction, TransactionStatus,
};
use qrpayd::store::{Store, StoreError};
use rust_decimal::Decimal;
use serde_json::Value;

/// The daemon process, the till's calls, the figures: shared with `benches/checkout.rs`.
mod common;
use common::*;

/// A year of a busy till.
const DEFAULT_HISTORY: usize = 300_000;
const SHORT_HISTORY: usize = 20_000;
const DEFAULT_CHECKOUTS: usize = 500;
const SHORT_CHECKOUTS: usize = 100;
const DEFAULT_QUERIES: usize = 200;
const SHORT_QUERIES: usize = 50;

/// Past transactions written per SQL transaction.
const BATCH: usize = 10_000;
/// How many past transactions the queries pick from, spread over the whole history.
const SAMPLES: usize = 1_000;

/// Targets printed beside the figures.
const TARGET_QUERY_P50_MS: f64 = 5.0;
const TARGET_CHECKOUT_P99_RATIO: f64 = 1.2;

/// A year, in milliseconds.
const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;

#[tokio::main]
async fn main() -> ExitCode {
    exit_code(run().await)
}

async fn run() -> Harness<()> {
    let short = std::env::var_os("QRPAYD_BENCH_SHORT").is_some_and(|v| v != "0");
    let pick = |long, quick| if short { quick } else { long };
    let history = env_usize("QRPAYD_BENCH_HISTORY", pick(DEFAULT_HISTORY, SHORT_HISTORY))?;
    let checkouts = env_usize(
        "QRPAYD_BENCH_CHECKOUTS",
        pick(DEFAULT_CHECKOUTS, SHORT_CHECKOUTS),
    )?;
    let queries = env_usize("QRPAYD_BENCH_QUERIES", pick(DEFAULT_QUERIES, SHORT_QUERIES))?;
    if history == 0 || checkouts == 0 || queries == 0 {
        return Err("the history, checkouts and queries must each be at least 1".into());
    }
    let dir = work_directory("qrpayd-history-", "qrpayd history benchmark")?;
    println!(
        "  plan          : {history} past transactions; on each store {WARMUP_CHECKOUTS} \
         warm-up + {checkouts} timed checkouts, {queries} of each query{}",
        if short { " (short mode)" } else { "" }
    );

    println!("\n[1/4] a daemon on an empty store");
    let mut empty = Running::start("empty", &dir.path().join("empty")).await?;

    println!("\n[2/4] writing {history} past transactions (the first daemon idles)");
    let home = dir.path().join("history");
    let database = home.join("state").join(Store::FILE_NAME);
    let started = Instant::now();
    let samples = write_history(&database, history)?;
    let size = std::fs::metadata(&database)
        .map(|m| m.len())
        .map_err(|e| format!("stat {}: {e}", database.display()))?;
    println!(
        "  written in {:.1} s; {} is {:.0} MB",
        started.elapsed().as_secs_f64(),
        database.display(),
        size as f64 / 1e6
    );

    println!("\n[3/4] a daemon on the store with {history} past transactions");
    let mut full = Running::start("history", &home).await?;

    println!("\n[4/4] {checkouts} checkouts and {queries} of each query, alternating");
    for i in 0..checkouts {
        let source_id = format!("bench-{i}");
        let (first, second) = pair(&mut empty, &mut full, i);
        first.timed_checkout(&source_id).await?;
        second.timed_checkout(&source_id).await?;
    }
    let empty_samples = std::mem::take(&mut empty.made);
    let mut empty_queries = Vec::with_capacity(queries);
    let mut full_queries = Vec::with_capacity(queries);
    let midnight = {
        let now = Timestamp::now().0;
        Timestamp(now - now.rem_euclid(24 * 3600 * 1000)).to_rfc3339()
    };
    for round in 0..queries {
        let pick = |samples: &[Sample]| samples[round * 7919 % samples.len()].clone();
        let (on_empty, on_full) = (pick(&empty_samples), pick(&samples));
        for query in QUERIES {
            let (a, b) = if round.is_multiple_of(2) {
                let a = query.time(&empty.client, &on_empty, &midnight).await?;
                (a, query.time(&full.client, &on_full, &midnight).await?)
            } else {
                let b = query.time(&full.client, &on_full, &midnight).await?;
                (query.time(&empty.client, &on_empty, &midnight).await?, b)
            };
            empty_queries.push((query, a));
            full_queries.push((query, b));
        }
    }
    let empty = empty.finish(&empty_queries);
    let full = full.finish(&full_queries);

    println!(
        "\n== qrpayd history benchmark summary ({history} past transactions, {:.0} MB) ==",
        size as f64 / 1e6
    );
    let row = |name: &str, empty: String, full: String, target: &str, result: &str| {
        println!("{name:<40} {empty:>17} {full:>17}  {target:<14} {result}");
    };
    row(
        "figure",
        "empty store".into(),
        format!("{history} past"),
        "target",
        "result",
    );
    row(
        "start-up to ready (spawn → \"ready\" logged)",
        format!("{:.0} ms", ms(empty.startup)),
        format!("{:.0} ms", ms(full.startup)),
        "< 2000 ms",
        &verdict(ms(full.startup) < 2000.0, true),
    );
    let checkout_reportable = checkouts >= DEFAULT_CHECKOUTS;
    row(
        &format!("Checkout→frame p50 (n={checkouts})"),
        format!("{:.2} ms", ms(empty.checkout.p50)),
        format!("{:.2} ms", ms(full.checkout.p50)),
        "",
        "",
    );
    let ratio = ms(full.checkout.p99) / ms(empty.checkout.p99);
    row(
        &format!("Checkout→frame p99 (n={checkouts})"),
        format!("{:.2} ms", ms(empty.checkout.p99)),
        format!("{:.2} ms", ms(full.checkout.p99)),
        &format!("≤ {TARGET_CHECKOUT_P99_RATIO:.1} × empty"),
        &verdict(ratio <= TARGET_CHECKOUT_P99_RATIO, checkout_reportable),
    );
    let queries_reportable = queries >= DEFAULT_QUERIES;
    for ((name, empty), (_, full)) in empty.queries.iter().zip(&full.queries) {
        row(
            &format!("{name} p50/p99"),
            format!("{:.2}/{:.2} ms", ms(empty.p50), ms(empty.p99)),
            format!("{:.2}/{:.2} ms", ms(full.p50), ms(full.p99)),
            "p50 < 5 ms",
            &verdict(ms(full.p50) < TARGET_QUERY_P50_MS, queries_reportable),
        );
    }
    println!("load average at the end: {}", load_average());
    if std::env::var_os("QRPAYD_BENCH_KEEP").is_some() {
        println!("kept: {}", dir.keep().display());
    }
    Ok(())
}

/// What one daemon gave.
struct Figures {
    startup: Duration,
    checkout: Stats,
    /// Each query's name and latencies, in the order of [`QUERIES`].
    queries: Vec<(&'static str, Stats)>,
}

/// A past transaction the queries can ask about.
#[derive(Clone)]
struct Sample {
    id: String,
    number: String,
    source_id: String,
}

/// A daemon being measured, on its own bus.
struct Running {
    name: &'static str,
    daemon: Daemon,
    client: Client,
    signals: Signals,
    /// The connection the signals come on.
    _watcher: Client,
    startup: Duration,
    /// The timed checkouts' latencies, in order.
    latencies: Vec<Duration>,
    /// The transactions the timed checkouts made.
    made: Vec<Sample>,
}

/// The two daemons in the order a round uses them: the empty store's first in even rounds,
/// the other's first in odd ones, so neither always runs right after the other.
fn pair<'a>(
    empty: &'a mut Running,
    full: &'a mut Running,
    round: usize,
) -> (&'a mut Running, &'a mut Running) {
    if round.is_multiple_of(2) {
        (empty, full)
    } else {
        (full, empty)
    }
}

impl Running {
    /// Starts a daemon on `home` (its state directory may already hold a database), measures
    /// its start-up, and makes the warm-up checkouts.
    async fn start(name: &'static str, home: &Path) -> Harness<Running> {
        let bus = start_bus(home)?;
        let watcher = Client::connect(&BusAddress::parse(bus.address()))
            .await
            .map_err(|e| format!("connect to the private bus: {e}"))?;
        let started = Instant::now();
        let mut daemon = Daemon::spawn(name, home, bus.address(), "MNT", "", SIMULATOR_PROVIDER)?;
        if let Err(error) = watcher.wait_for_daemon(READY_TIMEOUT).await {
            return Err(format!(
                "the daemon did not take its bus name: {error}; its log:\n{}",
                daemon.log_text()
            ));
        }
        let name_owned = started.elapsed();
        // The daemon logs this line once it has also resumed the open attempts: what it tells
        // systemd with READY=1.
        wait_for_log_line(&daemon, "qrpayd is ready").await?;
        let startup = started.elapsed();
        println!(
            "  bus name owned {:.0} ms, ready {:.0} ms after the spawn",
            ms(name_owned),
            ms(startup)
        );
        let client = daemon.wait_ready(bus.address()).await?;
        let stream = watcher
            .watch()
            .await
            .map_err(|e| format!("subscribe to signals: {e}"))?;
        let mut signals = Signals::spawn(stream);
        for i in 0..WARMUP_CHECKOUTS {
            let reply = checkout(&client, &format!("warmup-{i}")).await?;
            pay_and_wait_settled(&client, &mut signals, &reply).await?;
        }
        Ok(Running {
            name,
            daemon,
            client,
            signals,
            _watcher: watcher,
            startup,
            latencies: Vec::new(),
            made: Vec::new(),
        })
    }

    /// One timed checkout of `source_id`, then (not timed) its payment, until it settled and
    /// nothing is open.
    async fn timed_checkout(&mut self, source_id: &str) -> Harness<()> {
        let started = Instant::now();
        let reply = checkout(&self.client, source_id).await?;
        self.latencies.push(started.elapsed());
        pay_and_wait_settled(&self.client, &mut self.signals, &reply).await?;
        self.made.push(Sample {
            id: field(&reply, "transaction_id")?,
            number: field(&reply, "transaction_number")?,
            source_id: source_id.to_owned(),
        });
        Ok(())
    }

    /// Stops the daemon and prints and returns its figures, with the `queries` timed on it.
    fn finish(mut self, queries: &[(&Query, Duration)]) -> Figures {
        self.daemon.stop();
        println!("\n  on the {} store:", self.name);
        let block_p50s: Vec<String> = self
            .latencies
            .chunks(100)
            .map(|block| format!("{:.2}", ms(Stats::of(&mut block.to_vec()).p50)))
            .collect();
        let checkout = Stats::of(&mut self.latencies);
        checkout.print("checkout");
        println!(
            "  checkout p50 (ms) by block of 100, in order: {}",
            block_p50s.join(", ")
        );
        let queries = QUERIES
            .iter()
            .map(|query| {
                let mut times: Vec<Duration> = queries
                    .iter()
                    .filter(|(q, _)| q.name == query.name)
                    .map(|(_, took)| *took)
                    .collect();
                let stats = Stats::of(&mut times);
                stats.print(query.name);
                (query.name, stats)
            })
            .collect();
        Figures {
            startup: self.startup,
            checkout,
            queries,
        }
    }
}

/// Polls the daemon's log every 5 ms until it holds `line`, for at most `READY_TIMEOUT`.
async fn wait_for_log_line(daemon: &Daemon, line: &str) -> Harness<()> {
    let started = Instant::now();
    while !daemon.log_text().contains(line) {
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "no {line:?} in the daemon's log within {READY_TIMEOUT:?}:\n{}",
                daemon.log_text()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// A query a till makes.
struct Query {
    name: &'static str,
    which: Which,
}

#[derive(Clone, Copy)]
enum Which {
    Status,
    ListBySource,
    GetByNumber,
    GetById,
    CountToday,
    CountAll,
    ListNewest,
}

/// Every query timed, in the order they are printed.
const QUERIES: &[Query] = &[
    Query {
        name: "status() (incl. PendingSync)",
        which: Which::Status,
    },
    Query {
        name: "ListTransactions by source_id",
        which: Which::ListBySource,
    },
    Query {
        name: "GetTransaction by number",
        which: Which::GetByNumber,
    },
    Query {
        name: "GetTransaction by id",
        which: Which::GetById,
    },
    Query {
        name: "CountTransactions since today",
        which: Which::CountToday,
    },
    Query {
        name: "CountTransactions (all)",
        which: Which::CountAll,
    },
    Query {
        name: "ListTransactions (newest 50)",
        which: Which::ListNewest,
    },
];

impl Query {
    /// Asks this query about `sample` (`midnight`: today's start, RFC 3339) and times it.
    async fn time(&self, client: &Client, sample: &Sample, midnight: &str) -> Harness<Duration> {
        let started = Instant::now();
        let answer = match self.which {
            Which::Status => client.status().await,
            Which::ListBySource => {
                let mut filter = Request::new();
                filter.insert("source_id".into(), Arg::from(sample.source_id.as_str()));
                let rows = client.list_transactions(&filter).await;
                rows.inspect(|rows| expect_rows(rows, 1, &sample.source_id))
            }
            Which::GetByNumber => client.get_transaction(&sample.number).await,
            Which::GetById => client.get_transaction(&sample.id).await,
            Which::CountToday => {
                let mut filter = Request::new();
                filter.insert("since".into(), Arg::from(midnight));
                client.count_transactions(&filter).await.map(Value::from)
            }
            Which::CountAll => client
                .count_transactions(&Request::new())
                .await
                .map(Value::from),
            Which::ListNewest => client.list_transactions(&Request::new()).await,
        };
        let took = started.elapsed();
        answer.map_err(|e| format!("{} ({}): {e}", self.name, sample.number))?;
        Ok(took)
    }
}

/// Warns when a list by `source_id` does not hold the one transaction of that source.
fn expect_rows(rows: &Value, n: usize, source_id: &str) {
    let found = rows.as_array().map_or(0, Vec::len);
    if found != n {
        eprintln!("  WARNING: ListTransactions by {source_id} gave {found} rows, not {n}");
    }
}

/// Writes `count` finished transactions into the database at `path` (created, with its
/// directory), as the engine leaves a settled simulator payment; returns `SAMPLES` of them,
/// spread over the history, for the queries.
fn write_history(path: &Path, count: usize) -> Harness<Vec<Sample>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    let store = Store::open(path).map_err(|e| e.to_string())?;
    let now = Timestamp::now().0;
    let every = (count / SAMPLES).max(1);
    let mut samples = Vec::new();
    let mut written = 0;
    while written < count {
        let batch = BATCH.min(count - written);
        let first = written;
        let picked = store
            .write(|tx| {
                let mut picked = Vec::new();
                for i in first..first + batch {
                    // Spread over the year before now, oldest first.
                    let at = now - YEAR_MS + (i as i64 * YEAR_MS / count as i64);
                    let sample = past_transaction(tx, i, at)?;
                    if i.is_multiple_of(every) {
                        picked.push(sample);
                    }
                }
                Ok::<_, StoreError>(picked)
            })
            .map_err(|e| format!("write the history: {e}"))?;
        samples.extend(picked);
        written += batch;
        if written.is_multiple_of(100_000) || written == count {
            println!("  {written} written");
        }
    }
    Ok(samples)
}

/// One settled transaction `i` at `at`, with what the engine writes for it.
fn past_transaction(tx: &qrpayd::store::Tx<'_>, i: usize, at: i64) -> Result<Sample, StoreError> {
    let amount = Decimal::new(12_500 + (i as i64 % 40) * 500, 0);
    let number = tx.next_counter("transaction")?;
    let mut transaction = Transaction {
        id: uuid::Uuid::new_v4().to_string(),
        number: format!("TXN{number:06}"),
        terminal_id: "BENCH-01".into(),
        source: Source {
            kind: "Order".into(),
            id: format!("hist-{i}"),
            uid: Some(format!("ORD-{i}")),
        },
        currency: Currency::Mnt,
        total: amount,
        paid: amount,
        refunded: Decimal::ZERO,
        overpaid: Decimal::ZERO,
        status: TransactionStatus::Settled,
        description: Some("Two lattes".into()),
        items: Vec::new(),
        created_at: Timestamp(at),
        updated_at: Timestamp(at + 40_000),
    };
    tx.insert_transaction(&transaction)?;
    if i.is_multiple_of(5) {
        // A first attempt the customer let expire.
        let expired = past_attempt(tx, &transaction, i, "E", AttemptStatus::Expired, at)?;
        tx.insert_attempt(&expired)?;
        tx.append_outbox(
            &transaction.id,
            OutboxKind::AttemptExpired,
            &serde_json::json!({
                "transaction_id": transaction.id,
                "transaction_number": transaction.number,
                "attempt_id": expired.id,
                "attempt_code": expired.code,
                "provider": expired.provider,
                "amount": expired.amount.to_string(),
                "status": expired.status.code(),
                "at": Timestamp(at + 30_000).to_rfc3339(),
            }),
            Timestamp(at + 30_000),
        )?;
    }
    let paid = past_attempt(
        tx,
        &transaction,
        i,
        "P",
        AttemptStatus::Success,
        at + 30_000,
    )?;
    tx.insert_attempt(&paid)?;
    tx.insert_payment_result(&PaymentResult {
        attempt_id: paid.id.clone(),
        provider: "simulator".into(),
        provider_payment_id: format!("{}-P1", paid.invoice_id.clone().unwrap_or_default()),
        amount,
        paid_at: Some(Timestamp(at + 39_000)),
        observed_at: Timestamp(at + 40_000),
    })?;
    transaction.updated_at = Timestamp(at + 40_000);
    tx.append_outbox(
        &transaction.id,
        OutboxKind::TransactionSettled,
        &serde_json::json!({
            "transaction_id": transaction.id,
            "transaction_number": transaction.number,
            "source": { "type": "Order", "id": transaction.source.id, "uid": transaction.source.uid },
            "status": transaction.status.code(),
            "currency": "MNT",
            "total": format!("{amount}.0000"),
            "paid": format!("{amount}.0000"),
            "received": format!("{amount}.0000"),
            "attempt_id": paid.id,
            "attempt_code": paid.code,
            "provider": "simulator",
            "method": "100_QR_CODE",
            "at": Timestamp(at + 40_000).to_rfc3339(),
        }),
        Timestamp(at + 40_000),
    )?;
    Ok(Sample {
        id: transaction.id,
        number: transaction.number,
        source_id: transaction.source.id,
    })
}

/// A finished simulator attempt of `transaction`, made at `at`; `tag` tells its invoice apart.
fn past_attempt(
    tx: &qrpayd::store::Tx<'_>,
    transaction: &Transaction,
    i: usize,
    tag: &str,
    status: AttemptStatus,
    at: i64,
) -> Result<Attempt, StoreError> {
    let code = tx.next_counter("attempt")?;
    let id = uuid::Uuid::new_v4();
    // Not the simulator's own `SIM…` numbers: a new payment must not collide with the past.
    let invoice_id = format!("HIST{tag}{i:08}");
    let paid = status == AttemptStatus::Success;
    Ok(Attempt {
        id: id.to_string(),
        code: format!("ATT{code:06}"),
        transaction_id: transaction.id.clone(),
        kind: AttemptType::Payment,
        status,
        provider: "simulator".into(),
        method: "100_QR_CODE".into(),
        amount: transaction.total,
        paid: if paid {
            transaction.total
        } else {
            Decimal::ZERO
        },
        refunded: Decimal::ZERO,
        overpaid: Decimal::ZERO,
        tendered: None,
        parent_id: None,
        idempotency_key: format!("Q{}", &id.simple().to_string()[..25]).to_uppercase(),
        request_id: None,
        // About the length of the simulator's EMVCo payload.
        qr_text: Some(format!(
            "00020101021226470012qrpayd.test01{:02}{invoice_id}0208SIMULATE52045812530349654{:02}{}5802MN5913QRPAYD BENCH6011ULAANBAATAR62240520{}6304ABCD",
            invoice_id.len(),
            transaction.total.to_string().len(),
            transaction.total,
            &transaction.number,
        )),
        invoice_id: Some(invoice_id.clone()),
        short_url: None,
        deep_links: vec![qrpayd::domain::DeepLink {
            name: "Simulator".into(),
            link: format!("qrpayd-simulator://pay/{invoice_id}"),
        }],
        provider_open: false,
        allow_partial: false,
        expires_at: Some(Timestamp(at + 300_000)),
        failure: None,
        note: None,
        created_at: Timestamp(at),
        updated_at: Timestamp(at + 10_000),
    })
}
