//! HTTP to QPay: one `reqwest` client, the bearer-token call with its single renewal on a 401,
//! and the translation of QPay's answers (both error body shapes, `Retry-After`) into
//! [`ProviderError`]s.
//!
//! This module owns the connection and the error vocabulary. It never logs a request or
//! response body (token answers carry secrets; the others are not needed in the journal), never
//! puts a header value into an error, and never decides what an answer means for a payment.

use std::time::Duration;

use reqwest::{Method, StatusCode};

pub(super) use crate::providers::http::{clean, parse_retry_after};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::auth::TokenKeeper;
use crate::providers::ProviderError;

/// How a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallError {
    /// No usable answer (unreachable, timed out, nonsense) or credentials refused: already in the
    /// engine's vocabulary.
    Failed(ProviderError),
    /// QPay answered with an error status.
    Refused(Refusal),
}

/// An error answer from QPay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub status: u16,
    /// QPay's code (`INVOICE_PAID`), or `HTTP_<status>` when the body has none.
    pub code: String,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// An invoice id the error body names, if any (`details.invoice_id`).
    pub invoice_id: Option<String>,
}

impl Refusal {
    /// The default meaning of a refusal. `object` names what the call was about (`invoice X`):
    /// a 404 or a `*_NOTFOUND` code is then `NotFound`; without one, it is a refusal.
    pub fn into_error(self, object: Option<String>) -> ProviderError {
        let not_found = self.status == 404
            || self.code.ends_with("NOTFOUND")
            || self.code.ends_with("NOT_FOUND");
        match self.status {
            429 => ProviderError::RateLimited {
                retry_after: self.retry_after,
            },
            401 => ProviderError::Unauthorized,
            408 => ProviderError::Unavailable("QPay timed out the request (HTTP 408)".to_owned()),
            status if status >= 500 => ProviderError::Unavailable(format!(
                "QPay failed with HTTP {status} ({}: {})",
                self.code, self.message
            )),
            _ if not_found && object.is_some() => {
                ProviderError::NotFound(object.unwrap_or_default())
            }
            _ => ProviderError::Rejected {
                code: self.code,
                message: self.message,
            },
        }
    }
}

impl CallError {
    /// The default meaning of any failure (see [`Refusal::into_error`]).
    pub fn into_error(self, object: Option<String>) -> ProviderError {
        match self {
            CallError::Failed(error) => error,
            CallError::Refused(refusal) => refusal.into_error(object),
        }
    }

    /// QPay's code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Refused(refusal) => Some(&refusal.code),
            CallError::Failed(_) => None,
        }
    }
}

/// How a request proves who sends it.
pub(super) enum Credentials<'a> {
    Basic {
        user: &'a str,
        password: &'a SecretString,
    },
    Bearer(&'a SecretString),
}

/// The HTTP connection to one QPay host.
pub(super) struct Transport {
    client: reqwest::Client,
    base_url: String,
    timeout: Duration,
}

impl Transport {
    /// A transport to `base_url` (no trailing slash) with `timeout` per request.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Transport, String> {
        // reqwest is built without a bundled crypto provider: install ring's once for the
        // process (an error only says one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("qrpayd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Transport {
            client,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
        })
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request and returns the body of a 2xx answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        credentials: Credentials<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let started = std::time::Instant::now();
        let url = format!("{}{}", self.base_url, path);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .timeout(timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        request = match credentials {
            // reqwest marks both headers sensitive, so they never show in its own logs.
            Credentials::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose_secret()))
            }
            Credentials::Bearer(token) => request.bearer_auth(token.expose_secret()),
        };
        request = match body {
            Some(body) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec()),
            None => request,
        };
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
        let bytes = response.bytes().await.map_err(transport_error)?;
        tracing::debug!(
            provider = "qpay",
            method = %method,
            path,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "QPay answered"
        );
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(CallError::Refused(refusal_of(
            status.as_u16(),
            &bytes,
            retry_after,
        )))
    }
}

/// A `reqwest` failure in the engine's vocabulary. Its text names the URL (never a header).
fn transport_error(error: reqwest::Error) -> CallError {
    if error.is_timeout() {
        return CallError::Failed(ProviderError::Timeout);
    }
    let text = crate::providers::http::with_causes(&error);
    CallError::Failed(ProviderError::Unavailable(format!(
        "QPay cannot be reached: {text}"
    )))
}

/// Both error body shapes QPay uses.
#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorField>,
    code: Option<String>,
    message: Option<String>,
    details: Option<serde_json::Value>,
    invoice_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorField {
    /// `{"error": "PAYMENT_SETTLED", "message": "..."}`
    Code(String),
    /// `{"error": {"code": "...", "message": "...", "details": {}}}`
    Object {
        code: Option<String>,
        message: Option<String>,
        details: Option<serde_json::Value>,
    },
}

/// Reads an error answer. A body that is not one of QPay's shapes still gives a refusal named
/// after the status.
pub(super) fn refusal_of(status: u16, body: &[u8], retry_after: Option<Duration>) -> Refusal {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message, details, invoice_id) = match parsed {
        Some(body) => {
            let (code, message, details) = match body.error {
                Some(ErrorField::Code(code)) => (Some(code), body.message, body.details),
                Some(ErrorField::Object {
                    code,
                    message,
                    details,
                }) => (
                    code.or(body.code),
                    message.or(body.message),
                    details.or(body.details),
                ),
                None => (body.code, body.message, body.details),
            };
            (code, message, details, body.invoice_id)
        }
        None => (None, None, None, None),
    };
    let invoice_id = invoice_id.or_else(|| {
        details
            .as_ref()
            .and_then(|d| d.get("invoice_id"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    });
    let code = code
        .map(|c| clean(&c))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP_{status}"));
    let message = message
        .map(|m| clean(&m))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("an error status")
                .to_owned()
        });
    Refusal {
        status,
        code,
        message,
        retry_after,
        invoice_id,
    }
}

/// QPay's API behind a bearer token that is fetched, reused and renewed by the
/// [`TokenKeeper`].
pub(super) struct Api {
    pub transport: Transport,
    pub tokens: TokenKeeper,
}

impl Api {
    /// Sends an authenticated request. On a 401 the token is renewed once (refresh, or a new
    /// token) and the request repeated once; a second 401 is `Unauthorized`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let token = self
            .tokens
            .access(&self.transport)
            .await
            .map_err(CallError::Failed)?;
        let first = self
            .transport
            .send(
                method.clone(),
                path,
                body,
                Credentials::Bearer(&token),
                timeout,
            )
            .await;
        match first {
            Err(CallError::Refused(refusal)) if refusal.status == 401 => {
                tracing::info!(
                    provider = "qpay",
                    path,
                    "QPay refused the access token; renewing it once"
                );
                let token = self
                    .tokens
                    .renew_after_refusal(&self.transport, &token)
                    .await
                    .map_err(CallError::Failed)?;
                match self
                    .transport
                    .send(method, path, body, Credentials::Bearer(&token), timeout)
                    .await
                {
                    Err(CallError::Refused(refusal)) if refusal.status == 401 => {
                        Err(CallError::Failed(ProviderError::Unauthorized))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// [`Api::call`] with a JSON answer. A 2xx answer that is not the expected JSON is
    /// `Unavailable` (the outcome is unknown).
    pub async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let bytes = self.call(method, path, body, timeout).await?;
        parse_json(path, &bytes).map_err(CallError::Failed)
    }
}

/// Parses a 2xx answer. The error says where it failed, never what the body held.
pub(super) fn parse_json<T: DeserializeOwned>(
    path: &str,
    bytes: &[u8],
) -> Result<T, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ProviderError::Unavailable(format!(
            "QPay answered {path} with malformed JSON (line {}, column {}: {})",
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Io => "unreadable",
                serde_json::error::Category::Syntax => "not JSON",
                serde_json::error::Category::Data => "unexpected fields or values",
                serde_json::error::Category::Eof => "cut short",
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_shapes_give_code_and_message() {
        let flat = refusal_of(
            400,
            br#"{"error":"PAYMENT_SETTLED","message":"PAYMENT_SETTLED"}"#,
            None,
        );
        assert_eq!(flat.code, "PAYMENT_SETTLED");
        assert_eq!(flat.message, "PAYMENT_SETTLED");
        let nested = refusal_of(
            422,
            br#"{"error":{"code":"INVALID_REQUEST","message":"Invoice amount must be greater than 0","details":{"invoice_id":"inv-1"}}}"#,
            None,
        );
        assert_eq!(nested.code, "INVALID_REQUEST");
        assert_eq!(nested.message, "Invoice amount must be greater than 0");
        assert_eq!(nested.invoice_id.as_deref(), Some("inv-1"));
        let garbage = refusal_of(502, b"<html>oops</html>", None);
        assert_eq!(garbage.code, "HTTP_502");
        assert_eq!(garbage.message, "Bad Gateway");
    }

    #[test]
    fn statuses_map_to_the_engine_vocabulary() {
        let refusal = |status: u16, code: &str| Refusal {
            status,
            code: code.to_owned(),
            message: "m".to_owned(),
            retry_after: Some(Duration::from_secs(3)),
            invoice_id: None,
        };
        assert_eq!(
            refusal(429, "HTTP_429").into_error(None),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(
            refusal(503, "HTTP_503").into_error(None),
            ProviderError::Unavailable(_)
        ));
        assert_eq!(
            refusal(404, "HTTP_404").into_error(Some("invoice X".into())),
            ProviderError::NotFound("invoice X".into())
        );
        assert_eq!(
            refusal(422, "INVOICE_NOTFOUND").into_error(Some("invoice X".into())),
            ProviderError::NotFound("invoice X".into())
        );
        assert_eq!(
            refusal(422, "INVALID_AMOUNT").into_error(None),
            ProviderError::Rejected {
                code: "INVALID_AMOUNT".into(),
                message: "m".into()
            }
        );
        assert_eq!(
            refusal(404, "HTTP_404").into_error(None),
            ProviderError::Rejected {
                code: "HTTP_404".into(),
                message: "m".into()
            }
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = time::macros::datetime!(2026-11-21 10:00:00 UTC);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:00:07 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn malformed_json_says_where_not_what() {
        let error = parse_json::<serde_json::Value>("/v2/invoice", b"{\"access_token\": \"abc")
            .expect_err("malformed");
        let text = error.to_string();
        assert!(text.contains("/v2/invoice"), "{text}");
        assert!(!text.contains("abc"), "{text}");
    }
}
