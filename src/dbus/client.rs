//! The client side of the D-Bus API, as a till uses it: `qrpayctl`, the demo, the benchmark and
//! the tests go through here. Requests are built from plain values and replies come back as
//! JSON objects, so no zbus type leaves this module.

use std::collections::{BTreeMap, HashMap};

use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use zbus::message::Type as MessageType;
use zbus::{Connection, DBusError, MatchRule, MessageStream, OwnedVariant, Variant, proxy};

use super::bus::BusAddress;
use super::names;

type VarDict = HashMap<String, OwnedVariant>;

#[proxy(
    interface = "org.qrpayd.Pay1.Terminal",
    default_service = "org.qrpayd.Pay1",
    default_path = "/org/qrpayd/Pay1"
)]
trait Terminal {
    fn checkout(&self, request: VarDict) -> zbus::Result<VarDict>;
    fn confirm_system_payment(&self, request: VarDict) -> zbus::Result<VarDict>;
    fn cancel(&self, request: VarDict) -> zbus::Result<VarDict>;
    fn verify(&self, attempt_id: &str) -> zbus::Result<VarDict>;
    fn refund(&self, request: VarDict) -> zbus::Result<VarDict>;
    fn get_transaction(&self, id_or_number: &str) -> zbus::Result<VarDict>;
    fn list_transactions(&self, filter: VarDict) -> zbus::Result<Vec<VarDict>>;
    fn count_transactions(&self, filter: VarDict) -> zbus::Result<u64>;
    fn reconcile(&self, request: VarDict) -> zbus::Result<Vec<VarDict>>;
    fn sync_now(&self) -> zbus::Result<()>;
    fn list_parked_sync(&self) -> zbus::Result<Vec<VarDict>>;
    fn retry_sync(&self, seq: i64) -> zbus::Result<u64>;
    #[zbus(property)]
    fn sync_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn oldest_pending_seconds(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn parked_sync(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn last_sync_at(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn providers(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn open_attempts(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn pending_sync(&self) -> zbus::Result<u64>;
    #[zbus(property)]
    fn unresolved_attempts(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn orphaned_attempts(&self) -> zbus::Result<u32>;
}

#[proxy(
    interface = "org.qrpayd.Pay1.Simulator",
    default_service = "org.qrpayd.Pay1",
    default_path = "/org/qrpayd/Pay1"
)]
trait Simulator {
    fn pay(&self, attempt_id: &str, amount: &str) -> zbus::Result<()>;
    fn fail(&self, attempt_id: &str) -> zbus::Result<()>;
    fn set_offline(&self, offline: bool) -> zbus::Result<()>;
}

/// A request argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Str(String),
    U64(u64),
    U32(u32),
    Bool(bool),
    /// `aa{sv}` of string values (checkout items).
    Dicts(Vec<BTreeMap<String, String>>),
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Arg::Str(value.to_owned())
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Arg::Str(value)
    }
}

/// A request map (`a{sv}`).
pub type Request = BTreeMap<String, Arg>;

/// A call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error reply.
    #[error("{name}: {message}")]
    Remote {
        /// The full D-Bus error name (`org.qrpayd.Pay1.Error.InvalidArgument`).
        name: String,
        message: String,
    },
    /// The bus or the daemon could not be reached.
    #[error("cannot reach qrpayd on the {bus} bus: {detail}")]
    Unreachable { bus: String, detail: String },
}

impl ClientError {
    /// The error's short name (`InvalidArgument`), for qrpayd's own errors.
    pub fn short_name(&self) -> Option<&str> {
        match self {
            ClientError::Remote { name, .. } => {
                name.strip_prefix(names::ERROR_PREFIX)?.strip_prefix('.')
            }
            ClientError::Unreachable { .. } => None,
        }
    }

    /// Whether the error is the provider's (unreachable, refused, not configured).
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self.short_name(),
            Some("ProviderUnavailable" | "ProviderRejected" | "ProviderNotConfigured")
        )
    }
}

/// A signal from the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// `TransactionChanged`, `AttemptChanged`, `AttemptUnresolved` or `PropertiesChanged`.
    pub name: String,
    /// The signal's arguments by name.
    pub args: Value,
}

/// A connection to qrpayd.
#[derive(Clone)]
pub struct Client {
    connection: Connection,
    terminal: TerminalProxy<'static>,
    simulator: SimulatorProxy<'static>,
    bus: String,
}

impl Client {
    /// Connects to the bus and binds to the daemon's object (the daemon need not be up yet).
    pub async fn connect(bus: &BusAddress) -> Result<Client, ClientError> {
        let unreachable = |e: zbus::Error| ClientError::Unreachable {
            bus: bus.to_string(),
            detail: e.to_string(),
        };
        let connection = bus.connect().await.map_err(unreachable)?;
        let terminal = TerminalProxy::builder(&connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(unreachable)?;
        let simulator = SimulatorProxy::new(&connection)
            .await
            .map_err(unreachable)?;
        Ok(Client {
            connection,
            terminal,
            simulator,
            bus: bus.to_string(),
        })
    }

    fn error(&self, error: zbus::Error) -> ClientError {
        let remote_name = match &error {
            zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
            zbus::Error::FDO(fdo) => Some(fdo.name().to_string()),
            _ => None,
        };
        // The bus answers for a name nobody owns: the daemon is not running, which is
        // "cannot reach qrpayd", not a refusal by qrpayd.
        if remote_name.as_deref().is_some_and(|name| {
            matches!(
                name,
                "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner"
            )
        }) {
            return self.not_running();
        }
        match error {
            zbus::Error::MethodError(name, message, _) => ClientError::Remote {
                name: name.to_string(),
                message: message.unwrap_or_default(),
            },
            zbus::Error::FDO(fdo) => {
                let name = fdo.name().to_string();
                ClientError::Remote {
                    name,
                    message: fdo.description().unwrap_or_default().to_owned(),
                }
            }
            other => ClientError::Unreachable {
                bus: self.bus.clone(),
                detail: other.to_string(),
            },
        }
    }

    /// Waits until the daemon owns its name on the bus (it does once it is ready), at most
    /// `timeout`.
    pub async fn wait_for_daemon(&self, timeout: std::time::Duration) -> Result<(), ClientError> {
        let dbus = zbus::fdo::DBusProxy::new(&self.connection)
            .await
            .map_err(|e| self.error(e))?;
        let name = zbus::names::BusName::try_from(names::BUS_NAME).map_err(|e| self.error(e))?;
        // Subscribe first, then ask: an owner that appears in between is not missed.
        let mut changes = dbus
            .receive_name_owner_changed_with_args(&[(0, names::BUS_NAME)])
            .await
            .map_err(|e| self.error(e))?;
        if dbus
            .name_has_owner(name)
            .await
            .map_err(|e| self.error(zbus::Error::FDO(Box::new(e))))?
        {
            return Ok(());
        }
        let appeared = tokio::time::timeout(timeout, async {
            while let Some(change) = changes.next().await {
                if change.args().is_ok_and(|args| args.new_owner().is_some()) {
                    return true;
                }
            }
            false
        })
        .await;
        match appeared {
            Ok(true) => Ok(()),
            _ => Err(ClientError::Unreachable {
                bus: self.bus.clone(),
                detail: format!("{} did not appear within {timeout:?}", names::BUS_NAME),
            }),
        }
    }

    /// `Checkout`.
    pub async fn checkout(&self, request: &Request) -> Result<Value, ClientError> {
        let reply = self.terminal.checkout(to_dict(request)?).await;
        self.reply(reply)
    }

    /// `ConfirmSystemPayment`.
    pub async fn confirm_system_payment(&self, request: &Request) -> Result<Value, ClientError> {
        let reply = self
            .terminal
            .confirm_system_payment(to_dict(request)?)
            .await;
        self.reply(reply)
    }

    /// `Cancel`.
    pub async fn cancel(&self, request: &Request) -> Result<Value, ClientError> {
        let reply = self.terminal.cancel(to_dict(request)?).await;
        self.reply(reply)
    }

    /// `Verify`.
    pub async fn verify(&self, attempt_id: &str) -> Result<Value, ClientError> {
        let reply = self.terminal.verify(attempt_id).await;
        self.reply(reply)
    }

    /// `Refund`.
    pub async fn refund(&self, request: &Request) -> Result<Value, ClientError> {
        let reply = self.terminal.refund(to_dict(request)?).await;
        self.reply(reply)
    }

    /// `GetTransaction`.
    pub async fn get_transaction(&self, id_or_number: &str) -> Result<Value, ClientError> {
        let reply = self.terminal.get_transaction(id_or_number).await;
        self.reply(reply)
    }

    /// `ListTransactions`.
    pub async fn list_transactions(&self, filter: &Request) -> Result<Value, ClientError> {
        let reply = self
            .terminal
            .list_transactions(to_dict(filter)?)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Value::Array(reply.iter().map(dict_to_json).collect()))
    }

    /// `CountTransactions`.
    pub async fn count_transactions(&self, filter: &Request) -> Result<u64, ClientError> {
        self.terminal
            .count_transactions(to_dict(filter)?)
            .await
            .map_err(|e| self.error(e))
    }

    /// `Reconcile`.
    pub async fn reconcile(&self, request: &Request) -> Result<Value, ClientError> {
        let reply = self
            .terminal
            .reconcile(to_dict(request)?)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Value::Array(reply.iter().map(dict_to_json).collect()))
    }

    /// The upstream sync's properties: `state`, `pending`, `oldest_pending_seconds`, `parked`,
    /// `last_sync_at` (empty when never).
    pub async fn sync_status(&self) -> Result<Value, ClientError> {
        let t = &self.terminal;
        let state = t.sync_state().await.map_err(|e| self.error(e))?;
        let pending = t.pending_sync().await.map_err(|e| self.error(e))?;
        let oldest = t
            .oldest_pending_seconds()
            .await
            .map_err(|e| self.error(e))?;
        let parked = t.parked_sync().await.map_err(|e| self.error(e))?;
        let last = t.last_sync_at().await.map_err(|e| self.error(e))?;
        Ok(serde_json::json!({
            "state": state,
            "pending": pending,
            "oldest_pending_seconds": oldest,
            "parked": parked,
            "last_sync_at": last,
        }))
    }

    /// `SyncNow`.
    pub async fn sync_now(&self) -> Result<(), ClientError> {
        self.terminal.sync_now().await.map_err(|e| self.error(e))
    }

    /// `ListParkedSync`.
    pub async fn list_parked_sync(&self) -> Result<Value, ClientError> {
        let reply = self
            .terminal
            .list_parked_sync()
            .await
            .map_err(|e| self.error(e))?;
        Ok(Value::Array(reply.iter().map(dict_to_json).collect()))
    }

    /// `RetrySync`: one parked event (`Some(seq)`) or all of them. Returns how many.
    pub async fn retry_sync(&self, seq: Option<i64>) -> Result<u64, ClientError> {
        self.terminal
            .retry_sync(seq.unwrap_or(0))
            .await
            .map_err(|e| self.error(e))
    }

    /// The daemon's properties: `Version`, `Providers`, `OpenAttempts`, `PendingSync`.
    pub async fn status(&self) -> Result<Value, ClientError> {
        let version = self.terminal.version().await.map_err(|e| self.error(e))?;
        let providers = self.terminal.providers().await.map_err(|e| self.error(e))?;
        let open = self
            .terminal
            .open_attempts()
            .await
            .map_err(|e| self.error(e))?;
        let pending = self
            .terminal
            .pending_sync()
            .await
            .map_err(|e| self.error(e))?;
        let unresolved = self
            .terminal
            .unresolved_attempts()
            .await
            .map_err(|e| self.error(e))?;
        let orphaned = self
            .terminal
            .orphaned_attempts()
            .await
            .map_err(|e| self.error(e))?;
        Ok(serde_json::json!({
            "version": version,
            "providers": providers,
            "open_attempts": open,
            "pending_sync": pending,
            "unresolved_attempts": unresolved,
            "orphaned_attempts": orphaned,
        }))
    }

    /// Simulator: pay `amount` (empty: the rest) of the attempt.
    pub async fn simulate_pay(&self, attempt_id: &str, amount: &str) -> Result<(), ClientError> {
        self.simulator
            .pay(attempt_id, amount)
            .await
            .map_err(|e| self.error(e))
    }

    /// Simulator: fail the attempt.
    pub async fn simulate_fail(&self, attempt_id: &str) -> Result<(), ClientError> {
        self.simulator
            .fail(attempt_id)
            .await
            .map_err(|e| self.error(e))
    }

    /// Simulator: play offline or come back.
    pub async fn simulate_offline(&self, offline: bool) -> Result<(), ClientError> {
        self.simulator
            .set_offline(offline)
            .await
            .map_err(|e| self.error(e))
    }

    /// The daemon's signals, in the order it sent them. The subscription is in place when this
    /// returns, so nothing sent afterwards is missed.
    pub async fn watch(&self) -> Result<impl Stream<Item = Signal> + Unpin + use<>, ClientError> {
        let rule = MatchRule::builder()
            .msg_type(MessageType::Signal)
            .path(names::OBJECT_PATH)
            .build()
            .map_err(|e| self.error(e))?;
        let stream = MessageStream::for_match_rule(
            rule,
            &self.connection,
            std::num::NonZeroUsize::new(4096),
        )
        .await
        .map_err(|e| self.error(e))?;
        Ok(Box::pin(stream.filter_map(|message| async move {
            decode_signal(&message.ok()?)
        })))
    }

    /// The daemon's comings and goings on the bus (`NameOwnerChanged` of its name): `false`
    /// when it leaves (stopped, crashed), `true` when it is back. The subscription is in place
    /// when this returns.
    pub async fn presence(&self) -> Result<impl Stream<Item = bool> + Unpin + use<>, ClientError> {
        let dbus = zbus::fdo::DBusProxy::new(&self.connection)
            .await
            .map_err(|e| self.error(e))?;
        let changes = dbus
            .receive_name_owner_changed_with_args(&[(0, names::BUS_NAME)])
            .await
            .map_err(|e| self.error(e))?;
        Ok(Box::pin(changes.filter_map(|change| async move {
            change.args().ok().map(|args| args.new_owner().is_some())
        })))
    }

    /// Whether the daemon owns its name on the bus now.
    pub async fn daemon_is_present(&self) -> Result<bool, ClientError> {
        let dbus = zbus::fdo::DBusProxy::new(&self.connection)
            .await
            .map_err(|e| self.error(e))?;
        let name = zbus::names::BusName::try_from(names::BUS_NAME).map_err(|e| self.error(e))?;
        dbus.name_has_owner(name)
            .await
            .map_err(|e| self.error(zbus::Error::FDO(Box::new(e))))
    }

    /// Fails at once, as unreachable, when the daemon does not own its name on the bus: a call
    /// to a name nobody owns is otherwise answered `ServiceUnknown` by some brokers and left to
    /// time out by others.
    pub async fn require_daemon(&self) -> Result<(), ClientError> {
        if self.daemon_is_present().await? {
            Ok(())
        } else {
            Err(self.not_running())
        }
    }

    fn not_running(&self) -> ClientError {
        ClientError::Unreachable {
            bus: self.bus.clone(),
            detail: format!("{} is not running (no owner of its name)", names::BUS_NAME),
        }
    }

    fn reply(&self, reply: zbus::Result<VarDict>) -> Result<Value, ClientError> {
        reply.map(|d| dict_to_json(&d)).map_err(|e| self.error(e))
    }
}

fn decode_signal(message: &zbus::Message) -> Option<Signal> {
    let header = message.header();
    let member = header.member()?.to_string();
    let body = message.body();
    let args = match member.as_str() {
        "TransactionChanged" => {
            let (transaction_id, status, details): (String, String, VarDict) =
                body.deserialize().ok()?;
            serde_json::json!({
                "transaction_id": transaction_id,
                "status": status,
                "details": dict_to_json(&details),
            })
        }
        "AttemptChanged" => {
            let (attempt_id, transaction_id, status, details): (String, String, String, VarDict) =
                body.deserialize().ok()?;
            serde_json::json!({
                "attempt_id": attempt_id,
                "transaction_id": transaction_id,
                "status": status,
                "details": dict_to_json(&details),
            })
        }
        "AttemptUnresolved" => {
            let (attempt_id, transaction_id, details): (String, String, VarDict) =
                body.deserialize().ok()?;
            serde_json::json!({
                "attempt_id": attempt_id,
                "transaction_id": transaction_id,
                "details": dict_to_json(&details),
            })
        }
        "PropertiesChanged" => {
            let (interface, changed, _invalidated): (String, VarDict, Vec<String>) =
                body.deserialize().ok()?;
            serde_json::json!({ "interface": interface, "changed": dict_to_json(&changed) })
        }
        _ => return None,
    };
    Some(Signal { name: member, args })
}

fn to_dict(request: &Request) -> Result<VarDict, ClientError> {
    let mut dict = VarDict::new();
    for (key, arg) in request {
        let value = match arg {
            Arg::Str(s) => Variant::from(s.as_str()),
            Arg::U64(v) => Variant::from(*v),
            Arg::U32(v) => Variant::from(*v),
            Arg::Bool(v) => Variant::from(*v),
            Arg::Dicts(items) => {
                let items: Vec<HashMap<String, String>> = items
                    .iter()
                    .map(|i| i.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .collect();
                let items: Vec<VarDict> = items
                    .into_iter()
                    .map(|i| {
                        i.into_iter()
                            .map(|(k, v)| (k, OwnedVariant::from(zbus::Str::from(v))))
                            .collect()
                    })
                    .collect();
                Variant::from(items)
            }
        };
        let owned = value
            .try_into_owned()
            .map_err(|e| ClientError::Unreachable {
                bus: String::new(),
                detail: e.to_string(),
            })?;
        dict.insert(key.clone(), owned);
    }
    Ok(dict)
}

fn dict_to_json(dict: &VarDict) -> Value {
    let mut object = Map::new();
    let mut keys: Vec<&String> = dict.keys().collect();
    keys.sort();
    for key in keys {
        if let Some(value) = dict.get(key) {
            object.insert(key.clone(), variant_to_json(value));
        }
    }
    Value::Object(object)
}

fn variant_to_json(value: &Variant<'_>) -> Value {
    match value {
        Variant::U8(v) => Value::from(*v),
        Variant::Bool(v) => Value::from(*v),
        Variant::I16(v) => Value::from(*v),
        Variant::U16(v) => Value::from(*v),
        Variant::I32(v) => Value::from(*v),
        Variant::U32(v) => Value::from(*v),
        Variant::I64(v) => Value::from(*v),
        Variant::U64(v) => Value::from(*v),
        // Never money: qrpayd sends amounts as strings.
        Variant::F64(v) => Value::from(*v),
        Variant::Str(s) => Value::from(s.as_str()),
        Variant::Signature(s) => Value::from(s.to_string()),
        Variant::ObjectPath(p) => Value::from(p.as_str()),
        Variant::Variant(inner) => variant_to_json(inner),
        Variant::Array(array) => Value::Array(array.inner().iter().map(variant_to_json).collect()),
        Variant::Dict(dict) => {
            let mut object = Map::new();
            for (k, v) in dict.iter() {
                let key = match k {
                    Variant::Str(s) => s.as_str().to_owned(),
                    other => variant_to_json(other).to_string(),
                };
                object.insert(key, variant_to_json(v));
            }
            Value::Object(object)
        }
        Variant::Structure(s) => Value::Array(s.fields().iter().map(variant_to_json).collect()),
        #[cfg(unix)]
        Variant::Fd(_) => Value::Null,
    }
}
