//! The property run: arbitrary bytes and JSON fed to every parser of what comes from outside
//! the terminal, the EMVCo codec and every provider's answer readers, which must never panic
//! and whose results must keep their promises (a parsed QR re-encodes to itself, a check counts
//! each payment once, an error is one plain line and never shows a card).
//!
//! The readers are the very functions the providers call on the wire
//! (`qrpayd::providers::{qpay, appotapay, mqpay}::answers`), not copies. Every test reads
//! `PROPTEST_CASES` (default 256):
//!
//! - `cargo test --test parsers`: the short form, part of CI.
//! - `PROPTEST_CASES=1000000 cargo test --release --test parsers`: the long run, each test
//!   1 M cases (README, "Soak and property runs").
//!
//! A failure is shrunk by proptest to a small case and its seed kept in
//! `tests/proptest-regressions/`, which every later run replays first.
//!
//! - `json`: JSON text, anything or near a real shape.
//! - `emv`: the EMVCo codec and its views.
//! - `qpay`: QPay's answers.
//! - `appotapay`: AppotaPay's answers and IPNs.
//! - `mqpay`: MQ-Pay's answers to the gateway provider, and its error bodies.

mod appotapay;
mod emv;
mod json;
mod mqpay;
mod qpay;

/// Every test's configuration: proptest's defaults, which read `PROPTEST_CASES`.
fn config() -> proptest::test_runner::Config {
    proptest::test_runner::Config::default()
}

/// The moment answers are read at (a `Retry-After` date is measured from it).
fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-21 10:00:00 UTC)
}

/// A text the till, the journal or the database may be given: one plain line, bounded.
fn plain_line(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    proptest::prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
    proptest::prop_assert!(
        text.chars().count() <= 1000,
        "{} characters",
        text.chars().count()
    );
    Ok(())
}
