//! `qrpayd dev`: a development daemon for a till developer, with no config to write. It runs
//! the simulator and cash, keeps its state in a temporary directory (or `--state-dir`), serves
//! the customer display's kiosk page on loopback, and takes the session bus when there is one,
//! else a private bus whose address it prints as `export QRPAYD_BUS=…`. Ctrl-C (or SIGTERM)
//! stops it cleanly and removes the temporary directory.
//!
//! It is the real daemon (`daemon::Daemon`) with a generated config, never a mock: what a till
//! does against it, it does against `qrpayd run`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::config::Config;
use crate::daemon::Daemon;
use crate::dbus::{BusAddress, PrivateBus};

/// Where the kiosk page listens when that port is free.
const KIOSK_PORT: u16 = 8090;

/// `qrpayd dev`'s options.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// `auto` (the session bus when there is one, else a private bus), `session`, `private`,
    /// or a D-Bus address.
    #[arg(long, default_value = "auto")]
    pub bus: String,
    /// Keep the state (the database and the simulator's ledger) in DIR across runs, instead of
    /// a temporary directory removed on exit.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The simulated customer pays every QR on their own this many milliseconds after it is
    /// shown (0: only on `qrpayctl simulate pay`).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub auto_pay_after_ms: u64,
    /// How long a QR stays payable, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 300_000)]
    pub payment_timeout_ms: u64,
    /// The currency of payments that name none: MNT or VND.
    #[arg(long, default_value = "MNT")]
    pub currency: String,
    /// Where the kiosk page listens (loopback); by default 127.0.0.1:8090, or any free port
    /// when that one is taken.
    #[arg(long, value_name = "ADDRESS")]
    pub kiosk_listen: Option<SocketAddr>,
}

/// Why `qrpayd dev` stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot create a temporary directory: {0}")]
    TempDir(std::io::Error),
    #[error(transparent)]
    PrivateBus(#[from] crate::dbus::bus::PrivateBusError),
    #[error("the generated config is invalid (a bug): {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("the kiosk page may only listen on loopback, not {0}")]
    NotLoopback(SocketAddr),
    #[error(transparent)]
    Start(#[from] crate::daemon::StartError),
}

/// Runs the development daemon until `shutdown` completes.
pub async fn run(
    args: DevArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DevError> {
    let run_dir = tempfile::Builder::new()
        .prefix("qrpayd-dev-")
        .tempdir()
        .map_err(DevError::TempDir)?;
    let (bus, private) = choose_bus(&args.bus, run_dir.path()).await?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| run_dir.path().join("state"));
    let kiosk = match args.kiosk_listen {
        Some(address) if !address.ip().is_loopback() => {
            return Err(DevError::NotLoopback(address));
        }
        Some(address) => address,
        None => free_kiosk_address(),
    };
    let png = run_dir.path().join("display.png");
    let text = config_text(&args, &bus, &state_dir, &png, kiosk);
    let config_path = run_dir.path().join("qrpayd.toml");
    let config = Config::parse(&text, &config_path)?;
    let daemon = Daemon::start(&config).await?;

    let bus_text = bus.to_string();
    println!("qrpayd dev: the simulator and cash, no config (not for real money).");
    match &private {
        Some(_) => println!("  bus:         a private D-Bus broker (no session bus here)"),
        None => println!("  bus:         {bus_text}"),
    }
    match &args.state_dir {
        Some(dir) => println!("  state:       {} (kept)", dir.display()),
        None => println!(
            "  state:       {} (removed on exit; --state-dir keeps it)",
            state_dir.display()
        ),
    }
    if let Some(address) = daemon.display_web_address() {
        println!("  kiosk page:  http://{address}/");
    }
    println!("  display PNG: {}", png.display());
    if args.auto_pay_after_ms > 0 {
        println!(
            "  the simulated customer pays every QR after {} ms",
            args.auto_pay_after_ms
        );
    }
    println!("Try it from another terminal:");
    println!("  export QRPAYD_BUS={bus_text}");
    println!("  qrpayctl pay --amount 12500 --wait");
    println!("Ctrl-C stops it.");

    shutdown.await;
    drop(daemon);
    drop(private);
    println!("qrpayd dev: stopped");
    // `run_dir` is removed here, with the state unless it was --state-dir.
    drop(run_dir);
    Ok(())
}

/// The bus to serve on, and the private broker when it is one.
async fn choose_bus(
    wanted: &str,
    run_dir: &Path,
) -> Result<(BusAddress, Option<PrivateBus>), DevError> {
    let private = |dir: &Path| -> Result<(BusAddress, Option<PrivateBus>), DevError> {
        let bus = PrivateBus::start(dir)?;
        Ok((BusAddress::parse(bus.address()), Some(bus)))
    };
    match wanted {
        "private" => private(run_dir),
        "auto" if !BusAddress::Session.answers(Duration::from_secs(1)).await => private(run_dir),
        "auto" => Ok((BusAddress::Session, None)),
        other => Ok((BusAddress::parse(other), None)),
    }
}

/// 127.0.0.1:8090 when it is free, else any free port on loopback.
fn free_kiosk_address() -> SocketAddr {
    let preferred = SocketAddr::from((Ipv4Addr::LOCALHOST, KIOSK_PORT));
    match TcpListener::bind(preferred) {
        Ok(_) => preferred,
        Err(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    }
}

/// The config `qrpayd dev` runs with.
fn config_text(
    args: &DevArgs,
    bus: &BusAddress,
    state_dir: &Path,
    png: &Path,
    kiosk: SocketAddr,
) -> String {
    format!(
        r#"[daemon]
bus = {bus}
state_dir = {state}
terminal_id = "DEV-01"
default_currency = {currency}
payment_timeout_ms = {timeout}

[display]
png_path = {png}

[display.web]
listen = "{kiosk}"

[providers.simulator]
poll_interval_ms = 200
auto_pay_after_ms = {auto_pay}
"#,
        bus = toml_string(&bus.to_string()),
        state = toml_string(&state_dir.display().to_string()),
        currency = toml_string(&args.currency),
        timeout = args.payment_timeout_ms,
        png = toml_string(&png.display().to_string()),
        auto_pay = args.auto_pay_after_ms,
    )
}

/// A TOML basic string holding `text`.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
