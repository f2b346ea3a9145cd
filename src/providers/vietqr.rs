//! `vietqr`: a dynamic VietQR for the merchant's own bank account, with no payment gateway.
//!
//! The QR is built locally (NAPAS VietQR through `emv`): the merchant's BIN and account, the
//! amount, and a purpose text unique to the attempt, so the transfer can be matched on the bank
//! statement. It works with no network at all. No gateway reports the transfer, so the attempt
//! waits until the cashier sees the money in the merchant's bank app and confirms it with
//! `ConfirmSystemPayment` (or cancels); the provider never claims a payment by itself.

use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;

use super::{
    CancelOutcome, CheckResult, CreateRequest, Invoice, InvoiceState, Provider, ProviderError,
    ProviderPayment, RefundOutcome, RefundRequest,
};
use crate::domain::Currency;
use crate::emv::{VietQr, VietQrService};

/// The merchant's account, from `[providers.vietqr]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VietQrSettings {
    /// The bank's 6-digit acquirer BIN.
    pub bin: String,
    /// The account (or card) number.
    pub account: String,
    /// The account holder's name, shown in the QR (59).
    pub account_name: Option<String>,
    /// The number is a card number (`QRIBFTTC`), not an account (`QRIBFTTA`).
    pub card: bool,
}

/// The local VietQR provider.
#[derive(Debug)]
pub struct VietQrProvider {
    settings: VietQrSettings,
}

impl VietQrProvider {
    /// The name the till and config use.
    pub const NAME: &'static str = "vietqr";

    /// Checks the account by building a code for it once.
    pub fn new(settings: VietQrSettings) -> Result<VietQrProvider, String> {
        let provider = VietQrProvider { settings };
        provider
            .code(None, None)
            .map_err(|e| format!("the VietQR account is not valid: {e}"))?;
        Ok(provider)
    }

    fn code(&self, amount: Option<Decimal>, purpose: Option<String>) -> Result<String, String> {
        let service = if self.settings.card {
            VietQrService::ToCard
        } else {
            VietQrService::ToAccount
        };
        let mut code = VietQr::new(&self.settings.bin, &self.settings.account, service);
        code.amount = amount;
        code.purpose = purpose;
        code.merchant_name = self.settings.account_name.clone();
        code.encode().map_err(|e| e.to_string())
    }

    /// The purpose text for an attempt: short (bank apps show about 25 characters), ASCII, and
    /// unique per attempt so the transfer can be found on the statement.
    pub fn purpose(request: &CreateRequest) -> String {
        format!("QRP {}", request.attempt_code)
    }
}

#[async_trait]
impl Provider for VietQrProvider {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn display_name(&self) -> &str {
        "VietQR"
    }

    fn currencies(&self) -> &[Currency] {
        &[Currency::Vnd]
    }

    /// Nothing to ask: checks are local and only keep the attempt alive until it expires.
    fn poll_interval(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn confirmed_by_cashier(&self) -> bool {
        true
    }

    async fn create(&self, request: &CreateRequest) -> Result<Invoice, ProviderError> {
        let qr_text = self
            .code(Some(request.amount), Some(Self::purpose(request)))
            .map_err(|message| ProviderError::Rejected {
                code: "INVALID_ARGUMENT".to_owned(),
                message,
            })?;
        Ok(Invoice {
            expires_at: None,
            invoice_id: format!("vietqr:{}", request.idempotency_key),
            qr_text,
            short_url: None,
            deep_links: Vec::new(),
        })
    }

    async fn lookup(&self, request: &CreateRequest) -> Result<Option<Invoice>, ProviderError> {
        // Building the code again gives the very same code: nothing was ever sent anywhere.
        self.create(request).await.map(Some)
    }

    async fn check(&self, _invoice_id: &str) -> Result<CheckResult, ProviderError> {
        Ok(CheckResult {
            state: InvoiceState::Open,
            payments: Vec::<ProviderPayment>::new(),
            code: "AWAITING_CASHIER".to_owned(),
            message: "a bank transfer is confirmed by the cashier, not reported by a gateway"
                .to_owned(),
        })
    }

    async fn cancel(&self, _invoice_id: &str) -> Result<CancelOutcome, ProviderError> {
        // Nothing to close: once the attempt is cancelled, a transfer for it is no longer
        // confirmed.
        Ok(CancelOutcome::Cancelled)
    }

    async fn refund(&self, _request: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        Err(ProviderError::Rejected {
            code: "UNSUPPORTED".to_owned(),
            message: "a VietQR transfer is refunded by a bank transfer from the merchant's account"
                .to_owned(),
        })
    }

    fn check_refund(&self, _amount: Decimal, _payments: &[ProviderPayment]) -> Result<(), String> {
        Err(
            "a VietQR transfer is refunded by a bank transfer from the merchant's account, not by qrpayd"
                .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;
    use crate::emv::Payload;

    fn provider() -> VietQrProvider {
        VietQrProvider::new(VietQrSettings {
            bin: "970416".into(),
            account: "257678859".into(),
            account_name: Some("CUA HANG QRPAYD".into()),
            card: false,
        })
        .expect("valid account")
    }

    fn request(code: &str) -> CreateRequest {
        CreateRequest {
            transaction_id: "transaction-1".to_owned(),
            source: crate::domain::Source {
                kind: "Order".to_owned(),
                id: "order-1".to_owned(),
                uid: None,
            },
            attempt_id: "a".into(),
            attempt_code: code.into(),
            idempotency_key: format!("KEY{code}"),
            transaction_number: "TXN000001".into(),
            terminal_id: "T1".into(),
            amount: Decimal::from(150_000),
            currency: Currency::Vnd,
            description: "test".into(),
            expires_at: Timestamp::now(),
            allow_partial: false,
            items: vec![],
        }
    }

    #[tokio::test]
    async fn each_attempt_gets_a_dynamic_vietqr_with_its_own_purpose() {
        let provider = provider();
        let first = provider
            .create(&request("ATT000001"))
            .await
            .expect("create");
        let second = provider
            .create(&request("ATT000002"))
            .await
            .expect("create");
        let view = VietQr::from_payload(&Payload::parse(&first.qr_text).expect("valid EMVCo"))
            .expect("a VietQR");
        assert_eq!(view.bin, "970416");
        assert_eq!(view.account, "257678859");
        assert_eq!(view.amount, Some(Decimal::from(150_000)));
        assert_eq!(view.purpose.as_deref(), Some("QRP ATT000001"));
        assert_ne!(first.qr_text, second.qr_text);
        assert_eq!(
            provider
                .lookup(&request("ATT000001"))
                .await
                .expect("lookup"),
            Some(first)
        );
    }

    #[tokio::test]
    async fn it_never_claims_a_payment_and_refuses_refunds() {
        let provider = provider();
        let check = provider.check("vietqr:x").await.expect("check");
        assert_eq!(check.state, InvoiceState::Open);
        assert!(check.payments.is_empty());
        assert!(provider.check_refund(Decimal::ONE, &[]).is_err());
        assert!(provider.confirmed_by_cashier());
    }

    #[test]
    fn a_bad_account_is_refused_at_start() {
        let error = VietQrProvider::new(VietQrSettings {
            bin: "97041".into(),
            account: "1".into(),
            account_name: None,
            card: false,
        })
        .expect_err("a BIN has 6 digits");
        assert!(error.contains("VietQR account"), "{error}");
    }
}
