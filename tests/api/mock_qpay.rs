//! A mock QPay v2 merchant API for the tests: real HTTP on 127.0.0.1 at a random port.
//!
//! It behaves like the service as provider-notes.md describes it: HTTP Basic auth on
//! `/v2/auth/token`, bearer tokens everywhere else (an unknown or expired token is a 401),
//! tokens whose `expires_in` is an absolute Unix timestamp, invoices remembered by
//! `sender_invoice_no` (a repeat is refused as a duplicate), payment checks in pages, the two
//! error body shapes. A control handle pays invoices (fully, partly, late, twice under one id),
//! changes a payment's amount, injects failures (401, 429 with `Retry-After`, 500, malformed
//! JSON, a slow or held answer), and reports every request it saw with its time, so tests
//! assert on what reached QPay rather than sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use qrpayd::emv;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::mock_server::{Server, loopback_listener, wait_until};

use crate::harness::EVENT_TIMEOUT;

/// The credentials the mock accepts.
pub const CLIENT_ID: &str = "qrpayd-test-client";
pub const CLIENT_SECRET: &str = "MOCK-CLIENT-SECRET-q7Zr2";
/// Every token the mock issues starts with one of these, so tests can look for them.
pub const ACCESS_PREFIX: &str = "MOCK-ACCESS-TOKEN-";
pub const REFRESH_PREFIX: &str = "MOCK-REFRESH-TOKEN-";
/// The invoice code the tests configure.
pub const INVOICE_CODE: &str = "QRPAYD_TEST_INVOICE";

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Token,
    Refresh,
    CreateInvoice,
    GetInvoice,
    CancelInvoice,
    Check,
    GetPayment,
    VoidPayment,
    RefundPayment,
    ListPayments,
    Unknown,
}

/// A failure to answer with instead of the real answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Status401,
    /// 429 with this `Retry-After` value.
    Status429(String),
    Status500,
    /// HTTP 200 with a body that is not JSON.
    MalformedJson,
    /// Does the work, then answers this much later.
    Slow(Duration),
    /// Waits until [`MockQpay::release`], then does the work and answers.
    Hold,
    /// 404 with this QPay error code (`INVOICE_NOTFOUND`, `PAYMENT_NOTFOUND`): the object is
    /// gone.
    NotFound(&'static str),
}

/// One request the mock saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub route: Route,
    pub status: u16,
    /// The `offset.page_number` of a check or a listing.
    pub page: Option<u64>,
}

/// A payment of an invoice.
#[derive(Debug, Clone)]
pub struct MockPayment {
    pub payment_id: String,
    pub amount: Decimal,
    /// `PAID`, `REFUNDED`, `CANCELED`.
    pub status: String,
    /// RFC 3339 UTC.
    pub date: String,
}

/// An invoice the mock made.
#[derive(Debug, Clone)]
pub struct MockInvoice {
    pub invoice_id: String,
    pub sender_invoice_no: String,
    pub amount: Decimal,
    pub qr_text: String,
    pub cancelled: bool,
    pub payments: Vec<MockPayment>,
    /// The body QPay received, as JSON.
    pub request: Value,
    /// The raw text of the request's `amount` (to see how it was encoded).
    pub raw_amount: String,
}

#[derive(Default)]
pub struct State {
    access: HashMap<String, f64>,
    refresh: HashMap<String, f64>,
    token_lifetime: Option<Duration>,
    next: u64,
    pub invoices: Vec<MockInvoice>,
    failures: VecDeque<(Route, Failure)>,
    corrupt_next_qr: bool,
    next_qr_amount: Option<Decimal>,
    pay_on_cancel: HashMap<String, Decimal>,
    void_settled: bool,
    duplicate_names_invoice: bool,
    released: bool,
    /// Invoices QPay no longer has: every request about one is answered `INVOICE_NOTFOUND`.
    pub forgotten: std::collections::HashSet<String>,
    /// Requests being held right now.
    pub holding: usize,
    pub seen: Vec<Seen>,
}

impl State {
    /// How many requests reached `route`.
    pub fn count(&self, route: Route) -> usize {
        self.seen.iter().filter(|s| s.route == route).count()
    }

    /// How many requests to `route` were answered `status`.
    pub fn count_status(&self, route: Route, status: u16) -> usize {
        self.seen
            .iter()
            .filter(|s| s.route == route && s.status == status)
            .count()
    }

    /// The invoice with this id.
    pub fn invoice(&self, invoice_id: &str) -> Option<&MockInvoice> {
        self.invoices.iter().find(|i| i.invoice_id == invoice_id)
    }

    fn invoice_mut(&mut self, invoice_id: &str) -> Option<&mut MockInvoice> {
        self.invoices
            .iter_mut()
            .find(|i| i.invoice_id == invoice_id)
    }

    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn add_payment(
        &mut self,
        invoice_id: &str,
        payment_id: Option<String>,
        amount: Decimal,
        date: String,
    ) -> String {
        let n = self.next_id();
        let payment_id = payment_id.unwrap_or_else(|| format!("{}", 593_744_473_409_000 + n));
        if let Some(invoice) = self.invoice_mut(invoice_id) {
            invoice.payments.push(MockPayment {
                payment_id: payment_id.clone(),
                amount,
                status: "PAID".to_owned(),
                date,
            });
        }
        payment_id
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

/// A running mock; it stops when dropped.
pub struct MockQpay {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    shared: Arc<Shared>,
    _server: Server,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn rfc3339(at: SystemTime) -> String {
    let at: time::OffsetDateTime = at.into();
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl MockQpay {
    /// Starts a mock on a random port of 127.0.0.1.
    pub async fn start() -> MockQpay {
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
        MockQpay {
            base_url: format!("http://{address}"),
            shared,
            _server: server,
        }
    }

    /// Reads the mock's state.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// How many requests reached `route`.
    pub fn count(&self, route: Route) -> usize {
        self.state().count(route)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// The invoices made so far.
    pub fn invoices(&self) -> Vec<MockInvoice> {
        self.state().invoices.clone()
    }

    /// Waits until `done` holds for the mock's state (an event, not a sleep).
    pub async fn wait_for(&self, what: &str, mut done: impl FnMut(&State) -> bool) {
        let waited = wait_until(&self.shared.version, EVENT_TIMEOUT, || {
            done(&self.shared.lock())
        })
        .await;
        assert!(
            waited,
            "the mock QPay saw no {what} within {EVENT_TIMEOUT:?}"
        );
    }

    /// Tokens issued from now on live this long (their `expires_in` is absolute).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.state().token_lifetime = Some(lifetime);
    }

    /// Every access token issued so far is expired (refresh tokens stay valid).
    pub fn expire_access_tokens(&self) {
        for expiry in self.state().access.values_mut() {
            *expiry = 0.0;
        }
    }

    /// The next `n` requests to `route` (`Route::Unknown` for any route) fail this way.
    pub fn fail_next(&self, route: Route, n: usize, failure: Failure) {
        let mut state = self.state();
        for _ in 0..n {
            state.failures.push_back((route, failure.clone()));
        }
    }

    /// Every failure still queued by [`MockQpay::fail_next`] is dropped: QPay is well again.
    pub fn heal(&self) {
        self.state().failures.clear();
    }

    /// QPay loses an unpaid invoice: from now on every request about it is answered 404
    /// `INVOICE_NOTFOUND`, and nobody can pay it.
    pub fn forget_invoice(&self, invoice_id: &str) {
        self.state().forgotten.insert(invoice_id.to_owned());
        self.shared.changed();
    }

    /// Lets held requests go on.
    pub fn release(&self) {
        self.state().released = true;
        self.shared.changed();
    }

    /// The next invoice's `qr_text` has a broken CRC.
    pub fn corrupt_next_qr(&self) {
        self.state().corrupt_next_qr = true;
    }

    /// The next invoice's `qr_text` is a valid code that asks for `amount`, not the invoice's.
    pub fn next_qr_asks_for(&self, amount: &str) {
        let amount = Decimal::from_str_exact(amount).expect("a decimal amount");
        self.state().next_qr_amount = Some(amount);
    }

    /// A duplicate `sender_invoice_no` answer names the existing invoice in `details`.
    pub fn duplicates_name_the_invoice(&self) {
        self.state().duplicate_names_invoice = true;
    }

    /// Voids are refused with `PAYMENT_SETTLED` (the day's settlement ran).
    pub fn settle_payments(&self) {
        self.state().void_settled = true;
    }

    /// The customer pays `amount` now; returns the payment id.
    pub fn pay(&self, invoice_id: &str, amount: &str) -> String {
        self.pay_at(invoice_id, None, amount, SystemTime::now())
    }

    /// The customer pays under a given payment id (QPay reporting one payment twice).
    pub fn pay_with_id(&self, invoice_id: &str, payment_id: &str, amount: &str) {
        self.pay_at(invoice_id, Some(payment_id), amount, SystemTime::now());
    }

    /// A payment made at `at`.
    pub fn pay_at(
        &self,
        invoice_id: &str,
        payment_id: Option<&str>,
        amount: &str,
        at: SystemTime,
    ) -> String {
        let amount = Decimal::from_str_exact(amount).expect("a decimal amount");
        let id = {
            let mut state = self.state();
            assert!(
                state.invoice(invoice_id).is_some(),
                "no invoice {invoice_id}"
            );
            state.add_payment(
                invoice_id,
                payment_id.map(str::to_owned),
                amount,
                rfc3339(at),
            )
        };
        self.shared.changed();
        id
    }

    /// `n` payments of `amount` each.
    pub fn pay_many(&self, invoice_id: &str, n: usize, amount: &str) {
        for _ in 0..n {
            self.pay(invoice_id, amount);
        }
    }

    /// QPay reports payment `payment_id` with another amount from now on (a difference for
    /// reconciliation to find).
    pub fn set_payment_amount(&self, payment_id: &str, amount: &str) {
        let amount = Decimal::from_str_exact(amount).expect("a decimal amount");
        {
            let mut state = self.state();
            let payment = state
                .invoices
                .iter_mut()
                .flat_map(|i| i.payments.iter_mut())
                .find(|p| p.payment_id == payment_id)
                .unwrap_or_else(|| panic!("no payment {payment_id}"));
            payment.amount = amount;
        }
        self.shared.changed();
    }

    /// The customer pays `amount` just before the cancel for this invoice arrives.
    pub fn pay_when_cancelled(&self, invoice_id: &str, amount: &str) {
        let amount = Decimal::from_str_exact(amount).expect("a decimal amount");
        self.state()
            .pay_on_cancel
            .insert(invoice_id.to_owned(), amount);
    }
}

fn route_of(method: &Method, path: &str) -> Route {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["v2", "auth", "token"]) => Route::Token,
        ("POST", ["v2", "auth", "refresh"]) => Route::Refresh,
        ("POST", ["v2", "invoice"]) => Route::CreateInvoice,
        ("GET", ["v2", "invoice", _]) => Route::GetInvoice,
        ("DELETE", ["v2", "invoice", _]) => Route::CancelInvoice,
        ("POST", ["v2", "payment", "check"]) => Route::Check,
        ("POST", ["v2", "payment", "list"]) => Route::ListPayments,
        ("DELETE", ["v2", "payment", "cancel", _]) => Route::VoidPayment,
        ("DELETE", ["v2", "payment", "refund", _]) => Route::RefundPayment,
        ("GET", ["v2", "payment", _]) => Route::GetPayment,
        _ => Route::Unknown,
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn flat_error(status: StatusCode, code: &str) -> Response {
    json_response(status, json!({"error": code, "message": code}).to_string())
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = route_of(&method, uri.path());
    let page = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["offset"]["page_number"].as_u64());
    let failure = {
        let mut state = shared.lock();
        let index = state
            .failures
            .iter()
            .position(|(r, _)| *r == route || *r == Route::Unknown);
        index.and_then(|i| state.failures.remove(i)).map(|(_, f)| f)
    };
    let canned = match &failure {
        Some(Failure::Status401) => Some(json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "NO_CREDENDIALS", "message": "token expired"}).to_string(),
        )),
        Some(Failure::Status429(after)) => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    (header::RETRY_AFTER, after.clone()),
                ],
                json!({"error": {"code": "RATE_LIMITED", "message": "slow down", "details": {}}})
                    .to_string(),
            )
                .into_response(),
        ),
        Some(Failure::Status500) => Some(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"INTERNAL","message":"oops"}"#.to_owned(),
        )),
        Some(Failure::NotFound(code)) => Some(flat_error(StatusCode::NOT_FOUND, code)),
        Some(Failure::MalformedJson) => Some(json_response(
            StatusCode::OK,
            r#"{"invoice_id": "half-a-body"#.to_owned(),
        )),
        Some(Failure::Hold) => {
            let mut changes = shared.version.subscribe();
            shared.lock().holding += 1;
            shared.changed();
            while !shared.lock().released {
                if changes.changed().await.is_err() {
                    break;
                }
            }
            shared.lock().holding -= 1;
            None
        }
        _ => None,
    };
    let response = match canned {
        Some(response) => response,
        None => answer(&shared, route, &uri, &headers, &body),
    };
    {
        let mut state = shared.lock();
        state.seen.push(Seen {
            at: Instant::now(),
            route,
            status: response.status().as_u16(),
            page,
        });
    }
    shared.changed();
    if let Some(Failure::Slow(delay)) = failure {
        tokio::time::sleep(delay).await;
    }
    response
}

/// The real answer, enforcing credentials first.
fn answer(shared: &Shared, route: Route, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = unix_now();
    let mut state = shared.lock();
    match route {
        Route::Token => {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
            );
            if authorization != expected || !body.is_empty() {
                return flat_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_FAILED");
            }
            issue_tokens(&mut state, now)
        }
        Route::Refresh => {
            let token = authorization.strip_prefix("Bearer ").unwrap_or("");
            let valid = state.refresh.get(token).is_some_and(|at| now < *at);
            if !valid || !body.is_empty() {
                return flat_error(StatusCode::UNAUTHORIZED, "AUTHENTICATION_FAILED");
            }
            issue_tokens(&mut state, now)
        }
        Route::Unknown => flat_error(StatusCode::NOT_FOUND, "NOT_FOUND"),
        _ => {
            let token = authorization.strip_prefix("Bearer ").unwrap_or("");
            if !state.access.get(token).is_some_and(|at| now < *at) {
                return flat_error(StatusCode::UNAUTHORIZED, "NO_CREDENDIALS");
            }
            let last = uri.path().rsplit('/').next().unwrap_or("").to_owned();
            let about = match route {
                Route::GetInvoice | Route::CancelInvoice => last.clone(),
                Route::Check => serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["object_id"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            if state.forgotten.contains(&about) {
                return flat_error(StatusCode::NOT_FOUND, "INVOICE_NOTFOUND");
            }
            match route {
                Route::CreateInvoice => create_invoice(&mut state, body),
                Route::GetInvoice => get_invoice(&state, &last),
                Route::CancelInvoice => cancel_invoice(&mut state, &last),
                Route::Check => check(&state, body),
                Route::GetPayment => get_payment(&state, &last),
                Route::VoidPayment => reverse(&mut state, &last, true),
                Route::RefundPayment => reverse(&mut state, &last, false),
                Route::ListPayments => list(&state, body),
                _ => flat_error(StatusCode::NOT_FOUND, "NOT_FOUND"),
            }
        }
    }
}

fn issue_tokens(state: &mut State, now: f64) -> Response {
    let n = state.next_id();
    let lifetime = state
        .token_lifetime
        .unwrap_or(Duration::from_secs(24 * 3600))
        .as_secs_f64();
    let access = format!("{ACCESS_PREFIX}{n}-{:x}", (now * 1000.0) as u64);
    let refresh = format!("{REFRESH_PREFIX}{n}-{:x}", (now * 1000.0) as u64);
    // As QPay does: the expiry is an absolute Unix timestamp in whole seconds.
    let expires_at = (now + lifetime).floor();
    let refresh_expires_at = (now + 2.0 * lifetime + 3600.0).floor();
    state.access.insert(access.clone(), expires_at);
    state.refresh.insert(refresh.clone(), refresh_expires_at);
    json_response(
        StatusCode::OK,
        json!({
            "token_type": "bearer",
            "refresh_expires_in": refresh_expires_at as u64,
            "refresh_token": refresh,
            "access_token": access,
            "expires_in": expires_at as u64,
            "scope": "get_token",
            "not-before-policy": "0",
            "session_state": "mock",
        })
        .to_string(),
    )
}

#[derive(serde::Deserialize)]
struct RawAmount {
    amount: Option<Box<serde_json::value::RawValue>>,
}

fn qr_for(invoice_id: &str, amount: Decimal, terminal: &str) -> String {
    let spec = emv::MerchantQrSpec {
        merchant_account: emv::MerchantAccount {
            tag: 26,
            guid: "MN.QPAY.MOCK".to_owned(),
            fields: vec![emv::Field::primitive(1, invoice_id)],
        },
        mcc: "5999".to_owned(),
        currency_numeric: "496".to_owned(),
        amount,
        amount_decimals: 2,
        country: "MN".to_owned(),
        merchant_name: "QRPAYD TEST SHOP".to_owned(),
        city: "Ulaanbaatar".to_owned(),
        additional: emv::AdditionalData {
            bill: None,
            reference: None,
            terminal: Some(terminal.chars().take(25).collect()),
            purpose: None,
        },
    };
    emv::build_merchant_qr(&spec).expect("a valid mock QR")
}

fn create_invoice(state: &mut State, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return flat_error(StatusCode::BAD_REQUEST, "INVALID_JSON");
    };
    let text = |key: &str| request[key].as_str().unwrap_or("").to_owned();
    let required = [
        "invoice_code",
        "sender_invoice_no",
        "invoice_receiver_code",
        "invoice_description",
    ];
    if required.iter().any(|key| text(key).is_empty()) || text("invoice_code") != INVOICE_CODE {
        return json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": {"code": "INVALID_REQUEST", "message": "a required field is missing", "details": {}}})
                .to_string(),
        );
    }
    // The amount must be a JSON number (never a string), read without a float.
    let raw = serde_json::from_slice::<RawAmount>(body)
        .ok()
        .and_then(|r| r.amount)
        .map(|r| r.get().to_owned())
        .unwrap_or_default();
    let Ok(amount) = Decimal::from_str_exact(&raw) else {
        return flat_error(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_AMOUNT");
    };
    let sender_invoice_no = text("sender_invoice_no");
    if let Some(existing) = state
        .invoices
        .iter()
        .find(|i| i.sender_invoice_no == sender_invoice_no)
    {
        let body = if state.duplicate_names_invoice {
            json!({"error": {"code": "INVOICE_CODE_REGISTERED", "message": "sender_invoice_no is registered",
                "details": {"invoice_id": existing.invoice_id}}})
        } else {
            json!({"error": "INVOICE_CODE_REGISTERED", "message": "sender_invoice_no is registered"})
        };
        return json_response(StatusCode::BAD_REQUEST, body.to_string());
    }
    let n = state.next_id();
    let invoice_id = format!("00f94137-66fd-4d90-b2b2-{n:012}");
    let qr_amount = state.next_qr_amount.take().unwrap_or(amount);
    let mut qr_text = qr_for(&invoice_id, qr_amount, &text("sender_terminal_code"));
    if std::mem::take(&mut state.corrupt_next_qr) {
        let last = if qr_text.ends_with('0') { '1' } else { '0' };
        qr_text.pop();
        qr_text.push(last);
    }
    state.invoices.push(MockInvoice {
        invoice_id: invoice_id.clone(),
        sender_invoice_no,
        amount,
        qr_text: qr_text.clone(),
        cancelled: false,
        payments: Vec::new(),
        request: request.clone(),
        raw_amount: raw,
    });
    json_response(
        StatusCode::OK,
        json!({
            "invoice_id": invoice_id,
            "qr_text": qr_text,
            "qr_image": "iVBORw0KGgoAAAANSUhEUgAAASwAAAEs",
            "qPay_shortUrl": format!("https://s.qpay.mn/{n}"),
            "urls": [
                {"name": "Khan bank", "description": "Хаан банк", "logo": "https://qpay.mn/q/logo/khanbank.png",
                 "link": format!("khanbank://q?qPay_QRcode={qr_text}")},
                {"name": "State bank", "description": "Төрийн банк", "logo": "https://qpay.mn/q/logo/statebank.png",
                 "link": format!("statebank://q?qPay_QRcode={qr_text}")},
            ],
        })
        .to_string(),
    )
}

fn get_invoice(state: &State, invoice_id: &str) -> Response {
    let Some(invoice) = state.invoice(invoice_id) else {
        return flat_error(StatusCode::NOT_FOUND, "INVOICE_NOTFOUND");
    };
    let paid: Decimal = invoice
        .payments
        .iter()
        .filter(|p| p.status == "PAID")
        .map(|p| p.amount)
        .sum();
    let status = if invoice.cancelled {
        "CANCELLED"
    } else if paid >= invoice.amount {
        "PAID"
    } else {
        "OPEN"
    };
    json_response(
        StatusCode::OK,
        json!({
            "invoice_id": invoice.invoice_id,
            "invoice_status": status,
            "sender_invoice_no": invoice.sender_invoice_no,
            "invoice_description": invoice.request["invoice_description"],
            "total_amount": invoice.amount.to_string(),
            "qr_text": invoice.qr_text,
        })
        .to_string(),
    )
}

fn cancel_invoice(state: &mut State, invoice_id: &str) -> Response {
    let now = rfc3339(SystemTime::now());
    if let Some(amount) = state.pay_on_cancel.remove(invoice_id) {
        state.add_payment(invoice_id, None, amount, now);
    }
    let Some(invoice) = state.invoice_mut(invoice_id) else {
        return flat_error(StatusCode::NOT_FOUND, "INVOICE_NOTFOUND");
    };
    let paid: Decimal = invoice
        .payments
        .iter()
        .filter(|p| p.status == "PAID")
        .map(|p| p.amount)
        .sum();
    if invoice.cancelled {
        return flat_error(StatusCode::BAD_REQUEST, "INVOICE_ALREADY_CANCELED");
    }
    if paid >= invoice.amount {
        return flat_error(StatusCode::BAD_REQUEST, "INVOICE_PAID");
    }
    invoice.cancelled = true;
    json_response(StatusCode::OK, "{}".to_owned())
}

fn payment_row(payment: &MockPayment, invoice: &MockInvoice) -> Value {
    json!({
        "payment_id": payment.payment_id,
        "payment_status": payment.status,
        "payment_date": payment.date,
        "payment_fee": "1.00",
        "payment_amount": format!("{:.2}", payment.amount),
        "payment_currency": "MNT",
        "payment_wallet": "0fc9b71c-cd87-4ffd-9cac-2279ebd9deb0",
        "transaction_type": "P2P",
        "object_type": "INVOICE",
        "object_id": invoice.invoice_id,
    })
}

fn offset_of(request: &Value) -> (usize, usize) {
    let page = request["offset"]["page_number"]
        .as_u64()
        .unwrap_or(1)
        .max(1) as usize;
    let limit = request["offset"]["page_limit"]
        .as_u64()
        .unwrap_or(100)
        .clamp(1, 100) as usize;
    (page, limit)
}

fn page_response(rows: Vec<Value>, request: &Value, paid: Option<Decimal>) -> Response {
    let (page, limit) = offset_of(request);
    let count = rows.len();
    let rows: Vec<Value> = rows
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    let rows = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_owned());
    // `paid_amount` is a number, and absent when nothing was paid.
    let body = match paid {
        Some(paid) if count > 0 => {
            format!(r#"{{"count": {count}, "paid_amount": {paid}, "rows": {rows}}}"#)
        }
        _ => format!(r#"{{"count": {count}, "rows": {rows}}}"#),
    };
    json_response(StatusCode::OK, body)
}

fn check(state: &State, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return flat_error(StatusCode::BAD_REQUEST, "INVALID_JSON");
    };
    if request["object_type"] != "INVOICE" {
        return flat_error(StatusCode::BAD_REQUEST, "INVALID_OBJECT_TYPE");
    }
    let Some(invoice) = state.invoice(request["object_id"].as_str().unwrap_or("")) else {
        return flat_error(StatusCode::UNPROCESSABLE_ENTITY, "INVOICE_NOTFOUND");
    };
    let rows = invoice
        .payments
        .iter()
        .map(|p| payment_row(p, invoice))
        .collect();
    let paid = invoice
        .payments
        .iter()
        .filter(|p| p.status == "PAID")
        .map(|p| p.amount)
        .sum();
    page_response(rows, &request, Some(paid))
}

fn find_payment<'a>(
    state: &'a State,
    payment_id: &str,
) -> Option<(&'a MockInvoice, &'a MockPayment)> {
    state.invoices.iter().find_map(|invoice| {
        invoice
            .payments
            .iter()
            .find(|p| p.payment_id == payment_id)
            .map(|p| (invoice, p))
    })
}

fn get_payment(state: &State, payment_id: &str) -> Response {
    match find_payment(state, payment_id) {
        Some((invoice, payment)) => {
            json_response(StatusCode::OK, payment_row(payment, invoice).to_string())
        }
        None => flat_error(StatusCode::NOT_FOUND, "PAYMENT_NOTFOUND"),
    }
}

fn reverse(state: &mut State, payment_id: &str, void: bool) -> Response {
    let settled = state.void_settled;
    let Some(payment) = state
        .invoices
        .iter_mut()
        .flat_map(|i| i.payments.iter_mut())
        .find(|p| p.payment_id == payment_id)
    else {
        return flat_error(StatusCode::NOT_FOUND, "PAYMENT_NOTFOUND");
    };
    if payment.status != "PAID" {
        return flat_error(
            StatusCode::BAD_REQUEST,
            if void {
                "PAYMENT_ALREADY_CANCELED"
            } else {
                "PAYMENT_ALREADY_REFUNDED"
            },
        );
    }
    if void && settled {
        return flat_error(StatusCode::BAD_REQUEST, "PAYMENT_SETTLED");
    }
    payment.status = if void { "CANCELED" } else { "REFUNDED" }.to_owned();
    json_response(StatusCode::OK, "{}".to_owned())
}

fn list(state: &State, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return flat_error(StatusCode::BAD_REQUEST, "INVALID_JSON");
    };
    if request["object_type"] != "INVOICE" || request["object_id"] != INVOICE_CODE {
        return flat_error(StatusCode::BAD_REQUEST, "INVALID_OBJECT_TYPE");
    }
    let terminal = request["merchant_terminal_code"].as_str();
    let rows = state
        .invoices
        .iter()
        .filter(|i| terminal.is_none_or(|t| i.request["sender_terminal_code"] == t))
        .flat_map(|i| i.payments.iter().map(move |p| payment_row(p, i)))
        .collect();
    page_response(rows, &request, None)
}
