//! The daemon's start-up and shutdown: locks the state directory (one daemon per database),
//! opens the store, builds the enabled providers and the engine, serves D-Bus, resumes the
//! attempts a previous run left open, and runs until told to stop. The wiring lives here so
//! that `qrpayd run`, the demo and the tests start the very same daemon.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::dbus::{self, BusAddress};
use crate::display::{self, web::WebSink};
use crate::engine::Engine;
use crate::providers::appotapay::{Appotapay, AppotapayError, IpnLimits, IpnListener};
use crate::providers::qpay::QpayError;
use crate::providers::simulator::SimulatorError;
use crate::providers::vietqr::VietQrProvider;
use crate::providers::{Providers, Qpay, Simulator};
use crate::store::{Store, StoreError};
use crate::sync::SyncHandle;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Simulator(#[from] SimulatorError),
    #[error(transparent)]
    Qpay(#[from] QpayError),
    #[error(transparent)]
    Appotapay(#[from] AppotapayError),
    #[error("{0}")]
    VietQr(String),
    #[error(transparent)]
    MqPay(#[from] crate::providers::mqpay::MqPayGatewayError),
    #[error("cannot listen for AppotaPay IPNs on {address}: {source}")]
    IpnListener {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Dbus(#[from] dbus::ServeError),
    #[error("cannot start the upstream sync: {0}")]
    Sync(String),
    #[error("cannot resume the open attempts: {0}")]
    Resume(String),
    #[error(
        "another qrpayd ({}) already runs on the state directory {}; stop it first, or give this one another state_dir",
        pid.map_or_else(|| "its PID unknown".to_owned(), |pid| format!("PID {pid}")),
        state_dir.display()
    )]
    AlreadyRunning {
        state_dir: std::path::PathBuf,
        /// The PID the lock file names, when it could be read.
        pid: Option<u32>,
    },
    #[error("cannot lock the state directory with {path}: {source}")]
    Lock {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serve the customer display page on {address}: {source}")]
    DisplayWeb {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A started daemon: the engine and its D-Bus service.
pub struct Daemon {
    pub engine: Engine,
    /// The upstream sync (a disabled handle without `[upstream]`); stopped when this drops.
    pub sync: SyncHandle,
    _stop_sync: StopSync,
    /// Held for its lifetime: dropping it leaves the bus.
    _service: dbus::Service,
    ipn_listener: Option<IpnListener>,
    display: DisplaySinks,
    /// Held for its lifetime, and dropped last (fields drop in order): the state directory is
    /// this daemon's until everything above has stopped.
    _lock: StateLock,
}

impl Daemon {
    /// Starts everything `config` describes. Returns once the store is open, the bus name is
    /// owned and the open attempts are resumed: the daemon is ready.
    pub async fn start(config: &Config) -> Result<Daemon, StartError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| StartError::StateDir {
            path: config.state_dir.clone(),
            source,
        })?;
        let lock = StateLock::acquire(&config.state_dir)?;
        let store_path = config.state_dir.join(Store::FILE_NAME);
        let store = Store::open(&store_path)?;
        let mut providers = Providers::default();
        if let Some(settings) = &config.simulator {
            let ledger = config.state_dir.join(Simulator::LEDGER_FILE);
            providers = providers
                .with_simulator(Arc::new(Simulator::new(settings.clone(), Some(&ledger))?));
        }
        if let Some(settings) = &config.qpay {
            // QPay's tokens and invoice journal live in the store, so a restart reuses them.
            let state = Arc::new(StoredProviderState::new(store.clone(), Qpay::NAME));
            let qpay = Qpay::new(settings.clone(), &config.engine.terminal_id, state)?;
            providers = providers.with(Arc::new(qpay));
        }
        if let Some(settings) = &config.appotapay {
            // AppotaPay's QR journal lives in the store: a repeated create finds its QR again.
            let state = Arc::new(StoredProviderState::new(store.clone(), Appotapay::NAME));
            providers = providers.with(Arc::new(Appotapay::new(settings.clone(), state)?));
        }
        if let Some(settings) = &config.vietqr {
            let vietqr = VietQrProvider::new(settings.clone()).map_err(StartError::VietQr)?;
            providers = providers.with(Arc::new(vietqr));
        }
        if let Some(settings) = &config.mqpay {
            // The gateway's checkout and refund journal lives in the store, so a restart finds
            // what a lost answer made instead of making it again.
            let name = crate::providers::mqpay::MqPayGateway::NAME;
            let state = Arc::new(StoredProviderState::new(store.clone(), name));
            providers = providers.with(Arc::new(crate::providers::mqpay::MqPayGateway::new(
                settings.clone(),
                &config.engine.terminal_id,
                state,
            )?));
        }
        if let Some(display) = &config.display
            && let Some(parent) = display.png_path.parent()
            && let Err(error) = std::fs::create_dir_all(parent)
        {
            tracing::warn!(%error, path = %parent.display(), "cannot create the display directory");
        }
        let sync_store = store.clone();
        let engine = Engine::new(
            store,
            providers,
            config.engine.clone(),
            config.display.clone(),
        );
        let display = start_display(config, &engine).await?;
        let sync = match &config.upstream {
            Some(settings) => SyncHandle::start(sync_store, settings, engine.subscribe())
                .map_err(StartError::Sync)?,
            None => SyncHandle::disabled(sync_store),
        };
        let stop_sync = StopSync(sync.clone());
        let service = dbus::serve(&engine, &sync, &BusAddress::parse(&config.bus)).await?;
        let ipn_listener = match (&config.appotapay, config.appotapay_ipn_listen) {
            (Some(settings), Some(address)) => {
                Some(start_ipn_listener(&engine, address, settings.secret_key.clone()).await?)
            }
            _ => None,
        };
        let resumed = engine
            .resume()
            .await
            .map_err(|e| StartError::Resume(e.to_string()))?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            state_dir = %config.state_dir.display(),
            terminal_id = %config.engine.terminal_id,
            providers = ?engine.provider_names(),
            resumed,
            "qrpayd is ready"
        );
        Ok(Daemon {
            engine,
            sync,
            _stop_sync: stop_sync,
            _service: service,
            ipn_listener,
            display,
            _lock: lock,
        })
    }

    /// Where the customer display page is served, when it is on.
    pub fn display_web_address(&self) -> Option<std::net::SocketAddr> {
        self.display.web.as_ref().map(WebSink::address)
    }

    /// Where the AppotaPay IPN listener listens, when it is on.
    pub fn ipn_address(&self) -> Option<std::net::SocketAddr> {
        self.ipn_listener.as_ref().map(IpnListener::address)
    }
}

/// Stops the sync's task when dropped: with the daemon, or when its start fails half-way.
struct StopSync(SyncHandle);

impl Drop for StopSync {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The exclusive lock on a state directory, held for the daemon's life: two daemons on one
/// database would each resume and poll the same attempts.
///
/// It is an advisory `flock` on `<state_dir>/qrpayd.lock`, which holds the PID of its owner.
/// The kernel releases it when the file is closed: when the daemon is dropped, and when the
/// process dies, even by `kill -9`, so a stale lock never keeps a restarted daemon out.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// The lock file's name inside `state_dir`.
    pub const FILE_NAME: &'static str = "qrpayd.lock";

    /// Takes the lock on `state_dir` without waiting, and writes this process's PID into it.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, StartError> {
        use std::io::Write;
        let path = state_dir.join(StateLock::FILE_NAME);
        let failed = |source| StartError::Lock {
            path: path.clone(),
            source,
        };
        // Not truncated on open: until the lock is ours, the PID in it is the owner's.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                return Err(StartError::AlreadyRunning {
                    state_dir: state_dir.to_owned(),
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(failed(source)),
        }
        file.set_len(0).map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        Ok(StateLock { _file: file })
    }
}

/// The customer display's sinks, running while the daemon runs (dropping this stops them).
struct DisplaySinks {
    web: Option<WebSink>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for DisplaySinks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the customer display's sinks: the PNG frame, the framebuffer (a device that cannot be
/// opened is logged and left out: payments go on without it), the kiosk page (an address that
/// cannot be bound stops the start, like the IPN listener's).
async fn start_display(config: &Config, engine: &Engine) -> Result<DisplaySinks, StartError> {
    let mut sinks = DisplaySinks {
        web: None,
        tasks: Vec::new(),
    };
    let (Some(settings), Some(hub)) = (&config.display, engine.display_hub()) else {
        return Ok(sinks);
    };
    sinks.tasks.push(display::png::spawn_sink(&hub));
    if let Some(framebuffer) = &settings.framebuffer {
        match display::framebuffer::Framebuffer::open(framebuffer) {
            Ok(device) => {
                let geometry = device.geometry();
                tracing::info!(
                    device = %framebuffer.device.display(),
                    width = geometry.width,
                    height = geometry.height,
                    bits_per_pixel = geometry.format.bits_per_pixel,
                    "drawing the customer display on the framebuffer"
                );
                sinks
                    .tasks
                    .push(display::framebuffer::spawn_sink(&hub, device));
            }
            Err(error) => tracing::error!(%error, "the customer display framebuffer is left out"),
        }
    }
    if let Some(web) = settings.web {
        let sink = WebSink::start(web.listen, hub.clone())
            .await
            .map_err(|source| StartError::DisplayWeb {
                address: web.listen,
                source,
            })?;
        sinks.web = Some(sink);
    }
    Ok(sinks)
}

/// Starts the AppotaPay IPN listener and applies every IPN it accepts through the engine.
async fn start_ipn_listener(
    engine: &Engine,
    address: std::net::SocketAddr,
    secret: secrecy::SecretString,
) -> Result<IpnListener, StartError> {
    let (listener, mut notices) = IpnListener::start(address, secret, IpnLimits::default())
        .await
        .map_err(|source| StartError::IpnListener { address, source })?;
    let engine = engine.clone();
    tokio::spawn(async move {
        while let Some(invoice_id) = notices.next().await {
            if let Err(error) = engine.invoice_notified(Appotapay::NAME, &invoice_id).await {
                tracing::warn!(%error, invoice_id, "cannot apply an IPN");
            }
        }
    });
    Ok(listener)
}

/// A provider's durable state, kept in the store's `provider_state` table.
pub struct StoredProviderState {
    store: Store,
    provider: String,
}

impl StoredProviderState {
    /// The state of `provider` in `store`.
    pub fn new(store: Store, provider: &str) -> StoredProviderState {
        StoredProviderState {
            store,
            provider: provider.to_owned(),
        }
    }
}

impl crate::providers::ProviderState for StoredProviderState {
    fn load(&self, key: &str) -> Result<Option<String>, String> {
        self.store
            .read(|tx| tx.provider_state(&self.provider, key))
            .map_err(|e| e.to_string())
    }

    fn save(&self, key: &str, value: &str) -> Result<(), String> {
        let now = crate::domain::Timestamp::now();
        self.store
            .write(|tx| tx.put_provider_state(&self.provider, key, value, now))
            .map_err(|e| e.to_string())
    }
}

/// Starts the daemon and runs it until `shutdown` completes.
///
/// Under systemd (`Type=notify`) it says `READY=1` once the store is open, the bus name is owned
/// and the open attempts are resumed; pets the watchdog at half its interval when
/// `WatchdogSec=` is set, each time only after a live round trip through the engine and the
/// store; and says `STOPPING=1` when told to stop. Outside systemd these
/// notifications are no-ops.
pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let daemon = Daemon::start(config).await?;
    notify(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|interval| {
        let engine = daemon.engine.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval / 2);
            loop {
                ticks.tick().await;
                // Fed only after a live round trip through the engine and the store: a wedged
                // daemon stops feeding it, and systemd restarts it.
                match engine.alive(interval / 4).await {
                    Ok(()) => notify(&[sd_notify::NotifyState::Watchdog]),
                    Err(error) => {
                        tracing::error!(%error, "not feeding the watchdog: the daemon is unhealthy");
                    }
                }
            }
        })
    });
    shutdown.await;
    tracing::info!("qrpayd is stopping");
    notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    drop(daemon);
    Ok(())
}

/// Tells systemd about the daemon's state, if systemd is listening.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(state) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}
