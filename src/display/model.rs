//! The display model: what the customer sees, built from committed state only, and its
//! snapshot, the model put into words and numbers in the display's language, which every sink
//! renders (the page from its JSON, the PNG frame and the framebuffer from the same fields).
//!
//! `DisplayModel::for_attempt` reads an attempt and its transaction as they were committed: the
//! amount on screen is the attempt's, the QR is the attempt's own QR text and is there only
//! while the attempt is open (so it leaves the screen with the commit that closes it). Which
//! attempt is shown is the engine's decision (`engine/screen.rs`), not this module's.

use rust_decimal::Decimal;
use serde::Serialize;

use super::DisplaySettings;
use super::qr::{self, QrSvg};
use super::strings::{Language, Strings};
use crate::domain::{Attempt, AttemptStatus, Currency, Item, Timestamp, Transaction};

/// The provider name of cash payments (the engine's `SYSTEM_PROVIDER`).
const CASH_PROVIDER: &str = "system";
/// The method of card and account payments (the engine's `METHOD_ATM`).
const CARD_METHOD: &str = "ATM";
/// The failure code of a cancelled attempt.
const CANCELLED: &str = "CANCELLED";

/// The state of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreenState {
    /// No payment: a calm welcome, no QR.
    #[default]
    Idle,
    /// A payment waits for the customer.
    Waiting,
    /// Part of the amount arrived.
    PartiallyPaid,
    /// The payment is complete (held for `display.paid_hold_ms`, then idle).
    Paid,
    /// The QR ran out before the payment was complete.
    Expired,
    /// The till cancelled the payment.
    Cancelled,
    /// The payment failed.
    Failed,
}

impl ScreenState {
    /// Whether the screen stays in this state until the payment changes: the others are held
    /// for a while, then the screen goes idle.
    pub fn is_lasting(self) -> bool {
        matches!(
            self,
            ScreenState::Idle | ScreenState::Waiting | ScreenState::PartiallyPaid
        )
    }
}

/// How the customer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayMode {
    /// Scans the QR with a bank app.
    #[default]
    Qr,
    /// A card or account payment: scans the QR to open a page and finishes it on the phone.
    Phone,
    /// Cash at the counter.
    Counter,
}

/// What the screen shows, from committed state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayModel {
    pub state: ScreenState,
    /// The payment on screen; `None` when idle.
    pub payment: Option<Payment>,
}

/// The payment on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub attempt_id: String,
    pub currency: Currency,
    /// What this attempt asks for: the amount its QR charges.
    pub amount: Decimal,
    /// What this attempt received.
    pub paid: Decimal,
    /// The transaction's total and what is left of it.
    pub total: Decimal,
    pub remaining: Decimal,
    /// The provider's name for customers (`QPay`, `AppotaPay`).
    pub provider: String,
    pub mode: PayMode,
    /// The QR's text, only while the attempt is open.
    pub qr_text: Option<String>,
    /// When the QR stops working, only while the attempt is open.
    pub expires_at: Option<Timestamp>,
    /// The cart, as the till sent it.
    pub items: Vec<Item>,
    pub description: Option<String>,
}

impl DisplayModel {
    /// The idle screen.
    pub fn idle() -> DisplayModel {
        DisplayModel::default()
    }

    /// The screen for a payment attempt as committed, with its transaction; `provider` is the
    /// provider's name for customers.
    pub fn for_attempt(attempt: &Attempt, transaction: &Transaction, provider: &str) -> Self {
        let cancelled = attempt
            .failure
            .as_ref()
            .is_some_and(|failure| failure.code == CANCELLED);
        let state = match attempt.status {
            AttemptStatus::New | AttemptStatus::Sent if attempt.paid.is_zero() => {
                ScreenState::Waiting
            }
            AttemptStatus::New | AttemptStatus::Sent => ScreenState::PartiallyPaid,
            AttemptStatus::Success if attempt.paid < attempt.amount => ScreenState::PartiallyPaid,
            AttemptStatus::Success => ScreenState::Paid,
            AttemptStatus::Expired => ScreenState::Expired,
            AttemptStatus::Fail if cancelled => ScreenState::Cancelled,
            AttemptStatus::Fail => ScreenState::Failed,
        };
        let live = attempt.status.is_open();
        let mode = if attempt.provider == CASH_PROVIDER {
            PayMode::Counter
        } else if attempt.method == CARD_METHOD {
            PayMode::Phone
        } else {
            PayMode::Qr
        };
        DisplayModel {
            state,
            payment: Some(Payment {
                attempt_id: attempt.id.clone(),
                currency: transaction.currency,
                amount: attempt.amount,
                paid: attempt.paid,
                total: transaction.total,
                remaining: transaction.remaining(),
                provider: provider.to_owned(),
                mode,
                qr_text: attempt.qr_text.clone().filter(|_| live),
                expires_at: attempt.expires_at.filter(|_| live),
                items: transaction.items.clone(),
                description: transaction.description.clone(),
            }),
        }
    }
}

/// A label and its value (`Төлсөн` `5,000₮`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub label: String,
    pub value: String,
}

/// One cart line, formatted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// The quantity (`2`, `1.5`).
    pub quantity: String,
    pub description: String,
    /// Quantity times unit price.
    pub amount: String,
}

/// The words the page needs besides those of the state (it has none of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageText {
    pub expires_in: &'static str,
    pub offline: &'static str,
    pub checking: &'static str,
    /// With `{n}` for the number of cart lines that do not fit.
    pub more_items: &'static str,
}

/// The model in the display's words, what every sink renders. `version` grows with every
/// change; two snapshots that differ only in it show the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub version: u64,
    pub state: ScreenState,
    pub mode: PayMode,
    pub lang: Language,
    /// The attempt on screen (for the till's diagnostics and the tests; not shown).
    pub attempt_id: Option<String>,
    /// The big line: the state, or what the amount is.
    pub title: String,
    /// The amount, formatted (`12,500₮`).
    pub amount: Option<String>,
    /// What to do now.
    pub instruction: Option<String>,
    /// The provider's name.
    pub provider: Option<String>,
    /// Paid so far and remaining, for a partial payment.
    pub rows: Vec<Row>,
    /// The cart.
    pub items: Vec<Line>,
    /// The cart's total, under the lines.
    pub total: Option<Row>,
    /// The QR's text, while the customer can pay it.
    pub qr_text: Option<String>,
    /// The same QR as an SVG path, for the page.
    pub qr: Option<QrSvg>,
    /// When the QR stops working (RFC 3339), and as Unix milliseconds for the page's countdown.
    pub expires_at: Option<String>,
    pub expires_at_ms: Option<i64>,
    /// The expiry as a time of day (`QR код 14:35 хүртэл хүчинтэй`), for frames that cannot count.
    pub valid_until: Option<String>,
    pub text: PageText,
}

impl Snapshot {
    /// Puts `model` into words in the display's language. A QR that fits no QR code (which
    /// the providers' checks make impossible) is left off, the texts still saying what happens.
    pub fn new(model: &DisplayModel, settings: &DisplaySettings, version: u64) -> Snapshot {
        let lang = settings.language;
        let words: &Strings = lang.strings();
        let text = PageText {
            expires_in: words.expires_in,
            offline: words.offline,
            checking: words.checking,
            more_items: words.more_items,
        };
        let Some(payment) = &model.payment else {
            return Snapshot {
                version,
                state: ScreenState::Idle,
                mode: PayMode::Qr,
                lang,
                attempt_id: None,
                title: words.welcome.to_owned(),
                amount: None,
                instruction: Some(words.idle_line.to_owned()),
                provider: None,
                rows: Vec::new(),
                items: Vec::new(),
                total: None,
                qr_text: None,
                qr: None,
                expires_at: None,
                expires_at_ms: None,
                valid_until: None,
                text,
            };
        };
        let format = settings.amounts.get(payment.currency);
        let money = |amount: Decimal| format.format(amount, payment.currency);
        let qr_text = payment.qr_text.clone();
        let qr = match qr_text.as_deref().map(qr::svg) {
            Some(Ok(svg)) => Some(svg),
            Some(Err(error)) => {
                tracing::warn!(%error, "the QR fits no QR code; the display shows the text only");
                None
            }
            None => None,
        };
        let (title, amount, instruction) = match model.state {
            ScreenState::Idle => (words.welcome, None, Some(words.idle_line)),
            ScreenState::Waiting => {
                let (title, instruction) = match payment.mode {
                    PayMode::Counter => (words.amount_to_pay, words.pay_at_counter),
                    PayMode::Phone if qr.is_some() => {
                        (words.finish_on_phone, words.finish_on_phone_line)
                    }
                    PayMode::Phone => (words.finish_on_phone, words.waiting_for_payment),
                    PayMode::Qr if qr.is_some() => (words.amount_to_pay, words.scan_with_bank_app),
                    PayMode::Qr => (words.amount_to_pay, words.waiting_for_payment),
                };
                (title, Some(payment.amount), Some(instruction))
            }
            ScreenState::PartiallyPaid => {
                let instruction = match payment.mode {
                    _ if qr.is_none() => words.ask_cashier,
                    PayMode::Phone => words.finish_on_phone_line,
                    PayMode::Qr | PayMode::Counter => words.scan_with_bank_app,
                };
                (words.partially_paid, None, Some(instruction))
            }
            ScreenState::Paid => (words.paid, Some(payment.paid), Some(words.thank_you)),
            ScreenState::Expired => (words.expired, Some(payment.amount), Some(words.ask_cashier)),
            ScreenState::Cancelled => (
                words.cancelled,
                Some(payment.amount),
                Some(words.ask_cashier),
            ),
            ScreenState::Failed => (words.failed, Some(payment.amount), Some(words.ask_cashier)),
        };
        let rows = if model.state == ScreenState::PartiallyPaid {
            vec![
                Row {
                    label: words.paid_so_far.to_owned(),
                    value: money(payment.paid),
                },
                Row {
                    label: words.remaining.to_owned(),
                    value: money((payment.amount - payment.paid).max(Decimal::ZERO)),
                },
            ]
        } else {
            Vec::new()
        };
        let mut items: Vec<Line> = payment
            .items
            .iter()
            .map(|item| Line {
                quantity: format.quantity(item.quantity),
                description: item.description.clone(),
                amount: money(item.quantity * item.unit_price),
            })
            .collect();
        if items.is_empty()
            && let Some(description) = payment.description.as_ref().filter(|d| !d.is_empty())
        {
            items.push(Line {
                quantity: String::new(),
                description: description.clone(),
                amount: String::new(),
            });
        }
        let total = (!payment.items.is_empty()).then(|| Row {
            label: words.total.to_owned(),
            value: money(payment.total),
        });
        let offset = settings.utc_offset_seconds.unwrap_or(0);
        Snapshot {
            version,
            state: model.state,
            mode: payment.mode,
            lang,
            attempt_id: Some(payment.attempt_id.clone()),
            title: title.to_owned(),
            amount: amount.map(money),
            instruction: instruction.map(str::to_owned),
            provider: match payment.mode {
                PayMode::Counter => Some(words.cash.to_owned()),
                _ => Some(payment.provider.clone()).filter(|p| !p.is_empty()),
            },
            rows,
            items,
            total,
            qr_text: qr.as_ref().and(qr_text),
            qr,
            expires_at: payment.expires_at.map(Timestamp::to_rfc3339),
            expires_at_ms: payment.expires_at.map(|at| at.0),
            valid_until: payment
                .expires_at
                .map(|at| words.valid_until.replace("{time}", &at.time_of_day(offset))),
            text,
        }
    }

    /// Whether two snapshots show the same (whatever their versions).
    pub fn shows_the_same(&self, other: &Snapshot) -> bool {
        Snapshot {
            version: other.version,
            ..self.clone()
        } == *other
    }

    /// Every text on the snapshot that a customer reads, for the font's coverage test.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts = vec![self.title.as_str()];
        texts.extend(self.amount.as_deref());
        texts.extend(self.instruction.as_deref());
        texts.extend(self.provider.as_deref());
        texts.extend(self.valid_until.as_deref());
        for row in self.rows.iter().chain(&self.total) {
            texts.extend([row.label.as_str(), row.value.as_str()]);
        }
        for line in &self.items {
            texts.extend([
                line.quantity.as_str(),
                line.description.as_str(),
                line.amount.as_str(),
            ]);
        }
        texts.extend([
            self.text.expires_in,
            self.text.offline,
            self.text.checking,
            self.text.more_items,
        ]);
        texts
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Failure, Source, TransactionStatus};

    pub(crate) const QPAY: &str = "0002010102121531279404962794049600000000KKTQPAY52046010530349654031005802MN5913TEST_MERCHANT6011Ulaanbaatar6244010712345670504test0721G7ZEWdbzkppBhJ1nouBhZ6304879D";

    fn dec(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("a test literal")
    }

    pub(crate) fn transaction(currency: Currency, total: &str) -> Transaction {
        Transaction {
            id: "t-1".to_owned(),
            number: "TXN000001".to_owned(),
            terminal_id: "T-01".to_owned(),
            source: Source {
                kind: "Order".to_owned(),
                id: "order-1".to_owned(),
                uid: None,
            },
            currency,
            total: dec(total),
            paid: Decimal::ZERO,
            refunded: Decimal::ZERO,
            overpaid: Decimal::ZERO,
            status: TransactionStatus::New,
            description: None,
            items: vec![
                Item {
                    description: "Americano".to_owned(),
                    quantity: dec("2"),
                    unit_price: dec("4500"),
                },
                Item {
                    description: "Бууз".to_owned(),
                    quantity: dec("1"),
                    unit_price: dec("3500"),
                },
            ],
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_000),
        }
    }

    pub(crate) fn attempt(status: AttemptStatus, amount: &str, paid: &str) -> Attempt {
        Attempt {
            id: "a-1".to_owned(),
            code: "ATT000001".to_owned(),
            transaction_id: "t-1".to_owned(),
            kind: crate::domain::AttemptType::Payment,
            status,
            provider: "qpay".to_owned(),
            method: "100_QR_CODE".to_owned(),
            amount: dec(amount),
            paid: dec(paid),
            refunded: Decimal::ZERO,
            overpaid: Decimal::ZERO,
            tendered: None,
            parent_id: None,
            idempotency_key: "k".to_owned(),
            request_id: None,
            invoice_id: None,
            short_url: None,
            qr_text: Some(QPAY.to_owned()),
            deep_links: Vec::new(),
            provider_open: status.is_open(),
            allow_partial: false,
            expires_at: Some(Timestamp(1_700_000_300_000)),
            failure: None,
            note: None,
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_000),
        }
    }

    pub(crate) fn settings(language: Language) -> DisplaySettings {
        DisplaySettings {
            language,
            utc_offset_seconds: Some(8 * 3600),
            ..DisplaySettings::for_tests()
        }
    }

    #[test]
    fn the_state_follows_the_committed_attempt() {
        let t = transaction(Currency::Mnt, "12500");
        let cases = [
            (AttemptStatus::Sent, "0", ScreenState::Waiting, true),
            (
                AttemptStatus::Sent,
                "5000",
                ScreenState::PartiallyPaid,
                true,
            ),
            (
                AttemptStatus::Success,
                "5000",
                ScreenState::PartiallyPaid,
                false,
            ),
            (AttemptStatus::Success, "12500", ScreenState::Paid, false),
            (AttemptStatus::Expired, "0", ScreenState::Expired, false),
            (AttemptStatus::Fail, "0", ScreenState::Failed, false),
        ];
        for (status, paid, state, shows_qr) in cases {
            let model = DisplayModel::for_attempt(&attempt(status, "12500", paid), &t, "QPay");
            assert_eq!(model.state, state, "{status}");
            let payment = model.payment.expect("a payment");
            assert_eq!(
                payment.qr_text.is_some(),
                shows_qr,
                "{status}: the QR only while open"
            );
            assert_eq!(payment.expires_at.is_some(), shows_qr, "{status}");
        }
        let mut cancelled = attempt(AttemptStatus::Fail, "12500", "0");
        cancelled.failure = Some(Failure {
            code: "CANCELLED".to_owned(),
            message: "by the till".to_owned(),
        });
        let model = DisplayModel::for_attempt(&cancelled, &t, "QPay");
        assert_eq!(model.state, ScreenState::Cancelled);
        let mut card = attempt(AttemptStatus::Sent, "12500", "0");
        card.method = "ATM".to_owned();
        let model = DisplayModel::for_attempt(&card, &t, "AppotaPay");
        assert_eq!(model.payment.expect("payment").mode, PayMode::Phone);
        let mut cash = attempt(AttemptStatus::Sent, "12500", "0");
        cash.provider = "system".to_owned();
        cash.qr_text = None;
        let model = DisplayModel::for_attempt(&cash, &t, "Cash");
        assert_eq!(model.payment.expect("payment").mode, PayMode::Counter);
    }

    #[test]
    fn a_waiting_snapshot_says_what_to_pay_how_and_until_when() {
        let t = transaction(Currency::Mnt, "12500");
        let model =
            DisplayModel::for_attempt(&attempt(AttemptStatus::Sent, "12500", "0"), &t, "QPay");
        let snapshot = Snapshot::new(&model, &settings(Language::Mn), 7);
        assert_eq!(snapshot.version, 7);
        assert_eq!(snapshot.state, ScreenState::Waiting);
        assert_eq!(snapshot.title, "Төлөх дүн");
        assert_eq!(snapshot.amount.as_deref(), Some("12,500₮"));
        assert_eq!(
            snapshot.instruction.as_deref(),
            Some("Банкны аппликейшнээр QR кодыг уншуулна уу")
        );
        assert_eq!(snapshot.qr_text.as_deref(), Some(QPAY));
        assert!(snapshot.qr.is_some());
        assert_eq!(
            snapshot.expires_at.as_deref(),
            Some("2023-11-14T22:18:20.000Z")
        );
        // 22:18 UTC is 06:18 in Ulaanbaatar.
        assert_eq!(
            snapshot.valid_until.as_deref(),
            Some("QR код 06:18 хүртэл хүчинтэй")
        );
        assert_eq!(
            snapshot.items,
            vec![
                Line {
                    quantity: "2".to_owned(),
                    description: "Americano".to_owned(),
                    amount: "9,000₮".to_owned()
                },
                Line {
                    quantity: "1".to_owned(),
                    description: "Бууз".to_owned(),
                    amount: "3,500₮".to_owned()
                },
            ]
        );
        assert_eq!(
            snapshot.total,
            Some(Row {
                label: "Нийт дүн".to_owned(),
                value: "12,500₮".to_owned()
            })
        );
    }

    #[test]
    fn a_partial_payment_shows_what_was_paid_and_what_remains() {
        let t = transaction(Currency::Vnd, "150000");
        let model = DisplayModel::for_attempt(
            &attempt(AttemptStatus::Sent, "150000", "50000"),
            &t,
            "VietQR",
        );
        let snapshot = Snapshot::new(&model, &settings(Language::Vi), 1);
        assert_eq!(snapshot.title, "Đã thanh toán một phần");
        let rows: Vec<(String, String)> = snapshot
            .rows
            .iter()
            .map(|row| (row.label.clone(), row.value.replace('\u{a0}', " ")))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("Đã thanh toán".to_owned(), "50.000 ₫".to_owned()),
                ("Còn lại".to_owned(), "100.000 ₫".to_owned()),
            ]
        );
        assert!(snapshot.qr.is_some(), "still payable: the QR stays");
    }

    #[test]
    fn ended_states_show_no_qr_and_say_who_helps() {
        let t = transaction(Currency::Mnt, "12500");
        for (status, title) in [
            (AttemptStatus::Expired, "QR кодын хугацаа дууслаа"),
            (AttemptStatus::Fail, "Төлбөр амжилтгүй боллоо"),
        ] {
            let model = DisplayModel::for_attempt(&attempt(status, "12500", "0"), &t, "QPay");
            let snapshot = Snapshot::new(&model, &settings(Language::Mn), 1);
            assert_eq!(snapshot.title, title);
            assert_eq!(snapshot.instruction.as_deref(), Some("Кассчинд хандана уу"));
            assert_eq!(
                (snapshot.qr.is_none(), snapshot.qr_text.is_none()),
                (true, true)
            );
            assert_eq!(snapshot.expires_at, None);
        }
        let paid = DisplayModel::for_attempt(
            &attempt(AttemptStatus::Success, "12500", "12500"),
            &t,
            "QPay",
        );
        let snapshot = Snapshot::new(&paid, &settings(Language::En), 1);
        assert_eq!(snapshot.title, "Payment successful");
        assert_eq!(snapshot.instruction.as_deref(), Some("Thank you!"));
    }

    #[test]
    fn the_idle_snapshot_welcomes_and_versions_do_not_count_as_a_change() {
        let idle = Snapshot::new(&DisplayModel::idle(), &settings(Language::Vi), 1);
        assert_eq!(idle.title, "Xin kính chào quý khách");
        assert!(idle.qr.is_none() && idle.amount.is_none());
        let again = Snapshot::new(&DisplayModel::idle(), &settings(Language::Vi), 2);
        assert!(idle.shows_the_same(&again));
        let english = Snapshot::new(&DisplayModel::idle(), &settings(Language::En), 2);
        assert!(!idle.shows_the_same(&english));
    }
}
