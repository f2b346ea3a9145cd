//! The MQ-Pay HTTP client: how qrpayd speaks to an MQ-Pay server (seed 000's API), whoever
//! the caller is. The upstream sync (`sync`) is one user; the MQ-Pay gateway provider will be
//! another.
//!
//! It owns the wire conventions every MQ-Pay request shares: the base URL, the bearer API key,
//! `X-Terminal-Id`, the optional `Idempotency-Key`, the optional request signature
//! (`X-Qrpayd-Timestamp`, `X-Qrpayd-Signature: v1=<hex HMAC-SHA256>`, see [`signature`]), a
//! clock that follows the server's `Date` when the local one is off by more than a minute,
//! MQ-Pay's error shape `{"error": {"code", "message"}}`, and the one classification of a
//! failed request ([`MqPayError::disposition`]). It knows no record of qrpayd's: callers send
//! JSON they built.
//!
//! It never logs, returns in an error, or prints (no `Debug` on anything holding them) the API
//! key, the signing secret or a signature.

mod sign;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};

use crate::providers::http::{clean, parse_retry_after, with_causes};
pub use sign::signature;

/// How far the local clock may be from the server's before timestamps follow the server.
pub const CLOCK_SKEW_TOLERANCE: Duration = Duration::from_secs(60);

/// What an MQ-Pay client needs to know.
#[derive(Clone)]
pub struct MqPaySettings {
    /// `https://host/path`, without a trailing slash.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <api_key>`.
    pub api_key: SecretString,
    /// When present, every request is signed with it.
    pub signing_secret: Option<SecretString>,
    /// The longest a request may take, connection included.
    pub request_timeout: Duration,
    /// Sent as `X-Terminal-Id`.
    pub terminal_id: String,
}

impl std::fmt::Debug for MqPaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqPaySettings")
            .field("base_url", &self.base_url)
            .field("signed", &self.signing_secret.is_some())
            .field("request_timeout", &self.request_timeout)
            .field("terminal_id", &self.terminal_id)
            .finish_non_exhaustive()
    }
}

/// The HTTP methods MQ-Pay's API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    /// The method's name, as signed.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }

    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Patch => reqwest::Method::PATCH,
        }
    }
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MqPayError {
    /// The request may or may not have reached the server.
    #[error("MQ-Pay cannot be reached: {0}")]
    Unreachable(String),
    #[error("MQ-Pay did not answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with a status that is not 2xx.
    #[error("MQ-Pay answered {}", .0)]
    Refused(Refusal),
    /// A 2xx answer whose body is not JSON.
    #[error("MQ-Pay answered {status} with a body that is not JSON")]
    NotJson { status: u16 },
}

/// A non-2xx answer: its status, MQ-Pay's error code and message when the body had them, and
/// how long the server asked to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: Option<String>,
    pub message: Option<String>,
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// What a caller should do about a failed request: the one classification every caller uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Try again later (network, timeout, 408, 425, 429, 5xx), after at least `after` when the
    /// server said so.
    Retry { after: Option<Duration> },
    /// The credentials are refused (401, 403): nothing will pass until they are fixed.
    Auth,
    /// A create found the record already there (409, or an error code naming a duplicate).
    Exists,
    /// The record is not there (404).
    NotFound,
    /// The server refused this request for good (any other 4xx, or a 2xx that is not JSON):
    /// repeating it unchanged will not help.
    Rejected,
}

impl MqPayError {
    /// How a caller should react to this failure.
    pub fn disposition(&self) -> Disposition {
        match self {
            MqPayError::Unreachable(_) | MqPayError::Timeout(_) => {
                Disposition::Retry { after: None }
            }
            MqPayError::NotJson { .. } => Disposition::Rejected,
            MqPayError::Refused(refusal) => refusal.disposition(),
        }
    }
}

impl Refusal {
    fn disposition(&self) -> Disposition {
        let names_duplicate = self.code.as_deref().is_some_and(|code| {
            let code = code.to_ascii_uppercase();
            code.contains("DUPLICATE") || code.contains("ALREADY_EXISTS") || code == "EXISTS"
        });
        match self.status {
            401 | 403 => Disposition::Auth,
            409 => Disposition::Exists,
            _ if names_duplicate => Disposition::Exists,
            404 => Disposition::NotFound,
            408 | 425 | 429 | 500..=599 => Disposition::Retry {
                after: self.retry_after,
            },
            _ => Disposition::Rejected,
        }
    }
}

/// One request to MQ-Pay.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    /// The path below the base URL, with its query (`/transactions/abc`).
    pub path: &'a str,
    pub body: Option<&'a serde_json::Value>,
    /// Sent as `Idempotency-Key`, when given.
    pub idempotency_key: Option<&'a str>,
}

/// A client of one MQ-Pay server. Cloning is cheap and shares the connection pool and the
/// clock offset.
#[derive(Clone)]
pub struct MqPay {
    http: reqwest::Client,
    settings: Arc<MqPaySettings>,
    /// The server's clock minus the local one, in seconds, when that was more than
    /// [`CLOCK_SKEW_TOLERANCE`]; otherwise 0.
    clock_offset: Arc<AtomicI64>,
}

impl std::fmt::Debug for MqPay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqPay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl MqPay {
    /// A client for `settings`. Fails only when no HTTP client can be built.
    pub fn new(settings: MqPaySettings) -> Result<MqPay, String> {
        // reqwest is built without a bundled crypto provider: install ring's once for the
        // process (an error only says one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.request_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("qrpayd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(MqPay {
            http,
            settings: Arc::new(settings),
            clock_offset: Arc::new(AtomicI64::new(0)),
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.settings.base_url
    }

    /// The seconds added to the local clock for timestamps (0 unless it was off by more than
    /// a minute).
    pub fn clock_offset_seconds(&self) -> i64 {
        self.clock_offset.load(Ordering::Relaxed)
    }

    /// Sends `request` and returns the JSON of a 2xx answer (`null` for an empty body).
    ///
    /// A signed request refused with 401 or 403 whose answer showed the local clock off from
    /// the server's (so the signature's timestamp was refused, most likely) is sent once more
    /// at once, timed by the server's clock.
    pub async fn send(&self, request: Request<'_>) -> Result<serde_json::Value, MqPayError> {
        let body = request
            .body
            .map(|value| serde_json::to_vec(value).unwrap_or_default());
        self.send_bytes(request, body).await
    }

    /// Sends `request` with `body`, JSON the caller wrote itself, as its exact bytes
    /// (`request.body` is not read): for a body `serde_json::Value` cannot hold, such as an
    /// amount written as a JSON number from its decimal digits, never through a float. Sent
    /// again on the server's clock as [`MqPay::send`] is.
    pub async fn send_json(
        &self,
        request: Request<'_>,
        body: Vec<u8>,
    ) -> Result<serde_json::Value, MqPayError> {
        self.send_bytes(request, Some(body)).await
    }

    async fn send_bytes(
        &self,
        request: Request<'_>,
        body: Option<Vec<u8>>,
    ) -> Result<serde_json::Value, MqPayError> {
        let offset = self.clock_offset_seconds();
        match self.send_once(request.clone(), body.clone()).await {
            Err(error)
                if self.settings.signing_secret.is_some()
                    && error.disposition() == Disposition::Auth
                    && self.clock_offset_seconds() != offset =>
            {
                self.send_once(request, body).await
            }
            other => other,
        }
    }

    async fn send_once(
        &self,
        request: Request<'_>,
        body: Option<Vec<u8>>,
    ) -> Result<serde_json::Value, MqPayError> {
        let has_body = body.is_some();
        let body = body.unwrap_or_default();
        let url = format!("{}{}", self.settings.base_url, request.path);
        let mut builder = self
            .http
            .request(request.method.to_reqwest(), &url)
            .header(reqwest::header::ACCEPT, "application/json")
            // reqwest marks the Authorization header sensitive: it never shows in its logs.
            .bearer_auth(self.settings.api_key.expose_secret())
            .header("X-Terminal-Id", &self.settings.terminal_id);
        if let Some(key) = request.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        if let Some(secret) = &self.settings.signing_secret {
            let timestamp = self.timestamp_now();
            let path = signed_path(&self.settings.base_url, request.path);
            let signature = signature(secret, timestamp, request.method.as_str(), &path, &body);
            builder = builder
                .header("X-Qrpayd-Timestamp", timestamp.to_string())
                .header("X-Qrpayd-Signature", format!("v1={signature}"));
        }
        if has_body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = builder.send().await.map_err(|e| self.transport_error(e))?;
        self.follow_server_clock(response.headers().get(reqwest::header::DATE));
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        if (200..300).contains(&status) {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(serde_json::Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|_| MqPayError::NotJson { status });
        }
        Err(MqPayError::Refused(refusal_of(status, &bytes, retry_after)))
    }

    /// Unix seconds by the server's clock, as far as this client knows it.
    fn timestamp_now(&self) -> i64 {
        unix_now().saturating_add(self.clock_offset_seconds())
    }

    /// Remembers how far the server's `Date` is from the local clock, when that is more than
    /// [`CLOCK_SKEW_TOLERANCE`]; forgets it when the clocks agree again.
    fn follow_server_clock(&self, date: Option<&reqwest::header::HeaderValue>) {
        let Some(server) = date.and_then(|v| v.to_str().ok()).and_then(parse_http_date) else {
            return;
        };
        let offset = server - unix_now();
        let tolerance = CLOCK_SKEW_TOLERANCE.as_secs() as i64;
        let new = if offset.abs() > tolerance { offset } else { 0 };
        let old = self.clock_offset.swap(new, Ordering::Relaxed);
        if old != new && new != 0 {
            tracing::warn!(
                offset_seconds = new,
                "the local clock is off from MQ-Pay's; request timestamps follow MQ-Pay's clock"
            );
        }
    }

    /// A `reqwest` failure in this module's words. Its text names the URL, never a header.
    fn transport_error(&self, error: reqwest::Error) -> MqPayError {
        if error.is_timeout() {
            return MqPayError::Timeout(self.settings.request_timeout);
        }
        MqPayError::Unreachable(with_causes(&error))
    }
}

/// The path the signature covers: the base URL's own path, then the request's path and query.
fn signed_path(base_url: &str, path: &str) -> String {
    let base_path = reqwest::Url::parse(base_url)
        .map(|url| url.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    format!("{base_path}{path}")
}

/// Reads an error answer: MQ-Pay's `{"error": {"code", "message"}}`, or the flat
/// `{"error": "CODE", "message": "..."}` some servers send; texts cleaned and bounded.
pub fn refusal_of(status: u16, body: &[u8], retry_after: Option<Duration>) -> Refusal {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = |value: Option<&serde_json::Value>| {
        value
            .and_then(serde_json::Value::as_str)
            .map(clean)
            .filter(|s| !s.is_empty())
    };
    let (code, message) = match json.as_ref().and_then(|j| j.get("error")) {
        Some(error) if error.is_object() => (text(error.get("code")), text(error.get("message"))),
        Some(error) => (
            text(Some(error)),
            text(json.as_ref().and_then(|j| j.get("message"))),
        ),
        None => (None, None),
    };
    Refusal {
        status,
        code,
        message,
        retry_after,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
pub fn parse_http_date(value: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(value.trim(), &format)
        .ok()
        .map(|at| at.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, body: &str) -> MqPayError {
        MqPayError::Refused(refusal_of(status, body.as_bytes(), None))
    }

    #[test]
    fn failures_are_classified_once() {
        let retry = Disposition::Retry { after: None };
        assert_eq!(MqPayError::Unreachable("x".into()).disposition(), retry);
        assert_eq!(
            MqPayError::Timeout(Duration::from_secs(1)).disposition(),
            retry
        );
        for status in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(refused(status, "").disposition(), retry, "{status}");
        }
        assert_eq!(refused(401, "").disposition(), Disposition::Auth);
        assert_eq!(refused(403, "").disposition(), Disposition::Auth);
        assert_eq!(refused(409, "").disposition(), Disposition::Exists);
        assert_eq!(
            refused(
                422,
                r#"{"error":{"code":"DUPLICATE_ENTITY","message":"exists"}}"#
            )
            .disposition(),
            Disposition::Exists
        );
        assert_eq!(refused(404, "").disposition(), Disposition::NotFound);
        for status in [400, 405, 413, 422] {
            assert_eq!(refused(status, "{}").disposition(), Disposition::Rejected);
        }
        assert_eq!(
            MqPayError::NotJson { status: 200 }.disposition(),
            Disposition::Rejected
        );
        let waited = MqPayError::Refused(refusal_of(429, b"", Some(Duration::from_secs(7))));
        assert_eq!(
            waited.disposition(),
            Disposition::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn both_error_shapes_are_read() {
        let nested = refusal_of(
            422,
            br#"{"error":{"code":"INVALID_TRANSACTION_STATUS","message":"Cannot add\npayment"}}"#,
            None,
        );
        assert_eq!(nested.code.as_deref(), Some("INVALID_TRANSACTION_STATUS"));
        assert_eq!(nested.message.as_deref(), Some("Cannot add payment"));
        assert_eq!(
            nested.to_string(),
            "HTTP 422 INVALID_TRANSACTION_STATUS: Cannot add payment"
        );
        let flat = refusal_of(400, br#"{"error":"BAD","message":"no"}"#, None);
        assert_eq!(flat.code.as_deref(), Some("BAD"));
        assert_eq!(flat.message.as_deref(), Some("no"));
        let html = refusal_of(502, b"<html>bad gateway</html>", None);
        assert_eq!((html.code, html.message), (None, None));
    }

    #[test]
    fn http_dates_are_read() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn the_signed_path_keeps_the_base_path_and_the_query() {
        assert_eq!(
            signed_path("https://bo.example/api/mq-pay", "/transactions/a?x=1"),
            "/api/mq-pay/transactions/a?x=1"
        );
        assert_eq!(
            signed_path("http://127.0.0.1:9", "/transactions"),
            "/transactions"
        );
    }

    #[test]
    fn debug_never_shows_the_secrets() {
        let settings = MqPaySettings {
            base_url: "https://bo.example".into(),
            api_key: SecretString::from("key-very-secret".to_owned()),
            signing_secret: Some(SecretString::from("sign-very-secret".to_owned())),
            request_timeout: Duration::from_secs(1),
            terminal_id: "T-1".into(),
        };
        let text = format!("{settings:?}");
        assert!(!text.contains("very-secret"), "{text}");
    }
}
