//! The `[providers.*]` sections: each validated with its key and line in every error, its
//! secret read through [`super::read_secret`] (the file, a `*_file` key, or
//! `$CREDENTIALS_DIRECTORY`) and never printed by `Debug`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, line_of, read_secret};
use crate::domain::Currency;
use crate::providers::appotapay::{self, AppotapaySettings};
use crate::providers::mqpay::{self, MqPayGatewaySettings};
use crate::providers::qpay::{self, QpaySettings};
use crate::providers::vietqr::VietQrSettings;

/// An `Invalid` error for `key` at `span` of `text`.
pub(super) fn invalid_at(
    text: &str,
    path: &Path,
    key: &'static str,
    span: std::ops::Range<usize>,
    message: String,
) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        key,
        line: line_of(text, span.start),
        message,
    }
}

/// `[providers.qpay]` as written. Its `Debug` leaves the inline secret out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQpay {
    base_url: Option<Spanned<String>>,
    client_id: Spanned<String>,
    client_secret: Option<Spanned<String>>,
    client_secret_file: Option<Spanned<PathBuf>>,
    invoice_code: Spanned<String>,
    invoice_receiver_code: Option<Spanned<String>>,
    callback_url: Option<Spanned<String>>,
    sender_branch_code: Option<Spanned<String>>,
    sender_staff_code: Option<Spanned<String>>,
    #[serde(default = "default_qpay_poll")]
    poll_interval_ms: Spanned<u64>,
    #[serde(default = "default_qpay_timeout")]
    request_timeout_ms: Spanned<u64>,
}

impl std::fmt::Debug for RawQpay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawQpay")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret_file", &self.client_secret_file)
            .field("invoice_code", &self.invoice_code)
            .finish_non_exhaustive()
    }
}

fn default_qpay_poll() -> Spanned<u64> {
    Spanned::new(0..0, qpay::DEFAULT_POLL_INTERVAL.as_millis() as u64)
}
fn default_qpay_timeout() -> Spanned<u64> {
    Spanned::new(0..0, qpay::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)
}

/// Validates `[providers.qpay]` and reads its secret.
pub(super) fn parse_qpay(
    raw: RawQpay,
    text: &str,
    path: &Path,
) -> Result<QpaySettings, ConfigError> {
    use crate::providers::qpay::model::{limits, qpay_length};
    let invalid =
        |key: &'static str, span: std::ops::Range<usize>, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            line: line_of(text, span.start),
            message,
        };
    let base_url = match &raw.base_url {
        Some(spanned) => check_url(spanned.get_ref(), false)
            .map_err(|message| invalid("providers.qpay.base_url", spanned.span(), message))?,
        None => qpay::DEFAULT_BASE_URL.to_owned(),
    };
    let client_id = raw.client_id.get_ref().trim().to_owned();
    if client_id.is_empty() || client_id.contains(':') || client_id.chars().any(char::is_control) {
        return Err(invalid(
            "providers.qpay.client_id",
            raw.client_id.span(),
            "must be the client id QPay issued: not empty, no ':' and no control characters"
                .to_owned(),
        ));
    }
    if let Some(inline) = &raw.client_secret
        && inline.get_ref().is_empty()
    {
        return Err(invalid(
            "providers.qpay.client_secret",
            inline.span(),
            "is empty".to_owned(),
        ));
    }
    let client_secret = read_secret(
        "providers.qpay.client_secret",
        raw.client_secret.as_ref().map(|s| s.get_ref().as_str()),
        raw.client_secret_file
            .as_ref()
            .map(|f| f.get_ref().as_path()),
    )?
    .ok_or_else(|| ConfigError::Missing {
        path: path.to_owned(),
        key: "providers.qpay.client_secret",
        message: "give client_secret or client_secret_file".to_owned(),
    })?;
    let code = |key: &'static str, spanned: &Spanned<String>, max: usize| {
        let value = spanned.get_ref();
        let length = qpay_length(value);
        if value.trim().is_empty() || length > max || value.chars().any(char::is_control) {
            return Err(invalid(
                key,
                spanned.span(),
                format!("must be 1 to {max} characters without control characters"),
            ));
        }
        Ok(value.clone())
    };
    let optional = |key: &'static str, spanned: &Option<Spanned<String>>, max: usize| {
        spanned.as_ref().map(|s| code(key, s, max)).transpose()
    };
    let invoice_code = code(
        "providers.qpay.invoice_code",
        &raw.invoice_code,
        limits::INVOICE_CODE,
    )?;
    let invoice_receiver_code = optional(
        "providers.qpay.invoice_receiver_code",
        &raw.invoice_receiver_code,
        limits::INVOICE_RECEIVER_CODE,
    )?
    .unwrap_or_else(|| qpay::DEFAULT_RECEIVER_CODE.to_owned());
    let sender_branch_code = optional(
        "providers.qpay.sender_branch_code",
        &raw.sender_branch_code,
        limits::SENDER_BRANCH_CODE,
    )?;
    let sender_staff_code = optional(
        "providers.qpay.sender_staff_code",
        &raw.sender_staff_code,
        limits::SENDER_STAFF_CODE,
    )?;
    let callback_url = match &raw.callback_url {
        Some(spanned) => {
            let url = check_url(spanned.get_ref(), true).map_err(|message| {
                invalid("providers.qpay.callback_url", spanned.span(), message)
            })?;
            if qpay_length(&url) > limits::CALLBACK_URL {
                return Err(invalid(
                    "providers.qpay.callback_url",
                    spanned.span(),
                    format!("is longer than QPay's {} characters", limits::CALLBACK_URL),
                ));
            }
            Some(spanned.get_ref().trim().to_owned())
        }
        None => None,
    };
    let poll = *raw.poll_interval_ms.get_ref();
    let min_poll = qpay::MIN_POLL_INTERVAL.as_millis() as u64;
    if !(min_poll..=60_000).contains(&poll) {
        return Err(invalid(
            "providers.qpay.poll_interval_ms",
            raw.poll_interval_ms.span(),
            format!("{poll} is outside {min_poll}..=60000 (QPay objects to faster polling)"),
        ));
    }
    let timeout = *raw.request_timeout_ms.get_ref();
    if !(1_000..=120_000).contains(&timeout) {
        return Err(invalid(
            "providers.qpay.request_timeout_ms",
            raw.request_timeout_ms.span(),
            format!("{timeout} is outside 1000..=120000"),
        ));
    }
    Ok(QpaySettings {
        base_url,
        client_id,
        client_secret,
        invoice_code,
        invoice_receiver_code,
        callback_url,
        sender_branch_code,
        sender_staff_code,
        poll_interval: Duration::from_millis(poll),
        request_timeout: Duration::from_millis(timeout),
    })
}

/// An `https://` URL (or `http://` to this machine only, for tests and local proxies: the client
/// secret must never cross a network in clear), without its trailing slash. A callback may be
/// any `http(s)://` URL: QPay calls it, and it carries no secret.
pub(super) fn check_url(text: &str, any_http: bool) -> Result<String, String> {
    let url =
        reqwest::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let loopback = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => {}
        "http" if any_http || loopback => {}
        _ => {
            return Err(format!(
                "{text:?} must be an https:// URL (http:// only to 127.0.0.1 or localhost)"
            ));
        }
    }
    if url.host_str().is_none() || (url.query().is_some() && !any_http) || url.fragment().is_some()
    {
        return Err(format!("{text:?} must be a plain URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?} must not carry credentials"));
    }
    Ok(text.trim().trim_end_matches('/').to_owned())
}

/// `[providers.appotapay]` as written. Its `Debug` leaves the API key and secret out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAppotapay {
    base_url: Option<Spanned<String>>,
    partner_code: Spanned<String>,
    api_key: Spanned<String>,
    secret_key: Option<Spanned<String>>,
    secret_key_file: Option<Spanned<PathBuf>>,
    terminal_id: Spanned<String>,
    #[serde(default = "default_appotapay_poll")]
    poll_interval_ms: Spanned<u64>,
    #[serde(default = "default_appotapay_timeout")]
    request_timeout_ms: Spanned<u64>,
    card_base_url: Option<Spanned<String>>,
    card_notify_url: Option<Spanned<String>>,
    card_redirect_url: Option<Spanned<String>>,
    /// Accept IPNs forwarded to this terminal on a local HTTP listener.
    #[serde(default)]
    ipn_listener: bool,
    /// Where the listener listens (loopback unless said otherwise).
    ipn_listen_address: Option<Spanned<String>>,
}

impl std::fmt::Debug for RawAppotapay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAppotapay")
            .field("base_url", &self.base_url)
            .field("partner_code", &self.partner_code)
            .field("terminal_id", &self.terminal_id)
            .finish_non_exhaustive()
    }
}

fn default_appotapay_poll() -> Spanned<u64> {
    Spanned::new(0..0, appotapay::DEFAULT_POLL_INTERVAL.as_millis() as u64)
}
fn default_appotapay_timeout() -> Spanned<u64> {
    Spanned::new(0..0, appotapay::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)
}

/// The IPN listener's address when none is configured: loopback only.
pub const DEFAULT_IPN_LISTEN_ADDRESS: &str = "127.0.0.1:8089";

/// Validates `[providers.appotapay]` and reads its secret key; also the IPN listener's address
/// when the listener is on.
pub(super) fn parse_appotapay(
    raw: RawAppotapay,
    text: &str,
    path: &Path,
) -> Result<(AppotapaySettings, Option<SocketAddr>), ConfigError> {
    let invalid = |key, span, message| invalid_at(text, path, key, span, message);
    let ipn_listen = match (raw.ipn_listener, &raw.ipn_listen_address) {
        (false, _) => None,
        (true, None) => DEFAULT_IPN_LISTEN_ADDRESS.parse().ok(),
        (true, Some(spanned)) => Some(spanned.get_ref().parse::<SocketAddr>().map_err(|_| {
            invalid(
                "providers.appotapay.ipn_listen_address",
                spanned.span(),
                format!(
                    "{:?} is not an address like \"127.0.0.1:8089\"",
                    spanned.get_ref()
                ),
            )
        })?),
    };
    let url = |key: &'static str, value: &Option<Spanned<String>>, any_http: bool| {
        value
            .as_ref()
            .map(|spanned| {
                check_url(spanned.get_ref(), any_http)
                    .map_err(|message| invalid(key, spanned.span(), message))
            })
            .transpose()
    };
    let base_url = url("providers.appotapay.base_url", &raw.base_url, false)?
        .unwrap_or_else(|| appotapay::DEFAULT_BASE_URL.to_owned());
    let plain = |key: &'static str, spanned: &Spanned<String>, max: usize| {
        let value = spanned.get_ref().trim();
        if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
            return Err(invalid(
                key,
                spanned.span(),
                format!("must be 1 to {max} characters without control characters"),
            ));
        }
        Ok(value.to_owned())
    };
    let partner_code = plain("providers.appotapay.partner_code", &raw.partner_code, 64)?;
    let api_key = plain("providers.appotapay.api_key", &raw.api_key, 256)?;
    // AppotaPay's POS gateway takes a terminal id of at most 20 characters.
    let terminal_id = plain("providers.appotapay.terminal_id", &raw.terminal_id, 20)?;
    let secret_key = read_secret(
        "providers.appotapay.secret_key",
        raw.secret_key.as_ref().map(|s| s.get_ref().as_str()),
        raw.secret_key_file.as_ref().map(|f| f.get_ref().as_path()),
    )?
    .ok_or_else(|| ConfigError::Missing {
        path: path.to_owned(),
        key: "providers.appotapay.secret_key",
        message: "give secret_key or secret_key_file".to_owned(),
    })?;
    let poll = *raw.poll_interval_ms.get_ref();
    if !(1_000..=60_000).contains(&poll) {
        return Err(invalid(
            "providers.appotapay.poll_interval_ms",
            raw.poll_interval_ms.span(),
            format!("{poll} is outside 1000..=60000"),
        ));
    }
    let timeout = *raw.request_timeout_ms.get_ref();
    if !(1_000..=120_000).contains(&timeout) {
        return Err(invalid(
            "providers.appotapay.request_timeout_ms",
            raw.request_timeout_ms.span(),
            format!("{timeout} is outside 1000..=120000"),
        ));
    }
    let settings = AppotapaySettings {
        base_url,
        partner_code,
        api_key,
        secret_key,
        terminal_id,
        poll_interval: Duration::from_millis(poll),
        request_timeout: Duration::from_millis(timeout),
        card_base_url: url(
            "providers.appotapay.card_base_url",
            &raw.card_base_url,
            false,
        )?,
        card_notify_url: url(
            "providers.appotapay.card_notify_url",
            &raw.card_notify_url,
            true,
        )?,
        card_redirect_url: url(
            "providers.appotapay.card_redirect_url",
            &raw.card_redirect_url,
            true,
        )?,
    };
    Ok((settings, ipn_listen))
}

/// `[providers.vietqr]`: the merchant's own bank account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVietQr {
    bin: Spanned<String>,
    account: Spanned<String>,
    account_name: Option<Spanned<String>>,
    #[serde(default)]
    card: bool,
}

/// Validates `[providers.vietqr]` by building a code for the account.
pub(super) fn parse_vietqr(
    raw: RawVietQr,
    text: &str,
    path: &Path,
) -> Result<VietQrSettings, ConfigError> {
    let invalid = |key, span, message| invalid_at(text, path, key, span, message);
    let bin = raw.bin.get_ref().trim().to_owned();
    if bin.len() != 6 || !bin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "providers.vietqr.bin",
            raw.bin.span(),
            format!("{bin:?} is not a bank's 6-digit BIN"),
        ));
    }
    let account = raw.account.get_ref().trim().to_owned();
    if account.is_empty()
        || account.len() > 19
        || !account.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(invalid(
            "providers.vietqr.account",
            raw.account.span(),
            "must be 1 to 19 letters or digits".to_owned(),
        ));
    }
    let account_name = match &raw.account_name {
        Some(spanned) => {
            let name = spanned.get_ref().trim();
            // EMVCo's merchant name: at most 25 characters, plain ASCII for bank apps.
            if name.is_empty()
                || name.len() > 25
                || !name.bytes().all(|b| (0x20..0x7f).contains(&b))
            {
                return Err(invalid(
                    "providers.vietqr.account_name",
                    spanned.span(),
                    "must be 1 to 25 plain ASCII characters (no diacritics)".to_owned(),
                ));
            }
            Some(name.to_owned())
        }
        None => None,
    };
    Ok(VietQrSettings {
        bin,
        account,
        account_name,
        card: raw.card,
    })
}

/// A secret given inline (`key`) or in a file (`key_file`), read through [`read_secret`]; an
/// inline one that is empty or blank is refused with its line.
pub(super) fn spanned_secret(
    key: &'static str,
    inline: &Option<Spanned<String>>,
    file: &Option<Spanned<PathBuf>>,
    text: &str,
    path: &Path,
) -> Result<Option<secrecy::SecretString>, ConfigError> {
    if let Some(inline) = inline
        && inline.get_ref().trim().is_empty()
    {
        return Err(invalid_at(
            text,
            path,
            key,
            inline.span(),
            "is empty".to_owned(),
        ));
    }
    read_secret(
        key,
        inline.as_ref().map(|s| s.get_ref().as_str()),
        file.as_ref().map(|f| f.get_ref().as_path()),
    )
}

/// [`spanned_secret`] for a secret that must be given.
pub(super) fn required_secret(
    key: &'static str,
    inline: &Option<Spanned<String>>,
    file: &Option<Spanned<PathBuf>>,
    text: &str,
    path: &Path,
) -> Result<secrecy::SecretString, ConfigError> {
    spanned_secret(key, inline, file, text, path)?.ok_or_else(|| {
        let name = key.rsplit('.').next().unwrap_or(key);
        ConfigError::Missing {
            path: path.to_owned(),
            key,
            message: format!("give {name} or {name}_file"),
        }
    })
}

/// `[providers.mqpay]` as written. Its `Debug` leaves the inline secrets out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqPay {
    base_url: Spanned<String>,
    api_key: Option<Spanned<String>>,
    api_key_file: Option<Spanned<PathBuf>>,
    signing_secret: Option<Spanned<String>>,
    signing_secret_file: Option<Spanned<PathBuf>>,
    provider: Spanned<String>,
    method: Option<Spanned<String>>,
    currencies: Option<Spanned<Vec<String>>>,
    #[serde(default = "default_mqpay_poll")]
    poll_interval_ms: Spanned<u64>,
    #[serde(default = "default_mqpay_timeout")]
    request_timeout_ms: Spanned<u64>,
}

impl std::fmt::Debug for RawMqPay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMqPay")
            .field("base_url", &self.base_url)
            .field("provider", &self.provider)
            .field("api_key_file", &self.api_key_file)
            .field("signing_secret_file", &self.signing_secret_file)
            .finish_non_exhaustive()
    }
}

fn default_mqpay_poll() -> Spanned<u64> {
    Spanned::new(0..0, mqpay::DEFAULT_POLL_INTERVAL.as_millis() as u64)
}
fn default_mqpay_timeout() -> Spanned<u64> {
    Spanned::new(0..0, mqpay::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)
}

/// Validates `[providers.mqpay]` and reads its API key and signing secret.
pub(super) fn parse_mqpay(
    raw: RawMqPay,
    text: &str,
    path: &Path,
) -> Result<MqPayGatewaySettings, ConfigError> {
    let invalid = |key, span, message| invalid_at(text, path, key, span, message);
    let base_url = check_url(raw.base_url.get_ref(), false)
        .map_err(|message| invalid("providers.mqpay.base_url", raw.base_url.span(), message))?;
    // MQ-Pay's codes: letters, digits and underscores (`VNPAY_QR_MMS`, `100_QR_CODE`).
    let code = |key: &'static str, spanned: &Spanned<String>| {
        let value = spanned.get_ref();
        if value.is_empty()
            || value.len() > 64
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                key,
                spanned.span(),
                format!(
                    "{value:?} is not an MQ-Pay code: 1 to 64 letters, digits, '_' or '-' \
                     (e.g. \"VNPAY_QR_MMS\")"
                ),
            ));
        }
        Ok(value.clone())
    };
    let provider = code("providers.mqpay.provider", &raw.provider)?;
    let method = match &raw.method {
        Some(spanned) => code("providers.mqpay.method", spanned)?,
        None => mqpay::DEFAULT_METHOD.to_owned(),
    };
    let currencies = match &raw.currencies {
        Some(spanned) => {
            let mut currencies = Vec::new();
            for name in spanned.get_ref() {
                let currency: Currency = name.parse().map_err(|_| {
                    invalid(
                        "providers.mqpay.currencies",
                        spanned.span(),
                        format!("{name:?} is not a currency qrpayd takes (MNT, VND)"),
                    )
                })?;
                if !currencies.contains(&currency) {
                    currencies.push(currency);
                }
            }
            if currencies.is_empty() {
                return Err(invalid(
                    "providers.mqpay.currencies",
                    spanned.span(),
                    "names no currency".to_owned(),
                ));
            }
            currencies
        }
        None => vec![Currency::Vnd, Currency::Mnt],
    };
    let api_key = required_secret(
        "providers.mqpay.api_key",
        &raw.api_key,
        &raw.api_key_file,
        text,
        path,
    )?;
    let signing_secret = spanned_secret(
        "providers.mqpay.signing_secret",
        &raw.signing_secret,
        &raw.signing_secret_file,
        text,
        path,
    )?;
    let poll = *raw.poll_interval_ms.get_ref();
    let min_poll = mqpay::MIN_POLL_INTERVAL.as_millis() as u64;
    if !(min_poll..=60_000).contains(&poll) {
        return Err(invalid(
            "providers.mqpay.poll_interval_ms",
            raw.poll_interval_ms.span(),
            format!("{poll} is outside {min_poll}..=60000"),
        ));
    }
    let timeout = *raw.request_timeout_ms.get_ref();
    if !(1_000..=120_000).contains(&timeout) {
        return Err(invalid(
            "providers.mqpay.request_timeout_ms",
            raw.request_timeout_ms.span(),
            format!("{timeout} is outside 1000..=120000"),
        ));
    }
    Ok(MqPayGatewaySettings {
        base_url,
        api_key,
        signing_secret,
        provider,
        method,
        currencies,
        poll_interval: Duration::from_millis(poll),
        request_timeout: Duration::from_millis(timeout),
    })
}
