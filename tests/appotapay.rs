//! The AppotaPay provider against a mock AppotaPay speaking real HTTP on 127.0.0.1.
//!
//! Provider-level: each test builds an `Appotapay` directly (no bus, no daemon) and asserts on
//! what it answers and on what reached the mock. The mock refuses any request whose JWT,
//! `X-Request-Id` or `X-Signature` is wrong, so every passing call also proves the
//! authentication.
//!
//! - `mock_appotapay` (in `support/`): the mock and its control handle.
//! - vectors: the JWT, the body signature and an IPN signature against fixed values.
//! - authentication: what the mock refuses, and a provider with the wrong secret.
//! - create: the request sent, local checks that send nothing, duplicates, lost answers, the
//!   QR as text or as a PNG.
//! - status: pending → processing → success / error / void, `error_code` as string or integer.
//! - error codes: each of provider-notes.md's mappings, HTTP failures, timeouts.
//! - cancel and refund: what the seeds allow.
//! - card / account payments: the verification URL, the error codes, and the card number
//!   never in `Debug`, errors or logs.
//! - IPN: good, bad and tampered.

#[path = "support/captured.rs"]
mod captured;
#[path = "support/mock_appotapay.rs"]
mod mock_appotapay;
/// Serving and waiting, shared by the mocks.
#[path = "support/mock_server.rs"]
mod mock_server;

use captured::Captured;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mock_appotapay::{
    API_KEY, CARD_FEE, Failure, GOOD_JWT_HEADER, MockAppotapay, MockStatus, PARTNER_CODE, Route,
    SECRET_KEY, TERMINAL_ID, VERIFICATION_URL, good_claims, make_jwt, sign,
};
use qrpayd::domain::{Currency, Timestamp};
use qrpayd::emv;
use qrpayd::providers::appotapay::{
    Appotapay, AppotapaySettings, CardDetails, DEFAULT_POLL_INTERVAL, INVALID_ARGUMENT, IpnError,
    JWT_TTL, OrderStatus, body_signature, jwt, verify_ipn,
};
use qrpayd::providers::{
    CancelOutcome, CreateRequest, InvoiceState, Provider, ProviderError, ProviderPayment,
    ProviderState, RefundRequest,
};
use rust_decimal::Decimal;
use secrecy::SecretString;
use serde_json::json;

/// A provider state in memory, shareable between provider instances (a "restart").
#[derive(Default)]
struct MemoryState(Mutex<BTreeMap<String, String>>);

impl ProviderState for MemoryState {
    fn load(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.0.lock().map_err(|e| e.to_string())?.get(key).cloned())
    }

    fn save(&self, key: &str, value: &str) -> Result<(), String> {
        self.0
            .lock()
            .map_err(|e| e.to_string())?
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }
}

fn settings(mock: &MockAppotapay) -> AppotapaySettings {
    AppotapaySettings {
        base_url: mock.base_url.clone(),
        partner_code: PARTNER_CODE.to_owned(),
        api_key: API_KEY.to_owned(),
        secret_key: SecretString::from(SECRET_KEY),
        terminal_id: TERMINAL_ID.to_owned(),
        poll_interval: DEFAULT_POLL_INTERVAL,
        request_timeout: Duration::from_secs(10),
        card_base_url: Some(mock.base_url.clone()),
        card_notify_url: Some("https://pos.example.vn/appotapay/ipn".to_owned()),
        card_redirect_url: Some("https://pos.example.vn/appotapay/done".to_owned()),
    }
}

fn provider_with(settings: AppotapaySettings, state: Arc<MemoryState>) -> Appotapay {
    Appotapay::new(settings, state).expect("the provider builds")
}

fn provider(mock: &MockAppotapay) -> Appotapay {
    provider_with(settings(mock), Arc::new(MemoryState::default()))
}

/// An idempotency key as the engine makes them: 26 characters of `[A-Z0-9]`.
fn key(tag: &str) -> String {
    format!("Q{tag:0>25}")
}

fn request(key: &str, amount: &str) -> CreateRequest {
    CreateRequest {
        transaction_id: "transaction-1".to_owned(),
        source: qrpayd_source(),
        attempt_id: format!("attempt-{key}"),
        attempt_code: "ATT000001".to_owned(),
        idempotency_key: key.to_owned(),
        transaction_number: "TXN000001".to_owned(),
        terminal_id: "till-1".to_owned(),
        amount: Decimal::from_str_exact(amount).expect("a literal amount"),
        currency: Currency::Vnd,
        description: "TXN000001 12,000 VND".to_owned(),
        expires_at: Timestamp::now().plus_millis(120_000),
        allow_partial: false,
        items: vec![],
    }
}

fn invalid_argument_about(result: Result<impl std::fmt::Debug, ProviderError>, field: &str) {
    match result {
        Err(ProviderError::Rejected { code, message }) => {
            assert_eq!(code, INVALID_ARGUMENT, "{message}");
            assert!(message.starts_with(field), "{message} should name {field}");
        }
        other => panic!("expected INVALID_ARGUMENT about {field}, got {other:?}"),
    }
}

// ---- Vectors ----

/// The expected strings were computed once with Python's standard library, independently of
/// this crate:
/// `b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()`, the token is
/// `b64u(header) + "." + b64u(claims)` followed by `"." + b64u(hmac.new(secret, that,
/// hashlib.sha256).digest())`, and signatures are `hmac.new(secret, data,
/// hashlib.sha256).hexdigest()`, with secret `qrpayd-test-secret-0123456789`.
#[test]
fn the_jwt_and_the_body_signature_match_fixed_vectors() {
    let secret = SecretString::from(SECRET_KEY);
    assert_eq!(GOOD_JWT_HEADER, qrpayd::providers::appotapay::JWT_HEADER);
    assert_eq!(JWT_TTL, Duration::from_secs(300));
    let token = jwt(PARTNER_CODE, API_KEY, &secret, 1_764_000_000, JWT_TTL);
    assert_eq!(
        token,
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImN0eSI6ImFwcG90YXBheS1hcGk7dj0xIn0\
         .eyJpc3MiOiJRUlBBWURfVEVTVCIsImp0aSI6InFycGF5ZC10ZXN0LWFwaS1rZXktMTc2NDAwMDAwMCIsImFwaV9rZXkiOiJxcnBheWQtdGVzdC1hcGkta2V5IiwiZXhwIjoxNzY0MDAwMzAwfQ\
         .8J6d-7DqLSDNYdYzJoDSLPRzq2ZVgWjsvIQi-N6Jw0s"
    );
    let body = br#"{"partner_ref_id":"QABC123","order_info":"TXN000001 12,000 VND","terminal_id":"TID-5094322012","payment_method":"QR","amount":12000}"#;
    assert_eq!(
        body_signature(&secret, body),
        "6a73ee462a509d7e9ac64ac71d287bd6d4bdf4a6f9d07ec1bae1f5e24e49b5a7"
    );
}

// ---- Authentication ----

#[tokio::test]
async fn the_mock_refuses_a_request_that_is_wrong_in_any_part() {
    let mock = MockAppotapay::start().await;
    let url = format!("{}/api/v2/partner/orders/payment/create", mock.base_url);
    let body = r#"{"partner_ref_id":"QX","order_info":"x","terminal_id":"T","payment_method":"QR","amount":10000}"#;
    let good_id = uuid::Uuid::new_v4().to_string();
    let good_jwt = make_jwt(GOOD_JWT_HEADER, &good_claims(), SECRET_KEY);
    let claims_with = |field: &str, value: serde_json::Value| {
        let mut claims = good_claims();
        claims[field] = value;
        make_jwt(GOOD_JWT_HEADER, &claims, SECRET_KEY)
    };
    let cases: Vec<(&str, String, String, String)> = vec![
        (
            "alg none",
            make_jwt(r#"{"typ":"JWT","alg":"none"}"#, &good_claims(), SECRET_KEY),
            good_id.clone(),
            sign(SECRET_KEY, body.as_bytes()),
        ),
        (
            "signed with another secret",
            make_jwt(GOOD_JWT_HEADER, &good_claims(), "another-secret"),
            good_id.clone(),
            sign(SECRET_KEY, body.as_bytes()),
        ),
        (
            "wrong iss",
            claims_with("iss", json!("SOMEONE_ELSE")),
            good_id.clone(),
            sign(SECRET_KEY, body.as_bytes()),
        ),
        (
            "wrong api_key",
            claims_with("api_key", json!("other-key")),
            good_id.clone(),
            sign(SECRET_KEY, body.as_bytes()),
        ),
        (
            "jti not API_KEY-seconds",
            claims_with("jti", json!("random-jti")),
            good_id.clone(),
            sign(SECRET_KEY, body.as_bytes()),
        ),
        (
            "expired",
            claims_with("exp", json!(1_000_000_000)),
            good_id.clone(),
            sign(SECRET_KEY, body.as_bytes()),
        ),
        (
            "request id not a UUID",
            good_jwt.clone(),
            "request-1".to_owned(),
            sign(SECRET_KEY, body.as_bytes()),
        ),
        (
            "request id a UUIDv1",
            good_jwt.clone(),
            "c232ab00-9414-11ec-b3c8-9f6bdeced846".to_owned(),
            sign(SECRET_KEY, body.as_bytes()),
        ),
        (
            "signature of other bytes",
            good_jwt.clone(),
            good_id.clone(),
            sign(SECRET_KEY, body.replace("10000", "20000").as_bytes()),
        ),
        (
            "signature in uppercase hex",
            good_jwt.clone(),
            good_id.clone(),
            sign(SECRET_KEY, body.as_bytes()).to_uppercase(),
        ),
    ];
    let client = reqwest::Client::new();
    for (name, token, request_id, signature) in &cases {
        let response = client
            .post(&url)
            .header("X-APPOTAPAY-AUTH", token)
            .header("X-Request-Id", request_id)
            .header("X-Signature", signature)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the mock answers");
        assert_eq!(response.status().as_u16(), 401, "{name}");
    }
    assert_eq!(
        mock.rejections().len(),
        cases.len(),
        "{:?}",
        mock.rejections()
    );
    assert!(mock.state().orders.is_empty());
    // The same request with everything right is taken.
    let response = client
        .post(&url)
        .header("X-AppotaPay-Auth", &good_jwt)
        .header("X-Request-Id", &good_id)
        .header("X-Signature", sign(SECRET_KEY, body.as_bytes()))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the mock answers");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(mock.rejections().len(), cases.len());
}

#[tokio::test]
async fn a_provider_with_the_wrong_secret_is_unauthorized_and_nothing_is_made() {
    let mock = MockAppotapay::start().await;
    let mut wrong = settings(&mock);
    wrong.secret_key = SecretString::from("not-the-secret");
    let appotapay = provider_with(wrong, Arc::new(MemoryState::default()));
    assert_eq!(
        appotapay.create(&request(&key("1"), "12000")).await,
        Err(ProviderError::Unauthorized)
    );
    assert_eq!(
        mock.rejections(),
        ["the JWT's HS256 signature is wrong".to_owned()]
    );
    assert!(mock.state().orders.is_empty());
}

// ---- Create ----

#[tokio::test]
async fn create_sends_a_signed_order_and_returns_its_vietqr() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let invoice = appotapay
        .create(&request("QABC123", "12000"))
        .await
        .expect("created");
    assert_eq!(invoice.invoice_id, "QABC123");
    let order = mock.order("QABC123").expect("the mock has the order");
    // The exact bytes of the vector above reached AppotaPay, signed as the vector says.
    assert_eq!(
        order.raw_request,
        r#"{"partner_ref_id":"QABC123","order_info":"TXN000001 12,000 VND","terminal_id":"TID-5094322012","payment_method":"QR","amount":12000}"#
    );
    assert_eq!(invoice.qr_text, order.qr_text);
    let payload = emv::validate(&invoice.qr_text).expect("valid EMVCo");
    let vietqr = emv::VietQr::from_payload(&payload).expect("a VietQR");
    assert_eq!(vietqr.amount, Some(Decimal::from(12000)));
    assert_eq!(vietqr.reference.as_deref(), Some("QABC123"));
    assert_eq!(mock.count(Route::CreateOrder), 1);
    assert!(mock.rejections().is_empty());
    assert_eq!(appotapay.name(), "appotapay");
    assert_eq!(appotapay.display_name(), "AppotaPay");
    assert_eq!(appotapay.currencies(), [Currency::Vnd]);
}

#[tokio::test]
async fn local_checks_refuse_before_anything_is_sent() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    invalid_argument_about(
        appotapay.create(&request(&key("1"), "9999")).await,
        "amount",
    );
    invalid_argument_about(
        appotapay.create(&request(&key("2"), "10000.50")).await,
        "amount",
    );
    let mut mnt = request(&key("3"), "12000");
    mnt.currency = Currency::Mnt;
    invalid_argument_about(appotapay.create(&mnt).await, "currency");
    let mut long_info = request(&key("4"), "12000");
    long_info.description = "x".repeat(101);
    invalid_argument_about(appotapay.create(&long_info).await, "order_info");
    invalid_argument_about(
        appotapay.create(&request("Q.BAD.REFERENCE", "12000")).await,
        "partner_ref_id",
    );
    invalid_argument_about(
        appotapay.create(&request(&"Q".repeat(27), "12000")).await,
        "partner_ref_id",
    );
    let mut long_terminal = settings(&mock);
    long_terminal.terminal_id = "T".repeat(21);
    let with_long_terminal = provider_with(long_terminal, Arc::new(MemoryState::default()));
    invalid_argument_about(
        with_long_terminal
            .create(&request(&key("5"), "12000"))
            .await,
        "terminal_id",
    );
    assert_eq!(mock.total(), 0, "nothing may reach AppotaPay");
    // The limits themselves are allowed: 10000 VND written as 10000.00, 100 characters.
    let mut at_limits = request(&key("6"), "10000.00");
    at_limits.description = "x".repeat(100);
    appotapay.create(&at_limits).await.expect("at the limits");
    let sent = mock.order(&key("6")).expect("sent").raw_request;
    assert!(sent.ends_with(r#""amount":10000}"#), "{sent}");
}

#[tokio::test]
async fn a_repeated_create_is_answered_from_the_journal_and_survives_a_restart() {
    let mock = MockAppotapay::start().await;
    let state = Arc::new(MemoryState::default());
    let first = provider_with(settings(&mock), state.clone());
    let made = first
        .create(&request(&key("1"), "12000"))
        .await
        .expect("made");
    let again = first
        .create(&request(&key("1"), "12000"))
        .await
        .expect("again");
    assert_eq!(made, again);
    // A restarted provider with the same state finds it too, by create and by lookup.
    let restarted = provider_with(settings(&mock), state);
    assert_eq!(
        restarted.create(&request(&key("1"), "12000")).await,
        Ok(made.clone())
    );
    assert_eq!(
        restarted.lookup(&request(&key("1"), "12000")).await,
        Ok(Some(made))
    );
    assert_eq!(mock.total(), 1, "one create reached AppotaPay");
}

#[tokio::test]
async fn a_duplicate_order_answer_is_resolved_by_looking_the_order_up() {
    let mock = MockAppotapay::start().await;
    provider(&mock)
        .create(&request(&key("1"), "12000"))
        .await
        .expect("made");
    // A provider that lost its journal sends the create again: AppotaPay answers 30.
    let forgetful = provider(&mock);
    let found = forgetful
        .create(&request(&key("1"), "12000"))
        .await
        .expect("resolved");
    assert_eq!(found.invoice_id, key("1"));
    // The status API does not repeat the QR, so this QR was never shown: none is returned,
    // and the engine fails the attempt and closes the invoice (recording any money).
    assert_eq!(found.qr_text, "");
    assert_eq!(mock.count(Route::CreateOrder), 2);
    assert_eq!(mock.count(Route::OrderStatus), 1);
    assert_eq!(mock.state().orders.len(), 1);
}

#[tokio::test]
async fn lookup_finds_nothing_for_an_order_appotapay_never_made() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    assert_eq!(
        appotapay.lookup(&request(&key("9"), "12000")).await,
        Ok(None)
    );
    assert_eq!(
        appotapay.check(&key("9")).await,
        Err(ProviderError::NotFound(format!("order {}", key("9"))))
    );
    // A key that could never have been sent is not asked about.
    assert_eq!(appotapay.lookup(&request("Q/1", "12000")).await, Ok(None));
    assert_eq!(mock.total(), 2);
}

#[tokio::test]
async fn a_lost_answer_is_a_timeout_and_the_retry_finds_the_same_order() {
    let mock = MockAppotapay::start().await;
    let mut quick = settings(&mock);
    quick.request_timeout = Duration::from_millis(300);
    let appotapay = provider_with(quick, Arc::new(MemoryState::default()));
    mock.fail_next(Route::CreateOrder, Failure::Hold);
    let first = appotapay.create(&request(&key("1"), "12000")).await;
    assert_eq!(first, Err(ProviderError::Timeout));
    assert!(first.expect_err("timeout").outcome_unknown());
    mock.wait_until_holding().await;
    // AppotaPay made the order; the retry with the same partner_ref_id does not make another.
    let retried = appotapay
        .create(&request(&key("1"), "12000"))
        .await
        .expect("resolved");
    assert_eq!(retried.invoice_id, key("1"));
    assert_eq!(mock.state().orders.len(), 1);
    let check = appotapay.check(&key("1")).await.expect("checked");
    assert_eq!(check.state, InvoiceState::Open);
    mock.release();
}

#[tokio::test]
async fn qr_content_sent_as_a_png_image_is_read_back_to_its_text() {
    let mock = MockAppotapay::start().await;
    mock.qr_as_image(true);
    let invoice = provider(&mock)
        .create(&request(&key("1"), "150000"))
        .await
        .expect("created");
    let order = mock.order(&key("1")).expect("made");
    assert_eq!(invoice.qr_text, order.qr_text);
    let vietqr = emv::VietQr::from_payload(&emv::validate(&invoice.qr_text).expect("valid"))
        .expect("VietQR");
    assert_eq!(vietqr.amount, Some(Decimal::from(150_000)));
    assert_eq!(vietqr.bin, "970432");
}

// ---- Status ----

#[tokio::test]
async fn an_order_moves_from_pending_through_processing_to_paid() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let invoice = appotapay
        .create(&request(&key("1"), "12000"))
        .await
        .expect("created");
    let pending = appotapay.check(&invoice.invoice_id).await.expect("checked");
    assert_eq!(
        (pending.state, pending.code.as_str()),
        (InvoiceState::Open, "pending")
    );
    assert!(pending.payments.is_empty());
    mock.set_status(&invoice.invoice_id, MockStatus::Processing);
    let processing = appotapay.check(&invoice.invoice_id).await.expect("checked");
    assert_eq!(
        (processing.state, processing.code.as_str()),
        (InvoiceState::Open, "processing")
    );
    mock.set_status(&invoice.invoice_id, MockStatus::Success);
    let paid = appotapay.check(&invoice.invoice_id).await.expect("checked");
    let order = mock.order(&invoice.invoice_id).expect("made");
    assert_eq!(paid.state, InvoiceState::Paid);
    assert_eq!(
        paid.payments,
        [ProviderPayment {
            payment_id: order.transaction_id,
            amount: Decimal::from(12000),
            // 16:25:30 in Vietnam (UTC+7).
            paid_at: Timestamp::parse_rfc3339("2026-01-26T09:25:30Z"),
        }]
    );
    // Nested status answers read the same.
    mock.nested_status(true);
    assert_eq!(appotapay.check(&invoice.invoice_id).await, Ok(paid));
}

#[tokio::test]
async fn error_code_is_read_as_a_string_or_an_integer() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let invoice = appotapay
        .create(&request(&key("1"), "12000"))
        .await
        .expect("created");
    mock.set_status(
        &invoice.invoice_id,
        MockStatus::Error {
            code: 33,
            message: "Giao dịch thất bại".to_owned(),
        },
    );
    let expected = InvoiceState::Failed {
        code: "33".to_owned(),
        message: "Giao dịch thất bại".to_owned(),
    };
    for as_integers in [false, true] {
        mock.codes_as_integers(as_integers);
        let check = appotapay.check(&invoice.invoice_id).await.expect("checked");
        assert_eq!(check.state, expected, "integers: {as_integers}");
        assert_eq!(check.code, "33");
        assert!(check.payments.is_empty());
    }
}

#[tokio::test]
async fn a_voided_order_is_closed_with_no_money() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let invoice = appotapay
        .create(&request(&key("1"), "12000"))
        .await
        .expect("created");
    mock.set_status(&invoice.invoice_id, MockStatus::Success);
    mock.set_status(&invoice.invoice_id, MockStatus::Void);
    let check = appotapay.check(&invoice.invoice_id).await.expect("checked");
    assert_eq!(check.state, InvoiceState::Closed);
    assert_eq!(check.code, "void");
    assert!(check.payments.is_empty());
}

// ---- Error codes ----

#[tokio::test]
async fn error_codes_map_to_the_engine_vocabulary() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let code = |http: u16, code: u32, code_as_string: bool| Failure::Code {
        http,
        code,
        code_as_string,
        message: format!("message {code}"),
    };
    let mut n = 0;
    let mut create_with = async |failure: Failure| {
        n += 1;
        mock.fail_next(Route::CreateOrder, failure);
        appotapay
            .create(&request(&key(&n.to_string()), "12000"))
            .await
    };
    for (http, number) in [(400, 1), (400, 32)] {
        for as_string in [true, false] {
            let result = create_with(code(http, number, as_string)).await;
            assert!(
                matches!(&result, Err(ProviderError::Rejected { code, message })
                    if code == INVALID_ARGUMENT && message.contains(&format!("message {number}"))),
                "{number}: {result:?}"
            );
        }
    }
    for number in [42, 93, 94, 95, 500] {
        let result = create_with(code(400, number, true)).await;
        assert!(
            matches!(&result, Err(ProviderError::Unavailable(_))),
            "{number}: {result:?}"
        );
        assert!(result.expect_err("unavailable").outcome_unknown());
    }
    assert_eq!(
        create_with(code(400, 401, false)).await,
        Err(ProviderError::Unauthorized)
    );
    assert_eq!(
        create_with(Failure::Status401).await,
        Err(ProviderError::Unauthorized)
    );
    assert_eq!(
        create_with(code(400, 33, true)).await,
        Err(ProviderError::Rejected {
            code: "33".to_owned(),
            message: "AppotaPay error 33: message 33".to_owned()
        })
    );
    assert_eq!(
        create_with(code(400, 67, false)).await,
        Err(ProviderError::Rejected {
            code: "67".to_owned(),
            message: "AppotaPay error 67: message 67".to_owned()
        })
    );
    assert!(matches!(
        create_with(Failure::Status500).await,
        Err(ProviderError::Unavailable(_))
    ));
    assert_eq!(
        create_with(Failure::Status429("7".to_owned())).await,
        Err(ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        })
    );
    let malformed = create_with(Failure::MalformedJson).await;
    assert!(
        matches!(&malformed, Err(ProviderError::Unavailable(m)) if m.contains("malformed JSON")),
        "{malformed:?}"
    );
    assert!(mock.state().orders.is_empty());
    // The same table on a status query.
    mock.fail_next(Route::OrderStatus, code(400, 94, false));
    assert!(matches!(
        appotapay.check(&key("1")).await,
        Err(ProviderError::Unavailable(_))
    ));
    assert!(mock.rejections().is_empty());
}

// ---- Cancel and refund ----

#[tokio::test]
async fn cancel_checks_the_status_because_appotapay_has_no_cancel_call() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let open = appotapay
        .create(&request(&key("1"), "12000"))
        .await
        .expect("created");
    assert_eq!(
        appotapay.cancel(&open.invoice_id).await,
        Ok(CancelOutcome::StillPayable),
        "a pending order stays payable: the engine must keep watching it"
    );
    let paid = appotapay
        .create(&request(&key("2"), "12000"))
        .await
        .expect("created");
    mock.set_status(&paid.invoice_id, MockStatus::Success);
    assert_eq!(
        appotapay.cancel(&paid.invoice_id).await,
        Ok(CancelOutcome::AlreadyPaid)
    );
    assert_eq!(
        appotapay.cancel(&key("3")).await,
        Ok(CancelOutcome::Cancelled),
        "an order AppotaPay never made cannot be paid"
    );
    mock.fail_next(Route::OrderStatus, Failure::Status500);
    assert!(matches!(
        appotapay.cancel(&open.invoice_id).await,
        Err(ProviderError::Unavailable(_))
    ));
    assert_eq!(mock.count(Route::OrderStatus), 4);
}

#[tokio::test]
async fn refunds_are_refused_before_anything_is_sent() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let refusal = appotapay
        .check_refund(Decimal::from(12000), &[])
        .expect_err("no refunds");
    assert!(refusal.contains("merchant portal"), "{refusal}");
    let refund = appotapay
        .refund(&RefundRequest {
            idempotency_key: key("R1"),
            invoice_id: key("1"),
            amount: Decimal::from(12000),
            currency: Currency::Vnd,
            reason: "returned goods".to_owned(),
            payments: vec![],
        })
        .await;
    assert!(matches!(refund, Err(ProviderError::Rejected { code, .. }) if code == "UNSUPPORTED"));
    assert_eq!(mock.total(), 0);
}

// ---- Card / account payments ----

const CARD_NUMBER: &str = "9704000000000018";

#[tokio::test]
async fn a_card_payment_shows_the_verification_url_and_never_the_card() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let card = CardDetails::card("VCB", CARD_NUMBER, "NGUYEN VAN A", "03", "07").expect("valid");
    let request = request(&key("C1"), "10000");
    let invoice = appotapay
        .create_card_payment(&request, &card)
        .await
        .expect("created");
    assert_eq!(invoice.invoice_id, format!("card:{}", key("C1")));
    assert!(
        invoice.qr_text.starts_with(VERIFICATION_URL),
        "{}",
        invoice.qr_text
    );
    assert_eq!(invoice.short_url.as_deref(), Some(invoice.qr_text.as_str()));
    // The card did reach AppotaPay, once, with the order and the notification URLs.
    let sent: serde_json::Value =
        serde_json::from_str(&mock.card(&key("C1")).expect("made").raw_request).expect("JSON");
    assert_eq!(sent["sourceOfFunds"]["card"]["cardNumber"], CARD_NUMBER);
    assert_eq!(sent["transaction"]["amount"], 10000);
    assert_eq!(sent["transaction"]["paymentMethod"], "ATM");
    assert_eq!(
        sent["partnerReference"]["notificationConfig"]["notifyUrl"],
        "https://pos.example.vn/appotapay/ipn"
    );
    // Repeated, it is the same payment, not a second charge.
    assert_eq!(
        appotapay.create_card_payment(&request, &card).await,
        Ok(invoice.clone())
    );
    assert_eq!(mock.count(Route::CardPayment), 1);
    assert_eq!(
        appotapay.lookup_card_payment(&request).await,
        Ok(Some(invoice.clone()))
    );
    // Without the journal, AppotaPay knows the payment but not its verification URL.
    let forgetful = provider(&mock);
    let found = forgetful
        .lookup_card_payment(&request)
        .await
        .expect("looked up")
        .expect("found");
    assert_eq!(
        (found.invoice_id.as_str(), found.qr_text.as_str()),
        (invoice.invoice_id.as_str(), "")
    );
    assert_eq!(
        forgetful
            .lookup_card_payment(&self::request(&key("C9"), "10000"))
            .await,
        Ok(None)
    );

    // Polled until final; the merchant's amount is the order's, not the customer's total.
    let pending = appotapay.check(&invoice.invoice_id).await.expect("checked");
    assert_eq!(pending.state, InvoiceState::Open);
    mock.set_card_status(&key("C1"), MockStatus::Success);
    let paid = appotapay.check(&invoice.invoice_id).await.expect("checked");
    assert_eq!(paid.state, InvoiceState::Paid);
    assert_eq!(paid.payments[0].amount, Decimal::from(10000));
    assert_ne!(paid.payments[0].amount, Decimal::from(10000 + CARD_FEE));
    assert_eq!(
        appotapay.cancel(&invoice.invoice_id).await,
        Ok(CancelOutcome::AlreadyPaid)
    );

    // An error that echoes the card number does not carry it on.
    mock.fail_next(
        Route::CardPayment,
        Failure::Code {
            http: 400,
            code: 1,
            code_as_string: false,
            message: format!("card {CARD_NUMBER} is invalid"),
        },
    );
    let error = appotapay
        .create_card_payment(&self::request(&key("C2"), "10000"), &card)
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, ProviderError::Rejected { code, .. } if code == INVALID_ARGUMENT),
        "{error:?}"
    );

    let debug = format!("{card:?} {card} {error:?} {error} {appotapay:?}");
    let logged = logs.text();
    assert!(
        logged.contains("AppotaPay card payment created"),
        "{logged}"
    );
    assert!(
        logged.contains("0018"),
        "the last 4 digits are logged: {logged}"
    );
    for (name, text) in [("debug and errors", &debug), ("logs", &logged)] {
        for secret in [
            CARD_NUMBER,
            "NGUYEN VAN A",
            SECRET_KEY,
            API_KEY,
            // Every JWT starts with its header, base64url.
            "eyJ0eXAiOiJKV1Qi",
        ] {
            assert!(!text.contains(secret), "{name} hold {secret:?}:\n{text}");
        }
    }
}

#[tokio::test]
async fn card_error_codes_are_mapped() {
    let mock = MockAppotapay::start().await;
    let appotapay = provider(&mock);
    let account =
        CardDetails::account("VCB", "0011004455667", "TRAN THI B", "079123456789").expect("valid");
    let mut n = 0;
    let mut fail_with = async |code: u32| {
        n += 1;
        mock.fail_next(
            Route::CardPayment,
            Failure::Code {
                http: 400,
                code,
                code_as_string: false,
                message: String::new(),
            },
        );
        appotapay
            .create_card_payment(&request(&key(&format!("A{n}")), "10000"), &account)
            .await
    };
    for number in [1, 32] {
        assert!(
            matches!(fail_with(number).await, Err(ProviderError::Rejected { code, .. }) if code == INVALID_ARGUMENT),
            "{number}"
        );
    }
    let rejected = |code: &str, words: &str| {
        let code = code.to_owned();
        let words = words.to_owned();
        move |result: Result<_, ProviderError>| match result {
            Err(ProviderError::Rejected { code: got, message }) => {
                assert_eq!(got, code);
                assert!(message.contains(&words), "{message}");
            }
            other => panic!("expected {code}, got {other:?}"),
        }
    };
    rejected("30", "used before")(fail_with(30).await);
    rejected("90", "X-Account-Ref-ID")(fail_with(90).await);
    rejected("140", "payment method")(fail_with(140).await);
    rejected("141", "bank code")(fail_with(141).await);
    assert!(matches!(
        fail_with(500).await,
        Err(ProviderError::Unavailable(_))
    ));
    // A real duplicate from the mock maps the same way.
    let request = request(&key("A9"), "10000");
    appotapay
        .create_card_payment(&request, &account)
        .await
        .expect("made");
    let forgetful = provider(&mock);
    rejected("30", "used before")(forgetful.create_card_payment(&request, &account).await);
    assert!(mock.rejections().is_empty());
}

#[tokio::test]
async fn card_payments_need_the_notification_urls_and_a_vnd_amount() {
    let mock = MockAppotapay::start().await;
    let mut without = settings(&mock);
    without.card_notify_url = None;
    let appotapay = provider_with(without, Arc::new(MemoryState::default()));
    let card = CardDetails::card("VCB", CARD_NUMBER, "NGUYEN VAN A", "03", "07").expect("valid");
    assert!(matches!(
        appotapay.create_card_payment(&request(&key("1"), "10000"), &card).await,
        Err(ProviderError::Rejected { code, .. }) if code == "UNSUPPORTED"
    ));
    let appotapay = provider(&mock);
    invalid_argument_about(
        appotapay
            .create_card_payment(&request(&key("2"), "10000.5"), &card)
            .await,
        "amount",
    );
    assert_eq!(mock.total(), 0);
}

// ---- IPN ----

/// `data` and `signature` computed with Python (see the vectors above): base64 of
/// `{"partner_ref_id":"QABC123","transaction_id":"01KFWSXKTKA645GHJMM27DWEBT","status":"success",
/// "amount":12000,"error_code":"00","error_message":"Giao dich thanh cong"}`.
const IPN_DATA: &str = "eyJwYXJ0bmVyX3JlZl9pZCI6IlFBQkMxMjMiLCJ0cmFuc2FjdGlvbl9pZCI6IjAxS0ZXU1hLVEtBNjQ1R0hKTU0yN0RXRUJUIiwic3RhdHVzIjoic3VjY2VzcyIsImFtb3VudCI6MTIwMDAsImVycm9yX2NvZGUiOiIwMCIsImVycm9yX21lc3NhZ2UiOiJHaWFvIGRpY2ggdGhhbmggY29uZyJ9";
const IPN_SIGNATURE: &str = "2083f5d1cdc3f5c7a23d0f3722d0755b3d8904eda9b9a3a35e5cdd950d240eb1";

#[test]
fn a_good_ipn_is_verified_and_read() {
    let secret = SecretString::from(SECRET_KEY);
    let payload = verify_ipn(&secret, IPN_DATA, IPN_SIGNATURE).expect("verified");
    assert_eq!(payload.invoice_id, "QABC123");
    assert_eq!(
        payload.transaction_id.as_deref(),
        Some("01KFWSXKTKA645GHJMM27DWEBT")
    );
    assert_eq!(payload.status, OrderStatus::Success);
    assert_eq!(payload.amount, Some(Decimal::from(12000)));
    assert_eq!(payload.error_code.as_deref(), Some("00"));
    assert_eq!(sign(SECRET_KEY, IPN_DATA.as_bytes()), IPN_SIGNATURE);
}

#[test]
fn a_bad_or_tampered_ipn_is_a_signature_mismatch() {
    let secret = SecretString::from(SECRET_KEY);
    let flipped = format!("1{}", &IPN_SIGNATURE[1..]);
    assert_eq!(
        verify_ipn(&secret, IPN_DATA, &flipped),
        Err(IpnError::SignatureMismatch)
    );
    // One character of the data changed (still valid base64 and JSON would be possible):
    // the signature no longer matches, and nothing is decoded.
    let tampered = IPN_DATA.replacen("MTIwMDAs", "OTAwMDAs", 1);
    assert_ne!(tampered, IPN_DATA);
    assert_eq!(
        verify_ipn(&secret, &tampered, IPN_SIGNATURE),
        Err(IpnError::SignatureMismatch)
    );
    assert_eq!(
        verify_ipn(
            &SecretString::from("another-secret"),
            IPN_DATA,
            IPN_SIGNATURE
        ),
        Err(IpnError::SignatureMismatch)
    );
    for signature in ["", "not hex", &IPN_SIGNATURE[..32]] {
        assert_eq!(
            verify_ipn(&secret, IPN_DATA, signature),
            Err(IpnError::SignatureMismatch),
            "{signature:?}"
        );
    }
    // A correctly signed IPN that is not one is malformed, not trusted.
    let data = "bm90IGpzb24";
    assert!(matches!(
        verify_ipn(&secret, data, &sign(SECRET_KEY, data.as_bytes())),
        Err(IpnError::Malformed(_))
    ));
}

/// The till's source of the test requests.
fn qrpayd_source() -> qrpayd::domain::Source {
    qrpayd::domain::Source {
        kind: "Order".to_owned(),
        id: "order-1".to_owned(),
        uid: None,
    }
}
