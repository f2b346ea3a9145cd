//! The soak's long run: the release `qrpayd` binary as its own process on a private bus,
//! against the tests' mock QPay and mock AppotaPay with faults switched on, killed with
//! `kill -9` at random moments at least 1 000 times, and held to the fault campaign's
//! invariants after every kill and once healed. The program is `tests/support/soak.rs`, shared with its short seeded form
//! in `cargo test` (`tests/api/soak.rs`); what it does and checks is documented there.
//!
//! ```text
//! cargo bench --bench soak                                   # a new seed, 1000 kills
//! QRPAYD_SOAK_SEED=7 QRPAYD_SOAK_KILLS=3000 cargo bench --bench soak
//! QRPAYD_SOAK_SEED=7 QRPAYD_SOAK_TRACE=1 cargo bench --bench soak   # every step printed
//! ```
//!
//! It prints the seed first and the figures at the end (README, "Soak and property runs"). A
//! violation ends it with a non-zero exit, the seed, the steps before it, the daemon's last log
//! lines and the command that replays the seed.

use std::process::ExitCode;

/// The tests' mock QPay v2 API, served by this program (only part of it is used).
#[allow(dead_code)]
#[path = "../tests/api/mock_qpay.rs"]
mod mock_qpay;

/// The tests' mock AppotaPay (it allows the dead code of the parts left unused).
#[path = "../tests/support/mock_appotapay.rs"]
mod mock_appotapay;
/// Serving and waiting, shared by the mocks.
#[path = "../tests/support/mock_server.rs"]
mod mock_server;

/// The fault campaign's invariants.
#[path = "../tests/campaign/invariants.rs"]
mod invariants;

/// The soak itself, shared with its short form in `cargo test`.
#[path = "../tests/support/soak.rs"]
mod soak;

/// What `mock_qpay` takes from the tests' harness.
mod harness {
    /// How long the mock's `wait_for` waits for an event.
    pub const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
}

/// The kills of a run unless `QRPAYD_SOAK_KILLS` says otherwise.
const DEFAULT_KILLS: u32 = 1000;

#[tokio::main]
async fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let settings = match soak::Settings::from_env(None, DEFAULT_KILLS, env!("CARGO_BIN_EXE_qrpayd"))
    {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let (seed, kills) = (settings.seed, settings.kills);
    println!(
        "soak: seed {seed}, {kills} kills, daemon {}",
        settings.daemon.display()
    );
    match soak::run(settings).await {
        Ok(report) => {
            println!(
                "soak: seed {}: {} kills ({} mid-call, {} after QPay did the work), {} till \
                 actions ({} checkouts, {} refunds), {} customer payments, {} faults, {} calls \
                 to the providers ({} to AppotaPay), {} transactions, {} attempts, 0 \
                 violations, {:.0} s",
                report.seed,
                report.kills,
                report.kills_mid_call,
                report.kills_after_provider,
                report.actions,
                report.checkouts,
                report.refunds,
                report.payments,
                report.faults,
                report.calls,
                report.appotapay_calls,
                report.transactions,
                report.attempts,
                report.elapsed.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(violation) => {
            eprintln!(
                "{violation}\nReplay it with:\n  QRPAYD_SOAK_SEED={seed} QRPAYD_SOAK_KILLS={kills} \
                 QRPAYD_SOAK_TRACE=1 cargo bench --bench soak"
            );
            ExitCode::FAILURE
        }
    }
}
