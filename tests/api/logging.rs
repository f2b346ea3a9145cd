//! What the daemon logs about payments: the journal fields that name them, and no secret in
//! any line.
//!
//! tracing-journald writes to the fixed path `/run/systemd/journal/socket` and cannot be
//! pointed elsewhere, so the journal fields are checked at the tracing level: a test layer builds
//! each entry the way tracing-journald 0.3 does (the fields of the spans the event is in,
//! outermost first, then its own, names upper-cased, `PRIORITY` from the level) while a payment
//! goes through the daemon on a private bus.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use qrpayd::dbus::PrivateBus;
use qrpayd::dbus::client::{Arg, Request};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::harness::*;
use crate::mock_appotapay::{
    self, API_KEY, GOOD_JWT_HEADER, MockAppotapay, MockStatus, PARTNER_CODE, Route as ApRoute,
    SECRET_KEY, TERMINAL_ID,
};
use crate::mock_qpay::{ACCESS_PREFIX, CLIENT_ID, CLIENT_SECRET, MockQpay, REFRESH_PREFIX, Route};
use crate::qpay::{inline_secret, qpay_section};

// The journal entries of a payment.

/// One journal entry: its fields in the order they would be sent (a name may repeat).
type Entry = Vec<(String, String)>;

/// Records every event as the journal entry tracing-journald would send for it.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<Entry>>>);

/// A span's fields, kept in the span like tracing-journald keeps them.
struct SpanFields(Entry);

impl Journal {
    fn entries(&self) -> Vec<Entry> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// tracing-journald's field names: `.` becomes `_`, leading `_`s and anything but ASCII letters,
/// digits and `_` are dropped, and the rest is upper-cased.
fn journal_name(name: &str) -> String {
    name.replace('.', "_")
        .trim_start_matches('_')
        .chars()
        .filter(|c| *c == '_' || c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

struct Fields<'a>(&'a mut Entry);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((journal_name(field.name()), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((journal_name(field.name()), format!("{value:?}")));
    }
}

impl<S> Layer<S> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = vec![("SPAN_NAME".to_owned(), span.name().to_owned())];
        attributes.record(&mut Fields(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(&mut Fields(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut entry = Entry::new();
        // As tracing-journald does: the current span and its parents, outermost first.
        if let Some(current) = ctx.lookup_current() {
            for span in current.scope().from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    entry.extend(fields.0.iter().cloned());
                }
            }
        }
        let priority = match *event.metadata().level() {
            Level::ERROR => "3",
            Level::WARN => "4",
            Level::INFO => "5",
            Level::DEBUG => "6",
            Level::TRACE => "7",
        };
        entry.push(("PRIORITY".to_owned(), priority.to_owned()));
        event.record(&mut Fields(&mut entry));
        self.0.lock().expect("not poisoned").push(entry);
    }
}

/// Every value of field `name` in `entry`.
fn values<'a>(entry: &'a Entry, name: &str) -> Vec<&'a str> {
    entry
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The entry's message.
fn message(entry: &Entry) -> &str {
    values(entry, "MESSAGE").first().copied().unwrap_or("")
}

/// The daemon runs on this test's one thread (its store work follows it onto the blocking
/// threads), so a subscriber set for this thread sees all it logs, and only that.
#[tokio::test]
async fn every_journal_entry_about_a_payment_names_its_transaction_attempt_and_provider() {
    let journal = Journal::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(journal.clone()));
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("journal-1", "4200"))
        .await
        .expect("checkout");
    let (transaction_id, attempt_id) = (s(&reply, "transaction_id"), s(&reply, "attempt_id"));
    h.client.simulate_pay(attempt_id, "").await.expect("pay");
    wait_transaction(&mut signals, transaction_id, "304_SETTLED").await;

    let entries = journal.entries();
    let expected = [
        ("TRANSACTION_ID", transaction_id),
        ("ATTEMPT_ID", attempt_id),
        ("PROVIDER", "simulator"),
    ];
    let about_the_payment: Vec<&Entry> = entries
        .iter()
        .filter(|e| values(e, "ATTEMPT_ID").contains(&attempt_id))
        .collect();
    for entry in &about_the_payment {
        for (name, value) in expected {
            let found = values(entry, name);
            assert!(
                !found.is_empty() && found.iter().all(|v| *v == value),
                "{name} should be {value} in {entry:?}"
            );
        }
    }
    let logged: Vec<&str> = about_the_payment.iter().map(|e| message(e)).collect();
    for line in ["checkout recorded", "invoice created", "payment received"] {
        assert!(logged.contains(&line), "{line:?} is among {logged:?}");
    }

    // "invoice created" names the attempt only through the checkout's span; the supervisor's
    // span follows it onto the store's thread, where the payment is recorded.
    for line in ["invoice created", "payment received"] {
        let entry = about_the_payment
            .iter()
            .find(|e| message(e) == line)
            .expect("logged");
        assert_eq!(values(entry, "SPAN_NAME"), ["attempt"], "{entry:?}");
        assert_eq!(values(entry, "PRIORITY"), ["5"], "{entry:?}");
    }
}

// No secret in any line.

/// A card number only this test uses, so that finding it anywhere means it leaked.
const CARD_NUMBER: &str = "9704198526190857";
const CARD_HOLDER: &str = "TRAN THI NHATKY";

/// The config of a daemon with QPay (the default) and AppotaPay (QR, cards and IPNs), every
/// secret inline.
fn config_text(
    dir: &Path,
    bus: &str,
    qpay: &MockQpay,
    appotapay: &MockAppotapay,
    ipn_port: u16,
) -> String {
    let state = dir.join("state");
    let qpay = qpay_section(&qpay.base_url, &inline_secret());
    let sections = daemon_sections(&state, bus, Some("qpay"));
    format!(
        r#"{sections}{qpay}
[providers.appotapay]
base_url = "{appotapay_url}"
partner_code = "{PARTNER_CODE}"
api_key = "{API_KEY}"
secret_key = "{SECRET_KEY}"
terminal_id = "{TERMINAL_ID}"
poll_interval_ms = 1000
card_notify_url = "https://pos.example.vn/appotapay/ipn"
card_redirect_url = "https://pos.example.vn/appotapay/done"
ipn_listener = true
ipn_listen_address = "127.0.0.1:{ipn_port}"
"#,
        appotapay_url = appotapay.base_url,
    )
}

/// A `qrpayd run` process logging everything (`RUST_LOG=trace`) into one file; killed when
/// dropped.
struct Daemon(Child);

impl Daemon {
    fn start(config: &Path, log: &Path) -> Daemon {
        let log = std::fs::File::create(log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_qrpayd"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "trace")
            // Its stderr is the log file, whatever the journal stream of the test's own.
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn qrpayd");
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Sends AppotaPay's notification that order `reference` succeeded, signed with the secret
/// key; returns the listener's status line.
fn notify(port: u16, reference: &str) -> String {
    let data = STANDARD.encode(
        serde_json::json!({
            "partner_ref_id": reference,
            "transaction_id": "APPOTA-TXN-LOG-1",
            "status": "success",
            "amount": 150000,
            "error_code": "00",
        })
        .to_string(),
    );
    let body = serde_json::json!({
        "data": data,
        "signature": mock_appotapay::sign(SECRET_KEY, data.as_bytes()),
    })
    .to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(EVENT_TIMEOUT))
        .expect("timeout");
    write!(
        stream,
        "POST /appotapay/ipn HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer.lines().next().unwrap_or_default().to_owned()
}

fn vnd(request: Request) -> Request {
    let request = with(request, "currency", Arg::from("VND"));
    with(request, "provider", Arg::from("appotapay"))
}

/// A QPay payment (with a refreshed token) and its refund, an AppotaPay VietQR settled by a
/// signed IPN, and an AppotaPay card payment, all through one daemon process logging at trace
/// level: every payment settles, and no line of its output holds a secret of the config, a
/// token, a credential derived from them, or the card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log_line_of_a_daemon_logging_everything() {
    let qpay = MockQpay::start().await;
    let appotapay = MockAppotapay::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let ipn_port = free_port();
    let config = dir.path().join("qrpayd.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), bus.address(), &qpay, &appotapay, ipn_port),
    )
    .expect("config");
    let log = dir.path().join("qrpayd.log");
    let daemon = Daemon::start(&config, &log);
    let client = ready_client(&bus).await;
    let mut signals = client.watch().await.expect("watch");
    let mut settled = Vec::new();

    // QPay: paid after its access token lapsed (so the refresh token is used), then refunded.
    let reply = client
        .checkout(&order("log-qpay", "4200"))
        .await
        .expect("checkout");
    let invoice = qpay
        .invoices()
        .into_iter()
        .find(|i| i.qr_text == s(&reply, "qr_text"))
        .expect("the QPay invoice");
    qpay.expire_access_tokens();
    qpay.pay(&invoice.invoice_id, "4200");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let refund: Request = [
        ("attempt_id", Arg::from(s(&reply, "attempt_id"))),
        ("amount", Arg::from("4200")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    client.refund(&refund).await.expect("refund");
    assert!(
        qpay.count(Route::Refresh) >= 1,
        "a refreshed token was used"
    );
    settled.push(ids(&reply, "qpay"));

    // AppotaPay's VietQR, settled at once by its signed notification.
    let reply = client
        .checkout(&vnd(order("log-vietqr", "150000")))
        .await
        .expect("checkout");
    let reference = appotapay.state().orders[0].reference.clone();
    tokio::time::timeout(
        EVENT_TIMEOUT,
        appotapay.wait_for_count(ApRoute::OrderStatus, 1),
    )
    .await
    .expect("the first status check");
    appotapay.set_status(&reference, MockStatus::Success);
    let status = tokio::task::spawn_blocking(move || notify(ipn_port, &reference))
        .await
        .expect("the IPN");
    assert!(status.contains("200"), "{status}");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    settled.push(ids(&reply, "appotapay"));

    // An AppotaPay card payment: the card number goes to AppotaPay once, and nowhere else.
    let card = [
        ("method", "ATM"),
        ("bank_code", "VCB"),
        ("card_number", CARD_NUMBER),
        ("card_holder_name", CARD_HOLDER),
        ("card_month", "03"),
        ("card_year", "07"),
    ]
    .into_iter()
    .fold(vnd(order("log-card", "150000")), |request, (key, value)| {
        with(request, key, Arg::from(value))
    });
    let reply = client.checkout(&card).await.expect("card checkout");
    let reference = appotapay.state().cards[0].reference.clone();
    appotapay.set_card_status(&reference, MockStatus::Success);
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    settled.push(ids(&reply, "appotapay"));
    assert!(
        appotapay.rejections().is_empty(),
        "{:?}",
        appotapay.rejections()
    );
    drop(daemon);

    let text = std::fs::read_to_string(&log).expect("the log");
    let lines: Vec<&str> = text.lines().collect();
    for level in [" TRACE ", " DEBUG ", " INFO "] {
        assert!(
            lines.iter().any(|line| line.contains(level)),
            "the daemon logged at{level}level"
        );
    }
    // Each payment's line names it, through the span of the supervisor that saw the money.
    for (transaction_id, attempt_id, provider) in &settled {
        let span = format!(
            "attempt{{transaction_id={transaction_id} attempt_id={attempt_id} provider={provider}}}"
        );
        assert!(
            lines
                .iter()
                .any(|line| line.contains(&span) && line.contains("payment received")),
            "no `payment received` line in {span}"
        );
    }
    // So do the providers' lines about creating invoices and refunding, in the span of the
    // checkout or the refund.
    for line in [
        "QPay made the invoice",
        "QPay payment voided",
        "AppotaPay order created",
        "AppotaPay card payment created",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(line) && l.contains(" attempt{transaction_id=")),
            "no {line:?} line in an attempt's span"
        );
    }
    let basic = STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let jwt = URL_SAFE_NO_PAD.encode(GOOD_JWT_HEADER);
    let secrets = [
        ("the QPay client secret", CLIENT_SECRET),
        ("QPay's Basic credentials", basic.as_str()),
        ("a QPay access token", ACCESS_PREFIX),
        ("a QPay refresh token", REFRESH_PREFIX),
        ("the AppotaPay secret key", SECRET_KEY),
        ("the AppotaPay API key", API_KEY),
        ("an AppotaPay JWT", jwt.as_str()),
        ("the card number", CARD_NUMBER),
        ("the card number's first 12 digits", &CARD_NUMBER[..12]),
        ("the card holder", CARD_HOLDER),
    ];
    for line in &lines {
        for (what, secret) in secrets {
            assert!(!line.contains(secret), "{what} is in the log: {line}");
        }
    }
}

/// The transaction and attempt ids of a Checkout reply, and the provider it went to.
fn ids(reply: &Value, provider: &'static str) -> (String, String, &'static str) {
    (
        s(reply, "transaction_id").to_owned(),
        s(reply, "attempt_id").to_owned(),
        provider,
    )
}

// The upstream sync's lines.

/// Issue 11: the sync writes one entry when it goes offline (with the reason) and one per
/// parked event, naming its transaction (`TRANSACTION_ID`), and none per request.
#[tokio::test]
async fn the_sync_logs_its_troubles_and_each_parked_event_with_its_transaction() {
    use crate::mock_backoffice::MockBackOffice;
    let journal = Journal::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(journal.clone()));
    let mock = MockBackOffice::start().await;
    mock.set_down(true);
    let h = Harness::start_with(&mock.upstream_section("")).await;
    let mut signals = h.client.watch().await.expect("watch");
    let (transaction_id, attempt_id) = crate::sync::paid_sale(&h, "journal-sync", "700").await;
    crate::sync::wait_sync(&h.client, &mut signals, "offline", |s| {
        s["state"] == "offline"
    })
    .await;
    mock.reject(&attempt_id);
    mock.set_down(false);
    h.client.sync_now().await.expect("sync now");
    crate::sync::wait_sync(&h.client, &mut signals, "a parked event", |s| {
        s["parked"] == 1
    })
    .await;

    let entries = journal.entries();
    let offline: Vec<&Entry> = entries
        .iter()
        .filter(|e| message(e) == "the upstream sync is offline")
        .collect();
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert_eq!(values(offline[0], "PRIORITY"), ["4"]);
    assert!(
        values(offline[0], "REASON")[0].contains("503"),
        "{offline:?}"
    );
    let parked: Vec<&Entry> = entries
        .iter()
        .filter(|e| message(e).starts_with("the back office refused an upstream event"))
        .collect();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(
        values(parked[0], "TRANSACTION_ID"),
        [transaction_id.as_str()]
    );
    assert!(values(parked[0], "ANSWER")[0].contains("422"), "{parked:?}");
    assert_eq!(values(parked[0], "PRIORITY"), ["4"]);
    let requests_at_info = entries
        .iter()
        .filter(|e| values(e, "PRIORITY") == ["5"] && message(e).contains("/payment-"))
        .count();
    assert_eq!(requests_at_info, 0);
}
