//! AppotaPay's POS VietQR through the D-Bus API, against the mock AppotaPay on 127.0.0.1 (which
//! refuses any request whose JWT, X-Signature or X-Request-Id is wrong).

use qrpayd::dbus::client::{Arg, Request};
use qrpayd::emv::{Payload, VietQr};

use crate::harness::*;
use crate::mock_appotapay::{
    API_KEY, MockAppotapay, MockStatus, PARTNER_CODE, SECRET_KEY, TERMINAL_ID,
};

fn section(mock: &MockAppotapay) -> String {
    format!(
        "\n[providers.appotapay]\nbase_url = \"{}\"\npartner_code = \"{PARTNER_CODE}\"\napi_key = \"{API_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\nterminal_id = \"{TERMINAL_ID}\"\npoll_interval_ms = 1000\n",
        mock.base_url
    )
}

fn vnd_order(source_id: &str, amount: &str) -> Request {
    let request = with(order(source_id, amount), "currency", Arg::from("VND"));
    with(request, "provider", Arg::from("appotapay"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appotapay_vietqr_is_paid_and_settles() {
    let mock = MockAppotapay::start().await;
    let h = Harness::start_with(&section(&mock)).await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&vnd_order("ap-1", "150000"))
        .await
        .expect("checkout");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    VietQr::from_payload(&Payload::parse(s(&reply, "qr_text")).expect("EMVCo")).expect("VietQR");
    let reference = {
        let state = mock.state();
        assert_eq!(state.orders.len(), 1, "one order at AppotaPay");
        state.orders[0].reference.clone()
    };
    mock.set_status(&reference, MockStatus::Success);
    wait_transaction(&mut signals, s(&reply, "transaction_id"), "304_SETTLED").await;
    assert!(mock.rejections().is_empty(), "{:?}", mock.rejections());

    // A repeated checkout for the same order makes no second order at AppotaPay.
    let again = h
        .client
        .checkout(&vnd_order("ap-1", "150000"))
        .await
        .expect("again");
    assert_eq!(s(&again, "transaction_status"), "304_SETTLED");
    assert_eq!(mock.state().orders.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appotapay_errors_reach_the_till_by_name() {
    let mock = MockAppotapay::start().await;
    let h = Harness::start_with(&section(&mock)).await;
    let mut signals = h.client.watch().await.expect("watch");

    // Below AppotaPay's 10 000 VND minimum: refused before anything is sent or recorded.
    let small = h
        .client
        .checkout(&vnd_order("ap-2", "5000"))
        .await
        .expect_err("minimum");
    assert_eq!(error_name(&small), "InvalidArgument");
    assert_eq!(mock.total(), 0, "no request reached AppotaPay");
    assert_eq!(
        h.client
            .count_transactions(&Request::new())
            .await
            .expect("count"),
        0
    );

    // The provider fails the payment: the attempt fails with AppotaPay's code.
    let reply = h
        .client
        .checkout(&vnd_order("ap-3", "20000"))
        .await
        .expect("checkout");
    let reference = mock.state().orders[0].reference.clone();
    mock.set_status(
        &reference,
        MockStatus::Error {
            code: 38,
            message: "user cancelled".to_owned(),
        },
    );
    let failed = wait_attempt(&mut signals, s(&reply, "attempt_id"), "500_FAIL").await;
    assert_eq!(failed.args["details"]["failure_code"], "38");
}
