//! End-to-end tests of the D-Bus API, over a private bus, against a real SQLite file.
//!
//! - `harness`: the private bus, the daemon, the client.
//! - `payments`: checkout, signals, settlement, idempotency, expiry.
//! - `cancel_refund_cash`: both cancels, refund rules, cash change.
//! - `bad_input`: every bad input answered with its named error while the daemon serves on.
//! - `limits`: what is charged stays what is meant: the currency ceiling, partial payments only when
//!   allowed, a QR that says what is charged.
//! - `crash`: `kill -9` of a real daemon process with a live attempt, then a restart.
//! - `state_lock`: one daemon per state directory; the lock goes with a dropped or killed daemon.
//! - `introspection`: the shipped interface XML matches what the daemon serves.
//! - `mock_qpay`: a mock QPay v2 API on 127.0.0.1 with a control handle.
//! - `qpay`: the QPay provider end to end against the mock, and `kill -9` with QPay.
//! - `qpay_reconcile`: `Reconcile` with QPay against the mock (matched, missing → recorded,
//!   amount differences).
//! - `appotapay`: AppotaPay's POS VietQR through D-Bus, against the mock AppotaPay.
//! - `appotapay_ipn`: the local IPN listener, signed and forged notifications.
//! - `vietqr`: the local VietQR provider, confirmed by the cashier.
//! - `reconcile`: the provider's payments of a day beside the local records.
//! - `money_safety`: the regression tests of the money-safety review: late money, overpayments,
//!   refunds retried offline, races of cancel and cash, signal order, restarts.
//! - `logging`: the journal fields that name a payment, and no secret in any log line.
//! - `display`: the customer display's sinks: the kiosk page's events and state, the PNG, the
//!   framebuffer, and the QR leaving all of them within 100 ms.
//! - `display_browser`: the kiosk page in Debian's headless Chromium, every state in mn and vi,
//!   and a daemon restart the page lives through.
//! - `sync`: the upstream sync against the mock back office (`support/mock_backoffice.rs`):
//!   faults, parking and retry, lost answers, refused credentials, 409s, 2 000 payments made
//!   offline, `kill -9` before marking delivered, no secret in a log line or a request.
//! - `soak`: the soak's short seeded form: the real daemon against the mock QPay and AppotaPay
//!   with faults, `kill -9` at random moments, the fault campaign's `invariants` after every
//!   kill.

mod appotapay;
mod appotapay_ipn;
#[path = "../support/backlog.rs"]
mod backlog;
mod bad_input;
mod cancel_refund_cash;
#[path = "../support/captured.rs"]
mod captured;
#[path = "../support/chromium.rs"]
mod chromium;
mod crash;
mod display;
mod display_browser;
mod harness;
mod introspection;
/// The fault campaign's invariants, which the soak checks against the mock QPay's ledger.
#[path = "../campaign/invariants.rs"]
mod invariants;
mod limits;
mod logging;
/// The mock AppotaPay, shared with the provider-level tests in `tests/appotapay.rs` (it allows
/// the dead code of the parts each binary leaves unused).
#[path = "../support/mock_appotapay.rs"]
mod mock_appotapay;
#[path = "../support/mock_backoffice.rs"]
mod mock_backoffice;
mod mock_mqpay;
mod mock_qpay;
/// Serving and waiting, shared by the mocks.
#[path = "../support/mock_server.rs"]
mod mock_server;
mod money_safety;
mod mqpay;
mod payments;
mod qpay;
mod qpay_reconcile;
mod reconcile;
mod soak;
#[path = "../support/sse.rs"]
mod sse;
mod state_lock;
mod sync;
mod vietqr;
