//! The simulator: a first-class, in-process provider for demos, tests and till development.
//!
//! It behaves like a remote provider with a ledger of its own: invoices it created, payments
//! against them, cancels and refunds. The ledger is kept in a JSON file beside the database
//! (written atomically on every change), so a daemon that is killed and restarted finds the
//! simulated provider exactly where a real one would be. Its QR payload is a valid EMVCo
//! merchant-presented code with a CRC.
//!
//! It pays an invoice in full `auto_pay_after` after creating it (when set), or when told to
//! (`pay`, possibly partially); it can be told to fail an invoice, and to play offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{
    CancelOutcome, CheckResult, CreateRequest, Invoice, InvoiceState, ListedPayment, Provider,
    ProviderError, ProviderPayment, RefundOutcome, RefundRequest,
};
use crate::domain::{Currency, DeepLink, Timestamp};
use crate::emv;

/// How the simulator behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatorSettings {
    /// Pay each invoice in full this long after it was created; `None` pays only on command.
    pub auto_pay_after: Option<Duration>,
    /// How often the engine should check a live invoice.
    pub poll_interval: Duration,
    /// The merchant name in the QR.
    pub merchant_name: String,
}

impl Default for SimulatorSettings {
    fn default() -> Self {
        SimulatorSettings {
            auto_pay_after: None,
            poll_interval: Duration::from_secs(1),
            merchant_name: "QRPAYD SIMULATOR".to_owned(),
        }
    }
}

/// One invoice as the simulated provider holds it ([`Simulator::invoices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedInvoice {
    pub invoice_id: String,
    /// The idempotency key of the attempt that made it.
    pub key: String,
    pub amount: Decimal,
    /// Whether a customer can still pay it.
    pub payable: bool,
    /// Every payment: the provider's payment id and amount.
    pub payments: Vec<(String, Decimal)>,
    /// Everything refunded from it.
    pub refunded: Decimal,
}

/// A command to the simulator that it refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulatorError {
    #[error("the simulator has no invoice {0}")]
    UnknownInvoice(String),
    #[error("invoice {0} is closed and cannot be paid")]
    Closed(String),
    #[error("invoice {invoice_id} has {remaining} left to pay; {amount} is more")]
    Overpayment {
        invoice_id: String,
        amount: Decimal,
        remaining: Decimal,
    },
    #[error(
        "invoice {invoice_id} takes only the whole {remaining} left to pay, not {amount}: its \
         checkout did not allow partial payments"
    )]
    PartialNotAllowed {
        invoice_id: String,
        amount: Decimal,
        remaining: Decimal,
    },
    #[error("the amount must be greater than zero")]
    NotPositive,
    #[error("cannot save the simulator's ledger {path}: {detail}")]
    Ledger { path: PathBuf, detail: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum SimState {
    Open,
    Closed,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimPayment {
    id: String,
    amount: Decimal,
    at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimInvoice {
    invoice_id: String,
    key: String,
    amount: Decimal,
    currency: String,
    qr_text: String,
    auto_pay_at: Option<Timestamp>,
    /// Whether the invoice takes less than what is left, as the checkout asked
    /// (`CreateRequest::allow_partial`). Ledgers written before it was kept load as `false`.
    #[serde(default)]
    allow_partial: bool,
    state: SimState,
    payments: Vec<SimPayment>,
    /// Refunds by idempotency key.
    refunds: BTreeMap<String, Decimal>,
}

impl SimInvoice {
    fn paid(&self) -> Decimal {
        self.payments.iter().map(|p| p.amount).sum()
    }

    fn refunded(&self) -> Decimal {
        self.refunds.values().copied().sum()
    }

    /// Applies the automatic payment once its time has come. Deriving it from the stored time
    /// (rather than a timer) keeps it right across restarts.
    fn settle_automatic(&mut self, now: Timestamp) {
        if let Some(at) = self.auto_pay_at
            && self.state == SimState::Open
            && now >= at
            && self.payments.is_empty()
        {
            self.payments.push(SimPayment {
                id: format!("{}-P1", self.invoice_id),
                amount: self.amount,
                at,
            });
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    next_invoice: u64,
    invoices: BTreeMap<String, SimInvoice>,
    #[serde(skip)]
    offline: bool,
}

impl Ledger {
    /// How many invoices the simulator remembers; like a real provider's archive, it forgets
    /// the oldest finished ones (closed, failed or paid in full) beyond that.
    const KEPT_INVOICES: usize = 500;

    fn forget_oldest_finished(&mut self) {
        let excess = self.invoices.len().saturating_sub(Self::KEPT_INVOICES);
        if excess == 0 {
            return;
        }
        let finished: Vec<String> = self
            .invoices
            .values()
            .filter(|i| i.state != SimState::Open || i.paid() >= i.amount)
            .take(excess)
            .map(|i| i.invoice_id.clone())
            .collect();
        for id in finished {
            self.invoices.remove(&id);
        }
    }
}

/// The simulated provider.
pub struct Simulator {
    settings: SimulatorSettings,
    ledger_path: Option<PathBuf>,
    ledger: Mutex<Ledger>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Simulator {
    /// The name the till and config use.
    pub const NAME: &'static str = "simulator";
    /// The ledger's file name in the state directory.
    pub const LEDGER_FILE: &'static str = "simulator-ledger.json";

    /// A simulator whose ledger lives at `ledger_path` (loaded if it exists), or only in memory.
    pub fn new(
        settings: SimulatorSettings,
        ledger_path: Option<&Path>,
    ) -> Result<Simulator, SimulatorError> {
        let ledger = match ledger_path {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path).map_err(|e| SimulatorError::Ledger {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })?;
                serde_json::from_str(&text).map_err(|e| SimulatorError::Ledger {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })?
            }
            _ => Ledger::default(),
        };
        Ok(Simulator {
            settings,
            ledger_path: ledger_path.map(Path::to_owned),
            ledger: Mutex::new(ledger),
        })
    }

    /// The simulated customer pays `amount` (the rest of the invoice when `None`).
    pub fn pay(&self, invoice_id: &str, amount: Option<Decimal>) -> Result<(), SimulatorError> {
        self.change(|ledger| {
            let now = Timestamp::now();
            let invoice = ledger
                .invoices
                .get_mut(invoice_id)
                .ok_or_else(|| SimulatorError::UnknownInvoice(invoice_id.to_owned()))?;
            invoice.settle_automatic(now);
            if invoice.state != SimState::Open {
                return Err(SimulatorError::Closed(invoice_id.to_owned()));
            }
            let remaining = invoice.amount - invoice.paid();
            let amount = amount.unwrap_or(remaining);
            if amount <= Decimal::ZERO {
                return Err(SimulatorError::NotPositive);
            }
            if amount > remaining {
                return Err(SimulatorError::Overpayment {
                    invoice_id: invoice_id.to_owned(),
                    amount,
                    remaining,
                });
            }
            // As a provider would: an invoice made without partial payments takes the whole
            // rest or nothing.
            if amount < remaining && !invoice.allow_partial {
                return Err(SimulatorError::PartialNotAllowed {
                    invoice_id: invoice_id.to_owned(),
                    amount,
                    remaining,
                });
            }
            let id = format!("{}-P{}", invoice.invoice_id, invoice.payments.len() + 1);
            invoice.payments.push(SimPayment {
                id,
                amount,
                at: now,
            });
            Ok(())
        })
    }

    /// The provider fails the invoice.
    pub fn fail(&self, invoice_id: &str) -> Result<(), SimulatorError> {
        self.change(|ledger| {
            let invoice = ledger
                .invoices
                .get_mut(invoice_id)
                .ok_or_else(|| SimulatorError::UnknownInvoice(invoice_id.to_owned()))?;
            if invoice.state != SimState::Open {
                return Err(SimulatorError::Closed(invoice_id.to_owned()));
            }
            invoice.state = SimState::Failed;
            Ok(())
        })
    }

    /// What the simulated provider holds, invoice by invoice: the truth a simulation checks
    /// the daemon's records against.
    pub fn invoices(&self) -> Vec<SimulatedInvoice> {
        let Ok(ledger) = self.ledger.lock() else {
            return Vec::new();
        };
        ledger
            .invoices
            .values()
            .map(|invoice| SimulatedInvoice {
                invoice_id: invoice.invoice_id.clone(),
                key: invoice.key.clone(),
                amount: invoice.amount,
                payable: invoice.state == SimState::Open && invoice.paid() < invoice.amount,
                payments: invoice
                    .payments
                    .iter()
                    .map(|p| (p.id.clone(), p.amount))
                    .collect(),
                refunded: invoice.refunded(),
            })
            .collect()
    }

    /// While offline, every provider call answers `Unavailable`.
    pub fn set_offline(&self, offline: bool) {
        if let Ok(mut ledger) = self.ledger.lock() {
            ledger.offline = offline;
        }
    }

    fn change<T>(
        &self,
        f: impl FnOnce(&mut Ledger) -> Result<T, SimulatorError>,
    ) -> Result<T, SimulatorError> {
        let mut ledger = self.ledger.lock().map_err(|_| SimulatorError::Ledger {
            path: self.ledger_path.clone().unwrap_or_default(),
            detail: "lock poisoned".to_owned(),
        })?;
        let value = f(&mut ledger)?;
        self.save(&ledger)?;
        Ok(value)
    }

    fn save(&self, ledger: &Ledger) -> Result<(), SimulatorError> {
        let Some(path) = &self.ledger_path else {
            return Ok(());
        };
        let failed = |e: &dyn std::fmt::Display| SimulatorError::Ledger {
            path: path.clone(),
            detail: e.to_string(),
        };
        let text = serde_json::to_string(ledger).map_err(|e| failed(&e))?;
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, text).map_err(|e| failed(&e))?;
        std::fs::rename(&temporary, path).map_err(|e| failed(&e))?;
        Ok(())
    }

    /// Runs a provider call against the ledger, as the remote side would.
    fn call<T>(
        &self,
        f: impl FnOnce(&mut Ledger) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let mut ledger = self
            .ledger
            .lock()
            .map_err(|_| ProviderError::Unavailable("simulator lock poisoned".to_owned()))?;
        if ledger.offline {
            return Err(ProviderError::Unavailable(
                "the simulator is set offline".to_owned(),
            ));
        }
        let value = f(&mut ledger)?;
        self.save(&ledger)
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok(value)
    }

    fn qr_payload(
        &self,
        request: &CreateRequest,
        invoice_id: &str,
    ) -> Result<String, ProviderError> {
        let spec = emv::MerchantQrSpec {
            merchant_account: emv::MerchantAccount {
                tag: 29,
                guid: "ORG.QRPAYD.SIMULATOR".to_owned(),
                fields: vec![emv::Field::primitive(1, invoice_id)],
            },
            mcc: "5999".to_owned(),
            currency_numeric: request.currency.numeric_code().to_owned(),
            amount: request.amount,
            amount_decimals: request.currency.decimals(),
            country: request.currency.country_code().to_owned(),
            merchant_name: self.settings.merchant_name.clone(),
            city: match request.currency {
                Currency::Mnt => "Ulaanbaatar".to_owned(),
                Currency::Vnd => "Ho Chi Minh".to_owned(),
            },
            additional: emv::AdditionalData {
                bill: Some(request.transaction_number.clone()),
                reference: Some(request.attempt_code.clone()),
                terminal: Some(request.terminal_id.chars().take(25).collect()),
                purpose: None,
            },
        };
        emv::build_merchant_qr(&spec).map_err(|e| ProviderError::Rejected {
            code: "QR_BUILD".to_owned(),
            message: e.to_string(),
        })
    }
}

fn invoice_of(invoice: &SimInvoice) -> Invoice {
    Invoice {
        expires_at: None,
        invoice_id: invoice.invoice_id.clone(),
        qr_text: invoice.qr_text.clone(),
        short_url: None,
        deep_links: vec![DeepLink {
            name: "Simulator bank".to_owned(),
            link: format!("qrpayd-simulator://pay/{}", invoice.invoice_id),
        }],
    }
}

#[async_trait]
impl Provider for Simulator {
    fn name(&self) -> &str {
        Simulator::NAME
    }

    fn display_name(&self) -> &str {
        "Simulator"
    }

    fn currencies(&self) -> &[Currency] {
        &Currency::ALL
    }

    fn poll_interval(&self) -> Duration {
        self.settings.poll_interval
    }

    async fn create(&self, request: &CreateRequest) -> Result<Invoice, ProviderError> {
        self.call(|ledger| {
            if let Some(existing) = ledger
                .invoices
                .values()
                .find(|i| i.key == request.idempotency_key)
            {
                return Ok(invoice_of(existing));
            }
            ledger.next_invoice += 1;
            let invoice_id = format!("SIM{:08}", ledger.next_invoice);
            let qr_text = self.qr_payload(request, &invoice_id)?;
            let now = Timestamp::now();
            let invoice = SimInvoice {
                invoice_id: invoice_id.clone(),
                key: request.idempotency_key.clone(),
                amount: request.amount,
                currency: request.currency.code().to_owned(),
                qr_text,
                auto_pay_at: self
                    .settings
                    .auto_pay_after
                    .map(|after| now.plus_millis(after.as_millis() as u64)),
                allow_partial: request.allow_partial,
                state: SimState::Open,
                payments: Vec::new(),
                refunds: BTreeMap::new(),
            };
            let created = invoice_of(&invoice);
            ledger.invoices.insert(invoice_id, invoice);
            ledger.forget_oldest_finished();
            Ok(created)
        })
    }

    async fn lookup(&self, request: &CreateRequest) -> Result<Option<Invoice>, ProviderError> {
        self.call(|ledger| {
            Ok(ledger
                .invoices
                .values()
                .find(|i| i.key == request.idempotency_key)
                .map(invoice_of))
        })
    }

    async fn check(&self, invoice_id: &str) -> Result<CheckResult, ProviderError> {
        self.call(|ledger| {
            let invoice = ledger
                .invoices
                .get_mut(invoice_id)
                .ok_or_else(|| ProviderError::NotFound(invoice_id.to_owned()))?;
            invoice.settle_automatic(Timestamp::now());
            let paid = invoice.paid();
            let (state, code, message) = match invoice.state {
                SimState::Failed => (
                    InvoiceState::Failed {
                        code: "SIMULATED_FAILURE".to_owned(),
                        message: "the simulator was told to fail this payment".to_owned(),
                    },
                    "SIMULATED_FAILURE",
                    "failed on command",
                ),
                SimState::Closed => (InvoiceState::Closed, "CLOSED", "invoice closed"),
                SimState::Open if paid >= invoice.amount => (InvoiceState::Paid, "PAID", "paid"),
                SimState::Open if paid > Decimal::ZERO => {
                    (InvoiceState::Open, "PARTIAL", "partially paid")
                }
                SimState::Open => (InvoiceState::Open, "NEW", "waiting for the customer"),
            };
            Ok(CheckResult {
                state,
                payments: invoice
                    .payments
                    .iter()
                    .map(|p| ProviderPayment {
                        payment_id: p.id.clone(),
                        amount: p.amount,
                        paid_at: Some(p.at),
                    })
                    .collect(),
                code: code.to_owned(),
                message: message.to_owned(),
            })
        })
    }

    async fn cancel(&self, invoice_id: &str) -> Result<CancelOutcome, ProviderError> {
        self.call(|ledger| {
            let invoice = ledger
                .invoices
                .get_mut(invoice_id)
                .ok_or_else(|| ProviderError::NotFound(invoice_id.to_owned()))?;
            invoice.settle_automatic(Timestamp::now());
            if invoice.state == SimState::Open && invoice.paid() >= invoice.amount {
                return Ok(CancelOutcome::AlreadyPaid);
            }
            invoice.state = SimState::Closed;
            Ok(CancelOutcome::Cancelled)
        })
    }

    async fn list_payments(&self, date: time::Date) -> Result<Vec<ListedPayment>, ProviderError> {
        self.call(|ledger| {
            let mut listed = Vec::new();
            for invoice in ledger.invoices.values_mut() {
                invoice.settle_automatic(Timestamp::now());
                for payment in &invoice.payments {
                    if payment.at.utc_date() == Some(date) {
                        listed.push(ListedPayment {
                            payment_id: payment.id.clone(),
                            invoice_id: Some(invoice.invoice_id.clone()),
                            amount: payment.amount,
                            currency: invoice.currency.clone(),
                            status: "PAID".to_owned(),
                            paid_at: Some(payment.at),
                        });
                    }
                }
            }
            Ok(listed)
        })
    }

    async fn refund(&self, request: &RefundRequest) -> Result<RefundOutcome, ProviderError> {
        self.call(|ledger| {
            let invoice = ledger
                .invoices
                .get_mut(&request.invoice_id)
                .ok_or_else(|| ProviderError::NotFound(request.invoice_id.clone()))?;
            let reference = format!("{}-R-{}", invoice.invoice_id, request.idempotency_key);
            if invoice.refunds.contains_key(&request.idempotency_key) {
                return Ok(RefundOutcome { reference });
            }
            let refundable = invoice.paid() - invoice.refunded();
            if request.amount > refundable {
                return Err(ProviderError::Rejected {
                    code: "REFUND_EXCEEDS_PAID".to_owned(),
                    message: format!("only {refundable} can be refunded"),
                });
            }
            invoice
                .refunds
                .insert(request.idempotency_key.clone(), request.amount);
            Ok(RefundOutcome { reference })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: &str, amount: &str) -> CreateRequest {
        CreateRequest {
            transaction_id: "transaction-1".to_owned(),
            source: crate::domain::Source {
                kind: "Order".to_owned(),
                id: "order-1".to_owned(),
                uid: None,
            },
            attempt_id: "a1".into(),
            attempt_code: "ATT000001".into(),
            idempotency_key: key.into(),
            transaction_number: "TXN000001".into(),
            terminal_id: "T1".into(),
            amount: Decimal::from_str_exact(amount).expect("literal"),
            currency: Currency::Mnt,
            description: "test".into(),
            expires_at: Timestamp::now().plus_millis(60_000),
            allow_partial: true,
            items: vec![],
        }
    }

    #[tokio::test]
    async fn create_is_idempotent_and_its_qr_is_valid_emvco() {
        let sim = Simulator::new(SimulatorSettings::default(), None).expect("sim");
        let first = sim.create(&request("k1", "100")).await.expect("create");
        let again = sim
            .create(&request("k1", "100"))
            .await
            .expect("create again");
        assert_eq!(first, again);
        let other = sim
            .create(&request("k2", "100"))
            .await
            .expect("create other");
        assert_ne!(first.invoice_id, other.invoice_id);
        let parsed = emv::Payload::parse(&first.qr_text).expect("valid EMVCo");
        assert_eq!(parsed.primitive(53), Some("496"));
        assert_eq!(parsed.primitive(54), Some("100"));
    }

    #[tokio::test]
    async fn partial_then_full_payment_is_reported_per_payment() {
        let sim = Simulator::new(SimulatorSettings::default(), None).expect("sim");
        let invoice = sim.create(&request("k1", "100")).await.expect("create");
        sim.pay(&invoice.invoice_id, Some(Decimal::from(40)))
            .expect("pay part");
        let check = sim.check(&invoice.invoice_id).await.expect("check");
        assert_eq!(check.state, InvoiceState::Open);
        assert_eq!(check.payments.len(), 1);
        sim.pay(&invoice.invoice_id, None).expect("pay rest");
        let check = sim.check(&invoice.invoice_id).await.expect("check");
        assert_eq!(check.state, InvoiceState::Paid);
        let amounts: Vec<Decimal> = check.payments.iter().map(|p| p.amount).collect();
        assert_eq!(amounts, [Decimal::from(40), Decimal::from(60)]);
        assert_eq!(
            sim.pay(&invoice.invoice_id, Some(Decimal::ONE)),
            Err(SimulatorError::Overpayment {
                invoice_id: invoice.invoice_id.clone(),
                amount: Decimal::ONE,
                remaining: Decimal::ZERO
            })
        );
    }

    /// Issue 9, item 5: the simulator accepted a partial payment on a checkout without
    /// `allow_partial`.
    #[tokio::test]
    async fn a_partial_payment_is_refused_unless_the_checkout_allowed_it() {
        let sim = Simulator::new(SimulatorSettings::default(), None).expect("sim");
        let whole_only = CreateRequest {
            allow_partial: false,
            ..request("k1", "100")
        };
        let invoice = sim.create(&whole_only).await.expect("create");
        assert_eq!(
            sim.pay(&invoice.invoice_id, Some(Decimal::from(40))),
            Err(SimulatorError::PartialNotAllowed {
                invoice_id: invoice.invoice_id.clone(),
                amount: Decimal::from(40),
                remaining: Decimal::from(100),
            })
        );
        let check = sim.check(&invoice.invoice_id).await.expect("check");
        assert!(
            check.payments.is_empty(),
            "the refused payment left nothing"
        );
        // The whole amount, given or as the rest, is a payment.
        sim.pay(&invoice.invoice_id, Some(Decimal::from(100)))
            .expect("pay the whole");
        let check = sim.check(&invoice.invoice_id).await.expect("check");
        assert_eq!(check.state, InvoiceState::Paid);
        let other = sim
            .create(&CreateRequest {
                allow_partial: false,
                ..request("k2", "100")
            })
            .await
            .expect("create");
        sim.pay(&other.invoice_id, None).expect("pay the rest");
    }

    #[test]
    fn a_ledger_from_before_allow_partial_loads_with_partial_payments_refused() {
        let old = r#"{"next_invoice":1,"invoices":{"SIM00000001":{"invoice_id":"SIM00000001",
            "key":"k1","amount":"100","currency":"MNT","qr_text":"x","auto_pay_at":null,
            "state":"Open","payments":[],"refunds":{}}}}"#;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(Simulator::LEDGER_FILE);
        std::fs::write(&path, old).expect("write the old ledger");
        let sim = Simulator::new(SimulatorSettings::default(), Some(&path)).expect("loads");
        assert!(matches!(
            sim.pay("SIM00000001", Some(Decimal::ONE)),
            Err(SimulatorError::PartialNotAllowed { .. })
        ));
        sim.pay("SIM00000001", None).expect("the whole is taken");
    }

    #[tokio::test]
    async fn cancel_of_a_paid_invoice_says_so() {
        let sim = Simulator::new(SimulatorSettings::default(), None).expect("sim");
        let invoice = sim.create(&request("k1", "100")).await.expect("create");
        sim.pay(&invoice.invoice_id, None).expect("pay");
        assert_eq!(
            sim.cancel(&invoice.invoice_id).await,
            Ok(CancelOutcome::AlreadyPaid)
        );
        let open = sim.create(&request("k2", "100")).await.expect("create");
        assert_eq!(
            sim.cancel(&open.invoice_id).await,
            Ok(CancelOutcome::Cancelled)
        );
        assert_eq!(
            sim.cancel(&open.invoice_id).await,
            Ok(CancelOutcome::Cancelled)
        );
        assert_eq!(
            sim.pay(&open.invoice_id, None),
            Err(SimulatorError::Closed(open.invoice_id.clone()))
        );
    }

    #[tokio::test]
    async fn offline_answers_unavailable_and_the_ledger_survives_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(Simulator::LEDGER_FILE);
        let invoice_id = {
            let sim = Simulator::new(SimulatorSettings::default(), Some(&path)).expect("sim");
            let invoice = sim.create(&request("k1", "100")).await.expect("create");
            sim.pay(&invoice.invoice_id, Some(Decimal::from(30)))
                .expect("pay");
            sim.set_offline(true);
            assert!(matches!(
                sim.check(&invoice.invoice_id).await,
                Err(ProviderError::Unavailable(_))
            ));
            invoice.invoice_id
        };
        let sim = Simulator::new(SimulatorSettings::default(), Some(&path)).expect("reload");
        let check = sim.check(&invoice_id).await.expect("check after restart");
        assert_eq!(check.payments.len(), 1);
        assert_eq!(check.payments[0].amount, Decimal::from(30));
    }

    #[tokio::test]
    async fn it_forgets_the_oldest_finished_invoices_only() {
        let sim = Simulator::new(SimulatorSettings::default(), None).expect("sim");
        let open = sim.create(&request("open", "100")).await.expect("create");
        for i in 0..Ledger::KEPT_INVOICES + 10 {
            let invoice = sim
                .create(&request(&format!("k{i}"), "100"))
                .await
                .expect("create");
            sim.pay(&invoice.invoice_id, None).expect("pay");
        }
        let kept = sim.ledger.lock().expect("lock").invoices.len();
        assert!(kept <= Ledger::KEPT_INVOICES + 1, "{kept}");
        // The unpaid invoice is remembered however old it is.
        assert!(sim.check(&open.invoice_id).await.is_ok());
    }

    #[tokio::test]
    async fn refunds_are_idempotent_and_bounded() {
        let sim = Simulator::new(SimulatorSettings::default(), None).expect("sim");
        let invoice = sim.create(&request("k1", "100")).await.expect("create");
        sim.pay(&invoice.invoice_id, None).expect("pay");
        let refund = |key: &str, amount: i64| RefundRequest {
            idempotency_key: key.into(),
            invoice_id: invoice.invoice_id.clone(),
            amount: Decimal::from(amount),
            currency: Currency::Mnt,
            reason: "test".into(),
            payments: vec![],
        };
        let first = sim.refund(&refund("r1", 60)).await.expect("refund");
        let again = sim.refund(&refund("r1", 60)).await.expect("refund again");
        assert_eq!(first, again);
        assert!(matches!(
            sim.refund(&refund("r2", 50)).await,
            Err(ProviderError::Rejected { .. })
        ));
    }
}
