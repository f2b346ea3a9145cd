//! The EMVCo codec (`qrpayd::emv`) on arbitrary text and on codes near real ones: the fields
//! of a merchant-presented code (nested templates, NAPAS's doubly nested account, amounts at
//! and past their limits, multi-byte text whose length counts characters instead of bytes),
//! and most of the time a correct CRC, so that parsing gets past the checksum to the views.

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use rust_decimal::Decimal;

use qrpayd::emv::{self, MerchantQr, Payload, VietQr};

/// One field as text: `tag`, a length and `value`. `length` picks how the length is written:
/// mostly the value's bytes, sometimes its characters or any two digits.
fn field(tag: u8, value: &str, length: u8) -> String {
    let written = match length {
        0..=7 => value.len(),
        8 => value.chars().count(),
        _ => usize::from(length) * 7 % 100,
    };
    format!("{tag:02}{written:02}{value}")
}

/// Sub-fields as text, each with its own way of writing its length.
fn fields(parts: &[(u8, String, u8)]) -> String {
    parts
        .iter()
        .map(|(tag, value, length)| field(*tag, value, *length))
        .collect()
}

fn any_value() -> BoxedStrategy<String> {
    prop_oneof![
        "[ -~]{0,30}",
        "\\PC{0,12}",
        "[0-9]{0,16}",
        Just(String::new()),
        "[ -~]{95,110}",
    ]
    .boxed()
}

fn length_mode() -> BoxedStrategy<u8> {
    prop_oneof![8 => Just(0u8), 1 => 0u8..12].boxed()
}

fn sub(
    tag: impl Strategy<Value = u8> + 'static,
    value: BoxedStrategy<String>,
) -> BoxedStrategy<(u8, String, u8)> {
    (tag, value, length_mode()).boxed()
}

/// The NAPAS beneficiary (sub-tag 01 of a VietQR account): a bank BIN and an account.
fn napas_beneficiary() -> BoxedStrategy<String> {
    proptest::collection::vec(
        prop_oneof![
            sub(Just(0u8), prop_oneof!["[0-9]{6}", any_value()].boxed()),
            sub(
                Just(1u8),
                prop_oneof!["[A-Za-z0-9]{6,19}", any_value()].boxed()
            ),
            sub(0u8..100, any_value()),
        ],
        0..4,
    )
    .prop_map(|parts| fields(&parts))
    .boxed()
}

/// A merchant account template (tags 26 to 51).
fn merchant_account() -> BoxedStrategy<String> {
    proptest::collection::vec(
        prop_oneof![
            3 => sub(
                Just(0u8),
                prop_oneof![
                    Just(emv::NAPAS_AID.to_owned()),
                    Just("MN.QPAY.MOCK".to_owned()),
                    any_value()
                ]
                .boxed()
            ),
            2 => sub(Just(1u8), prop_oneof![napas_beneficiary(), any_value()].boxed()),
            1 => sub(Just(2u8), prop_oneof![Just("QRIBFTTA".to_owned()), any_value()].boxed()),
            1 => sub(0u8..100, any_value()),
        ],
        0..5,
    )
    .prop_map(|parts| fields(&parts))
    .boxed()
}

/// The additional data template (62) or the language template (64).
fn additional() -> BoxedStrategy<String> {
    proptest::collection::vec(sub(0u8..100, any_value()), 0..5)
        .prop_map(|parts| fields(&parts))
        .boxed()
}

fn amount_text() -> BoxedStrategy<String> {
    prop_oneof![
        "[0-9]{1,13}",
        "[0-9]{1,10}\\.[0-9]{0,3}",
        proptest::sample::select(
            &[
                ".",
                "..",
                "1.",
                ".5",
                "0",
                "0.00",
                "9999999999999",
                "1e5",
                "-5"
            ][..]
        )
        .prop_map(str::to_owned),
        "[0-9.]{1,16}",
        any_value(),
    ]
    .boxed()
}

/// A top-level field of a merchant-presented code.
fn top_field() -> BoxedStrategy<(u8, String, u8)> {
    prop_oneof![
        2 => sub(Just(1u8), prop_oneof![Just("11".to_owned()), Just("12".to_owned()), any_value()].boxed()),
        4 => sub(26u8..=51, prop_oneof![4 => merchant_account(), 1 => any_value()].boxed()),
        1 => sub(Just(52u8), prop_oneof!["[0-9]{4}", any_value()].boxed()),
        2 => sub(Just(53u8), prop_oneof![Just("496".to_owned()), Just("704".to_owned()), any_value()].boxed()),
        3 => sub(Just(54u8), amount_text()),
        2 => sub(Just(58u8), prop_oneof![Just("MN".to_owned()), Just("VN".to_owned()), "[A-Za-z]{2}", any_value()].boxed()),
        2 => sub(59u8..=60, any_value()),
        2 => sub(Just(62u8), prop_oneof![3 => additional(), 1 => any_value()].boxed()),
        1 => sub(Just(64u8), prop_oneof![additional(), any_value()].boxed()),
        1 => sub(80u8..100, prop_oneof![additional(), any_value()].boxed()),
        1 => sub(0u8..100, any_value()),
    ]
    .boxed()
}

/// A plausible value for `tag` of a code of the `vietqr` kind or not, its length written right.
fn plausible(tag: u8, vietqr: bool) -> BoxedStrategy<Option<(u8, String, u8)>> {
    let value: BoxedStrategy<String> = match tag {
        1 => prop_oneof![Just("11".to_owned()), Just("12".to_owned())].boxed(),
        26 => Just(fields(&[
            (0, "MN.QPAY.MOCK".to_owned(), 0),
            (1, "00f94137-66fd-4d90-b2b2-000000000001".to_owned(), 0),
        ]))
        .boxed(),
        38 => (
            "[0-9]{6}",
            "[A-Za-z0-9]{1,19}",
            prop_oneof![Just("QRIBFTTA"), Just("QRIBFTTC"), Just("QRPUSH")],
        )
            .prop_map(|(bin, account, service)| {
                fields(&[
                    (0, emv::NAPAS_AID.to_owned(), 0),
                    (1, fields(&[(0, bin, 0), (1, account, 0)]), 0),
                    (2, service.to_owned(), 0),
                ])
            })
            .boxed(),
        52 => "[0-9]{4}".boxed(),
        53 => Just(if vietqr { "704" } else { "496" }.to_owned()).boxed(),
        54 => prop_oneof![
            "[1-9][0-9]{0,9}",
            "[1-9][0-9]{0,9}\\.[0-9]{1,2}",
            amount_text()
        ]
        .boxed(),
        58 => Just(if vietqr { "VN" } else { "MN" }.to_owned()).boxed(),
        59 | 60 => "[ -~]{1,25}|\\PC{1,8}".boxed(),
        62 => proptest::collection::vec(
            (
                prop_oneof![Just(1u8), Just(5u8), Just(7u8), Just(8u8), 0u8..100],
                "[ -~]{1,20}",
            ),
            0..4,
        )
        .prop_map(|parts| {
            let parts: Vec<(u8, String, u8)> = parts
                .into_iter()
                .map(|(tag, value)| (tag, value, 0))
                .collect();
            fields(&parts)
        })
        .boxed(),
        _ => any_value(),
    };
    (proptest::bool::weighted(0.9), value)
        .prop_map(move |(present, value)| present.then_some((tag, value, 0)))
        .boxed()
}

/// A code in the shape of QPay's (`vietqr` false) or a VietQR: every field well formed,
/// sometimes one more field of any kind.
fn plausible_qr(vietqr: bool) -> BoxedStrategy<Vec<(u8, String, u8)>> {
    let account = if vietqr { 38 } else { 26 };
    let tags = [1, account, 52, 53, 54, 58, 59, 60, 62];
    let parts: Vec<_> = tags.iter().map(|&tag| plausible(tag, vietqr)).collect();
    (parts, proptest::option::weighted(0.2, top_field()))
        .prop_map(|(parts, extra)| {
            let mut parts: Vec<(u8, String, u8)> = parts.into_iter().flatten().collect();
            parts.extend(extra);
            parts
        })
        .boxed()
}

/// A code near a real one: the format indicator first (mostly), fields (well formed, or
/// anything), and a CRC field that is right (mostly), lowercase, wrong, missing or followed by
/// more text.
pub fn near_qr() -> BoxedStrategy<String> {
    (
        proptest::bool::weighted(0.95),
        prop_oneof![
            2 => plausible_qr(false),
            2 => plausible_qr(true),
            3 => proptest::collection::vec(top_field(), 0..12),
        ],
        0u8..20,
        "[ -~]{0,4}",
    )
        .prop_map(|(indicator, parts, crc_mode, tail)| {
            let mut text = String::new();
            if indicator {
                text.push_str("000201");
            }
            text.push_str(&fields(&parts));
            text.push_str("6304");
            let crc = emv::crc16_ccitt_false(text.as_bytes());
            match crc_mode {
                0..=13 => text.push_str(&format!("{crc:04X}")),
                14 | 15 => text.push_str(&format!("{crc:04x}")),
                16 => text.push_str(&format!("{:04X}", crc ^ 1)),
                17 => text.truncate(text.len() - 4),
                18 => {
                    text.push_str(&format!("{crc:04X}"));
                    text.push_str(&tail);
                }
                _ => text.push_str(&tail),
            }
            text
        })
        .boxed()
}

/// The text a parsed code re-encodes to: the same, with the CRC's hex in uppercase.
fn canonical(text: &str) -> String {
    let split = text.len().saturating_sub(4);
    match (text.get(..split), text.get(split..)) {
        (Some(body), Some(crc)) => format!("{body}{}", crc.to_ascii_uppercase()),
        _ => text.to_owned(),
    }
}

/// Everything the codec offers, on one text; the properties that must hold whatever it is.
fn exercise(text: &str) -> Result<(), TestCaseError> {
    let Ok(payload) = emv::validate(text) else {
        return Ok(());
    };
    // Parsing keeps everything: a parsed code re-encodes to the very text (see emv.rs).
    let canonical = canonical(text);
    let encoded = payload.encode();
    prop_assert_eq!(
        encoded.as_deref().ok(),
        Some(canonical.as_str()),
        "{:?}",
        encoded
    );
    let reparsed = Payload::parse(&canonical);
    prop_assert_eq!(reparsed.as_ref(), Ok(&payload));
    for field in &payload.fields {
        let _ = field.value.subfields();
    }
    let _ = emv::AdditionalData::from_payload(&payload);
    if let Ok(view) = VietQr::from_payload(&payload) {
        // The view says everything of the code that it reads: built again, it reads the same.
        if let Ok(built) = view.encode() {
            let again = Payload::parse(&built).and_then(|p| VietQr::from_payload(&p));
            prop_assert_eq!(again, Ok(view));
        }
    }
    if let Ok(view) = MerchantQr::from_payload(&payload) {
        // A code always matches the payment it states.
        if let (Some(amount), Some(currency), Some(country)) = (
            view.amount,
            view.currency.as_deref(),
            view.country.as_deref(),
        ) {
            prop_assert_eq!(
                emv::check_payment(&payload, amount, currency, country),
                Ok(())
            );
            if let Some(other) = amount.checked_add(Decimal::ONE) {
                prop_assert!(emv::check_payment(&payload, other, currency, country).is_err());
            }
        }
    }
    for (amount, currency, country) in [
        (Decimal::new(12500, 0), "496", "MN"),
        (Decimal::new(12000, 0), "704", "VN"),
    ] {
        let _ = emv::check_payment(&payload, amount, currency, country);
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::config())]

    /// Arbitrary bytes (as text, where they are text).
    #[test]
    fn the_emv_codec_never_panics_on_arbitrary_text(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        exercise(&text)?;
        let _ = emv::parse_amount(&text);
    }

    /// Codes near real ones, mostly with a correct CRC.
    #[test]
    fn the_emv_codec_never_panics_on_codes_near_real_ones(text in near_qr()) {
        exercise(&text)?;
    }

    /// Real codes with one byte changed or cut short.
    #[test]
    fn the_emv_codec_never_panics_on_damaged_real_codes(
        which in proptest::sample::select(crate::json::QRS),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut bytes = which.as_bytes().to_vec();
        let at = at.index(bytes.len());
        if cut {
            bytes.truncate(at);
        } else {
            bytes[at] = byte;
        }
        exercise(&String::from_utf8_lossy(&bytes))?;
    }
}
