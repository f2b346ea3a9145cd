//! The local AppotaPay IPN listener: a correctly signed IPN makes the daemon check the order
//! with AppotaPay's status API at once; a bad signature is refused and changes nothing.

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use qrpayd::dbus::client::Arg;

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
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_ipn_settles_at_once_and_a_forged_one_changes_nothing() {
    let mock = MockAppotapay::start().await;
    let port = free_port();
    // Polling every minute: only the IPN can make the daemon look again within the test.
    let section = format!(
        "\n[providers.appotapay]\nbase_url = \"{}\"\npartner_code = \"{PARTNER_CODE}\"\napi_key = \"{API_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\nterminal_id = \"{TERMINAL_ID}\"\npoll_interval_ms = 60000\nipn_listener = true\nipn_listen_address = \"127.0.0.1:{port}\"\n",
        mock.base_url
    );
    let h = Harness::start_with(&section).await;
    let mut signals = h.client.watch().await.expect("watch");
    let request = with(order("ipn-1", "150000"), "currency", Arg::from("VND"));
    let reply = h
        .client
        .checkout(&with(request, "provider", Arg::from("appotapay")))
        .await
        .expect("checkout");
    let reference = mock.state().orders[0].reference.clone();
    // The daemon's first check (right after the order was made) has seen it pending; the next
    // one is a minute away.
    tokio::time::timeout(EVENT_TIMEOUT, mock.wait_for_count(Route::OrderStatus, 1))
        .await
        .expect("the first status check");
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
