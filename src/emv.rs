//! EMVCo merchant-presented QR (MPM) codec.
//!
//! This module owns the text format of every payment QR code that qrpayd
//! shows: the `ID LEN VALUE` field structure, nested templates, the
//! CRC-16/CCITT-FALSE checksum in tag `63`, typed read-only views for VietQR
//! (NAPAS) and generic merchant codes (QPay and the simulator), and the
//! builder that the in-process simulator provider uses to create its codes.
//!
//! Every provider's QR text goes through [`validate`] before it reaches the
//! customer display, so a code that fails here is never shown.
//!
//! What this module must never do:
//! - perform I/O, logging or any network access (it is a pure codec);
//! - panic on untrusted input (all input-derived failures are [`EmvError`]s);
//! - use floating point for amounts (amounts are [`Decimal`] parsed from text);
//! - silently repair a provider's code (text is validated, never rewritten).
//!
//! Decisions worth knowing:
//! - Values are nested TLV only for the template ids 26–51, 62, 64 and
//!   80–99 at the top level, plus sub-tag `01` of a merchant account
//!   template whose GUID (sub-tag `00`) is the NAPAS AID `A000000727`.
//!   Every other value, at any depth, stays a primitive string; use
//!   [`Value::subfields`] to read one as TLV on demand.
//! - Parsing is lenient about templates: when a template's value is not
//!   well-formed TLV, it is kept as a [`Value::Primitive`] so the code still
//!   parses and re-encodes byte-identically.
//! - Duplicate tags and zero-length fields are rejected at the top level.
//!   Inside templates, duplicates are kept in order and a zero-length
//!   sub-field makes the template fall back to a primitive.
//! - The CRC is compared case-insensitively; [`Payload::encode`] always
//!   writes uppercase hex, so a code with a lowercase CRC re-encodes with an
//!   uppercase one.
//! - Input is not trimmed: a trailing newline is a structure error.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;

use rust_decimal::Decimal;

/// The maximum length of one field's value in bytes.
pub const MAX_VALUE_LEN: usize = 99;

/// The maximum length of the transaction amount (tag `54`) in characters.
pub const MAX_AMOUNT_LEN: usize = 13;

/// The application identifier (GUID) of NAPAS, the VietQR network.
pub const NAPAS_AID: &str = "A000000727";

/// The payload format indicator value this codec supports.
const FORMAT_INDICATOR: &str = "01";

/// Tag ids of the fields this module gives a meaning to.
pub mod tags {
    /// Payload format indicator, must be the first field with value `01`.
    pub const PAYLOAD_FORMAT: u8 = 0;
    /// Point of initiation method: `11` static, `12` dynamic.
    pub const POINT_OF_INITIATION: u8 = 1;
    /// Merchant category code (4 digits).
    pub const MCC: u8 = 52;
    /// Transaction currency, ISO 4217 numeric (496 MNT, 704 VND).
    pub const CURRENCY: u8 = 53;
    /// Transaction amount.
    pub const AMOUNT: u8 = 54;
    /// Country code, ISO 3166-1 alpha-2.
    pub const COUNTRY: u8 = 58;
    /// Merchant name.
    pub const MERCHANT_NAME: u8 = 59;
    /// Merchant city.
    pub const CITY: u8 = 60;
    /// Additional data field template.
    pub const ADDITIONAL_DATA: u8 = 62;
    /// CRC, must be the last field with length `04`.
    pub const CRC: u8 = 63;
    /// Merchant information language template.
    pub const LANGUAGE_TEMPLATE: u8 = 64;
    /// VietQR (NAPAS) merchant account information template.
    pub const VIETQR_ACCOUNT: u8 = 38;
    /// Bill number, inside the additional data template.
    pub const BILL_NUMBER: u8 = 1;
    /// Reference label, inside the additional data template.
    pub const REFERENCE_LABEL: u8 = 5;
    /// Terminal label, inside the additional data template.
    pub const TERMINAL_LABEL: u8 = 7;
    /// Purpose of transaction, inside the additional data template.
    pub const PURPOSE: u8 = 8;
}

/// Everything that can go wrong while parsing, encoding or viewing a code.
///
/// Offsets are byte offsets into the text given to [`Payload::parse`].
/// Tags are written with two digits; nested tags are written as a path such
/// as `38.01.00`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmvError {
    /// The text is empty.
    #[error("empty payload")]
    Empty,
    /// Fewer than the 4 bytes of an `ID LEN` header remain at `offset`.
    #[error("truncated field header at offset {offset}: 4 bytes needed, {remaining} remain")]
    TruncatedHeader {
        /// Offset where the header should start.
        offset: usize,
        /// Bytes left in the text.
        remaining: usize,
    },
    /// A tag id contains a byte that is not an ASCII digit.
    #[error("non-digit in tag id at offset {offset}")]
    NonDigitTag {
        /// Offset of the offending byte.
        offset: usize,
    },
    /// A length field is not two ASCII digits.
    #[error("invalid length field at offset {offset} (tag {tag:02})")]
    InvalidLength {
        /// Offset of the length field.
        offset: usize,
        /// Tag of the field.
        tag: u8,
    },
    /// A top-level length field is `00`.
    #[error("zero length field at offset {offset} (tag {tag:02})")]
    ZeroLength {
        /// Offset of the length field.
        offset: usize,
        /// Tag of the field.
        tag: u8,
    },
    /// A value is shorter than its length field says.
    #[error(
        "truncated value at offset {offset} (tag {tag:02}): {declared} bytes declared, {remaining} remain"
    )]
    TruncatedValue {
        /// Offset of the value.
        offset: usize,
        /// Tag of the field.
        tag: u8,
        /// Length from the length field.
        declared: usize,
        /// Bytes left in the text.
        remaining: usize,
    },
    /// A value's byte length ends inside a multi-byte UTF-8 character.
    #[error("value at offset {offset} (tag {tag:02}) ends inside a UTF-8 character")]
    SplitCharacter {
        /// Offset of the value.
        offset: usize,
        /// Tag of the field.
        tag: u8,
    },
    /// The first field is not the payload format indicator.
    #[error("missing payload format indicator (tag 00) at offset 0")]
    MissingFormatIndicator,
    /// The payload format indicator is not `01`.
    #[error("unsupported payload format indicator (tag 00) {value:?} at offset 4, expected \"01\"")]
    UnsupportedFormatIndicator {
        /// The value found.
        value: String,
    },
    /// There is no CRC field.
    #[error("missing CRC field (tag 63)")]
    MissingCrc,
    /// A CRC field exists but other fields follow it.
    #[error(
        "CRC field (tag 63) is not last: it starts at offset {offset}, the payload is {end} bytes"
    )]
    CrcNotLast {
        /// Offset of the CRC field.
        offset: usize,
        /// Length of the whole text in bytes.
        end: usize,
    },
    /// The CRC field's length is not `04`.
    #[error("CRC field (tag 63) at offset {offset} has length {len:02}, expected 04")]
    InvalidCrcLength {
        /// Offset of the CRC field.
        offset: usize,
        /// The length found.
        len: usize,
    },
    /// The CRC value is not 4 hexadecimal digits.
    #[error("CRC value {value:?} at offset {offset} (tag 63) is not 4 hex digits")]
    InvalidCrcValue {
        /// Offset of the CRC value.
        offset: usize,
        /// The value found.
        value: String,
    },
    /// The CRC in the text differs from the computed one.
    #[error("CRC mismatch: payload says {stated}, computed {computed:04X}")]
    CrcMismatch {
        /// The CRC as written in the text.
        stated: String,
        /// The CRC computed over the text.
        computed: u16,
    },
    /// A top-level tag occurs twice (at parse or encode).
    #[error("duplicate tag {tag:02} at offset {offset}")]
    DuplicateTag {
        /// Offset of the second occurrence (in the encoded output when encoding).
        offset: usize,
        /// The repeated tag.
        tag: u8,
    },
    /// A field to encode has a tag above 99.
    #[error("tag {tag} is out of range, tags are 00 to 99")]
    TagOutOfRange {
        /// The tag.
        tag: u8,
    },
    /// A field to encode has an empty value or an empty template.
    #[error("value of tag {tag:02} is empty")]
    EmptyValue {
        /// The tag.
        tag: u8,
    },
    /// A field to encode has a value longer than 99 bytes.
    #[error("value of tag {tag:02} is {len} bytes, the maximum is 99")]
    ValueTooLong {
        /// The tag.
        tag: u8,
        /// The value's length in bytes.
        len: usize,
    },
    /// A payload to encode already contains the CRC field.
    #[error("CRC field (tag 63) must not be supplied, encoding appends it")]
    CrcSupplied,
    /// A field that a view or builder requires is absent.
    #[error("missing {what} (tag {path})")]
    MissingField {
        /// Tag path, e.g. `38.01.00`.
        path: String,
        /// What the field is.
        what: &'static str,
    },
    /// A field's value is not acceptable for its tag.
    #[error("invalid value of tag {path}{}: {reason}", at_offset(.offset))]
    InvalidValue {
        /// Tag path, e.g. `54` or `38.02`.
        path: String,
        /// Offset of the value, when it comes from parsed text.
        offset: Option<usize>,
        /// Why it is invalid.
        reason: String,
    },
}

/// Formats an optional offset for [`EmvError::InvalidValue`].
fn at_offset(offset: &Option<usize>) -> String {
    offset.map_or_else(String::new, |o| format!(" at offset {o}"))
}

/// Builds an [`EmvError::InvalidValue`] that has no offset.
fn invalid(path: impl Into<String>, reason: impl Into<String>) -> EmvError {
    EmvError::InvalidValue {
        path: path.into(),
        offset: None,
        reason: reason.into(),
    }
}

/// Builds an [`EmvError::MissingField`].
fn missing(path: impl Into<String>, what: &'static str) -> EmvError {
    EmvError::MissingField {
        path: path.into(),
        what,
    }
}

/// Computes CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection,
/// xorout 0) over `data`.
pub fn crc16_ccitt_false(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One `ID LEN VALUE` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Tag id, 0 to 99.
    pub tag: u8,
    /// The field's value.
    pub value: Value,
}

impl Field {
    /// Creates a field with a primitive string value.
    pub fn primitive(tag: u8, value: impl Into<String>) -> Field {
        Field {
            tag,
            value: Value::Primitive(value.into()),
        }
    }

    /// Creates a template field holding nested fields.
    pub fn template(tag: u8, fields: Vec<Field>) -> Field {
        Field {
            tag,
            value: Value::Template(fields),
        }
    }
}

/// The value of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A plain string value.
    Primitive(String),
    /// Nested fields in the same `ID LEN VALUE` format.
    Template(Vec<Field>),
}

impl Value {
    /// Returns the string of a primitive value.
    pub fn as_primitive(&self) -> Option<&str> {
        match self {
            Value::Primitive(text) => Some(text),
            Value::Template(_) => None,
        }
    }

    /// Returns the nested fields of a template value.
    pub fn as_template(&self) -> Option<&[Field]> {
        match self {
            Value::Primitive(_) => None,
            Value::Template(fields) => Some(fields),
        }
    }

    /// Returns the nested fields, reading a primitive value as TLV on demand.
    ///
    /// Sub-fields read this way are all primitives. Offsets in an error are
    /// relative to the start of this value.
    pub fn subfields(&self) -> Result<Cow<'_, [Field]>, EmvError> {
        match self {
            Value::Template(fields) => Ok(Cow::Borrowed(fields)),
            Value::Primitive(text) => {
                let raw = scan(text, 0)?;
                let fields = raw
                    .into_iter()
                    .map(|r| Field::primitive(r.tag, r.value))
                    .collect();
                Ok(Cow::Owned(fields))
            }
        }
    }
}

/// Returns the first field with `tag` in `fields`.
fn find(fields: &[Field], tag: u8) -> Option<&Field> {
    fields.iter().find(|f| f.tag == tag)
}

/// Returns the primitive value of the first field with `tag` in `fields`.
fn find_primitive(fields: &[Field], tag: u8) -> Option<&str> {
    find(fields, tag).and_then(|f| f.value.as_primitive())
}

/// A parsed or to-be-encoded top-level payload.
///
/// `fields` never contains the CRC field (tag `63`): parsing strips it after
/// verifying it, and encoding appends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Top-level fields in order, without the CRC field.
    pub fields: Vec<Field>,
}

impl Payload {
    /// Parses `text`, verifying its structure, the position and value of the
    /// format indicator and CRC fields, the CRC itself, the uniqueness of
    /// top-level tags and the point of initiation value.
    pub fn parse(text: &str) -> Result<Payload, EmvError> {
        if text.is_empty() {
            return Err(EmvError::Empty);
        }
        let raw = scan(text, 0)?;
        check_format_indicator_position(&raw)?;
        let Some((crc, body)) = raw.split_last() else {
            return Err(EmvError::Empty);
        };
        check_crc_position(body, crc, text.len())?;
        verify_crc(text, crc)?;
        check_duplicates(body)?;
        check_format_indicator_value(body)?;
        check_point_of_initiation(body)?;
        let fields = body
            .iter()
            .map(|r| nest_top_level(r.tag, r.value))
            .collect();
        Ok(Payload { fields })
    }

    /// Encodes the payload and appends the CRC field (`6304` and 4 uppercase
    /// hex digits).
    ///
    /// Fails when a tag is above 99, a value is empty or longer than 99
    /// bytes, the CRC field is supplied, a top-level tag repeats, the first
    /// field is not `00` with value `01`, or the point of initiation is not
    /// `11` or `12`; so every successfully encoded payload parses again.
    pub fn encode(&self) -> Result<String, EmvError> {
        let mut out = String::new();
        let mut seen = [false; 100];
        for (index, field) in self.fields.iter().enumerate() {
            check_encodable_top_level(index, field)?;
            let slot = seen
                .get_mut(usize::from(field.tag))
                .ok_or(EmvError::TagOutOfRange { tag: field.tag })?;
            if *slot {
                return Err(EmvError::DuplicateTag {
                    offset: out.len(),
                    tag: field.tag,
                });
            }
            *slot = true;
            encode_field(field, &mut out)?;
        }
        if self.fields.is_empty() {
            return Err(EmvError::MissingFormatIndicator);
        }
        out.push_str("6304");
        let crc = crc16_ccitt_false(out.as_bytes());
        out.push_str(&format!("{crc:04X}"));
        Ok(out)
    }

    /// Returns the top-level field with `tag`.
    pub fn get(&self, tag: u8) -> Option<&Field> {
        find(&self.fields, tag)
    }

    /// Returns the value of the top-level field with `tag` if it is a primitive.
    pub fn primitive(&self, tag: u8) -> Option<&str> {
        find_primitive(&self.fields, tag)
    }

    /// Returns the nested fields of the top-level field with `tag` if it is a
    /// template.
    pub fn template(&self, tag: u8) -> Option<&[Field]> {
        self.get(tag).and_then(|f| f.value.as_template())
    }
}

/// Validates a provider's QR text; the same as [`Payload::parse`].
pub fn validate(text: &str) -> Result<Payload, EmvError> {
    Payload::parse(text)
}

/// A field found by the scanner, borrowing its value from the text.
#[derive(Debug, Clone, Copy)]
struct RawField<'a> {
    /// Offset of the field's first byte.
    offset: usize,
    /// Tag id.
    tag: u8,
    /// The value.
    value: &'a str,
}

impl RawField<'_> {
    /// Offset of the field's value.
    fn value_offset(&self) -> usize {
        self.offset + 4
    }
}

/// Splits `text` into consecutive fields; `base` is added to every offset.
fn scan(text: &str, base: usize) -> Result<Vec<RawField<'_>>, EmvError> {
    let bytes = text.as_bytes();
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let (field, next) = scan_field(text, pos, base)?;
        fields.push(field);
        pos = next;
    }
    Ok(fields)
}

/// Reads one field starting at `pos`; returns it and the position after it.
fn scan_field(text: &str, pos: usize, base: usize) -> Result<(RawField<'_>, usize), EmvError> {
    let bytes = text.as_bytes();
    let remaining = bytes.len() - pos;
    let header = bytes.get(pos..pos + 4).ok_or(EmvError::TruncatedHeader {
        offset: base + pos,
        remaining,
    })?;
    let tag = two_digits(header[0], header[1]).map_err(|i| EmvError::NonDigitTag {
        offset: base + pos + i,
    })?;
    let len = two_digits(header[2], header[3]).map_err(|_| EmvError::InvalidLength {
        offset: base + pos + 2,
        tag,
    })?;
    if len == 0 {
        return Err(EmvError::ZeroLength {
            offset: base + pos + 2,
            tag,
        });
    }
    let start = pos + 4;
    let end = start + usize::from(len);
    if end > bytes.len() {
        return Err(EmvError::TruncatedValue {
            offset: base + start,
            tag,
            declared: usize::from(len),
            remaining: bytes.len() - start,
        });
    }
    let value = text.get(start..end).ok_or(EmvError::SplitCharacter {
        offset: base + start,
        tag,
    })?;
    let field = RawField {
        offset: base + pos,
        tag,
        value,
    };
    Ok((field, end))
}

/// Reads two ASCII digits as a number; on failure returns the index (0 or 1)
/// of the first non-digit.
fn two_digits(high: u8, low: u8) -> Result<u8, usize> {
    if !high.is_ascii_digit() {
        return Err(0);
    }
    if !low.is_ascii_digit() {
        return Err(1);
    }
    Ok((high - b'0') * 10 + (low - b'0'))
}

/// Checks that the first field is the payload format indicator.
fn check_format_indicator_position(raw: &[RawField<'_>]) -> Result<(), EmvError> {
    match raw.first() {
        Some(first) if first.tag == tags::PAYLOAD_FORMAT => Ok(()),
        _ => Err(EmvError::MissingFormatIndicator),
    }
}

/// Checks that the payload format indicator's value is `01`.
fn check_format_indicator_value(body: &[RawField<'_>]) -> Result<(), EmvError> {
    match body.first() {
        Some(first) if first.value == FORMAT_INDICATOR => Ok(()),
        Some(first) => Err(EmvError::UnsupportedFormatIndicator {
            value: first.value.to_owned(),
        }),
        None => Err(EmvError::MissingFormatIndicator),
    }
}

/// Checks that the CRC field exists, is last, and has a 4-hex-digit value.
fn check_crc_position(
    body: &[RawField<'_>],
    last: &RawField<'_>,
    end: usize,
) -> Result<(), EmvError> {
    if let Some(early) = body.iter().find(|r| r.tag == tags::CRC) {
        return Err(EmvError::CrcNotLast {
            offset: early.offset,
            end,
        });
    }
    if last.tag != tags::CRC {
        return Err(EmvError::MissingCrc);
    }
    if last.value.len() != 4 {
        return Err(EmvError::InvalidCrcLength {
            offset: last.offset,
            len: last.value.len(),
        });
    }
    if !last.value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EmvError::InvalidCrcValue {
            offset: last.value_offset(),
            value: last.value.to_owned(),
        });
    }
    Ok(())
}

/// Compares the CRC written in `crc` with the one computed over `text` up to
/// and including the `6304` header.
fn verify_crc(text: &str, crc: &RawField<'_>) -> Result<(), EmvError> {
    let covered = text
        .as_bytes()
        .get(..crc.value_offset())
        .unwrap_or_default();
    let computed = crc16_ccitt_false(covered);
    if crc.value.eq_ignore_ascii_case(&format!("{computed:04X}")) {
        Ok(())
    } else {
        Err(EmvError::CrcMismatch {
            stated: crc.value.to_owned(),
            computed,
        })
    }
}

/// Rejects a top-level tag that occurs more than once.
fn check_duplicates(body: &[RawField<'_>]) -> Result<(), EmvError> {
    let mut seen = [false; 100];
    for field in body {
        if let Some(slot) = seen.get_mut(usize::from(field.tag)) {
            if *slot {
                return Err(EmvError::DuplicateTag {
                    offset: field.offset,
                    tag: field.tag,
                });
            }
            *slot = true;
        }
    }
    Ok(())
}

/// Checks that the point of initiation, when present, is `11` or `12`.
fn check_point_of_initiation(body: &[RawField<'_>]) -> Result<(), EmvError> {
    match body.iter().find(|r| r.tag == tags::POINT_OF_INITIATION) {
        Some(field) if !is_point_of_initiation(field.value) => Err(EmvError::InvalidValue {
            path: "01".to_owned(),
            offset: Some(field.value_offset()),
            reason: format!(
                "point of initiation is {:?}, expected \"11\" or \"12\"",
                field.value
            ),
        }),
        _ => Ok(()),
    }
}

/// Whether `value` is a valid point of initiation method.
fn is_point_of_initiation(value: &str) -> bool {
    value == "11" || value == "12"
}

/// Whether a top-level tag holds a template.
fn is_template_tag(tag: u8) -> bool {
    matches!(tag, 26..=51 | 62 | 64 | 80..=99)
}

/// Whether a top-level tag is a merchant account information template.
fn is_merchant_account_tag(tag: u8) -> bool {
    matches!(tag, 26..=51)
}

/// Builds a top-level field, nesting template ids leniently.
fn nest_top_level(tag: u8, value: &str) -> Field {
    if !is_template_tag(tag) {
        return Field::primitive(tag, value);
    }
    let Ok(raw) = scan(value, 0) else {
        return Field::primitive(tag, value);
    };
    let napas = is_merchant_account_tag(tag)
        && raw
            .iter()
            .any(|r| r.tag == 0 && r.value.eq_ignore_ascii_case(NAPAS_AID));
    let fields = raw.iter().map(|r| nest_sub_field(r, napas)).collect();
    Field::template(tag, fields)
}

/// Builds a field inside a template; only the NAPAS beneficiary (`01`) nests.
fn nest_sub_field(raw: &RawField<'_>, napas: bool) -> Field {
    if napas
        && raw.tag == 1
        && let Ok(inner) = scan(raw.value, 0)
    {
        let fields = inner
            .into_iter()
            .map(|r| Field::primitive(r.tag, r.value))
            .collect();
        return Field::template(raw.tag, fields);
    }
    Field::primitive(raw.tag, raw.value)
}

/// Checks the top-level rules for the field at `index` before encoding it.
fn check_encodable_top_level(index: usize, field: &Field) -> Result<(), EmvError> {
    if field.tag == tags::CRC {
        return Err(EmvError::CrcSupplied);
    }
    if index == 0 {
        if field.tag != tags::PAYLOAD_FORMAT {
            return Err(EmvError::MissingFormatIndicator);
        }
        let value = field.value.as_primitive().unwrap_or_default();
        if value != FORMAT_INDICATOR {
            return Err(EmvError::UnsupportedFormatIndicator {
                value: value.to_owned(),
            });
        }
    }
    if field.tag == tags::POINT_OF_INITIATION {
        let value = field.value.as_primitive().unwrap_or_default();
        if !is_point_of_initiation(value) {
            return Err(invalid(
                "01",
                format!("point of initiation is {value:?}, expected \"11\" or \"12\""),
            ));
        }
    }
    Ok(())
}

/// Appends one encoded field (recursively for templates) to `out`.
fn encode_field(field: &Field, out: &mut String) -> Result<(), EmvError> {
    if field.tag > 99 {
        return Err(EmvError::TagOutOfRange { tag: field.tag });
    }
    let encoded;
    let value: &str = match &field.value {
        Value::Primitive(text) => text,
        Value::Template(fields) => {
            let mut inner = String::new();
            for sub in fields {
                encode_field(sub, &mut inner)?;
            }
            encoded = inner;
            &encoded
        }
    };
    let len = value.len();
    if len == 0 {
        return Err(EmvError::EmptyValue { tag: field.tag });
    }
    if len > MAX_VALUE_LEN {
        return Err(EmvError::ValueTooLong {
            tag: field.tag,
            len,
        });
    }
    push_two_digits(out, field.tag);
    push_two_digits(out, len as u8);
    out.push_str(value);
    Ok(())
}

/// Appends `n` (below 100) as two decimal digits.
fn push_two_digits(out: &mut String, n: u8) {
    out.push(char::from(b'0' + n / 10));
    out.push(char::from(b'0' + n % 10));
}

/// Parses a transaction amount (tag `54`): 1 to 13 characters, ASCII digits
/// with at most one `.`, no sign and no exponent.
pub fn parse_amount(text: &str) -> Result<Decimal, EmvError> {
    let reject = |reason: &str| invalid("54", format!("amount {text:?} {reason}"));
    if text.is_empty() || text.len() > MAX_AMOUNT_LEN {
        return Err(reject("must be 1 to 13 characters"));
    }
    if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(reject("may contain only digits and one '.'"));
    }
    if text.bytes().filter(|&b| b == b'.').count() > 1 {
        return Err(reject("has more than one '.'"));
    }
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return Err(reject("has no digits"));
    }
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    let normalized = if trimmed.starts_with('.') {
        Cow::Owned(format!("0{trimmed}"))
    } else {
        Cow::Borrowed(trimmed)
    };
    Decimal::from_str_exact(&normalized).map_err(|e| reject(&format!("is not a number: {e}")))
}

/// Formats an amount for tag `54` keeping its scale (e.g. `1000`, `100.50`).
fn format_amount_as_is(amount: Decimal) -> Result<String, EmvError> {
    if amount.is_sign_negative() {
        return Err(invalid("54", format!("amount {amount} is negative")));
    }
    let text = amount.to_string();
    check_amount_len(&text)?;
    Ok(text)
}

/// Formats a positive amount for tag `54` with no fraction when it is whole,
/// and exactly `decimals` fraction digits otherwise (`12500`, `100.50`).
pub fn format_amount(amount: Decimal, decimals: u32) -> Result<String, EmvError> {
    if amount.is_sign_negative() || amount.is_zero() {
        return Err(invalid("54", format!("amount {amount} is not positive")));
    }
    let mut value = amount.normalize();
    if value.scale() > decimals {
        return Err(invalid(
            "54",
            format!("amount {amount} has more than {decimals} decimals"),
        ));
    }
    if value.scale() > 0 {
        value.rescale(decimals);
    }
    let text = value.to_string();
    check_amount_len(&text)?;
    Ok(text)
}

/// Rejects a formatted amount longer than 13 characters.
fn check_amount_len(text: &str) -> Result<(), EmvError> {
    if text.len() > MAX_AMOUNT_LEN {
        return Err(invalid(
            "54",
            format!("amount {text} is longer than {MAX_AMOUNT_LEN} characters"),
        ));
    }
    Ok(())
}

/// Checks that `value` is exactly `count` ASCII digits.
fn check_digits(path: &str, what: &str, value: &str, count: usize) -> Result<(), EmvError> {
    if value.len() == count && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("{what} {value:?} must be {count} digits"),
        ))
    }
}

/// Checks that `value` is a two-letter uppercase country code.
fn check_country(value: &str) -> Result<(), EmvError> {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(invalid(
            "58",
            format!("country {value:?} must be 2 uppercase letters"),
        ))
    }
}

/// The sub-fields of the additional data template (tag `62`) that qrpayd uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdditionalData {
    /// Bill number (`62.01`).
    pub bill: Option<String>,
    /// Reference label (`62.05`).
    pub reference: Option<String>,
    /// Terminal label (`62.07`).
    pub terminal: Option<String>,
    /// Purpose of transaction (`62.08`).
    pub purpose: Option<String>,
}

impl AdditionalData {
    /// Reads tag `62` of `payload`; absent tag `62` gives all `None`.
    pub fn from_payload(payload: &Payload) -> Result<AdditionalData, EmvError> {
        let Some(field) = payload.get(tags::ADDITIONAL_DATA) else {
            return Ok(AdditionalData::default());
        };
        let fields = field
            .value
            .subfields()
            .map_err(|e| invalid("62", format!("not a template: {e}")))?;
        let read = |tag| find_primitive(&fields, tag).map(str::to_owned);
        Ok(AdditionalData {
            bill: read(tags::BILL_NUMBER),
            reference: read(tags::REFERENCE_LABEL),
            terminal: read(tags::TERMINAL_LABEL),
            purpose: read(tags::PURPOSE),
        })
    }

    /// Returns the tag `62` field, or `None` when every sub-field is absent.
    pub fn to_field(&self) -> Option<Field> {
        let subs = [
            (tags::BILL_NUMBER, &self.bill),
            (tags::REFERENCE_LABEL, &self.reference),
            (tags::TERMINAL_LABEL, &self.terminal),
            (tags::PURPOSE, &self.purpose),
        ];
        let fields: Vec<Field> = subs
            .into_iter()
            .filter_map(|(tag, value)| value.as_ref().map(|v| Field::primitive(tag, v.clone())))
            .collect();
        (!fields.is_empty()).then(|| Field::template(tags::ADDITIONAL_DATA, fields))
    }
}

/// The VietQR transfer service (`38.02`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VietQrService {
    /// Transfer to a bank account, `QRIBFTTA`.
    ToAccount,
    /// Transfer to a card, `QRIBFTTC`.
    ToCard,
}

impl VietQrService {
    /// The service code as written in the QR.
    pub fn code(self) -> &'static str {
        match self {
            VietQrService::ToAccount => "QRIBFTTA",
            VietQrService::ToCard => "QRIBFTTC",
        }
    }

    /// Reads a service code.
    pub fn from_code(code: &str) -> Option<VietQrService> {
        match code {
            "QRIBFTTA" => Some(VietQrService::ToAccount),
            "QRIBFTTC" => Some(VietQrService::ToCard),
            _ => None,
        }
    }
}

/// Typed view of a VietQR (NAPAS) code.
///
/// Currency must be `704` and country `VN`; other values are rejected both
/// when reading and when building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQr {
    /// Acquirer BIN, 6 digits (`38.01.00`).
    pub bin: String,
    /// Account or card number, 1 to 19 ASCII letters or digits (`38.01.01`).
    pub account: String,
    /// Transfer service (`38.02`).
    pub service: VietQrService,
    /// Amount in VND (`54`); written with its scale kept.
    pub amount: Option<Decimal>,
    /// Currency, always `704` (`53`).
    pub currency: String,
    /// Country, always `VN` (`58`).
    pub country: String,
    /// Merchant category code (`52`).
    pub mcc: Option<String>,
    /// Merchant name (`59`).
    pub merchant_name: Option<String>,
    /// Merchant city (`60`).
    pub city: Option<String>,
    /// Bill number (`62.01`).
    pub bill: Option<String>,
    /// Reference label (`62.05`).
    pub reference: Option<String>,
    /// Terminal label (`62.07`).
    pub terminal: Option<String>,
    /// Purpose of transaction (`62.08`).
    pub purpose: Option<String>,
}

/// The only currency of VietQR codes (VND).
const VND: &str = "704";

/// The only country of VietQR codes.
const VIETNAM: &str = "VN";

impl VietQr {
    /// Creates a view with no amount and no optional fields.
    pub fn new(
        bin: impl Into<String>,
        account: impl Into<String>,
        service: VietQrService,
    ) -> VietQr {
        VietQr {
            bin: bin.into(),
            account: account.into(),
            service,
            amount: None,
            currency: VND.to_owned(),
            country: VIETNAM.to_owned(),
            mcc: None,
            merchant_name: None,
            city: None,
            bill: None,
            reference: None,
            terminal: None,
            purpose: None,
        }
    }

    /// Reads the VietQR view of a parsed payload.
    pub fn from_payload(p: &Payload) -> Result<VietQr, EmvError> {
        let (bin, account, service) = read_napas_account(p)?;
        let currency = require(p, tags::CURRENCY, "transaction currency")?;
        check_fixed("53", "currency", currency, VND)?;
        let country = require(p, tags::COUNTRY, "country code")?;
        check_fixed("58", "country", country, VIETNAM)?;
        let mcc = p.primitive(tags::MCC).map(str::to_owned);
        if let Some(mcc) = &mcc {
            check_digits("52", "merchant category code", mcc, 4)?;
        }
        let additional = AdditionalData::from_payload(p)?;
        Ok(VietQr {
            bin,
            account,
            service,
            amount: read_amount(p)?,
            currency: currency.to_owned(),
            country: country.to_owned(),
            mcc,
            merchant_name: p.primitive(tags::MERCHANT_NAME).map(str::to_owned),
            city: p.primitive(tags::CITY).map(str::to_owned),
            bill: additional.bill,
            reference: additional.reference,
            terminal: additional.terminal,
            purpose: additional.purpose,
        })
    }

    /// Builds the payload in canonical tag order; point of initiation is
    /// dynamic (`12`) when an amount is present and static (`11`) otherwise.
    pub fn to_payload(&self) -> Result<Payload, EmvError> {
        check_napas_account(&self.bin, &self.account)?;
        check_fixed("53", "currency", &self.currency, VND)?;
        check_fixed("58", "country", &self.country, VIETNAM)?;
        let initiation = if self.amount.is_some() { "12" } else { "11" };
        let mut fields = vec![
            Field::primitive(tags::PAYLOAD_FORMAT, FORMAT_INDICATOR),
            Field::primitive(tags::POINT_OF_INITIATION, initiation),
            self.napas_account_field(),
        ];
        if let Some(mcc) = &self.mcc {
            check_digits("52", "merchant category code", mcc, 4)?;
            fields.push(Field::primitive(tags::MCC, mcc.clone()));
        }
        fields.push(Field::primitive(tags::CURRENCY, self.currency.clone()));
        if let Some(amount) = self.amount {
            fields.push(Field::primitive(tags::AMOUNT, format_amount_as_is(amount)?));
        }
        fields.push(Field::primitive(tags::COUNTRY, self.country.clone()));
        push_optional(&mut fields, tags::MERCHANT_NAME, &self.merchant_name);
        push_optional(&mut fields, tags::CITY, &self.city);
        fields.extend(self.additional().to_field());
        Ok(Payload { fields })
    }

    /// Builds and encodes the code.
    pub fn encode(&self) -> Result<String, EmvError> {
        self.to_payload()?.encode()
    }

    /// The NAPAS merchant account template (`38`).
    fn napas_account_field(&self) -> Field {
        Field::template(
            tags::VIETQR_ACCOUNT,
            vec![
                Field::primitive(0, NAPAS_AID),
                Field::template(
                    1,
                    vec![
                        Field::primitive(0, self.bin.clone()),
                        Field::primitive(1, self.account.clone()),
                    ],
                ),
                Field::primitive(2, self.service.code()),
            ],
        )
    }

    /// The additional data sub-fields of this view.
    fn additional(&self) -> AdditionalData {
        AdditionalData {
            bill: self.bill.clone(),
            reference: self.reference.clone(),
            terminal: self.terminal.clone(),
            purpose: self.purpose.clone(),
        }
    }
}

/// Reads BIN, account and service from the NAPAS template (`38`).
fn read_napas_account(p: &Payload) -> Result<(String, String, VietQrService), EmvError> {
    let field = p
        .get(tags::VIETQR_ACCOUNT)
        .ok_or_else(|| missing("38", "NAPAS merchant account template"))?;
    let subs = field
        .value
        .subfields()
        .map_err(|e| invalid("38", format!("not a template: {e}")))?;
    let guid = find_primitive(&subs, 0).ok_or_else(|| missing("38.00", "NAPAS GUID"))?;
    if !guid.eq_ignore_ascii_case(NAPAS_AID) {
        return Err(invalid(
            "38.00",
            format!("GUID {guid:?} is not {NAPAS_AID}"),
        ));
    }
    let beneficiary = find(&subs, 1).ok_or_else(|| missing("38.01", "beneficiary template"))?;
    let inner = beneficiary
        .value
        .subfields()
        .map_err(|e| invalid("38.01", format!("not a template: {e}")))?;
    let bin = find_primitive(&inner, 0).ok_or_else(|| missing("38.01.00", "acquirer BIN"))?;
    let account = find_primitive(&inner, 1).ok_or_else(|| missing("38.01.01", "account number"))?;
    check_napas_account(bin, account)?;
    let code = find_primitive(&subs, 2).ok_or_else(|| missing("38.02", "service code"))?;
    let service = VietQrService::from_code(code)
        .ok_or_else(|| invalid("38.02", format!("unknown service code {code:?}")))?;
    Ok((bin.to_owned(), account.to_owned(), service))
}

/// Checks the BIN (6 digits) and the account (1 to 19 letters or digits).
fn check_napas_account(bin: &str, account: &str) -> Result<(), EmvError> {
    check_digits("38.01.00", "acquirer BIN", bin, 6)?;
    let ok =
        (1..=19).contains(&account.len()) && account.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "38.01.01",
            format!("account {account:?} must be 1 to 19 ASCII letters or digits"),
        ))
    }
}

/// Returns the primitive value of a required top-level tag.
fn require<'a>(p: &'a Payload, tag: u8, what: &'static str) -> Result<&'a str, EmvError> {
    p.primitive(tag)
        .ok_or_else(|| missing(format!("{tag:02}"), what))
}

/// Checks that `value` equals the only accepted `expected` value.
fn check_fixed(path: &str, what: &str, value: &str, expected: &str) -> Result<(), EmvError> {
    if value == expected {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("{what} {value:?} is not {expected:?}"),
        ))
    }
}

/// Reads the optional amount (`54`).
fn read_amount(p: &Payload) -> Result<Option<Decimal>, EmvError> {
    p.primitive(tags::AMOUNT).map(parse_amount).transpose()
}

/// Appends a primitive field when `value` is present.
fn push_optional(fields: &mut Vec<Field>, tag: u8, value: &Option<String>) {
    if let Some(value) = value {
        fields.push(Field::primitive(tag, value.clone()));
    }
}

/// Generic typed view of a merchant-presented code (QPay, simulator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantQr {
    /// Whether the point of initiation is dynamic (`12`); absent means static.
    pub dynamic: bool,
    /// Merchant account information fields (tags `02` to `51`), in order.
    pub merchant_accounts: Vec<Field>,
    /// Merchant category code, 4 digits (`52`).
    pub mcc: Option<String>,
    /// Currency, ISO 4217 numeric, 3 digits (`53`).
    pub currency: Option<String>,
    /// Amount (`54`).
    pub amount: Option<Decimal>,
    /// Country, 2 uppercase letters (`58`).
    pub country: Option<String>,
    /// Merchant name (`59`).
    pub merchant_name: Option<String>,
    /// Merchant city (`60`).
    pub city: Option<String>,
    /// Additional data (`62`).
    pub additional: AdditionalData,
}

impl MerchantQr {
    /// Reads the generic view of a parsed payload, checking the formats of
    /// the MCC, currency, amount and country when they are present.
    pub fn from_payload(p: &Payload) -> Result<MerchantQr, EmvError> {
        let dynamic = p.primitive(tags::POINT_OF_INITIATION) == Some("12");
        let owned = |tag| p.primitive(tag).map(str::to_owned);
        let mcc = owned(tags::MCC);
        if let Some(mcc) = &mcc {
            check_digits("52", "merchant category code", mcc, 4)?;
        }
        let currency = owned(tags::CURRENCY);
        if let Some(currency) = &currency {
            check_digits("53", "currency", currency, 3)?;
        }
        let country = owned(tags::COUNTRY);
        if let Some(country) = &country {
            check_country(country)?;
        }
        let merchant_accounts = p
            .fields
            .iter()
            .filter(|f| (2..=51).contains(&f.tag))
            .cloned()
            .collect();
        Ok(MerchantQr {
            dynamic,
            merchant_accounts,
            mcc,
            currency,
            amount: read_amount(p)?,
            country,
            merchant_name: owned(tags::MERCHANT_NAME),
            city: owned(tags::CITY),
            additional: AdditionalData::from_payload(p)?,
        })
    }
}

/// How a provider's QR differs from the payment it was made for: what the customer would be
/// shown and asked is not what the payment is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrMismatch {
    /// A dynamic code (`01` = `12`) without an amount: the customer would type one.
    #[error(
        "the QR is dynamic (tag 01 is 12) but carries no amount (tag 54); the payment is {}",
        .expected.normalize()
    )]
    MissingAmount {
        /// The payment's amount.
        expected: Decimal,
    },
    /// The amount (`54`) is not the payment's.
    #[error(
        "the QR asks for {} (tag 54), the payment is {}",
        .found.normalize(),
        .expected.normalize()
    )]
    Amount {
        /// The QR's amount.
        found: Decimal,
        /// The payment's amount.
        expected: Decimal,
    },
    /// The amount (`54`) is not a valid EMVCo amount.
    #[error("the QR's amount cannot be read: {0}")]
    UnreadableAmount(EmvError),
    /// The currency (`53`) is absent or not the payment's.
    #[error("the QR's currency (tag 53) is {}, the payment's is {expected}", shown(.found))]
    Currency {
        /// The QR's currency, if it has one.
        found: Option<String>,
        /// The payment's, ISO 4217 numeric.
        expected: String,
    },
    /// The country (`58`) is absent or not the payment's.
    #[error("the QR's country (tag 58) is {}, the payment's is {expected}", shown(.found))]
    Country {
        /// The QR's country, if it has one.
        found: Option<String>,
        /// The payment's, ISO 3166-1 alpha-2.
        expected: String,
    },
}

/// A field of a [`QrMismatch`] as its message shows it.
fn shown(found: &Option<String>) -> String {
    found
        .as_ref()
        .map_or_else(|| "missing".to_owned(), |value| format!("{value:?}"))
}

/// Checks that a provider's QR asks for exactly the payment it was made for, so that what the
/// customer sees is what is charged: the amount (tag `54`, compared as a decimal, exactly:
/// `12500` and `12500.00` are the same amount, `12500.01` is not), the currency (tag `53`,
/// ISO 4217 numeric: `496` MNT, `704` VND) and the country (tag `58`: `MN`, `VN`).
///
/// A dynamic code (point of initiation `12`) must carry the amount. A static one (`11`, or no
/// tag `01`) may leave the amount to the customer, but an amount it states must be the
/// payment's. Currency and country are mandatory in EMVCo's merchant-presented mode, and must
/// be the payment's.
pub fn check_payment(
    payload: &Payload,
    amount: Decimal,
    currency_numeric: &str,
    country: &str,
) -> Result<(), QrMismatch> {
    let dynamic = payload.primitive(tags::POINT_OF_INITIATION) == Some("12");
    match payload.primitive(tags::AMOUNT).map(parse_amount) {
        None if dynamic => return Err(QrMismatch::MissingAmount { expected: amount }),
        None => {}
        Some(Err(error)) => return Err(QrMismatch::UnreadableAmount(error)),
        Some(Ok(found)) if found != amount => {
            return Err(QrMismatch::Amount {
                found,
                expected: amount,
            });
        }
        Some(Ok(_)) => {}
    }
    let found_currency = payload.primitive(tags::CURRENCY);
    if found_currency != Some(currency_numeric) {
        return Err(QrMismatch::Currency {
            found: found_currency.map(str::to_owned),
            expected: currency_numeric.to_owned(),
        });
    }
    let found_country = payload.primitive(tags::COUNTRY);
    if found_country != Some(country) {
        return Err(QrMismatch::Country {
            found: found_country.map(str::to_owned),
            expected: country.to_owned(),
        });
    }
    Ok(())
}

/// A merchant account information template for [`MerchantQrSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantAccount {
    /// Template tag, 26 to 51 (e.g. 29).
    pub tag: u8,
    /// Globally unique identifier of the payment network (sub-tag `00`).
    pub guid: String,
    /// Further sub-fields, tags 01 to 99, each at most once.
    pub fields: Vec<Field>,
}

/// What the simulator puts in a dynamic merchant-presented code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantQrSpec {
    /// Merchant account information template.
    pub merchant_account: MerchantAccount,
    /// Merchant category code, 4 digits.
    pub mcc: String,
    /// Currency, ISO 4217 numeric, 3 digits (e.g. `496`).
    pub currency_numeric: String,
    /// Amount, positive, with at most `amount_decimals` fraction digits.
    pub amount: Decimal,
    /// Minor unit digits of the currency (2 for MNT, 0 for VND).
    pub amount_decimals: u32,
    /// Country, 2 uppercase letters.
    pub country: String,
    /// Merchant name (any UTF-8, at most 99 bytes).
    pub merchant_name: String,
    /// Merchant city (any UTF-8, at most 99 bytes).
    pub city: String,
    /// Bill number, reference, terminal label and purpose (`62`).
    pub additional: AdditionalData,
}

/// Builds a dynamic (`12`) merchant-presented code for the in-process
/// simulator provider. The amount is written without exponent: whole amounts
/// without fraction (`12500`), others with exactly `amount_decimals` digits
/// (`100.50`).
pub fn build_merchant_qr(spec: &MerchantQrSpec) -> Result<String, EmvError> {
    check_digits("52", "merchant category code", &spec.mcc, 4)?;
    check_digits("53", "currency", &spec.currency_numeric, 3)?;
    check_country(&spec.country)?;
    let amount = format_amount(spec.amount, spec.amount_decimals)?;
    let mut fields = vec![
        Field::primitive(tags::PAYLOAD_FORMAT, FORMAT_INDICATOR),
        Field::primitive(tags::POINT_OF_INITIATION, "12"),
        merchant_account_field(&spec.merchant_account)?,
        Field::primitive(tags::MCC, spec.mcc.clone()),
        Field::primitive(tags::CURRENCY, spec.currency_numeric.clone()),
        Field::primitive(tags::AMOUNT, amount),
        Field::primitive(tags::COUNTRY, spec.country.clone()),
        Field::primitive(tags::MERCHANT_NAME, spec.merchant_name.clone()),
        Field::primitive(tags::CITY, spec.city.clone()),
    ];
    fields.extend(spec.additional.to_field());
    Payload { fields }.encode()
}

/// Builds the merchant account template, checking its tag and sub-tags.
fn merchant_account_field(account: &MerchantAccount) -> Result<Field, EmvError> {
    let path = format!("{:02}", account.tag);
    if !is_merchant_account_tag(account.tag) {
        return Err(invalid(
            path,
            "merchant account template tag must be 26 to 51",
        ));
    }
    let mut seen = [false; 100];
    seen[0] = true;
    for field in &account.fields {
        let slot = seen
            .get_mut(usize::from(field.tag))
            .ok_or(EmvError::TagOutOfRange { tag: field.tag })?;
        if *slot {
            return Err(invalid(
                path,
                format!("sub-tag {:02} is the GUID or repeats", field.tag),
            ));
        }
        *slot = true;
    }
    let mut fields = vec![Field::primitive(0, account.guid.clone())];
    fields.extend(account.fields.iter().cloned());
    Ok(Field::template(account.tag, fields))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    const QPAY: &str = "0002010102121531279404962794049600000000KKTQPAY52046010530349654031005802MN5913TEST_MERCHANT6011Ulaanbaatar6244010712345670504test0721G7ZEWdbzkppBhJ1nouBhZ6304879D";
    const APPOTA: &str = "00020101021238630010A000000727013300069704320119MQQ0759866wrYqzPLw70208QRIBFTTA5204549953037045405120005802VN5916QRPAYMENT UAT 216011HO CHI MINH62430109wrYqzPLw70708Q07598660814AP26146183702063042A9D";
    const VIETQR: &str = "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN62150811Chuyen tien6304BBB8";

    /// Appends `6304` and the correct CRC to `body`.
    fn with_crc(body: &str) -> String {
        let head = format!("{body}6304");
        let crc = crc16_ccitt_false(head.as_bytes());
        format!("{head}{crc:04X}")
    }

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
        assert_eq!(crc16_ccitt_false(b""), 0xFFFF);
    }

    #[test]
    fn vectors_parse_and_reencode_identically() {
        for vector in [QPAY, APPOTA, VIETQR] {
            let payload = Payload::parse(vector).unwrap();
            assert!(payload.get(tags::CRC).is_none());
            assert_eq!(payload.encode().unwrap(), vector);
            assert_eq!(validate(vector).unwrap(), payload);
        }
    }

    #[test]
    fn qpay_tag_15_stays_primitive_and_view_is_right() {
        let payload = Payload::parse(QPAY).unwrap();
        assert_eq!(
            payload.primitive(15),
            Some("279404962794049600000000KKTQPAY")
        );
        let view = MerchantQr::from_payload(&payload).unwrap();
        assert_eq!(view.currency.as_deref(), Some("496"));
        assert_eq!(view.amount, Some(dec("100")));
        assert_eq!(view.country.as_deref(), Some("MN"));
        assert_eq!(view.mcc.as_deref(), Some("6010"));
        assert_eq!(view.merchant_name.as_deref(), Some("TEST_MERCHANT"));
        assert_eq!(view.city.as_deref(), Some("Ulaanbaatar"));
        assert!(view.dynamic);
        assert_eq!(view.merchant_accounts.len(), 1);
        assert_eq!(view.additional.bill.as_deref(), Some("1234567"));
        assert_eq!(view.additional.reference.as_deref(), Some("test"));
        assert_eq!(
            view.additional.terminal.as_deref(),
            Some("G7ZEWdbzkppBhJ1nouBhZ")
        );
        assert_eq!(view.additional.purpose, None);
    }

    #[test]
    fn appota_vietqr_view() {
        let payload = Payload::parse(APPOTA).unwrap();
        let view = VietQr::from_payload(&payload).unwrap();
        assert_eq!(view.bin, "970432");
        assert_eq!(view.account, "MQQ0759866wrYqzPLw7");
        assert_eq!(view.service, VietQrService::ToAccount);
        assert_eq!(view.amount, Some(dec("12000")));
        assert_eq!(view.currency, "704");
        assert_eq!(view.country, "VN");
        assert_eq!(view.mcc.as_deref(), Some("5499"));
        assert_eq!(view.merchant_name.as_deref(), Some("QRPAYMENT UAT 21"));
        assert_eq!(view.city.as_deref(), Some("HO CHI MINH"));
        assert_eq!(view.bill.as_deref(), Some("wrYqzPLw7"));
        assert_eq!(view.terminal.as_deref(), Some("Q0759866"));
        assert_eq!(view.purpose.as_deref(), Some("AP261461837020"));
        assert_eq!(view.to_payload().unwrap(), payload);
        assert_eq!(view.encode().unwrap(), APPOTA);
    }

    #[test]
    fn vietqr_vector_view() {
        let payload = Payload::parse(VIETQR).unwrap();
        let view = VietQr::from_payload(&payload).unwrap();
        assert_eq!(view.bin, "970416");
        assert_eq!(view.account, "257678859");
        assert_eq!(view.service, VietQrService::ToAccount);
        assert_eq!(view.amount, Some(dec("1000")));
        assert_eq!(view.purpose.as_deref(), Some("Chuyen tien"));
        assert_eq!(view.merchant_name, None);
        assert_eq!(view.encode().unwrap(), VIETQR);
    }

    #[test]
    fn napas_beneficiary_is_nested() {
        let payload = Payload::parse(VIETQR).unwrap();
        let account = payload.template(tags::VIETQR_ACCOUNT).unwrap();
        let beneficiary = find(account, 1).unwrap().value.as_template().unwrap();
        assert_eq!(find_primitive(beneficiary, 0), Some("970416"));
        assert_eq!(find_primitive(account, 2), Some("QRIBFTTA"));
    }

    #[test]
    fn lowercase_crc_is_accepted() {
        let lower = APPOTA.replace("2A9D", "2a9d");
        let payload = Payload::parse(&lower).unwrap();
        assert_eq!(payload.encode().unwrap(), APPOTA);
    }

    #[test]
    fn non_tlv_template_is_kept_primitive() {
        let text = with_crc("000201010211260512345");
        let payload = Payload::parse(&text).unwrap();
        assert_eq!(payload.primitive(26), Some("12345"));
        assert_eq!(payload.encode().unwrap(), text);
    }

    #[test]
    fn parse_errors_table() {
        let bad_len = QPAY.replacen("1531", "153x", 1);
        let crc_wrong = QPAY.replace("879D", "879E");
        let crc_not_last = format!("{}5802MN", with_crc("000201"));
        let cases: Vec<(String, EmvError)> = vec![
            (String::new(), EmvError::Empty),
            (
                "000201010".to_owned(),
                EmvError::TruncatedHeader {
                    offset: 6,
                    remaining: 3,
                },
            ),
            (
                QPAY[..QPAY.len() - 1].to_owned(),
                EmvError::TruncatedValue {
                    offset: QPAY.len() - 4,
                    tag: 63,
                    declared: 4,
                    remaining: 3,
                },
            ),
            (
                bad_len,
                EmvError::InvalidLength {
                    offset: 14,
                    tag: 15,
                },
            ),
            (
                format!("0x{}", &QPAY[2..]),
                EmvError::NonDigitTag { offset: 1 },
            ),
            (
                crc_wrong,
                EmvError::CrcMismatch {
                    stated: "879E".to_owned(),
                    computed: 0x879D,
                },
            ),
            (crc_not_last, EmvError::CrcNotLast { offset: 6, end: 20 }),
            (with_crc("0102125802MN"), EmvError::MissingFormatIndicator),
            (
                with_crc("000202"),
                EmvError::UnsupportedFormatIndicator {
                    value: "02".to_owned(),
                },
            ),
            (
                with_crc("0002015802MN5802VN"),
                EmvError::DuplicateTag {
                    offset: 12,
                    tag: 58,
                },
            ),
            (
                with_crc("0002015900"),
                EmvError::ZeroLength { offset: 8, tag: 59 },
            ),
            (
                with_crc("0002015903Ха"),
                EmvError::SplitCharacter {
                    offset: 10,
                    tag: 59,
                },
            ),
            ("0002015802MN".to_owned(), EmvError::MissingCrc),
            (
                "0002015802MN6305ABCDE".to_owned(),
                EmvError::InvalidCrcLength { offset: 12, len: 5 },
            ),
            (
                "0002015802MN6304GHIJ".to_owned(),
                EmvError::InvalidCrcValue {
                    offset: 16,
                    value: "GHIJ".to_owned(),
                },
            ),
            (
                with_crc("000201010213"),
                EmvError::InvalidValue {
                    path: "01".to_owned(),
                    offset: Some(10),
                    reason: "point of initiation is \"13\", expected \"11\" or \"12\"".to_owned(),
                },
            ),
            (
                format!("{QPAY}\n"),
                EmvError::TruncatedHeader {
                    offset: QPAY.len(),
                    remaining: 1,
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(Payload::parse(&input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn error_messages_name_offsets_and_tags() {
        let crc = Payload::parse(&QPAY.replace("879D", "879E")).unwrap_err();
        assert_eq!(
            crc.to_string(),
            "CRC mismatch: payload says 879E, computed 879D"
        );
        let len = EmvError::InvalidLength {
            offset: 12,
            tag: 26,
        };
        assert_eq!(
            len.to_string(),
            "invalid length field at offset 12 (tag 26)"
        );
        let long = EmvError::ValueTooLong { tag: 59, len: 120 };
        assert_eq!(
            long.to_string(),
            "value of tag 59 is 120 bytes, the maximum is 99"
        );
        let digit = EmvError::NonDigitTag { offset: 40 };
        assert_eq!(digit.to_string(), "non-digit in tag id at offset 40");
        let missing = EmvError::MissingFormatIndicator;
        assert_eq!(
            missing.to_string(),
            "missing payload format indicator (tag 00) at offset 0"
        );
        let value = Payload::parse(&with_crc("000201010213")).unwrap_err();
        assert!(
            value
                .to_string()
                .starts_with("invalid value of tag 01 at offset 10: ")
        );
    }

    #[test]
    fn encode_errors_table() {
        let base = || vec![Field::primitive(0, "01")];
        let with = |extra: Field| {
            let mut fields = base();
            fields.push(extra);
            Payload { fields }
        };
        let cases: Vec<(Payload, EmvError)> = vec![
            (
                with(Field::primitive(59, "x".repeat(120))),
                EmvError::ValueTooLong { tag: 59, len: 120 },
            ),
            (
                with(Field::primitive(120, "x")),
                EmvError::TagOutOfRange { tag: 120 },
            ),
            (
                with(Field::primitive(59, "")),
                EmvError::EmptyValue { tag: 59 },
            ),
            (
                with(Field::template(62, vec![])),
                EmvError::EmptyValue { tag: 62 },
            ),
            (
                with(Field::template(
                    62,
                    vec![Field::primitive(8, "y".repeat(100))],
                )),
                EmvError::ValueTooLong { tag: 8, len: 100 },
            ),
            (
                with(Field::template(
                    62,
                    vec![
                        Field::primitive(8, "y".repeat(50)),
                        Field::primitive(9, "z".repeat(50)),
                    ],
                )),
                EmvError::ValueTooLong { tag: 62, len: 108 },
            ),
            (with(Field::primitive(63, "ABCD")), EmvError::CrcSupplied),
            (
                Payload {
                    fields: vec![
                        Field::primitive(0, "01"),
                        Field::primitive(58, "MN"),
                        Field::primitive(58, "VN"),
                    ],
                },
                EmvError::DuplicateTag {
                    offset: 12,
                    tag: 58,
                },
            ),
            (
                Payload {
                    fields: vec![Field::primitive(58, "MN")],
                },
                EmvError::MissingFormatIndicator,
            ),
            (Payload { fields: vec![] }, EmvError::MissingFormatIndicator),
            (
                Payload {
                    fields: vec![Field::primitive(0, "02")],
                },
                EmvError::UnsupportedFormatIndicator {
                    value: "02".to_owned(),
                },
            ),
            (
                with(Field::primitive(1, "13")),
                invalid(
                    "01",
                    "point of initiation is \"13\", expected \"11\" or \"12\"",
                ),
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(payload.encode(), Err(expected), "payload {payload:?}");
        }
    }

    #[test]
    fn view_errors_table() {
        let qpay = Payload::parse(QPAY).unwrap();
        assert_eq!(
            VietQr::from_payload(&qpay),
            Err(missing("38", "NAPAS merchant account template"))
        );
        let card_to_usd = with_crc(&VIETQR[..VIETQR.len() - 8].replace("5303704", "5303840"));
        let usd = Payload::parse(&card_to_usd).unwrap();
        assert_eq!(
            VietQr::from_payload(&usd),
            Err(invalid("53", "currency \"840\" is not \"704\""))
        );
        let bad_amount = with_crc("00020154051,0005802MN");
        let payload = Payload::parse(&bad_amount).unwrap();
        let err = MerchantQr::from_payload(&payload).unwrap_err();
        assert!(matches!(err, EmvError::InvalidValue { ref path, .. } if path == "54"));
        let other_guid = with_crc("00020138220010A000000999010412345303704");
        let payload = Payload::parse(&other_guid).unwrap();
        assert!(matches!(
            VietQr::from_payload(&payload),
            Err(EmvError::InvalidValue { ref path, .. }) if path == "38.00"
        ));
        let mut view = VietQr::new("97041", "123456", VietQrService::ToCard);
        assert!(matches!(
            view.to_payload(),
            Err(EmvError::InvalidValue { ref path, .. }) if path == "38.01.00"
        ));
        view.bin = "970416".to_owned();
        view.account = "12-34".to_owned();
        assert!(matches!(
            view.to_payload(),
            Err(EmvError::InvalidValue { ref path, .. }) if path == "38.01.01"
        ));
    }

    #[test]
    fn amount_parsing() {
        assert_eq!(parse_amount("100").unwrap(), dec("100"));
        assert_eq!(parse_amount("100.50").unwrap().to_string(), "100.50");
        assert_eq!(parse_amount("100.").unwrap(), dec("100"));
        assert_eq!(parse_amount(".5").unwrap(), dec("0.5"));
        assert_eq!(parse_amount("9999999999999").unwrap(), dec("9999999999999"));
        for bad in [
            "",
            ".",
            "1.2.3",
            "-1",
            "+1",
            "1e5",
            "1,000",
            "12345678901234",
            " 1",
        ] {
            assert!(parse_amount(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn amount_formatting() {
        assert_eq!(format_amount(dec("12500"), 0).unwrap(), "12500");
        assert_eq!(format_amount(dec("12500.00"), 2).unwrap(), "12500");
        assert_eq!(format_amount(dec("100.5"), 2).unwrap(), "100.50");
        assert_eq!(format_amount(dec("1E+3"), 0).unwrap(), "1000");
        assert!(format_amount(dec("1.005"), 2).is_err());
        assert!(format_amount(dec("0"), 2).is_err());
        assert!(format_amount(dec("-5"), 2).is_err());
        assert!(format_amount(dec("12345678901.5"), 2).is_err());
    }

    fn simulator_spec(name: &str, city: &str) -> MerchantQrSpec {
        MerchantQrSpec {
            merchant_account: MerchantAccount {
                tag: 29,
                guid: "mn.qrpayd.sim".to_owned(),
                fields: vec![Field::primitive(1, "SIM0001")],
            },
            mcc: "5812".to_owned(),
            currency_numeric: "496".to_owned(),
            amount: dec("12500"),
            amount_decimals: 2,
            country: "MN".to_owned(),
            merchant_name: name.to_owned(),
            city: city.to_owned(),
            additional: AdditionalData {
                bill: Some("INV-42".to_owned()),
                reference: Some("ref-1".to_owned()),
                terminal: Some("POS-7".to_owned()),
                purpose: Some("coffee".to_owned()),
            },
        }
    }

    /// §4 "What the customer sees matches what is charged": the vectors match their own
    /// payments, whatever the scale of the amount.
    #[test]
    fn the_vectors_match_their_payments() {
        let cases = [
            (QPAY, "100", "496", "MN"),
            (QPAY, "100.00", "496", "MN"),
            (APPOTA, "12000", "704", "VN"),
            (VIETQR, "1000", "704", "VN"),
        ];
        for (vector, amount, currency, country) in cases {
            let payload = Payload::parse(vector).unwrap();
            assert_eq!(
                check_payment(&payload, dec(amount), currency, country),
                Ok(()),
                "{vector}"
            );
        }
    }

    #[test]
    fn every_difference_from_the_payment_is_named() {
        let qpay = Payload::parse(QPAY).unwrap();
        assert_eq!(
            check_payment(&qpay, dec("100.01"), "496", "MN"),
            Err(QrMismatch::Amount {
                found: dec("100"),
                expected: dec("100.01")
            })
        );
        assert_eq!(
            check_payment(&qpay, dec("100"), "704", "MN"),
            Err(QrMismatch::Currency {
                found: Some("496".to_owned()),
                expected: "704".to_owned()
            })
        );
        assert_eq!(
            check_payment(&qpay, dec("100"), "496", "VN"),
            Err(QrMismatch::Country {
                found: Some("MN".to_owned()),
                expected: "VN".to_owned()
            })
        );
        let message = check_payment(&qpay, dec("12500"), "496", "MN")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "the QR asks for 100 (tag 54), the payment is 12500"
        );

        // Built field by field: a code with or without each of the tags compared.
        let code = |initiation: Option<&str>,
                    currency: Option<&str>,
                    amount: Option<&str>,
                    country: Option<&str>| {
            let mut fields = vec![Field::primitive(tags::PAYLOAD_FORMAT, "01")];
            fields.extend(initiation.map(|v| Field::primitive(tags::POINT_OF_INITIATION, v)));
            fields.push(Field::template(
                29,
                vec![Field::primitive(0, "mn.qrpayd.sim")],
            ));
            fields.extend(currency.map(|v| Field::primitive(tags::CURRENCY, v)));
            fields.extend(amount.map(|v| Field::primitive(tags::AMOUNT, v)));
            fields.extend(country.map(|v| Field::primitive(tags::COUNTRY, v)));
            Payload::parse(&Payload { fields }.encode().unwrap()).unwrap()
        };
        let check = |payload: &Payload| check_payment(payload, dec("12500"), "496", "MN");
        let full = |amount| code(Some("12"), Some("496"), Some(amount), Some("MN"));
        assert_eq!(check(&full("12500")), Ok(()));
        assert_eq!(check(&full("12500.00")), Ok(()));
        assert_eq!(
            check(&full("12500.")),
            Ok(()),
            "EMVCo allows a trailing point"
        );
        assert_eq!(
            check(&full("12500.01")),
            Err(QrMismatch::Amount {
                found: dec("12500.01"),
                expected: dec("12500")
            })
        );
        assert!(matches!(
            check(&full("1e5")),
            Err(QrMismatch::UnreadableAmount(_))
        ));
        // A dynamic code must carry the amount; a static one may leave it to the customer.
        assert_eq!(
            check(&code(Some("12"), Some("496"), None, Some("MN"))),
            Err(QrMismatch::MissingAmount {
                expected: dec("12500")
            })
        );
        assert_eq!(
            check(&code(Some("11"), Some("496"), None, Some("MN"))),
            Ok(())
        );
        assert_eq!(check(&code(None, Some("496"), None, Some("MN"))), Ok(()));
        assert_eq!(
            check(&code(Some("11"), Some("496"), Some("125"), Some("MN"))),
            Err(QrMismatch::Amount {
                found: dec("125"),
                expected: dec("12500")
            }),
            "a static code's amount is compared too"
        );
        assert_eq!(
            check(&code(Some("12"), None, Some("12500"), Some("MN"))),
            Err(QrMismatch::Currency {
                found: None,
                expected: "496".to_owned()
            })
        );
        assert_eq!(
            check(&code(Some("12"), Some("496"), Some("12500"), None)),
            Err(QrMismatch::Country {
                found: None,
                expected: "MN".to_owned()
            })
        );
        let message = check(&code(Some("12"), Some("496"), Some("12500"), None))
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "the QR's country (tag 58) is missing, the payment's is MN"
        );
    }

    #[test]
    fn simulator_builder_round_trips() {
        let spec = simulator_spec("Sim Cafe", "Ulaanbaatar");
        let text = build_merchant_qr(&spec).unwrap();
        assert!(text.contains("540512500"));
        let view = MerchantQr::from_payload(&Payload::parse(&text).unwrap()).unwrap();
        assert!(view.dynamic);
        assert_eq!(view.amount, Some(dec("12500")));
        assert_eq!(view.currency.as_deref(), Some("496"));
        assert_eq!(view.mcc.as_deref(), Some("5812"));
        assert_eq!(view.additional, spec.additional);
        let account = &view.merchant_accounts[0];
        assert_eq!(account.tag, 29);
        assert_eq!(
            find_primitive(&account.value.subfields().unwrap(), 0),
            Some("mn.qrpayd.sim")
        );
        let fractional = MerchantQrSpec {
            amount: dec("100.5"),
            ..spec
        };
        assert!(
            build_merchant_qr(&fractional)
                .unwrap()
                .contains("5406100.50")
        );
    }

    #[test]
    fn simulator_builder_rejects_bad_specs() {
        let base = simulator_spec("Sim Cafe", "Ulaanbaatar");
        let mut wrong_tag = base.clone();
        wrong_tag.merchant_account.tag = 15;
        let mut guid_twice = base.clone();
        guid_twice
            .merchant_account
            .fields
            .push(Field::primitive(0, "x"));
        let mut bad_mcc = base.clone();
        bad_mcc.mcc = "58".to_owned();
        let mut bad_country = base.clone();
        bad_country.country = "mn".to_owned();
        let mut long_name = base.clone();
        long_name.merchant_name = "Х".repeat(50);
        for (spec, path) in [
            (wrong_tag, "15"),
            (guid_twice, "29"),
            (bad_mcc, "52"),
            (bad_country, "58"),
        ] {
            assert!(matches!(
                build_merchant_qr(&spec),
                Err(EmvError::InvalidValue { path: ref p, .. }) if p == path
            ));
        }
        assert_eq!(
            build_merchant_qr(&long_name),
            Err(EmvError::ValueTooLong { tag: 59, len: 100 })
        );
    }

    #[test]
    fn non_ascii_names_count_bytes() {
        for (name, city) in [("Cà phê Sữa", "Hà Nội"), ("Хаан", "Улаанбаатар")]
        {
            let text = build_merchant_qr(&simulator_spec(name, city)).unwrap();
            assert!(text.contains(&format!("59{:02}{name}", name.len())));
            assert!(text.contains(&format!("60{:02}{city}", city.len())));
            assert_ne!(name.len(), name.chars().count());
            let view = MerchantQr::from_payload(&validate(&text).unwrap()).unwrap();
            assert_eq!(view.merchant_name.as_deref(), Some(name));
            assert_eq!(view.city.as_deref(), Some(city));
        }
    }

    fn vietqr_strategy() -> impl Strategy<Value = VietQr> {
        let service = prop_oneof![Just(VietQrService::ToAccount), Just(VietQrService::ToCard)];
        let amount = proptest::option::of((1i64..=999_999_999_999, 0u32..=2));
        let text = || proptest::option::of("[ -~]{1,25}");
        (
            "[0-9]{6}",
            "[A-Za-z0-9]{6,19}",
            service,
            amount,
            text(),
            text(),
            text(),
        )
            .prop_map(|(bin, account, service, amount, purpose, name, bill)| {
                let mut view = VietQr::new(bin, account, service);
                view.amount = amount.map(|(n, scale)| Decimal::new(n, scale));
                view.purpose = purpose;
                view.merchant_name = name;
                view.bill = bill;
                view
            })
    }

    /// Whether replacing `old` by `new` in the CRC digits is only a case change.
    fn is_crc_case_flip(text: &str, index: usize, old: char, new: char) -> bool {
        index >= text.len() - 4 && old.eq_ignore_ascii_case(&new)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn vietqr_build_parse_round_trip(view in vietqr_strategy()) {
            let payload = view.to_payload().unwrap();
            let text = payload.encode().unwrap();
            let parsed = Payload::parse(&text).unwrap();
            prop_assert_eq!(&parsed, &payload);
            prop_assert_eq!(VietQr::from_payload(&parsed).unwrap(), view);
        }

        #[test]
        fn single_character_change_is_rejected(
            view in vietqr_strategy(),
            vector in 0usize..4,
            index in any::<prop::sample::Index>(),
            replacement in 0x20u8..=0x7E,
        ) {
            let text = match vector {
                0 => QPAY.to_owned(),
                1 => APPOTA.to_owned(),
                2 => VIETQR.to_owned(),
                _ => view.encode().unwrap(),
            };
            let position = index.index(text.len());
            let old = char::from(text.as_bytes()[position]);
            let new = char::from(replacement);
            prop_assume!(old != new);
            // A case change of a CRC hex letter is legitimately still valid.
            prop_assume!(!is_crc_case_flip(&text, position, old, new));
            let mut mutated = text.clone();
            mutated.replace_range(position..=position, &new.to_string());
            prop_assert!(Payload::parse(&mutated).is_err(), "accepted {}", mutated);
        }
    }
}
