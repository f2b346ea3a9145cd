//! A mock AppotaPay for the tests: real HTTP on 127.0.0.1 at a random port, serving the POS
//! gateway (seed 003: order create and status) and the payment gateway's card / account
//! payments (seed 004: create-payment, and the transaction query).
//!
//! It checks every request the way provider-notes.md describes the real service, with its own
//! HMAC code (the `hmac` crate directly, not qrpayd's): the `X-APPOTAPAY-AUTH` JWT's header,
//! HS256 signature and claims (`iss`, `api_key`, `jti` = `API_KEY-seconds`, `exp` in the
//! future), a UUIDv4 `X-Request-Id`, and on a body the lowercase hex `X-Signature` of the exact
//! bytes received. A request wrong in any of these is answered 401 and the reason recorded.
//!
//! A control handle moves orders pending → processing → success / error / void, sends
//! `error_code` as strings or integers, answers `qr_content` as a base64 PNG of the VietQR,
//! injects failures (any error code, 401, 429, 500, malformed JSON, a held answer), and
//! reports every request, so tests assert on what reached AppotaPay instead of sleeping.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use qrpayd::emv::{VietQr, VietQrService};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::watch;

use crate::mock_server::{Server, loopback_listener};

/// The credentials the mock accepts.
pub const PARTNER_CODE: &str = "QRPAYD_TEST";
pub const API_KEY: &str = "qrpayd-test-api-key";
pub const SECRET_KEY: &str = "qrpayd-test-secret-0123456789";
/// The AppotaPay terminal id the tests configure.
pub const TERMINAL_ID: &str = "TID-5094322012";
/// Every card payment's verification URL starts with this.
pub const VERIFICATION_URL: &str = "https://ibanking.appotapay.test/domestic-card/confirm-otp";
/// The fee the mock adds to a card payment's `amount` (its `orderAmount` is the order's).
pub const CARD_FEE: i64 = 1327;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    CreateOrder,
    OrderStatus,
    CardPayment,
    CardStatus,
    Unknown,
}

/// An answer to give instead of the real one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An AppotaPay error body with this HTTP status and code (sent as a string when
    /// `code_as_string`), in the route's own shape.
    Code {
        http: u16,
        code: u32,
        code_as_string: bool,
        message: String,
    },
    /// HTTP 401 with `error_code` 401.
    Status401,
    /// HTTP 429 with this `Retry-After`.
    Status429(String),
    /// HTTP 500 with an HTML body.
    Status500,
    /// HTTP 200 with a body cut short.
    MalformedJson,
    /// Does the work, then answers only after [`MockAppotapay::release`].
    Hold,
}

/// One request the mock saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub route: Route,
    pub status: u16,
    /// Why the credentials check refused it, if it did.
    pub rejected: Option<String>,
}

/// An order (POS) or a card payment the mock made.
#[derive(Debug, Clone)]
pub struct MockOrder {
    /// `partner_ref_id`, or the card payment's `partnerReference.order.id`.
    pub reference: String,
    pub transaction_id: String,
    pub amount: i64,
    /// `pending`, `processing`, `success`, `error`, `void`.
    pub status: String,
    pub error_code: u32,
    pub error_message: String,
    pub qr_text: String,
    pub paid_at: String,
    /// The request body exactly as received.
    pub raw_request: String,
}

#[derive(Default)]
pub struct State {
    pub orders: Vec<MockOrder>,
    pub cards: Vec<MockOrder>,
    failures: VecDeque<(Route, Failure)>,
    qr_as_image: bool,
    codes_as_integers: bool,
    nested_status: bool,
    released: bool,
    pub holding: usize,
    pub seen: Vec<Seen>,
    next: u64,
}

impl State {
    fn order_mut(&mut self, reference: &str) -> Option<&mut MockOrder> {
        self.orders.iter_mut().find(|o| o.reference == reference)
    }

    fn card_mut(&mut self, reference: &str) -> Option<&mut MockOrder> {
        self.cards.iter_mut().find(|o| o.reference == reference)
    }
}

struct Shared {
    state: Mutex<State>,
    version: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

/// A status to move an order or a card payment to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MockStatus {
    Processing,
    Success,
    Error { code: u32, message: String },
    Void,
}

/// A running mock; it stops when dropped.
pub struct MockAppotapay {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    shared: Arc<Shared>,
    _server: Server,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl MockAppotapay {
    /// Starts a mock on a random port of 127.0.0.1.
    pub async fn start() -> MockAppotapay {
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            version,
        });
        let listener = loopback_listener().await;
        let address = listener.local_addr().expect("mock address");
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = Server::start(listener, router);
        MockAppotapay {
            base_url: format!("http://{address}"),
            shared,
            _server: server,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// How many requests reached the mock.
    pub fn total(&self) -> usize {
        self.state().seen.len()
    }

    /// How many requests reached `route`.
    pub fn count(&self, route: Route) -> usize {
        self.state()
            .seen
            .iter()
            .filter(|s| s.route == route)
            .count()
    }

    /// Why requests were refused by the credentials check, in order.
    pub fn rejections(&self) -> Vec<String> {
        self.state()
            .seen
            .iter()
            .filter_map(|s| s.rejected.clone())
            .collect()
    }

    /// The POS order with this `partner_ref_id`.
    pub fn order(&self, reference: &str) -> Option<MockOrder> {
        self.state()
            .orders
            .iter()
            .find(|o| o.reference == reference)
            .cloned()
    }

    /// The card payment with this order id.
    pub fn card(&self, reference: &str) -> Option<MockOrder> {
        self.state()
            .cards
            .iter()
            .find(|o| o.reference == reference)
            .cloned()
    }

    /// The next request to `route` (`Route::Unknown`: to any route) fails this way.
    pub fn fail_next(&self, route: Route, failure: Failure) {
        self.state().failures.push_back((route, failure));
    }

    /// Every failure still queued by [`MockAppotapay::fail_next`] is dropped.
    pub fn heal(&self) {
        self.state().failures.clear();
    }

    /// Answers `qr_content` as a base64 PNG of the VietQR instead of its text.
    pub fn qr_as_image(&self, on: bool) {
        self.state().qr_as_image = on;
    }

    /// Sends `error_code` as JSON integers (as documented) instead of strings (as in examples).
    pub fn codes_as_integers(&self, on: bool) {
        self.state().codes_as_integers = on;
    }

    /// Nests the status answer's fields under `transaction` instead of sending them flat.
    pub fn nested_status(&self, on: bool) {
        self.state().nested_status = on;
    }

    /// Lets held requests answer.
    pub fn release(&self) {
        self.state().released = true;
        self.shared.changed();
    }

    /// Waits until at least `n` requests for `route` have arrived (an event, not a sleep).
    pub async fn wait_for_count(&self, route: Route, n: usize) {
        let mut changes = self.shared.version.subscribe();
        while self.count(route) < n {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until a request is being held (an event, not a sleep).
    pub async fn wait_until_holding(&self) {
        let mut changes = self.shared.version.subscribe();
        while self.state().holding == 0 {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Moves a POS order.
    pub fn set_status(&self, reference: &str, status: MockStatus) {
        {
            let mut state = self.state();
            let order = state.order_mut(reference).expect("a known order");
            apply(order, status);
        }
        self.shared.changed();
    }

    /// Moves a card payment.
    pub fn set_card_status(&self, reference: &str, status: MockStatus) {
        {
            let mut state = self.state();
            let order = state.card_mut(reference).expect("a known card payment");
            apply(order, status);
        }
        self.shared.changed();
    }
}

fn apply(order: &mut MockOrder, status: MockStatus) {
    let (word, code, message) = match status {
        MockStatus::Processing => ("processing", 34, "Giao dịch đang xử lý".to_owned()),
        MockStatus::Success => {
            order.paid_at = "2026-01-26T16:25:30".to_owned();
            ("success", 0, "Giao dịch thành công".to_owned())
        }
        MockStatus::Error { code, message } => ("error", code, message),
        MockStatus::Void => ("void", 31, "Giao dịch đã hoàn tiền".to_owned()),
    };
    order.status = word.to_owned();
    order.error_code = code;
    order.error_message = message;
}

/// HMAC-SHA256 keyed with `secret`.
fn mac(secret: &str, data: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(data);
    mac
}

/// Lowercase hex HMAC-SHA256, as `X-Signature` and IPN signatures are.
pub fn sign(secret: &str, data: &[u8]) -> String {
    mac(secret, data)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A JWT with exactly this header and these claims, HS256-signed with `secret`: for tests that
/// send requests which must be refused.
pub fn make_jwt(header_json: &str, claims: &Value, secret: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, input.as_bytes()).finalize().into_bytes());
    format!("{input}.{signature}")
}

/// The header AppotaPay documents.
pub const GOOD_JWT_HEADER: &str = r#"{"typ":"JWT","alg":"HS256","cty":"appotapay-api;v=1"}"#;

/// Claims that the mock accepts now.
pub fn good_claims() -> Value {
    let now = unix_now();
    json!({"iss": PARTNER_CODE, "jti": format!("{API_KEY}-{now}"), "api_key": API_KEY, "exp": now + 300})
}

/// Why the credentials of a request are wrong, if they are.
fn check_credentials(method: &Method, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let token = header_text("x-appotapay-auth").ok_or("no X-APPOTAPAY-AUTH")?;
    let parts: Vec<&str> = token.split('.').collect();
    let [head, claims, signature] = parts.as_slice() else {
        return Err("the JWT does not have three parts".to_owned());
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| format!("the JWT {what} is not base64url without padding"))
    };
    let head_json: Value = serde_json::from_slice(&decode(head, "header")?)
        .map_err(|_| "the JWT header is not JSON")?;
    let expected: Value = serde_json::from_str(GOOD_JWT_HEADER).expect("literal");
    if head_json != expected {
        return Err(format!("wrong JWT header {head_json}"));
    }
    let signature = decode(signature, "signature")?;
    mac(SECRET_KEY, format!("{head}.{claims}").as_bytes())
        .verify_slice(&signature)
        .map_err(|_| "the JWT's HS256 signature is wrong")?;
    let claims: Value = serde_json::from_slice(&decode(claims, "claims")?)
        .map_err(|_| "the JWT claims are not JSON")?;
    if claims["iss"] != PARTNER_CODE {
        return Err("the JWT iss is not the partner code".to_owned());
    }
    if claims["api_key"] != API_KEY {
        return Err("the JWT api_key is wrong".to_owned());
    }
    let now = unix_now();
    let jti_seconds = claims["jti"]
        .as_str()
        .and_then(|jti| jti.strip_prefix(&format!("{API_KEY}-")))
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("the JWT jti is not API_KEY-seconds")?;
    if jti_seconds > now + 5 || jti_seconds + 600 < now {
        return Err("the JWT jti's time is not now".to_owned());
    }
    let exp = claims["exp"]
        .as_u64()
        .ok_or("the JWT exp is not an integer")?;
    if exp <= now {
        return Err("the JWT has expired".to_owned());
    }
    let request_id = header_text("x-request-id").ok_or("no X-Request-Id")?;
    let uuid = uuid::Uuid::parse_str(request_id).map_err(|_| "X-Request-Id is not a UUID")?;
    if uuid.get_version() != Some(uuid::Version::Random)
        || uuid.get_variant() != uuid::Variant::RFC4122
    {
        return Err("X-Request-Id is not a UUIDv4".to_owned());
    }
    if *method == Method::POST {
        let signature = header_text("x-signature").ok_or("no X-Signature on a body")?;
        if signature != sign(SECRET_KEY, body) {
            return Err("X-Signature is not the lowercase hex HMAC of the body".to_owned());
        }
        if header_text("content-type") != Some("application/json") {
            return Err("the body is not declared application/json".to_owned());
        }
    }
    Ok(())
}

fn route_of(method: &Method, path: &str) -> Route {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["api", "v2", "partner", "orders", "payment", "create"]) => Route::CreateOrder,
        ("GET", ["api", "v2", "partner", "orders", "transaction", _]) => Route::OrderStatus,
        ("POST", ["api", "v2", "orders", "create-payment"]) => Route::CardPayment,
        ("GET", ["api", "v2", "orders", "transaction"]) => Route::CardStatus,
        _ => Route::Unknown,
    }
}

fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An error body in the route's shape: seed 003's for POS, seed 004's for card payments.
fn error_body(route: Route, http: u16, code: Value, message: &str) -> Response {
    let body = match route {
        Route::CardPayment | Route::CardStatus => json!({"errorCode": code, "message": message}),
        _ => json!({"error_code": code, "error_message": message}),
    };
    json_response(http, body)
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = route_of(&method, uri.path());
    let (response, rejected) = match check_credentials(&method, &headers, &body) {
        Err(reason) => (
            error_body(route, 401, json!(401), "authentication failed"),
            Some(reason),
        ),
        Ok(()) => (respond(&shared, route, &uri, &body).await, None),
    };
    shared.lock().seen.push(Seen {
        route,
        status: response.status().as_u16(),
        rejected,
    });
    shared.changed();
    response
}

async fn respond(shared: &Shared, route: Route, uri: &Uri, body: &[u8]) -> Response {
    let failure = {
        let mut state = shared.lock();
        let index = state
            .failures
            .iter()
            .position(|(r, _)| *r == route || *r == Route::Unknown);
        index.and_then(|i| state.failures.remove(i)).map(|(_, f)| f)
    };
    match failure {
        Some(Failure::Code {
            http,
            code,
            code_as_string,
            message,
        }) => {
            let code = if code_as_string {
                json!(code.to_string())
            } else {
                json!(code)
            };
            return error_body(route, http, code, &message);
        }
        Some(Failure::Status401) => return error_body(route, 401, json!(401), "unauthorized"),
        Some(Failure::Status429(after)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, after)],
                "slow down",
            )
                .into_response();
        }
        Some(Failure::Status500) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html")],
                "<html>upstream error</html>",
            )
                .into_response();
        }
        Some(Failure::MalformedJson) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"transaction": {"status": "pen"#,
            )
                .into_response();
        }
        Some(Failure::Hold) => {
            let response = work(shared, route, uri, body);
            let mut changes = shared.version.subscribe();
            shared.lock().holding += 1;
            shared.changed();
            while !shared.lock().released {
                if changes.changed().await.is_err() {
                    break;
                }
            }
            shared.lock().holding -= 1;
            return response;
        }
        None => {}
    }
    work(shared, route, uri, body)
}

/// The real answer.
fn work(shared: &Shared, route: Route, uri: &Uri, body: &[u8]) -> Response {
    let mut state = shared.lock();
    match route {
        Route::CreateOrder => create_order(&mut state, body),
        Route::OrderStatus => {
            let reference = uri.path().rsplit('/').next().unwrap_or("").to_owned();
            order_status(&state, &reference)
        }
        Route::CardPayment => create_card(&mut state, body),
        Route::CardStatus => {
            let query = uri.query().unwrap_or("");
            let param = |name: &str| {
                query
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_owned())
            };
            if param("type").as_deref() != Some("PARTNER_ORDER_ID") {
                return error_body(route, 400, json!(1), "type must be PARTNER_ORDER_ID");
            }
            card_status(&state, &param("referenceId").unwrap_or_default())
        }
        Route::Unknown => error_body(route, 404, json!(404), "no such endpoint"),
    }
}

fn invalid(route: Route, code: u32, message: &str) -> Response {
    error_body(route, 400, json!(code.to_string()), message)
}

fn create_order(state: &mut State, body: &[u8]) -> Response {
    let route = Route::CreateOrder;
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return invalid(route, 1, "body is not JSON");
    };
    let reference = request["partner_ref_id"].as_str().unwrap_or("").to_owned();
    let reference_ok = !reference.is_empty()
        && reference.len() <= 26
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let info_ok = request["order_info"]
        .as_str()
        .is_some_and(|s| !s.is_empty() && s.chars().count() <= 100);
    let terminal_ok = request["terminal_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty() && s.chars().count() <= 20);
    let method_ok = matches!(request["payment_method"].as_str(), Some("QR" | "POS"));
    if !(reference_ok && info_ok && terminal_ok && method_ok) {
        return invalid(route, 1, "Invalid params");
    }
    // Amounts must be JSON integers: a string or a number with a fraction is refused.
    let Some(amount) = request["amount"].as_i64().filter(|a| *a >= 10_000) else {
        return invalid(route, 32, "Invalid amount");
    };
    if state.orders.iter().any(|o| o.reference == reference) {
        return invalid(route, 30, "Duplicate order");
    }
    state.next += 1;
    let n = state.next;
    let mut vietqr = VietQr::new("970432", format!("MQQ{n:07}"), VietQrService::ToAccount);
    vietqr.amount = Some(Decimal::from(amount));
    vietqr.mcc = Some("5499".to_owned());
    vietqr.merchant_name = Some("QRPAYMENT UAT".to_owned());
    vietqr.city = Some("HO CHI MINH".to_owned());
    vietqr.reference = Some(reference.clone());
    let qr_text = vietqr.encode().expect("a valid VietQR");
    let order = MockOrder {
        reference: reference.clone(),
        transaction_id: format!("01MOCK{n:020}"),
        amount,
        status: "pending".to_owned(),
        error_code: 34,
        error_message: "Giao dịch đang chờ xử lý".to_owned(),
        qr_text: qr_text.clone(),
        paid_at: String::new(),
        raw_request: String::from_utf8_lossy(body).into_owned(),
    };
    let qr_content = if state.qr_as_image {
        png_base64(&qr_text)
    } else {
        qr_text
    };
    let answer = json!({
        "transaction": {
            "transaction_id": order.transaction_id,
            "partner_ref_id": reference,
            "status": "pending",
            "amount": amount,
            "error_code": code_value(state, 34),
            "error_message": order.error_message,
            "payment_method": "QR",
            "created_at": "2026-01-26T16:24:49",
            "paid_at": ""
        },
        "payment_info": {"qr_content": qr_content, "qr_url": "", "qr_type": "VIETQR"}
    });
    state.orders.push(order);
    json_response(200, answer)
}

fn code_value(state: &State, code: u32) -> Value {
    if state.codes_as_integers {
        json!(code)
    } else {
        json!(format!("{code:02}"))
    }
}

fn order_status(state: &State, reference: &str) -> Response {
    let Some(order) = state.orders.iter().find(|o| o.reference == reference) else {
        return error_body(
            Route::OrderStatus,
            404,
            json!("36"),
            "Transaction not found",
        );
    };
    let fields = json!({
        "order_id": order.reference,
        "transaction_id": order.transaction_id,
        "payment_method": "QR",
        "amount": order.amount,
        "status": order.status,
        "error_code": code_value(state, order.error_code),
        "error_message": order.error_message,
        "created_at": "2026-01-26T16:24:49",
        "paid_at": order.paid_at,
        "is_sett": false,
        "updated_at": "2026-01-26T16:25:30"
    });
    let body = if state.nested_status {
        json!({ "transaction": fields })
    } else {
        fields
    };
    json_response(200, body)
}

/// A PNG of the QR of `text`, base64: what seed 003 documents `qr_content` to be.
pub fn png_base64(text: &str) -> String {
    let image = qrpayd::display::qr_image(text, 4).expect("renders the QR");
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encodes a PNG");
    STANDARD.encode(png)
}

fn create_card(state: &mut State, body: &[u8]) -> Response {
    let route = Route::CardPayment;
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return invalid(route, 1, "body is not JSON");
    };
    let transaction = &request["transaction"];
    let source = &request["sourceOfFunds"];
    let reference = request["partnerReference"]["order"]["id"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let notify = &request["partnerReference"]["notificationConfig"];
    let source_ok = match source["type"].as_str() {
        Some("card") => ["cardNumber", "cardHolderName", "cardMonth", "cardYear"]
            .iter()
            .all(|k| source["card"][k].as_str().is_some_and(|v| !v.is_empty())),
        Some("account") => ["accountNumber", "accountHolderName", "identificationNumber"]
            .iter()
            .all(|k| source["account"][k].as_str().is_some_and(|v| !v.is_empty())),
        _ => false,
    };
    let ok = source_ok
        && !reference.is_empty()
        && reference.len() <= 50
        && transaction["currency"] == "VND"
        && transaction["paymentMethod"] == "ATM"
        && transaction["action"] == "PAY"
        && transaction["bankCode"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
        && notify["notifyUrl"].as_str().is_some_and(|s| !s.is_empty())
        && notify["redirectUrl"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
    if !ok {
        return error_body(route, 400, json!(1), "Invalid Params");
    }
    let Some(amount) = transaction["amount"].as_i64().filter(|a| *a > 0) else {
        return error_body(route, 400, json!(32), "Invalid amount");
    };
    if state.cards.iter().any(|o| o.reference == reference) {
        return error_body(route, 400, json!(30), "Duplicate orderId, please try again");
    }
    state.next += 1;
    let n = state.next;
    let order = MockOrder {
        reference: reference.clone(),
        transaction_id: format!("AP{n:08}"),
        amount,
        status: "pending".to_owned(),
        error_code: 35,
        error_message: "Giao dịch đang chờ xử lý".to_owned(),
        qr_text: String::new(),
        paid_at: String::new(),
        raw_request: String::from_utf8_lossy(body).into_owned(),
    };
    let answer = json!({
        "transaction": card_transaction(&order),
        "authentication": {
            "verificationUrl": format!("{VERIFICATION_URL}?tran=MOCK{n}&sign=abc123"),
            "verificationMethod": "OTP",
            "verificationStatus": "AUTHENTICATE_REQUIRED"
        }
    });
    state.cards.push(order);
    json_response(200, answer)
}

fn card_transaction(order: &MockOrder) -> Value {
    json!({
        "transactionId": order.transaction_id,
        "status": order.status,
        "errorCode": order.error_code,
        "errorMessage": order.error_message,
        "partnerCode": PARTNER_CODE,
        "amount": order.amount + CARD_FEE,
        "orderAmount": order.amount,
        "fee": {"customer_fee": CARD_FEE.to_string()},
        "currency": "VND",
        "bankCode": "VCB",
        "paymentMethod": "ATM",
        "action": "PAY",
        "createdAt": "2023-11-13 15:23:40.000",
        "updatedAt": "2023-11-13 15:25:02.000"
    })
}

fn card_status(state: &State, reference: &str) -> Response {
    let Some(order) = state.cards.iter().find(|o| o.reference == reference) else {
        return error_body(Route::CardStatus, 404, json!(36), "Transaction not found");
    };
    json_response(
        200,
        json!({
            "transaction": card_transaction(order),
            "partnerReference": {"order": {"id": order.reference, "info": "", "extraData": ""}}
        }),
    )
}
