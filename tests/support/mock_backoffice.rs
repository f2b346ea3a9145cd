//! A mock MQ-Pay back office for the upstream sync: real HTTP on 127.0.0.1, shared by the API
//! tests and `benches/sync.rs`.
//!
//! It implements the wire contract of the README's "Upstream sync" section as a back office
//! would: the bearer key and `X-Terminal-Id` on every request, the `v1` signature within
//! ±300 s, records keyed by their ids (a second create of one id is a 409, a PATCH of an
//! unknown id a 404), a child refused (422) until its parent exists, and `Idempotency-Key`
//! replays (a repeated key gets the first answer, and changes nothing). A control handle
//! injects faults: 500s, 429 with `Retry-After`, an answer held past the client's timeout
//! *after* the write committed, 401s until cleared, a 422 for one record, a record that
//! already exists, a back office that is down. It keeps every record and every accepted write,
//! so tests compare its final state with the terminal's and await what reached it.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::sync::watch;

use crate::mock_server::{Server, wait_until};

/// The credentials the mock accepts.
pub const API_KEY: &str = "MOCK-BACKOFFICE-KEY-9fQ2x";
pub const SIGNING_SECRET: &str = "MOCK-BACKOFFICE-SIGNING-7Lp0w";
/// The signature's window.
pub const SIGNATURE_WINDOW_SECONDS: i64 = 300;
/// The base path the back office serves its API under.
pub const BASE_PATH: &str = "/api/mq-pay";

/// The four collections.
pub const COLLECTIONS: &[&str] = &[
    "transactions",
    "transaction-items",
    "payment-attempts",
    "payment-results",
];

/// A fault the mock answers with instead of doing the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 500 for the next request.
    Status500,
    /// 429 with this many seconds of `Retry-After`, for the next request.
    Status429(u64),
    /// Does the work (commits), then holds the answer this long: past the client's timeout.
    CommitThenHold(Duration),
}

/// One write the mock accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub method: String,
    pub collection: String,
    pub id: String,
    pub body: Value,
    pub idempotency_key: String,
}

#[derive(Debug, Default)]
pub struct State {
    /// collection → id → record.
    pub records: HashMap<String, BTreeMap<String, Value>>,
    /// Every write accepted, in order.
    pub writes: Vec<Write>,
    /// Every request, with its answer's status.
    pub requests: Vec<(String, String, u16)>,
    /// Every header value and body seen, for the secrets test.
    pub raw: Vec<String>,
    /// Idempotency key → the answer first given.
    answers: HashMap<String, (u16, Value)>,
    faults: VecDeque<Fault>,
    /// 401 to everything while set.
    pub deny: bool,
    /// 503 to everything while set.
    pub down: bool,
    /// Ids refused with 422 while listed.
    pub reject_ids: Vec<String>,
    /// Requests with a bad signature or key.
    pub refused_auth: usize,
    /// Requests being answered now, and the most there ever were at once.
    pub in_flight: usize,
    pub most_in_flight: usize,
    /// How far the back office's clock is ahead of this machine's, in seconds: its `Date`
    /// header and its signature window follow it.
    pub clock_offset: i64,
}

impl State {
    /// Drops the faults not yet used.
    pub fn faults_clear(&mut self) {
        self.faults.clear();
    }

    /// The records of a collection.
    pub fn collection(&self, name: &str) -> Vec<&Value> {
        self.records
            .get(name)
            .map(|records| records.values().collect())
            .unwrap_or_default()
    }

    /// One record.
    pub fn record(&self, collection: &str, id: &str) -> Option<&Value> {
        self.records.get(collection).and_then(|r| r.get(id))
    }

    /// How many records a collection holds.
    pub fn count(&self, collection: &str) -> usize {
        self.records.get(collection).map_or(0, BTreeMap::len)
    }

    /// How many requests were answered `status`.
    pub fn answered(&self, status: u16) -> usize {
        self.requests
            .iter()
            .filter(|(_, _, s)| *s == status)
            .count()
    }
}

struct Shared {
    state: Mutex<State>,
    version: watch::Sender<u64>,
    /// Whether requests must be signed.
    signed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_offset(&self) -> i64 {
        self.lock().clock_offset
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

/// The running mock. Dropping it stops the server.
pub struct MockBackOffice {
    /// `http://127.0.0.1:<port>/api/mq-pay`.
    pub base_url: String,
    pub address: std::net::SocketAddr,
    shared: Arc<Shared>,
    _server: Server,
}

impl MockBackOffice {
    /// A mock that requires signed requests, on a free port.
    pub async fn start() -> MockBackOffice {
        MockBackOffice::start_on("127.0.0.1:0", true).await
    }

    /// A mock on `address` (`127.0.0.1:<port>`), signed or not.
    pub async fn start_on(address: &str, signed: bool) -> MockBackOffice {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind the mock back office");
        MockBackOffice::serve(listener, signed)
    }

    /// A port of 127.0.0.1 held for a mock that is not there yet: bound, not listening, so a
    /// connection to it is refused (a back office that is down) and no other test can take it.
    pub fn reserve() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let address = socket.local_addr().expect("address");
        (socket, address)
    }

    /// The mock on a port held by [`MockBackOffice::reserve`]: the back office comes up.
    pub fn start_reserved(socket: tokio::net::TcpSocket, signed: bool) -> MockBackOffice {
        MockBackOffice::serve(socket.listen(1024).expect("listen"), signed)
    }

    fn serve(listener: tokio::net::TcpListener, signed: bool) -> MockBackOffice {
        let (version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            version,
            signed,
        });
        let address = listener.local_addr().expect("address");
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = Server::start(listener, router);
        MockBackOffice {
            base_url: format!("http://{address}{BASE_PATH}"),
            address,
            shared,
            _server: server,
        }
    }

    /// The `[upstream]` section for a daemon syncing to this mock.
    pub fn upstream_section(&self, extra: &str) -> String {
        upstream_section(&self.base_url, self.shared.signed, extra)
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Answers the next requests with these faults, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state().faults.extend(faults);
    }

    pub fn set_deny(&self, deny: bool) {
        self.state().deny = deny;
        self.shared.changed();
    }

    pub fn set_down(&self, down: bool) {
        self.state().down = down;
        self.shared.changed();
    }

    pub fn reject(&self, id: &str) {
        self.state().reject_ids.push(id.to_owned());
    }

    pub fn clear_rejects(&self) {
        self.state().reject_ids.clear();
    }

    /// Stores a record as if an earlier delivery had made it.
    pub fn seed(&self, collection: &str, record: Value) {
        let id = record["id"].as_str().expect("id").to_owned();
        self.state()
            .records
            .entry(collection.to_owned())
            .or_default()
            .insert(id, record);
    }

    /// Waits until `done` holds, woken by every request (not a sleep).
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&State) -> bool,
    ) {
        let waited = wait_until(&self.shared.version, within, || done(&self.shared.lock())).await;
        assert!(
            waited,
            "the mock back office saw no {what} within {within:?}"
        );
    }
}

/// The `[upstream]` section for `base_url`, with the mock's key and (when `signed`) secret.
pub fn upstream_section(base_url: &str, signed: bool, extra: &str) -> String {
    let secret = if signed {
        format!("signing_secret = \"{SIGNING_SECRET}\"\n")
    } else {
        String::new()
    };
    format!("\n[upstream]\nbase_url = \"{base_url}\"\napi_key = \"{API_KEY}\"\n{secret}{extra}\n")
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(unix_seconds: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    ))
    .unwrap_or_default()
}

fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

/// Whether the request carries the key and, when required, a valid signature.
fn authorised(
    shared: &Shared,
    clock_offset: i64,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("authorization") != Some(&format!("Bearer {API_KEY}"))
        || header("x-terminal-id").is_none()
    {
        return false;
    }
    if !shared.signed {
        return true;
    }
    let (Some(timestamp), Some(signature)) =
        (header("x-qrpayd-timestamp"), header("x-qrpayd-signature"))
    else {
        return false;
    };
    let Ok(at) = timestamp.parse::<i64>() else {
        return false;
    };
    if (at - now_seconds() - clock_offset).abs() > SIGNATURE_WINDOW_SECONDS {
        return false;
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).expect("key");
    mac.update(format!("{at}.{method}.{path}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    signature == format!("v1={expected}")
}

/// The parent a record needs first, if any: (collection, id).
fn parents(collection: &str, body: &Value) -> Vec<(&'static str, String)> {
    let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    let mut needed = Vec::new();
    if collection != "transactions"
        && let Some(id) = field("transactionId")
    {
        needed.push(("transactions", id));
    }
    if collection == "payment-attempts"
        && let Some(id) = field("parentId")
    {
        needed.push(("payment-attempts", id));
    }
    if collection == "payment-results"
        && let Some(id) = field("attemptId")
    {
        needed.push(("payment-attempts", id));
    }
    needed
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut state = shared.lock();
        state.in_flight += 1;
        state.most_in_flight = state.most_in_flight.max(state.in_flight);
    }
    // Long enough for requests of other transactions to overlap, as over a real network.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let reply = answer(&shared, &method, &uri, &headers, &body);
    shared.changed();
    if let Some(hold) = reply.hold {
        tokio::time::sleep(hold).await;
    }
    shared.lock().in_flight -= 1;
    let mut response = (reply.status, axum::Json(reply.body)).into_response();
    let date = http_date(now_seconds() + shared.lock_offset());
    if let Ok(value) = date.parse() {
        response.headers_mut().insert("date", value);
    }
    if let Some(seconds) = reply.retry_after {
        response.headers_mut().insert("retry-after", seconds.into());
    }
    response
}

/// What the mock answers.
struct Reply {
    status: StatusCode,
    body: Value,
    hold: Option<Duration>,
    retry_after: Option<u64>,
}

impl Reply {
    fn of((status, body): (StatusCode, Value)) -> Reply {
        Reply {
            status,
            body,
            hold: None,
            retry_after: None,
        }
    }
}

fn answer(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Reply {
    let mut state = shared.lock();
    for (name, value) in headers {
        state
            .raw
            .push(format!("{name}: {}", value.to_str().unwrap_or("")));
    }
    state.raw.push(String::from_utf8_lossy(body).into_owned());
    let path = uri.path().to_owned();
    let reply = if state.down {
        Reply::of(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "DOWN",
            "the back office is down",
        ))
    } else if state.deny || !authorised(shared, state.clock_offset, method, uri, headers, body) {
        state.refused_auth += 1;
        Reply::of(error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "bad key or signature",
        ))
    } else {
        match state.faults.pop_front() {
            Some(Fault::Status500) => Reply::of(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "try again",
            )),
            Some(Fault::Status429(seconds)) => Reply {
                retry_after: Some(seconds),
                ..Reply::of(error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITED",
                    "slow down",
                ))
            },
            Some(Fault::CommitThenHold(duration)) => Reply {
                hold: Some(duration),
                ..Reply::of(work(&mut state, method, &path, headers, body))
            },
            None => Reply::of(work(&mut state, method, &path, headers, body)),
        }
    };
    state
        .requests
        .push((method.to_string(), path, reply.status.as_u16()));
    reply
}

/// The answer to an authorised request: a replay of the first answer to its idempotency key,
/// or the write itself.
fn work(
    state: &mut State,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (StatusCode, Value) {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if let Some((status, value)) = state.answers.get(&key).cloned() {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            value,
        );
    }
    let (status, value) = write(state, method, path, body, &key);
    if status.is_success() && !key.is_empty() {
        state.answers.insert(key, (status.as_u16(), value.clone()));
    }
    (status, value)
}

/// Does the work of a create or a PATCH.
fn write(
    state: &mut State,
    method: &Method,
    path: &str,
    body: &[u8],
    key: &str,
) -> (StatusCode, Value) {
    let Some(rest) = path
        .strip_prefix(BASE_PATH)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such path");
    };
    let (collection, id) = match rest.split_once('/') {
        Some((collection, id)) => (collection, Some(id.to_owned())),
        None => (rest, None),
    };
    if !COLLECTIONS.contains(&collection) {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such collection");
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "the body is not a JSON object",
        );
    };
    let id = match (method, id) {
        (&Method::POST, None) => match fields.get("id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => return error(StatusCode::UNPROCESSABLE_ENTITY, "MISSING_ID", "no id"),
        },
        (&Method::PATCH, Some(id)) => id,
        _ => return error(StatusCode::METHOD_NOT_ALLOWED, "METHOD", "not allowed"),
    };
    if state.reject_ids.contains(&id) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_RECORD",
            "the record is refused on purpose",
        );
    }
    let body = Value::Object(fields.clone());
    for (parent_collection, parent_id) in parents(collection, &body) {
        if state.record(parent_collection, &parent_id).is_none() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "PARENT_NOT_FOUND",
                &format!("{parent_collection}/{parent_id} does not exist"),
            );
        }
    }
    let records = state.records.entry(collection.to_owned()).or_default();
    let stored = if method == Method::POST {
        if records.contains_key(&id) {
            return error(
                StatusCode::CONFLICT,
                "DUPLICATE_ENTITY",
                "the record exists",
            );
        }
        records.insert(id.clone(), body.clone());
        body.clone()
    } else {
        let Some(existing) = records.get_mut(&id) else {
            return error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such record");
        };
        let mut merged: Map<String, Value> = existing.as_object().cloned().unwrap_or_default();
        for (k, v) in fields {
            merged.insert(k, v);
        }
        *existing = Value::Object(merged);
        existing.clone()
    };
    state.writes.push(Write {
        method: method.to_string(),
        collection: collection.to_owned(),
        id,
        body,
        idempotency_key: key.to_owned(),
    });
    let status = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, stored)
}
