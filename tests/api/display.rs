//! The customer display's sinks with a real daemon on a private bus: the kiosk page's
//! Server-Sent Events and `/state` (read over real HTTP on 127.0.0.1), the PNG frame, and the
//! framebuffer (a regular file standing in for the device). The QR leaves every sink within
//! 100 ms of its attempt leaving the payable state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qrpayd::dbus::client::Arg;
use qrpayd::display::PixelFormat;
use qrpayd::display::framebuffer::{Geometry, read_back};
use serde_json::Value;

use crate::harness::*;
use crate::sse::{Events, get};

/// Held by the tests that time the display or run a browser, so that none of them runs beside
/// another: a headless Chromium takes most of a small machine, and the 100 ms test measures the
/// daemon, not the browser next to it.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The `[display]` keys and sections of these tests: Mongolian, a short hold, the page on a
/// free port, the framebuffer file (480x272 XRGB8888, the PNG's size) when `framebuffer` is set.
pub fn display_config(language: &str, framebuffer: Option<&Path>) -> String {
    let mut text = format!(
        "language = \"{language}\"\npaid_hold_ms = 800\nended_hold_ms = 800\n\n\
         [display.web]\nlisten = \"127.0.0.1:0\"\n"
    );
    if let Some(device) = framebuffer {
        text.push_str(&format!(
            "\n[display.framebuffer]\ndevice = \"{}\"\nwidth = 480\nheight = 272\nformat = \"xrgb8888\"\n",
            device.display()
        ));
    }
    text
}

/// A checkout of `amount` MNT for order `order` with two cart lines adding up to it.
pub fn order_with_items(order_id: &str, amount: &str) -> qrpayd::dbus::client::Request {
    let line = |description: &str, quantity: &str, unit_price: &str| {
        BTreeMap::from([
            ("description".to_owned(), description.to_owned()),
            ("quantity".to_owned(), quantity.to_owned()),
            ("unit_price".to_owned(), unit_price.to_owned()),
        ])
    };
    let mut request = order(order_id, amount);
    request.insert(
        "items".into(),
        Arg::Dicts(vec![
            line("Americano", "2", "4500"),
            line("Бууз", "1", "3500"),
        ]),
    );
    request
}

fn web_address(h: &Harness) -> SocketAddr {
    h.daemon()
        .display_web_address()
        .expect("the page is served")
}

/// The QR codes in a PNG file.
fn qr_codes_in_png(path: &Path) -> Vec<String> {
    crate::chromium::qr_codes_in(&image::open(path).expect("a PNG").to_rgb8())
}

/// The text of a snapshot field with every no-break space as a plain one.
fn plain(value: &Value) -> String {
    value.as_str().unwrap_or_default().replace('\u{a0}', " ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_streams_full_snapshots_from_checkout_to_paid_to_idle() {
    let h = Harness::start_display(&display_config("mn", None)).await;
    let address = web_address(&h);
    let mut events = Events::connect(address).await;
    // The current state first, at once.
    let first = events.next().await;
    assert_eq!(first["state"], "idle");
    assert_eq!(first["title"], "Тавтай морилно уу");
    assert!(first["now_ms"].as_i64().is_some());

    let reply = h
        .client
        .checkout(&order_with_items("order-web", "12500"))
        .await
        .expect("checkout");
    let qr_text = s(&reply, "qr_text").to_owned();
    let waiting = events.until(|s| s["state"] == "waiting").await;
    assert_eq!(waiting["amount"], "12,500₮");
    assert_eq!(waiting["title"], "Төлөх дүн");
    assert_eq!(
        waiting["instruction"],
        "Банкны аппликейшнээр QR кодыг уншуулна уу"
    );
    assert_eq!(waiting["provider"], "Simulator");
    assert_eq!(
        waiting["qr_text"],
        qr_text.as_str(),
        "exactly the attempt's QR"
    );
    assert!(
        waiting["qr"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with('M'))
    );
    assert_eq!(waiting["items"][0]["description"], "Americano");
    assert_eq!(waiting["items"][0]["amount"], "9,000₮");
    assert_eq!(waiting["total"]["value"], "12,500₮");
    let expires_at =
        qrpayd::domain::Timestamp::parse_rfc3339(s(&reply, "expires_at")).expect("expires_at");
    assert_eq!(waiting["expires_at_ms"], expires_at.0);

    // /state is the same snapshot.
    let (status, head, body) = get(address, "/state").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    let state: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(state["version"], waiting["version"]);
    assert_eq!(state["qr_text"], qr_text.as_str());

    // A second page connecting now gets the waiting state first.
    let mut late = Events::connect(address).await;
    assert_eq!(late.next().await["version"], waiting["version"]);

    let attempt_id = s(&reply, "attempt_id").to_owned();
    h.client.simulate_pay(&attempt_id, "").await.expect("pay");
    let paid = events.until(|s| s["state"] == "paid").await;
    assert_eq!(paid["title"], "Төлбөр амжилттай төлөгдлөө");
    assert_eq!(paid["amount"], "12,500₮");
    assert_eq!(paid["qr"], Value::Null);
    assert_eq!(paid["qr_text"], Value::Null);
    // Held for paid_hold_ms, then idle.
    let idle = events.next().await;
    assert_eq!(idle["state"], "idle");
    assert!(idle["version"].as_u64() > paid["version"].as_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_self_contained_localised_and_light() {
    let h = Harness::start_display(&display_config("vi", None)).await;
    let (status, head, page) = get(web_address(&h), "/").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(page.contains("<html lang=\"vi\">"));
    assert!(
        page.contains("Xin kính chào quý khách"),
        "the current state is inline"
    );
    assert!(
        page.contains("data:font/woff2;base64,"),
        "the font is inlined"
    );
    for external in ["<link", "src=\"http", "url(http", "@import", "src=\"/"] {
        assert!(!page.contains(external), "the page fetches {external}");
    }
    assert!(
        page.len() < 100 * 1024,
        "the page weighs {} bytes",
        page.len()
    );
    let (status, _, _) = get(web_address(&h), "/nothing-here").await;
    assert_eq!(status, 404);
}

/// Reads the framebuffer file back as an image.
fn framebuffer_frame(device: &Path) -> image::RgbImage {
    read_back(device, &Geometry::packed(480, 272, PixelFormat::XRGB8888)).expect("read back")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_framebuffer_shows_the_png_frame_and_the_qr_leaves_every_sink_within_100_ms() {
    let _alone = HEAVY.lock().await;
    let dir = tempfile::tempdir().expect("dir");
    let device: PathBuf = dir.path().join("fb0");
    std::fs::write(&device, b"").expect("a file standing in for /dev/fb0");
    let h = Harness::start_display(&display_config("mn", Some(&device))).await;
    let mut signals = h.client.watch().await.expect("watch");
    let mut events = Events::connect(web_address(&h)).await;
    events.next().await;

    let reply = h
        .client
        .checkout(&order_with_items("order-fb", "12500"))
        .await
        .expect("checkout");
    let qr_text = s(&reply, "qr_text").to_owned();
    let png = PathBuf::from(s(&reply, "display_png"));
    // Drawn before the reply: the PNG and the framebuffer hold the same frame with the QR.
    let frame = image::open(&png).expect("PNG").to_rgb8();
    assert_eq!(
        framebuffer_frame(&device),
        frame,
        "the framebuffer equals the PNG"
    );
    assert_eq!(qr_codes_in_png(&png), vec![qr_text.clone()]);
    events.until(|s| s["state"] == "waiting").await;

    // Cancelled: from the daemon's commit (its signal) to the QR gone from the page, the PNG
    // and the framebuffer. All three are read side by side as they arrive.
    let attempt_id = s(&reply, "attempt_id").to_owned();
    let hub = h.daemon().engine.display_hub().expect("the display is on");
    let ((), (cancelled, page_at), signal_at) = tokio::join!(
        async {
            h.client
                .cancel(&pairs(&[("attempt_id", &attempt_id)]))
                .await
                .expect("cancel");
        },
        async {
            let cancelled = events.until(|s| s["state"] == "cancelled").await;
            (cancelled, Instant::now())
        },
        async {
            wait_attempt(&mut signals, &attempt_id, "500_FAIL").await;
            Instant::now()
        }
    );
    hub.drawn(cancelled["version"].as_u64().expect("version"))
        .await;
    let drawn_after = signal_at.elapsed();
    assert!(
        page_at <= signal_at + Duration::from_millis(100),
        "the page learnt it {:?} after the signal",
        page_at - signal_at
    );
    assert!(
        drawn_after < Duration::from_millis(100),
        "the frames were drawn {drawn_after:?} after the signal"
    );
    assert!(qr_codes_in_png(&png).is_empty(), "the PNG shows no QR");
    let frame = image::open(&png).expect("PNG").to_rgb8();
    assert_eq!(
        framebuffer_frame(&device),
        frame,
        "the framebuffer equals the PNG"
    );
    assert_eq!(cancelled["qr"], Value::Null);
    assert_eq!(plain(&cancelled["title"]), "Төлбөр цуцлагдлаа");

    // Expired: from the daemon's commit (its signal) to the QR gone from every sink.
    let reply = h
        .client
        .checkout(&with(
            order("order-fb-2", "5000"),
            "expires_in_ms",
            Arg::U64(1000),
        ))
        .await
        .expect("checkout");
    let attempt_id = s(&reply, "attempt_id").to_owned();
    events.until(|s| s["state"] == "waiting").await;
    // Both are read as they arrive, side by side.
    let ((expired, page_at), signal_at) = tokio::join!(
        async {
            let expired = events.until(|s| s["state"] == "expired").await;
            (expired, Instant::now())
        },
        async {
            wait_attempt(&mut signals, &attempt_id, "501_EXPIRED").await;
            Instant::now()
        }
    );
    assert_eq!(expired["qr"], Value::Null);
    assert!(
        page_at <= signal_at + Duration::from_millis(100),
        "the page learnt it {:?} after the signal",
        page_at - signal_at
    );
    // The frame sinks acknowledge each snapshot they drew: awaited, not polled.
    let version = expired["version"].as_u64().expect("version");
    hub.drawn(version).await;
    let drawn_after = signal_at.elapsed();
    assert!(
        drawn_after < Duration::from_millis(100),
        "the frames were drawn {drawn_after:?} after the signal"
    );
    assert!(qr_codes_in_png(&png).is_empty());
    let frame = image::open(&png).expect("PNG").to_rgb8();
    assert_eq!(framebuffer_frame(&device), frame);
}
