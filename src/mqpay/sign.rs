//! The request signature: `v1=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<METHOD>.<path
//! with query>.<body bytes>")>`, the path being the URL's whole path as the server receives it.
//! A back office checks it by recomputing it over the bytes it received.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The lowercase hex HMAC-SHA256 of `"<timestamp>.<method>.<path>.<body>"` keyed with `secret`
/// (the value after `v1=`).
pub fn signature(
    secret: &SecretString,
    timestamp: i64,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    // HMAC takes a key of any length; the fallback is never reached.
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    mac.update(format!("{timestamp}.{method}.{path}.").as_bytes());
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed vector a back-office developer can check an implementation against (the same
    /// figures are in the README).
    #[test]
    fn the_signature_matches_the_documented_vector() {
        let secret = SecretString::from("s3cret".to_owned());
        let body = br#"{"id":"t1"}"#;
        let signed = signature(&secret, 1_764_000_000, "POST", "/api/transactions", body);
        assert_eq!(
            signed,
            "5c487e8b9a4505e3d97b4192ae9009ac5642237709867c84d402d988ac6776f5"
        );
        assert_ne!(
            signed,
            signature(&secret, 1_764_000_001, "POST", "/api/transactions", body)
        );
    }
}
