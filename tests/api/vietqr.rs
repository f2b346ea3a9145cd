//! The local VietQR provider: a dynamic VietQR for the merchant's own account, confirmed by the
//! cashier.

use qrpayd::dbus::client::{Arg, Request};
use qrpayd::emv::{Payload, VietQr};

use crate::harness::*;

pub(crate) const VIETQR: &str = "\n[providers.vietqr]\nbin = \"970416\"\naccount = \"257678859\"\naccount_name = \"CUA HANG QRPAYD\"\n";

pub(crate) fn vnd_order(source_id: &str, amount: &str) -> Request {
    let request = with(order(source_id, amount), "currency", Arg::from("VND"));
    with(request, "provider", Arg::from("vietqr"))
}

fn request(pairs: &[(&str, &str)]) -> Request {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Arg::from(*v)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vietqr_transfer_is_shown_then_confirmed_by_the_cashier() {
    let h = Harness::start_with(VIETQR).await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&vnd_order("vn-1", "150000"))
        .await
        .expect("checkout");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    assert_eq!(s(&reply, "provider"), "vietqr");
    let code = VietQr::from_payload(&Payload::parse(s(&reply, "qr_text")).expect("EMVCo"))
        .expect("a VietQR");
    assert_eq!(code.bin, "970416");
    assert_eq!(code.account, "257678859");
    assert_eq!(
        code.amount.map(|a| a.to_string()).as_deref(),
        Some("150000")
    );
    assert_eq!(
        code.purpose.as_deref(),
        Some(format!("QRP {}", s(&reply, "attempt_code")).as_str())
    );

    let verify = h
        .client
        .verify(s(&reply, "attempt_id"))
        .await
        .expect("verify");
    assert_eq!(s(&verify, "provider_code"), "AWAITING_CASHIER");

    let confirm = h
        .client
        .confirm_system_payment(&request(&[
            ("attempt_id", s(&reply, "attempt_id")),
            ("tendered", "150000"),
            ("note", "seen in the bank app"),
        ]))
        .await
        .expect("the cashier confirms the transfer");
    assert_eq!(s(&confirm, "transaction_status"), "304_SETTLED");
    assert_eq!(s(&confirm, "change"), "0.0000");
    // The confirmed transfer ends its QR at once, not at the supervisor's next look a minute
    // away (found by the benchmark: `OpenAttempts` stayed 1 after the confirmation).
    if h.client.status().await.expect("status")["open_attempts"] != 0 {
        wait_open_attempts(&mut signals, 0).await;
    }

    let refund = h
        .client
        .refund(&request(&[
            ("attempt_id", s(&reply, "attempt_id")),
            ("amount", "150000"),
        ]))
        .await
        .expect_err("refunded by a bank transfer, not by qrpayd");
    assert_eq!(error_name(&refund), "InvalidArgument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vietqr_attempt_can_be_cancelled_and_mnt_is_refused() {
    let h = Harness::start_with(VIETQR).await;
    let reply = h
        .client
        .checkout(&vnd_order("vn-2", "20000"))
        .await
        .expect("checkout");
    let cancel = h
        .client
        .cancel(&request(&[("attempt_id", s(&reply, "attempt_id"))]))
        .await
        .expect("cancel");
    assert_eq!(s(&cancel, "transaction_status"), "100_NEW");
    let late = h
        .client
        .confirm_system_payment(&request(&[
            ("attempt_id", s(&reply, "attempt_id")),
            ("tendered", "20000"),
        ]))
        .await
        .expect_err("a cancelled attempt is not confirmed");
    assert_eq!(error_name(&late), "InvalidTransactionStatus");

    let mnt = with(order("vn-3", "20000"), "provider", Arg::from("vietqr"));
    let error = h.client.checkout(&mnt).await.expect_err("VND only");
    assert_eq!(error_name(&error), "InvalidArgument");
}
