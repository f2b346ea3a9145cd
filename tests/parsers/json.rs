//! JSON for the property run, generated as text: anything at all, or near a provider's real
//! shape (the right keys, each holding a plausible value or the wrong type, an empty string, a
//! huge, negative or 40-digit number, a date that is not one, nested garbage), so that a
//! parser gets past its first `serde` check and its deep paths are reached.
//!
//! Text, not `serde_json::Value`: numbers must reach the parsers as written (a 40-digit
//! integer or `1e400` is not representable as a `Value`), and a key may appear twice.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

/// A JSON document, kept as the text it will be written as.
#[derive(Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's literal text, written as is.
    Number(String),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The JSON text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(text) => out.push_str(text),
            Json::Str(text) => out.push_str(&quoted(text)),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quoted(key));
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// What a key of a real answer holds, to generate values near it.
#[derive(Debug, Clone)]
pub enum Shape {
    Object(Vec<(&'static str, Shape)>),
    Array(Box<Shape>),
    /// A money amount, as a number or a string.
    Amount,
    /// A count or a timestamp in seconds.
    Count,
    /// An identifier, as a string or a number.
    Id,
    /// One of these words, or any text.
    Word(&'static [&'static str]),
    /// A date and time.
    Date,
    /// Any text.
    Text,
    /// An `https://` address.
    Url,
    /// An EMVCo QR text (valid or nearly so).
    Qr,
    /// A base64 PNG of a QR code, damaged or not.
    QrImage,
}

/// Number literals at the edges of what `Decimal`, `u64`, `i64` and `f64` hold.
const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "100.00",
    "12500",
    "1e2",
    "2E-2",
    "1e400",
    "-1e400",
    "1e-400",
    "1e28",
    "1e29",
    "7.9228162514264337593543950335e28",
    "79228162514264337593543950335",
    "79228162514264337593543950336",
    "-79228162514264337593543950335",
    "39614081257132168796771975168",
    "0.0000000000000000000000000001",
    "0.00000000000000000000000000001",
    "1.0000000000000000000000000001",
    "1234567890123456789012345678901234567890",
    "-1234567890123456789012345678901234567890",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "-9223372036854775809",
    "1.7976931348623157e308",
    "5e-324",
    "123456789012345678901234567.89",
];

/// A number literal: the edges above, or digits of any length with a fraction and an exponent.
pub fn number_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(EDGE_NUMBERS).prop_map(str::to_owned),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        3 => "-?[0-9]{1,45}(\\.[0-9]{1,30})?([eE][-+]?[0-9]{1,4})?",
    ]
    .boxed()
}

/// Words providers use for statuses and codes, and their near misses.
const WORDS: &[&str] = &[
    "",
    " ",
    "PAID",
    "paid",
    "Paid ",
    "NEW",
    "REFUNDED",
    "REFUND",
    "CANCELED",
    "CANCELLED",
    "VOIDED",
    "REVERSED",
    "FAILED",
    "INVOICE",
    "P2P",
    "MNT",
    "VND",
    "pending",
    "processing",
    "success",
    "SUCCESS",
    "error",
    "void",
    "unknown",
    "00",
    "0",
    "1",
    "30",
    "31",
    "32",
    "34",
    "36",
    "42",
    "401",
    "500",
    "-1",
    "99999999999999999999",
    "INVOICE_PAID",
    "INVOICE_NOTFOUND",
    "PAYMENT_NOTFOUND",
    "PAYMENT_SETTLED",
    "INVOICE_CODE_REGISTERED",
    "PAYMENT_ALREADY_REFUNDED",
    "\u{0}",
    "\n\r\t",
    "\u{202e}evil",
    "😀😀😀",
];

/// Dates and times, well and badly formed.
const EDGE_DATES: &[&str] = &[
    "2020-10-19T08:58:46.641Z",
    "2026-01-26T16:24:49",
    "2023-11-13 15:23:40.000",
    "2026-01-26 16:24:49.9999999",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999-23:59",
    "0000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "+10000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-13-01 00:00:00",
    "2026-01-26T24:00:00",
    "2026-01-26T16:24:60Z",
    "2026-01-26T16:24:49.",
    "2026-01-26T16:24:49.ó",
    "2026-01-26T16:24:49.😀",
    "2026-01-26",
    "yesterday",
];

/// A date and time: the edges above, or the right pattern with any digits.
pub fn date_text() -> BoxedStrategy<String> {
    prop_oneof![
        proptest::sample::select(EDGE_DATES).prop_map(str::to_owned),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9\u{e9}]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
    ]
    .boxed()
}

/// Valid QR texts of the providers (each passes `emv::validate`), to be used as they are or
/// near them.
pub const QRS: &[&str] = &[
    "00020101021238630010A000000727013300069704320119MQQ0759866wrYqzPLw70208QRIBFTTA5204549953037045405120005802VN5916QRPAYMENT UAT 216011HO CHI MINH62430109wrYqzPLw70708Q07598660814AP26146183702063042A9D",
];

/// Any text: a word, a number or a date as text, unicode of any kind, a QR.
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(WORDS).prop_map(str::to_owned),
        2 => number_text(),
        1 => date_text(),
        2 => "\\PC{0,40}",
        1 => ".{0,20}",
        1 => proptest::sample::select(QRS).prop_map(str::to_owned),
        1 => "[A-Za-z0-9+/]{0,60}={0,2}",
    ]
    .boxed()
}

/// A scalar of any type.
pub fn leaf() -> BoxedStrategy<Json> {
    prop_oneof![
        1 => Just(Json::Null),
        1 => any::<bool>().prop_map(Json::Bool),
        3 => number_text().prop_map(Json::Number),
        4 => text().prop_map(Json::Str),
    ]
    .boxed()
}

/// Any JSON at all, nested a few levels.
pub fn any_json() -> BoxedStrategy<Json> {
    leaf()
        .prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
                proptest::collection::vec((key(&[]), inner), 0..5).prop_map(Json::Object),
            ]
        })
        .boxed()
}

fn key(known: &'static [&'static str]) -> BoxedStrategy<String> {
    if known.is_empty() {
        "[a-z_A-Z]{0,12}".boxed()
    } else {
        prop_oneof![
            3 => proptest::sample::select(known).prop_map(str::to_owned),
            1 => "[a-z_A-Z]{0,12}",
        ]
        .boxed()
    }
}

/// How far a generated document strays from the real shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stray {
    /// Every key holds a value of its type (mostly plausible, sometimes at an edge), so that
    /// the whole document gets past `serde` and its meaning is read.
    Little,
    /// Any key may hold anything, and keys may be missing, repeated or unknown.
    Much,
}

/// A value of the right type for `shape`.
fn typed(shape: &Shape, stray: Stray) -> BoxedStrategy<Json> {
    let (present, odd) = match stray {
        Stray::Little => (0.95, 1),
        Stray::Much => (0.8, 3),
    };
    match shape {
        Shape::Object(fields) => {
            let parts: Vec<BoxedStrategy<Option<(String, Json)>>> = fields
                .iter()
                .map(|(name, inner)| {
                    let name = (*name).to_owned();
                    (proptest::bool::weighted(present), near(inner, stray))
                        .prop_map(move |(present, value)| present.then(|| (name.clone(), value)))
                        .boxed()
                })
                .collect();
            let extra = match stray {
                Stray::Little => 0..1,
                Stray::Much => 0..3,
            };
            (
                parts,
                proptest::collection::vec(("[a-zA-Z_]{1,10}", any_json()), extra),
                proptest::bool::weighted(if stray == Stray::Much { 0.05 } else { 0.0 }),
            )
                .prop_map(|(known, extra, repeat)| {
                    let mut fields: Vec<(String, Json)> = known.into_iter().flatten().collect();
                    if repeat && let Some(first) = fields.first().cloned() {
                        fields.push(first);
                    }
                    fields.extend(extra);
                    Json::Object(fields)
                })
                .boxed()
        }
        Shape::Array(inner) => proptest::collection::vec(near(inner, stray), 0..5)
            .prop_map(Json::Array)
            .boxed(),
        Shape::Amount => prop_oneof![
            4 => "[1-9][0-9]{0,6}".prop_map(Json::Number),
            4 => "[1-9][0-9]{0,6}(\\.[0-9]{2})?".prop_map(Json::Str),
            1 => "[0-9]{1,7}\\.[0-9]{1,4}".prop_map(Json::Number),
            odd => number_text().prop_map(Json::Number),
            odd => number_text().prop_map(Json::Str),
        ]
        .boxed(),
        Shape::Count => prop_oneof![
            6 => (0u64..300).prop_map(|n| Json::Number(n.to_string())),
            2 => (1_700_000_000u64..1_900_000_000).prop_map(|n| Json::Number(n.to_string())),
            1 => (0u64..300).prop_map(|n| Json::Str(n.to_string())),
            odd => number_text().prop_map(Json::Number),
        ]
        .boxed(),
        Shape::Id => prop_oneof![
            3 => "[0-9a-f-]{1,40}".prop_map(Json::Str),
            3 => (0u64..10).prop_map(|n| Json::Str(format!("P{n}"))),
            2 => any::<u64>().prop_map(|n| Json::Number(n.to_string())),
            odd => number_text().prop_map(Json::Number),
            odd => Just(Json::Str(String::new())),
        ]
        .boxed(),
        Shape::Word(words) => prop_oneof![
            9 => proptest::sample::select(*words).prop_map(|w| Json::Str(w.to_owned())),
            odd => text().prop_map(Json::Str),
        ]
        .boxed(),
        Shape::Date => date_text().prop_map(Json::Str).boxed(),
        Shape::Text => text().prop_map(Json::Str).boxed(),
        Shape::Url => prop_oneof![
            6 => "https://[a-z.]{1,20}/[!-~]{0,40}".prop_map(Json::Str),
            odd => "(http|ftp|javascript)://[ -~]{0,30}".prop_map(Json::Str),
            odd => Just(Json::Str("https://".to_owned())),
            odd => "https://x/\\PC{0,10}[ \t\n]".prop_map(Json::Str),
        ]
        .boxed(),
        Shape::Qr => prop_oneof![
            1 => proptest::sample::select(QRS).prop_map(|q| Json::Str(q.to_owned())),
            3 => crate::emv::near_qr().prop_map(Json::Str),
        ]
        .boxed(),
        Shape::QrImage => crate::appotapay::qr_image_base64()
            .prop_map(Json::Str)
            .boxed(),
    }
}

/// A value near `shape`: of the right type, or (straying much) sometimes anything at all.
fn near(shape: &Shape, stray: Stray) -> BoxedStrategy<Json> {
    match stray {
        Stray::Little => typed(shape, stray),
        Stray::Much => prop_oneof![
            5 => typed(shape, stray),
            1 => leaf(),
            1 => any_json(),
        ]
        .boxed(),
    }
}

/// An answer's body: bytes, shown as text when a case fails.
#[derive(Clone)]
pub struct Body(pub Vec<u8>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Arbitrary bytes.
pub fn any_body(most: usize) -> BoxedStrategy<Body> {
    proptest::collection::vec(any::<u8>(), 0..most)
        .prop_map(Body)
        .boxed()
}

/// A body near `shape`, as bytes: mostly whole, sometimes cut short or with a byte changed.
pub fn body_near(shape: &Shape) -> BoxedStrategy<Body> {
    (
        prop_oneof![
            3 => typed(shape, Stray::Little),
            2 => typed(shape, Stray::Much),
        ],
        proptest::sample::select(&[0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2][..]),
        any::<prop::sample::Index>(),
        any::<u8>(),
    )
        .prop_map(|(json, damage, at, byte)| {
            let mut bytes = json.text().into_bytes();
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                match damage {
                    1 => bytes.truncate(at),
                    2 => bytes[at] = byte,
                    _ => {}
                }
            }
            Body(bytes)
        })
        .boxed()
}
