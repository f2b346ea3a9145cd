//! The `[upstream]` section: the merchant's MQ-Pay back office the sync sends every record to.
//! The sync is on when the section is present. Every error names its key and line; the API
//! key and the signing secret are read through [`super::read_secret`] and never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::providers::{check_url, invalid_at, required_secret, spanned_secret};
use crate::mqpay::MqPaySettings;

/// The validated `[upstream]` section.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// How to reach the back office (its `terminal_id` is the daemon's).
    pub mqpay: MqPaySettings,
    /// How many transactions are synced at once.
    pub max_in_flight: usize,
    /// How long a finished, fully delivered transaction is kept.
    pub retention: Duration,
    /// The MQ-Pay gateway provider (`[providers.mqpay]`) takes its payments through this same
    /// MQ-Pay: the sale a gateway checkout made there is patched, not created again.
    pub shares_gateway: bool,
}

/// The defaults the README documents.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 4;
pub const DEFAULT_RETENTION_DAYS: u64 = 90;

/// `[upstream]` as written. Its `Debug` leaves the inline secrets out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    base_url: Spanned<String>,
    api_key: Option<Spanned<String>>,
    api_key_file: Option<Spanned<PathBuf>>,
    signing_secret: Option<Spanned<String>>,
    signing_secret_file: Option<Spanned<PathBuf>>,
    #[serde(default = "default_timeout")]
    request_timeout_ms: Spanned<u64>,
    #[serde(default = "default_in_flight")]
    max_in_flight: Spanned<u64>,
    #[serde(default = "default_retention")]
    retention_days: Spanned<u64>,
}

impl std::fmt::Debug for RawUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawUpstream")
            .field("base_url", &self.base_url)
            .field("api_key_file", &self.api_key_file)
            .field("signing_secret_file", &self.signing_secret_file)
            .finish_non_exhaustive()
    }
}

fn default_timeout() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_REQUEST_TIMEOUT_MS)
}
fn default_in_flight() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_MAX_IN_FLIGHT)
}
fn default_retention() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_RETENTION_DAYS)
}

/// Validates `[upstream]` and reads its secrets.
pub(super) fn parse_upstream(
    raw: RawUpstream,
    terminal_id: &str,
    text: &str,
    path: &Path,
) -> Result<UpstreamSettings, ConfigError> {
    let invalid = |key: &'static str, span: std::ops::Range<usize>, message: String| {
        invalid_at(text, path, key, span, message)
    };
    let base_url = check_url(raw.base_url.get_ref(), false)
        .map_err(|message| invalid("upstream.base_url", raw.base_url.span(), message))?;
    let api_key = required_secret(
        "upstream.api_key",
        &raw.api_key,
        &raw.api_key_file,
        text,
        path,
    )?;
    let signing_secret = spanned_secret(
        "upstream.signing_secret",
        &raw.signing_secret,
        &raw.signing_secret_file,
        text,
        path,
    )?;
    let bounded = |key: &'static str, value: &Spanned<u64>, low: u64, high: u64, unit: &str| {
        let n = *value.get_ref();
        if (low..=high).contains(&n) {
            Ok(n)
        } else {
            Err(invalid(
                key,
                value.span(),
                format!("{n} is outside {low}..={high} {unit}"),
            ))
        }
    };
    let timeout = bounded(
        "upstream.request_timeout_ms",
        &raw.request_timeout_ms,
        100,
        300_000,
        "milliseconds",
    )?;
    let max_in_flight = bounded(
        "upstream.max_in_flight",
        &raw.max_in_flight,
        1,
        64,
        "transactions",
    )?;
    let retention_days = bounded(
        "upstream.retention_days",
        &raw.retention_days,
        1,
        36_500,
        "days",
    )?;
    Ok(UpstreamSettings {
        mqpay: MqPaySettings {
            base_url,
            api_key,
            signing_secret,
            request_timeout: Duration::from_millis(timeout),
            terminal_id: terminal_id.to_owned(),
        },
        max_in_flight: max_in_flight as usize,
        retention: Duration::from_secs(retention_days * 86_400),
        shares_gateway: false,
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::Config;

    const DAEMON: &str = r#"
[daemon]
terminal_id = "T-01"
default_currency = "MNT"

[providers.simulator]
"#;

    fn parse(upstream: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("{DAEMON}\n[upstream]\n{upstream}"),
            Path::new("/etc/qrpayd/qrpayd.toml"),
        )
    }

    #[test]
    fn the_section_turns_the_sync_on_with_its_defaults() {
        let config = parse("base_url = \"https://bo.example/api/mq-pay/\"\napi_key = \"k-1\"\n")
            .expect("valid");
        let upstream = config.upstream.expect("on");
        assert_eq!(upstream.mqpay.base_url, "https://bo.example/api/mq-pay");
        assert_eq!(upstream.mqpay.api_key.expose_secret(), "k-1");
        assert!(upstream.mqpay.signing_secret.is_none());
        assert_eq!(upstream.mqpay.request_timeout, Duration::from_secs(10));
        assert_eq!(upstream.mqpay.terminal_id, "T-01");
        assert_eq!(upstream.max_in_flight, 4);
        assert_eq!(upstream.retention, Duration::from_secs(90 * 86_400));
        let off = Config::parse(DAEMON, Path::new("/etc/qrpayd/qrpayd.toml")).expect("valid");
        assert!(off.upstream.is_none());
    }

    /// Each bad value is refused with its key and its line (the section's first key is on line 9).
    #[test]
    fn bad_values_name_their_key_and_line() {
        let key = "api_key = \"k\"\n";
        for (section, expected) in [
            (
                format!("base_url = \"http://bo.example\"\n{key}"),
                "line 9: upstream.base_url",
            ),
            (
                format!("base_url = \"ftp://bo.example\"\n{key}"),
                "line 9: upstream.base_url",
            ),
            (
                format!("base_url = \"https://u:p@bo.example\"\n{key}"),
                "line 9: upstream.base_url",
            ),
            (
                "base_url = \"https://bo.example\"\napi_key = \"  \"\n".to_owned(),
                "line 10: upstream.api_key",
            ),
            (
                format!("base_url = \"https://bo.example\"\n{key}max_in_flight = 0\n"),
                "line 11: upstream.max_in_flight",
            ),
            (
                format!("base_url = \"https://bo.example\"\n{key}request_timeout_ms = 5\n"),
                "line 11: upstream.request_timeout_ms",
            ),
            (
                format!("base_url = \"https://bo.example\"\n{key}retention_days = 0\n"),
                "line 11: upstream.retention_days",
            ),
        ] {
            let error = parse(&section).expect_err(&section).to_string();
            assert!(error.contains(expected), "{section}: {error}");
        }
        let missing = parse("base_url = \"https://bo.example\"\n").expect_err("no key");
        assert!(
            missing.to_string().contains("upstream.api_key"),
            "{missing}"
        );
        let unknown = parse("base_url = \"https://bo.example\"\napi_key = \"k\"\nspeed = 1\n")
            .expect_err("unknown key");
        assert!(unknown.to_string().contains("speed"), "{unknown}");
        // http:// is for this machine only.
        parse(&format!("base_url = \"http://127.0.0.1:8080/bo\"\n{key}")).expect("loopback");
    }

    #[test]
    fn secrets_come_from_files_and_never_show() {
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("key");
        let secret = dir.path().join("secret");
        std::fs::write(&key, "file-key-XYZ\n").expect("write");
        std::fs::write(&secret, "file-secret-XYZ\n").expect("write");
        let config = parse(&format!(
            "base_url = \"https://bo.example\"\napi_key_file = \"{}\"\nsigning_secret_file = \"{}\"\n",
            key.display(),
            secret.display()
        ))
        .expect("valid");
        let upstream = config.upstream.expect("on");
        assert_eq!(upstream.mqpay.api_key.expose_secret(), "file-key-XYZ");
        let printed = format!("{upstream:?}");
        assert!(!printed.contains("XYZ"), "{printed}");
        let both = parse(&format!(
            "base_url = \"https://bo.example\"\napi_key = \"k\"\napi_key_file = \"{}\"\n",
            key.display()
        ))
        .expect_err("both");
        assert!(both.to_string().contains("not both"), "{both}");
    }
}
