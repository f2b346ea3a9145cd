//! Every customer-facing sentence of the display, one table per language.
//!
//! The tables are the only place the display's words live: the PNG frame, the framebuffer and the
//! kiosk page all read them (the page receives them in each snapshot, so it has no words of its
//! own, not even for "cannot reach the daemon"). They are written as a cashier in Ulaanbaatar or
//! Hanoi would say them at the counter; amounts and times are put in by `format.rs` and
//! `model.rs`. `{n}` and `{time}` mark where a number or a time goes.
//!
//! A test proves the embedded font draws every character of every table (`font.rs`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::domain::Currency;

/// The display's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Mongolian (Cyrillic).
    Mn,
    /// Vietnamese.
    Vi,
    /// English.
    En,
}

impl Language {
    /// Every language the display speaks.
    pub const ALL: [Language; 3] = [Language::Mn, Language::Vi, Language::En];

    /// The BCP 47 code, as the config and the page's `lang` attribute spell it.
    pub fn code(self) -> &'static str {
        match self {
            Language::Mn => "mn",
            Language::Vi => "vi",
            Language::En => "en",
        }
    }

    /// The language of the currency's home market: MNT → `mn`, VND → `vi`.
    pub fn for_currency(currency: Currency) -> Language {
        match currency {
            Currency::Mnt => Language::Mn,
            Currency::Vnd => Language::Vi,
        }
    }

    /// The language's table of words.
    pub fn strings(self) -> &'static Strings {
        match self {
            Language::Mn => &MN,
            Language::Vi => &VI,
            Language::En => &EN,
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Language {
    type Err = String;

    fn from_str(text: &str) -> Result<Language, String> {
        Language::ALL
            .into_iter()
            .find(|language| language.code() == text)
            .ok_or_else(|| format!("{text:?} is not one of \"mn\", \"vi\", \"en\""))
    }
}

/// The words of one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strings {
    /// The idle screen's greeting.
    pub welcome: &'static str,
    /// The idle screen's second line.
    pub idle_line: &'static str,
    /// Above the amount of a payment the customer is to make.
    pub amount_to_pay: &'static str,
    /// How to pay a QR: the instruction line.
    pub scan_with_bank_app: &'static str,
    /// A payment whose QR is not (or no longer) on screen, still waiting.
    pub waiting_for_payment: &'static str,
    /// A cash payment: where to pay.
    pub pay_at_counter: &'static str,
    /// A card or account payment (method `ATM`): the headline.
    pub finish_on_phone: &'static str,
    /// A card or account payment: the instruction under its QR.
    pub finish_on_phone_line: &'static str,
    /// Before the countdown on the page (`04:59`).
    pub expires_in: &'static str,
    /// The expiry as a time of day, on the PNG frame, which cannot count down: `{time}`.
    pub valid_until: &'static str,
    /// Part of the amount has arrived.
    pub partially_paid: &'static str,
    /// The label of what was paid so far.
    pub paid_so_far: &'static str,
    /// The label of what is still to pay.
    pub remaining: &'static str,
    /// The payment is complete: the headline.
    pub paid: &'static str,
    /// The payment is complete: the second line.
    pub thank_you: &'static str,
    /// The QR's time ran out.
    pub expired: &'static str,
    /// The payment was cancelled at the till.
    pub cancelled: &'static str,
    /// The payment failed.
    pub failed: &'static str,
    /// Under expired, cancelled and failed: who can help.
    pub ask_cashier: &'static str,
    /// The label of the cart's total.
    pub total: &'static str,
    /// Shown by the page when the daemon cannot be reached (it keeps trying).
    pub offline: &'static str,
    /// Shown by the page when its countdown reached zero, until the daemon says what happened.
    pub checking: &'static str,
    /// The last cart line when not all fit: `{n}` more.
    pub more_items: &'static str,
    /// The name of cash as a way to pay, in the header.
    pub cash: &'static str,
}

/// Mongolian, as a cashier in Ulaanbaatar says it.
pub static MN: Strings = Strings {
    welcome: "Тавтай морилно уу",
    idle_line: "Төлбөрийн QR код энд гарч ирнэ",
    amount_to_pay: "Төлөх дүн",
    scan_with_bank_app: "Банкны аппликейшнээр QR кодыг уншуулна уу",
    waiting_for_payment: "Төлбөрийг хүлээж байна",
    pay_at_counter: "Төлбөрөө кассанд төлнө үү",
    finish_on_phone: "Төлбөрөө утсаараа баталгаажуулна уу",
    finish_on_phone_line: "QR кодыг утсаараа уншуулж, төлбөрөө гүйцээнэ үү",
    expires_in: "QR кодын хүчинтэй хугацаа",
    valid_until: "QR код {time} хүртэл хүчинтэй",
    partially_paid: "Төлбөрийн нэг хэсэг төлөгдлөө",
    paid_so_far: "Төлсөн",
    remaining: "Үлдэгдэл",
    paid: "Төлбөр амжилттай төлөгдлөө",
    thank_you: "Баярлалаа!",
    expired: "QR кодын хугацаа дууслаа",
    cancelled: "Төлбөр цуцлагдлаа",
    failed: "Төлбөр амжилтгүй боллоо",
    ask_cashier: "Кассчинд хандана уу",
    total: "Нийт дүн",
    offline: "Төлбөрийн системтэй холбогдож чадсангүй. Дахин холбогдож байна…",
    checking: "Төлбөрийг шалгаж байна…",
    more_items: "+ бусад {n} бараа",
    cash: "Бэлэн мөнгө",
};

/// Vietnamese, as a cashier in Hanoi says it.
pub static VI: Strings = Strings {
    welcome: "Xin kính chào quý khách",
    idle_line: "Mã QR thanh toán sẽ hiển thị tại đây",
    amount_to_pay: "Số tiền cần thanh toán",
    scan_with_bank_app: "Quét mã QR bằng ứng dụng ngân hàng",
    waiting_for_payment: "Đang chờ thanh toán",
    pay_at_counter: "Vui lòng thanh toán tại quầy",
    finish_on_phone: "Hoàn tất thanh toán trên điện thoại",
    finish_on_phone_line: "Quét mã QR bằng điện thoại để hoàn tất thanh toán",
    expires_in: "Mã QR hết hạn sau",
    valid_until: "Mã QR có hiệu lực đến {time}",
    partially_paid: "Đã thanh toán một phần",
    paid_so_far: "Đã thanh toán",
    remaining: "Còn lại",
    paid: "Thanh toán thành công",
    thank_you: "Cảm ơn quý khách!",
    expired: "Mã QR đã hết hạn",
    cancelled: "Giao dịch đã bị hủy",
    failed: "Thanh toán không thành công",
    ask_cashier: "Vui lòng liên hệ thu ngân",
    total: "Tổng cộng",
    offline: "Mất kết nối với hệ thống thanh toán. Đang kết nối lại…",
    checking: "Đang kiểm tra thanh toán…",
    more_items: "+ {n} mặt hàng khác",
    cash: "Tiền mặt",
};

/// English, for terminals whose customers read it.
pub static EN: Strings = Strings {
    welcome: "Welcome",
    idle_line: "Your payment QR code will appear here",
    amount_to_pay: "Amount to pay",
    scan_with_bank_app: "Scan the QR code with your banking app",
    waiting_for_payment: "Waiting for payment",
    pay_at_counter: "Please pay at the counter",
    finish_on_phone: "Finish the payment on your phone",
    finish_on_phone_line: "Scan the QR code with your phone to finish the payment",
    expires_in: "QR code expires in",
    valid_until: "QR code valid until {time}",
    partially_paid: "Partially paid",
    paid_so_far: "Paid",
    remaining: "Remaining",
    paid: "Payment successful",
    thank_you: "Thank you!",
    expired: "The QR code has expired",
    cancelled: "Payment cancelled",
    failed: "Payment failed",
    ask_cashier: "Please ask the cashier",
    total: "Total",
    offline: "Cannot reach the payment system. Reconnecting…",
    checking: "Checking the payment…",
    more_items: "+ {n} more items",
    cash: "Cash",
};

impl Strings {
    /// Every sentence of the table, for the font's coverage test.
    pub fn all(&self) -> [&'static str; 24] {
        [
            self.welcome,
            self.idle_line,
            self.amount_to_pay,
            self.scan_with_bank_app,
            self.waiting_for_payment,
            self.pay_at_counter,
            self.finish_on_phone,
            self.finish_on_phone_line,
            self.expires_in,
            self.valid_until,
            self.partially_paid,
            self.paid_so_far,
            self.remaining,
            self.paid,
            self.thank_you,
            self.expired,
            self.cancelled,
            self.failed,
            self.ask_cashier,
            self.total,
            self.offline,
            self.checking,
            self.more_items,
            self.cash,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_parse_from_their_codes_and_default_from_the_currency() {
        for language in Language::ALL {
            assert_eq!(language.code().parse::<Language>(), Ok(language));
        }
        assert!("ru".parse::<Language>().is_err());
        assert_eq!(Language::for_currency(Currency::Mnt), Language::Mn);
        assert_eq!(Language::for_currency(Currency::Vnd), Language::Vi);
    }

    #[test]
    fn every_table_is_complete_and_its_templates_keep_their_holes() {
        for language in Language::ALL {
            let strings = language.strings();
            for text in strings.all() {
                assert!(!text.trim().is_empty(), "{language}: an empty sentence");
                assert_eq!(
                    text,
                    text.trim(),
                    "{language}: {text:?} has spaces at an end"
                );
            }
            assert!(strings.valid_until.contains("{time}"), "{language}");
            assert!(strings.more_items.contains("{n}"), "{language}");
        }
        // The issue's own wording is kept.
        assert_eq!(
            MN.scan_with_bank_app,
            "Банкны аппликейшнээр QR кодыг уншуулна уу"
        );
        assert_eq!(VI.scan_with_bank_app, "Quét mã QR bằng ứng dụng ngân hàng");
    }

    #[test]
    fn the_tables_differ_from_english_wherever_a_word_is_translated() {
        for language in [Language::Mn, Language::Vi] {
            let same: Vec<_> = language
                .strings()
                .all()
                .into_iter()
                .zip(EN.all())
                .filter(|(a, b)| a == b)
                .collect();
            assert!(same.is_empty(), "{language} left untranslated: {same:?}");
        }
    }
}
