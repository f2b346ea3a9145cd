//! A mock MQ-Pay gateway for the tests: real HTTP on 127.0.0.1 at a random port.
//!
//! It keeps MQ-Pay's model (transactions keyed by their source, attempts, payment results,
//! refund attempts as children) and its rules: the bearer key on every request, the request
//! signature (`X-Qrpayd-Timestamp`, `X-Qrpayd-Signature: v1=<hex HMAC-SHA256>`, ±300 s) when
//! the mock is given a signing secret, a checkout refused for a gateway provider that is not
//! configured or a settled transaction, a cancel refused once paid, a refund only of a
//! `302_SUCCESS` attempt and never beyond what remains. Lists take IGNIS's `filter` (`where`
//! with equality and `between`, `limit`, `skip`) and answer wrapped (`{count, data}`) unless
//! told to answer bare arrays.
//!
//! It is the worst honest gateway: it ignores `Idempotency-Key` (it only records it), so a
//! repeated checkout makes a second attempt and a repeated refund a second refund, and only
//! qrpayd's own look-ups keep a lost answer from doing things twice. A control handle pays,
//! fails and expires attempts, injects failures (500, a 200 that is not JSON, an answer lost
//! after the work was done), and reports every request, so tests wait on what reached
//! the gateway rather than sleeping.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use qrpayd::domain::Timestamp;
use qrpayd::emv;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::mock_server::{Server, loopback_listener, wait_until};

use crate::harness::EVENT_TIMEOUT;

/// The API key the mock accepts.
pub const API_KEY: &str = "MOCK-MQPAY-API-KEY-v93Lx";
/// The signing secret of a mock started with [`MockMqPay::start_signed`].
pub const SIGNING_SECRET: &str = "MOCK-MQPAY-SIGNING-SECRET-r4Tq";
/// The gateway provider the mock has configured.
pub const GATEWAY: &str = "VNPAY_QR_MMS";

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Checkout,
    Verify,
    Cancel,
    Refund,
    ListTransactions,
    GetTransaction,
    ListAttempts,
    ListResults,
    /// The back office's CRUD writes, as the upstream sync sends them.
    Create,
    Patch,
    Unknown,
}

/// A failure to answer with instead of the real answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 500, nothing done.
    Status500,
    /// The work is done, then a 200 whose body is not JSON.
    Malformed,
    /// The work is done, then a 502: the answer is lost.
    LoseAnswer,
}

/// One request the mock saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub route: Route,
    pub status: u16,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MockTransaction {
    pub id: String,
    pub source_type: String,
    pub source_id: String,
    pub source_uid: String,
    pub total: Decimal,
    pub paid: Decimal,
    pub currency: String,
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct MockAttempt {
    pub id: String,
    pub transaction_id: String,
    /// `100_PAYMENT` or `300_REFUND_PAYMENT`.
    pub kind: String,
    pub status: String,
    pub provider: String,
    pub amount: Decimal,
    pub paid: Decimal,
    pub refunded: Decimal,
    pub parent_id: Option<String>,
    pub qr_code: Option<String>,
    /// The checkout's `payment.total` as written on the wire.
    pub raw_total: String,
    pub created_at: String,
    /// `providerStatus` of a failed payment.
    pub response_code: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct MockResult {
    pub id: String,
    pub attempt_id: String,
    pub transaction_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub paid_at: String,
}

#[derive(Default)]
pub struct State {
    pub transactions: Vec<MockTransaction>,
    pub attempts: Vec<MockAttempt>,
    pub results: Vec<MockResult>,
    pub seen: Vec<Seen>,
    /// Requests refused for a bad or missing signature.
    pub bad_signatures: usize,
    failures: VecDeque<(Route, Failure)>,
    next: u64,
    bare_lists: bool,
    qr_on_attempts: bool,
    signing_secret: Option<String>,
    /// Pays this attempt (this much) when its cancel arrives, before refusing the cancel.
    pay_on_cancel: Option<(String, Decimal)>,
    /// Checkouts say their attempt expires this many milliseconds after it is made.
    expires_in_ms: Option<i64>,
    /// Records the back office's CRUD API created (`POST /<collection>`), by collection.
    pub created: Vec<(String, Value)>,
    /// Patches of records the gateway made (`PATCH /transactions/<id>`, ...), in order.
    pub patched: Vec<(String, Value)>,
}

impl State {
    pub fn count(&self, route: Route) -> usize {
        self.seen.iter().filter(|s| s.route == route).count()
    }

    pub fn payments(&self) -> Vec<&MockAttempt> {
        self.attempts
            .iter()
            .filter(|a| a.kind == "100_PAYMENT")
            .collect()
    }

    pub fn refunds_of(&self, attempt_id: &str) -> Vec<&MockAttempt> {
        self.attempts
            .iter()
            .filter(|a| a.parent_id.as_deref() == Some(attempt_id))
            .collect()
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-{:06}", self.next)
    }

    fn attempt_mut(&mut self, id: &str) -> Option<&mut MockAttempt> {
        self.attempts.iter_mut().find(|a| a.id == id)
    }

    /// Records money on a payment attempt, with its transaction's totals.
    fn pay(&mut self, attempt_id: &str, amount: Decimal) -> String {
        let result_id = self.id("res");
        let attempt = self
            .attempt_mut(attempt_id)
            .expect("the mock has the attempt");
        attempt.paid += amount;
        if attempt.paid >= attempt.amount {
            attempt.status = "302_SUCCESS".to_owned();
        }
        let transaction_id = attempt.transaction_id.clone();
        let transaction = self
            .transactions
            .iter_mut()
            .find(|t| t.id == transaction_id)
            .expect("the attempt's transaction");
        transaction.paid += amount;
        transaction.status = if transaction.paid >= transaction.total {
            "304_SETTLED"
        } else {
            "300_PARTIAL"
        }
        .to_owned();
        let currency = transaction.currency.clone();
        self.results.push(MockResult {
            id: result_id.clone(),
            attempt_id: attempt_id.to_owned(),
            transaction_id,
            amount,
            currency,
            paid_at: now_rfc3339(),
        });
        result_id
    }
}

struct Shared {
    state: Mutex<State>,
    version: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

/// A running mock; it stops when dropped.
pub struct MockMqPay {
    /// `http://127.0.0.1:PORT/api/mq-pay`.
    pub base_url: String,
    shared: Arc<Shared>,
    _server: Server,
}

fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(now).to_rfc3339()
}

impl MockMqPay {
    /// A mock that checks the bearer key only.
    pub async fn start() -> MockMqPay {
        MockMqPay::start_with(None).await
    }

    /// A mock that also checks every request's signature with [`SIGNING_SECRET`].
    pub async fn start_signed() -> MockMqPay {
        MockMqPay::start_with(Some(SIGNING_SECRET)).await
    }

    async fn start_with(secret: Option<&str>) -> MockMqPay {
        let (version, _) = watch::channel(0);
        let state = State {
            signing_secret: secret.map(str::to_owned),
            qr_on_attempts: true,
            ..State::default()
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            version,
        });
        let listener = loopback_listener().await;
        let address = listener.local_addr().expect("mock address");
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = Server::start(listener, router);
        MockMqPay {
            base_url: format!("http://{address}/api/mq-pay"),
            shared,
            _server: server,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Waits until `done` holds for the mock's state (an event, not a sleep).
    pub async fn wait_for(&self, what: &str, mut done: impl FnMut(&State) -> bool) {
        let waited = wait_until(&self.shared.version, EVENT_TIMEOUT, || {
            done(&self.shared.lock())
        })
        .await;
        assert!(
            waited,
            "the mock MQ-Pay saw no {what} within {EVENT_TIMEOUT:?}"
        );
    }

    /// The next `n` requests to `route` fail this way.
    pub fn fail_next(&self, route: Route, n: usize, failure: Failure) {
        let mut state = self.state();
        for _ in 0..n {
            state.failures.push_back((route, failure.clone()));
        }
    }

    /// Lists are answered as bare arrays rather than `{count, data}`.
    pub fn bare_lists(&self) {
        self.state().bare_lists = true;
    }

    /// Attempts are listed without their QR (as a back office that keeps no payment data).
    pub fn no_qr_on_attempts(&self) {
        self.state().qr_on_attempts = false;
    }

    /// Checkouts from now on answer that their attempt expires `ms` after it is made.
    pub fn expire_attempts_after(&self, ms: i64) {
        self.state().expires_in_ms = Some(ms);
    }

    /// The customer pays `amount` on `attempt_id`; returns the payment result's id.
    pub fn pay(&self, attempt_id: &str, amount: &str) -> String {
        let id = self
            .state()
            .pay(attempt_id, amount.parse().expect("an amount"));
        self.shared.changed();
        id
    }

    /// The bank fails the payment.
    pub fn fail(&self, attempt_id: &str, code: &str, message: &str) {
        {
            let mut state = self.state();
            let attempt = state.attempt_mut(attempt_id).expect("the attempt");
            attempt.status = "500_FAIL".to_owned();
            attempt.response_code = code.to_owned();
            attempt.message = message.to_owned();
        }
        self.shared.changed();
    }

    /// The attempt runs out of time at MQ-Pay.
    pub fn expire(&self, attempt_id: &str) {
        self.state()
            .attempt_mut(attempt_id)
            .expect("the attempt")
            .status = "501_EXPIRED".to_owned();
        self.shared.changed();
    }

    /// The back office refunds `amount` of an attempt itself, behind qrpayd's back.
    pub fn refund_elsewhere(&self, attempt_id: &str, amount: &str) {
        {
            let mut state = self.state();
            let amount: Decimal = amount.parse().expect("an amount");
            refund(&mut state, attempt_id, amount).expect("the refund is allowed");
        }
        self.shared.changed();
    }

    /// When the cancel of `attempt_id` arrives, the customer has just paid `amount`.
    pub fn pay_on_cancel(&self, attempt_id: &str, amount: &str) {
        self.state().pay_on_cancel = Some((attempt_id.to_owned(), amount.parse().expect("amount")));
    }

    /// The payment attempt whose QR is `qr_text`.
    pub fn attempt_by_qr(&self, qr_text: &str) -> MockAttempt {
        self.state()
            .attempts
            .iter()
            .find(|a| a.qr_code.as_deref() == Some(qr_text))
            .cloned()
            .expect("the mock made the attempt on screen")
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response()
}

fn ok(value: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// The collections the back office's CRUD API writes.
const COLLECTIONS: &[&str] = &[
    "/transactions",
    "/transaction-items",
    "/payment-attempts",
    "/payment-results",
];

fn route_of(method: &Method, path: &str) -> (Route, Option<String>) {
    let path = path.strip_prefix("/api/mq-pay").unwrap_or(path);
    match (method.as_str(), path) {
        ("POST", "/payments/checkout") => (Route::Checkout, None),
        ("POST", "/payments/verify") => (Route::Verify, None),
        ("POST", "/payments/cancel") => (Route::Cancel, None),
        ("POST", "/payments/refund") => (Route::Refund, None),
        ("GET", "/transactions") => (Route::ListTransactions, None),
        ("GET", "/payment-attempts") => (Route::ListAttempts, None),
        ("GET", "/payment-results") => (Route::ListResults, None),
        ("GET", p) if p.starts_with("/transactions/") => (
            Route::GetTransaction,
            Some(p.trim_start_matches("/transactions/").to_owned()),
        ),
        ("POST", p) if COLLECTIONS.contains(&p) => (Route::Create, Some(p.to_owned())),
        ("PATCH", p) => (Route::Patch, Some(p.to_owned())),
        _ => (Route::Unknown, None),
    }
}

/// Checks the signature the way a back office would: over the bytes it received.
fn signature_ok(
    secret: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) =
        (header("x-qrpayd-timestamp"), header("x-qrpayd-signature"))
    else {
        return false;
    };
    let Ok(at) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if (now - at).abs() > 300 {
        return false;
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("a key");
    mac.update(format!("{timestamp}.{}.{path}.", method.as_str()).as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    signature == format!("v1={expected}")
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (route, id) = route_of(&method, uri.path());
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = {
        let mut state = shared.lock();
        let response = answer(&mut state, route, id, &method, &uri, &headers, &body);
        let status = response.status().as_u16();
        state.seen.push(Seen {
            route,
            status,
            idempotency_key: key,
        });
        response
    };
    shared.changed();
    response
}

fn answer(
    state: &mut State,
    route: Route,
    id: Option<String>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {API_KEY}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a valid API key is required",
        );
    }
    if let Some(secret) = &state.signing_secret
        && !signature_ok(secret, method, uri, headers, body)
    {
        state.bad_signatures += 1;
        return error(
            StatusCode::UNAUTHORIZED,
            "SIGNATURE_MISMATCH",
            "the request signature does not verify",
        );
    }
    let failure = state
        .failures
        .iter()
        .position(|(r, _)| *r == route)
        .and_then(|i| state.failures.remove(i))
        .map(|(_, f)| f);
    if let Some(Failure::Status500) = &failure {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "oops");
    }
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let filter = uri.query().and_then(filter_of).unwrap_or(Value::Null);
    let response = match route {
        Route::Checkout => checkout(state, &request, body),
        Route::Verify => verify(state, &request),
        Route::Cancel => cancel(state, &request),
        Route::Refund => match request["amount"].to_string().parse::<Decimal>() {
            Ok(amount) => {
                match refund(state, request["attemptId"].as_str().unwrap_or(""), amount) {
                    Ok(refund) => ok(json!({ "refundAttempt": refund })),
                    Err((status, code, message)) => error(status, code, &message),
                }
            }
            Err(_) => error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "amount"),
        },
        Route::ListTransactions => {
            let rows = state.transactions.iter().map(transaction_json).collect();
            list(state, rows, &filter)
        }
        Route::GetTransaction => match state
            .transactions
            .iter()
            .find(|t| Some(&t.id) == id.as_ref())
        {
            Some(t) => ok(transaction_json(t)),
            None => error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such transaction"),
        },
        Route::ListAttempts => {
            let qr = state.qr_on_attempts;
            let rows = state.attempts.iter().map(|a| attempt_json(a, qr)).collect();
            list(state, rows, &filter)
        }
        Route::ListResults => {
            let rows = state.results.iter().map(result_json).collect();
            list(state, rows, &filter)
        }
        Route::Create => create(state, id.as_deref().unwrap_or(""), request),
        Route::Patch => patch(state, id.as_deref().unwrap_or(""), request),
        Route::Unknown => error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route"),
    };
    match failure {
        Some(Failure::Malformed) if response.status().is_success() => {
            (StatusCode::OK, "<html>gateway hiccup</html>").into_response()
        }
        Some(Failure::LoseAnswer) => error(
            StatusCode::BAD_GATEWAY,
            "BAD_GATEWAY",
            "the answer was lost",
        ),
        _ => response,
    }
}

fn qr_for(attempt_id: &str, amount: Decimal, currency: &str) -> String {
    let (numeric, country, decimals) = match currency {
        "VND" => ("704", "VN", 0),
        _ => ("496", "MN", 2),
    };
    let spec = emv::MerchantQrSpec {
        merchant_account: emv::MerchantAccount {
            tag: 26,
            guid: "VN.MQPAY.MOCK".to_owned(),
            fields: vec![emv::Field::primitive(1, attempt_id)],
        },
        mcc: "5999".to_owned(),
        currency_numeric: numeric.to_owned(),
        amount,
        amount_decimals: decimals,
        country: country.to_owned(),
        merchant_name: "QRPAYD TEST SHOP".to_owned(),
        city: "Hanoi".to_owned(),
        additional: emv::AdditionalData {
            bill: None,
            reference: None,
            terminal: None,
            purpose: None,
        },
    };
    emv::build_merchant_qr(&spec).expect("a valid mock QR")
}

#[derive(serde::Deserialize)]
struct RawTotal {
    payment: RawPayment,
}

#[derive(serde::Deserialize)]
struct RawPayment {
    total: Box<serde_json::value::RawValue>,
}

fn checkout(state: &mut State, request: &Value, body: &[u8]) -> Response {
    let source = &request["source"];
    let payment = &request["payment"];
    let (Some(source_type), Some(source_id)) = (source["type"].as_str(), source["id"].as_str())
    else {
        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "source");
    };
    let provider = payment["provider"].as_str().unwrap_or("");
    if provider != GATEWAY {
        return error(
            StatusCode::BAD_REQUEST,
            "PROVIDER_NOT_CONFIGURED",
            &format!("provider {provider} is not enabled"),
        );
    }
    let raw_total = serde_json::from_slice::<RawTotal>(body)
        .map(|r| r.payment.total.get().to_owned())
        .unwrap_or_default();
    let Ok(total) = raw_total.parse::<Decimal>() else {
        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "payment.total");
    };
    let currency = payment["currency"].as_str().unwrap_or("VND").to_owned();
    let transaction_id = match state
        .transactions
        .iter()
        .find(|t| t.source_type == source_type && t.source_id == source_id)
    {
        Some(t) if t.status == "304_SETTLED" => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_TRANSACTION_STATUS",
                "Cannot add payment to completed transaction",
            );
        }
        Some(t) => t.id.clone(),
        None => {
            let id = state.id("txn");
            state.transactions.push(MockTransaction {
                id: id.clone(),
                source_type: source_type.to_owned(),
                source_id: source_id.to_owned(),
                source_uid: source["uid"].as_str().unwrap_or("").to_owned(),
                total,
                paid: Decimal::ZERO,
                currency: currency.clone(),
                status: "100_NEW".to_owned(),
            });
            id
        }
    };
    let attempt_id = state.id("att");
    let qr = qr_for(&attempt_id, total, &currency);
    state.attempts.push(MockAttempt {
        id: attempt_id.clone(),
        transaction_id: transaction_id.clone(),
        kind: "100_PAYMENT".to_owned(),
        status: "204_SENT".to_owned(),
        provider: provider.to_owned(),
        amount: total,
        paid: Decimal::ZERO,
        refunded: Decimal::ZERO,
        parent_id: None,
        qr_code: Some(qr.clone()),
        raw_total,
        created_at: now_rfc3339(),
        response_code: String::new(),
        message: String::new(),
    });
    let expires_at = state.expires_in_ms.map(|ms| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(now + ms).to_rfc3339()
    });
    ok(json!({
        "transaction": {"id": transaction_id, "status": "100_NEW",
                        "total": format!("{total:.4}"), "paid": "0.0000"},
        "attempt": {"id": attempt_id, "status": "204_SENT", "provider": provider,
                    "method": payment["method"]},
        "payment": {"qrCode": qr, "qrUrl": format!("https://pay.example/q/{attempt_id}"),
                    "expiresAt": expires_at},
    }))
}

fn verify(state: &State, request: &Value) -> Response {
    let id = request["attemptId"].as_str().unwrap_or("");
    let Some(attempt) = state.attempts.iter().find(|a| a.id == id) else {
        return error(
            StatusCode::NOT_FOUND,
            "PAYMENT_ATTEMPT_NOT_FOUND",
            "no such attempt",
        );
    };
    let (code, message) = match attempt.status.as_str() {
        "302_SUCCESS" => ("00", "Success"),
        "500_FAIL" => (attempt.response_code.as_str(), attempt.message.as_str()),
        _ => ("01", "Waiting for the customer"),
    };
    ok(json!({
        "attempt": {"id": attempt.id, "status": attempt.status, "provider": attempt.provider},
        "providerStatus": {"responseCode": code, "message": message},
    }))
}

fn cancel(state: &mut State, request: &Value) -> Response {
    let id = request["attemptId"].as_str().unwrap_or("").to_owned();
    if let Some((attempt_id, amount)) = state.pay_on_cancel.take()
        && attempt_id == id
    {
        state.pay(&attempt_id, amount);
    }
    let Some(attempt) = state.attempt_mut(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "PAYMENT_ATTEMPT_NOT_FOUND",
            "no such attempt",
        );
    };
    if attempt.status == "302_SUCCESS" || attempt.paid > Decimal::ZERO {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_TRANSACTION_STATUS",
            "the attempt is paid",
        );
    }
    attempt.status = "500_FAIL".to_owned();
    attempt.response_code = "CANCELLED".to_owned();
    attempt.message = "Cancelled".to_owned();
    let transaction_id = attempt.transaction_id.clone();
    let cancel_id = state.id("cancel");
    ok(json!({
        "transaction": {"id": transaction_id, "status": "100_NEW"},
        "cancelledAttempts": [{"id": cancel_id, "type": "200_CANCEL_PAYMENT",
                               "status": "302_SUCCESS", "parentId": id}],
    }))
}

/// A refund MQ-Pay refused: its status, code and message.
type Refused = (StatusCode, &'static str, String);

fn refund(state: &mut State, attempt_id: &str, amount: Decimal) -> Result<Value, Refused> {
    let Some(parent) = state.attempts.iter().find(|a| a.id == attempt_id).cloned() else {
        return Err((
            StatusCode::NOT_FOUND,
            "PAYMENT_ATTEMPT_NOT_FOUND",
            "no such attempt".to_owned(),
        ));
    };
    if parent.status != "302_SUCCESS" {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "ATTEMPT_NOT_SUCCESS",
            "Cannot refund non-success attempt".to_owned(),
        ));
    }
    if amount <= Decimal::ZERO || amount > parent.paid - parent.refunded {
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "REFUND_EXCEEDS_REMAINING",
            format!(
                "Refund amount exceeds the remaining {:.4}",
                parent.paid - parent.refunded
            ),
        ));
    }
    let id = state.id("refund");
    let refund = MockAttempt {
        id: id.clone(),
        transaction_id: parent.transaction_id.clone(),
        kind: "300_REFUND_PAYMENT".to_owned(),
        status: "302_SUCCESS".to_owned(),
        provider: parent.provider.clone(),
        amount,
        paid: Decimal::ZERO,
        refunded: Decimal::ZERO,
        parent_id: Some(attempt_id.to_owned()),
        qr_code: None,
        raw_total: amount.to_string(),
        created_at: now_rfc3339(),
        response_code: String::new(),
        message: String::new(),
    };
    let json = attempt_json(&refund, false);
    state.attempts.push(refund);
    if let Some(parent) = state.attempt_mut(attempt_id) {
        parent.refunded += amount;
    }
    Ok(json)
}

/// Whether `collection` holds a record `id`, made by the gateway or created through CRUD.
fn exists(state: &State, collection: &str, id: &str) -> bool {
    let made = match collection {
        "/transactions" => state.transactions.iter().any(|t| t.id == id),
        "/payment-attempts" => state.attempts.iter().any(|a| a.id == id),
        "/payment-results" => state.results.iter().any(|r| r.id == id),
        _ => false,
    };
    made || state
        .created
        .iter()
        .any(|(c, record)| c == collection && record["id"] == id)
}

/// `POST /<collection>`: a record keyed by its id; 409 when it exists, 422 when its
/// transaction does not.
fn create(state: &mut State, collection: &str, record: Value) -> Response {
    let Some(id) = record["id"].as_str().map(str::to_owned) else {
        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "id");
    };
    if exists(state, collection, &id) {
        return error(
            StatusCode::CONFLICT,
            "DUPLICATE_ENTITY",
            "the record exists",
        );
    }
    if collection != "/transactions" {
        let parent = record["transactionId"].as_str().unwrap_or("");
        if !exists(state, "/transactions", parent) {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_REFERENCE",
                "no such transaction",
            );
        }
    }
    if collection == "/transactions" {
        // The gateway's checkouts find a sale by its source, whoever made it.
        let text = |key: &str| record[key].as_str().unwrap_or("").to_owned();
        let amount = |key: &str| text(key).parse().unwrap_or(Decimal::ZERO);
        state.transactions.push(MockTransaction {
            id: id.clone(),
            source_type: text("sourceType"),
            source_id: text("sourceId"),
            source_uid: text("sourceUid"),
            total: amount("total"),
            paid: amount("paid"),
            currency: text("currency"),
            status: text("status"),
        });
    }
    state.created.push((collection.to_owned(), record.clone()));
    ok(record)
}

/// `PATCH /<collection>/<id>`: the fields merged into the record; 404 when there is none.
fn patch(state: &mut State, path: &str, fields: Value) -> Response {
    let Some((collection, id)) = path.rsplit_once('/') else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such record");
    };
    if !exists(state, collection, id) {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such record");
    }
    if let Some((_, record)) = state
        .created
        .iter_mut()
        .find(|(c, record)| c == collection && record["id"] == id)
        && let (Some(record), Some(fields)) = (record.as_object_mut(), fields.as_object())
    {
        for (key, value) in fields {
            record.insert(key.clone(), value.clone());
        }
    }
    state.patched.push((path.to_owned(), fields.clone()));
    ok(fields)
}

fn transaction_json(t: &MockTransaction) -> Value {
    json!({
        "id": t.id, "sourceType": t.source_type, "sourceId": t.source_id,
        "sourceUid": t.source_uid, "status": t.status, "currency": t.currency,
        "total": format!("{:.4}", t.total), "paid": format!("{:.4}", t.paid),
    })
}

fn attempt_json(a: &MockAttempt, with_qr: bool) -> Value {
    let mut json = json!({
        "id": a.id, "transactionId": a.transaction_id, "type": a.kind, "status": a.status,
        "provider": a.provider, "method": "100_QR_CODE", "amount": format!("{:.4}", a.amount),
        "paid": format!("{:.4}", a.paid), "parentId": a.parent_id, "createdAt": a.created_at,
    });
    if with_qr && let Some(qr) = &a.qr_code {
        json["qrCode"] = json!(qr);
    }
    json
}

fn result_json(r: &MockResult) -> Value {
    json!({
        "id": r.id, "attemptId": r.attempt_id, "transactionId": r.transaction_id,
        "provider": GATEWAY, "providerPaymentId": format!("bank-{}", r.id),
        "amount": format!("{:.4}", r.amount), "currency": r.currency, "paidAt": r.paid_at,
    })
}

/// The `filter` query parameter, decoded.
fn filter_of(query: &str) -> Option<Value> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("filter="))?;
    let mut bytes = Vec::new();
    let raw = value.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' if i + 2 < raw.len() => {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                bytes.push(b' ');
                i += 1;
            }
            byte => {
                bytes.push(byte);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&bytes).ok()
}

/// Whether a row matches a `where`: equality, or `{"between": [from, to]}` on times.
fn matches(row: &Value, condition: &Value) -> bool {
    let Some(condition) = condition.as_object() else {
        return true;
    };
    condition.iter().all(|(key, wanted)| {
        let value = &row[key.as_str()];
        match wanted.get("between").and_then(Value::as_array) {
            Some(range) if range.len() == 2 => {
                let at = |v: &Value| v.as_str().and_then(Timestamp::parse_rfc3339);
                match (at(value), at(&range[0]), at(&range[1])) {
                    (Some(v), Some(from), Some(to)) => from <= v && v <= to,
                    _ => false,
                }
            }
            _ => value == wanted,
        }
    })
}

fn list(state: &State, rows: Vec<Value>, filter: &Value) -> Response {
    let matching: Vec<Value> = rows
        .into_iter()
        .filter(|row| matches(row, &filter["where"]))
        .collect();
    let skip = filter["skip"].as_u64().unwrap_or(0) as usize;
    let limit = filter["limit"].as_u64().unwrap_or(100) as usize;
    let count = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(skip).take(limit).collect();
    if state.bare_lists {
        ok(Value::Array(page))
    } else {
        ok(json!({"count": count, "data": page}))
    }
}
