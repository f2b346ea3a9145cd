//! `org.qrpayd.Pay1.Terminal`: the till's interface. A thin shim: each method reads its
//! arguments, calls one engine method and writes the reply. Methods take `&self`, so a slow
//! provider call never blocks other callers.

use zbus::interface;
use zbus::object_server::SignalEmitter;

use super::args::{self, Reader, RequestMap, VarDict, Writer};
use super::error::PayError;
use crate::domain::model::{MAX_ID_LEN, check_id};
use crate::engine::{
    CheckoutRequest, ConfirmRequest, Engine, EngineError, ItemRequest, ListRequest,
    PaymentInstrument, ReconcileRequest, RefundRequest, Target,
};
use crate::sync::SyncHandle;

/// The till's interface, served at `/org/qrpayd/Pay1`.
pub struct Terminal {
    engine: Engine,
    sync: SyncHandle,
}

impl Terminal {
    pub fn new(engine: Engine, sync: SyncHandle) -> Terminal {
        Terminal { engine, sync }
    }
}

const CHECKOUT_KEYS: &[&str] = &[
    "source_id",
    "source_type",
    "source_uid",
    "amount",
    "currency",
    "provider",
    "method",
    "description",
    "expires_in_ms",
    "allow_partial",
    "items",
    "replace_open",
    "bank_code",
    "card_number",
    "card_holder_name",
    "card_month",
    "card_year",
    "account_number",
    "account_holder_name",
    "identification_number",
];
/// Checkout's keys of a card (method `ATM`), besides `bank_code`.
const CARD_KEYS: &[&str] = &["card_number", "card_holder_name", "card_month", "card_year"];
/// Checkout's keys of a bank account (method `ATM`), besides `bank_code`.
const ACCOUNT_KEYS: &[&str] = &[
    "account_number",
    "account_holder_name",
    "identification_number",
];
const ITEM_KEYS: &[&str] = &["description", "quantity", "unit_price"];
const FILTER_KEYS: &[&str] = &[
    "status",
    "source_type",
    "source_id",
    "since",
    "until",
    "overpaid",
    "limit",
    "offset",
];

/// An id the till sent, checked as every id is (`check_id`: no hidden characters, no surrounding
/// spaces) before the engine looks it up.
fn id(field: &'static str, value: String) -> Result<String, PayError> {
    check_id(field, &value, MAX_ID_LEN).map_err(EngineError::from)?;
    Ok(value)
}

/// An optional id (see [`id`]).
fn optional_id(field: &'static str, value: Option<String>) -> Result<Option<String>, PayError> {
    value.map(|value| id(field, value)).transpose()
}

/// `transaction_id` or `attempt_id`, exactly one of them.
fn target(reader: &Reader<'_>, prefer_attempt: bool) -> Result<Target, PayError> {
    let attempt = optional_id("attempt_id", reader.string("attempt_id")?)?;
    let transaction = optional_id("transaction_id", reader.string("transaction_id")?)?;
    match (attempt, transaction) {
        (Some(_), Some(_)) => Err(PayError::InvalidArgument(
            "give attempt_id or transaction_id, not both".to_owned(),
        )),
        (Some(id), None) => Ok(Target::Attempt(id)),
        (None, Some(id)) => Ok(Target::Transaction(id)),
        (None, None) => Err(PayError::InvalidArgument(if prefer_attempt {
            "attempt_id or transaction_id is required".to_owned()
        } else {
            "transaction_id or attempt_id is required".to_owned()
        })),
    }
}

/// The card or account of a Checkout (method `ATM`): all of a card's keys or all of an
/// account's, with `bank_code`. Only the keys and their types are checked here (errors name the
/// key, never the value); the provider checks the values.
fn instrument(r: &Reader<'_>) -> Result<Option<PaymentInstrument>, PayError> {
    let given = |keys: &[&'static str]| -> Result<Vec<&'static str>, PayError> {
        let mut given = Vec::new();
        for key in keys {
            if r.string(key)?.is_some() {
                given.push(*key);
            }
        }
        Ok(given)
    };
    let card = given(CARD_KEYS)?;
    let account = given(ACCOUNT_KEYS)?;
    let bank_code = r.string("bank_code")?;
    match (card.is_empty(), account.is_empty()) {
        (true, true) if bank_code.is_none() => Ok(None),
        (true, true) => Err(PayError::InvalidArgument(
            "bank_code goes with a card (card_number, ...) or an account (account_number, ...)"
                .to_owned(),
        )),
        (false, false) => Err(PayError::InvalidArgument(format!(
            "give a card or an account, not both ({} and {})",
            card.join(", "),
            account.join(", ")
        ))),
        (false, true) => Ok(Some(PaymentInstrument::Card {
            bank_code: r.required_string("bank_code")?,
            number: r.required_string("card_number")?,
            holder_name: r.required_string("card_holder_name")?,
            month: r.required_string("card_month")?,
            year: r.required_string("card_year")?,
        })),
        (true, false) => Ok(Some(PaymentInstrument::Account {
            bank_code: r.required_string("bank_code")?,
            number: r.required_string("account_number")?,
            holder_name: r.required_string("account_holder_name")?,
            identification_number: r.required_string("identification_number")?,
        })),
    }
}

fn filter(map: &RequestMap) -> Result<ListRequest, PayError> {
    let r = Reader::new(map, FILTER_KEYS)?;
    Ok(ListRequest {
        status: r.string("status")?,
        source_type: optional_id("source_type", r.string("source_type")?)?,
        source_id: optional_id("source_id", r.string("source_id")?)?,
        since: r.string("since")?,
        until: r.string("until")?,
        overpaid: r.boolean("overpaid")?,
        limit: r.unsigned32("limit")?,
        offset: r.unsigned32("offset")?,
    })
}

#[interface(name = "org.qrpayd.Pay1.Terminal")]
impl Terminal {
    /// Takes a QR (or cash) payment for a source, or with method `ATM` a payment with the
    /// customer's card (`bank_code`, `card_number`, `card_holder_name`, `card_month`,
    /// `card_year`) or bank account (`bank_code`, `account_number`, `account_holder_name`,
    /// `identification_number`), which are used once and never stored. Idempotent on
    /// (source_type, source_id): the same open order returns the same transaction and attempt.
    async fn checkout(&self, request: RequestMap) -> Result<VarDict, PayError> {
        let r = Reader::new(&request, CHECKOUT_KEYS)?;
        let mut items = Vec::new();
        for item in r.dicts("items")? {
            let i = Reader::new(item, ITEM_KEYS)?;
            items.push(ItemRequest {
                description: i.required_string("description")?,
                quantity: i.string("quantity")?.unwrap_or_else(|| "1".to_owned()),
                unit_price: i.required_string("unit_price")?,
            });
        }
        let request = CheckoutRequest {
            source_id: r.required_string("source_id")?,
            source_type: r.string("source_type")?,
            source_uid: r.string("source_uid")?,
            amount: r.required_string("amount")?,
            currency: r.string("currency")?,
            provider: r.string("provider")?,
            method: r.string("method")?,
            description: r.string("description")?,
            expires_in_ms: r.unsigned("expires_in_ms")?,
            allow_partial: r.boolean("allow_partial")?,
            items,
            replace_open: r.boolean("replace_open")?,
            instrument: instrument(&r)?,
        };
        let reply = self.engine.checkout(request).await?;
        let (t, a) = (&reply.transaction, &reply.attempt);
        args::transaction_fields(Writer::new(), t)
            .str("attempt_id", &a.id)
            .str("attempt_code", &a.code)
            .str("attempt_status", a.status.code())
            .str("provider", &a.provider)
            .str("method", &a.method)
            .str("amount", crate::domain::format_amount(a.amount))
            .opt_str("qr_text", a.qr_text.clone())
            .opt_str("short_url", a.short_url.clone())
            .opt_str(
                "display_png",
                reply.display_png.map(|p| p.display().to_string()),
            )
            .opt_str("expires_at", a.expires_at.map(args::time))
            .value("deep_links", args::deep_links(a))
            .finish()
    }

    /// Records money the cashier took (cash): `transaction_id` or `attempt_id`, `tendered`,
    /// `note`. Replies with the `change`.
    async fn confirm_system_payment(&self, request: RequestMap) -> Result<VarDict, PayError> {
        let r = Reader::new(
            &request,
            &["transaction_id", "attempt_id", "tendered", "note"],
        )?;
        let request = ConfirmRequest {
            target: target(&r, false)?,
            tendered: r.required_string("tendered")?,
            note: r.string("note")?,
        };
        let reply = self.engine.confirm_system_payment(request).await?;
        Writer::new()
            .str("transaction_id", &reply.transaction.id)
            .str("transaction_status", reply.transaction.status.code())
            .str("paid", crate::domain::format_amount(reply.transaction.paid))
            .str("attempt_id", &reply.attempt.id)
            .str("attempt_status", reply.attempt.status.code())
            .opt_str(
                "tendered",
                reply.attempt.tendered.map(crate::domain::format_amount),
            )
            .str("change", crate::domain::format_amount(reply.change))
            .finish()
    }

    /// Cancels one attempt (`attempt_id`) or a transaction with all its open attempts
    /// (`transaction_id`), with an optional `reason`.
    async fn cancel(&self, request: RequestMap) -> Result<VarDict, PayError> {
        let r = Reader::new(&request, &["transaction_id", "attempt_id", "reason"])?;
        let reply = self
            .engine
            .cancel(target(&r, true)?, r.string("reason")?)
            .await?;
        let cancelled = reply
            .cancelled
            .iter()
            .map(|a| {
                Writer::new()
                    .str("id", &a.id)
                    .str("code", &a.code)
                    .str("type", a.kind.code())
                    .str("status", a.status.code())
                    .opt_str("parent_id", a.parent_id.clone())
                    .finish()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Writer::new()
            .str("transaction_id", &reply.transaction.id)
            .str("transaction_status", reply.transaction.status.code())
            .value("cancelled_attempts", cancelled)
            .finish()
    }

    /// Checks an attempt with its provider now.
    async fn verify(&self, attempt_id: &str) -> Result<VarDict, PayError> {
        let attempt_id = id("attempt_id", attempt_id.to_owned())?;
        let reply = self.engine.verify(&attempt_id).await?;
        Writer::new()
            .str("attempt_id", &reply.attempt.id)
            .str("attempt_status", reply.attempt.status.code())
            .str("provider", &reply.attempt.provider)
            .str("provider_code", reply.provider_code)
            .str("provider_message", reply.provider_message)
            .str("paid", crate::domain::format_amount(reply.attempt.paid))
            .finish()
    }

    /// Refunds `amount` of a successful payment attempt (`attempt_id`), with a `reason`. With
    /// `request_id`, repeating the call answers the same refund instead of refunding again. A
    /// refund whose outcome is not known yet is answered with `status` `204_SENT`; its
    /// `AttemptChanged` follows.
    async fn refund(&self, request: RequestMap) -> Result<VarDict, PayError> {
        let r = Reader::new(&request, &["attempt_id", "amount", "reason", "request_id"])?;
        let request = RefundRequest {
            attempt_id: id("attempt_id", r.required_string("attempt_id")?)?,
            amount: r.required_string("amount")?,
            reason: r.string("reason")?,
            request_id: optional_id("request_id", r.string("request_id")?)?,
        };
        let reply = self.engine.refund(request).await?;
        let a = &reply.refund;
        Writer::new()
            .str("refund_attempt_id", &a.id)
            .str("refund_attempt_code", &a.code)
            .str("type", a.kind.code())
            .str("status", a.status.code())
            .str("amount", crate::domain::format_amount(a.amount))
            .opt_str("parent_id", a.parent_id.clone())
            .opt_str("request_id", a.request_id.clone())
            .finish()
    }

    /// A transaction by id or number, with its `attempts` and `payments`.
    async fn get_transaction(&self, id_or_number: &str) -> Result<VarDict, PayError> {
        let id_or_number = id("id", id_or_number.to_owned())?;
        let view = self.engine.get_transaction(&id_or_number).await?;
        let attempts = view
            .attempts
            .iter()
            .map(args::attempt_dict)
            .collect::<Result<Vec<_>, _>>()?;
        let payments = view
            .payments
            .iter()
            .map(args::payment_dict)
            .collect::<Result<Vec<_>, _>>()?;
        args::transaction_fields(Writer::new(), &view.transaction)
            .value("items", args::items(&view.transaction)?)
            .value("attempts", attempts)
            .value("payments", payments)
            .finish()
    }

    /// Transactions matching `filter` (`status`, `source_type`, `source_id`, `since`, `until`,
    /// `limit` default 50 max 500, `offset`), newest first.
    async fn list_transactions(&self, filter_map: RequestMap) -> Result<Vec<VarDict>, PayError> {
        let transactions = self.engine.list_transactions(filter(&filter_map)?).await?;
        transactions
            .iter()
            .map(|t| args::transaction_fields(Writer::new(), t).finish())
            .collect()
    }

    /// How many transactions match `filter` (limit and offset ignored).
    async fn count_transactions(&self, filter_map: RequestMap) -> Result<u64, PayError> {
        Ok(self.engine.count_transactions(filter(&filter_map)?).await?)
    }

    /// Compares the provider's payments of a day (`provider` s, `date` s `YYYY-MM-DD`) with the
    /// local records; `record_missing` b records what the store lacks, by checking the invoice
    /// it paid. One row per payment: `payment_id`, `invoice_id`, `provider_amount`,
    /// `provider_status`, `local_amount`, `attempt_id`, `transaction_id`, `verdict` (`matched`,
    /// `missing`, `amount_differs`, `local_only`, `recorded`).
    async fn reconcile(&self, request: RequestMap) -> Result<Vec<VarDict>, PayError> {
        let r = Reader::new(&request, &["provider", "date", "record_missing"])?;
        let request = ReconcileRequest {
            provider: r.required_string("provider")?,
            date: r.required_string("date")?,
            record_missing: r.boolean("record_missing")?.unwrap_or(false),
        };
        let rows = self.engine.reconcile(request).await?;
        rows.iter()
            .map(|row| {
                Writer::new()
                    .str("payment_id", &row.payment_id)
                    .opt_str("invoice_id", row.invoice_id.clone())
                    .opt_str(
                        "provider_amount",
                        row.provider_amount.map(crate::domain::format_amount),
                    )
                    .opt_str("provider_status", row.provider_status.clone())
                    .opt_str(
                        "local_amount",
                        row.local_amount.map(crate::domain::format_amount),
                    )
                    .opt_str("attempt_id", row.attempt_id.clone())
                    .opt_str("transaction_id", row.transaction_id.clone())
                    .str("verdict", row.verdict.code())
                    .finish()
            })
            .collect()
    }

    /// Wakes the upstream sync at once, through any back-off or pause.
    async fn sync_now(&self) -> Result<(), PayError> {
        Ok(self.sync.sync_now()?)
    }

    /// The events the back office refused for good, oldest first: `seq` x, `transaction_id`,
    /// `transaction_number`, `kind`, `answer` (the back office's status, code and message),
    /// `parked_at`. Each blocks its own transaction's later events until it is retried.
    async fn list_parked_sync(&self) -> Result<Vec<VarDict>, PayError> {
        super::sync::parked_rows(&self.sync.parked().await?)
    }

    /// Sends a parked event again (`seq`), or every parked event (`seq` 0). Replies with how
    /// many were released.
    async fn retry_sync(&self, seq: i64) -> Result<u64, PayError> {
        Ok(self.sync.retry((seq != 0).then_some(seq)).await?)
    }

    /// A transaction or its status changed.
    #[zbus(signal)]
    pub async fn transaction_changed(
        emitter: &SignalEmitter<'_>,
        transaction_id: &str,
        status: &str,
        details: VarDict,
    ) -> zbus::Result<()>;

    /// An attempt or its status changed.
    #[zbus(signal)]
    pub async fn attempt_changed(
        emitter: &SignalEmitter<'_>,
        attempt_id: &str,
        transaction_id: &str,
        status: &str,
        details: VarDict,
    ) -> zbus::Result<()>;

    /// A provider call on an attempt has had no known outcome for longer than the daemon's
    /// `unknown_outcome_alert_after_ms` (the provider unreachable); qrpayd keeps retrying.
    /// Details: `seq`, `attempt_code`, `type`, `provider`, `status`, `since`, `reason`.
    #[zbus(signal)]
    pub async fn attempt_unresolved(
        emitter: &SignalEmitter<'_>,
        attempt_id: &str,
        transaction_id: &str,
        details: VarDict,
    ) -> zbus::Result<()>;

    /// The daemon's version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    /// The enabled providers (`system` is cash, always there).
    #[zbus(property(emits_changed_signal = "const"))]
    fn providers(&self) -> Vec<String> {
        self.engine.provider_names()
    }

    /// How many payment attempts may still take money: open, or with an invoice not yet
    /// closed at the provider.
    #[zbus(property)]
    async fn open_attempts(&self) -> zbus::fdo::Result<u32> {
        self.engine
            .open_attempts()
            .await
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))
    }

    /// How many outbox events the back office has not accepted yet, parked ones included (0
    /// when everything was delivered).
    #[zbus(property)]
    async fn pending_sync(&self) -> zbus::fdo::Result<u64> {
        self.engine
            .pending_sync()
            .await
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))
    }

    /// The upstream sync: `disabled` (no `[upstream]`), `idle`, `syncing`, `offline` (retrying
    /// with back-off), `paused-auth` (the back office refuses the API key; retried every five
    /// minutes).
    #[zbus(property)]
    fn sync_state(&self) -> String {
        self.sync.status().state.name().to_owned()
    }

    /// Seconds since the oldest event the back office has not accepted was queued; 0 when none.
    #[zbus(property)]
    async fn oldest_pending_seconds(&self) -> zbus::fdo::Result<u64> {
        self.sync
            .oldest_pending_seconds()
            .await
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))
    }

    /// How many events the back office refused for good (`ListParkedSync`, `RetrySync`).
    #[zbus(property)]
    async fn parked_sync(&self) -> zbus::fdo::Result<u64> {
        self.sync
            .parked_count()
            .await
            .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))
    }

    /// When the back office last accepted a request (RFC 3339); empty if never.
    #[zbus(property)]
    fn last_sync_at(&self) -> String {
        super::sync::last_sync_at(&self.sync)
    }

    /// How many attempts have had a provider call with no known outcome for too long.
    #[zbus(property)]
    fn unresolved_attempts(&self) -> u32 {
        self.engine.unresolved_attempts()
    }

    /// How many unfinished attempts belong to providers no longer configured (left alone).
    #[zbus(property)]
    fn orphaned_attempts(&self) -> u32 {
        self.engine.orphaned_attempts()
    }
}
