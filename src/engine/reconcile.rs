//! Reconciliation: the provider's list of payments for a day beside the local records.
//!
//! Every payment the provider lists is matched by its payment id against the payments recorded
//! here; every local payment of that provider and day that the provider does not list is
//! flagged too. On request, a payment the store lacks is recorded the only safe way: by checking
//! the invoice it paid with the provider, exactly as the poller would, so it is applied once,
//! with its outbox event, to the attempt that owns the invoice.

use rust_decimal::Decimal;

use super::{Engine, EngineError, SYSTEM_PROVIDER};
use crate::domain::Timestamp;
use crate::domain::check_text;
use crate::domain::model::MAX_ID_LEN;

/// How one payment compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Listed by the provider and recorded here with the same amount.
    Matched,
    /// Listed by the provider, not recorded here.
    Missing,
    /// Listed by the provider and recorded here, with another amount.
    AmountDiffers,
    /// Recorded here, not listed by the provider.
    LocalOnly,
    /// Was missing, and is now recorded (on request).
    Recorded,
}

impl Verdict {
    /// The word the till and the CLI see.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Matched => "matched",
            Verdict::Missing => "missing",
            Verdict::AmountDiffers => "amount_differs",
            Verdict::LocalOnly => "local_only",
            Verdict::Recorded => "recorded",
        }
    }
}

/// One line of a reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileRow {
    pub payment_id: String,
    pub invoice_id: Option<String>,
    pub provider_amount: Option<Decimal>,
    pub provider_status: Option<String>,
    pub local_amount: Option<Decimal>,
    pub attempt_id: Option<String>,
    pub transaction_id: Option<String>,
    pub verdict: Verdict,
}

/// `Reconcile`: which provider, which day, and whether to record what is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileRequest {
    pub provider: String,
    /// `YYYY-MM-DD`, the provider's day.
    pub date: String,
    pub record_missing: bool,
}

impl Engine {
    /// Compares the provider's payments of a day with the local records.
    pub async fn reconcile(
        &self,
        request: ReconcileRequest,
    ) -> Result<Vec<ReconcileRow>, EngineError> {
        check_text("provider", &request.provider, MAX_ID_LEN)?;
        if request.provider == SYSTEM_PROVIDER {
            return Err(EngineError::InvalidArgument(
                "provider: cash payments have no provider to reconcile with".to_owned(),
            ));
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let date = time::Date::parse(&request.date, &format).map_err(|_| {
            EngineError::invalid(
                "date",
                format!(
                    "{} is not a YYYY-MM-DD date",
                    crate::domain::model::quote_for_error(&request.date)
                ),
            )
        })?;
        let provider = self.provider(&request.provider)?;
        let listed = provider.list_payments(date).await?;

        let day_start = date.midnight().assume_offset(provider.day_offset());
        let from = Timestamp((day_start.unix_timestamp_nanos() / 1_000_000) as i64);
        let until = from.plus_millis(86_400_000);
        let name = request.provider.clone();
        let local = self
            .read(move |tx| Ok(tx.payment_results_between(&name, from, until)?))
            .await?;

        let mut rows = Vec::with_capacity(listed.len());
        for payment in &listed {
            let name = request.provider.clone();
            let payment_id = payment.payment_id.clone();
            let invoice_id = payment.invoice_id.clone();
            let (recorded, owner) = self
                .read(move |tx| {
                    let recorded = tx.payment_result(&name, &payment_id)?;
                    let owner = match &invoice_id {
                        Some(invoice) => tx.attempt_by_invoice(&name, invoice)?,
                        None => None,
                    };
                    Ok((recorded, owner))
                })
                .await?;
            let verdict = match &recorded {
                Some(r) if r.amount == payment.amount => Verdict::Matched,
                Some(_) => Verdict::AmountDiffers,
                None => Verdict::Missing,
            };
            rows.push(ReconcileRow {
                payment_id: payment.payment_id.clone(),
                invoice_id: payment.invoice_id.clone(),
                provider_amount: Some(payment.amount),
                provider_status: Some(payment.status.clone()),
                local_amount: recorded.as_ref().map(|r| r.amount),
                attempt_id: recorded
                    .as_ref()
                    .map(|r| r.attempt_id.clone())
                    .or_else(|| owner.as_ref().map(|a| a.id.clone())),
                transaction_id: owner.map(|a| a.transaction_id),
                verdict,
            });
        }
        for result in local {
            if !listed
                .iter()
                .any(|p| p.payment_id == result.provider_payment_id)
            {
                let attempt_id = result.attempt_id.clone();
                let attempt = self.read(move |tx| Ok(tx.attempt(&attempt_id)?)).await?;
                rows.push(ReconcileRow {
                    payment_id: result.provider_payment_id,
                    invoice_id: attempt.as_ref().and_then(|a| a.invoice_id.clone()),
                    provider_amount: None,
                    provider_status: None,
                    local_amount: Some(result.amount),
                    attempt_id: Some(result.attempt_id),
                    transaction_id: attempt.map(|a| a.transaction_id),
                    verdict: Verdict::LocalOnly,
                });
            }
        }
        if request.record_missing {
            self.record_missing(&request.provider, &mut rows).await?;
        }
        for row in rows.iter().filter(|r| r.verdict != Verdict::Matched) {
            tracing::warn!(
                provider = %request.provider,
                payment_id = %row.payment_id,
                verdict = row.verdict.code(),
                "reconciliation difference"
            );
        }
        Ok(rows)
    }

    /// Records each missing payment by checking its invoice with the provider.
    async fn record_missing(
        &self,
        provider: &str,
        rows: &mut [ReconcileRow],
    ) -> Result<(), EngineError> {
        for row in rows.iter_mut().filter(|r| r.verdict == Verdict::Missing) {
            let Some(attempt_id) = row.attempt_id.clone() else {
                continue;
            };
            let handle = self.handle(&attempt_id);
            let guard = handle.lock.lock().await;
            let result = async {
                let (_, attempt) = self.load_pair(&attempt_id).await?;
                self.check_now(&attempt).await
            }
            .await;
            drop(guard);
            if let Err(error) = result {
                // This row stays `missing`; the others are still recorded.
                tracing::warn!(%error, payment_id = %row.payment_id, "cannot record a missing payment");
                continue;
            }
            let provider = provider.to_owned();
            let payment_id = row.payment_id.clone();
            let recorded = self
                .read(move |tx| Ok(tx.payment_result(&provider, &payment_id)?))
                .await?;
            if let Some(recorded) = recorded {
                row.local_amount = Some(recorded.amount);
                row.verdict = Verdict::Recorded;
            }
        }
        Ok(())
    }
}
