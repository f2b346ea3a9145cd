//! HTTP to AppotaPay: one `reqwest` client, the three headers every request carries (a fresh
//! `X-APPOTAPAY-AUTH` JWT, a UUIDv4 `X-Request-Id`, and on a body the `X-Signature` of the very
//! bytes sent), and the translation of AppotaPay's answers into [`ProviderError`]s by the error
//! code table of provider-notes.md and seed 004.
//!
//! This module owns the connection and the error vocabulary. It never logs a request or an
//! answer body (a card payment's body holds the card), never puts a header value into an
//! error, and never decides what an answer means for a payment.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

pub(super) use crate::providers::http::{clean, parse_retry_after};

use super::auth::Credentials;
use super::model::ErrorBody;
use crate::providers::ProviderError;

/// The JWT header (seed 003 writes `X-AppotaPay-Auth`; HTTP names are case-insensitive).
pub const AUTH_HEADER: &str = "X-APPOTAPAY-AUTH";
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";
pub const SIGNATURE_HEADER: &str = "X-Signature";

/// The code that says "the value you sent is invalid" in the engine's vocabulary.
pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";

/// What a redacted secret reads as.
const REDACTED: &str = "[redacted]";

/// How a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallError {
    /// No usable answer (unreachable, timed out, nonsense): already in the engine's vocabulary.
    Failed(ProviderError),
    /// AppotaPay answered with an error.
    Refused(Refusal),
}

/// An error answer from AppotaPay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    /// The HTTP status (200 for an error body in a 2xx answer).
    pub status: u16,
    /// AppotaPay's error code, as sent (`"30"`).
    pub code: Option<String>,
    /// AppotaPay's message, cleaned and bounded.
    pub message: String,
    /// The names of the fields `errors[]` blames (seed 004), never their values.
    pub fields: Vec<String>,
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// A refusal read from an error body.
    pub fn from_body(status: u16, body: &ErrorBody, retry_after: Option<Duration>) -> Refusal {
        let fields = body
            .errors
            .iter()
            .filter_map(|e| match &e.field {
                Some(serde_json::Value::String(name)) => Some(clean(name)),
                _ => None,
            })
            .filter(|name| !name.is_empty())
            .take(10)
            .collect();
        Refusal {
            status,
            code: body.code().map(clean),
            message: body.message().map(clean).unwrap_or_default(),
            fields,
            retry_after,
        }
    }

    /// A refusal a 2xx answer reports in its transaction (`status` `error`), its texts made safe
    /// as an error body's are (found by the property run: a control character or an unbounded
    /// text of the transaction went into the error, and from there into the till's error and
    /// the attempt's failure).
    pub fn in_transaction(code: Option<&str>, message: Option<&str>) -> Refusal {
        Refusal {
            status: 200,
            code: code.map(clean).filter(|c| !c.is_empty()),
            message: message.map(clean).unwrap_or_default(),
            fields: Vec::new(),
            retry_after: None,
        }
    }

    /// AppotaPay's code as a number, when it is one.
    pub fn number(&self) -> Option<u32> {
        self.code.as_deref().and_then(|c| c.trim().parse().ok())
    }

    /// Replaces every occurrence of each of `secrets` in the message, the code and the field
    /// names (a provider that echoes a card number must not put it into an error, wherever it
    /// echoes it; found by the property run: a card number sent back as the error code).
    pub fn redact(mut self, secrets: &[&str]) -> Refusal {
        for secret in secrets.iter().filter(|s| s.len() >= 4) {
            self.message = self.message.replace(secret, REDACTED);
            if let Some(code) = &mut self.code {
                *code = code.replace(secret, REDACTED);
            }
            for field in &mut self.fields {
                *field = field.replace(secret, REDACTED);
            }
        }
        self
    }

    /// The meaning of a refusal, by provider-notes.md's table and seed 004's: `object` names
    /// what the call was about, so that "not found" can say so.
    pub fn into_error(self, object: Option<&str>) -> ProviderError {
        if self.status == 429 {
            return ProviderError::RateLimited {
                retry_after: self.retry_after,
            };
        }
        let number = self.number();
        if self.status == 401 || number == Some(401) {
            return ProviderError::Unauthorized;
        }
        let message = self.describe();
        match (number, &self.code) {
            (Some(1 | 32), _) => ProviderError::Rejected {
                code: INVALID_ARGUMENT.to_owned(),
                message,
            },
            (Some(42 | 93 | 94 | 95 | 500), _) => ProviderError::Unavailable(message),
            (Some(36), _) if object.is_some() => {
                ProviderError::NotFound(object.unwrap_or_default().to_owned())
            }
            (_, Some(code)) => ProviderError::Rejected {
                code: code.clone(),
                message,
            },
            (_, None) if self.status == 404 && object.is_some() => {
                ProviderError::NotFound(object.unwrap_or_default().to_owned())
            }
            (_, None) if self.status >= 500 || self.status == 408 => {
                ProviderError::Unavailable(message)
            }
            (_, None) => ProviderError::Rejected {
                code: format!("HTTP_{}", self.status),
                message,
            },
        }
    }

    /// One sentence: AppotaPay's message (or the documented meaning of its code), its code, and
    /// the fields it blamed.
    fn describe(&self) -> String {
        let meaning = if self.message.is_empty() {
            self.number().and_then(code_meaning).unwrap_or("no message")
        } else {
            &self.message
        };
        let mut text = match &self.code {
            Some(code) => format!("AppotaPay error {code}: {meaning}"),
            None => format!("AppotaPay answered HTTP {}: {meaning}", self.status),
        };
        if !self.fields.is_empty() {
            text.push_str(" (fields: ");
            text.push_str(&self.fields.join(", "));
            text.push(')');
        }
        text
    }
}

impl CallError {
    /// The default meaning of any failure (see [`Refusal::into_error`]).
    pub fn into_error(self, object: Option<&str>) -> ProviderError {
        match self {
            CallError::Failed(error) => error,
            CallError::Refused(refusal) => refusal.into_error(object),
        }
    }
}

/// What the documents say a code means, for an answer that carries none.
pub(super) fn code_meaning(code: u32) -> Option<&'static str> {
    Some(match code {
        1 => "missing or invalid parameters",
        2 => "wrong signature",
        30 => "duplicate order id",
        31 => "the order was voided",
        32 => "invalid amount",
        33 => "the payment failed",
        34 => "the payment is pending",
        36 => "the order was not found",
        37 => "the order already succeeded and cannot be cancelled",
        38 => "the customer cancelled",
        42 | 93 | 94 | 95 => "AppotaPay is temporarily unavailable",
        67 => "the payment timed out",
        90 => "X-Account-Ref-ID is invalid",
        140 => "the partner may not use this payment method",
        141 => "the partner may not use this bank code",
        401 => "authentication failed",
        500 => "AppotaPay server error",
        _ => return None,
    })
}

/// A 2xx answer's body.
pub(super) struct Answer {
    pub bytes: Vec<u8>,
}

/// The HTTP connection to AppotaPay's hosts.
pub(super) struct Transport {
    client: reqwest::Client,
    credentials: Credentials,
}

impl Transport {
    /// A transport signing with `credentials`, giving each request `timeout`.
    pub fn new(credentials: Credentials, timeout: Duration) -> Result<Transport, String> {
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
            credentials,
        })
    }

    /// Sends one request to `base_url` + `path` and returns the body of a 2xx answer. A body is
    /// sent exactly as given, and its signature is computed over those same bytes.
    pub async fn send(
        &self,
        method: Method,
        base_url: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, CallError> {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4();
        let url = format!("{base_url}{path}");
        let mut request = self
            .client
            .request(method.clone(), &url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(AUTH_HEADER, sensitive(self.credentials.token_now())?)
            .header(REQUEST_ID_HEADER, request_id.to_string());
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(
                    SIGNATURE_HEADER,
                    sensitive(self.credentials.sign_body(&body))?,
                )
                .body(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
        let bytes = response.bytes().await.map_err(transport_error)?;
        tracing::debug!(
            provider = "appotapay",
            method = %method,
            path = path.split('?').next().unwrap_or(path),
            request_id = %request_id,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "AppotaPay answered"
        );
        if status.is_success() {
            return Ok(Answer {
                bytes: bytes.to_vec(),
            });
        }
        Err(CallError::Refused(refusal_of(
            status.as_u16(),
            &bytes,
            retry_after,
        )))
    }
}

/// A header value that HTTP libraries must not print (the JWT, the signature).
fn sensitive(value: String) -> Result<reqwest::header::HeaderValue, CallError> {
    let mut value = reqwest::header::HeaderValue::try_from(value).map_err(|_| {
        CallError::Failed(ProviderError::Unavailable(
            "an AppotaPay header cannot be encoded".to_owned(),
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A `reqwest` failure in the engine's vocabulary. Its text names the host and path only:
/// reqwest's own message includes the URL, which never carries a secret here.
fn transport_error(error: reqwest::Error) -> CallError {
    if error.is_timeout() {
        return CallError::Failed(ProviderError::Timeout);
    }
    let text = crate::providers::http::with_causes(&error);
    CallError::Failed(ProviderError::Unavailable(format!(
        "AppotaPay cannot be reached: {text}"
    )))
}

/// Reads an error answer; a body in neither of AppotaPay's shapes still gives a refusal named
/// after the status.
pub(super) fn refusal_of(status: u16, body: &[u8], retry_after: Option<Duration>) -> Refusal {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let mut refusal = Refusal::from_body(status, &parsed, retry_after);
    if refusal.message.is_empty() && refusal.code.is_none() {
        refusal.message = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("an error status")
            .to_owned();
    }
    refusal
}

/// Parses a 2xx answer. The error says where it failed, never what the body held.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ProviderError::Unavailable(format!(
            "AppotaPay answered {what} with malformed JSON (line {}, column {}: {})",
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

pub(super) use crate::providers::http::encode_component;

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(status: u16, code: Option<&str>) -> Refusal {
        Refusal {
            status,
            code: code.map(str::to_owned),
            message: "m".to_owned(),
            fields: vec![],
            retry_after: Some(Duration::from_secs(3)),
        }
    }

    #[test]
    fn codes_map_to_the_engine_vocabulary() {
        let invalid = |code| match refusal(400, Some(code)).into_error(None) {
            ProviderError::Rejected { code, .. } => code == INVALID_ARGUMENT,
            _ => false,
        };
        assert!(invalid("1") && invalid("32"));
        for code in ["42", "93", "94", "95", "500"] {
            assert!(
                matches!(
                    refusal(400, Some(code)).into_error(None),
                    ProviderError::Unavailable(_)
                ),
                "{code}"
            );
        }
        assert_eq!(
            refusal(400, Some("401")).into_error(None),
            ProviderError::Unauthorized
        );
        assert_eq!(
            refusal(401, None).into_error(None),
            ProviderError::Unauthorized
        );
        assert_eq!(
            refusal(429, None).into_error(None),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            refusal(400, Some("36")).into_error(Some("order Q1")),
            ProviderError::NotFound("order Q1".into())
        );
        assert_eq!(
            refusal(400, Some("33")).into_error(None),
            ProviderError::Rejected {
                code: "33".into(),
                message: "AppotaPay error 33: m".into()
            }
        );
        assert!(matches!(
            refusal(502, None).into_error(None),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            refusal(403, None).into_error(None),
            ProviderError::Rejected { code, .. } if code == "HTTP_403"
        ));
    }

    #[test]
    fn field_names_are_kept_and_echoed_secrets_are_not() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"errorCode":1,"message":"card 9704000000000018 is invalid","errors":[{"field":"sourceOfFunds.card.cardNumber","reason":"9704000000000018 fails Luhn"}]}"#,
        )
        .expect("body");
        let refusal = Refusal::from_body(400, &body, None).redact(&["9704000000000018"]);
        let text = refusal.into_error(None).to_string();
        assert!(!text.contains("9704000000000018"), "{text}");
        assert!(text.contains("sourceOfFunds.card.cardNumber"), "{text}");
    }

    /// Found by the property run (`tests/parsers`): a card number AppotaPay sends back as the
    /// error code reached the error's text, since only the message was redacted.
    #[test]
    fn a_card_number_echoed_as_the_error_code_is_redacted() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"errorCode":"9704000000000018","message":"m","errors":[{"field":"9704000000000018"}]}"#,
        )
        .expect("body");
        let refusal = Refusal::from_body(400, &body, None).redact(&["9704000000000018"]);
        let text = refusal.into_error(None).to_string();
        assert!(!text.contains("9704000000000018"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = time::macros::datetime!(2026-11-21 10:00:00 UTC);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:00:07 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn components_are_encoded() {
        assert_eq!(encode_component("Q1_a-b"), "Q1_a-b");
        assert_eq!(encode_component("a/b c"), "a%2Fb%20c");
    }
}
