//! MQ-Pay's answers to the gateway provider (`qrpayd::providers::mqpay::answers`, the functions
//! the provider itself calls on what MQ-Pay sends) and its error bodies
//! (`qrpayd::mqpay::refusal_of`, shared with the upstream sync): the checkout, a verify, lists
//! of transactions, attempts and payment results in both shapes, and a refund.

use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::Value;

use qrpayd::providers::ProviderError;
use qrpayd::providers::mqpay::answers;

use crate::json::{Shape, any_body, any_json, body_near};

const STATUSES: &[&str] = &[
    "100_NEW",
    "204_SENT",
    "302_SUCCESS",
    "500_FAIL",
    "501_EXPIRED",
    "",
];

fn attempt_shape() -> Shape {
    Shape::Object(vec![
        ("id", Shape::Id),
        ("transactionId", Shape::Id),
        ("type", Shape::Word(&["100_PAYMENT", "300_REFUND_PAYMENT"])),
        ("status", Shape::Word(STATUSES)),
        ("provider", Shape::Word(&["VNPAY_QR_MMS"])),
        ("amount", Shape::Amount),
        ("paid", Shape::Amount),
        ("parentId", Shape::Id),
        ("qrCode", Shape::Qr),
        ("qrUrl", Shape::Url),
        ("expiresAt", Shape::Date),
        ("createdAt", Shape::Date),
    ])
}

fn checkout_shape() -> Shape {
    Shape::Object(vec![
        (
            "transaction",
            Shape::Object(vec![
                ("id", Shape::Id),
                ("status", Shape::Word(STATUSES)),
                ("total", Shape::Amount),
                ("paid", Shape::Amount),
            ]),
        ),
        ("attempt", attempt_shape()),
        (
            "payment",
            Shape::Object(vec![
                ("qrCode", Shape::Qr),
                ("qrUrl", Shape::Url),
                ("expiresAt", Shape::Date),
            ]),
        ),
    ])
}

fn verify_shape() -> Shape {
    Shape::Object(vec![
        ("attempt", attempt_shape()),
        (
            "providerStatus",
            Shape::Object(vec![("responseCode", Shape::Id), ("message", Shape::Text)]),
        ),
    ])
}

fn result_shape() -> Shape {
    Shape::Object(vec![
        ("id", Shape::Id),
        ("attemptId", Shape::Id),
        ("transactionId", Shape::Id),
        ("provider", Shape::Text),
        ("providerPaymentId", Shape::Id),
        ("amount", Shape::Amount),
        ("currency", Shape::Word(&["VND", "MNT"])),
        ("paidAt", Shape::Date),
    ])
}

fn transaction_shape() -> Shape {
    Shape::Object(vec![
        ("id", Shape::Id),
        ("sourceType", Shape::Text),
        ("sourceId", Shape::Id),
        ("status", Shape::Word(STATUSES)),
        ("paid", Shape::Amount),
    ])
}

/// A list in both of MQ-Pay's shapes: a bare array, or `{count, data}`.
fn lists_of(row: Shape) -> impl Strategy<Value = crate::json::Body> {
    prop_oneof![
        body_near(&Shape::Array(Box::new(row.clone()))),
        body_near(&Shape::Object(vec![
            ("count", Shape::Count),
            ("data", Shape::Array(Box::new(row))),
        ])),
    ]
}

fn error_shape() -> Shape {
    Shape::Object(vec![(
        "error",
        Shape::Object(vec![
            (
                "code",
                Shape::Word(&[
                    "INVALID_TRANSACTION_STATUS",
                    "PAYMENT_ATTEMPT_NOT_FOUND",
                    "PROVIDER_NOT_CONFIGURED",
                    "SIGNATURE_MISMATCH",
                    "REFUND_EXCEEDS_REMAINING",
                    "ATTEMPT_NOT_SUCCESS",
                ]),
            ),
            ("message", Shape::Text),
        ]),
    )])
}

fn one_line<T>(result: &Result<T, ProviderError>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(error) => crate::plain_line(&error.to_string()),
    }
}

/// An amount read from MQ-Pay: never negative.
fn sane(amount: Option<Decimal>) -> Result<(), TestCaseError> {
    prop_assert!(amount.is_none_or(|a| a >= Decimal::ZERO));
    Ok(())
}

/// Every reader on one JSON value.
fn exercise(value: &Value) -> Result<(), TestCaseError> {
    let checkout = answers::checkout(value);
    if let Ok(checkout) = &checkout {
        prop_assert!(!checkout.attempt_id.is_empty() && !checkout.qr_code.is_empty());
        prop_assert!(!checkout.qr_code.chars().any(char::is_control));
    }
    one_line(&checkout)?;
    let verified = answers::verified(value);
    if let Ok(verified) = &verified {
        sane(verified.attempt.amount)?;
    }
    one_line(&verified)?;
    one_line(&answers::refunded(value))?;
    if let Ok(rows) = answers::rows(value, "a list") {
        for row in rows {
            let result = answers::result_row(row);
            if let Ok(result) = &result {
                sane(Some(result.amount))?;
            }
            one_line(&result)?;
            one_line(&answers::attempt_row(row))?;
            one_line(&answers::transaction_row(row))?;
        }
    }
    Ok(())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

proptest! {
    #![proptest_config(crate::config())]

    #[test]
    fn mqpay_answers_never_panic_on_arbitrary_json(json in any_json()) {
        exercise(&json_of(json.text().as_bytes()))?;
    }

    #[test]
    fn mqpay_answers_near_the_real_shape(
        checkout in body_near(&checkout_shape()),
        verify in body_near(&verify_shape()),
        results in lists_of(result_shape()),
        attempts in lists_of(attempt_shape()),
        transactions in lists_of(transaction_shape()),
    ) {
        for body in [&checkout, &verify, &results, &attempts, &transactions] {
            exercise(&json_of(body))?;
        }
    }

    #[test]
    fn mqpay_error_bodies_are_one_plain_line(
        status in 100u16..600,
        body in prop_oneof![body_near(&error_shape()), any_body(200)],
    ) {
        let refusal = qrpayd::mqpay::refusal_of(status, &body, None);
        crate::plain_line(&refusal.to_string())?;
        prop_assert_eq!(refusal.status, status);
    }
}
