//! Every D-Bus name qrpayd uses, in one place. These are the contract with the till: a name
//! changes only with a new major version (`Pay2`), never in place.

/// The well-known bus name the daemon owns.
pub const BUS_NAME: &str = "org.qrpayd.Pay1";
/// The one object the daemon serves.
pub const OBJECT_PATH: &str = "/org/qrpayd/Pay1";
/// The till's interface.
pub const TERMINAL_INTERFACE: &str = "org.qrpayd.Pay1.Terminal";
/// The simulator's interface, present only when the simulator is enabled.
pub const SIMULATOR_INTERFACE: &str = "org.qrpayd.Pay1.Simulator";
/// The prefix of every error name qrpayd replies with.
pub const ERROR_PREFIX: &str = "org.qrpayd.Pay1.Error";
