//! Checkout, signals, settlement.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_signals_and_settles() {
    let h = Harness::start().await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&order("order-1", "12500"))
        .await
        .expect("checkout");
    assert_eq!(s(&reply, "transaction_status"), "100_NEW");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    assert_eq!(s(&reply, "total"), "12500.0000");
    assert_eq!(s(&reply, "currency"), "MNT");
    assert_eq!(s(&reply, "transaction_number"), "TXN000001");
    let qr = s(&reply, "qr_text").to_owned();
    qrpayd::emv::validate(&qr).expect("valid EMVCo QR");
    let png = std::path::PathBuf::from(s(&reply, "display_png"));
    assert!(png.exists());
    let transaction_id = s(&reply, "transaction_id").to_owned();
    let attempt_id = s(&reply, "attempt_id").to_owned();

    h.client.simulate_pay(&attempt_id, "").await.expect("pay");
    wait_attempt(&mut signals, &attempt_id, "302_SUCCESS").await;
    let settled = wait_transaction(&mut signals, &transaction_id, "304_SETTLED").await;
    assert_eq!(settled.args["details"]["paid"], "12500.0000");

    let view = h
        .client
        .get_transaction(&transaction_id)
        .await
        .expect("get");
    assert_eq!(s(&view, "transaction_status"), "304_SETTLED");
    assert_eq!(view["payments"].as_array().map(Vec::len), Some(1));
}
