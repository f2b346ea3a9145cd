//! The configuration file: TOML, read once at start.
//!
//! Found at `--config`, else `$QRPAYD_CONFIG`, else `/etc/qrpayd/qrpayd.toml`. Unknown keys,
//! wrong types and missing values are errors that name the key and its line; values that parse
//! but make no sense (an unknown currency, a maximum amount that is not a decimal) are too. A
//! provider is enabled when its section is present. Secrets come from the file, from a
//! `*_file` key, or from systemd's `$CREDENTIALS_DIRECTORY`, and never appear in `Debug` output,
//! logs or errors.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use crate::display::framebuffer::Geometry;
use crate::display::{
    AmountFormat, AmountFormats, DisplaySettings, FramebufferSettings, Language, PixelFormat,
    WebSettings,
};
use crate::domain::{Currency, parse_decimal};
use crate::engine::EngineSettings;
use crate::providers::appotapay::AppotapaySettings;
use crate::providers::qpay::QpaySettings;
use crate::providers::simulator::SimulatorSettings;
use crate::providers::vietqr::VietQrSettings;

mod checks;
mod providers;
mod upstream;

pub use upstream::UpstreamSettings;

pub use checks::machine_problems;

/// Where the config is when nothing says otherwise.
pub const DEFAULT_PATH: &str = "/etc/qrpayd/qrpayd.toml";

/// Why the config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {path}, line {line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        line: usize,
        message: String,
    },
    #[error("invalid config {path}: {key}: {message}")]
    Missing {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error("cannot read the secret {key} from {file}: {detail}")]
    Secret {
        key: String,
        file: PathBuf,
        detail: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// `system`, `session` or a D-Bus address.
    pub bus: String,
    pub state_dir: PathBuf,
    pub log_level: String,
    pub engine: EngineSettings,
    pub display: Option<DisplaySettings>,
    pub simulator: Option<SimulatorSettings>,
    /// `[providers.qpay]`, when present.
    pub qpay: Option<QpaySettings>,
    /// `[providers.appotapay]`, when present.
    pub appotapay: Option<AppotapaySettings>,
    /// Where the AppotaPay IPN listener listens, when it is on.
    pub appotapay_ipn_listen: Option<std::net::SocketAddr>,
    /// `[providers.vietqr]`, when present.
    pub vietqr: Option<VietQrSettings>,
    /// `[providers.mqpay]`, when present.
    pub mqpay: Option<crate::providers::mqpay::MqPayGatewaySettings>,
    /// `[upstream]`: the back office the sync sends every record to; no sync without it.
    pub upstream: Option<UpstreamSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    daemon: RawDaemon,
    display: Option<RawDisplay>,
    #[serde(default)]
    providers: RawProviders,
    upstream: Option<upstream::RawUpstream>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    #[serde(default = "default_bus")]
    bus: Spanned<String>,
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    terminal_id: Spanned<String>,
    default_currency: Spanned<String>,
    default_provider: Option<Spanned<String>>,
    #[serde(default = "default_timeout")]
    payment_timeout_ms: Spanned<u64>,
    max_amount: Option<Spanned<String>>,
    #[serde(default = "default_log_level")]
    log_level: Spanned<String>,
    #[serde(default = "default_true")]
    auto_refund_overpayment: bool,
    #[serde(default = "default_late_payment_watch")]
    late_payment_watch_ms: Spanned<u64>,
    #[serde(default = "default_unknown_outcome_alert")]
    unknown_outcome_alert_after_ms: Spanned<u64>,
}

/// A day: how long an invoice the provider cannot close is watched after its expiry.
fn default_late_payment_watch() -> Spanned<u64> {
    Spanned::new(0..0, 86_400_000)
}

/// An hour: how long a provider call's outcome may stay unknown before the till is told.
fn default_unknown_outcome_alert() -> Spanned<u64> {
    Spanned::new(0..0, 3_600_000)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisplay {
    #[serde(default = "default_png_path")]
    png_path: PathBuf,
    #[serde(default = "default_width")]
    width: Spanned<u32>,
    #[serde(default = "default_height")]
    height: Spanned<u32>,
    #[serde(default = "default_true")]
    enabled: bool,
    /// `+08:00`-style offset of the time shown to the customer; the system's when absent.
    utc_offset: Option<Spanned<String>>,
    /// `mn`, `vi` or `en`; from `daemon.default_currency` when absent.
    language: Option<Spanned<String>>,
    #[serde(default = "default_paid_hold")]
    paid_hold_ms: Spanned<u64>,
    #[serde(default = "default_ended_hold")]
    ended_hold_ms: Spanned<u64>,
    #[serde(default)]
    amounts: RawAmounts,
    web: Option<RawWeb>,
    framebuffer: Option<RawFramebuffer>,
}

/// `[display.amounts.MNT]`, `[display.amounts.VND]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAmounts {
    #[serde(rename = "MNT")]
    mnt: Option<RawAmountFormat>,
    #[serde(rename = "VND")]
    vnd: Option<RawAmountFormat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAmountFormat {
    thousands: Option<Spanned<String>>,
    decimal: Option<Spanned<String>>,
    symbol: Option<Spanned<String>>,
    symbol_first: Option<bool>,
    space: Option<bool>,
}

/// `[display.web]`: the kiosk page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    #[serde(default = "default_true")]
    enabled: bool,
    listen: Option<Spanned<String>>,
}

/// `[display.framebuffer]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFramebuffer {
    device: PathBuf,
    /// The geometry for a file that does not answer the fbdev ioctls (all three, or none).
    width: Option<Spanned<u32>>,
    height: Option<Spanned<u32>>,
    format: Option<Spanned<String>>,
}

/// Where the kiosk page listens unless the config says otherwise.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8090";

fn default_paid_hold() -> Spanned<u64> {
    Spanned::new(0..0, 5_000)
}
fn default_ended_hold() -> Spanned<u64> {
    Spanned::new(0..0, 10_000)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProviders {
    simulator: Option<RawSimulator>,
    qpay: Option<providers::RawQpay>,
    appotapay: Option<providers::RawAppotapay>,
    vietqr: Option<providers::RawVietQr>,
    mqpay: Option<providers::RawMqPay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSimulator {
    #[serde(default)]
    auto_pay_after_ms: u64,
    #[serde(default = "default_simulator_poll")]
    poll_interval_ms: Spanned<u64>,
    merchant_name: Option<String>,
}

fn default_bus() -> Spanned<String> {
    Spanned::new(0..0, default_bus_name())
}
fn default_bus_name() -> String {
    "system".to_owned()
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/qrpayd")
}
fn default_timeout() -> Spanned<u64> {
    Spanned::new(0..0, 300_000)
}
fn default_log_level() -> Spanned<String> {
    Spanned::new(0..0, default_log_level_name())
}
fn default_log_level_name() -> String {
    "info".to_owned()
}
fn default_png_path() -> PathBuf {
    PathBuf::from("/run/qrpayd/display.png")
}
fn default_width() -> Spanned<u32> {
    Spanned::new(0..0, 800)
}
fn default_height() -> Spanned<u32> {
    Spanned::new(0..0, 480)
}
fn default_true() -> bool {
    true
}
fn default_simulator_poll() -> Spanned<u64> {
    Spanned::new(0..0, 1_000)
}
impl Config {
    /// The payment providers this config enables, cash (`system`) last, as the daemon lists
    /// them.
    pub fn enabled_providers(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.simulator.is_some() {
            names.push(crate::providers::Simulator::NAME);
        }
        if self.qpay.is_some() {
            names.push(crate::providers::Qpay::NAME);
        }
        if self.appotapay.is_some() {
            names.push(crate::providers::appotapay::Appotapay::NAME);
        }
        if self.vietqr.is_some() {
            names.push(crate::providers::vietqr::VietQrProvider::NAME);
        }
        if self.mqpay.is_some() {
            names.push(crate::providers::mqpay::MqPayGateway::NAME);
        }
        names.push(crate::engine::SYSTEM_PROVIDER);
        names
    }

    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            // On several lines, as toml writes it: the line, a caret under the place, why.
            message: checks::with_suggestion(e.to_string().trim_end()),
        })?;
        let invalid = |key: &'static str, span: std::ops::Range<usize>, message: String| {
            ConfigError::Invalid {
                path: path.to_owned(),
                key,
                line: line_of(text, span.start),
                message,
            }
        };
        let daemon = raw.daemon;
        checks::check_bus(daemon.bus.get_ref())
            .map_err(|message| invalid("daemon.bus", daemon.bus.span(), message))?;
        checks::check_log_level(daemon.log_level.get_ref())
            .map_err(|message| invalid("daemon.log_level", daemon.log_level.span(), message))?;

        let terminal_id = daemon.terminal_id.get_ref().clone();
        if terminal_id.is_empty()
            || terminal_id.len() > 32
            || !terminal_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid(
                "daemon.terminal_id",
                daemon.terminal_id.span(),
                "must be 1 to 32 characters of A-Z, a-z, 0-9, '-' and '_'".to_owned(),
            ));
        }
        let default_currency = daemon
            .default_currency
            .get_ref()
            .parse::<Currency>()
            .map_err(|e| {
                invalid(
                    "daemon.default_currency",
                    daemon.default_currency.span(),
                    e.to_string(),
                )
            })?;
        let max_amount = match &daemon.max_amount {
            Some(spanned) => Some(
                parse_max_amount(spanned.get_ref())
                    .map_err(|message| invalid("daemon.max_amount", spanned.span(), message))?,
            ),
            None => None,
        };
        let bounded_ms = |key: &'static str, value: &Spanned<u64>, range: RangeInclusive<u64>| {
            let ms = *value.get_ref();
            if range.contains(&ms) {
                Ok(Duration::from_millis(ms))
            } else {
                Err(invalid(
                    key,
                    value.span(),
                    format!(
                        "{ms} is outside {}..={} milliseconds",
                        range.start(),
                        range.end()
                    ),
                ))
            }
        };
        let late_payment_watch = bounded_ms(
            "daemon.late_payment_watch_ms",
            &daemon.late_payment_watch_ms,
            1_000..=7 * 86_400_000,
        )?;
        let unknown_outcome_alert_after = bounded_ms(
            "daemon.unknown_outcome_alert_after_ms",
            &daemon.unknown_outcome_alert_after_ms,
            1_000..=7 * 86_400_000,
        )?;
        let timeout = *daemon.payment_timeout_ms.get_ref();
        if !(1_000..=86_400_000).contains(&timeout) {
            return Err(invalid(
                "daemon.payment_timeout_ms",
                daemon.payment_timeout_ms.span(),
                format!("{timeout} is outside 1000..=86400000"),
            ));
        }

        let simulator = match raw.providers.simulator {
            Some(sim) => {
                let poll = *sim.poll_interval_ms.get_ref();
                if !(50..=60_000).contains(&poll) {
                    return Err(invalid(
                        "providers.simulator.poll_interval_ms",
                        sim.poll_interval_ms.span(),
                        format!("{poll} is outside 50..=60000"),
                    ));
                }
                let defaults = SimulatorSettings::default();
                Some(SimulatorSettings {
                    auto_pay_after: (sim.auto_pay_after_ms > 0)
                        .then(|| Duration::from_millis(sim.auto_pay_after_ms)),
                    poll_interval: Duration::from_millis(poll),
                    merchant_name: sim.merchant_name.unwrap_or(defaults.merchant_name),
                })
            }
            None => None,
        };
        let qpay = match raw.providers.qpay {
            Some(raw_qpay) => Some(providers::parse_qpay(raw_qpay, text, path)?),
            None => None,
        };
        let (appotapay, appotapay_ipn_listen) = match raw.providers.appotapay {
            Some(raw) => {
                let (settings, listen) = providers::parse_appotapay(raw, text, path)?;
                (Some(settings), listen)
            }
            None => (None, None),
        };
        let vietqr = match raw.providers.vietqr {
            Some(raw) => Some(providers::parse_vietqr(raw, text, path)?),
            None => None,
        };
        let mqpay = match raw.providers.mqpay {
            Some(raw) => Some(providers::parse_mqpay(raw, text, path)?),
            None => None,
        };
        let enabled: Vec<&str> = simulator
            .iter()
            .map(|_| crate::providers::Simulator::NAME)
            .chain(qpay.iter().map(|_| crate::providers::Qpay::NAME))
            .chain(
                appotapay
                    .iter()
                    .map(|_| crate::providers::appotapay::Appotapay::NAME),
            )
            .chain(
                vietqr
                    .iter()
                    .map(|_| crate::providers::vietqr::VietQrProvider::NAME),
            )
            .chain(
                mqpay
                    .iter()
                    .map(|_| crate::providers::mqpay::MqPayGateway::NAME),
            )
            .collect();
        let default_provider = match &daemon.default_provider {
            Some(spanned) => {
                let name = spanned.get_ref();
                if !enabled.contains(&name.as_str()) && name != crate::engine::SYSTEM_PROVIDER {
                    return Err(invalid(
                        "daemon.default_provider",
                        spanned.span(),
                        format!(
                            "{name:?} is not enabled; add a [providers.{name}] section (enabled: {})",
                            if enabled.is_empty() {
                                "none".to_owned()
                            } else {
                                enabled.join(", ")
                            }
                        ),
                    ));
                }
                name.clone()
            }
            None => match enabled.as_slice() {
                [only] => (*only).to_owned(),
                _ => {
                    return Err(ConfigError::Missing {
                        path: path.to_owned(),
                        key: "daemon.default_provider",
                        message: "required when not exactly one provider is enabled".to_owned(),
                    });
                }
            },
        };
        // The default provider, named or the only one enabled, must take the default currency:
        // else every Checkout that names neither is refused.
        let takes = match default_provider.as_str() {
            "qpay" => vec![Currency::Mnt],
            "appotapay" | "vietqr" => vec![Currency::Vnd],
            "mqpay" => mqpay.iter().flat_map(|m| m.currencies.clone()).collect(),
            _ => Vec::new(),
        };
        if !takes.is_empty() && !takes.contains(&default_currency) {
            let (key, span) = match &daemon.default_provider {
                Some(spanned) => ("daemon.default_provider", spanned.span()),
                None => ("daemon.default_currency", daemon.default_currency.span()),
            };
            let chosen = if daemon.default_provider.is_some() {
                ""
            } else {
                " (the only provider enabled, so the default one)"
            };
            let takes: Vec<String> = takes.iter().map(ToString::to_string).collect();
            return Err(invalid(
                key,
                span,
                format!(
                    "{default_provider}{chosen} takes {} only, but daemon.default_currency is {default_currency}",
                    takes.join(" and ")
                ),
            ));
        }

        let upstream = match raw.upstream {
            Some(raw) => Some(upstream::parse_upstream(raw, &terminal_id, text, path)?),
            None => None,
        };
        let upstream = upstream.map(|mut settings| {
            settings.shares_gateway = mqpay
                .as_ref()
                .is_some_and(|gateway| gateway.base_url == settings.mqpay.base_url);
            settings
        });

        let display = match raw.display {
            Some(display) if !display.enabled => None,
            Some(display) => Some(parse_display(display, default_currency, text, path)?),
            None => Some(DisplaySettings::with_defaults(
                default_png_path(),
                Language::for_currency(default_currency),
            )),
        };

        Ok(Config {
            path: path.to_owned(),
            bus: daemon.bus.into_inner(),
            state_dir: daemon.state_dir,
            log_level: daemon.log_level.into_inner(),
            engine: EngineSettings {
                terminal_id,
                default_currency,
                default_provider,
                payment_timeout: Duration::from_millis(timeout),
                max_amount,
                auto_refund_overpayment: daemon.auto_refund_overpayment,
                late_payment_watch,
                unknown_outcome_alert_after,
            },
            display,
            simulator,
            qpay,
            appotapay,
            appotapay_ipn_listen,
            vietqr,
            mqpay,
            upstream,
        })
    }
}

/// Validates `[display]` and its subsections.
fn parse_display(
    display: RawDisplay,
    default_currency: Currency,
    text: &str,
    path: &Path,
) -> Result<DisplaySettings, ConfigError> {
    let invalid =
        |key: &'static str, span: std::ops::Range<usize>, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            line: line_of(text, span.start),
            message,
        };
    for (key, value) in [
        ("display.width", &display.width),
        ("display.height", &display.height),
    ] {
        if !(160..=8192).contains(value.get_ref()) {
            return Err(invalid(
                key,
                value.span(),
                format!("{} is outside 160..=8192 pixels", value.get_ref()),
            ));
        }
    }
    let utc_offset_seconds = match &display.utc_offset {
        Some(spanned) => Some(parse_utc_offset(spanned.get_ref()).ok_or_else(|| {
            invalid(
                "display.utc_offset",
                spanned.span(),
                format!("{:?} is not an offset like \"+08:00\"", spanned.get_ref()),
            )
        })?),
        None => None,
    };
    let language = match &display.language {
        Some(spanned) => spanned
            .get_ref()
            .parse::<Language>()
            .map_err(|message| invalid("display.language", spanned.span(), message))?,
        None => Language::for_currency(default_currency),
    };
    let mut holds = [Duration::ZERO; 2];
    for (hold, (key, value)) in holds.iter_mut().zip([
        ("display.paid_hold_ms", &display.paid_hold_ms),
        ("display.ended_hold_ms", &display.ended_hold_ms),
    ]) {
        let ms = *value.get_ref();
        if !(500..=600_000).contains(&ms) {
            return Err(invalid(
                key,
                value.span(),
                format!("{ms} is outside 500..=600000 milliseconds"),
            ));
        }
        *hold = Duration::from_millis(ms);
    }
    let mut amounts = AmountFormats::default();
    for (currency, raw) in [
        (Currency::Mnt, &display.amounts.mnt),
        (Currency::Vnd, &display.amounts.vnd),
    ] {
        if let Some(raw) = raw {
            parse_amount_format(raw, amounts.get_mut(currency), &invalid)?;
        }
    }
    let web = match &display.web {
        Some(web) if web.enabled => {
            let listen = match &web.listen {
                Some(spanned) => spanned.get_ref().parse().map_err(|_| {
                    invalid(
                        "display.web.listen",
                        spanned.span(),
                        format!(
                            "{:?} is not an address and port like \"{DEFAULT_WEB_LISTEN}\"",
                            spanned.get_ref()
                        ),
                    )
                })?,
                None => std::net::SocketAddr::from(([127, 0, 0, 1], 8090)),
            };
            Some(WebSettings { listen })
        }
        _ => None,
    };
    let framebuffer = match display.framebuffer {
        Some(raw) => {
            let fallback = match (&raw.width, &raw.height, &raw.format) {
                (None, None, None) => None,
                (Some(width), Some(height), Some(format)) => {
                    for (key, value) in [
                        ("display.framebuffer.width", width),
                        ("display.framebuffer.height", height),
                    ] {
                        if !(160..=8192).contains(value.get_ref()) {
                            return Err(invalid(
                                key,
                                value.span(),
                                format!("{} is outside 160..=8192 pixels", value.get_ref()),
                            ));
                        }
                    }
                    let format = format.get_ref().parse::<PixelFormat>().map_err(|message| {
                        invalid("display.framebuffer.format", format.span(), message)
                    })?;
                    Some(Geometry::packed(
                        *width.get_ref(),
                        *height.get_ref(),
                        format,
                    ))
                }
                _ => {
                    return Err(ConfigError::Missing {
                        path: path.to_owned(),
                        key: "display.framebuffer",
                        message: "give width, height and format together, or none of them"
                            .to_owned(),
                    });
                }
            };
            Some(FramebufferSettings {
                device: raw.device,
                fallback,
            })
        }
        None => None,
    };
    Ok(DisplaySettings {
        png_path: display.png_path,
        width: *display.width.get_ref(),
        height: *display.height.get_ref(),
        utc_offset_seconds,
        language,
        amounts,
        paid_hold: holds[0],
        ended_hold: holds[1],
        web,
        framebuffer,
    })
}

/// Applies one `[display.amounts.*]` section over the currency's default.
fn parse_amount_format(
    raw: &RawAmountFormat,
    format: &mut AmountFormat,
    invalid: &impl Fn(&'static str, std::ops::Range<usize>, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let short = |key: &'static str, value: &Spanned<String>, max: usize, empty_ok: bool| {
        let text = value.get_ref();
        let length = text.chars().count();
        if length > max || (!empty_ok && length == 0) || text.chars().any(char::is_control) {
            Err(invalid(
                key,
                value.span(),
                format!(
                    "{text:?} must be {} to {max} printable characters",
                    usize::from(!empty_ok)
                ),
            ))
        } else {
            Ok(text.clone())
        }
    };
    if let Some(value) = &raw.thousands {
        format.thousands = short("display.amounts.thousands", value, 2, true)?;
    }
    if let Some(value) = &raw.decimal {
        format.decimal = short("display.amounts.decimal", value, 2, false)?;
    }
    if let Some(value) = &raw.symbol {
        format.symbol = short("display.amounts.symbol", value, 8, true)?;
    }
    if let Some(first) = raw.symbol_first {
        format.symbol_first = first;
    }
    if let Some(space) = raw.space {
        format.space = space;
    }
    if format.thousands == format.decimal
        && let Some(value) = raw.decimal.as_ref().or(raw.thousands.as_ref())
    {
        return Err(invalid(
            "display.amounts.decimal",
            value.span(),
            "the decimal mark must differ from the thousands separator".to_owned(),
        ));
    }
    Ok(())
}

fn parse_max_amount(text: &str) -> Result<Decimal, String> {
    let amount = parse_decimal(text).map_err(|e| e.to_string())?;
    if amount.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    Ok(amount)
}

/// Parses `+HH:MM` / `-HH:MM` into seconds east of UTC.
fn parse_utc_offset(text: &str) -> Option<i32> {
    let format = time::macros::format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    time::UtcOffset::parse(text, &format)
        .ok()
        .map(time::UtcOffset::whole_seconds)
}

impl Config {
    /// Fills in the local time zone's offset for the display where the config gave none. Call
    /// it before any other thread starts: the system's offset can only be read safely then.
    pub fn use_local_offset(&mut self) {
        if let Some(display) = &mut self.display
            && display.utc_offset_seconds.is_none()
        {
            display.utc_offset_seconds = time::UtcOffset::current_local_offset()
                .ok()
                .map(time::UtcOffset::whole_seconds);
        }
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|before| before.matches('\n').count() + 1)
        .unwrap_or(1)
}

/// Reads a secret given inline or through a `*_file` key. A relative file name is looked up in
/// `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`) when that is set. Trailing newlines
/// are dropped. The secret's value never appears in an error.
pub fn read_secret(
    key: &str,
    inline: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(file)) => Err(ConfigError::Secret {
            key: key.to_owned(),
            file: file.to_owned(),
            detail: format!("give {key} or {key}_file, not both"),
        }),
        (Some(value), None) => Ok(Some(SecretString::from(value.to_owned()))),
        (None, Some(file)) => {
            let resolved = match std::env::var_os("CREDENTIALS_DIRECTORY") {
                Some(dir) if file.is_relative() => PathBuf::from(dir).join(file),
                None if file.is_relative() => {
                    return Err(ConfigError::Secret {
                        key: key.to_owned(),
                        file: file.to_owned(),
                        detail: "a relative name is a systemd credential, and \
                                 $CREDENTIALS_DIRECTORY is not set: check the config as the \
                                 service does (systemctl restart qrpayd), or give an absolute path"
                            .to_owned(),
                    });
                }
                _ => file.to_owned(),
            };
            let text = std::fs::read_to_string(&resolved).map_err(|e| ConfigError::Secret {
                key: key.to_owned(),
                file: resolved.clone(),
                detail: e.kind().to_string(),
            })?;
            let value = text.trim_end_matches(['\n', '\r']).to_owned();
            if value.is_empty() {
                return Err(ConfigError::Secret {
                    key: key.to_owned(),
                    file: resolved,
                    detail: "the file is empty".to_owned(),
                });
            }
            Ok(Some(SecretString::from(value)))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const MINIMAL: &str = r#"
[daemon]
terminal_id = "T-01"
default_currency = "MNT"

[providers.simulator]
auto_pay_after_ms = 1500
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/qrpayd/qrpayd.toml"))
    }

    #[test]
    fn a_minimal_config_gets_sensible_defaults() {
        let config = parse(MINIMAL).expect("valid");
        assert_eq!(config.bus, "system");
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/qrpayd"));
        assert_eq!(config.engine.default_provider, "simulator");
        assert_eq!(config.engine.default_currency, Currency::Mnt);
        assert_eq!(config.engine.payment_timeout, Duration::from_secs(300));
        assert_eq!(config.engine.max_amount, None);
        let simulator = config.simulator.expect("simulator enabled");
        assert_eq!(simulator.auto_pay_after, Some(Duration::from_millis(1500)));
        let display = config.display.expect("display on by default");
        assert_eq!((display.width, display.height), (800, 480));
        assert_eq!(display.utc_offset_seconds, None);
        let with_offset = parse(&MINIMAL.replace(
            "[providers.simulator]",
            "[display]\nutc_offset = \"+08:00\"\n\n[providers.simulator]",
        ))
        .expect("valid");
        assert_eq!(
            with_offset.display.expect("display").utc_offset_seconds,
            Some(8 * 3600)
        );
    }

    /// Each broken config names its key and line.
    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\ncolour = \"red\"\n",
                &["line 4", "colour"],
            ),
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\npayment_timeout_ms = \"soon\"\n",
                &["line 4", "payment_timeout_ms"],
            ),
            ("[daemon]\ndefault_currency = \"MNT\"\n", &["terminal_id"]),
            (
                "[daemon]\nterminal_id = \"T1\"\n\ndefault_currency = \"USD\"\n[providers.simulator]\n",
                &["line 4", "daemon.default_currency", "USD"],
            ),
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\nmax_amount = \"1e9\"\n[providers.simulator]\n",
                &["line 4", "daemon.max_amount"],
            ),
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\nmax_amount = 1000000\n[providers.simulator]\n",
                &["line 4", "max_amount"],
            ),
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\ndefault_provider = \"qpay\"\n[providers.simulator]\n",
                &["line 4", "daemon.default_provider", "not enabled"],
            ),
            (
                "[daemon]\nterminal_id = \"T 1\"\ndefault_currency = \"MNT\"\n[providers.simulator]\n",
                &["line 2", "daemon.terminal_id"],
            ),
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\n[display]\nwidth = 20\n[providers.simulator]\n",
                &["line 5", "display.width"],
            ),
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\n[display]\nutc_offset = \"UB\"\n[providers.simulator]\n",
                &["line 5", "display.utc_offset"],
            ),
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\n[providers.nosuch]\n",
                &["nosuch"],
            ),
            (
                "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\n",
                &["daemon.default_provider"],
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text).to_string();
            for fragment in *expected {
                assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
            }
            assert!(error.contains("/etc/qrpayd/qrpayd.toml"), "{error}");
        }
    }

    const MQPAY: &str = r#"
[daemon]
terminal_id = "POS-01"
default_currency = "VND"

[providers.mqpay]
base_url = "https://backoffice.example.com/api/mq-pay"
api_key = "inline-mqpay-key"
provider = "VNPAY_QR_MMS"
"#;

    #[test]
    fn an_mqpay_section_enables_the_gateway_with_defaults() {
        let config = parse(MQPAY).expect("valid");
        assert_eq!(config.engine.default_provider, "mqpay");
        let mqpay = config.mqpay.clone().expect("mqpay enabled");
        assert_eq!(mqpay.base_url, "https://backoffice.example.com/api/mq-pay");
        assert_eq!(mqpay.api_key.expose_secret(), "inline-mqpay-key");
        assert!(mqpay.signing_secret.is_none());
        assert_eq!(mqpay.provider, "VNPAY_QR_MMS");
        assert_eq!(mqpay.method, "100_QR_CODE");
        assert_eq!(mqpay.currencies, vec![Currency::Vnd, Currency::Mnt]);
        assert_eq!(mqpay.poll_interval, Duration::from_millis(2000));
        assert_eq!(mqpay.request_timeout, Duration::from_millis(10_000));
        assert!(!format!("{config:?}").contains("inline-mqpay-key"));

        let signed = parse(&MQPAY.replace(
            "provider = \"VNPAY_QR_MMS\"",
            "provider = \"VNPAY_QR_MMS\"\nsigning_secret = \"inline-signing\"\n\
             currencies = [\"VND\"]\npoll_interval_ms = 1000",
        ))
        .expect("valid");
        let mqpay = signed.mqpay.expect("mqpay");
        assert_eq!(
            mqpay.signing_secret.map(|s| s.expose_secret().to_owned()),
            Some("inline-signing".to_owned())
        );
        assert_eq!(mqpay.currencies, vec![Currency::Vnd]);
    }

    #[test]
    fn a_bad_mqpay_section_is_named_with_its_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "provider = \"VNPAY_QR_MMS\"",
                "provider = \"VNPAY QR\"",
                "providers.mqpay.provider",
            ),
            (
                "api_key = \"inline-mqpay-key\"",
                "",
                "providers.mqpay.api_key",
            ),
            (
                "https://backoffice.example.com/api/mq-pay",
                "http://backoffice.example.com/api/mq-pay",
                "providers.mqpay.base_url",
            ),
            (
                "provider = \"VNPAY_QR_MMS\"",
                "provider = \"VNPAY_QR_MMS\"\ncurrencies = [\"USD\"]",
                "providers.mqpay.currencies",
            ),
            (
                "provider = \"VNPAY_QR_MMS\"",
                "provider = \"VNPAY_QR_MMS\"\npoll_interval_ms = 200",
                "providers.mqpay.poll_interval_ms",
            ),
            (
                "default_currency = \"VND\"\n\n[providers.mqpay]",
                "default_currency = \"VND\"\ndefault_provider = \"mqpay\"\n\
                 [providers.mqpay]\ncurrencies = [\"MNT\"]",
                "daemon.default_provider",
            ),
        ];
        for (from, to, key) in cases {
            let error = parse(&MQPAY.replace(from, to)).expect_err(to).to_string();
            assert!(error.contains(key), "{error:?} lacks {key:?}");
            assert!(!error.contains("inline-mqpay-key"), "{error}");
        }
    }

    const QPAY: &str = r#"
[daemon]
terminal_id = "POS-01"
default_currency = "MNT"

[providers.qpay]
client_id = "qrpayd-client"
client_secret = "inline-qpay-secret"
invoice_code = "SHOP_INVOICE"
"#;

    #[test]
    fn a_qpay_section_enables_qpay_with_defaults() {
        let config = parse(QPAY).expect("valid");
        assert_eq!(config.engine.default_provider, "qpay");
        let qpay = config.qpay.clone().expect("qpay enabled");
        assert_eq!(qpay.base_url, "https://merchant.qpay.mn");
        assert_eq!(qpay.client_id, "qrpayd-client");
        assert_eq!(qpay.client_secret.expose_secret(), "inline-qpay-secret");
        assert_eq!(qpay.invoice_code, "SHOP_INVOICE");
        assert_eq!(qpay.invoice_receiver_code, "terminal");
        assert_eq!(qpay.callback_url, None);
        assert_eq!(qpay.poll_interval, Duration::from_millis(2000));
        assert_eq!(qpay.request_timeout, Duration::from_millis(10_000));
        assert!(!format!("{config:?}").contains("inline-qpay-secret"));

        let full = parse(&QPAY.replace(
            "invoice_code = \"SHOP_INVOICE\"",
            "invoice_code = \"SHOP_INVOICE\"\nbase_url = \"http://127.0.0.1:8080/\"\n\
             invoice_receiver_code = \"83\"\ncallback_url = \"https://shop.mn/qpay?x=1\"\n\
             sender_branch_code = \"BRANCH1\"\nsender_staff_code = \"cashier-2\"\n\
             poll_interval_ms = 1000\nrequest_timeout_ms = 3000",
        ))
        .expect("valid");
        let qpay = full.qpay.expect("qpay");
        assert_eq!(qpay.base_url, "http://127.0.0.1:8080");
        assert_eq!(qpay.invoice_receiver_code, "83");
        assert_eq!(
            qpay.callback_url.as_deref(),
            Some("https://shop.mn/qpay?x=1")
        );
        assert_eq!(qpay.sender_branch_code.as_deref(), Some("BRANCH1"));
        assert_eq!(qpay.sender_staff_code.as_deref(), Some("cashier-2"));
        assert_eq!(qpay.poll_interval, Duration::from_millis(1000));
        assert_eq!(qpay.request_timeout, Duration::from_millis(3000));

        // With the simulator as well, the default must be named.
        let section = &QPAY[QPAY.find("[providers.qpay]").expect("section")..];
        let both = parse(&format!("{MINIMAL}{section}")).expect_err("no default provider");
        assert!(
            both.to_string().contains("daemon.default_provider"),
            "{both}"
        );
        let named = parse(&format!(
            "{}{section}",
            MINIMAL.replace(
                "[providers.simulator]",
                "default_provider = \"qpay\"\n\n[providers.simulator]"
            )
        ))
        .expect("valid");
        assert_eq!(named.engine.default_provider, "qpay");
        assert!(named.simulator.is_some() && named.qpay.is_some());
    }

    /// Each broken `[providers.qpay]` names its key and line, and no error shows the secret.
    #[test]
    fn qpay_errors_name_the_key_and_the_line() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "invoice_code = \"SHOP_INVOICE\"",
                "invoice_code = \"SHOP_INVOICE\"\npoll_interval_ms = 500",
                &["line 10", "providers.qpay.poll_interval_ms", "500"],
            ),
            (
                "invoice_code = \"SHOP_INVOICE\"",
                "invoice_code = \"SHOP_INVOICE\"\nrequest_timeout_ms = 10",
                &["line 10", "providers.qpay.request_timeout_ms"],
            ),
            (
                "invoice_code = \"SHOP_INVOICE\"",
                "invoice_code = \"SHOP_INVOICE\"\nbase_url = \"http://qpay.example.mn\"",
                &["line 10", "providers.qpay.base_url", "https://"],
            ),
            (
                "invoice_code = \"SHOP_INVOICE\"",
                "invoice_code = \"SHOP_INVOICE\"\nbase_url = \"https://user:pw@merchant.qpay.mn\"",
                &["line 10", "providers.qpay.base_url", "credentials"],
            ),
            (
                "invoice_code = \"SHOP_INVOICE\"",
                &format!("invoice_code = \"{}\"", "X".repeat(46)),
                &["line 9", "providers.qpay.invoice_code", "45"],
            ),
            (
                "invoice_code = \"SHOP_INVOICE\"",
                &format!(
                    "invoice_code = \"SHOP_INVOICE\"\nsender_staff_code = \"{}\"",
                    "s".repeat(101)
                ),
                &["line 10", "providers.qpay.sender_staff_code"],
            ),
            (
                "invoice_code = \"SHOP_INVOICE\"",
                "invoice_code = \"SHOP_INVOICE\"\ncallback_url = \"ftp://shop.mn\"",
                &["line 10", "providers.qpay.callback_url"],
            ),
            (
                "invoice_code = \"SHOP_INVOICE\"",
                "invoice_code = \"SHOP_INVOICE\"\ncolour = \"blue\"",
                &["colour"],
            ),
            (
                "client_id = \"qrpayd-client\"",
                "client_id = \"a:b\"",
                &["line 7", "providers.qpay.client_id"],
            ),
            (
                "client_secret = \"inline-qpay-secret\"\n",
                "",
                &["providers.qpay.client_secret", "client_secret_file"],
            ),
            (
                "client_secret = \"inline-qpay-secret\"",
                "client_secret = \"inline-qpay-secret\"\nclient_secret_file = \"/nonexistent\"",
                &["providers.qpay.client_secret", "not both"],
            ),
            (
                "default_currency = \"MNT\"",
                "default_currency = \"VND\"\ndefault_provider = \"qpay\"",
                &["line 5", "daemon.default_provider", "MNT"],
            ),
        ];
        for (from, to, expected) in cases {
            let text = QPAY.replace(from, to);
            assert_ne!(text, QPAY, "the case must change the config: {from}");
            let error = parse(&text).expect_err(&text).to_string();
            for fragment in *expected {
                assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
            }
            assert!(!error.contains("inline-qpay-secret"), "{error}");
        }
    }

    #[test]
    fn the_qpay_secret_may_come_from_a_file() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("qpay_secret");
        std::fs::write(&file, "file-qpay-secret\n").expect("write");
        let text = QPAY.replace(
            "client_secret = \"inline-qpay-secret\"",
            &format!("client_secret_file = \"{}\"", file.display()),
        );
        let config = parse(&text).expect("valid");
        let qpay = config.qpay.expect("qpay");
        assert_eq!(qpay.client_secret.expose_secret(), "file-qpay-secret");
    }

    #[test]
    fn the_display_section_sets_language_holds_amounts_page_and_framebuffer() {
        let display = parse(MINIMAL).expect("valid").display.expect("on");
        assert_eq!(display.language, Language::Mn, "from MNT");
        assert_eq!(display.paid_hold, Duration::from_millis(5000));
        assert_eq!(display.ended_hold, Duration::from_millis(10_000));
        assert_eq!((display.web, display.framebuffer), (None, None));
        let vnd = parse(&MINIMAL.replace("\"MNT\"", "\"VND\"")).expect("valid");
        assert_eq!(vnd.display.expect("on").language, Language::Vi, "from VND");

        let full = parse(&MINIMAL.replace(
            "[providers.simulator]",
            "[display]\nlanguage = \"en\"\npaid_hold_ms = 3000\n\
             [display.web]\n\
             [display.amounts.MNT]\nsymbol = \"MNT\"\nsymbol_first = true\nspace = true\n\
             [display.framebuffer]\ndevice = \"/dev/fb1\"\n\
             [providers.simulator]",
        ))
        .expect("valid");
        let display = full.display.expect("on");
        assert_eq!(display.language, Language::En);
        assert_eq!(display.paid_hold, Duration::from_millis(3000));
        assert_eq!(
            display.web.map(|web| web.listen.to_string()).as_deref(),
            Some(DEFAULT_WEB_LISTEN)
        );
        let mnt = display.amounts.get(Currency::Mnt);
        assert_eq!(
            (mnt.symbol.as_str(), mnt.symbol_first, mnt.space),
            ("MNT", true, true)
        );
        assert_eq!(mnt.thousands, ",", "the rest keeps its default");
        let framebuffer = display.framebuffer.expect("framebuffer");
        assert_eq!(framebuffer.device, PathBuf::from("/dev/fb1"));
        assert_eq!(framebuffer.fallback, None);
    }

    #[test]
    fn display_errors_name_the_key_and_the_line() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[display]\nlanguage = \"ru\"\n",
                &["line 7", "display.language", "ru"],
            ),
            (
                "[display]\npaid_hold_ms = 10\n",
                &["line 7", "display.paid_hold_ms"],
            ),
            (
                "[display.web]\nlisten = \"localhost\"\n",
                &["line 7", "display.web.listen"],
            ),
            (
                "[display.amounts.VND]\ndecimal = \".\"\n",
                &["line 7", "display.amounts.decimal", "differ"],
            ),
            ("[display.amounts.USD]\nsymbol = \"$\"\n", &["USD"]),
            (
                "[display.framebuffer]\ndevice = \"/dev/fb0\"\nwidth = 480\n",
                &["display.framebuffer", "together"],
            ),
            (
                "[display.framebuffer]\ndevice = \"f\"\nwidth = 480\nheight = 272\nformat = \"yuv\"\n",
                &["line 10", "display.framebuffer.format", "yuv"],
            ),
        ];
        for (section, expected) in cases {
            let text = MINIMAL.replace(
                "[providers.simulator]",
                &format!("{section}[providers.simulator]"),
            );
            let error = parse(&text).expect_err(section).to_string();
            for fragment in *expected {
                assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let example = include_str!("../../packaging/qrpayd.toml.example");
        let config = parse(example).expect("the example config is valid");
        assert_eq!(config.engine.terminal_id, "POS-01");
        assert!(config.simulator.is_some());
    }

    #[test]
    fn secrets_come_from_files_and_the_credentials_directory() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("qpay_secret"), "s3cr3t-value\n").expect("write");
        let absolute = dir.path().join("qpay_secret");
        let secret = read_secret("client_secret", None, Some(&absolute))
            .expect("read")
            .expect("present");
        assert_eq!(secret.expose_secret(), "s3cr3t-value");
        assert!(!format!("{secret:?}").contains("s3cr3t"));

        // SAFETY (test-only): no other test reads or writes this variable.
        unsafe { std::env::set_var("CREDENTIALS_DIRECTORY", dir.path()) };
        let relative = read_secret("client_secret", None, Some(Path::new("qpay_secret")))
            .expect("read")
            .expect("present");
        unsafe { std::env::remove_var("CREDENTIALS_DIRECTORY") };
        assert_eq!(relative.expose_secret(), "s3cr3t-value");

        let outside_systemd = read_secret("client_secret", None, Some(Path::new("qpay_secret")))
            .expect_err("relative without $CREDENTIALS_DIRECTORY");
        assert!(
            outside_systemd
                .to_string()
                .contains("$CREDENTIALS_DIRECTORY is not set"),
            "{outside_systemd}"
        );
        let missing = read_secret("client_secret", None, Some(&dir.path().join("nope")))
            .expect_err("missing file");
        assert!(missing.to_string().contains("client_secret"));
        let both =
            read_secret("client_secret", Some("inline-secret"), Some(&absolute)).expect_err("both");
        assert!(!both.to_string().contains("inline-secret"));
    }

    #[test]
    fn appotapay_and_vietqr_sections_enable_them() {
        let text = r#"
[daemon]
terminal_id = "VN-01"
default_currency = "VND"
default_provider = "vietqr"

[providers.appotapay]
partner_code = "PARTNER"
api_key = "api-key-value"
secret_key = "appota-secret-value"
terminal_id = "POS01"

[providers.vietqr]
bin = "970416"
account = "257678859"
account_name = "CUA HANG QRPAYD"
"#;
        let config = parse(text).expect("valid");
        let appotapay = config.appotapay.as_ref().expect("appotapay");
        assert_eq!(appotapay.base_url, "https://pos-gw.appotapay.com");
        assert_eq!(appotapay.terminal_id, "POS01");
        let vietqr = config.vietqr.as_ref().expect("vietqr");
        assert_eq!(vietqr.bin, "970416");
        assert!(!vietqr.card);
        let printed = format!("{config:?}");
        assert!(!printed.contains("appota-secret-value"), "{printed}");
        assert!(!printed.contains("api-key-value"), "{printed}");
    }

    #[test]
    fn provider_sections_name_their_bad_keys_and_lines() {
        let base = "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"VND\"\ndefault_provider = \"system\"\n";
        let cases: &[(&str, &[&str])] = &[
            (
                "[providers.vietqr]\nbin = \"97041\"\naccount = \"1\"\n",
                &["line 7", "providers.vietqr.bin"],
            ),
            (
                "[providers.vietqr]\nbin = \"970416\"\naccount = \"12-34\"\n",
                &["line 8", "providers.vietqr.account"],
            ),
            (
                "[providers.appotapay]\npartner_code = \"P\"\napi_key = \"K\"\nsecret_key = \"S\"\nterminal_id = \"TERMINAL-ID-LONGER-THAN-20\"\n",
                &["line 10", "providers.appotapay.terminal_id"],
            ),
            (
                "[providers.appotapay]\npartner_code = \"P\"\napi_key = \"K\"\nterminal_id = \"T\"\n",
                &["providers.appotapay.secret_key"],
            ),
            (
                "[providers.appotapay]\nbase_url = \"http://pos.example.com\"\npartner_code = \"P\"\napi_key = \"K\"\nsecret_key = \"S\"\nterminal_id = \"T\"\n",
                &["line 7", "providers.appotapay.base_url"],
            ),
        ];
        for (section, expected) in cases {
            let text = format!("{base}\n{section}");
            let error = parse(&text).expect_err(section).to_string();
            for fragment in *expected {
                assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
            }
        }
        let wrong_currency = "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\ndefault_provider = \"vietqr\"\n[providers.vietqr]\nbin = \"970416\"\naccount = \"1\"\n";
        let error = parse(wrong_currency)
            .expect_err("vietqr takes VND")
            .to_string();
        assert!(error.contains("vietqr takes VND only"), "{error}");
    }
}
