//! The D-Bus API: the only module that knows zbus.
//!
//! It serves `org.qrpayd.Pay1.Terminal` (and `org.qrpayd.Pay1.Simulator` when the simulator is
//! enabled) at `/org/qrpayd/Pay1` under the name `org.qrpayd.Pay1`, turns engine events into
//! signals and property changes, and offers the client side ([`client`]) that `qrpayctl`, the
//! demo and the tests use. Interface methods are thin: read the arguments, call the engine,
//! write the reply. Wire types never leave this module.

mod args;
pub mod bus;
pub mod client;
mod error;
mod introspection;
pub mod names;
mod simulator;
mod sync;
mod terminal;

use tokio::sync::broadcast;
use zbus::Connection;
use zbus::object_server::InterfaceRef;

use crate::domain::format_amount;
use crate::engine::{Engine, Event};
use crate::sync::SyncHandle;
use args::Writer;
pub use bus::{BusAddress, PrivateBus};
pub use error::PayError;
use terminal::{Terminal, TerminalSignals};

/// The daemon's D-Bus side could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot connect to the {bus} bus: {source}")]
    Connect { bus: String, source: zbus::Error },
    #[error("the name {name} is already owned on the {bus} bus: is another qrpayd running?")]
    NameTaken { name: &'static str, bus: String },
}

/// The running D-Bus service. Dropping it leaves the bus.
pub struct Service {
    /// Held for its lifetime: the bus connection that owns the name.
    _connection: Connection,
    forwarder: tokio::task::JoinHandle<()>,
    sync_forwarder: tokio::task::JoinHandle<()>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.forwarder.abort();
        self.sync_forwarder.abort();
    }
}

/// Connects to `bus`, serves the interfaces, then takes the well-known name (so no call can
/// arrive before the handlers exist), and starts forwarding engine events as signals.
pub async fn serve(
    engine: &Engine,
    sync: &SyncHandle,
    bus: &BusAddress,
) -> Result<Service, ServeError> {
    let connect_error = |source| ServeError::Connect {
        bus: bus.to_string(),
        source,
    };
    // Subscribe before serving, so that no change after the first call is missed.
    let events = engine.subscribe();
    let mut builder = bus.builder().serve_at(
        names::OBJECT_PATH,
        Terminal::new(engine.clone(), sync.clone()),
    );
    if engine.has_simulator() {
        builder = builder.serve_at(
            names::OBJECT_PATH,
            simulator::SimulatorControl::new(engine.clone()),
        );
    }
    let connection = builder
        .name(names::BUS_NAME)
        // zbus asks with ALLOW_REPLACEMENT | REPLACE_EXISTING by default: a second qrpayd
        // would then take the name and the first, not queued, would serve nobody.
        .allow_name_replacements(false)
        .replace_existing_names(false)
        .build()
        .await
        .map_err(|source| match source {
            zbus::Error::NameTaken => ServeError::NameTaken {
                name: names::BUS_NAME,
                bus: bus.to_string(),
            },
            source => connect_error(source),
        })?;
    // Documentation is no reason not to take payments: on failure, say so and serve on.
    if let Err(error) = introspection::serve(&connection).await {
        tracing::warn!(%error, "cannot serve the documented introspection");
    }
    let terminal = connection
        .object_server()
        .interface::<_, Terminal>(names::OBJECT_PATH)
        .await
        .map_err(connect_error)?;
    let forwarder = tokio::spawn(forward_events(events, terminal.clone()));
    let sync_forwarder = tokio::spawn(sync::forward_status(sync.clone(), terminal));
    tracing::info!(bus = %bus, name = names::BUS_NAME, "serving on D-Bus");
    Ok(Service {
        _connection: connection,
        forwarder,
        sync_forwarder,
    })
}

/// Emits a signal for every engine event, in order.
async fn forward_events(mut events: broadcast::Receiver<Event>, terminal: InterfaceRef<Terminal>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::error!(
                    missed,
                    "D-Bus signals fell behind; some changes were not signalled"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Err(error) = emit(&terminal, event).await {
            tracing::warn!(%error, "cannot emit a D-Bus signal");
        }
    }
}

async fn emit(terminal: &InterfaceRef<Terminal>, event: Event) -> Result<(), zbus::Error> {
    match event {
        Event::TransactionChanged {
            seq,
            transaction: t,
        } => {
            let details = Writer::new()
                .value("seq", seq)
                .str("transaction_number", &t.number)
                .str("source_type", &t.source.kind)
                .str("source_id", &t.source.id)
                .str("currency", t.currency.code())
                .str("total", format_amount(t.total))
                .str("paid", format_amount(t.paid))
                .str("refunded", format_amount(t.refunded))
                .str("overpaid", format_amount(t.overpaid))
                .str("updated_at", args::time(t.updated_at))
                .finish()
                .map_err(pay_to_zbus)?;
            terminal
                .transaction_changed(&t.id, t.status.code(), details)
                .await
        }
        Event::AttemptChanged { seq, attempt: a } => {
            let details = Writer::new()
                .value("seq", seq)
                .str("attempt_code", &a.code)
                .str("type", a.kind.code())
                .str("provider", &a.provider)
                .str("method", &a.method)
                .str("amount", format_amount(a.amount))
                .str("paid", format_amount(a.paid))
                .str("refunded", format_amount(a.refunded))
                .opt_str("parent_id", a.parent_id.clone())
                .opt_str("qr_text", a.qr_text.clone().filter(|_| a.status.is_open()))
                .opt_str("expires_at", a.expires_at.map(args::time))
                .opt_str("failure_code", a.failure.as_ref().map(|f| f.code.clone()))
                .opt_str(
                    "failure_message",
                    a.failure.as_ref().map(|f| f.message.clone()),
                )
                .opt_str("request_id", a.request_id.clone())
                .str("updated_at", args::time(a.updated_at))
                .finish()
                .map_err(pay_to_zbus)?;
            terminal
                .attempt_changed(&a.id, &a.transaction_id, a.status.code(), details)
                .await
        }
        Event::AttemptUnresolved {
            seq,
            attempt: a,
            since,
            reason,
        } => {
            let details = Writer::new()
                .value("seq", seq)
                .str("attempt_code", &a.code)
                .str("type", a.kind.code())
                .str("provider", &a.provider)
                .str("status", a.status.code())
                .str("since", args::time(since))
                .str("reason", reason)
                .finish()
                .map_err(pay_to_zbus)?;
            terminal
                .attempt_unresolved(&a.id, &a.transaction_id, details)
                .await
        }
        Event::CountsChanged {
            open_attempts,
            pending_sync,
        } => {
            let iface = terminal.get().await;
            if open_attempts.is_some() {
                iface
                    .open_attempts_changed(terminal.signal_emitter())
                    .await?;
            }
            if pending_sync.is_some() {
                iface
                    .pending_sync_changed(terminal.signal_emitter())
                    .await?;
            }
            Ok(())
        }
        Event::HealthChanged { .. } => {
            let iface = terminal.get().await;
            iface
                .unresolved_attempts_changed(terminal.signal_emitter())
                .await?;
            iface
                .orphaned_attempts_changed(terminal.signal_emitter())
                .await
        }
    }
}

fn pay_to_zbus(error: PayError) -> zbus::Error {
    match error {
        PayError::ZBus(error) => error,
        other => zbus::Error::Failure(format!("{other:?}")),
    }
}
