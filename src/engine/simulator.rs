//! The simulator's commands: the simulated customer pays, the provider fails, or goes offline.

use super::error::amount_error;
use super::{Engine, EngineError};
use crate::domain::model::{MAX_ID_LEN, check_id};
use crate::domain::{Attempt, Transaction, parse_amount};

impl Engine {
    /// Simulator: the customer pays `amount` (the rest when `None`) of the attempt's invoice.
    pub async fn simulate_pay(
        &self,
        attempt_id: &str,
        amount: Option<&str>,
    ) -> Result<(), EngineError> {
        let attempt_id = &self.attempt_id_of(attempt_id).await?;
        let (transaction, attempt) = self.simulated_attempt(attempt_id).await?;
        let amount = amount
            .filter(|a| !a.is_empty())
            .map(|a| parse_amount(a, transaction.currency, None))
            .transpose()
            .map_err(|e| amount_error("amount", e))?;
        let simulator = self.simulator()?;
        let invoice_id = attempt.invoice_id.unwrap_or_default();
        simulator
            .pay(&invoice_id, amount)
            .map_err(|e| EngineError::InvalidTransactionStatus(e.to_string()))?;
        self.nudge(attempt_id);
        Ok(())
    }

    /// Simulator: the provider fails the attempt's invoice.
    pub async fn simulate_fail(&self, attempt_id: &str) -> Result<(), EngineError> {
        let attempt_id = &self.attempt_id_of(attempt_id).await?;
        let (_, attempt) = self.simulated_attempt(attempt_id).await?;
        let simulator = self.simulator()?;
        simulator
            .fail(&attempt.invoice_id.unwrap_or_default())
            .map_err(|e| EngineError::InvalidTransactionStatus(e.to_string()))?;
        self.nudge(attempt_id);
        Ok(())
    }

    /// Simulator: play offline (every call answers unavailable) or come back.
    pub fn simulate_offline(&self, offline: bool) -> Result<(), EngineError> {
        self.simulator()?.set_offline(offline);
        Ok(())
    }

    fn simulator(&self) -> Result<&std::sync::Arc<crate::providers::Simulator>, EngineError> {
        self.inner.providers.simulator().ok_or_else(|| {
            EngineError::ProviderNotConfigured("the simulator is not enabled".to_owned())
        })
    }

    async fn simulated_attempt(
        &self,
        attempt_id: &str,
    ) -> Result<(Transaction, Attempt), EngineError> {
        check_id("attempt_id", attempt_id, MAX_ID_LEN)?;
        let (transaction, attempt) = self.load_pair(attempt_id).await?;
        if attempt.provider != crate::providers::Simulator::NAME || attempt.invoice_id.is_none() {
            return Err(EngineError::InvalidArgument(format!(
                "attempt {} is not a simulator payment with an invoice",
                attempt.code
            )));
        }
        Ok((transaction, attempt))
    }
}
