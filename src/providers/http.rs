//! What the HTTP providers share: making a provider's text safe for an error message, and
//! reading `Retry-After`. Only `providers` speak HTTP; this is their common ground.

use std::time::Duration;

/// The longest provider message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;
/// The longest wait a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A provider text made safe for one line of an error: no control characters, bounded.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `Retry-After` as seconds or as an HTTP date, at most an hour.
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    let wait = at - now;
    Some(
        Duration::try_from(wait)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// An error with its chain of causes on one line (`a: b: c`): reqwest's own message says
/// little ("error sending request") and the cause says why. Its text names the URL, never a
/// header.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A URL component (a path segment or a query value), percent-encoded: everything but RFC
/// 3986's unreserved characters. Ids are checked before they are sent, but a path must stay a
/// path, and a query a query, whatever they are given.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_encoded() {
        assert_eq!(
            encode_component("00f94137-66fd-4d90-b2b2-8225c1b4ed2d"),
            "00f94137-66fd-4d90-b2b2-8225c1b4ed2d"
        );
        assert_eq!(encode_component("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_component(r#"{"a":1}"#), "%7B%22a%22%3A1%7D");
    }
}
