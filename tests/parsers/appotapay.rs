//! AppotaPay's answers (`qrpayd::providers::appotapay::answers`, the functions the provider
//! itself calls on what AppotaPay sends): POS order creates (with `qr_content` as text or as a
//! base64 image of the QR) and statuses, card payments and their statuses, error bodies, and
//! IPNs through `verify_ipn`, signed and not.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use rust_decimal::Decimal;
use secrecy::SecretString;

use qrpayd::providers::appotapay::answers::{self, OrderCreated};
use qrpayd::providers::appotapay::{IpnError, body_signature, verify_ipn};
use qrpayd::providers::{InvoiceState, ProviderError};

use crate::json::{Body, Shape, any_body, any_json, body_near};

/// The order every answer is read for.
const ORDER: &str = "QKEY0001";
/// The card every card answer is read for: it must never show in an error.
const CARD: &str = "9704000000000018";
const SECRET: &str = "qrpayd-test-secret-0123456789";

/// Texts AppotaPay might echo: the card among them.
const ECHOES: &[&str] = &[
    "card 9704000000000018 is invalid",
    "9704000000000018",
    "Giao dịch thành công",
    "Invalid params",
];

const STATUSES: &[&str] = &[
    "pending",
    "processing",
    "success",
    "error",
    "void",
    "PENDING",
    "",
];
/// Codes of the tables, and the card echoed as one.
const CODES: &[&str] = &["00", "1", "32", "30", "34", "36", "42", "401", "500", CARD];

fn pos_transaction_shape() -> Shape {
    Shape::Object(vec![
        ("transaction_id", Shape::Id),
        ("partner_ref_id", Shape::Word(&[ORDER, "OTHER"])),
        ("order_id", Shape::Word(&[ORDER])),
        ("status", Shape::Word(STATUSES)),
        ("amount", Shape::Amount),
        ("error_code", Shape::Word(CODES)),
        ("error_message", Shape::Word(ECHOES)),
        ("payment_method", Shape::Word(&["QR"])),
        ("created_at", Shape::Date),
        ("paid_at", Shape::Date),
    ])
}

fn create_shape() -> Shape {
    Shape::Object(vec![
        ("transaction", pos_transaction_shape()),
        (
            "payment_info",
            Shape::Object(vec![
                ("qr_content", Shape::Qr),
                ("qr_url", Shape::Url),
                ("qr_type", Shape::Word(&["VIETQR"])),
            ]),
        ),
        ("error_code", Shape::Word(CODES)),
        ("error_message", Shape::Word(ECHOES)),
    ])
}

fn create_with_image_shape() -> Shape {
    Shape::Object(vec![
        ("transaction", pos_transaction_shape()),
        (
            "payment_info",
            Shape::Object(vec![("qr_content", Shape::QrImage)]),
        ),
    ])
}

fn status_shape() -> Shape {
    let Shape::Object(mut fields) = pos_transaction_shape() else {
        return pos_transaction_shape();
    };
    fields.push(("transaction", pos_transaction_shape()));
    Shape::Object(fields)
}

fn gateway_transaction_shape() -> Shape {
    Shape::Object(vec![
        ("transactionId", Shape::Id),
        ("status", Shape::Word(STATUSES)),
        ("errorCode", Shape::Word(CODES)),
        ("errorMessage", Shape::Word(ECHOES)),
        ("amount", Shape::Amount),
        ("orderAmount", Shape::Amount),
        ("updatedAt", Shape::Date),
    ])
}

fn gateway_shape() -> Shape {
    Shape::Object(vec![
        ("transaction", gateway_transaction_shape()),
        (
            "authentication",
            Shape::Object(vec![("verificationUrl", Shape::Url)]),
        ),
        (
            "partnerReference",
            Shape::Object(vec![(
                "order",
                Shape::Object(vec![("id", Shape::Word(&[ORDER, ""]))]),
            )]),
        ),
        ("errorCode", Shape::Word(CODES)),
        ("message", Shape::Word(ECHOES)),
    ])
}

fn error_shape() -> Shape {
    Shape::Object(vec![
        ("error_code", Shape::Word(CODES)),
        ("errorCode", Shape::Word(CODES)),
        ("error_message", Shape::Word(ECHOES)),
        ("errorMessage", Shape::Word(ECHOES)),
        ("message", Shape::Word(ECHOES)),
        (
            "errors",
            Shape::Array(Box::new(Shape::Object(vec![
                ("field", Shape::Word(&["sourceOfFunds.card.cardNumber"])),
                ("reason", Shape::Word(ECHOES)),
            ]))),
        ),
    ])
}

/// PNGs of real VietQR codes at one and two pixels a module, made once.
fn qr_pngs() -> &'static [image::GrayImage] {
    static IMAGES: OnceLock<Vec<image::GrayImage>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        [1, 2]
            .into_iter()
            .filter_map(|px| qrpayd::display::qr_image(crate::json::QRS[0], px).ok())
            .map(|rgb| image::DynamicImage::ImageRgb8(rgb).to_luma8())
            .collect()
    })
}

/// A base64 PNG of a real QR with some of its pixels flipped (or its bytes damaged): what an
/// image `qr_content` might hold.
pub fn qr_image_base64() -> BoxedStrategy<String> {
    (
        any::<prop::sample::Index>(),
        proptest::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..40,
        ),
        proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    )
        .prop_map(|(which, flips, damage)| {
            let images = qr_pngs();
            let Some(base) = images.get(which.index(images.len().max(1))) else {
                return String::new();
            };
            let mut image = base.clone();
            let (width, height) = image.dimensions();
            for (x, y) in flips {
                let pixel = image.get_pixel_mut(
                    x.index(width as usize) as u32,
                    y.index(height as usize) as u32,
                );
                pixel.0[0] = 255 - pixel.0[0];
            }
            let mut png = Vec::new();
            if image::DynamicImage::ImageLuma8(image)
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .is_err()
            {
                return String::new();
            }
            if let Some((at, byte)) = damage {
                let at = at.index(png.len());
                png[at] = byte;
            }
            STANDARD.encode(png)
        })
        .boxed()
}

/// One plain, bounded line.
fn safe(error: &ProviderError) -> Result<(), TestCaseError> {
    crate::plain_line(&error.to_string())
}

fn safe_without_card(error: &ProviderError) -> Result<(), TestCaseError> {
    safe(error)?;
    let text = error.to_string();
    prop_assert!(!text.contains(CARD), "the card number shows in {:?}", text);
    Ok(())
}

/// A status read from any answer: money only with a payment, and a payment only when paid.
fn check_properties(
    result: &Result<qrpayd::providers::CheckResult, ProviderError>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(check) => {
            crate::plain_line(&check.code)?;
            crate::plain_line(&check.message)?;
            if let InvoiceState::Failed { code, message } = &check.state {
                crate::plain_line(code)?;
                crate::plain_line(message)?;
            }
            if check.state == InvoiceState::Paid {
                prop_assert_eq!(check.payments.len(), 1);
                prop_assert!(check.payments.iter().all(|p| p.amount > Decimal::ZERO));
                prop_assert!(
                    check
                        .payments
                        .iter()
                        .all(|p| !p.payment_id.trim().is_empty())
                );
            } else {
                prop_assert!(check.payments.is_empty());
            }
            Ok(())
        }
        Err(error) => safe(error),
    }
}

/// Every reader on one body.
fn exercise(bytes: &[u8]) -> Result<(), TestCaseError> {
    match answers::order_created(bytes, ORDER) {
        Ok(OrderCreated::Made { invoice, .. }) => {
            prop_assert_eq!(invoice.invoice_id.as_str(), ORDER);
            prop_assert!(!invoice.qr_text.is_empty());
        }
        Ok(OrderCreated::Duplicate) => {}
        Err(error) => safe(&error)?,
    }
    check_properties(&answers::order_status(bytes, ORDER))?;
    match answers::card_payment_created(bytes, ORDER, &[CARD]) {
        Ok(invoice) => {
            prop_assert!(invoice.qr_text.starts_with("https://"));
            prop_assert_eq!(invoice.invoice_id, format!("card:{ORDER}"));
        }
        Err(error) => safe_without_card(&error)?,
    }
    check_properties(&answers::card_payment_status(bytes, ORDER))?;
    Ok(())
}

/// An IPN signed with the right key, of `json`.
fn signed_ipn(json: &[u8]) -> (String, String) {
    let data = STANDARD.encode(json);
    let signature = body_signature(&SecretString::from(SECRET), data.as_bytes());
    (data, signature)
}

fn ipn_properties(data: &str, signature: &str) -> Result<(), TestCaseError> {
    match verify_ipn(&SecretString::from(SECRET), data, signature) {
        Ok(payload) => prop_assert!(!payload.invoice_id.is_empty()),
        Err(IpnError::SignatureMismatch | IpnError::Malformed(_)) => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn appotapay_answers_never_panic_on_arbitrary_bytes(
        bytes in any_body(400),
    ) {
        exercise(&bytes)?;
    }

    #[test]
    fn appotapay_answers_never_panic_on_arbitrary_json(json in any_json()) {
        exercise(json.text().as_bytes())?;
    }

    #[test]
    fn appotapay_order_answers_near_the_real_shape(
        created in body_near(&create_shape()),
        status in body_near(&status_shape()),
    ) {
        exercise(&created)?;
        exercise(&status)?;
    }

    #[test]
    fn appotapay_qr_images_never_panic(created in body_near(&create_with_image_shape())) {
        exercise(&created)?;
    }

    #[test]
    fn appotapay_card_answers_near_the_real_shape(body in body_near(&gateway_shape())) {
        exercise(&body)?;
    }

    #[test]
    fn appotapay_error_answers_never_show_the_card(
        status in prop_oneof![100u16..600, 0u16..=u16::MAX],
        body in prop_oneof![body_near(&error_shape()), any_body(100)],
        retry_after in proptest::option::of("[0-9]{1,22}|\\PC{0,12}"),
    ) {
        let error = answers::error(status, &body, retry_after.as_deref(), crate::now(), Some("order Q"));
        safe(&error)?;
        let card = answers::card_payment_error(status, &body, retry_after.as_deref(), crate::now(), &[CARD]);
        safe_without_card(&card)?;
    }

    #[test]
    fn appotapay_ipns_never_panic(
        json in prop_oneof![
            typed_ipn(),
            any_json().prop_map(|j| Body(j.text().into_bytes())),
            any_body(200),
        ],
        forged in proptest::option::of("[0-9a-fA-F]{0,70}|\\PC{0,20}"),
        raw_data in proptest::option::of("\\PC{0,60}"),
    ) {
        let (data, signature) = signed_ipn(&json);
        let data = raw_data.unwrap_or(data);
        match forged {
            Some(forged) => {
                let verified = verify_ipn(&SecretString::from(SECRET), &data, &forged);
                prop_assert!(verified.is_err() || forged.eq_ignore_ascii_case(&signature));
            }
            None => {
                let signature = body_signature(&SecretString::from(SECRET), data.as_bytes());
                ipn_properties(&data, &signature)?;
            }
        }
    }
}

/// The JSON inside an IPN, near either of its shapes.
fn typed_ipn() -> BoxedStrategy<Body> {
    prop_oneof![body_near(&status_shape()), body_near(&gateway_shape())].boxed()
}
