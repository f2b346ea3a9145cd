//! Which bus to connect to, and a private bus for demos and tests.
//!
//! The private bus is busd (a D-Bus broker written on zbus) run in-process on its own thread,
//! listening on a Unix socket in a directory the caller owns. It needs nothing installed, so
//! `qrpayd demo` and the tests run on a machine with only the Rust toolchain.

use std::path::Path;
use std::sync::mpsc;

/// Where the daemon or a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusAddress {
    System,
    Session,
    /// A D-Bus address (`unix:path=/run/...`).
    Address(String),
}

impl BusAddress {
    /// Reads the config's / command line's `bus` value: `system`, `session` or an address.
    pub fn parse(text: &str) -> BusAddress {
        match text {
            "system" => BusAddress::System,
            "session" => BusAddress::Session,
            address => BusAddress::Address(address.to_owned()),
        }
    }

    /// The connection builder for this bus.
    /// Errors (an unreadable address, say) are reported when the connection is built.
    pub fn builder(&self) -> zbus::connection::Builder<'static> {
        match self {
            BusAddress::System => zbus::connection::Builder::system(),
            BusAddress::Session => zbus::connection::Builder::session(),
            BusAddress::Address(address) => zbus::connection::Builder::address(address.as_str()),
        }
    }

    /// Connects as a plain client. A call that gets no reply within a minute fails instead of
    /// waiting for ever (a checkout waits for its provider, so the bound is generous).
    pub async fn connect(&self) -> Result<zbus::Connection, zbus::Error> {
        self.builder()
            .method_timeout(std::time::Duration::from_secs(60))
            .build()
            .await
    }
}

impl BusAddress {
    /// Whether a connection to this bus completes within `timeout` (is there a session bus?).
    pub async fn answers(&self, timeout: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.connect()).await,
            Ok(Ok(_))
        )
    }
}

impl std::fmt::Display for BusAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusAddress::System => f.write_str("system"),
            BusAddress::Session => f.write_str("session"),
            BusAddress::Address(address) => f.write_str(address),
        }
    }
}

/// A private D-Bus broker. busd has no stop call, so the broker's thread lives as long as the
/// process; start one per demo, test or benchmark run, in a directory that outlives it.
#[derive(Debug)]
pub struct PrivateBus {
    address: String,
}

/// The private bus could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start a private D-Bus broker: {0}")]
pub struct PrivateBusError(String);

impl PrivateBus {
    /// Starts a broker listening on `dir/bus`.
    pub fn start(dir: &Path) -> Result<PrivateBus, PrivateBusError> {
        let socket = dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let listen = address.clone();
        std::thread::Builder::new()
            .name("private-bus".to_owned())
            .spawn(move || {
                zruntime::block_on(async move {
                    match busd::bus::Bus::for_address(Some(&listen)).await {
                        Ok(mut bus) => {
                            let _ = ready_tx.send(Ok(()));
                            if let Err(error) = bus.run().await {
                                tracing::error!(%error, "the private bus stopped");
                            }
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error.to_string()));
                        }
                    }
                })
            })
            .map_err(|e| PrivateBusError(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(PrivateBus { address }),
            Ok(Err(error)) => Err(PrivateBusError(error)),
            Err(_) => Err(PrivateBusError("the bus thread ended".to_owned())),
        }
    }

    /// The bus's D-Bus address.
    pub fn address(&self) -> &str {
        &self.address
    }
}
