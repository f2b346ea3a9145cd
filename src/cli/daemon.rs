//! `qrpayd`: run the daemon, check a config, or run the demo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::daemon;

/// qrpayd: the QR payment daemon of a point-of-sale terminal.
#[derive(Debug, Parser)]
#[command(name = "qrpayd", version, about, long_about = None)]
pub struct DaemonArgs {
    /// The config file.
    #[arg(long, global = true, env = "QRPAYD_CONFIG", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: DaemonCommand,
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Run the daemon until SIGTERM or SIGINT.
    Run,
    /// Check the config file and exit 0 (valid) or 1 (invalid, with the reason).
    CheckConfig,
    /// Take one simulated payment end to end on a private bus, as a till would.
    Demo {
        /// Keep the demo's directory (config, database, display frame) instead of removing it.
        #[arg(long)]
        keep: bool,
    },
    /// Run a development daemon with no config: the simulator and cash, state in a temporary
    /// directory, the kiosk page on loopback, the session bus or a private one.
    Dev(super::dev::DevArgs),
}

/// The `qrpayd` entry point.
pub fn main() -> ExitCode {
    let args = DaemonArgs::parse();
    match args.command {
        DaemonCommand::CheckConfig => check_config(&args.config),
        DaemonCommand::Run => {
            let mut config = match Config::load(&args.config) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            };
            // Still one thread: the only time the local offset can be read safely.
            config.use_local_offset();
            limit_malloc_arenas();
            super::init_logging(&config.log_level);
            runtime_then(|| async move {
                match daemon::run(&config, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        tracing::error!(%error, "qrpayd cannot start");
                        eprintln!("qrpayd: {error}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        DaemonCommand::Dev(dev) => {
            super::init_logging("info");
            runtime_then(|| async move {
                match super::dev::run(dev, shutdown_signal()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("qrpayd dev: {error}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        DaemonCommand::Demo { keep } => {
            super::init_logging("warn");
            runtime_then(|| async move {
                match super::demo::run(keep).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!("demo failed: {error}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}

/// `qrpayd check-config`: the config, then what it needs of this machine; a summary of what
/// it enables, or every problem found.
fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let problems = config::machine_problems(&config);
    if !problems.is_empty() {
        for problem in problems {
            eprintln!("invalid config {}: {problem}", path.display());
        }
        return ExitCode::FAILURE;
    }
    let providers: Vec<String> = config
        .enabled_providers()
        .into_iter()
        .map(|name| {
            if name == crate::engine::SYSTEM_PROVIDER {
                format!("{name} (cash)")
            } else {
                name.to_owned()
            }
        })
        .collect();
    println!(
        "{}: valid (terminal {}, bus {}, providers: {}; default {} in {})",
        path.display(),
        config.engine.terminal_id,
        config.bus,
        providers.join(", "),
        config.engine.default_provider,
        config.engine.default_currency,
    );
    ExitCode::SUCCESS
}

/// Caps glibc's malloc arenas. By default each thread that allocates gets an arena of its own
/// that keeps freed memory; the runtime's blocking threads (database, frame rendering) would
/// otherwise hold several megabytes each for the daemon's whole life.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; it is called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Runs `f`'s future on a multi-threaded Tokio runtime.
pub(super) fn runtime_then<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(f()),
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Takes SIGTERM and SIGINT over at once (so one that arrives while the daemon starts, or
/// right after it said READY=1, still stops it cleanly), and completes when one arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM received"),
                    _ = interrupt.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                tracing::error!("cannot listen for signals; stopping only when killed");
                std::future::pending::<()>().await;
            }
        }
    }
}
