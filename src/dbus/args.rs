//! `a{sv}` maps in and out: typed reading of the till's requests (unknown keys, a key given
//! twice and wrong types are `InvalidArgument`), and the replies built from domain types. Amounts
//! cross as decimal strings in MQ-Pay's form, times as RFC 3339 UTC.

mod request_map;

use std::collections::HashMap;

use zbus::{OwnedVariant, Str, Variant};

pub use self::request_map::{RequestMap, RequestValue};
use super::error::PayError;
use crate::domain::model::quote_for_error;
use crate::domain::{Attempt, PaymentResult, Timestamp, Transaction, format_amount};

/// An `a{sv}` map, as replies and signals carry them.
pub type VarDict = HashMap<String, OwnedVariant>;

/// Reads a request map, refusing keys it does not know and keys given twice.
pub struct Reader<'a> {
    map: &'a RequestMap,
}

impl<'a> Reader<'a> {
    /// Checks that every key of `map` is one of `known`, and that none is given twice (a map
    /// decoded as a `HashMap` would silently keep the last).
    pub fn new(map: &'a RequestMap, known: &[&str]) -> Result<Reader<'a>, PayError> {
        let entries = map.entries();
        let mut unknown: Vec<&str> = entries
            .iter()
            .map(|(key, _)| key.as_str())
            .filter(|k| !known.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            unknown.dedup();
            return Err(unknown_keys(&unknown, known));
        }
        for (index, (key, _)) in entries.iter().enumerate() {
            if entries[..index].iter().any(|(earlier, _)| earlier == key) {
                return Err(PayError::InvalidArgument(format!(
                    "{key} is given twice; give each key once"
                )));
            }
        }
        Ok(Reader { map })
    }

    /// The value of `key` as a basic type, or `None` when the key is absent.
    fn basic(&self, key: &str, expected: &str) -> Result<Option<&'a Variant<'static>>, PayError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(RequestValue::Basic(value)) => Ok(Some(value)),
            Some(other) => Err(wrong_type(key, expected, other)),
        }
    }

    /// A string value (`s`).
    pub fn string(&self, key: &str) -> Result<Option<String>, PayError> {
        const EXPECTED: &str = "a string (s)";
        match self.basic(key, EXPECTED)? {
            None => Ok(None),
            Some(Variant::Str(s)) => Ok(Some(s.as_str().to_owned())),
            Some(other) => Err(wrong_basic_type(key, EXPECTED, other)),
        }
    }

    /// A string value that must be present.
    pub fn required_string(&self, key: &str) -> Result<String, PayError> {
        self.string(key)?
            .ok_or_else(|| PayError::InvalidArgument(format!("{key} is required")))
    }

    /// A non-negative integer of any D-Bus integer type (`y q u t n i x`).
    pub fn unsigned(&self, key: &str) -> Result<Option<u64>, PayError> {
        const EXPECTED: &str = "an unsigned integer (t)";
        let value = match self.basic(key, EXPECTED)? {
            None => return Ok(None),
            Some(Variant::U8(v)) => Some(u64::from(*v)),
            Some(Variant::U16(v)) => Some(u64::from(*v)),
            Some(Variant::U32(v)) => Some(u64::from(*v)),
            Some(Variant::U64(v)) => Some(*v),
            Some(Variant::I16(v)) => u64::try_from(*v).ok(),
            Some(Variant::I32(v)) => u64::try_from(*v).ok(),
            Some(Variant::I64(v)) => u64::try_from(*v).ok(),
            Some(other) => return Err(wrong_basic_type(key, EXPECTED, other)),
        };
        value
            .map(Some)
            .ok_or_else(|| PayError::InvalidArgument(format!("{key} must not be negative")))
    }

    /// A `u32` value, from any integer type that fits.
    pub fn unsigned32(&self, key: &str) -> Result<Option<u32>, PayError> {
        self.unsigned(key)?
            .map(|v| {
                u32::try_from(v)
                    .map_err(|_| PayError::InvalidArgument(format!("{key} is too large")))
            })
            .transpose()
    }

    /// A boolean (`b`).
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, PayError> {
        const EXPECTED: &str = "a boolean (b)";
        match self.basic(key, EXPECTED)? {
            None => Ok(None),
            Some(Variant::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_basic_type(key, EXPECTED, other)),
        }
    }

    /// An array of maps (`aa{sv}`), each to be read with its own [`Reader`].
    pub fn dicts(&self, key: &str) -> Result<&'a [RequestMap], PayError> {
        match self.map.get(key) {
            None => Ok(&[]),
            Some(RequestValue::Maps(maps)) => Ok(maps),
            Some(other) => Err(wrong_type(key, "an array of maps (aa{sv})", other)),
        }
    }
}

/// How many unknown keys an error names; the rest are counted.
const NAMED_UNKNOWN_KEYS: usize = 3;

/// The error for keys a request may not carry: the first few, each quoted cut short (a key is the
/// caller's text too, of any length), and how many more there are.
fn unknown_keys(unknown: &[&str], known: &[&str]) -> PayError {
    let named: Vec<String> = unknown
        .iter()
        .take(NAMED_UNKNOWN_KEYS)
        .map(|key| quote_for_error(key))
        .collect();
    let more = match unknown.len().saturating_sub(NAMED_UNKNOWN_KEYS) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    PayError::InvalidArgument(format!(
        "unknown key(s) {}{more}; known keys are {}",
        named.join(", "),
        known.join(", ")
    ))
}

fn wrong_type(key: &str, expected: &str, got: &RequestValue) -> PayError {
    PayError::InvalidArgument(format!("{key} must be {expected}, not {}", got.signature()))
}

fn wrong_basic_type(key: &str, expected: &str, got: &Variant<'_>) -> PayError {
    PayError::InvalidArgument(format!(
        "{key} must be {expected}, not {}",
        got.value_signature()
    ))
}

/// Builds a reply map.
#[derive(Default)]
pub struct Writer {
    map: VarDict,
    error: Option<zbus::Error>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn str(mut self, key: &str, value: impl Into<String>) -> Writer {
        self.map
            .insert(key.to_owned(), OwnedVariant::from(Str::from(value.into())));
        self
    }

    /// Adds the key only when there is a value (D-Bus has no null).
    pub fn opt_str(self, key: &str, value: Option<impl Into<String>>) -> Writer {
        match value {
            Some(value) => self.str(key, value),
            None => self,
        }
    }

    /// Adds any value that converts to a variant (arrays, structs).
    pub fn value<'v>(mut self, key: &str, value: impl Into<Variant<'v>>) -> Writer {
        match value.into().try_into_owned() {
            Ok(owned) => {
                self.map.insert(key.to_owned(), owned);
            }
            Err(error) => self.error = Some(error),
        }
        self
    }

    pub fn finish(self) -> Result<VarDict, PayError> {
        match self.error {
            Some(error) => Err(PayError::ZBus(error)),
            None => Ok(self.map),
        }
    }
}

/// A time as RFC 3339 UTC.
pub fn time(at: Timestamp) -> String {
    at.to_rfc3339()
}

/// The transaction's fields, as every reply and signal carries them.
pub fn transaction_fields(w: Writer, t: &Transaction) -> Writer {
    w.str("transaction_id", &t.id)
        .str("transaction_number", &t.number)
        .str("transaction_status", t.status.code())
        .str("terminal_id", &t.terminal_id)
        .str("source_type", &t.source.kind)
        .str("source_id", &t.source.id)
        .opt_str("source_uid", t.source.uid.clone())
        .str("currency", t.currency.code())
        .str("total", format_amount(t.total))
        .str("paid", format_amount(t.paid))
        .str("refunded", format_amount(t.refunded))
        .str("overpaid", format_amount(t.overpaid))
        .str("remaining", format_amount(t.remaining()))
        .opt_str("description", t.description.clone())
        .str("created_at", time(t.created_at))
        .str("updated_at", time(t.updated_at))
}

/// The transaction's items as `aa{sv}`.
pub fn items(t: &Transaction) -> Result<Vec<VarDict>, PayError> {
    t.items
        .iter()
        .map(|item| {
            Writer::new()
                .str("description", &item.description)
                .str("quantity", item.quantity.normalize().to_string())
                .str("unit_price", format_amount(item.unit_price))
                .finish()
        })
        .collect()
}

/// An attempt as `a{sv}` (the `attempts` entries of `GetTransaction`).
pub fn attempt_dict(a: &Attempt) -> Result<VarDict, PayError> {
    Writer::new()
        .str("id", &a.id)
        .str("code", &a.code)
        .str("transaction_id", &a.transaction_id)
        .str("type", a.kind.code())
        .str("status", a.status.code())
        .str("provider", &a.provider)
        .str("method", &a.method)
        .str("amount", format_amount(a.amount))
        .str("paid", format_amount(a.paid))
        .str("refunded", format_amount(a.refunded))
        .str("overpaid", format_amount(a.overpaid))
        .opt_str("tendered", a.tendered.map(format_amount))
        .opt_str("request_id", a.request_id.clone())
        .opt_str("parent_id", a.parent_id.clone())
        .opt_str("invoice_id", a.invoice_id.clone())
        .opt_str("qr_text", a.qr_text.clone())
        .opt_str("short_url", a.short_url.clone())
        .opt_str("expires_at", a.expires_at.map(time))
        .opt_str("failure_code", a.failure.as_ref().map(|f| f.code.clone()))
        .opt_str(
            "failure_message",
            a.failure.as_ref().map(|f| f.message.clone()),
        )
        .opt_str("note", a.note.clone())
        .str("created_at", time(a.created_at))
        .str("updated_at", time(a.updated_at))
        .value("deep_links", deep_links(a))
        .finish()
}

/// A recorded payment as `a{sv}`.
pub fn payment_dict(p: &PaymentResult) -> Result<VarDict, PayError> {
    Writer::new()
        .str("attempt_id", &p.attempt_id)
        .str("provider", &p.provider)
        .str("provider_payment_id", &p.provider_payment_id)
        .str("amount", format_amount(p.amount))
        .opt_str("paid_at", p.paid_at.map(time))
        .str("observed_at", time(p.observed_at))
        .finish()
}

/// The attempt's deep links as `a(ss)` (name, link).
pub fn deep_links(a: &Attempt) -> Vec<(String, String)> {
    a.deep_links
        .iter()
        .map(|l| (l.name.clone(), l.link.clone()))
        .collect()
}
