//! What the benchmark programs share: the daemon as a child process on a private bus, the
//! till's calls and the signals it awaits, latency percentiles, and the daemon's memory and CPU
//! read from `/proc/<pid>`.
//!
//! Each program includes it with `mod common;` and uses what it needs, so it allows dead code.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use qrpayd::dbus::client::{Arg, Client, Request, Signal};
use qrpayd::dbus::{BusAddress, PrivateBus};
use serde_json::Value;
use tokio::sync::mpsc;

/// The daemon binary under test, built by Cargo alongside the bench (same profile).
pub const DAEMON_BIN: &str = env!("CARGO_BIN_EXE_qrpayd");

/// Checkouts made before the timed ones, not counted.
pub const WARMUP_CHECKOUTS: usize = 20;

/// How long the daemon may take to answer its first `status()`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long any single step (a call, an awaited signal) may take before the harness gives up.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The status a transaction reaches when it is fully paid.
pub const SETTLED: &str = "304_SETTLED";

/// What every checkout asks for, in MNT.
pub const CHECKOUT_AMOUNT: &str = "12500";

/// The provider section of the simulator daemons.
pub const SIMULATOR_PROVIDER: &str = "[providers.simulator]\npoll_interval_ms = 1000\n";

/// A harness failure: the message says what went wrong. Ends the run with a non-zero exit.
pub type Harness<T> = Result<T, String>;

/// The program's exit status: success, or the harness failure, printed.
pub fn exit_code(result: Harness<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nbenchmark harness failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A temporary directory named `prefix…` for everything a run writes, removed when dropped;
/// prints the program's heading with the daemon binary, the directory and the load.
pub fn work_directory(prefix: &str, title: &str) -> Harness<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    println!("{title}");
    println!("  daemon binary : {DAEMON_BIN}");
    println!("  work directory: {}", dir.path().display());
    println!("  load average  : {}", load_average());
    Ok(dir)
}

/// `PASS`/`MISS`, flagged when the sample is too small to report.
pub fn verdict(pass: bool, reportable: bool) -> String {
    let word = if pass { "PASS" } else { "MISS" };
    if reportable {
        word.to_owned()
    } else {
        format!("{word} (n too small)")
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon process.

/// A `qrpayd run` child process. Dropping it kills the process if it is still running, so a
/// harness failure never leaves a daemon behind.
pub struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Writes `home/qrpayd.toml` for `bus` (`currency` the `default_currency`, `daemon_extra`
    /// appended to `[daemon]`, then the `providers` sections) and starts `qrpayd run` on it, logging to
    /// `home/../daemon-<name>.log`.
    pub fn spawn(
        name: &'static str,
        home: &Path,
        bus: &str,
        currency: &str,
        daemon_extra: &str,
        providers: &str,
    ) -> Harness<Daemon> {
        let config = format!(
            r#"[daemon]
bus = "{bus}"
state_dir = "{state}"
terminal_id = "BENCH-01"
default_currency = "{currency}"
max_amount = "100000000"
{daemon_extra}

[display]
png_path = "{png}"
width = 800
height = 480

{providers}"#,
            state = home.join("state").display(),
            png = home.join("display.png").display(),
        );
        let config_path = home.join("qrpayd.toml");
        std::fs::write(&config_path, config)
            .map_err(|e| format!("write {}: {e}", config_path.display()))?;
        let log = home
            .parent()
            .unwrap_or(home)
            .join(format!("daemon-{name}.log"));
        let log_file = File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("clone the log file handle: {e}"))?;
        let child = Command::new(DAEMON_BIN)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {DAEMON_BIN}: {e}"))?;
        Ok(Daemon { name, child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `status()` until the daemon answers (it owns its bus name only once it can serve),
    /// for at most `READY_TIMEOUT`, failing early if the process exits.
    pub async fn wait_ready(&mut self, bus: &str) -> Harness<Client> {
        let client = Client::connect(&BusAddress::parse(bus))
            .await
            .map_err(|e| format!("connect to the private bus: {e}"))?;
        let started = Instant::now();
        loop {
            // Bound each try: the private broker does not answer a call to a name that nobody
            // owns yet (no ServiceUnknown error), so an early call may never return.
            let answer = tokio::time::timeout(Duration::from_millis(250), client.status())
                .await
                .unwrap_or_else(|_| Err(no_answer()));
            match answer {
                Ok(_) => {
                    println!(
                        "  daemon '{}' (pid {}) answered status after {:.0} ms",
                        self.name,
                        self.pid(),
                        ms(started.elapsed())
                    );
                    return Ok(client);
                }
                Err(error) => {
                    if let Ok(Some(exit)) = self.child.try_wait() {
                        return Err(format!(
                            "daemon '{}' exited ({exit}) before answering; its log:\n{}",
                            self.name,
                            self.log_text()
                        ));
                    }
                    if started.elapsed() > READY_TIMEOUT {
                        return Err(format!(
                            "daemon '{}' did not answer status within {READY_TIMEOUT:?} \
                             (last error: {error}); its log:\n{}",
                            self.name,
                            self.log_text()
                        ));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(unreadable: {e})"))
    }

    /// SIGTERM, then up to 5 s for a clean exit, then SIGKILL.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                println!("  daemon '{}' stopped ({status})", self.name);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "  daemon '{}' ignored SIGTERM for 5 s; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The error a readiness try reports when its call got no answer in time.
pub fn no_answer() -> qrpayd::dbus::client::ClientError {
    qrpayd::dbus::client::ClientError::Unreachable {
        bus: "private".to_owned(),
        detail: "no answer within 250 ms".to_owned(),
    }
}

/// Starts a private broker in `home` (created). Its thread lives until this process ends.
pub fn start_bus(home: &Path) -> Harness<PrivateBus> {
    std::fs::create_dir_all(home).map_err(|e| format!("create {}: {e}", home.display()))?;
    PrivateBus::start(home).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The till's side: calls and signals.

/// One `Checkout` of 12500 MNT for `source_id`, bounded by `STEP_TIMEOUT`.
pub async fn checkout(client: &Client, source_id: &str) -> Harness<Value> {
    checkout_order(client, source_id, CHECKOUT_AMOUNT, "MNT").await
}

/// One `Checkout` of `amount` `currency` for `source_id`, bounded by `STEP_TIMEOUT`.
pub async fn checkout_order(
    client: &Client,
    source_id: &str,
    amount: &str,
    currency: &str,
) -> Harness<Value> {
    let mut request = Request::new();
    request.insert("source_id".into(), Arg::from(source_id));
    request.insert("amount".into(), Arg::from(amount));
    request.insert("currency".into(), Arg::from(currency));
    request.insert("description".into(), Arg::from("Two lattes"));
    let reply = tokio::time::timeout(STEP_TIMEOUT, client.checkout(&request))
        .await
        .map_err(|_| format!("Checkout({source_id}) got no reply within {STEP_TIMEOUT:?}"))?
        .map_err(|e| format!("Checkout({source_id}): {e}"))?;
    Ok(reply)
}

/// `Simulator.Pay(attempt_id, "")`: the customer pays the rest.
pub async fn simulate_pay(client: &Client, attempt_id: &str) -> Harness<()> {
    tokio::time::timeout(STEP_TIMEOUT, client.simulate_pay(attempt_id, ""))
        .await
        .map_err(|_| format!("Simulator.Pay({attempt_id}) got no reply within {STEP_TIMEOUT:?}"))?
        .map_err(|e| format!("Simulator.Pay({attempt_id}): {e}"))
}

/// Pays the checkout's attempt and waits until the daemon is done with it: its transaction
/// settled, and the `OpenAttempts` change that the daemon publishes only after redrawing the
/// frame. Not timed; it keeps the next checkout from sharing the daemon with this payment.
pub async fn pay_and_wait_settled(
    client: &Client,
    signals: &mut Signals,
    reply: &Value,
) -> Harness<()> {
    simulate_pay(client, &field(reply, "attempt_id")?).await?;
    signals.settled(&field(reply, "transaction_id")?).await?;
    signals.open_attempts_zero().await
}

/// `Verify(attempt_id)`: the till asks the daemon to check with the provider now (rather than
/// wait up to a second for its poll).
pub async fn verify(client: &Client, attempt_id: &str) -> Harness<()> {
    tokio::time::timeout(STEP_TIMEOUT, client.verify(attempt_id))
        .await
        .map_err(|_| format!("Verify({attempt_id}) got no reply within {STEP_TIMEOUT:?}"))?
        .map_err(|e| format!("Verify({attempt_id}): {e}"))?;
    Ok(())
}

/// Checks, once, that the reply names the frame and that the frame was just written.
pub fn check_frame(reply: &Value, png: &Path, before: Option<SystemTime>) -> Harness<()> {
    let named = field(reply, "display_png")?;
    if Path::new(&named) != png {
        return Err(format!(
            "the checkout reply names the frame {named}, not {}",
            png.display()
        ));
    }
    let after =
        mtime(png).ok_or_else(|| format!("no frame at {} after a checkout", png.display()))?;
    if before.is_some_and(|before| after <= before) {
        return Err(format!(
            "the frame {} was not rewritten by the checkout (mtime did not advance)",
            png.display()
        ));
    }
    println!("  checked: the reply names {named}, written by the checkout");
    Ok(())
}

/// A string field of a reply.
pub fn field(reply: &Value, key: &str) -> Harness<String> {
    reply[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("the reply has no {key}: {reply}"))
}

/// The daemon's `OpenAttempts`.
pub async fn open_attempts(client: &Client) -> Harness<u64> {
    let status = tokio::time::timeout(STEP_TIMEOUT, client.status())
        .await
        .map_err(|_| "status got no reply".to_owned())?
        .map_err(|e| format!("status: {e}"))?;
    status["open_attempts"]
        .as_u64()
        .ok_or_else(|| format!("status has no open_attempts: {status}"))
}

/// Polls `OpenAttempts` until it is 0, for at most `STEP_TIMEOUT`.
pub async fn wait_no_open_attempts(client: &Client) -> Harness<()> {
    let started = Instant::now();
    loop {
        let open = open_attempts(client).await?;
        if open == 0 {
            return Ok(());
        }
        if started.elapsed() > STEP_TIMEOUT {
            return Err(format!(
                "{open} attempt(s) still open after {STEP_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon's signals, each stamped with the instant it was read off the connection by a
/// task that does nothing else, so a slow consumer does not inflate a latency.
pub struct Signals {
    receiver: mpsc::UnboundedReceiver<(Instant, Signal)>,
    reader: tokio::task::JoinHandle<()>,
}

impl Signals {
    pub fn spawn(
        mut stream: impl futures_util::Stream<Item = Signal> + Unpin + Send + 'static,
    ) -> Signals {
        let (sender, receiver) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(signal) = stream.next().await {
                if sender.send((Instant::now(), signal)).is_err() {
                    return;
                }
            }
        });
        Signals { receiver, reader }
    }

    /// Waits for the next signal that `matches`, skipping others; returns its arrival time.
    pub async fn next_matching(
        &mut self,
        what: &str,
        matches: impl Fn(&Signal) -> bool,
    ) -> Harness<Instant> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.receiver.recv()).await {
                Err(_) => return Err(format!("no {what} within {STEP_TIMEOUT:?}")),
                Ok(None) => {
                    return Err(format!("the signal stream ended while waiting for {what}"));
                }
                Ok(Some((at, signal))) if matches(&signal) => return Ok(at),
                Ok(Some(_)) => {}
            }
        }
    }

    /// `TransactionChanged(transaction_id, "304_SETTLED", …)`.
    pub async fn settled(&mut self, transaction_id: &str) -> Harness<Instant> {
        self.next_matching(&format!("settlement of {transaction_id}"), |s| {
            s.name == "TransactionChanged"
                && s.args["transaction_id"] == transaction_id
                && s.args["status"] == SETTLED
        })
        .await
    }

    /// `PropertiesChanged` with `OpenAttempts` = 0.
    pub async fn open_attempts_zero(&mut self) -> Harness<()> {
        self.next_matching("OpenAttempts = 0", |s| {
            s.name == "PropertiesChanged" && s.args["changed"]["OpenAttempts"] == 0
        })
        .await
        .map(|_| ())
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Figures.

/// Latency percentiles (nearest rank).
pub struct Stats {
    pub n: usize,
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(samples: &mut [Duration]) -> Stats {
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: f64| samples[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        Stats {
            n,
            mean: samples.iter().sum::<Duration>() / n as u32,
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: samples[n - 1],
        }
    }

    pub fn print(&self, what: &str) {
        println!(
            "  {what} latency over {} samples: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms, mean {:.2} ms",
            self.n,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            ms(self.mean)
        );
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// /proc and the environment.

/// A process's memory (kB) and thread count, from `/proc/<pid>/status`.
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kb: u64,
    /// `VmHWM`: the peak resident size.
    pub hwm_kb: u64,
    /// `RssAnon`: the heap and stacks, the part the daemon's own allocations drive.
    pub anon_kb: u64,
    /// `RssFile`: mapped files (the binary's pages, mostly).
    pub file_kb: u64,
    pub threads: u64,
}

impl Memory {
    pub fn read(pid: u32) -> Harness<Memory> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
        let value = |key: &str| -> Harness<u64> {
            text.lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("{path} has no readable {key}"))
        };
        Ok(Memory {
            rss_kb: value("VmRSS:")?,
            hwm_kb: value("VmHWM:")?,
            anon_kb: value("RssAnon:")?,
            file_kb: value("RssFile:")?,
            threads: value("Threads:")?,
        })
    }

    /// One line: resident, peak, and where the resident pages are.
    pub fn describe(&self) -> String {
        format!(
            "VmRSS {:.1} MiB (anon {:.1} + file {:.1}), VmHWM {:.1} MiB, {} threads",
            mib(self.rss_kb),
            mib(self.anon_kb),
            mib(self.file_kb),
            mib(self.hwm_kb),
            self.threads
        )
    }
}

/// utime + stime of a process, in clock ticks, from `/proc/<pid>/stat` (fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Harness<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    let after_name = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| format!("{path} is not a stat line"))?;
    // after_name starts at field 3 (state), so utime (14) and stime (15) are its 12th and 13th.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |i: usize| -> Harness<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: no field {}", i + 3))
    };
    Ok(tick(11)? + tick(12)?)
}

/// Clock ticks per second from `getconf CLK_TCK`, else 100 (and whether it was read).
pub fn clock_ticks_per_second() -> (u64, bool) {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|&hz| hz > 0)
        .map_or((100, false), |hz| (hz, true))
}

pub fn ticks_to_ms(ticks: u64, per_second: u64) -> f64 {
    ticks as f64 * 1000.0 / per_second as f64
}

/// `name size` for each file in `dir`, largest first.
pub fn dir_sizes(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return format!("({} unreadable)", dir.display());
    };
    let mut files: Vec<(u64, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            Some((
                e.metadata().ok()?.len(),
                e.file_name().to_string_lossy().into(),
            ))
        })
        .collect();
    files.sort_unstable_by(|a, b| b.cmp(a));
    files
        .iter()
        .map(|(len, name)| format!("{name} {:.0} KiB", *len as f64 / 1024.0))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

pub async fn wait_for_file(path: &Path, timeout: Duration) -> Harness<()> {
    let started = Instant::now();
    while !path.exists() {
        if started.elapsed() > timeout {
            return Err(format!(
                "{} did not appear within {timeout:?}",
                path.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

pub fn env_usize(name: &str, default: usize) -> Harness<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}={text:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}
