//! The command lines: `qrpayd` (run, check-config, demo) and `qrpayctl` (a till on the command
//! line). Both are thin: the daemon is `daemon`, and `qrpayctl` speaks only through
//! `dbus::client`, like any till.

pub mod assets;
pub mod ctl;
pub mod daemon;
pub mod demo;
pub mod qr;

/// Logs to stderr at `default_level`, or as `RUST_LOG` says.
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
