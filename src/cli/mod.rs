//! The command lines: `qrpayd` (run, check-config, demo, dev) and `qrpayctl` (a till on the command
//! line). Both are thin: the daemon is `daemon`, and `qrpayctl` speaks only through
//! `dbus::client`, like any till.

pub mod assets;
pub mod ctl;
pub mod daemon;
pub mod demo;
pub mod dev;
pub mod qr;
pub mod sync;

/// Sets up logging at `default_level`, or as `RUST_LOG` says: to the journal under systemd,
/// to stderr otherwise (see [`crate::logging`]).
pub fn init_logging(default_level: &str) {
    crate::logging::init(default_level);
}
