//! AppotaPay's request authentication: the `X-APPOTAPAY-AUTH` JWT (HS256), the `X-Signature`
//! of a request body, and the constant-time check of a signature AppotaPay sent (IPN).
//!
//! The JWT is built by hand, as provider-notes.md describes it: the fixed header
//! `{"typ":"JWT","alg":"HS256","cty":"appotapay-api;v=1"}`, the claims `iss` (partner code),
//! `jti` (`API_KEY-unix_seconds`), `api_key` and `exp`, each part base64url without padding,
//! and an HMAC-SHA256 of `header.claims` keyed with the secret key. A fresh token is made for
//! every request, so none is ever kept.
//!
//! This module owns the secret key's only uses. It never logs, returns in an error, or prints
//! (no `Debug` on anything holding it) the key, a token or a signature.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The JWT header, byte for byte as AppotaPay documents it.
pub const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"HS256","cty":"appotapay-api;v=1"}"#;

/// How long a token is valid (AppotaPay's own sample uses 300 seconds).
pub const JWT_TTL: Duration = Duration::from_secs(300);

/// The claims, in the documented order.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    jti: String,
    api_key: &'a str,
    exp: u64,
}

/// Who qrpayd is at AppotaPay: the partner code, the API key and the secret key.
pub struct Credentials {
    pub partner_code: String,
    pub api_key: String,
    pub secret_key: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("partner_code", &self.partner_code)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// A token for a request sent now.
    pub fn token_now(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.token_at(now)
    }

    /// The token for a request sent at `unix_seconds` (fixed in tests).
    pub fn token_at(&self, unix_seconds: u64) -> String {
        jwt(
            &self.partner_code,
            &self.api_key,
            &self.secret_key,
            unix_seconds,
            JWT_TTL,
        )
    }

    /// The `X-Signature` of a request body.
    pub fn sign_body(&self, body: &[u8]) -> String {
        sign_hex(&self.secret_key, body)
    }
}

/// An `X-APPOTAPAY-AUTH` token issued at `unix_seconds`, valid for `ttl`.
pub fn jwt(
    partner_code: &str,
    api_key: &str,
    secret_key: &SecretString,
    unix_seconds: u64,
    ttl: Duration,
) -> String {
    let claims = Claims {
        iss: partner_code,
        jti: format!("{api_key}-{unix_seconds}"),
        api_key,
        exp: unix_seconds.saturating_add(ttl.as_secs()),
    };
    // Serializing a struct of strings and integers cannot fail; an empty object would only be
    // refused by AppotaPay, never sent with a secret in it.
    let claims = serde_json::to_vec(&claims).unwrap_or_default();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(JWT_HEADER),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(secret_key, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// Lowercase hex HMAC-SHA256 of `data` keyed with `secret_key`.
pub fn sign_hex(secret_key: &SecretString, data: &[u8]) -> String {
    hex(&hmac_sha256(secret_key, data))
}

/// Whether `signature` (hex, either case) is the HMAC-SHA256 of `data`, compared in constant
/// time. A signature that is not hex, or of the wrong length, is simply not a match.
pub fn verify_hex(secret_key: &SecretString, data: &[u8], signature: &str) -> bool {
    let Some(expected) = unhex(signature.trim()) else {
        return false;
    };
    let mut mac = new_mac(secret_key);
    mac.update(data);
    mac.verify_slice(&expected).is_ok()
}

fn new_mac(secret_key: &SecretString) -> HmacSha256 {
    // HMAC takes a key of any length (longer keys are hashed), so this cannot fail; the
    // fallback keeps the type total without a panic.
    HmacSha256::new_from_slice(secret_key.expose_secret().as_bytes())
        .unwrap_or_else(|_| HmacSha256::new(&Default::default()))
}

fn hmac_sha256(secret_key: &SecretString, data: &[u8]) -> Vec<u8> {
    let mut mac = new_mac(secret_key);
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let key = SecretString::from("Jefe");
        assert_eq!(
            sign_hex(&key, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_verify_in_either_case_and_nothing_else_does() {
        let key = SecretString::from("k");
        let signature = sign_hex(&key, b"data");
        assert!(verify_hex(&key, b"data", &signature));
        assert!(verify_hex(&key, b"data", &signature.to_uppercase()));
        assert!(!verify_hex(&key, b"datA", &signature));
        assert!(!verify_hex(&key, b"data", &signature[..62]));
        assert!(!verify_hex(&key, b"data", "zz"));
        assert!(!verify_hex(&key, b"data", ""));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(unhex("000fA5ff"), Some(vec![0x00, 0x0f, 0xa5, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("g0"), None);
    }

    #[test]
    fn credentials_debug_shows_no_key() {
        let credentials = Credentials {
            partner_code: "P".into(),
            api_key: "api-key-value".into(),
            secret_key: SecretString::from("secret-value"),
        };
        let text = format!("{credentials:?}");
        assert!(!text.contains("api-key-value") && !text.contains("secret-value"));
    }
}
