//! Asking the provider now: the till's `Verify`, and a provider's notification (an IPN) that
//! one of its invoices changed.

use super::{Engine, EngineError, SYSTEM_PROVIDER, VerifyReply};
use crate::domain::AttemptType;
use crate::domain::model::{MAX_ID_LEN, check_id};

impl Engine {
    /// Asks the provider about an attempt now and applies the answer.
    pub async fn verify(&self, attempt_id: &str) -> Result<VerifyReply, EngineError> {
        check_id("attempt_id", attempt_id, MAX_ID_LEN)?;
        let attempt_id = &self.attempt_id_of(attempt_id).await?;
        let handle = self.handle(attempt_id);
        let guard = handle.lock.lock().await;
        let result = async {
            let (_, attempt) = self.load_pair(attempt_id).await?;
            if attempt.provider == SYSTEM_PROVIDER {
                return Ok(VerifyReply {
                    provider_code: "SYSTEM".to_owned(),
                    provider_message: "confirmed by the cashier, not a provider".to_owned(),
                    attempt,
                });
            }
            if attempt.kind != AttemptType::Payment || attempt.invoice_id.is_none() {
                return Ok(VerifyReply {
                    provider_code: attempt
                        .failure
                        .as_ref()
                        .map(|f| f.code.clone())
                        .unwrap_or_else(|| "NONE".to_owned()),
                    provider_message: "no invoice at the provider to check".to_owned(),
                    attempt,
                });
            }
            let (attempt, check) = self.check_now(&attempt).await?;
            Ok(VerifyReply {
                attempt,
                provider_code: check.code,
                provider_message: check.message,
            })
        }
        .await;
        drop(guard);
        result
    }

    /// A provider says one of its invoices changed (an IPN): the attempt's supervisor checks
    /// with the provider at once, so the notification is applied exactly like a poll result,
    /// only once the provider's own status API agrees. Whatever state the attempt is in (late
    /// money on an expired or cancelled QR included), the notification is checked, never
    /// dropped; notifications that arrive while a check is pending are answered by that one
    /// check. Returns whether the invoice is known.
    pub async fn invoice_notified(
        &self,
        provider: &str,
        invoice_id: &str,
    ) -> Result<bool, EngineError> {
        let (name, id) = (provider.to_owned(), invoice_id.to_owned());
        let attempt = self
            .read(move |tx| Ok(tx.attempt_by_invoice(&name, &id)?))
            .await?;
        let Some(attempt) = attempt else {
            tracing::warn!(provider, invoice_id, "notification for an unknown invoice");
            return Ok(false);
        };
        if !attempt.may_take_money() {
            self.recheck_later(&attempt.id);
        }
        self.supervise(&attempt.id);
        self.nudge(&attempt.id);
        Ok(true)
    }
}
