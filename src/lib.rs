//! qrpayd: the QR payment daemon of a point-of-sale terminal.
//!
//! See ARCHITECTURE.md for the code map and the invariants that keep it honest.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod dbus;
pub mod display;
pub mod domain;
pub mod emv;
pub mod engine;
pub mod logging;
pub mod mqpay;
pub mod providers;
pub mod store;
pub mod sync;
