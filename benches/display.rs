//! The customer display's benchmark: what the kiosk page and the frames cost and how fast they
//! follow a payment.
//!
//! 1. **Checkout → SSE snapshot on the wire**: the release `qrpayd` as its own process on a
//!    private bus (simulator, `[display.web]` on 127.0.0.1), a page's event stream open
//!    (`GET /events`, read over real HTTP as the page reads it). For N sequential checkouts
//!    (after 20 warm-up ones) the time from sending `Checkout` to the arrival of the
//!    `waiting` snapshot carrying that attempt; each is then paid and its `paid` snapshot
//!    awaited (not counted). p50/p90/p99/max; target p99 under 10 ms.
//! 2. **Page weight**: the bytes of `GET /` (the page with its inlined font); target under
//!    100 KB.
//! 3. **RSS with the web sink on**: the daemon's `VmRSS`/`VmHWM` once it is fresh with a page
//!    connected, and after the checkouts.
//! 4. **PNG render time**: in this process, the waiting frame (QR, amount, cart) rendered at
//!    800×480 and 1920×1080, and encoded and written atomically, 200 times each; p50/p99.
//!
//! `cargo bench --bench display` (`QRPAYD_BENCH_CHECKOUTS`, default 500).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use qrpayd::dbus::client::{Arg, Client, Request};
use qrpayd::dbus::{BusAddress, PrivateBus};
use qrpayd::display::{DisplayModel, DisplaySettings, Language, Snapshot};
use qrpayd::domain::{
    Attempt, AttemptStatus, AttemptType, Currency, Item, Source, Timestamp, Transaction,
    TransactionStatus,
};
use rust_decimal::Decimal;

#[path = "../tests/support/sse.rs"]
mod sse;

const DAEMON_BIN: &str = env!("CARGO_BIN_EXE_qrpayd");
const WARMUP: usize = 20;
const RENDERS: usize = 200;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_PAGE_BYTES: usize = 100 * 1024;

type Bench<T> = Result<T, String>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("display benchmark failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// p50, p90, p99 and max of `samples`, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> [f64; 4] {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1000.0
    };
    [at(0.5), at(0.9), at(0.99), at(1.0)]
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory(pid: u32) -> Bench<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|kb| kb / 1024.0)
            .ok_or_else(|| format!("no {key}"))
    };
    Ok((value("VmRSS:")?, value("VmHWM:")?))
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(home: &Path, bus: &str, listen: SocketAddr) -> Bench<Daemon> {
    let config = format!(
        "[daemon]\nbus = \"{bus}\"\nstate_dir = \"{state}\"\nterminal_id = \"BENCH-01\"\n\
         default_currency = \"MNT\"\n\n[display]\npng_path = \"{png}\"\nwidth = 800\nheight = 480\n\
         paid_hold_ms = 500\n\n[display.web]\nlisten = \"{listen}\"\n\n\
         [providers.simulator]\npoll_interval_ms = 1000\n",
        state = home.join("state").display(),
        png = home.join("display.png").display(),
    );
    let path = home.join("qrpayd.toml");
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    let child = Command::new(DAEMON_BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {DAEMON_BIN}: {e}"))?;
    Ok(Daemon(child))
}

fn order(source_id: &str) -> Request {
    let mut request = Request::new();
    request.insert("source_id".into(), Arg::from(source_id));
    request.insert("amount".into(), Arg::from("12500"));
    request
}

async fn run() -> Bench<()> {
    let checkouts: usize = std::env::var("QRPAYD_BENCH_CHECKOUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bus = PrivateBus::start(dir.path()).map_err(|e| e.to_string())?;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?;
    let daemon = start_daemon(dir.path(), bus.address(), listen)?;
    let client = Client::connect(&BusAddress::parse(bus.address()))
        .await
        .map_err(|e| e.to_string())?;
    client
        .wait_for_daemon(Duration::from_secs(20))
        .await
        .map_err(|e| format!("the daemon did not start: {e}"))?;
    println!("qrpayd display benchmark ({checkouts} checkouts)");

    // 2. Page weight, and 3. RSS fresh with a page connected.
    let (status, _, page) = sse::get(listen, "/").await;
    if status != 200 {
        return Err(format!("GET / answered {status}"));
    }
    let mut events = sse::Events::connect(listen).await;
    events.next().await;
    let fresh = memory(daemon.0.id())?;

    // 1. Checkout → the snapshot on the wire.
    let mut samples = Vec::with_capacity(checkouts);
    let mut rss_trace = Vec::new();
    for i in 0..WARMUP + checkouts {
        if i >= WARMUP && (i - WARMUP).is_multiple_of(100) {
            rss_trace.push(format!("{:.1}", memory(daemon.0.id())?.0));
        }
        let request = order(&format!("d-{i}"));
        let started = Instant::now();
        let (reply, arrived) = tokio::join!(client.checkout(&request), async {
            let snapshot = events.until(|s| s["state"] == "waiting").await;
            (snapshot, started.elapsed())
        });
        let reply = reply.map_err(|e| format!("checkout: {e}"))?;
        let attempt = reply["attempt_id"].as_str().unwrap_or_default().to_owned();
        if arrived.0["attempt_id"] != attempt.as_str() {
            return Err(format!(
                "the snapshot shows {} not {attempt}",
                arrived.0["attempt_id"]
            ));
        }
        if i >= WARMUP {
            samples.push(arrived.1);
        }
        client
            .simulate_pay(&attempt, "")
            .await
            .map_err(|e| format!("pay: {e}"))?;
        events.until(|s| s["state"] == "paid").await;
    }
    let after = memory(daemon.0.id())?;
    let [p50, p90, p99, max] = percentiles(&mut samples);
    println!(
        "checkout → SSE snapshot on the wire, p50 / p90 / p99 / max: {p50:.2} / {p90:.2} / {p99:.2} / {max:.2} ms  [{} p99 < {TARGET_P99_MS} ms]",
        verdict(p99 < TARGET_P99_MS)
    );
    println!(
        "page weight (GET /, font inlined): {} bytes = {:.1} KB  [{} < 100 KB]",
        page.len(),
        page.len() as f64 / 1024.0,
        verdict(page.len() < TARGET_PAGE_BYTES)
    );
    println!(
        "daemon with the web sink on and a page connected: VmRSS fresh {:.1} MiB, after {} payments {:.1} MiB (peak {:.1} MiB)",
        fresh.0,
        WARMUP + checkouts,
        after.0,
        after.1
    );
    println!(
        "  VmRSS (MiB) before each block of 100 checkouts: {}",
        rss_trace.join(", ")
    );
    drop(daemon);

    // 4. PNG render time, in this process.
    let snapshot = waiting_snapshot();
    for (width, height) in [(800, 480), (1920, 1080)] {
        let mut render = Vec::with_capacity(RENDERS);
        let mut write = Vec::with_capacity(RENDERS);
        let path = dir.path().join(format!("frame-{width}.png"));
        for _ in 0..RENDERS {
            let started = Instant::now();
            let image =
                qrpayd::display::render(&snapshot, width, height).map_err(|e| e.to_string())?;
            render.push(started.elapsed());
            let started = Instant::now();
            qrpayd::display::write_png_atomic(&path, &image).map_err(|e| e.to_string())?;
            write.push(started.elapsed());
        }
        let [r50, _, r99, _] = percentiles(&mut render);
        let [w50, _, w99, _] = percentiles(&mut write);
        println!(
            "PNG frame {width}×{height}: render p50 / p99 {r50:.2} / {r99:.2} ms; encode + atomic write p50 / p99 {w50:.2} / {w99:.2} ms"
        );
    }
    Ok(())
}

/// The waiting frame: a QPay-sized QR, the amount, two cart lines, in Mongolian.
fn waiting_snapshot() -> Snapshot {
    let dec = |text: &str| Decimal::from_str_exact(text).unwrap_or_default();
    let now = Timestamp::now();
    let transaction = Transaction {
        id: "t".into(),
        number: "TXN000001".into(),
        terminal_id: "BENCH-01".into(),
        source: Source {
            kind: "Order".into(),
            id: "o".into(),
            uid: None,
        },
        currency: Currency::Mnt,
        total: dec("12500"),
        paid: Decimal::ZERO,
        refunded: Decimal::ZERO,
        overpaid: Decimal::ZERO,
        status: TransactionStatus::New,
        description: None,
        items: vec![
            Item {
                description: "Americano".into(),
                quantity: dec("2"),
                unit_price: dec("4500"),
            },
            Item {
                description: "Бууз".into(),
                quantity: dec("1"),
                unit_price: dec("3500"),
            },
        ],
        created_at: now,
        updated_at: now,
    };
    let attempt = Attempt {
        id: "a".into(),
        code: "ATT000001".into(),
        transaction_id: "t".into(),
        kind: AttemptType::Payment,
        status: AttemptStatus::Sent,
        provider: "qpay".into(),
        method: "100_QR_CODE".into(),
        amount: dec("12500"),
        paid: Decimal::ZERO,
        refunded: Decimal::ZERO,
        overpaid: Decimal::ZERO,
        tendered: None,
        parent_id: None,
        idempotency_key: "k".into(),
        request_id: None,
        invoice_id: None,
        short_url: None,
        qr_text: Some("0002010102121531279404962794049600000000KKTQPAY52046010530349654031005802MN5913TEST_MERCHANT6011Ulaanbaatar6244010712345670504test0721G7ZEWdbzkppBhJ1nouBhZ6304879D".into()),
        deep_links: Vec::new(),
        provider_open: true,
        allow_partial: false,
        expires_at: Some(now.plus_millis(300_000)),
        failure: None,
        note: None,
        created_at: now,
        updated_at: now,
    };
    let settings = DisplaySettings::with_defaults("/dev/null".into(), Language::Mn);
    Snapshot::new(
        &DisplayModel::for_attempt(&attempt, &transaction, "QPay"),
        &settings,
        1,
    )
}
