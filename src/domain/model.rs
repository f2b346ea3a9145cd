//! The records qrpayd keeps: transactions, attempts, payment results and outbox events, in
//! MQ-Pay's vocabulary. Plain data; no I/O.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::money::Currency;
use super::status::{AttemptStatus, AttemptType, InvalidTransition, TransactionStatus};

/// The longest id the till may send (`source_id`, `attempt_id`, ...), in characters.
pub const MAX_ID_LEN: usize = 64;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 255;
/// The longest note or reason, in characters.
pub const MAX_NOTE_LEN: usize = 1000;
/// The most items one checkout may carry.
pub const MAX_ITEMS: usize = 200;

/// A point in time, as milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let now = time::OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// This time plus `millis` milliseconds, saturating.
    pub fn plus_millis(self, millis: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(millis).unwrap_or(i64::MAX)),
        )
    }

    /// Milliseconds from `self` until `later`, zero when `later` is not later.
    pub fn millis_until(self, later: Timestamp) -> u64 {
        u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0)
    }

    /// RFC 3339 in UTC with millisecond precision (`2026-11-21T10:35:00.000Z`).
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(at) => at
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                ))
                .unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }

    /// Parses RFC 3339 (any offset).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()?;
        Some(Timestamp((at.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// The calendar day in UTC.
    pub fn utc_date(self) -> Option<time::Date> {
        let nanos = i128::from(self.0) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .map(|at| at.date())
    }

    /// The wall-clock time of day at `utc_offset_seconds` east of UTC, `HH:MM`, for the
    /// customer display.
    pub fn time_of_day(self, utc_offset_seconds: i32) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        let offset =
            time::UtcOffset::from_whole_seconds(utc_offset_seconds).unwrap_or(time::UtcOffset::UTC);
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(at) => {
                let local = at.to_offset(offset);
                format!("{:02}:{:02}", local.hour(), local.minute())
            }
            Err(_) => String::new(),
        }
    }
}

/// What the transaction pays for, as the till names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The kind of thing (`Order` unless the till says otherwise).
    pub kind: String,
    /// The till's id for it; unique per kind.
    pub id: String,
    /// The till's human-readable reference, if any.
    pub uid: Option<String>,
}

/// One line of what is being paid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub description: String,
    pub quantity: Decimal,
    pub unit_price: Decimal,
}

/// A bank-app deep link that opens the payment directly on the customer's phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepLink {
    pub name: String,
    pub link: String,
}

/// A payment the till asked for (MQ-Pay's `Transaction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub id: String,
    /// Human-readable and unique on this terminal: `TXN000001`.
    pub number: String,
    pub terminal_id: String,
    pub source: Source,
    pub currency: Currency,
    pub total: Decimal,
    pub paid: Decimal,
    pub refunded: Decimal,
    /// Money received beyond what the sale needed when it arrived: a late payment on a settled
    /// or cancelled transaction, or more than was asked. Part of `paid`; only ever grows (its
    /// refunds are counted in `refunded`).
    pub overpaid: Decimal,
    pub status: TransactionStatus,
    pub description: Option<String>,
    pub items: Vec<Item>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Transaction {
    /// Moves the transaction to `to`, if the transition table allows it.
    pub fn transition_to(
        &mut self,
        to: TransactionStatus,
        now: Timestamp,
    ) -> Result<(), InvalidTransition> {
        self.status.check_transition(to)?;
        self.status = to;
        self.updated_at = now;
        Ok(())
    }

    /// What is still to be paid.
    pub fn remaining(&self) -> Decimal {
        (self.total - self.paid).max(Decimal::ZERO)
    }

    /// How much of `received` more money the sale does not need: all of it once the
    /// transaction is settled or cancelled, otherwise what exceeds the amount still due.
    pub fn excess_of(&self, received: Decimal) -> Decimal {
        let due = match self.status {
            TransactionStatus::New | TransactionStatus::Partial => self.remaining(),
            _ => Decimal::ZERO,
        };
        (received - due).max(Decimal::ZERO)
    }
}

/// Why an attempt failed, in the provider's (or qrpayd's) words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// One try at moving money for a transaction (MQ-Pay's `PaymentAttempt`): a payment, or a
/// cancel or refund of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: String,
    /// Human-readable and unique on this terminal: `ATT000001`.
    pub code: String,
    pub transaction_id: String,
    pub kind: AttemptType,
    pub status: AttemptStatus,
    pub provider: String,
    pub method: String,
    pub amount: Decimal,
    /// Money the provider confirmed for this attempt (payments only).
    pub paid: Decimal,
    /// Money refunded from this attempt (payments only).
    pub refunded: Decimal,
    /// The part of `paid` the sale did not need (see [`Transaction::overpaid`]).
    pub overpaid: Decimal,
    /// Cash handed over, for system payments.
    pub tendered: Option<Decimal>,
    pub parent_id: Option<String>,
    /// Sent with every provider call for this attempt, so a retried call is recognised.
    pub idempotency_key: String,
    /// The till's own key for the request that made this attempt (a refund's `request_id`):
    /// the same key returns the same attempt.
    pub request_id: Option<String>,
    pub invoice_id: Option<String>,
    pub short_url: Option<String>,
    pub qr_text: Option<String>,
    pub deep_links: Vec<DeepLink>,
    /// Whether an invoice for this attempt may still be payable at the provider: set when it is
    /// created, cleared once the provider confirmed it closed (paid in full, cancelled).
    pub provider_open: bool,
    pub allow_partial: bool,
    pub expires_at: Option<Timestamp>,
    pub failure: Option<Failure>,
    pub note: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Attempt {
    /// Moves the attempt to `to`, if the transition table allows it.
    pub fn transition_to(
        &mut self,
        to: AttemptStatus,
        now: Timestamp,
    ) -> Result<(), InvalidTransition> {
        self.status.check_transition(to)?;
        self.status = to;
        self.updated_at = now;
        Ok(())
    }

    /// What may still be refunded from this attempt.
    pub fn refundable(&self) -> Decimal {
        (self.paid - self.refunded).max(Decimal::ZERO)
    }

    /// **The** rule for "this payment may still take money": the attempt is open, or its
    /// invoice was not confirmed closed at the provider (an expired or cancelled QR whose close
    /// has not gone through, or one the provider cannot close). Every guard that must not let
    /// a customer pay twice (cash, a new QR, cancelling the transaction) asks this, and
    /// `OpenAttempts` counts it.
    pub fn may_take_money(&self) -> bool {
        self.kind == AttemptType::Payment && (self.status.is_open() || self.provider_open)
    }
}

/// One provider observation that moved money. Rows are only ever added; a provider payment id
/// is recorded once however often it is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentResult {
    pub attempt_id: String,
    pub provider: String,
    pub provider_payment_id: String,
    pub amount: Decimal,
    pub paid_at: Option<Timestamp>,
    pub observed_at: Timestamp,
}

/// What an outbox event reports to the merchant's back office. The store's triggers name each
/// event as it is queued (schema migration 5); these are the names they write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    TransactionCreated,
    TransactionPartiallyPaid,
    TransactionSettled,
    TransactionCancelled,
    /// Money arrived that the sale did not need (a late payment on a settled or cancelled
    /// transaction): the status stays, `paid` grows.
    OverpaymentReceived,
    TransactionRefunded,
    ItemAdded,
    AttemptCreated,
    AttemptSent,
    AttemptSucceeded,
    AttemptFailed,
    AttemptCancelled,
    AttemptExpired,
    /// Another change of an attempt's synced fields (money on an attempt that stays, say).
    AttemptUpdated,
    PaymentRecorded,
}

impl OutboxKind {
    /// The name stored and synced.
    pub fn name(self) -> &'static str {
        match self {
            OutboxKind::TransactionCreated => "transaction_created",
            OutboxKind::TransactionPartiallyPaid => "transaction_partially_paid",
            OutboxKind::TransactionSettled => "transaction_settled",
            OutboxKind::TransactionCancelled => "transaction_cancelled",
            OutboxKind::OverpaymentReceived => "overpayment_received",
            OutboxKind::TransactionRefunded => "transaction_refunded",
            OutboxKind::ItemAdded => "item_added",
            OutboxKind::AttemptCreated => "attempt_created",
            OutboxKind::AttemptSent => "attempt_sent",
            OutboxKind::AttemptSucceeded => "attempt_succeeded",
            OutboxKind::AttemptFailed => "attempt_failed",
            OutboxKind::AttemptCancelled => "attempt_cancelled",
            OutboxKind::AttemptExpired => "attempt_expired",
            OutboxKind::AttemptUpdated => "attempt_updated",
            OutboxKind::PaymentRecorded => "payment_recorded",
        }
    }
}

/// The record an outbox event is about: the sync sends that record's current state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutboxRecord {
    /// The transaction itself (its id is the event's `transaction_id`).
    Transaction,
    /// One of its items, by position.
    Item(i64),
    Attempt(String),
    /// A payment result, by its row id.
    Payment(i64),
    /// An event of a qrpayd before the sync: the whole transaction, with every item, attempt
    /// and payment result, is sent for it.
    WholeTransaction,
}

/// An event waiting in the outbox for the upstream sync.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Monotonic; the sync sends events in this order.
    pub seq: i64,
    pub transaction_id: String,
    pub kind: String,
    pub record: OutboxRecord,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

impl OutboxEvent {
    /// Whether the event reports a record new to the back office (sent as a create).
    pub fn creates(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "transaction_created" | "item_added" | "attempt_created" | "payment_recorded"
        ) || self.record == OutboxRecord::WholeTransaction
    }

    /// The fields an update changed, as the store's trigger listed them (`{"status": 1, ...}`).
    pub fn changed_fields(&self) -> impl Iterator<Item = &str> {
        self.payload
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, changed)| changed.as_i64() == Some(1) || changed.as_bool() == Some(true))
            .map(|(field, _)| field.as_str())
    }
}

/// An event the back office refused for good, waiting for someone to retry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    pub seq: i64,
    pub transaction_id: String,
    pub transaction_number: Option<String>,
    pub kind: String,
    /// The back office's answer (status, code, message).
    pub answer: String,
    pub parked_at: Timestamp,
}

/// Which transactions `ListTransactions` and `CountTransactions` select.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionFilter {
    pub status: Option<TransactionStatus>,
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Only transactions that received more money than they needed.
    pub overpaid_only: bool,
    pub limit: u32,
    pub offset: u32,
}

impl TransactionFilter {
    /// The page size when the till names none.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page the till may ask for.
    pub const MAX_LIMIT: u32 = 500;
}

/// What the transaction's status should be for the money received so far.
pub fn status_for_money(total: Decimal, paid: Decimal) -> TransactionStatus {
    if paid >= total {
        TransactionStatus::Settled
    } else if paid > Decimal::ZERO {
        TransactionStatus::Partial
    } else {
        TransactionStatus::New
    }
}

/// How many characters of a value from outside an error message repeats, at most (counted as
/// they are written, escapes included).
pub const QUOTED_CHARS: usize = 40;

/// A value from outside, quoted for an error message: in Rust's debug quoting (so a control or
/// invisible character shows as an escape), and cut after [`QUOTED_CHARS`] characters with the
/// whole length said, so that an error never sends back the megabyte a till sent by mistake.
///
/// ```
/// use qrpayd::domain::model::quote_for_error;
///
/// assert_eq!(quote_for_error("1e5"), "\"1e5\"");
/// assert_eq!(quote_for_error("a\u{200b}b"), "\"a\\u{200b}b\"");
/// let long = "9".repeat(1000);
/// assert_eq!(
///     quote_for_error(&long),
///     format!("\"{}\"…(1000 characters)", "9".repeat(40))
/// );
/// ```
pub fn quote_for_error(value: &str) -> String {
    let mut written = 0;
    let mut cut = value.len();
    for (index, c) in value.char_indices() {
        written += c.escape_debug().count();
        if written > QUOTED_CHARS {
            cut = index;
            break;
        }
    }
    if cut == value.len() {
        format!("{value:?}")
    } else {
        format!("{:?}…({} characters)", &value[..cut], value.chars().count())
    }
}

/// A text field that breaks its documented limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{field} is {len} characters long, the most allowed is {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} contains a control character")]
    ControlCharacter { field: &'static str },
    #[error("{field} starts or ends with a space; send it without")]
    SurroundingSpace { field: &'static str },
    #[error(
        "{field} contains {}, which does not show as itself, at character {position}; \
         ids may hold visible characters and plain spaces only",
        code_point(.character)
    )]
    HiddenCharacter {
        field: &'static str,
        character: char,
        /// Counted in characters, from 1.
        position: usize,
    },
}

/// A character as Unicode names it (`U+200B`).
fn code_point(character: &char) -> String {
    format!("U+{:04X}", u32::from(*character))
}

/// Checks a text field from outside against its limit: not empty, at most `max` characters, no
/// control characters.
pub fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    if value.is_empty() {
        return Err(TextError::Empty { field });
    }
    let len = value.chars().count();
    if len > max {
        return Err(TextError::TooLong { field, len, max });
    }
    if value.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter { field });
    }
    Ok(())
}

/// Checks an id from outside (`source_id`, `source_type`, `source_uid`, `attempt_id`,
/// `transaction_id`, ...) as [`check_text`] does, and that it reads as exactly what it is: no
/// space at either end, and no character that does not show as itself (`is_hidden`). Without
/// this, `A-1`, `A-1 ` and `A-\u{200B}1` would be three orders to qrpayd and one to the cashier
/// who reads them.
pub fn check_id(field: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    check_text(field, value, max)?;
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return Err(TextError::SurroundingSpace { field });
    }
    match value.chars().enumerate().find(|(_, c)| is_hidden(*c)) {
        Some((index, character)) => Err(TextError::HiddenCharacter {
            field,
            character,
            position: index + 1,
        }),
        None => Ok(()),
    }
}

/// Whether `c` does not show as a character of its own: a format character (Unicode's general
/// category Cf), another default-ignorable code point, or a space other than U+0020 (Unicode's
/// White_Space: no-break, thin, ideographic and other spaces look like a plain one or like
/// nothing).
fn is_hidden(c: char) -> bool {
    let within =
        |ranges: &[(char, char)]| ranges.iter().any(|(low, high)| (*low..=*high).contains(&c));
    (c.is_whitespace() && c != ' ') || within(FORMAT_CHARACTERS) || within(OTHER_DEFAULT_IGNORABLE)
}

/// Unicode's format characters, general category Cf (`DerivedGeneralCategory.txt`, the same in
/// Unicode 15.1, 16.0 and 17.0; checked against the tables of the `unicode-properties` crate,
/// Unicode 17.0). They are invisible and change how the characters around them are shown: the
/// soft hyphen, zero-width spaces and joiners, bidirectional marks, embeddings, overrides and
/// isolates, the byte-order mark, interlinear annotation, tags, and a few script-specific
/// format controls.
const FORMAT_CHARACTERS: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// The default-ignorable code points that are not format characters (`DerivedCoreProperties.txt`,
/// `Default_Ignorable_Code_Point`, less the Cf ones above): what a renderer shows as nothing
/// when it has no glyph for it. The combining grapheme joiner, Hangul fillers, Khmer inherent
/// vowels, Mongolian free variation selectors, variation selectors, and the code points Unicode
/// reserves beside them for more of the same.
const OTHER_DEFAULT_IGNORABLE: &[(char, char)] = &[
    ('\u{034F}', '\u{034F}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180D}'),
    ('\u{180F}', '\u{180F}'),
    ('\u{2065}', '\u{2065}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{E0000}', '\u{E0000}'),
    ('\u{E0002}', '\u{E001F}'),
    ('\u{E0080}', '\u{E0FFF}'),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_money() {
        let d = |s: &str| Decimal::from_str_exact(s).expect("literal");
        assert_eq!(status_for_money(d("100"), d("0")), TransactionStatus::New);
        assert_eq!(
            status_for_money(d("100"), d("40")),
            TransactionStatus::Partial
        );
        assert_eq!(
            status_for_money(d("100"), d("100")),
            TransactionStatus::Settled
        );
        assert_eq!(
            status_for_money(d("100"), d("120")),
            TransactionStatus::Settled
        );
    }

    #[test]
    fn what_a_sale_does_not_need_is_excess() {
        let d = |s: &str| Decimal::from_str_exact(s).expect("literal");
        let mut t = Transaction {
            id: "t".into(),
            number: "TXN000001".into(),
            terminal_id: "T".into(),
            source: Source {
                kind: "Order".into(),
                id: "o".into(),
                uid: None,
            },
            currency: Currency::Mnt,
            total: d("100"),
            paid: d("40"),
            refunded: Decimal::ZERO,
            overpaid: Decimal::ZERO,
            status: TransactionStatus::Partial,
            description: None,
            items: vec![],
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        assert_eq!(t.excess_of(d("50")), Decimal::ZERO);
        assert_eq!(t.excess_of(d("70")), d("10"));
        t.status = TransactionStatus::Settled;
        assert_eq!(
            t.excess_of(d("70")),
            d("70"),
            "a settled sale needs nothing"
        );
        t.status = TransactionStatus::Cancelled;
        assert_eq!(t.excess_of(d("5")), d("5"), "nor does a cancelled one");
    }

    #[test]
    fn text_limits_are_enforced() {
        assert_eq!(check_text("source_id", "order-1", MAX_ID_LEN), Ok(()));
        assert_eq!(
            check_text("source_id", &"x".repeat(65), MAX_ID_LEN),
            Err(TextError::TooLong {
                field: "source_id",
                len: 65,
                max: 64
            })
        );
        // Limits count characters, not bytes: 64 Mongolian letters are fine.
        assert_eq!(check_text("source_id", &"ө".repeat(64), MAX_ID_LEN), Ok(()));
        assert_eq!(
            check_text("note", "", MAX_NOTE_LEN),
            Err(TextError::Empty { field: "note" })
        );
        assert_eq!(
            check_text("note", "a\u{0}b", MAX_NOTE_LEN),
            Err(TextError::ControlCharacter { field: "note" })
        );
    }

    #[test]
    fn ids_that_read_as_they_are_pass() {
        for id in [
            "order-1",
            "Order 12",
            "ЗАХ-0001",
            "захиалга №5",
            "Đơn hàng 7",
            "☕-3",
            "a",
            &"9".repeat(MAX_ID_LEN),
        ] {
            assert_eq!(check_id("source_id", id, MAX_ID_LEN), Ok(()), "{id:?}");
        }
    }

    /// Issue 9, item 4: ids with invisible format characters or surrounding spaces made a
    /// separate order for what a person reads as the same one. Every character of both tables
    /// (each range's ends and middle), the examples the fuzzing run found, and the spaces that
    /// are not U+0020 are refused, at the start, in the middle and at the end.
    #[test]
    fn ids_with_hidden_characters_or_surrounding_spaces_are_refused() {
        let mut hidden: Vec<char> = FORMAT_CHARACTERS
            .iter()
            .chain(OTHER_DEFAULT_IGNORABLE)
            .flat_map(|(low, high)| {
                let middle = char::from_u32((u32::from(*low) + u32::from(*high)) / 2);
                [Some(*low), middle, Some(*high)]
            })
            .flatten()
            .collect();
        hidden.extend([
            '\u{200B}', // zero width space
            '\u{200C}', // zero width non-joiner
            '\u{200D}', // zero width joiner
            '\u{200E}', // left-to-right mark
            '\u{202E}', // right-to-left override
            '\u{2066}', // left-to-right isolate
            '\u{FEFF}', // byte-order mark
            '\u{00A0}', // no-break space
            '\u{2007}', // figure space
            '\u{202F}', // narrow no-break space
            '\u{3000}', // ideographic space
            '\u{1680}', // ogham space mark
            '\u{2028}', // line separator
        ]);
        for c in hidden {
            let at = |id: String, position: usize| {
                assert_eq!(
                    check_id("source_id", &id, MAX_ID_LEN),
                    Err(TextError::HiddenCharacter {
                        field: "source_id",
                        character: c,
                        position
                    }),
                    "U+{:04X} in {id:?}",
                    u32::from(c)
                );
            };
            if !c.is_whitespace() {
                at(format!("{c}A-1"), 1);
                at(format!("A-1{c}"), 4);
            }
            at(format!("A-{c}1"), 3);
        }
        for id in [" A-1", "A-1 ", "\u{3000}A-1", "A-1\u{00A0}", "  "] {
            assert_eq!(
                check_id("source_id", id, MAX_ID_LEN),
                Err(TextError::SurroundingSpace { field: "source_id" }),
                "{id:?}"
            );
        }
        // What check_text refuses comes first.
        assert_eq!(
            check_id("attempt_id", "a\tb", MAX_ID_LEN),
            Err(TextError::ControlCharacter {
                field: "attempt_id"
            })
        );
        let message = check_id("source_id", "A\u{200B}1", MAX_ID_LEN)
            .expect_err("refused")
            .to_string();
        assert!(
            message.contains("U+200B") && message.contains("character 2"),
            "{message}"
        );
    }

    #[test]
    fn quoted_values_are_cut_short_and_escaped() {
        assert_eq!(quote_for_error(""), "\"\"");
        assert_eq!(quote_for_error("order-1"), "\"order-1\"");
        // Exactly the limit is kept whole; one more is cut.
        let at_limit = "x".repeat(QUOTED_CHARS);
        assert_eq!(quote_for_error(&at_limit), format!("{at_limit:?}"));
        assert_eq!(
            quote_for_error(&"x".repeat(QUOTED_CHARS + 1)),
            format!("{at_limit:?}…(41 characters)")
        );
        // Escapes count as what they take to write, so invisible characters cannot inflate it.
        let hidden = quote_for_error(&"\u{200b}".repeat(1_000_000));
        assert!(hidden.ends_with("…(1000000 characters)"), "{hidden}");
        assert!(hidden.chars().count() < 80, "{hidden}");
        // A multi-byte character is never split.
        assert!(quote_for_error(&"ө".repeat(100)).starts_with(&format!("\"{}", "ө".repeat(40))));
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        let at = Timestamp(1_763_721_300_000);
        assert_eq!(at.to_rfc3339(), "2025-11-21T10:35:00.000Z");
        assert_eq!(Timestamp::parse_rfc3339("2025-11-21T10:35:00Z"), Some(at));
        assert_eq!(
            Timestamp::parse_rfc3339("2025-11-21T18:35:00+08:00"),
            Some(at)
        );
        assert_eq!(at.time_of_day(0), "10:35");
        assert_eq!(at.time_of_day(8 * 3600), "18:35");
        assert_eq!(at.millis_until(at.plus_millis(1500)), 1500);
        assert_eq!(at.plus_millis(1500).millis_until(at), 0);
    }
}
