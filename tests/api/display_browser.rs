//! The kiosk page in a real browser: Debian's Chromium, headless, showing the page a real daemon
//! serves on 127.0.0.1 while a till drives it over a private bus. For every state in Mongolian
//! and Vietnamese: a screenshot whose QR decodes to exactly the attempt's `qr_text` (and shows
//! none when the customer cannot pay), and the DOM after the Server-Sent Event, holding the
//! localised sentences and the formatted amount. Then the page living through a `kill -9` of
//! the daemon: it says it is offline, hides the QR, and reconnects by itself.
//!
//! The browser is driven over the DevTools protocol on a pipe (`tests/support/chromium.rs`);
//! a test waits for a state through the page's own `qrpayd.waitFor`, which resolves when the
//! page has rendered it, so nothing sleeps. `QRPAYD_SAVE_SCREENSHOTS=DIR` keeps the screenshots.

use std::net::SocketAddr;

use qrpayd::dbus::PrivateBus;
use qrpayd::dbus::client::{Arg, Request};
use serde_json::Value;

use crate::chromium::{Browser, qr_codes_in};
use crate::display::{HEAVY, order_with_items};
use crate::harness::*;
use crate::mock_appotapay::{API_KEY, MockAppotapay, PARTNER_CODE, SECRET_KEY, TERMINAL_ID};

/// What the page must show for one language.
struct Expect {
    language: &'static str,
    currency: &'static str,
    /// The cart's amount as the customer reads it (no-break spaces as plain ones).
    amount: &'static str,
    paid_part: &'static str,
    remaining: &'static str,
    card_amount: &'static str,
}

const MN: Expect = Expect {
    language: "mn",
    currency: "MNT",
    amount: "12,500₮",
    paid_part: "5,000₮",
    remaining: "7,500₮",
    card_amount: "150.000 ₫",
};

const VI: Expect = Expect {
    language: "vi",
    currency: "VND",
    amount: "12.500 ₫",
    paid_part: "5.000 ₫",
    remaining: "7.500 ₫",
    card_amount: "150.000 ₫",
};

/// The page's size in the state tests; the layouts are checked at all four.
const SIZE: (u32, u32) = (800, 480);
const LAYOUTS: [(u32, u32); 4] = [(800, 480), (1024, 600), (1280, 800), (1920, 1080)];

/// Keeps a screenshot when `QRPAYD_SAVE_SCREENSHOTS` names a directory.
fn keep(image: &image::RgbImage, name: &str) {
    if let Some(dir) = std::env::var_os("QRPAYD_SAVE_SCREENSHOTS") {
        let path = std::path::Path::new(&dir).join(format!("{name}.png"));
        image.save(&path).expect("save the screenshot");
    }
}

/// The sentences of a language's table, as the snapshot carries them.
fn words(language: &str) -> &'static qrpayd::display::strings::Strings {
    language
        .parse::<qrpayd::display::Language>()
        .expect("a language")
        .strings()
}

/// Waits until the page shows `state` in a version newer than `after`, takes its screenshot
/// and DOM, and checks the QR: exactly `qr` when given, none otherwise.
async fn shown(
    browser: &mut Browser,
    state: &str,
    after: u64,
    qr: Option<&str>,
    name: &str,
) -> (Value, String) {
    let snapshot = browser
        .wait_for(&format!(
            "state.online && state.snapshot.state === {state:?} && state.snapshot.version > {after}"
        ))
        .await;
    let shot = browser.screenshot().await;
    let dom = browser.dom().await;
    keep(&shot, name);
    assert!(
        dom.contains(&format!("data-state=\"{state}\"")),
        "{name}: the page moved on while it was photographed"
    );
    let codes = qr_codes_in(&shot);
    match qr {
        Some(text) => assert_eq!(codes, vec![text.to_owned()], "{name}: the QR on the page"),
        None => assert!(
            codes.is_empty(),
            "{name}: a QR where none may be: {codes:?}"
        ),
    }
    (snapshot, dom)
}

fn version(snapshot: &Value) -> u64 {
    snapshot["version"].as_u64().expect("a version")
}

fn in_currency(request: Request, currency: &str) -> Request {
    with(request, "currency", Arg::from(currency))
}

/// Checks out `request` and waits until the page shows it waiting, its QR decoding to exactly
/// the reply's `qr_text`; returns the reply and the snapshot shown.
async fn checkout_shown(
    h: &Harness,
    browser: &mut Browser,
    request: &Request,
    after: u64,
    name: &str,
) -> (Value, Value) {
    let reply = h.client.checkout(request).await.expect("checkout");
    let (waiting, _) = shown(browser, "waiting", after, Some(s(&reply, "qr_text")), name).await;
    (reply, waiting)
}

/// Every state in one language: idle, waiting (at every layout), partially paid, paid, idle
/// again after the hold, cancelled, expired, failed, cash at the counter, and a card payment
/// to finish on the phone.
async fn every_state(expect: &Expect) {
    let _alone = HEAVY.lock().await;
    let lang = expect.language;
    let mock = MockAppotapay::start().await;
    let h = Harness::start_full(
        "",
        &format!(
            "language = \"{lang}\"\npaid_hold_ms = 1500\nended_hold_ms = 600000\n\n\
             [display.web]\nlisten = \"127.0.0.1:0\"\n"
        ),
        &format!(
            "\n[providers.appotapay]\nbase_url = \"{}\"\npartner_code = \"{PARTNER_CODE}\"\n\
             api_key = \"{API_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\nterminal_id = \"{TERMINAL_ID}\"\n\
             card_notify_url = \"https://pos.example.vn/ipn\"\ncard_redirect_url = \"https://pos.example.vn/done\"\n",
            mock.base_url
        ),
    )
    .await;
    let address = h.daemon().display_web_address().expect("the page");
    let words = words(lang);
    let mut browser = Browser::start(SIZE.0, SIZE.1).await;
    browser.open(&format!("http://{address}/")).await;

    let (idle, dom) = shown(&mut browser, "idle", 0, None, &format!("{lang}-idle")).await;
    assert!(dom.contains(words.welcome) && dom.contains(&format!("lang=\"{lang}\"")));

    // Waiting: the QR, the amount, the instruction, the cart.
    let request = with(
        in_currency(order_with_items("order-1", "12500"), expect.currency),
        "allow_partial",
        Arg::Bool(true),
    );
    let reply = h.client.checkout(&request).await.expect("checkout");
    let qr = s(&reply, "qr_text").to_owned();
    let attempt = s(&reply, "attempt_id").to_owned();
    let (waiting, dom) = shown(
        &mut browser,
        "waiting",
        version(&idle),
        Some(&qr),
        &format!("{lang}-waiting-800x480"),
    )
    .await;
    assert_eq!(waiting["attempt_id"], attempt.as_str());
    for text in [
        expect.amount,
        words.amount_to_pay,
        words.scan_with_bank_app,
        words.expires_in,
        words.total,
        "Americano",
        "Бууз",
        "Simulator",
    ] {
        assert!(
            dom.contains(text),
            "{lang} waiting: {text:?} is not in the DOM"
        );
    }
    for (width, height) in LAYOUTS {
        browser.set_viewport(width, height).await;
        let name = format!("{lang}-waiting-{width}x{height}");
        let (_, _) = shown(&mut browser, "waiting", 0, Some(&qr), &name).await;
        let fits = browser
            .eval(
                "(function () {
                    var info = document.getElementById('info').getBoundingClientRect();
                    var qr = document.querySelector('#qrbox svg').getBoundingClientRect();
                    return document.documentElement.scrollWidth <= innerWidth
                        && document.documentElement.scrollHeight <= innerHeight
                        && info.bottom <= innerHeight && info.right <= innerWidth
                        && qr.bottom <= innerHeight && qr.right <= info.left
                        && qr.width >= innerHeight / 2;
                })()",
            )
            .await;
        assert_eq!(fits, Value::Bool(true), "{name}: the layout spills over");
    }
    browser.set_viewport(SIZE.0, SIZE.1).await;

    // Partially paid: what was paid and what remains, the QR still there.
    h.client
        .simulate_pay(&attempt, "5000")
        .await
        .expect("pay a part");
    let (partial, dom) = shown(
        &mut browser,
        "partially_paid",
        version(&waiting),
        Some(&qr),
        &format!("{lang}-partially_paid"),
    )
    .await;
    for text in [
        words.partially_paid,
        words.paid_so_far,
        words.remaining,
        expect.paid_part,
        expect.remaining,
    ] {
        assert!(
            dom.contains(text),
            "{lang} partial: {text:?} is not in the DOM"
        );
    }

    // Paid, then idle after the hold.
    h.client
        .simulate_pay(&attempt, "")
        .await
        .expect("pay the rest");
    let (paid, dom) = shown(
        &mut browser,
        "paid",
        version(&partial),
        None,
        &format!("{lang}-paid"),
    )
    .await;
    assert!(
        dom.contains(words.paid) && dom.contains(words.thank_you) && dom.contains(expect.amount)
    );
    let (idle, _) = shown(
        &mut browser,
        "idle",
        version(&paid),
        None,
        &format!("{lang}-idle-after"),
    )
    .await;

    // Cancelled.
    let request = in_currency(order("order-2", "12500"), expect.currency);
    let name = format!("{lang}-waiting-2");
    let (reply, waiting) = checkout_shown(&h, &mut browser, &request, version(&idle), &name).await;
    h.client
        .cancel(&pairs(&[("attempt_id", s(&reply, "attempt_id"))]))
        .await
        .expect("cancel");
    let (cancelled, dom) = shown(
        &mut browser,
        "cancelled",
        version(&waiting),
        None,
        &format!("{lang}-cancelled"),
    )
    .await;
    assert!(
        dom.contains(words.cancelled)
            && dom.contains(words.ask_cashier)
            && dom.contains(expect.amount)
    );

    // Expired.
    let request = with(
        in_currency(order("order-3", "12500"), expect.currency),
        "expires_in_ms",
        Arg::U64(3000),
    );
    let name = format!("{lang}-waiting-3");
    let (_, waiting) = checkout_shown(&h, &mut browser, &request, version(&cancelled), &name).await;
    let (expired, dom) = shown(
        &mut browser,
        "expired",
        version(&waiting),
        None,
        &format!("{lang}-expired"),
    )
    .await;
    assert!(dom.contains(words.expired) && dom.contains(words.ask_cashier));

    // Failed.
    let request = in_currency(order("order-4", "12500"), expect.currency);
    let name = format!("{lang}-waiting-4");
    let (reply, waiting) =
        checkout_shown(&h, &mut browser, &request, version(&expired), &name).await;
    h.client
        .simulate_fail(s(&reply, "attempt_id"))
        .await
        .expect("fail");
    let (failed, dom) = shown(
        &mut browser,
        "failed",
        version(&waiting),
        None,
        &format!("{lang}-failed"),
    )
    .await;
    assert!(dom.contains(words.failed));

    // Cash at the counter: no QR, where to pay.
    let request = with(
        in_currency(order("order-5", "12500"), expect.currency),
        "provider",
        Arg::from("system"),
    );
    let reply = h.client.checkout(&request).await.expect("cash checkout");
    let (cash, dom) = shown(
        &mut browser,
        "waiting",
        version(&failed),
        None,
        &format!("{lang}-cash"),
    )
    .await;
    assert_eq!(cash["mode"], "counter");
    assert!(
        dom.contains(words.pay_at_counter)
            && dom.contains(words.cash)
            && dom.contains(expect.amount)
    );
    h.client
        .cancel(&pairs(&[("attempt_id", s(&reply, "attempt_id"))]))
        .await
        .expect("cancel the cash");
    let (cancelled, _) = shown(
        &mut browser,
        "cancelled",
        version(&cash),
        None,
        &format!("{lang}-cash-cancelled"),
    )
    .await;

    // A card payment: its page as a QR, to finish on the phone.
    let card = [
        ("currency", "VND"),
        ("provider", "appotapay"),
        ("method", "ATM"),
        ("bank_code", "VCB"),
        ("card_number", "9704198526191432"),
        ("card_holder_name", "NGUYEN VAN KIEMTRA"),
        ("card_month", "03"),
        ("card_year", "07"),
    ];
    let mut request = order("order-6", "150000");
    for (key, value) in card {
        request = with(request, key, Arg::from(value));
    }
    let reply = h.client.checkout(&request).await.expect("card checkout");
    let (phone, dom) = shown(
        &mut browser,
        "waiting",
        version(&cancelled),
        Some(s(&reply, "qr_text")),
        &format!("{lang}-phone"),
    )
    .await;
    assert_eq!(phone["mode"], "phone");
    for text in [
        words.finish_on_phone,
        words.finish_on_phone_line,
        expect.card_amount,
        "AppotaPay",
    ] {
        assert!(
            dom.contains(text),
            "{lang} card: {text:?} is not in the DOM"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_state_in_mongolian() {
    every_state(&MN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_state_in_vietnamese() {
    every_state(&VI).await;
}

/// A free port on 127.0.0.1 (bound, then let go), so the restarted daemon listens where the
/// page was.
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_a_payment_to_idle_and_lives_through_a_daemon_restart() {
    let _alone = HEAVY.lock().await;
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let address = free_port();
    let config = dir.path().join("qrpayd.toml");
    let text = config_text(&dir.path().join("state"), bus.address(), "").replacen(
        "height = 272\n",
        &format!(
            "height = 272\nlanguage = \"mn\"\npaid_hold_ms = 1000\n\n[display.web]\nlisten = \"{address}\"\n"
        ),
        1,
    );
    std::fs::write(&config, text).expect("config");
    let mut daemon = Process::start(&config, None);
    let client = ready_client(&bus).await;
    let words = words("mn");

    let mut browser = Browser::start(SIZE.0, SIZE.1).await;
    browser.open(&format!("http://{address}/")).await;
    let (idle, _) = shown(&mut browser, "idle", 0, None, "restart-idle").await;

    // Waiting → paid → idle.
    let reply = client
        .checkout(&order("order-r1", "12500"))
        .await
        .expect("checkout");
    let (waiting, _) = shown(
        &mut browser,
        "waiting",
        version(&idle),
        Some(s(&reply, "qr_text")),
        "restart-waiting",
    )
    .await;
    client
        .simulate_pay(s(&reply, "attempt_id"), "")
        .await
        .expect("pay");
    let (paid, _) = shown(
        &mut browser,
        "paid",
        version(&waiting),
        None,
        "restart-paid",
    )
    .await;
    let (idle, _) = shown(
        &mut browser,
        "idle",
        version(&paid),
        None,
        "restart-idle-after",
    )
    .await;

    // A new payment on screen, then the daemon dies.
    let reply = client
        .checkout(&order("order-r2", "9000"))
        .await
        .expect("checkout");
    let qr = s(&reply, "qr_text").to_owned();
    let attempt = s(&reply, "attempt_id").to_owned();
    shown(
        &mut browser,
        "waiting",
        version(&idle),
        Some(&qr),
        "restart-waiting-2",
    )
    .await;
    drop(client);
    daemon.kill_9();
    browser.wait_for("!state.online").await;
    let shot = browser.screenshot().await;
    keep(&shot, "restart-offline");
    assert!(
        qr_codes_in(&shot).is_empty(),
        "no stale QR while the daemon is away"
    );
    let dom = browser.dom().await;
    assert!(dom.contains(words.offline), "the page says it is offline");
    let dark = shot.pixels().filter(|p| p.0[0] < 100).count();
    assert!(dark > shot.pixels().len() / 2, "never white");

    // Back: the page reconnects by itself and shows the payment still open.
    daemon.spawn();
    let client = ready_client(&bus).await;
    let snapshot = browser
        .wait_for("state.online && state.snapshot.state === 'waiting'")
        .await;
    assert_eq!(snapshot["attempt_id"], attempt.as_str());
    let shot = browser.screenshot().await;
    keep(&shot, "restart-back");
    assert_eq!(qr_codes_in(&shot), vec![qr]);
    client
        .cancel(&pairs(&[("attempt_id", &attempt)]))
        .await
        .expect("cancel");
    browser
        .wait_for("state.online && state.snapshot.state === 'cancelled'")
        .await;
}
