//! qrpayd's benchmark: what a till sees, and what the daemon costs the terminal.
//!
//! The daemon runs as a separate process (the release `qrpayd` binary, `qrpayd run --config
//! <file>`) on a private D-Bus broker that this program hosts, with the simulator as its only
//! provider and its state and customer-display frame in a temporary directory. This program
//! talks to it only through `qrpayd::dbus::client`, exactly as a till does, and reads the
//! daemon's own memory and CPU from `/proc/<pid>`.
//!
//! Measured, in this order:
//!
//! 1. **Idle daemon RSS**: a fresh daemon (its own bus and state directory) is started, and
//!    once it answers `status()` and has drawn its idle frame its `VmRSS`/`VmHWM` are read; it
//!    is then stopped. Everything below uses a second, separate daemon.
//! 2. **Checkout → frame written**: after 20 warm-up checkouts, N sequential `Checkout`s of
//!    distinct orders (`source_id = bench-{i}`, 12500 MNT). The time is from sending the call
//!    to its reply; the daemon replies only once the customer-display PNG is written (the
//!    reply names it in `display_png`). Each order is then paid with `Simulator.Pay`, and the
//!    next checkout waits until the daemon has settled it and redrawn the frame — one till, one
//!    customer at a time — none of which is counted. p50/p90/p99/max and throughput.
//! 3. **Detection latency**: for 100 more orders (checkout not timed), the time from calling
//!    `Simulator.Pay` to the arrival of `TransactionChanged(…, "304_SETTLED")` for that
//!    transaction. Signals are timestamped on arrival by a task that only reads them.
//! 4. **RSS after work**: once `OpenAttempts` is 0, the daemon's `VmRSS` and `VmHWM`.
//! 5. **Idle CPU**: the daemon's utime+stime (`/proc/<pid>/stat`) over an idle period with
//!    nothing open, as CPU milliseconds per minute.
//! 6. **Checkout → frame via QPay**: a third daemon, configured with `[providers.qpay]` only,
//!    talks real HTTP to the tests' mock QPay v2 API (`tests/api/mock_qpay.rs`, served by this
//!    program on 127.0.0.1). After 20 warm-up checkouts, N timed `Checkout`s as in 2 (each
//!    makes an invoice at the mock: a token on the first, then one `POST /v2/invoice`). Each
//!    invoice is then paid at the mock and the daemon asked to `Verify` it (so the next
//!    checkout need not wait for the one-second poll), and the next checkout waits until the
//!    transaction settled and nothing is open — none of which is counted. The mock shares this
//!    process's runtime, so its time to answer is part of the figure, as QPay's would be.
//! 7. **Checkout → frame via VietQR (local)**: a fourth daemon, configured with
//!    `[providers.vietqr]` only (a VietQR for the merchant's own account, no HTTP), VND. After
//!    20 warm-up checkouts, N timed `Checkout`s of 150000 VND as in 2; each is then confirmed
//!    with `ConfirmSystemPayment` (tendered = the amount), as the cashier would, and the next
//!    checkout waits until it settled and nothing is open — none of which is counted.
//! 8. **Checkout → frame via AppotaPay**: a fifth daemon, configured with
//!    `[providers.appotapay]` only, talks real HTTP to the tests' mock AppotaPay
//!    (`tests/support/mock_appotapay.rs`, which checks every request's JWT and signature), VND.
//!    Timed as in 7 (each checkout makes one POS order at the mock); each order is then marked
//!    paid at the mock and the daemon asked to `Verify` it, as in 6 — not counted.
//! 9. **Checkout → frame via MQ-Pay**: a sixth daemon, configured with `[providers.mqpay]`
//!    only, talks real HTTP to the tests' mock MQ-Pay gateway (`tests/api/mock_mqpay.rs`,
//!    which checks the API key and every request's signature), VND, timed as in 8.
//! 10. **Memory growth** (only when `QRPAYD_BENCH_MEMORY_PAYMENTS=N` is set, N ≥ 5 000): a
//!     seventh daemon with the simulator takes N payments one after the other (checkout, pay,
//!     settled, nothing open); its `RssAnon` (heap and stacks, what the daemon's own
//!     allocations drive) is read after 5 000 and after N. What a finished payment leaves in
//!     memory shows as the difference; the target is at most 1 MiB from 5 000 to 50 000.
//!
//! Targets: p99 Checkout < 20 ms, idle CPU < 50 ms per minute, RSS < 20 MiB; each figure is
//! printed with PASS or MISS. The program exits non-zero only when the harness itself fails
//! (the daemon does not start, a call fails, a signal never comes), never on a MISS.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench checkout            # add -j1 on a small machine
//! QRPAYD_BENCH_CHECKOUTS=500 QRPAYD_BENCH_IDLE_SECS=60 cargo bench --bench checkout
//! ```
//!
//! `QRPAYD_BENCH_CHECKOUTS` (default 500) sets the number of timed checkouts of phases 2 and
//! 6–8; fewer than 500 is allowed for a quick look but the figures are then flagged as not
//! reportable.
//! `QRPAYD_BENCH_IDLE_SECS` (default 60) sets the idle-CPU window.
//! `QRPAYD_BENCH_MEMORY_PAYMENTS` (unset: phase 9 is skipped; 50000 takes about ten minutes)
//! runs phase 9. The daemons' logs go to
//! `daemon-*.log` in the temporary directory, which is removed at the end.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use qrpayd::dbus::BusAddress;
use qrpayd::dbus::client::{Arg, Client, Request};
use serde_json::Value;

/// The daemon process, the till's calls, the figures: shared with `benches/history.rs`.
mod common;
use common::*;

/// The tests' mock QPay v2 API, served by this program for phase 6 (only part of it is used).
#[allow(dead_code)]
#[path = "../tests/api/mock_qpay.rs"]
mod mock_qpay;

/// The tests' mock MQ-Pay gateway, served by this program for phase 9 (only part of it is used).
#[allow(dead_code)]
#[path = "../tests/api/mock_mqpay.rs"]
mod mock_mqpay;

/// The tests' mock AppotaPay, served by this program for phase 8 (only its POS orders are used;
/// the file allows dead code itself).
#[path = "../tests/support/mock_appotapay.rs"]
mod mock_appotapay;
/// Serving and waiting, shared by the mocks.
#[path = "../tests/support/mock_server.rs"]
mod mock_server;

/// What `mock_qpay` takes from the tests' harness.
mod harness {
    /// How long the mock's `wait_for` waits for an event.
    pub const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
}

/// The smallest number of timed checkouts whose percentiles are worth reporting.
const MIN_REPORTED_CHECKOUTS: usize = 500;
const DETECTION_PAYMENTS: usize = 100;

/// Targets printed beside the figures.
const TARGET_P99_CHECKOUT_MS: f64 = 20.0;
const TARGET_IDLE_CPU_MS_PER_MIN: f64 = 50.0;
const TARGET_RSS_MIB: f64 = 20.0;
/// Phase 10: the payments after which memory is first read, and how much it may grow after.
const MEMORY_FIRST_READING: usize = 5_000;
const TARGET_MEMORY_GROWTH_KB: i64 = 1024;

/// What every checkout of phases 7 and 8 asks for, in VND.
const VND_AMOUNT: &str = "150000";

#[tokio::main]
async fn main() -> ExitCode {
    exit_code(run().await)
}

async fn run() -> Harness<()> {
    let checkouts = env_usize("QRPAYD_BENCH_CHECKOUTS", MIN_REPORTED_CHECKOUTS)?;
    let idle_secs = env_usize("QRPAYD_BENCH_IDLE_SECS", 60)? as u64;
    if checkouts == 0 || idle_secs == 0 {
        return Err("QRPAYD_BENCH_CHECKOUTS and QRPAYD_BENCH_IDLE_SECS must be at least 1".into());
    }
    let clock_ticks = clock_ticks_per_second();

    // Everything (two private buses, two state directories, the frames and the logs) lives
    // here and is removed when `dir` is dropped at the end of `run`.
    let dir = work_directory("qrpayd-bench-", "qrpayd checkout benchmark")?;
    println!(
        "  clock ticks   : {} per second{}",
        clock_ticks.0,
        if clock_ticks.1 {
            ""
        } else {
            " (assumed: `getconf CLK_TCK` failed)"
        }
    );
    println!(
        "  plan          : {WARMUP_CHECKOUTS} warm-up + {checkouts} timed checkouts, \
         {DETECTION_PAYMENTS} timed payments, {idle_secs} s idle; then \
         {WARMUP_CHECKOUTS} warm-up + {checkouts} timed checkouts each via the QPay mock, \
         VietQR (local) and the AppotaPay mock"
    );

    // 1. A fresh daemon's memory, before any work, on its own bus and state directory.
    println!("\n[1/9] fresh daemon");
    let fresh = {
        let home = dir.path().join("fresh");
        let bus = start_bus(&home)?;
        let mut daemon =
            Daemon::spawn("fresh", &home, bus.address(), "MNT", "", SIMULATOR_PROVIDER)?;
        let client = daemon.wait_ready(bus.address()).await?;
        // Let start-up finish (the idle frame is its last step) before reading the memory.
        wait_for_file(&home.join("display.png"), STEP_TIMEOUT).await?;
        let status = client.status().await.map_err(|e| format!("status: {e}"))?;
        let memory = Memory::read(daemon.pid())?;
        println!(
            "  qrpayd {} ready; providers {}",
            status["version"].as_str().unwrap_or("?"),
            status["providers"]
        );
        println!("  {}", memory.describe());
        drop(client);
        daemon.stop();
        memory
    };

    // The daemon under test for everything that follows.
    let home = dir.path().join("main");
    let bus = start_bus(&home)?;
    let mut daemon = Daemon::spawn("main", &home, bus.address(), "MNT", "", SIMULATOR_PROVIDER)?;
    let client = daemon.wait_ready(bus.address()).await?;
    let pid = daemon.pid();
    // A second connection only for signals, read by a task that stamps each on arrival.
    let watcher = Client::connect(&BusAddress::parse(bus.address()))
        .await
        .map_err(|e| format!("watcher connect: {e}"))?;
    let stream = watcher
        .watch()
        .await
        .map_err(|e| format!("subscribe to signals: {e}"))?;
    let mut signals = Signals::spawn(stream);

    // 2. Checkout latency.
    println!("\n[2/9] checkout → frame written ({WARMUP_CHECKOUTS} warm-up, {checkouts} timed)");
    let png = home.join("display.png");
    let frame_before = mtime(&png);
    for i in 0..WARMUP_CHECKOUTS {
        let reply = checkout(&client, &format!("warmup-{i}")).await?;
        if i == 0 {
            check_frame(&reply, &png, frame_before)?;
        }
        pay_and_wait_settled(&client, &mut signals, &reply).await?;
    }
    // The daemon's RSS before the timed checkouts and after every 100 (read between checkouts,
    // outside the timed calls), to tell a plateau from growth with work.
    let mut rss_trace = vec![(0, Memory::read(pid)?.rss_kb)];
    let cpu_before = cpu_ticks(pid)?;
    let phase_start = Instant::now();
    let mut latencies = Vec::with_capacity(checkouts);
    for i in 0..checkouts {
        let started = Instant::now();
        let reply = checkout(&client, &format!("bench-{i}")).await?;
        latencies.push(started.elapsed());
        pay_and_wait_settled(&client, &mut signals, &reply).await?;
        if (i + 1) % 100 == 0 || i + 1 == checkouts {
            rss_trace.push((i + 1, Memory::read(pid)?.rss_kb));
        }
    }
    let phase_wall = phase_start.elapsed();
    // The median of each block of 100, in order, before the samples are sorted: a trend here
    // means the cost of a checkout grows with the history the daemon holds.
    let block_p50s: Vec<String> = latencies
        .chunks(100)
        .map(|block| format!("{:.2}", ms(Stats::of(&mut block.to_vec()).p50)))
        .collect();
    let checkout_cpu_ms = ticks_to_ms(cpu_ticks(pid)? - cpu_before, clock_ticks.0);
    let checkout_stats = Stats::of(&mut latencies);
    let checkout_busy: Duration = latencies.iter().sum();
    let checkout_rate = checkouts as f64 / checkout_busy.as_secs_f64();
    checkout_stats.print("checkout");
    println!(
        "  throughput {:.0} checkouts/s back to back (sum of latencies {:.2} s); \
         phase wall time {:.2} s including pay + settle",
        checkout_rate,
        checkout_busy.as_secs_f64(),
        phase_wall.as_secs_f64()
    );
    println!(
        "  daemon CPU over the phase {:.0} ms = {:.2} ms per checkout+payment",
        checkout_cpu_ms,
        checkout_cpu_ms / checkouts as f64
    );
    println!(
        "  checkout p50 (ms) by block of 100, in order: {}",
        block_p50s.join(", ")
    );
    println!(
        "  daemon VmRSS after n timed checkouts: {}",
        rss_trace
            .iter()
            .map(|(n, kb)| format!("{n}: {:.1} MiB", mib(*kb)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if checkouts < MIN_REPORTED_CHECKOUTS {
        println!(
            "  NOTE: {checkouts} < {MIN_REPORTED_CHECKOUTS} checkouts: not a reportable figure"
        );
    }

    // 3. Detection latency: pay → TransactionChanged(304_SETTLED).
    println!("\n[3/9] payment detection ({DETECTION_PAYMENTS} payments)");
    let mut detections = Vec::with_capacity(DETECTION_PAYMENTS);
    for i in 0..DETECTION_PAYMENTS {
        let reply = checkout(&client, &format!("detect-{i}")).await?;
        let transaction_id = field(&reply, "transaction_id")?;
        let attempt_id = field(&reply, "attempt_id")?;
        let started = Instant::now();
        simulate_pay(&client, &attempt_id).await?;
        let arrived = signals.settled(&transaction_id).await?;
        detections.push(arrived.saturating_duration_since(started));
        signals.open_attempts_zero().await?;
    }
    let detection_stats = Stats::of(&mut detections);
    detection_stats.print("detection");

    // 4. Memory after the work, once nothing is open.
    println!("\n[4/9] memory after work");
    wait_no_open_attempts(&client).await?;
    let worked = Memory::read(pid)?;
    println!("  OpenAttempts 0; {}", worked.describe());
    println!("  state files: {}", dir_sizes(&home.join("state")));

    // 5. Idle CPU: nothing open, nobody calling.
    println!("\n[5/9] idle CPU over {idle_secs} s");
    let idle_before = cpu_ticks(pid)?;
    let idle_start = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle_ticks = cpu_ticks(pid)? - idle_before;
    let idle_window = idle_start.elapsed();
    let idle_cpu_per_min =
        ticks_to_ms(idle_ticks, clock_ticks.0) * 60.0 / idle_window.as_secs_f64();
    println!(
        "  {idle_ticks} ticks in {:.1} s = {idle_cpu_per_min:.0} ms CPU per minute \
         (resolution {:.0} ms per window)",
        idle_window.as_secs_f64(),
        1000.0 / clock_ticks.0 as f64
    );
    let still_open = open_attempts(&client).await?;
    let idle_end = Memory::read(pid)?;

    drop(signals);
    drop(watcher);
    drop(client);
    daemon.stop();

    // 6. Checkout latency with QPay (the mock) as the provider, on a third daemon.
    println!(
        "\n[6/9] checkout → frame written via the QPay mock \
         ({WARMUP_CHECKOUTS} warm-up, {checkouts} timed)"
    );
    let qpay_stats = qpay_checkouts(&dir.path().join("qpay"), checkouts).await?;

    // 7. Checkout latency with the local VietQR provider, on a fourth daemon.
    println!(
        "\n[7/9] checkout → frame written via VietQR (local) \
         ({WARMUP_CHECKOUTS} warm-up, {checkouts} timed)"
    );
    let vietqr_stats = vietqr_checkouts(&dir.path().join("vietqr"), checkouts).await?;

    // 8. Checkout latency with AppotaPay (the mock) as the provider, on a fifth daemon.
    println!(
        "\n[8/9] checkout → frame written via the AppotaPay mock \
         ({WARMUP_CHECKOUTS} warm-up, {checkouts} timed)"
    );
    let appotapay_stats = appotapay_checkouts(&dir.path().join("appotapay"), checkouts).await?;

    // 9. Checkout latency with the MQ-Pay gateway (the mock, signed) as the provider.
    println!(
        "\n[9/9] checkout → frame written via the MQ-Pay mock \
         ({WARMUP_CHECKOUTS} warm-up, {checkouts} timed)"
    );
    let mqpay_stats = mqpay_checkouts(&dir.path().join("mqpay"), checkouts).await?;

    // 10. Memory growth over many payments, on a sixth daemon, when asked for.
    let memory_payments = match std::env::var("QRPAYD_BENCH_MEMORY_PAYMENTS") {
        Ok(_) => Some(env_usize("QRPAYD_BENCH_MEMORY_PAYMENTS", 0)?),
        Err(_) => None,
    };
    let growth = match memory_payments {
        Some(payments) if payments >= MEMORY_FIRST_READING => {
            println!("\n[10] memory growth over {payments} simulator payments");
            Some(memory_growth(&dir.path().join("memory"), payments).await?)
        }
        Some(payments) => {
            return Err(format!(
                "QRPAYD_BENCH_MEMORY_PAYMENTS={payments}: at least {MEMORY_FIRST_READING}"
            ));
        }
        None => None,
    };

    // The summary, for the README.
    let p99 = ms(checkout_stats.p99);
    let reportable = checkouts >= MIN_REPORTED_CHECKOUTS;
    println!("\n== qrpayd benchmark summary ==");
    let row = |name: &str, value: String, target: &str, result: &str| {
        println!("{name:<50} {value:>13}  {target:<12} {result}");
    };
    row("figure", "value".to_owned(), "target", "result");
    row(
        &format!("Checkout→frame p50/p90 (n={checkouts})"),
        format!(
            "{:.2}/{:.2} ms",
            ms(checkout_stats.p50),
            ms(checkout_stats.p90)
        ),
        "",
        "",
    );
    row(
        &format!("Checkout→frame p99 (n={checkouts})"),
        format!("{p99:.2} ms"),
        "< 20 ms",
        &verdict(p99 < TARGET_P99_CHECKOUT_MS, reportable),
    );
    row(
        "Checkout→frame max",
        format!("{:.2} ms", ms(checkout_stats.max)),
        "",
        "",
    );
    row(
        "Checkout throughput (sequential)",
        format!("{checkout_rate:.0} /s"),
        "",
        "",
    );
    row(
        &format!("Pay→settled signal p50/p99 (n={DETECTION_PAYMENTS})"),
        format!(
            "{:.2}/{:.2} ms",
            ms(detection_stats.p50),
            ms(detection_stats.p99)
        ),
        "",
        "",
    );
    row(
        "Pay→settled signal max",
        format!("{:.2} ms", ms(detection_stats.max)),
        "",
        "",
    );
    row(
        "Idle daemon RSS (fresh)",
        format!("{:.1} MiB", mib(fresh.rss_kb)),
        "< 20 MiB",
        &verdict(mib(fresh.rss_kb) < TARGET_RSS_MIB, true),
    );
    row(
        "RSS after work, 0 open (VmRSS)",
        format!("{:.1} MiB", mib(worked.rss_kb)),
        "< 20 MiB",
        &verdict(mib(worked.rss_kb) < TARGET_RSS_MIB, true),
    );
    row(
        "Peak RSS over the run (VmHWM)",
        format!("{:.1} MiB", mib(idle_end.hwm_kb)),
        "",
        "",
    );
    row(
        &format!("Idle CPU ({idle_secs} s window, 0 open)"),
        format!("{idle_cpu_per_min:.0} ms/min"),
        "< 50 ms/min",
        &verdict(idle_cpu_per_min < TARGET_IDLE_CPU_MS_PER_MIN, true),
    );
    row(
        &format!("Checkout→frame via QPay mock p50/p99 (n={checkouts})"),
        format!("{:.2}/{:.2} ms", ms(qpay_stats.p50), ms(qpay_stats.p99)),
        "",
        "",
    );
    row(
        "Checkout→frame via QPay mock p90/max",
        format!("{:.2}/{:.2} ms", ms(qpay_stats.p90), ms(qpay_stats.max)),
        "",
        "",
    );
    row(
        &format!("Checkout→frame via VietQR (local) p50/p99 (n={checkouts})"),
        format!("{:.2}/{:.2} ms", ms(vietqr_stats.p50), ms(vietqr_stats.p99)),
        "",
        "",
    );
    row(
        "Checkout→frame via VietQR (local) p90/max",
        format!("{:.2}/{:.2} ms", ms(vietqr_stats.p90), ms(vietqr_stats.max)),
        "",
        "",
    );
    row(
        &format!("Checkout→frame via AppotaPay mock p50/p99 (n={checkouts})"),
        format!(
            "{:.2}/{:.2} ms",
            ms(appotapay_stats.p50),
            ms(appotapay_stats.p99)
        ),
        "",
        "",
    );
    row(
        "Checkout→frame via AppotaPay mock p90/max",
        format!(
            "{:.2}/{:.2} ms",
            ms(appotapay_stats.p90),
            ms(appotapay_stats.max)
        ),
        "",
        "",
    );
    row(
        &format!("Checkout→frame via MQ-Pay mock p50/p99 (n={checkouts})"),
        format!("{:.2}/{:.2} ms", ms(mqpay_stats.p50), ms(mqpay_stats.p99)),
        "",
        "",
    );
    row(
        "Checkout→frame via MQ-Pay mock p90/max",
        format!("{:.2}/{:.2} ms", ms(mqpay_stats.p90), ms(mqpay_stats.max)),
        "",
        "",
    );
    if let Some(growth) = &growth {
        let grew_kb = growth.last.anon_kb as i64 - growth.first.anon_kb as i64;
        row(
            &format!(
                "RssAnon after {MEMORY_FIRST_READING} → {} payments",
                growth.payments
            ),
            format!(
                "{:.1} → {:.1} MiB",
                mib(growth.first.anon_kb),
                mib(growth.last.anon_kb)
            ),
            "",
            "",
        );
        row(
            "RssAnon growth",
            format!("{grew_kb} kB"),
            "≤ 1024 kB",
            &verdict(
                grew_kb <= TARGET_MEMORY_GROWTH_KB,
                growth.payments >= 50_000,
            ),
        );
    }
    if still_open != 0 {
        println!("NOTE: {still_open} attempt(s) were open at the end of the idle window");
    }
    println!("load average at the end: {}", load_average());
    Ok(())
}
// ---------------------------------------------------------------------------------------------
// Phase 9: memory growth.

/// The daemon's memory after the first readings' payments and after all of them.
struct Growth {
    payments: usize,
    first: Memory,
    last: Memory,
}

/// Starts a simulator daemon on its own bus in `home` and has it take `payments` payments one
/// after the other, each settled before the next; reads its memory after
/// `MEMORY_FIRST_READING` of them and after all. Stops the daemon.
async fn memory_growth(home: &Path, payments: usize) -> Harness<Growth> {
    let bus = start_bus(home)?;
    let mut daemon = Daemon::spawn("memory", home, bus.address(), "MNT", "", SIMULATOR_PROVIDER)?;
    let client = daemon.wait_ready(bus.address()).await?;
    let watcher = Client::connect(&BusAddress::parse(bus.address()))
        .await
        .map_err(|e| format!("watcher connect: {e}"))?;
    let stream = watcher
        .watch()
        .await
        .map_err(|e| format!("subscribe to signals: {e}"))?;
    let mut signals = Signals::spawn(stream);
    let mut first = None;
    for i in 0..payments {
        let reply = checkout(&client, &format!("memory-{i}")).await?;
        pay_and_wait_settled(&client, &mut signals, &reply).await?;
        if i + 1 == MEMORY_FIRST_READING {
            let memory = Memory::read(daemon.pid())?;
            println!("  after {} payments: {}", i + 1, memory.describe());
            first = Some(memory);
        } else if (i + 1) % 10_000 == 0 {
            println!(
                "  after {} payments: RssAnon {:.1} MiB",
                i + 1,
                mib(Memory::read(daemon.pid())?.anon_kb)
            );
        }
    }
    let last = Memory::read(daemon.pid())?;
    println!("  after {payments} payments: {}", last.describe());
    let first = first.ok_or("no first reading")?;
    drop(signals);
    drop(watcher);
    drop(client);
    daemon.stop();
    Ok(Growth {
        payments,
        first,
        last,
    })
}

// ---------------------------------------------------------------------------------------------
// Phases 6–9: a real provider, on a daemon of its own.

/// What phases 6–9 vary: the daemon's provider and the order each checkout asks for.
struct ProviderPhase<'a> {
    /// The provider (`default_provider`, and what each reply must name); it also names the
    /// daemon, its home and the orders' `source_id`s.
    provider: &'static str,
    /// The `[providers.…]` section.
    section: &'a str,
    /// The daemon's `default_currency` and every order's currency.
    currency: &'a str,
    /// Every order's amount.
    amount: &'a str,
    /// How the latency line names the figure.
    what: &'a str,
}

/// Starts, on its own bus in `home`, a daemon whose only provider is `phase.provider` and times
/// `checkouts` checkouts after the warm-up. After each checkout (not timed), `settle` has the
/// order paid (or confirmed) and this waits, as [`pay_and_wait_settled`] does, until the
/// transaction settled and nothing is open. The daemon is stopped before this returns.
async fn provider_checkouts(
    home: &Path,
    phase: &ProviderPhase<'_>,
    checkouts: usize,
    mut settle: impl AsyncFnMut(&Client, &Value) -> Harness<()>,
) -> Harness<Stats> {
    let provider = phase.provider;
    let bus = start_bus(home)?;
    let mut daemon = Daemon::spawn(
        provider,
        home,
        bus.address(),
        phase.currency,
        &format!("default_provider = \"{provider}\""),
        phase.section,
    )?;
    let client = daemon.wait_ready(bus.address()).await?;
    let watcher = Client::connect(&BusAddress::parse(bus.address()))
        .await
        .map_err(|e| format!("watcher connect: {e}"))?;
    let stream = watcher
        .watch()
        .await
        .map_err(|e| format!("subscribe to signals: {e}"))?;
    let mut signals = Signals::spawn(stream);

    let png = home.join("display.png");
    let frame_before = mtime(&png);
    let mut latencies = Vec::with_capacity(checkouts);
    for i in 0..WARMUP_CHECKOUTS + checkouts {
        let timed = i >= WARMUP_CHECKOUTS;
        let source_id = if timed {
            format!("{provider}-{}", i - WARMUP_CHECKOUTS)
        } else {
            format!("{provider}-warmup-{i}")
        };
        let started = Instant::now();
        let reply = checkout_order(&client, &source_id, phase.amount, phase.currency).await?;
        if timed {
            latencies.push(started.elapsed());
        }
        if i == 0 {
            let replied = field(&reply, "provider")?;
            if replied != provider {
                return Err(format!(
                    "the checkout went to {replied}, not {provider}: {reply}"
                ));
            }
            check_frame(&reply, &png, frame_before)?;
        }
        settle(&client, &reply).await?;
        signals.settled(&field(&reply, "transaction_id")?).await?;
        signals.open_attempts_zero().await?;
    }
    let stats = Stats::of(&mut latencies);
    stats.print(phase.what);
    if checkouts < MIN_REPORTED_CHECKOUTS {
        println!(
            "  NOTE: {checkouts} < {MIN_REPORTED_CHECKOUTS} checkouts: not a reportable figure"
        );
    }
    drop(signals);
    drop(watcher);
    drop(client);
    daemon.stop();
    Ok(stats)
}

/// Phase 6: the mock QPay and a daemon whose only provider is `qpay`, pointed at it. Each
/// invoice is paid in full at the mock and the daemon asked to `Verify` it.
async fn qpay_checkouts(home: &Path, checkouts: usize) -> Harness<Stats> {
    let mock = mock_qpay::MockQpay::start().await;
    println!("  mock QPay at {}", mock.base_url);
    let section = format!(
        r#"[providers.qpay]
base_url = "{base_url}"
client_id = "{client_id}"
client_secret = "{client_secret}"
invoice_code = "{invoice_code}"
poll_interval_ms = 1000
request_timeout_ms = 2000
"#,
        base_url = mock.base_url,
        client_id = mock_qpay::CLIENT_ID,
        client_secret = mock_qpay::CLIENT_SECRET,
        invoice_code = mock_qpay::INVOICE_CODE,
    );
    let phase = ProviderPhase {
        provider: "qpay",
        section: &section,
        currency: "MNT",
        amount: CHECKOUT_AMOUNT,
        what: "checkout via the QPay mock",
    };
    let stats = provider_checkouts(home, &phase, checkouts, async |client, reply| {
        let qr_text = field(reply, "qr_text")?;
        let invoice_id = mock
            .state()
            .invoices
            .iter()
            .rev()
            .find(|invoice| invoice.qr_text == qr_text)
            .map(|invoice| invoice.invoice_id.clone())
            .ok_or_else(|| format!("the mock made no invoice with the QR of {reply}"))?;
        mock.pay(&invoice_id, CHECKOUT_AMOUNT);
        verify(client, &field(reply, "attempt_id")?).await
    })
    .await?;
    let state = mock.state();
    println!(
        "  the mock saw {} token, {} invoice, {} check requests ({} answered other than 200)",
        state.count(mock_qpay::Route::Token),
        state.count(mock_qpay::Route::CreateInvoice),
        state.count(mock_qpay::Route::Check),
        state.seen.iter().filter(|s| s.status != 200).count()
    );
    Ok(stats)
}

/// Phase 9: the mock MQ-Pay gateway, checking the key and every request's signature, and a
/// daemon whose only provider is `mqpay`, pointed at it. Each attempt is paid in full at the
/// mock and the daemon asked to `Verify` it.
async fn mqpay_checkouts(home: &Path, checkouts: usize) -> Harness<Stats> {
    let mock = mock_mqpay::MockMqPay::start_signed().await;
    println!("  mock MQ-Pay at {}", mock.base_url);
    let section = format!(
        r#"[providers.mqpay]
base_url = "{base_url}"
api_key = "{api_key}"
signing_secret = "{secret}"
provider = "{gateway}"
poll_interval_ms = 1000
request_timeout_ms = 2000
"#,
        base_url = mock.base_url,
        api_key = mock_mqpay::API_KEY,
        secret = mock_mqpay::SIGNING_SECRET,
        gateway = mock_mqpay::GATEWAY,
    );
    let phase = ProviderPhase {
        provider: "mqpay",
        section: &section,
        currency: "VND",
        amount: VND_AMOUNT,
        what: "checkout via the MQ-Pay mock",
    };
    let stats = provider_checkouts(home, &phase, checkouts, async |client, reply| {
        let qr_text = field(reply, "qr_text")?;
        let attempt_id = mock
            .state()
            .attempts
            .iter()
            .rev()
            .find(|attempt| attempt.qr_code.as_deref() == Some(qr_text.as_str()))
            .map(|attempt| attempt.id.clone())
            .ok_or_else(|| format!("the mock made no attempt with the QR of {reply}"))?;
        mock.pay(&attempt_id, VND_AMOUNT);
        verify(client, &field(reply, "attempt_id")?).await
    })
    .await?;
    let state = mock.state();
    println!(
        "  the mock saw {} checkout, {} verify requests ({} answered other than 200, {} bad \
         signatures)",
        state.count(mock_mqpay::Route::Checkout),
        state.count(mock_mqpay::Route::Verify),
        state.seen.iter().filter(|s| s.status != 200).count(),
        state.bad_signatures
    );
    Ok(stats)
}

/// Phase 7: a daemon whose only provider is the local `vietqr` (a VietQR for the merchant's
/// own account, no HTTP). The cashier confirms each transfer with `ConfirmSystemPayment`.
async fn vietqr_checkouts(home: &Path, checkouts: usize) -> Harness<Stats> {
    let phase = ProviderPhase {
        provider: "vietqr",
        section: "[providers.vietqr]\nbin = \"970416\"\naccount = \"257678859\"\n",
        currency: "VND",
        amount: VND_AMOUNT,
        what: "checkout via VietQR (local)",
    };
    provider_checkouts(home, &phase, checkouts, async |client, reply| {
        let attempt_id = field(reply, "attempt_id")?;
        let mut request = Request::new();
        request.insert("attempt_id".into(), Arg::from(attempt_id.as_str()));
        request.insert("tendered".into(), Arg::from(VND_AMOUNT));
        tokio::time::timeout(STEP_TIMEOUT, client.confirm_system_payment(&request))
            .await
            .map_err(|_| {
                format!("ConfirmSystemPayment({attempt_id}) got no reply within {STEP_TIMEOUT:?}")
            })?
            .map_err(|e| format!("ConfirmSystemPayment({attempt_id}): {e}"))?;
        Ok(())
    })
    .await
}

/// Phase 8: the tests' mock AppotaPay and a daemon whose only provider is `appotapay`, pointed
/// at it. Each order is marked paid at the mock and the daemon asked to `Verify` it.
async fn appotapay_checkouts(home: &Path, checkouts: usize) -> Harness<Stats> {
    let mock = mock_appotapay::MockAppotapay::start().await;
    println!("  mock AppotaPay at {}", mock.base_url);
    let section = format!(
        r#"[providers.appotapay]
base_url = "{base_url}"
partner_code = "{partner_code}"
api_key = "{api_key}"
secret_key = "{secret_key}"
terminal_id = "{terminal_id}"
poll_interval_ms = 1000
"#,
        base_url = mock.base_url,
        partner_code = mock_appotapay::PARTNER_CODE,
        api_key = mock_appotapay::API_KEY,
        secret_key = mock_appotapay::SECRET_KEY,
        terminal_id = mock_appotapay::TERMINAL_ID,
    );
    let phase = ProviderPhase {
        provider: "appotapay",
        section: &section,
        currency: "VND",
        amount: VND_AMOUNT,
        what: "checkout via the AppotaPay mock",
    };
    let stats = provider_checkouts(home, &phase, checkouts, async |client, reply| {
        let reference = mock
            .state()
            .orders
            .last()
            .map(|order| order.reference.clone())
            .ok_or_else(|| format!("the mock made no order for {reply}"))?;
        mock.set_status(&reference, mock_appotapay::MockStatus::Success);
        verify(client, &field(reply, "attempt_id")?).await
    })
    .await?;
    let state = mock.state();
    println!(
        "  the mock saw {} orders, {} create and {} status requests ({} answered other than \
         200, {} rejected)",
        state.orders.len(),
        state
            .seen
            .iter()
            .filter(|s| s.route == mock_appotapay::Route::CreateOrder)
            .count(),
        state
            .seen
            .iter()
            .filter(|s| s.route == mock_appotapay::Route::OrderStatus)
            .count(),
        state.seen.iter().filter(|s| s.status != 200).count(),
        state.seen.iter().filter(|s| s.rejected.is_some()).count()
    );
    Ok(stats)
}
