//! `a{sv}` maps in and out: typed reading of the till's requests (unknown keys and wrong types
//! are `InvalidArgument`), and the replies built from domain types. Amounts cross as decimal
//! strings in MQ-Pay's form, times as RFC 3339 UTC.

use std::collections::HashMap;

use zbus::{OwnedVariant, Str, Variant};

use super::error::PayError;
use crate::domain::model::quote_for_error;
use crate::domain::{Attempt, PaymentResult, Timestamp, Transaction, format_amount};

/// An `a{sv}` map.
pub type VarDict = HashMap<String, OwnedVariant>;

/// Reads a request map, refusing keys it does not know.
pub struct Reader<'a> {
    map: &'a VarDict,
}

impl<'a> Reader<'a> {
    /// Checks that every key of `map` is one of `known`.
    pub fn new(map: &'a VarDict, known: &[&str]) -> Result<Reader<'a>, PayError> {
        let mut unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(unknown_keys(&unknown, known));
        }
        Ok(Reader { map })
    }

    /// A string value (`s`).
    pub fn string(&self, key: &str) -> Result<Option<String>, PayError> {
        match self.map.get(key).map(|v| &**v) {
            None => Ok(None),
            Some(Variant::Str(s)) => Ok(Some(s.as_str().to_owned())),
            Some(other) => Err(wrong_type(key, "a string (s)", other)),
        }
    }

    /// A string value that must be present.
    pub fn required_string(&self, key: &str) -> Result<String, PayError> {
        self.string(key)?
            .ok_or_else(|| PayError::InvalidArgument(format!("{key} is required")))
    }

    /// A non-negative integer of any D-Bus integer type (`y q u t n i x`).
    pub fn unsigned(&self, key: &str) -> Result<Option<u64>, PayError> {
        let value = match self.map.get(key).map(|v| &**v) {
            None => return Ok(None),
            Some(Variant::U8(v)) => Some(u64::from(*v)),
            Some(Variant::U16(v)) => Some(u64::from(*v)),
            Some(Variant::U32(v)) => Some(u64::from(*v)),
            Some(Variant::U64(v)) => Some(*v),
            Some(Variant::I16(v)) => u64::try_from(*v).ok(),
            Some(Variant::I32(v)) => u64::try_from(*v).ok(),
            Some(Variant::I64(v)) => u64::try_from(*v).ok(),
            Some(other) => return Err(wrong_type(key, "an unsigned integer (t)", other)),
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
        match self.map.get(key).map(|v| &**v) {
            None => Ok(None),
            Some(Variant::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(key, "a boolean (b)", other)),
        }
    }

    /// An array of maps (`aa{sv}`).
    pub fn dicts(&self, key: &str) -> Result<Vec<VarDict>, PayError> {
        let Some(value) = self.map.get(key) else {
            return Ok(Vec::new());
        };
        let Variant::Array(array) = &**value else {
            return Err(wrong_type(key, "an array of maps (aa{sv})", value));
        };
        let mut dicts = Vec::with_capacity(array.len());
        for element in array.inner() {
            let dict = element
                .try_clone()
                .and_then(|v| v.downcast::<VarDict>())
                .map_err(|_| wrong_type(key, "an array of maps (aa{sv})", value))?;
            dicts.push(dict);
        }
        Ok(dicts)
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

fn wrong_type(key: &str, expected: &str, got: &Variant<'_>) -> PayError {
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
        .opt_str("tendered", a.tendered.map(format_amount))
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
