//! The local AppotaPay IPN listener: a correctly signed IPN makes the daemon check the order
//! with AppotaPay's status API at once; a bad signature is refused and changes nothing. Its
//! limits: a body over 16 KiB is answered 413 and changes nothing, a connection that stops
//! halfway is closed at its deadline, connections beyond the cap wait their turn, and a burst
//! of IPNs for one order makes at most two status checks.

use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use qrpayd::dbus::client::Arg;
use qrpayd::providers::appotapay::{IpnLimits, IpnListener};

use serde_json::Value;

use crate::harness::*;
use crate::mock_appotapay::{
    API_KEY, MockAppotapay, MockStatus, PARTNER_CODE, Route, SECRET_KEY, TERMINAL_ID, sign,
};

pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Posts an IPN body to the listener; returns the HTTP status line and the body.
pub(crate) async fn post_ipn(port: u16, body: &str) -> (String, String) {
    tokio::time::timeout(EVENT_TIMEOUT, post_ipn_once(port, body))
        .await
        .expect("the IPN listener answers in time")
}

async fn post_ipn_once(port: u16, body: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the IPN listener");
    let request = format!(
        "POST /appotapay/ipn HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let answer = read_until_closed(&mut stream).await;
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// Reads until the listener closes the connection. A reset counts as a close: a listener that
/// refuses a body before reading all of it resets the connection after its answer.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&answer).into_owned(),
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
}

pub(crate) fn ipn_body(reference: &str, secret: &str) -> String {
    let json = serde_json::json!({
        "partner_ref_id": reference,
        "transaction_id": "APPOTA-TXN-1",
        "status": "success",
        "amount": 150000,
        "error_code": "00",
    })
    .to_string();
    let data = base64::engine::general_purpose::STANDARD.encode(json);
    let signature = sign(secret, data.as_bytes());
    serde_json::json!({ "data": data, "signature": signature }).to_string()
}

/// A daemon with AppotaPay (the mock) and the IPN listener on `port`, polling every minute:
/// only an IPN can make it look again within a test.
async fn daemon_with_listener(mock: &MockAppotapay, port: u16) -> Harness {
    let section = format!(
        "\n[providers.appotapay]\nbase_url = \"{}\"\npartner_code = \"{PARTNER_CODE}\"\napi_key = \"{API_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\nterminal_id = \"{TERMINAL_ID}\"\npoll_interval_ms = 60000\nipn_listener = true\nipn_listen_address = \"127.0.0.1:{port}\"\n",
        mock.base_url
    );
    Harness::start_with(&section).await
}

/// Checks out `source_id` with AppotaPay, the mock's first order, and waits for the daemon's
/// first status check (right after the order was made: pending; the next one is a minute
/// away). Returns the reply and the order's reference at the mock.
async fn checkout_order(h: &Harness, mock: &MockAppotapay, source_id: &str) -> (Value, String) {
    let request = with(order(source_id, "150000"), "currency", Arg::from("VND"));
    let reply = h
        .client
        .checkout(&with(request, "provider", Arg::from("appotapay")))
        .await
        .expect("checkout");
    let reference = mock
        .state()
        .orders
        .last()
        .expect("an order at the mock")
        .reference
        .clone();
    tokio::time::timeout(EVENT_TIMEOUT, mock.wait_for_count(Route::OrderStatus, 1))
        .await
        .expect("the first status check");
    (reply, reference)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_ipn_settles_at_once_and_a_forged_one_changes_nothing() {
    let mock = MockAppotapay::start().await;
    let port = free_port();
    let h = daemon_with_listener(&mock, port).await;
    let mut signals = h.client.watch().await.expect("watch");
    let (reply, reference) = checkout_order(&h, &mock, "ipn-1").await;
    mock.set_status(&reference, MockStatus::Success);

    // Forged: signed with another key. Refused, and the attempt stays live.
    let (status, body) = post_ipn(port, &ipn_body(&reference, "not-the-secret")).await;
    assert!(status.contains("400"), "{status}");
    assert!(body.contains("SignatureMismatch"), "{body}");
    let verify_before = h.client.status().await.expect("status");
    assert_eq!(verify_before["open_attempts"], 1);

    // Genuine: acknowledged as AppotaPay expects, and the payment settles right away.
    let (status, body) = post_ipn(port, &ipn_body(&reference, SECRET_KEY)).await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, r#"{"status":"ok"}"#);
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipn_over_16_kib_is_refused_with_413_and_changes_nothing() {
    let mock = MockAppotapay::start().await;
    let port = free_port();
    let h = daemon_with_listener(&mock, port).await;
    let mut signals = h.client.watch().await.expect("watch");
    let (reply, reference) = checkout_order(&h, &mock, "ipn-big").await;
    mock.set_status(&reference, MockStatus::Success);
    let checks = mock.count(Route::OrderStatus);

    // Correctly signed, and padded past the limit: only its size is wrong.
    let mut big: Value = serde_json::from_str(&ipn_body(&reference, SECRET_KEY)).expect("json");
    big["padding"] = Value::from("x".repeat(17 * 1024));
    let (status, _) = post_ipn(port, &big.to_string()).await;
    assert!(status.contains("413"), "{status}");
    assert_eq!(h.client.status().await.expect("status")["open_attempts"], 1);

    // The same IPN within the limit is applied, by one status check: the big one made none.
    let (status, _) = post_ipn(port, &ipn_body(&reference, SECRET_KEY)).await;
    assert!(status.contains("200"), "{status}");
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    assert_eq!(mock.count(Route::OrderStatus), checks + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_50_identical_ipns_makes_at_most_two_status_checks() {
    let mock = MockAppotapay::start().await;
    let port = free_port();
    let h = daemon_with_listener(&mock, port).await;
    let mut signals = h.client.watch().await.expect("watch");
    let (reply, reference) = checkout_order(&h, &mock, "ipn-burst").await;
    let checks_before = mock.count(Route::OrderStatus);

    // AppotaPay repeating one IPN, back to back, while the order is still pending at its end:
    // every status check finds it open, and the burst outlasts many checks, so nothing but the
    // coalescing keeps it from making one check per IPN or so.
    let body = ipn_body(&reference, SECRET_KEY);
    for _ in 0..50 {
        let (status, _) = post_ipn(port, &body).await;
        assert!(status.contains("200"), "{status}");
    }
    // Paid now: the check the burst makes at the end of its quiet period settles it.
    mock.set_status(&reference, MockStatus::Success);
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    let checks = mock.count(Route::OrderStatus) - checks_before;
    assert!(
        (1..=2).contains(&checks),
        "50 IPNs made {checks} status checks"
    );
}

/// A listener on a free loopback port with `limits`, and its invoice queue (kept open).
async fn listener(limits: IpnLimits) -> (IpnListener, qrpayd::providers::appotapay::IpnNotices) {
    let address = "127.0.0.1:0".parse().expect("address");
    IpnListener::start(address, SECRET_KEY.to_owned().into(), limits)
        .await
        .expect("the listener starts")
}

/// Connects, sends `part` of a request and nothing more, and returns how long the listener
/// took to close the connection.
async fn stall(port: u16, part: &'static str) -> Duration {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(part.as_bytes()).await.expect("send");
    tokio::time::timeout(EVENT_TIMEOUT, read_until_closed(&mut stream))
        .await
        .expect("the listener closes a stalled connection");
    started.elapsed()
}

const HALF_HEADERS: &str = "POST /appotapay/ipn HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le";
const HALF_BODY: &str =
    "POST /appotapay/ipn HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"data\":";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_halfway_is_closed_at_its_deadline() {
    let limits = IpnLimits {
        request_timeout: Duration::from_millis(300),
        ..IpnLimits::default()
    };
    let (listener, _notices) = listener(limits).await;
    let port = listener.address().port();
    let (headers, body) = tokio::join!(stall(port, HALF_HEADERS), stall(port, HALF_BODY));
    for took in [headers, body] {
        assert!(took >= limits.request_timeout, "closed early: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let limits = IpnLimits {
        request_timeout: Duration::from_millis(300),
        max_connections: 2,
        ..IpnLimits::default()
    };
    let (listener, _notices) = listener(limits).await;
    let port = listener.address().port();
    // Five stalled connections, two served at a time: they are closed in three waves, one
    // deadline apart. Without the cap all five would close at the first deadline.
    let mut closed = futures_util::future::join_all((0..5).map(|_| stall(port, HALF_BODY))).await;
    closed.sort();
    assert!(
        closed[4] >= limits.request_timeout * 2,
        "the last was closed too soon: {closed:?}"
    );
}
