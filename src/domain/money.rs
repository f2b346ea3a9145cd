//! Money: currencies, amount parsing and formatting.
//!
//! Every amount in qrpayd is a [`rust_decimal::Decimal`]. Amounts arrive as decimal strings
//! (from D-Bus, the CLI and providers) and are parsed here by one strict grammar; they are never
//! converted through a float. This module owns the rules of what an acceptable amount is.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use super::model::quote_for_error;

/// A currency qrpayd can take payments in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Currency {
    /// Mongolian tögrög (QPay).
    Mnt,
    /// Vietnamese đồng (AppotaPay, VietQR).
    Vnd,
}

impl Currency {
    /// Every supported currency, in a stable order.
    pub const ALL: [Currency; 2] = [Currency::Mnt, Currency::Vnd];

    /// The ISO 4217 alphabetic code, as it crosses every boundary.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Mnt => "MNT",
            Currency::Vnd => "VND",
        }
    }

    /// The ISO 4217 numeric code, as EMVCo QR codes carry it (tag 53).
    pub fn numeric_code(self) -> &'static str {
        match self {
            Currency::Mnt => "496",
            Currency::Vnd => "704",
        }
    }

    /// The ISO 3166 country code of the currency's home market (EMVCo tag 58).
    pub fn country_code(self) -> &'static str {
        match self {
            Currency::Mnt => "MN",
            Currency::Vnd => "VN",
        }
    }

    /// The most one payment in this currency may be, whatever the config says: 500 million
    /// tögrög, 5 billion đồng (each some 150 000 to 200 000 US dollars).
    ///
    /// Far above any sale a till rings up, so it refuses nothing real, yet it stops a slip of
    /// the keyboard or a fuzzed value (`79228162514264337593543950335`, `Decimal::MAX`) from
    /// becoming a transaction, a refund or cash tendered. It also keeps every amount inside what
    /// the wire formats carry: EMVCo's tag 54 holds 13 characters (`500000000.00` is 12), and
    /// providers take amounts as 64-bit integers. `daemon.max_amount` can lower it, never raise
    /// it ([`max_amount_for`]).
    pub fn max_amount(self) -> Decimal {
        match self {
            Currency::Mnt => Decimal::from(500_000_000_u64),
            Currency::Vnd => Decimal::from(5_000_000_000_u64),
        }
    }

    /// How many decimal places an amount in this currency may have.
    pub fn decimals(self) -> u32 {
        match self {
            Currency::Mnt => 2,
            Currency::Vnd => 0,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .ok_or_else(|| AmountError::UnknownCurrency(s.to_owned()))
    }
}

/// Why an amount or currency was refused. The variants keep the text as it came; their messages
/// quote it cut short ([`quote_for_error`]), so a huge value is never repeated whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount is empty")]
    Empty,
    #[error(
        "the amount {} is not a plain decimal number (digits, optionally one '.' and more digits)",
        quote_for_error(.0)
    )]
    NotDecimal(String),
    #[error("the amount {} is negative", quote_for_error(.0))]
    Negative(String),
    #[error("the amount must be greater than zero")]
    Zero,
    #[error(
        "the amount {} has more than {allowed} decimal places, the most {currency} allows",
        quote_for_error(.amount)
    )]
    TooManyDecimals {
        amount: String,
        currency: Currency,
        allowed: u32,
    },
    #[error(
        "the amount {} is above the maximum of {max} {currency}",
        quote_for_error(.amount)
    )]
    AboveMaximum {
        amount: String,
        max: String,
        currency: Currency,
    },
    #[error("the amount {} is too large to represent", quote_for_error(.0))]
    Overflow(String),
    #[error(
        "the currency {} is not supported (supported: MNT, VND)",
        quote_for_error(.0)
    )]
    UnknownCurrency(String),
}

/// Parses a decimal string without any limit but its grammar: digits, optionally one `.` and at
/// least one more digit. Signs, exponents, `NaN`, `inf`, spaces and thousands separators are
/// refused, so a float printed as a string (`1e5`) can never slip through.
pub fn parse_decimal(text: &str) -> Result<Decimal, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if text.starts_with('-') {
        return Err(AmountError::Negative(text.to_owned()));
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return Err(AmountError::NotDecimal(text.to_owned()));
    }
    Decimal::from_str_exact(text).map_err(|_| AmountError::Overflow(text.to_owned()))
}

/// The most one amount in `currency` may be: the currency's own ceiling
/// ([`Currency::max_amount`]), or `configured` (the config's `max_amount`) when that is lower.
pub fn max_amount_for(currency: Currency, configured: Option<Decimal>) -> Decimal {
    let ceiling = currency.max_amount();
    configured.map_or(ceiling, |configured| configured.min(ceiling))
}

/// Parses an amount for `currency`: positive, at most the currency's decimal places, and not
/// above [`max_amount_for`] the currency and `max` (the config's `max_amount`, if set). Every
/// amount the till sends (Checkout's, a refund's, cash tendered) goes through here.
///
/// ```
/// use qrpayd::domain::{AmountError, Currency, parse_amount};
/// use rust_decimal::Decimal;
///
/// assert_eq!(parse_amount("99.50", Currency::Mnt, None), Ok(Decimal::new(9950, 2)));
/// assert!(matches!(parse_amount("1e5", Currency::Mnt, None), Err(AmountError::NotDecimal(_))));
/// assert!(matches!(
///     parse_amount("100.5", Currency::Vnd, None),
///     Err(AmountError::TooManyDecimals { .. })
/// ));
/// ```
pub fn parse_amount(
    text: &str,
    currency: Currency,
    max: Option<Decimal>,
) -> Result<Decimal, AmountError> {
    let amount = parse_decimal(text)?;
    if amount.is_zero() {
        return Err(AmountError::Zero);
    }
    check_scale(amount, currency)?;
    let max = max_amount_for(currency, max);
    if amount > max {
        return Err(AmountError::AboveMaximum {
            amount: text.to_owned(),
            max: max.normalize().to_string(),
            currency,
        });
    }
    Ok(amount)
}

/// Refuses an amount with more decimal places than `currency` allows. Trailing zeros do not
/// count: `100.00` VND is one hundred đồng.
pub fn check_scale(amount: Decimal, currency: Currency) -> Result<(), AmountError> {
    if amount.normalize().scale() > currency.decimals() {
        return Err(AmountError::TooManyDecimals {
            amount: amount.to_string(),
            currency,
            allowed: currency.decimals(),
        });
    }
    Ok(())
}

/// Formats an amount the way MQ-Pay sends amounts: four decimal places (`"100000.0000"`).
pub fn format_amount(amount: Decimal) -> String {
    let mut fixed = amount;
    fixed.rescale(4);
    fixed.to_string()
}

/// Formats an amount for people: thousands separators, the currency's decimal places and its
/// code (`"12,500.00 MNT"`, `"100,000 VND"`).
pub fn format_for_display(amount: Decimal, currency: Currency) -> String {
    let mut fixed = amount;
    fixed.rescale(currency.decimals());
    let text = fixed.to_string();
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text.as_str(), None),
    };
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3 + 8);
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{grouped}.{fraction} {currency}"),
        None => format!("{grouped} {currency}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).expect("test literal")
    }

    #[test]
    fn accepts_plain_amounts() {
        let cases = [
            ("100", Currency::Mnt, "100"),
            ("100.5", Currency::Mnt, "100.5"),
            ("100.50", Currency::Mnt, "100.50"),
            ("0.01", Currency::Mnt, "0.01"),
            ("100000", Currency::Vnd, "100000"),
            ("100000.00", Currency::Vnd, "100000.00"),
        ];
        for (input, currency, expected) in cases {
            assert_eq!(
                parse_amount(input, currency, None),
                Ok(dec(expected)),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_bad_amounts_with_named_errors() {
        let max = Some(dec("1000000"));
        let cases: [(&str, Currency, AmountError); 16] = [
            ("", Currency::Mnt, AmountError::Empty),
            ("1e5", Currency::Mnt, AmountError::NotDecimal("1e5".into())),
            ("1E5", Currency::Mnt, AmountError::NotDecimal("1E5".into())),
            ("NaN", Currency::Mnt, AmountError::NotDecimal("NaN".into())),
            ("inf", Currency::Mnt, AmountError::NotDecimal("inf".into())),
            ("-5", Currency::Mnt, AmountError::Negative("-5".into())),
            ("+5", Currency::Mnt, AmountError::NotDecimal("+5".into())),
            (" 5", Currency::Mnt, AmountError::NotDecimal(" 5".into())),
            (
                "1,000",
                Currency::Mnt,
                AmountError::NotDecimal("1,000".into()),
            ),
            ("5.", Currency::Mnt, AmountError::NotDecimal("5.".into())),
            (".5", Currency::Mnt, AmountError::NotDecimal(".5".into())),
            (
                "1.2.3",
                Currency::Mnt,
                AmountError::NotDecimal("1.2.3".into()),
            ),
            ("0", Currency::Mnt, AmountError::Zero),
            ("0.00", Currency::Mnt, AmountError::Zero),
            (
                "1.001",
                Currency::Mnt,
                AmountError::TooManyDecimals {
                    amount: "1.001".into(),
                    currency: Currency::Mnt,
                    allowed: 2,
                },
            ),
            (
                "1000000.01",
                Currency::Mnt,
                AmountError::AboveMaximum {
                    amount: "1000000.01".into(),
                    max: "1000000".into(),
                    currency: Currency::Mnt,
                },
            ),
        ];
        for (input, currency, expected) in cases {
            assert_eq!(
                parse_amount(input, currency, max),
                Err(expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn vnd_has_no_decimals() {
        assert!(matches!(
            parse_amount("1000.5", Currency::Vnd, None),
            Err(AmountError::TooManyDecimals { allowed: 0, .. })
        ));
    }

    #[test]
    fn huge_amounts_are_an_error_not_a_panic() {
        let huge = "9".repeat(40);
        assert_eq!(
            parse_amount(&huge, Currency::Mnt, None),
            Err(AmountError::Overflow(huge.clone()))
        );
    }

    /// Issue 9, item 2: with `max_amount` unset, `Decimal::MAX` was a valid amount.
    #[test]
    fn the_currency_ceiling_holds_without_max_amount_and_above_it() {
        let decimal_max = Decimal::MAX.to_string();
        assert_eq!(decimal_max, "79228162514264337593543950335");
        for currency in Currency::ALL {
            let ceiling = currency.max_amount();
            let above = (ceiling + Decimal::ONE).to_string();
            let higher_config = Some(ceiling * Decimal::from(10));
            for configured in [None, higher_config] {
                assert_eq!(
                    parse_amount(&ceiling.to_string(), currency, configured),
                    Ok(ceiling)
                );
                for text in [above.as_str(), decimal_max.as_str()] {
                    assert_eq!(
                        parse_amount(text, currency, configured),
                        Err(AmountError::AboveMaximum {
                            amount: text.to_owned(),
                            max: ceiling.to_string(),
                            currency,
                        }),
                        "{text} {currency} with max_amount {configured:?}"
                    );
                }
            }
            // A lower config wins.
            assert_eq!(max_amount_for(currency, Some(dec("1000"))), dec("1000"));
        }
        assert_eq!(Currency::Mnt.max_amount(), dec("500000000"));
        assert_eq!(Currency::Vnd.max_amount(), dec("5000000000"));
        // The largest MNT amount fits EMVCo's 13-character tag 54.
        assert!(
            crate::emv::format_amount(Currency::Mnt.max_amount() - dec("0.01"), 2)
                .is_ok_and(|text| text.len() <= crate::emv::MAX_AMOUNT_LEN)
        );
    }

    #[test]
    fn a_huge_amount_is_not_repeated_whole_in_its_message() {
        for text in [
            "9".repeat(1 << 20),
            "1e".repeat(1 << 19),
            format!("-{}", "5".repeat(1 << 20)),
        ] {
            let message = parse_amount(&text, Currency::Mnt, None)
                .expect_err("refused")
                .to_string();
            assert!(message.len() < 200, "{} bytes: {message}", message.len());
        }
        let message = "X"
            .repeat(1 << 20)
            .parse::<Currency>()
            .expect_err("refused")
            .to_string();
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn formats_like_mq_pay() {
        assert_eq!(format_amount(dec("100000")), "100000.0000");
        assert_eq!(format_amount(dec("12.5")), "12.5000");
        assert_eq!(format_amount(Decimal::ZERO), "0.0000");
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(
            format_for_display(dec("12500"), Currency::Mnt),
            "12,500.00 MNT"
        );
        assert_eq!(
            format_for_display(dec("100000"), Currency::Vnd),
            "100,000 VND"
        );
        assert_eq!(format_for_display(dec("999"), Currency::Vnd), "999 VND");
        assert_eq!(
            format_for_display(dec("1234567.5"), Currency::Mnt),
            "1,234,567.50 MNT"
        );
    }

    #[test]
    fn currency_codes_round_trip() {
        for currency in Currency::ALL {
            assert_eq!(currency.code().parse::<Currency>(), Ok(currency));
        }
        assert_eq!(
            "USD".parse::<Currency>(),
            Err(AmountError::UnknownCurrency("USD".into()))
        );
    }
}
