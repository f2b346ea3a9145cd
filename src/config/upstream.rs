//! The `[upstream]` section: the merchant's MQ-Pay back office the sync sends every record to.
//! The sync is on when the section is present. Every error names its key and line; the API
//! key and the signing secret are read through [`super::read_secret`] and never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::providers::{check_url, invalid_at};
use super::{ConfigError, read_secret};
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
    for (key, inline) in [
        ("upstream.api_key", &raw.api_key),
        ("upstream.signing_secret", &raw.signing_secret),
    ] {
        if let Some(inline) = inline
            && inline.get_ref().trim().is_empty()
        {
            return Err(invalid(key, inline.span(), "is empty".to_owned()));
        }
    }
    let api_key = read_secret(
        "upstream.api_key",
        raw.api_key.as_ref().map(|s| s.get_ref().as_str()),
        raw.api_key_file.as_ref().map(|f| f.get_ref().as_path()),
    )?
    .ok_or_else(|| ConfigError::Missing {
        path: path.to_owned(),
        key: "upstream.api_key",
        message: "give api_key or api_key_file".to_owned(),
    })?;
    let signing_secret = read_secret(
        "upstream.signing_secret",
        raw.signing_secret.as_ref().map(|s| s.get_ref().as_str()),
        raw.signing_secret_file
            .as_ref()
            .map(|f| f.get_ref().as_path()),
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
    })
}
