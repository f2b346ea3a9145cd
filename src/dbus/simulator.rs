//! `org.qrpayd.Pay1.Simulator`: commands to the built-in simulated provider, served beside the
//! terminal interface only when the simulator is enabled.

use zbus::interface;

use super::error::PayError;
use crate::engine::Engine;

/// The simulator's commands.
pub struct SimulatorControl {
    engine: Engine,
}

impl SimulatorControl {
    pub fn new(engine: Engine) -> SimulatorControl {
        SimulatorControl { engine }
    }
}

#[interface(name = "org.qrpayd.Pay1.Simulator")]
impl SimulatorControl {
    /// The simulated customer pays `amount` of the attempt's invoice; an empty amount pays the
    /// rest. Less than the rest is a partial payment.
    async fn pay(&self, attempt_id: &str, amount: &str) -> Result<(), PayError> {
        Ok(self.engine.simulate_pay(attempt_id, Some(amount)).await?)
    }

    /// The simulated provider fails the attempt's invoice.
    async fn fail(&self, attempt_id: &str) -> Result<(), PayError> {
        Ok(self.engine.simulate_fail(attempt_id).await?)
    }

    /// While offline, every call to the simulated provider answers unavailable.
    async fn set_offline(&self, offline: bool) -> Result<(), PayError> {
        Ok(self.engine.simulate_offline(offline)?)
    }
}
