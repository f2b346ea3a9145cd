//! Shared test plumbing: a private bus per test, a daemon on it with a real SQLite file in a
//! temporary directory, and a client speaking D-Bus like a till.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use qrpayd::config::Config;
use qrpayd::daemon::Daemon;
use qrpayd::dbus::client::{Arg, Client, Request, Signal};
use qrpayd::dbus::{BusAddress, PrivateBus};
use serde_json::Value;

/// How long a test waits for an event before it fails (not a sleep: an upper bound).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Harness {
    /// Held for its lifetime: the state, the bus socket and the display frame live in it.
    _dir: tempfile::TempDir,
    pub bus: PrivateBus,
    _daemon: Daemon,
    pub client: Client,
}

/// The `[daemon]` and `[display]` sections of every test daemon: the database and the frame
/// under `state_dir`, MNT, and `default_provider` when there is more than one.
pub fn daemon_sections(state_dir: &Path, bus: &str, default_provider: Option<&str>) -> String {
    let default_provider = default_provider
        .map(|name| format!("default_provider = \"{name}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[daemon]
bus = "{bus}"
state_dir = "{state}"
terminal_id = "TEST-01"
default_currency = "MNT"
{default_provider}max_amount = "10000000"
payment_timeout_ms = 60000

[display]
png_path = "{png}"
width = 480
height = 272
"#,
        state = state_dir.display(),
        png = state_dir.join("display.png").display(),
    )
}

/// The config text every test starts from; `extra` is appended to `[providers.simulator]`.
pub fn config_text(state_dir: &Path, bus: &str, simulator_extra: &str) -> String {
    format!(
        "{}\n[providers.simulator]\npoll_interval_ms = 200\n{simulator_extra}\n",
        daemon_sections(state_dir, bus, Some("simulator"))
    )
}

impl Harness {
    /// A daemon with the simulator (paying only on command) on a private bus.
    pub async fn start() -> Harness {
        Harness::start_with("").await
    }

    pub async fn start_with(simulator_extra: &str) -> Harness {
        Harness::start_configured("", simulator_extra).await
    }

    /// A daemon whose `[daemon]` section also has `daemon_extra` (lines of `key = value`).
    pub async fn start_configured(daemon_extra: &str, simulator_extra: &str) -> Harness {
        Harness::start_full(daemon_extra, "", simulator_extra).await
    }

    /// A daemon whose `[display]` section ends with `display_extra` (keys, then subsections
    /// such as `[display.web]`).
    pub async fn start_display(display_extra: &str) -> Harness {
        Harness::start_full("", display_extra, "").await
    }

    /// A daemon with extra lines in `[daemon]`, `[display]` and `[providers.simulator]`.
    pub async fn start_full(
        daemon_extra: &str,
        display_extra: &str,
        simulator_extra: &str,
    ) -> Harness {
        Harness::start_seeded(daemon_extra, display_extra, simulator_extra, |_| {}).await
    }

    /// As [`Harness::start_full`], with `seed` run on the state directory before the daemon
    /// starts (to write a database it then finds).
    pub async fn start_seeded(
        daemon_extra: &str,
        display_extra: &str,
        simulator_extra: &str,
        seed: impl FnOnce(&Path),
    ) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = PrivateBus::start(dir.path()).expect("private bus");
        let state = dir.path().join("state");
        let text = config_text(&state, bus.address(), simulator_extra)
            .replacen("[display]", &format!("{daemon_extra}\n[display]"), 1)
            .replacen(
                "height = 272\n",
                &format!("height = 272\n{display_extra}\n"),
                1,
            );
        let config = Config::parse(&text, &dir.path().join("qrpayd.toml")).expect("config");
        seed(&state);
        let daemon = Daemon::start(&config).await.expect("daemon starts");
        let client = Client::connect(&BusAddress::parse(bus.address()))
            .await
            .expect("client connects");
        Harness {
            _dir: dir,
            bus,
            _daemon: daemon,
            client,
        }
    }
}

impl Harness {
    /// The daemon under test.
    pub fn daemon(&self) -> &Daemon {
        &self._daemon
    }

    /// The daemon's state directory (its database).
    pub fn state_dir(&self) -> PathBuf {
        self._dir.path().join("state")
    }
}

/// A checkout request for `amount` MNT of order `source_id`.
pub fn order(source_id: &str, amount: &str) -> Request {
    let mut request = Request::new();
    request.insert("source_id".into(), Arg::from(source_id));
    request.insert("amount".into(), Arg::from(amount));
    request
}

/// A request of string values.
pub fn pairs(pairs: &[(&str, &str)]) -> Request {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), Arg::from(*value)))
        .collect()
}

/// Adds or replaces a key of a request.
pub fn with(mut request: Request, key: &str, value: Arg) -> Request {
    request.insert(key.to_owned(), value);
    request
}

/// A string field of a reply.
pub fn s<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
}

/// Waits for the first signal that `pick` accepts.
pub async fn wait_for(
    signals: &mut (impl Stream<Item = Signal> + Unpin),
    what: &str,
    mut pick: impl FnMut(&Signal) -> bool,
) -> Signal {
    let found = tokio::time::timeout(EVENT_TIMEOUT, async {
        while let Some(signal) = signals.next().await {
            if pick(&signal) {
                return Some(signal);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(signal)) => signal,
        Ok(None) => panic!("the signal stream ended before {what}"),
        Err(_) => panic!("no {what} within {EVENT_TIMEOUT:?}"),
    }
}

/// Waits for `TransactionChanged` with `status` for `transaction_id`.
pub async fn wait_transaction(
    signals: &mut (impl Stream<Item = Signal> + Unpin),
    transaction_id: &str,
    status: &str,
) -> Signal {
    wait_for(signals, &format!("TransactionChanged {status}"), |s| {
        s.name == "TransactionChanged"
            && s.args["transaction_id"] == transaction_id
            && s.args["status"] == status
    })
    .await
}

/// Waits for `AttemptChanged` with `status` for `attempt_id`.
pub async fn wait_attempt(
    signals: &mut (impl Stream<Item = Signal> + Unpin),
    attempt_id: &str,
    status: &str,
) -> Signal {
    wait_for(signals, &format!("AttemptChanged {status}"), |s| {
        s.name == "AttemptChanged"
            && s.args["attempt_id"] == attempt_id
            && s.args["status"] == status
    })
    .await
}

/// Waits for `OpenAttempts` (payment attempts that may still take money) to become `count`.
pub async fn wait_open_attempts(
    signals: &mut (impl Stream<Item = Signal> + Unpin),
    count: u64,
) -> Signal {
    wait_for(signals, &format!("OpenAttempts {count}"), |s| {
        s.name == "PropertiesChanged" && s.args["changed"]["OpenAttempts"] == count
    })
    .await
}

/// The remote error's short name.
pub fn error_name(error: &qrpayd::dbus::client::ClientError) -> &str {
    error.short_name().unwrap_or("<not a qrpayd error>")
}

/// A real `qrpayd run` process, for the tests that `kill -9` it. With a log file it logs at
/// debug level into it (appending across restarts); without one it logs warnings to nowhere.
pub struct Process {
    config: PathBuf,
    log: Option<PathBuf>,
    child: Option<std::process::Child>,
}

impl Process {
    pub fn start(config: &Path, log: Option<&Path>) -> Process {
        let mut process = Process {
            config: config.to_owned(),
            log: log.map(Path::to_owned),
            child: None,
        };
        process.spawn();
        process
    }

    pub fn spawn(&mut self) {
        use std::process::Stdio;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_qrpayd"));
        command
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null());
        match &self.log {
            Some(path) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("log file");
                command
                    .env("RUST_LOG", "debug")
                    .stdout(log.try_clone().expect("log"))
                    .stderr(log);
            }
            None => {
                command
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
            }
        }
        self.child = Some(command.spawn().expect("spawn qrpayd"));
    }

    /// The running process's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// A client on `bus`, once the daemon owns its name.
pub async fn ready_client(bus: &PrivateBus) -> Client {
    let client = Client::connect(&BusAddress::parse(bus.address()))
        .await
        .expect("connect");
    client
        .wait_for_daemon(EVENT_TIMEOUT)
        .await
        .expect("daemon ready");
    client
}
