//! `qrpayd demo`: the newcomer's path. Brings up a private bus, starts the daemon with the
//! simulator in a temporary state directory, takes one payment through the real D-Bus API as a
//! till would, shows the QR, has the simulated customer pay, prints every signal, and ends with
//! the settled transaction.

use std::time::Duration;

use futures_util::StreamExt;

use crate::config::Config;
use crate::daemon::Daemon;
use crate::dbus::client::{Arg, Client, Request, Signal};
use crate::dbus::{BusAddress, PrivateBus};
use crate::display;

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(String);

fn fail(context: &str) -> impl Fn(&dyn std::fmt::Display) -> DemoError + '_ {
    move |e| DemoError(format!("{context}: {e}"))
}

/// Runs the demo. Its directory is removed at the end unless `keep`.
pub async fn run(keep: bool) -> Result<(), DemoError> {
    let guard = tempfile::Builder::new()
        .prefix("qrpayd-demo-")
        .tempdir()
        .map_err(|e| fail("cannot create a temporary directory")(&e))?;
    let dir = guard.path().to_owned();
    println!("qrpayd demo: everything lives in {}", dir.display());
    let result = take_one_payment(&dir).await;
    if keep {
        let dir = guard.keep();
        println!(
            "Kept {}: qrpayd.toml, state/{} (the database), display.png (the display frame, now \
             'paid').",
            dir.display(),
            crate::store::Store::FILE_NAME
        );
    } else {
        println!(
            "Removed {} (qrpayd demo --keep keeps it: the config, the database, the display frame).",
            dir.display()
        );
    }
    if result.is_ok() {
        println!(
            "Next: `qrpayd dev` runs a daemon to try a till against; see docs/integrating-a-till.md."
        );
    }
    result
}

/// The demo itself, in `dir`; the daemon is stopped when it returns.
async fn take_one_payment(dir: &std::path::Path) -> Result<(), DemoError> {
    let bus = PrivateBus::start(dir).map_err(|e| fail("private bus")(&e))?;
    println!("  private D-Bus broker at {}", bus.address());
    let state = dir.join("state");
    let config_text = format!(
        r#"[daemon]
bus = "{bus}"
state_dir = "{state}"
terminal_id = "DEMO-01"
default_currency = "MNT"
max_amount = "10000000"
payment_timeout_ms = 120000

[display]
png_path = "{png}"
width = 800
height = 480

[providers.simulator]
poll_interval_ms = 500
"#,
        bus = bus.address(),
        state = state.display(),
        png = dir.join("display.png").display(),
    );
    let config_path = dir.join("qrpayd.toml");
    std::fs::write(&config_path, &config_text).map_err(|e| fail("write config")(&e))?;
    let config = Config::load(&config_path).map_err(|e| fail("config")(&e))?;
    let _daemon = Daemon::start(&config)
        .await
        .map_err(|e| fail("daemon")(&e))?;
    println!("  daemon started: state in {}", state.display());

    // From here on, this is what a till does: nothing but D-Bus calls.
    let client = Client::connect(&BusAddress::parse(bus.address()))
        .await
        .map_err(|e| fail("connect")(&e))?;
    let mut signals = client.watch().await.map_err(|e| fail("watch")(&e))?;
    let status = client.status().await.map_err(|e| fail("status")(&e))?;
    println!(
        "  qrpayd {} on the bus; providers: {}",
        status["version"].as_str().unwrap_or("?"),
        status["providers"]
    );

    let mut request = Request::new();
    request.insert("source_id".into(), Arg::from("demo-order-1"));
    request.insert("source_uid".into(), Arg::from("ORD-2026-0001"));
    request.insert("amount".into(), Arg::from("12500"));
    request.insert("currency".into(), Arg::from("MNT"));
    request.insert("description".into(), Arg::from("Two lattes"));
    request.insert(
        "items".into(),
        Arg::Dicts(vec![
            [
                ("description".to_owned(), "Latte".to_owned()),
                ("quantity".to_owned(), "2".to_owned()),
                ("unit_price".to_owned(), "6250".to_owned()),
            ]
            .into_iter()
            .collect(),
        ]),
    );
    println!("\n> Checkout(source_id=demo-order-1, amount=12500 MNT)");
    let reply = client
        .checkout(&request)
        .await
        .map_err(|e| fail("checkout")(&e))?;
    let field = |key: &str| reply[key].as_str().unwrap_or("").to_owned();
    println!(
        "< transaction {} ({}) {}, attempt {} {}, expires {}",
        field("transaction_number"),
        field("transaction_id"),
        field("transaction_status"),
        field("attempt_code"),
        field("attempt_status"),
        field("expires_at"),
    );
    let qr_text = field("qr_text");
    println!("  QR payload: {qr_text}");
    match display::terminal_qr(&qr_text) {
        Ok(qr) => println!("{qr}"),
        Err(error) => println!("  (cannot draw the QR here: {error})"),
    }
    println!("  customer display frame: {}", field("display_png"));

    print_pending(&mut signals).await;
    println!(
        "\n> Simulator.Pay({}): the customer scans and pays",
        field("attempt_code")
    );
    client
        .simulate_pay(&field("attempt_id"), "")
        .await
        .map_err(|e| fail("simulated payment")(&e))?;

    let transaction_id = field("transaction_id");
    let settled = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(signal) = signals.next().await {
            print_signal(&signal);
            if signal.name == "TransactionChanged"
                && signal.args["transaction_id"] == transaction_id.as_str()
                && signal.args["status"] == "304_SETTLED"
            {
                return true;
            }
        }
        false
    })
    .await;
    if settled != Ok(true) {
        return Err(DemoError(
            "the payment did not settle within 30 s".to_owned(),
        ));
    }

    let view = client
        .get_transaction(&transaction_id)
        .await
        .map_err(|e| fail("get transaction")(&e))?;
    println!("\n> GetTransaction({})", field("transaction_number"));
    println!(
        "< {} {}: total {} {}, paid {}, {} attempt(s), {} payment(s) recorded",
        view["transaction_number"].as_str().unwrap_or(""),
        view["transaction_status"].as_str().unwrap_or(""),
        view["total"].as_str().unwrap_or(""),
        view["currency"].as_str().unwrap_or(""),
        view["paid"].as_str().unwrap_or(""),
        view["attempts"].as_array().map_or(0, Vec::len),
        view["payments"].as_array().map_or(0, Vec::len),
    );
    println!("\nDone: one payment taken and settled through the D-Bus API, as a till would.");
    Ok(())
}

/// Prints the signals that already arrived, without waiting for more.
async fn print_pending(signals: &mut (impl futures_util::Stream<Item = Signal> + Unpin)) {
    while let Ok(Some(signal)) =
        tokio::time::timeout(Duration::from_millis(100), signals.next()).await
    {
        print_signal(&signal);
    }
}

fn print_signal(signal: &Signal) {
    let a = &signal.args;
    match signal.name.as_str() {
        "TransactionChanged" => println!(
            "  signal TransactionChanged {} {} paid {}",
            a["details"]["transaction_number"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            a["details"]["paid"].as_str().unwrap_or(""),
        ),
        "AttemptChanged" => println!(
            "  signal AttemptChanged {} {} {} paid {}",
            a["details"]["attempt_code"].as_str().unwrap_or(""),
            a["details"]["type"].as_str().unwrap_or(""),
            a["status"].as_str().unwrap_or(""),
            a["details"]["paid"].as_str().unwrap_or(""),
        ),
        _ => println!("  signal {} {}", signal.name, a["changed"]),
    }
}
