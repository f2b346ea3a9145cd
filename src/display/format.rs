//! Amounts, quantities and times as the customer reads them.
//!
//! Each currency has its own way (`12,500₮` in Mongolia, `12.500 ₫` in Vietnam), configurable
//! under `[display.amounts.MNT]` and `[display.amounts.VND]`. A space between the number and the
//! symbol is a no-break space (U+00A0), so an amount never breaks across two lines. Only the
//! display formats this way: the wire and the database keep plain decimal strings.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::domain::Currency;

/// The no-break space put between a number and its symbol.
pub const NBSP: char = '\u{a0}';

/// How one currency's amounts are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountFormat {
    /// Between groups of three digits (`,` for MNT, `.` for VND); may be empty.
    pub thousands: String,
    /// Before the fraction (`.` for MNT, `,` for VND).
    pub decimal: String,
    /// The currency's symbol (`₮`, `₫`) or code.
    pub symbol: String,
    /// Whether the symbol comes before the number.
    pub symbol_first: bool,
    /// Whether a no-break space separates the symbol from the number.
    pub space: bool,
}

impl AmountFormat {
    /// The way of the currency's home market: MNT `12,500₮`, VND `12.500 ₫`.
    pub fn default_for(currency: Currency) -> AmountFormat {
        match currency {
            Currency::Mnt => AmountFormat {
                thousands: ",".to_owned(),
                decimal: ".".to_owned(),
                symbol: "₮".to_owned(),
                symbol_first: false,
                space: false,
            },
            Currency::Vnd => AmountFormat {
                thousands: ".".to_owned(),
                decimal: ",".to_owned(),
                symbol: "₫".to_owned(),
                symbol_first: false,
                space: true,
            },
        }
    }

    /// `amount` in `currency`: rounded to the currency's places, a fraction of zeros left out
    /// (`12,500₮`, `99.50₮`), digits grouped, the symbol placed.
    pub fn format(&self, amount: Decimal, currency: Currency) -> String {
        let number = self.number(amount, currency.decimals());
        let space = if self.space {
            NBSP.to_string()
        } else {
            String::new()
        };
        if self.symbol_first {
            format!("{}{space}{number}", self.symbol)
        } else {
            format!("{number}{space}{}", self.symbol)
        }
    }

    /// A quantity (`2`, `1,5` for VND's decimal comma), with no symbol and no rounding
    /// beyond dropping trailing zeros.
    pub fn quantity(&self, quantity: Decimal) -> String {
        self.number(quantity, quantity.normalize().scale())
    }

    /// `value` with at most `places` decimals: grouped, a fraction of zeros left out.
    fn number(&self, value: Decimal, places: u32) -> String {
        let rounded = value.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
        let negative = rounded.is_sign_negative() && !rounded.is_zero();
        let mut fixed = rounded.abs();
        fixed.rescale(places);
        let text = fixed.to_string();
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        let mut out = String::with_capacity(text.len() + text.len() / 3 * self.thousands.len() + 2);
        if negative {
            out.push('-');
        }
        for (index, digit) in whole.chars().enumerate() {
            if index > 0 && (whole.len() - index) % 3 == 0 {
                out.push_str(&self.thousands);
            }
            out.push(digit);
        }
        if fraction.chars().any(|digit| digit != '0') {
            out.push_str(&self.decimal);
            out.push_str(fraction);
        }
        out
    }
}

/// The amount format of each currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountFormats {
    /// Mongolian tögrög.
    pub mnt: AmountFormat,
    /// Vietnamese đồng.
    pub vnd: AmountFormat,
}

impl Default for AmountFormats {
    fn default() -> AmountFormats {
        AmountFormats {
            mnt: AmountFormat::default_for(Currency::Mnt),
            vnd: AmountFormat::default_for(Currency::Vnd),
        }
    }
}

impl AmountFormats {
    /// The format of `currency`.
    pub fn get(&self, currency: Currency) -> &AmountFormat {
        match currency {
            Currency::Mnt => &self.mnt,
            Currency::Vnd => &self.vnd,
        }
    }

    /// The format of `currency`, to change.
    pub fn get_mut(&mut self, currency: Currency) -> &mut AmountFormat {
        match currency {
            Currency::Mnt => &mut self.mnt,
            Currency::Vnd => &mut self.vnd,
        }
    }

    /// `amount` in `currency`, as the customer reads it.
    pub fn format(&self, amount: Decimal, currency: Currency) -> String {
        self.get(currency).format(amount, currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str_exact(text).expect("a test literal")
    }

    /// The text with every kind of space written as a plain space, so an expectation reads
    /// the same whichever space the format puts.
    fn plain(text: &str) -> String {
        text.replace([NBSP, '\u{202f}'], " ")
    }

    #[test]
    fn amounts_read_as_in_their_home_market() {
        let formats = AmountFormats::default();
        let cases = [
            ("12500", Currency::Mnt, "12,500₮"),
            ("12500.00", Currency::Mnt, "12,500₮"),
            ("99.5", Currency::Mnt, "99.50₮"),
            ("0", Currency::Mnt, "0₮"),
            ("500000000", Currency::Mnt, "500,000,000₮"),
            ("1234567.891", Currency::Mnt, "1,234,567.89₮"),
            ("12500", Currency::Vnd, "12.500 ₫"),
            ("150000", Currency::Vnd, "150.000 ₫"),
            ("5000000000", Currency::Vnd, "5.000.000.000 ₫"),
            ("999", Currency::Vnd, "999 ₫"),
        ];
        for (amount, currency, expected) in cases {
            let text = formats.format(dec(amount), currency);
            assert_eq!(plain(&text), expected, "{amount} {currency}");
        }
        // The space in a đồng amount does not break.
        assert_eq!(formats.format(dec("12500"), Currency::Vnd), "12.500\u{a0}₫");
    }

    #[test]
    fn a_format_may_be_changed() {
        let format = AmountFormat {
            thousands: " ".to_owned(),
            decimal: ",".to_owned(),
            symbol: "MNT".to_owned(),
            symbol_first: true,
            space: true,
        };
        assert_eq!(
            plain(&format.format(dec("12500.5"), Currency::Mnt)),
            "MNT 12 500,50"
        );
        let bare = AmountFormat {
            thousands: String::new(),
            ..AmountFormat::default_for(Currency::Vnd)
        };
        assert_eq!(
            plain(&bare.format(dec("1234567"), Currency::Vnd)),
            "1234567 ₫"
        );
    }

    #[test]
    fn quantities_drop_trailing_zeros_and_use_the_decimal_mark() {
        let vnd = AmountFormat::default_for(Currency::Vnd);
        let mnt = AmountFormat::default_for(Currency::Mnt);
        assert_eq!(mnt.quantity(dec("2.000")), "2");
        assert_eq!(mnt.quantity(dec("1.50")), "1.5");
        assert_eq!(vnd.quantity(dec("1.50")), "1,5");
        assert_eq!(vnd.quantity(dec("1200")), "1.200");
    }
}
