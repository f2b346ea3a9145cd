//! The fault campaign: a seeded simulation of the real engine and store that looks for the
//! next money bug before a customer finds it (after TigerBeetle's VOPR and FoundationDB's
//! simulator).
//!
//! Every seed is one scenario ([`world::World`]): random orders, customers paying (partly,
//! late, twice), cancels, cash, refunds with and without `request_id`, repeated checkouts and
//! verifies, a provider that fails, loses answers, rate-limits, lists rows twice or out of order
//! or goes down for a while ([`faults`]), and `kill -9` of the daemon at random points; all on
//! virtual time, on a real SQLite file. The invariants ([`invariants`]) are checked after every
//! step and once more when the world has healed and every deadline has passed.
//!
//! - `cargo test --test campaign`: the seeds that ever failed (`regressions.txt`), then
//!   `QRPAYD_CAMPAIGN_SEEDS` (default 2000) seeds from `QRPAYD_CAMPAIGN_FIRST` (default 1), on
//!   every core.
//! - A failure prints its seed, the steps that led to it, and the one command that replays it:
//!   `QRPAYD_CAMPAIGN_SEED=<seed> cargo test --test campaign -- --nocapture`.

mod faults;
mod invariants;
mod world;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {value:?}")),
        Err(_) => default,
    }
}

/// The seeds that once found a violation, kept as regression cases.
fn regressions() -> Vec<u64> {
    include_str!("regressions.txt")
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|line| line.parse().expect("a seed in regressions.txt"))
        .collect()
}

/// Runs `seeds` on every core; returns the violations found.
fn run_seeds(seeds: Vec<u64>) -> (Vec<String>, [u64; 3]) {
    let queue = Mutex::new(seeds.into_iter());
    let failures = Mutex::new(Vec::new());
    let (steps, crashes, calls) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = usize::try_from(env_u64("QRPAYD_CAMPAIGN_THREADS", cores as u64)).unwrap_or(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let Some(seed) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                        return;
                    };
                    match world::World::new(seed).run() {
                        Ok(report) => {
                            if std::env::var_os("QRPAYD_CAMPAIGN_VERBOSE").is_some() {
                                println!("seed {seed}: {report:?}");
                            }
                            steps.fetch_add(u64::from(report.steps), Ordering::Relaxed);
                            crashes.fetch_add(u64::from(report.crashes), Ordering::Relaxed);
                            calls.fetch_add(report.provider_calls, Ordering::Relaxed);
                        }
                        Err(violation) => failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(violation),
                    }
                }
            });
        }
    });
    (
        failures.into_inner().unwrap_or_else(|p| p.into_inner()),
        [steps.into_inner(), crashes.into_inner(), calls.into_inner()],
    )
}

#[test]
fn the_fault_campaign_finds_no_violation() {
    let started = std::time::Instant::now();
    let seeds: Vec<u64> = match std::env::var("QRPAYD_CAMPAIGN_SEED") {
        Ok(seed) => vec![seed.parse().expect("QRPAYD_CAMPAIGN_SEED is a seed")],
        Err(_) => {
            let first = env_u64("QRPAYD_CAMPAIGN_FIRST", 1);
            let count = env_u64("QRPAYD_CAMPAIGN_SEEDS", 2000);
            regressions()
                .into_iter()
                .chain(first..first + count)
                .collect()
        }
    };
    let count = seeds.len();
    let (failures, [steps, crashes, calls]) = run_seeds(seeds);
    println!(
        "campaign: {count} seeds, {steps} steps, {crashes} crashes, {calls} provider calls, {} \
         violations, {:.1} s",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(first) = failures.first() {
        let seed = first
            .split(':')
            .next()
            .and_then(|s| s.strip_prefix("seed "))
            .unwrap_or("?");
        panic!(
            "{} of {count} seeds violated an invariant. The first:\n{first}\nReplay it with:\n  \
             QRPAYD_CAMPAIGN_SEED={seed} cargo test --test campaign -- --nocapture",
            failures.len()
        );
    }
}
