//! qrpayd's upstream sync benchmark: how fast a backlog drains to the back office, and whether
//! the till notices.
//!
//! The release `qrpayd` binary runs as its own process on a private D-Bus broker hosted by this
//! program, with the simulator as provider and `[upstream]` pointing at the mock MQ-Pay back
//! office of the tests (`tests/support/mock_backoffice.rs`, signed requests, on 127.0.0.1, in
//! this process). Before the daemon starts, `S` paid sales are written into its database
//! (`tests/support/backlog.rs`): `S` × 5 undelivered events (default 2 000 sales, 10 000
//! events). The back office is down (503) at first, so the sync backs off.
//!
//! 1. **Idle**: `N` sequential `Checkout`s, each paid and settled (not timed) before the next,
//!    as `benches/checkout.rs` does; the sync has nothing it can send.
//! 2. **Draining**: the back office comes up and `SyncNow` wakes the sync; the time until
//!    `PendingSync` is 0 is the drain. Meanwhile the same checkouts go on; only those that
//!    *started* while events were still pending are counted.
//!
//! Targets, printed as PASS or MISS: the 10 000 events drain in under 10 s; the Checkout p99
//! while draining is within 20 % of the idle p99. The program exits non-zero only when the
//! harness itself fails.
//!
//! ```text
//! cargo bench --bench sync
//! QRPAYD_BENCH_SALES=500 QRPAYD_BENCH_CHECKOUTS=50 cargo bench --bench sync   # a quick look
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/support/backlog.rs"]
mod backlog;
mod common;
#[path = "../tests/support/mock_backoffice.rs"]
mod mock_backoffice;
/// Serving and waiting, shared by the mocks.
#[path = "../tests/support/mock_server.rs"]
mod mock_server;

use common::*;
use mock_backoffice::MockBackOffice;

const DEFAULT_SALES: usize = 2_000;
const DEFAULT_CHECKOUTS: usize = 200;
const TARGET_DRAIN: Duration = Duration::from_secs(10);
const TARGET_P99_RATIO: f64 = 1.2;

#[tokio::main]
async fn main() -> ExitCode {
    exit_code(run().await)
}

async fn run() -> Harness<()> {
    let sales = env_usize("QRPAYD_BENCH_SALES", DEFAULT_SALES)?;
    let checkouts = env_usize("QRPAYD_BENCH_CHECKOUTS", DEFAULT_CHECKOUTS)?;
    if sales == 0 || checkouts == 0 {
        return Err("the sales and checkouts must each be at least 1".into());
    }
    let events = sales * backlog::EVENTS_PER_SALE;
    let dir = work_directory("qrpayd-sync-", "qrpayd upstream sync benchmark")?;
    let home = dir.path().join("daemon");
    let bus = start_bus(&dir.path().join("bus"))?;
    let mock = MockBackOffice::start().await;
    mock.set_down(true);

    println!("\n[1/3] writing {sales} paid sales ({events} undelivered events)");
    let started = Instant::now();
    backlog::write_backlog(&home.join("state"), "BENCH-01", sales);
    println!("  written in {:.1} s", started.elapsed().as_secs_f64());
    let providers = format!("{SIMULATOR_PROVIDER}{}", mock.upstream_section(""));
    let mut daemon = Daemon::spawn("sync", &home, bus.address(), "MNT", "", &providers)?;
    let client = daemon.wait_ready(bus.address()).await?;
    let mut signals = Signals::spawn(
        client
            .watch()
            .await
            .map_err(|e| format!("watch the signals: {e}"))?,
    );

    println!("\n[2/3] idle: {WARMUP_CHECKOUTS} warm-up + {checkouts} timed checkouts");
    for i in 0..WARMUP_CHECKOUTS {
        let reply = checkout(&client, &format!("warm-{i}")).await?;
        pay_and_wait_settled(&client, &mut signals, &reply).await?;
    }
    let mut idle = Vec::with_capacity(checkouts);
    for i in 0..checkouts {
        let started = Instant::now();
        let reply = checkout(&client, &format!("idle-{i}")).await?;
        idle.push(started.elapsed());
        pay_and_wait_settled(&client, &mut signals, &reply).await?;
    }
    let pending_before = client
        .sync_status()
        .await
        .map_err(|e| format!("sync status: {e}"))?["pending"]
        .as_u64()
        .unwrap_or(0);

    println!("\n[3/3] draining {pending_before} pending events while checkouts go on");
    let draining = Arc::new(AtomicBool::new(true));
    let watcher = {
        let client = client.clone();
        let draining = draining.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                let pending = client.sync_status().await.map(|s| s["pending"] == 0);
                if matches!(pending, Ok(true)) {
                    draining.store(false, Ordering::SeqCst);
                    return Ok(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(120) {
                    draining.store(false, Ordering::SeqCst);
                    return Err("the backlog did not drain within 120 s".to_owned());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    mock.set_down(false);
    client
        .sync_now()
        .await
        .map_err(|e| format!("SyncNow: {e}"))?;
    let mut busy = Vec::new();
    let mut i = 0;
    while draining.load(Ordering::SeqCst) {
        let started = Instant::now();
        let reply = checkout(&client, &format!("busy-{i}")).await?;
        let took = started.elapsed();
        pay_and_wait_settled(&client, &mut signals, &reply).await?;
        if draining.load(Ordering::SeqCst) {
            busy.push(took);
        }
        i += 1;
    }
    let drain = watcher
        .await
        .map_err(|e| format!("the watcher failed: {e}"))??;
    let requests = mock.state().requests.len();
    let transactions = mock.state().count("transactions");
    daemon.stop();

    let idle = Stats::of(&mut idle);
    println!("\n== qrpayd upstream sync benchmark summary ==");
    println!(
        "  drain: {pending_before} events in {:.2} s ({:.0} events/s; {requests} requests, \
         {transactions} transactions upstream)  target < {:.0} s  {}",
        drain.as_secs_f64(),
        pending_before as f64 / drain.as_secs_f64().max(1e-9),
        TARGET_DRAIN.as_secs_f64(),
        verdict(drain < TARGET_DRAIN, true)
    );
    idle.print("Checkout, idle");
    if busy.is_empty() {
        println!("  Checkout while draining: the drain ended before a checkout finished");
    } else {
        let busy = Stats::of(&mut busy);
        busy.print("Checkout, while draining");
        let ratio = ms(busy.p99) / ms(idle.p99).max(1e-9);
        println!(
            "  Checkout p99 while draining / idle: {ratio:.2}  target <= {TARGET_P99_RATIO}  {}",
            verdict(ratio <= TARGET_P99_RATIO, busy.n >= 20)
        );
    }
    Ok(())
}
