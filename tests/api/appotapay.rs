//! AppotaPay's POS VietQR and its card / account payments (method `ATM`) through the D-Bus API,
//! against the mock AppotaPay on 127.0.0.1 (which refuses any request whose JWT, X-Signature or
//! X-Request-Id is wrong).

use qrpayd::dbus::client::{Arg, Request};
use qrpayd::emv::{Payload, VietQr};

use crate::captured::Captured;
use crate::harness::*;
use crate::mock_appotapay::{
    API_KEY, Failure, MockAppotapay, MockStatus, PARTNER_CODE, Route, SECRET_KEY, TERMINAL_ID,
    VERIFICATION_URL,
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

// Card and bank-account payments (seed 004, method `ATM`).

/// A card number only these tests use, so that finding it anywhere means it leaked.
const CARD_NUMBER: &str = "9704198526191432";
/// What of it may be shown.
const CARD_LAST4: &str = "1432";
const CARD_HOLDER: &str = "NGUYEN VAN KIEMTRA";
const ACCOUNT_NUMBER: &str = "0071000888123";
const IDENTIFICATION_NUMBER: &str = "079188004321";

/// The AppotaPay section with the notification URLs card payments need.
fn card_section(mock: &MockAppotapay) -> String {
    format!(
        "{}card_notify_url = \"https://pos.example.vn/appotapay/ipn\"\ncard_redirect_url = \"https://pos.example.vn/appotapay/done\"\n",
        section(mock)
    )
}

fn with_all(mut request: Request, pairs: &[(&str, &str)]) -> Request {
    for (key, value) in pairs {
        request = with(request, key, Arg::from(*value));
    }
    request
}

/// A Checkout paying order `source_id` with the test card.
fn card_order(source_id: &str, amount: &str) -> Request {
    with_all(
        vnd_order(source_id, amount),
        &[
            ("method", "ATM"),
            ("bank_code", "VCB"),
            ("card_number", CARD_NUMBER),
            ("card_holder_name", CARD_HOLDER),
            ("card_month", "03"),
            ("card_year", "07"),
        ],
    )
}

/// Captures everything logged in this test binary (qrpayd at every level, the rest from `info`)
/// from the first call on. The daemons run in-process on the runtime's threads, so only a
/// process-wide subscriber sees all they log; nothing else in this binary installs one.
fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,qrpayd=trace"))
            .with_ansi(false)
            .finish();
        // Should another subscriber be in place, nothing is captured, and the test that
        // expects the card's last 4 digits in the logs says so.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

/// Every file the daemon keeps in its state directory (the database, its WAL, the display
/// frame, ...), as (name, bytes).
fn state_files(display_png: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(display_png)
        .parent()
        .expect("the frame lives in the state directory");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the state directory") {
        let path = entry.expect("an entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("readable");
            files.push((path.display().to_string(), bytes));
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Asserts that none of `secrets` is in `text` (what the till or the logs saw).
fn assert_hidden(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} holds {secret:?}: {text}");
    }
}

/// The QR codes drawn in a frame file.
fn qr_codes_in(png: &str) -> Vec<String> {
    let image = image::open(png).expect("the frame is a PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    prepared
        .detect_grids()
        .iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, content)| content))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_payment_shows_its_page_settles_and_leaves_no_card_number_behind() {
    let logs = captured_logs();
    let mock = MockAppotapay::start().await;
    let h = Harness::start_with(&card_section(&mock)).await;
    let mut signals = h.client.watch().await.expect("watch");
    let reply = h
        .client
        .checkout(&card_order("ap-card-1", "150000"))
        .await
        .expect("checkout");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    assert_eq!(s(&reply, "method"), "ATM");
    let page = s(&reply, "qr_text").to_owned();
    assert!(page.starts_with(VERIFICATION_URL), "{page}");
    assert_eq!(s(&reply, "short_url"), page);
    // The customer display shows the page as a QR, for the customer's own phone.
    assert_eq!(qr_codes_in(s(&reply, "display_png")), vec![page.clone()]);

    // The card reached AppotaPay once, in the one create call.
    let reference = {
        let state = mock.state();
        assert_eq!(state.cards.len(), 1, "one card payment at AppotaPay");
        state.cards[0].reference.clone()
    };
    let sent: serde_json::Value =
        serde_json::from_str(&mock.card(&reference).expect("made").raw_request).expect("JSON");
    assert_eq!(sent["sourceOfFunds"]["card"]["cardNumber"], CARD_NUMBER);
    assert_eq!(sent["transaction"]["paymentMethod"], "ATM");
    assert_eq!(sent["transaction"]["amount"], 150000);

    // The customer finishes the OTP; the poll sees the payment and the order settles.
    mock.set_card_status(&reference, MockStatus::Success);
    let mut seen = Vec::new();
    wait_for(&mut signals, "TransactionChanged 304_SETTLED", |signal| {
        seen.push(signal.args.to_string());
        signal.name == "TransactionChanged"
            && signal.args["transaction_id"] == s(&reply, "transaction_id")
            && signal.args["status"] == "304_SETTLED"
    })
    .await;
    assert!(mock.rejections().is_empty(), "{:?}", mock.rejections());
    let view = h
        .client
        .get_transaction(s(&reply, "transaction_id"))
        .await
        .expect("the transaction");
    assert_eq!(
        s(&view, "paid"),
        "150000.0000",
        "the order amount, not the fee"
    );

    // Asked again, with or without the card, the order is settled: no second payment.
    for again in [
        card_order("ap-card-1", "150000"),
        vnd_order("ap-card-1", "150000"),
    ] {
        let again = h.client.checkout(&again).await.expect("again");
        assert_eq!(s(&again, "transaction_status"), "304_SETTLED");
    }
    assert_eq!(mock.count(Route::CardPayment), 1);

    // The card number is nowhere: not in what the till saw, not on disk, not in the logs.
    let secrets = [CARD_NUMBER, &CARD_NUMBER[..12], CARD_HOLDER];
    assert_hidden("the reply", &reply.to_string(), &secrets);
    assert_hidden("the transaction", &view.to_string(), &secrets);
    assert!(seen.len() >= 4, "the signals were seen: {seen:?}");
    for signal in &seen {
        assert_hidden("a signal", signal, &secrets);
    }
    let files = state_files(s(&reply, "display_png"));
    let database: Vec<u8> = files
        .iter()
        .filter(|(name, _)| name.contains("qrpayd.sqlite3"))
        .flat_map(|(_, bytes)| bytes.clone())
        .collect();
    assert!(
        contains(&database, &reference) && contains(&database, &page),
        "the scan reads the database (and its WAL) where the attempt is"
    );
    for (name, bytes) in &files {
        for secret in secrets {
            assert!(!contains(bytes, secret), "{name} holds {secret:?}");
        }
    }
    let logged = logs.text();
    assert!(
        logged.contains("card payment created") && logged.contains(CARD_LAST4),
        "the logs were captured and show the last 4 digits"
    );
    assert_hidden("the logs", &logged, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_payment_errors_reach_the_till_by_name_and_an_unknown_outcome_is_never_resent() {
    let mock = MockAppotapay::start().await;
    let h = Harness::start_with(&card_section(&mock)).await;
    let mut signals = h.client.watch().await.expect("watch");

    let cases = [
        (1, 400, "InvalidArgument"),
        (32, 400, "InvalidArgument"),
        (90, 400, "ProviderRejected"),
        (140, 400, "ProviderRejected"),
        (141, 400, "ProviderRejected"),
        (500, 500, "ProviderUnavailable"),
    ];
    for (n, (code, http, name)) in cases.into_iter().enumerate() {
        // AppotaPay echoing the card in its message must not carry it to the till.
        mock.fail_next(
            Route::CardPayment,
            Failure::Code {
                http,
                code,
                code_as_string: false,
                message: format!("card {CARD_NUMBER} refused"),
            },
        );
        let error = h
            .client
            .checkout(&card_order(&format!("ap-card-e{n}"), "20000"))
            .await
            .expect_err("refused");
        assert_eq!(error_name(&error), name, "code {code}: {error}");
        assert_hidden("an error", &error.to_string(), &[CARD_NUMBER]);
        if name == "ProviderRejected" {
            assert!(
                error
                    .to_string()
                    .contains(&format!("AppotaPay error {code}")),
                "{error}"
            );
        }
    }
    // The create that answered 500 may have reached AppotaPay: it is looked up, not sent
    // again (the card is gone), and AppotaPay not knowing it fails the attempt.
    let not_created = wait_for(&mut signals, "the unknown create resolved", |signal| {
        signal.name == "AttemptChanged"
            && signal.args["status"] == "500_FAIL"
            && signal.args["details"]["failure_code"] == "NOT_CREATED"
    })
    .await;
    assert_eq!(not_created.args["details"]["method"], "ATM");
    assert!(mock.count(Route::CardStatus) >= 1, "looked up");
    assert_eq!(mock.count(Route::CardPayment), cases.len(), "never re-sent");

    // While such an attempt is unresolved (AppotaPay's status API failing too), a repeated
    // Checkout without the card sends nothing and asks for the card; with it, the payment is
    // created under the same order id.
    for _ in 0..5 {
        mock.fail_next(
            Route::CardStatus,
            Failure::Code {
                http: 500,
                code: 500,
                code_as_string: false,
                message: "server error".to_owned(),
            },
        );
    }
    mock.fail_next(Route::CardPayment, Failure::Status500);
    let unknown = h
        .client
        .checkout(&card_order("ap-card-u", "20000"))
        .await
        .expect_err("unknown outcome");
    assert_eq!(error_name(&unknown), "ProviderUnavailable", "{unknown}");
    let without = h
        .client
        .checkout(&vnd_order("ap-card-u", "20000"))
        .await
        .expect_err("a QR while the card payment is open");
    assert_eq!(
        error_name(&without),
        "InvalidTransactionStatus",
        "{without}"
    );
    assert!(without.to_string().contains("replace_open"), "{without}");
    assert_eq!(mock.count(Route::CardPayment), cases.len() + 1);
    let resent = h
        .client
        .checkout(&card_order("ap-card-u", "20000"))
        .await
        .expect("sent with the card");
    assert_eq!(s(&resent, "attempt_status"), "204_SENT");
    assert!(s(&resent, "qr_text").starts_with(VERIFICATION_URL));
    assert_eq!(mock.count(Route::CardPayment), cases.len() + 2);
    assert_eq!(mock.state().cards.len(), 1, "one card payment made");
    assert!(mock.rejections().is_empty(), "{:?}", mock.rejections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_card_keys_are_refused_before_anything_is_sent() {
    let mock = MockAppotapay::start().await;
    let h = Harness::start_with(&card_section(&mock)).await;
    let card = || card_order("ap-card-bad", "20000");
    let account = || {
        with_all(
            vnd_order("ap-account-1", "20000"),
            &[
                ("method", "ATM"),
                ("bank_code", "VCB"),
                ("account_number", ACCOUNT_NUMBER),
                ("account_holder_name", "TRAN THI KIEMTRA"),
                ("identification_number", IDENTIFICATION_NUMBER),
            ],
        )
    };
    let mut without_holder = card();
    without_holder.remove("card_holder_name");
    let mut without_method = card();
    without_method.remove("method");
    let cases: Vec<(&str, Request)> = vec![
        (
            "card_number",
            with(card(), "card_number", Arg::from("9704 1985")),
        ),
        (
            "card_number",
            with(card(), "card_number", Arg::from("970419852619143X")),
        ),
        (
            "card_number",
            with(card(), "card_number", Arg::U64(9704198526191432)),
        ),
        ("card_month", with(card(), "card_month", Arg::from("13"))),
        ("card_year", with(card(), "card_year", Arg::from("2027"))),
        ("bank_code", with(card(), "bank_code", Arg::from("V C B"))),
        ("card_holder_name", without_holder),
        (
            "identification_number",
            with(account(), "identification_number", Arg::from("12")),
        ),
        (
            "not both",
            with(card(), "account_number", Arg::from(ACCOUNT_NUMBER)),
        ),
        (
            "ATM",
            with(
                vnd_order("ap-card-bad", "20000"),
                "method",
                Arg::from("ATM"),
            ),
        ),
        ("ATM", with(card(), "method", Arg::from("100_QR_CODE"))),
        ("ATM", with(card(), "provider", Arg::from("system"))),
        (
            "bank_code",
            with(
                vnd_order("ap-card-bad", "20000"),
                "bank_code",
                Arg::from("VCB"),
            ),
        ),
        (
            "description",
            with(card(), "description", Arg::from("x".repeat(151))),
        ),
    ];
    for (names, request) in cases {
        let error = h.client.checkout(&request).await.expect_err("refused");
        assert_eq!(error_name(&error), "InvalidArgument", "{names}: {error}");
        assert!(error.to_string().contains(names), "{names}: {error}");
        assert_hidden("an error", &error.to_string(), &[CARD_NUMBER, "97041985"]);
    }
    assert_eq!(mock.total(), 0, "no request reached AppotaPay");
    assert_eq!(
        h.client
            .count_transactions(&Request::new())
            .await
            .expect("count"),
        0,
        "nothing was recorded"
    );

    // Without `method`, the card's keys make an ATM payment; an account works the same way.
    let by_card = h.client.checkout(&without_method).await.expect("card");
    assert_eq!(s(&by_card, "method"), "ATM");
    let reply = h.client.checkout(&account()).await.expect("account");
    assert_eq!(s(&reply, "attempt_status"), "204_SENT");
    let reference = mock.state().cards[1].reference.clone();
    let sent: serde_json::Value =
        serde_json::from_str(&mock.card(&reference).expect("made").raw_request).expect("JSON");
    assert_eq!(sent["sourceOfFunds"]["type"], "account");
    assert_eq!(
        sent["sourceOfFunds"]["account"]["identificationNumber"],
        IDENTIFICATION_NUMBER
    );
    for (name, bytes) in state_files(s(&reply, "display_png")) {
        for secret in [ACCOUNT_NUMBER, IDENTIFICATION_NUMBER, CARD_NUMBER] {
            assert!(!contains(&bytes, secret), "{name} holds {secret:?}");
        }
    }
}

/// The QR-order mappings through the D-Bus API: a QR sent as an image is read back to its
/// text, 401 is unavailable (credentials), 500 is unavailable and a retried Checkout makes no
/// second order, a voided order closes the attempt without money.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appotapay_qr_order_mappings_through_dbus() {
    use crate::mock_appotapay::{Failure, Route};

    let mock = MockAppotapay::start().await;
    let h = Harness::start_with(&section(&mock)).await;
    let mut signals = h.client.watch().await.expect("watch");

    // The QR arrives as a base64 PNG: the daemon shows the text it encodes.
    mock.qr_as_image(true);
    let image = h
        .client
        .checkout(&vnd_order("map-1", "150000"))
        .await
        .expect("checkout");
    let expected = mock.state().orders[0].qr_text.clone();
    assert_eq!(s(&image, "qr_text"), expected);
    mock.qr_as_image(false);

    // Credentials refused: the till hears the provider is unavailable; nothing is lost.
    mock.fail_next(Route::CreateOrder, Failure::Status401);
    let refused = h
        .client
        .checkout(&vnd_order("map-2", "150000"))
        .await
        .expect_err("401");
    assert_eq!(error_name(&refused), "ProviderUnavailable", "{refused}");

    // A 500 on create: unavailable; the retried Checkout finds its transaction, one order.
    mock.fail_next(Route::CreateOrder, Failure::Status500);
    let failed = h
        .client
        .checkout(&vnd_order("map-3", "150000"))
        .await
        .expect_err("500");
    assert_eq!(error_name(&failed), "ProviderUnavailable", "{failed}");
    let retried = h
        .client
        .checkout(&vnd_order("map-3", "150000"))
        .await
        .expect("retry");
    assert_eq!(s(&retried, "attempt_status"), "204_SENT");
    let orders_for_map_3 = mock
        .state()
        .orders
        .iter()
        .filter(|o| o.qr_text == s(&retried, "qr_text"))
        .count();
    assert_eq!(
        orders_for_map_3, 1,
        "one order at AppotaPay for the retried checkout"
    );

    // AppotaPay's own codes: 1 and 32 are the till's input, 42/93/94/95 are AppotaPay being
    // unavailable, others are refusals carrying the code.
    let codes = [
        (1, "InvalidArgument"),
        (32, "InvalidArgument"),
        (42, "ProviderUnavailable"),
        (93, "ProviderUnavailable"),
        (94, "ProviderUnavailable"),
        (95, "ProviderUnavailable"),
        (33, "ProviderRejected"),
    ];
    for (index, (code, expected)) in codes.into_iter().enumerate() {
        mock.fail_next(
            Route::CreateOrder,
            Failure::Code {
                http: 200,
                code,
                code_as_string: index % 2 == 0,
                message: format!("mock error {code}"),
            },
        );
        let error = h
            .client
            .checkout(&vnd_order(&format!("code-{code}"), "150000"))
            .await
            .expect_err("refused");
        assert_eq!(error_name(&error), expected, "code {code}: {error}");
    }

    // Voided at AppotaPay: the attempt closes without money.
    let reference = mock
        .state()
        .orders
        .iter()
        .find(|o| o.qr_text == s(&retried, "qr_text"))
        .map(|o| o.reference.clone())
        .expect("the order on screen");
    mock.set_status(&reference, MockStatus::Void);
    h.client
        .verify(s(&retried, "attempt_id"))
        .await
        .expect("verify");
    wait_attempt(&mut signals, s(&retried, "attempt_id"), "501_EXPIRED").await;
    let view = h
        .client
        .get_transaction(s(&retried, "transaction_id"))
        .await
        .expect("get");
    assert_eq!(s(&view, "paid"), "0.0000");
}
