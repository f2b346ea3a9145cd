//! The records as the back office receives them: MQ-Pay's camelCase names, amounts as decimal
//! strings with four places, times in RFC 3339 UTC, records keyed by qrpayd's own ids. The
//! README's "Upstream sync" section is this file in prose; change both or neither.
//!
//! Nothing else of a record is ever sent: no QR text, invoice URL, deep link, card or account
//! data, token or note.

use serde_json::{Map, Value, json};

use crate::domain::format_amount;
use crate::domain::{Attempt, Item, OutboxRecord, PaymentResult, Timestamp, Transaction};
use crate::providers::http::encode_component;
use crate::store::TransactionRecords;

/// One record the back office holds, named as in its URL paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordKey {
    Transaction,
    Item(i64),
    Attempt(String),
    Payment(i64),
}

impl RecordKey {
    /// The records one outbox event asks to send: its own, or for an event of a qrpayd before
    /// the sync, every record of the transaction, parents first.
    pub fn of_event(record: &OutboxRecord, records: &TransactionRecords) -> Vec<RecordKey> {
        match record {
            OutboxRecord::Transaction => vec![RecordKey::Transaction],
            OutboxRecord::Item(position) => vec![RecordKey::Item(*position)],
            OutboxRecord::Attempt(id) => vec![RecordKey::Attempt(id.clone())],
            OutboxRecord::Payment(id) => vec![RecordKey::Payment(*id)],
            OutboxRecord::WholeTransaction => {
                let mut keys = vec![RecordKey::Transaction];
                keys.extend((0..records.transaction.items.len() as i64).map(RecordKey::Item));
                keys.extend(
                    records
                        .attempts
                        .iter()
                        .map(|a| RecordKey::Attempt(a.id.clone())),
                );
                keys.extend(
                    records
                        .payments
                        .iter()
                        .map(|(id, _)| RecordKey::Payment(*id)),
                );
                keys
            }
        }
    }
}

/// What one request needs: its collection path, the record's id, and its full body.
#[derive(Debug, Clone, PartialEq)]
pub struct WireRecord {
    /// `/transactions`, `/transaction-items`, `/payment-attempts`, `/payment-results`.
    pub collection: &'static str,
    pub id: String,
    /// Every field the back office holds of it.
    pub body: Value,
    /// The back office made the record itself (a sale its gateway took): it is only ever
    /// patched with what the back office does not know, never created.
    pub patch_only: bool,
}

/// How a transaction meets a back office that is also the MQ-Pay its gateway provider takes
/// payments through. MQ-Pay makes the gateway's attempts, their payment results and refunds
/// itself, under its own ids, and keys the sale by its source: `sourceId` is qrpayd's
/// transaction id, as the gateway's checkout sends it. So the sync sends the transaction under
/// that same source (the till's own reference goes in `sourceUid`), whichever comes first,
/// and once a checkout made or found MQ-Pay's transaction it only patches that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLink {
    /// MQ-Pay's id of the transaction, once a gateway checkout made or found it.
    pub transaction_id: Option<String>,
    /// The provider whose attempts MQ-Pay makes itself (`mqpay`).
    pub provider: &'static str,
}

/// What becomes of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// Sent as this record.
    Send(WireRecord),
    /// The back office made it itself and knows it: nothing to send.
    Known,
}

impl WireRecord {
    /// The record's own path, for a PATCH.
    pub fn path(&self) -> String {
        format!("{}/{}", self.collection, encode_component(&self.id))
    }

    /// A PATCH body of the fields that changed (MQ-Pay's names) and `updatedAt`; the whole
    /// record less its id when the changes are not known.
    pub fn patch(&self, changed: &[&str]) -> Value {
        let Some(full) = self.body.as_object() else {
            return self.body.clone();
        };
        let mut patch = Map::new();
        let wanted: Vec<&str> = changed
            .iter()
            .flat_map(|field| match *field {
                "failure" => vec!["failureCode", "failureMessage"],
                other => vec![other],
            })
            .chain(["updatedAt"])
            .collect();
        for (key, value) in full {
            let keep = if changed.is_empty() {
                key != "id"
            } else {
                wanted.contains(&key.as_str())
            };
            if keep {
                patch.insert(key.clone(), value.clone());
            }
        }
        Value::Object(patch)
    }
}

/// The record `key` names as it stands in `records`, linked to MQ-Pay's own records when
/// `link` says the sale was made through the gateway of this same MQ-Pay; `None` when it is
/// not there.
pub fn record(
    key: &RecordKey,
    records: &TransactionRecords,
    link: Option<&GatewayLink>,
) -> Option<Outgoing> {
    let t = &records.transaction;
    let linked = link.and_then(|link| link.transaction_id.as_deref());
    let transaction_id = linked.unwrap_or(t.id.as_str());
    let made_by_gateway = |provider: &str| link.is_some_and(|link| link.provider == provider);
    match key {
        RecordKey::Transaction => Some(Outgoing::Send(match (link, linked) {
            (_, Some(upstream_id)) => linked_transaction(t, upstream_id),
            (Some(_), None) => keyed_as_the_gateway_keys_it(transaction(t), t),
            (None, None) => transaction(t),
        })),
        RecordKey::Item(position) => usize::try_from(*position)
            .ok()
            .and_then(|p| t.items.get(p))
            .map(|item| Outgoing::Send(self::item(t, transaction_id, *position, item))),
        RecordKey::Attempt(id) => records.attempts.iter().find(|a| &a.id == id).map(|a| {
            if made_by_gateway(&a.provider) {
                Outgoing::Known
            } else {
                Outgoing::Send(attempt(a, transaction_id))
            }
        }),
        RecordKey::Payment(row) => {
            records
                .payments
                .iter()
                .find(|(id, _)| id == row)
                .map(|(id, p)| {
                    if made_by_gateway(&p.provider) {
                        Outgoing::Known
                    } else {
                        Outgoing::Send(payment(t, transaction_id, *id, p))
                    }
                })
        }
    }
}

fn time(at: Timestamp) -> String {
    at.to_rfc3339()
}

/// What the back office does not know of a sale its gateway made: the terminal's number for
/// it, the terminal, and the till's own reference (MQ-Pay's `sourceId` is qrpayd's transaction
/// id, which the gateway's look-ups rely on, so it is left as it is).
fn linked_transaction(t: &Transaction, upstream_id: &str) -> WireRecord {
    WireRecord {
        collection: "/transactions",
        id: upstream_id.to_owned(),
        body: json!({
            "id": upstream_id,
            "number": t.number,
            "terminalId": t.terminal_id,
            "sourceUid": t.source.uid.clone().unwrap_or_else(|| t.source.id.clone()),
            "updatedAt": time(t.updated_at),
        }),
        patch_only: true,
    }
}

/// A transaction under the source the gateway's checkout sends (`sourceId` qrpayd's
/// transaction id), so that a later checkout of the sale finds it rather than make another.
fn keyed_as_the_gateway_keys_it(mut record: WireRecord, t: &Transaction) -> WireRecord {
    record.body["sourceId"] = json!(t.id);
    record.body["sourceUid"] = json!(t.source.uid.clone().unwrap_or_else(|| t.source.id.clone()));
    record
}

fn transaction(t: &Transaction) -> WireRecord {
    WireRecord {
        patch_only: false,
        collection: "/transactions",
        id: t.id.clone(),
        body: json!({
            "id": t.id,
            "number": t.number,
            "terminalId": t.terminal_id,
            "sourceType": t.source.kind,
            "sourceId": t.source.id,
            "sourceUid": t.source.uid,
            "status": t.status.code(),
            "currency": t.currency.code(),
            "total": format_amount(t.total),
            "paid": format_amount(t.paid),
            "refunded": format_amount(t.refunded),
            "createdAt": time(t.created_at),
            "updatedAt": time(t.updated_at),
        }),
    }
}

/// An item's id: its transaction's id and its position (`<transaction id>-<position>`).
fn item(t: &Transaction, transaction_id: &str, position: i64, item: &Item) -> WireRecord {
    let id = format!("{}-{position}", t.id);
    WireRecord {
        collection: "/transaction-items",
        patch_only: false,
        body: json!({
            "id": id,
            "transactionId": transaction_id,
            "description": item.description,
            "quantity": item.quantity.normalize().to_string(),
            "unitPrice": format_amount(item.unit_price),
        }),
        id,
    }
}

fn attempt(a: &Attempt, transaction_id: &str) -> WireRecord {
    WireRecord {
        collection: "/payment-attempts",
        id: a.id.clone(),
        patch_only: false,
        body: json!({
            "id": a.id,
            "transactionId": transaction_id,
            "code": a.code,
            "type": a.kind.code(),
            "status": a.status.code(),
            "provider": a.provider,
            "method": a.method,
            "amount": format_amount(a.amount),
            "paid": format_amount(a.paid),
            "parentId": a.parent_id,
            "failureCode": a.failure.as_ref().map(|f| f.code.clone()),
            "failureMessage": a.failure.as_ref().map(|f| f.message.clone()),
            "expiresAt": a.expires_at.map(time),
            "createdAt": time(a.created_at),
            "updatedAt": time(a.updated_at),
        }),
    }
}

/// A payment result's id: its attempt's id and the result's number on this terminal
/// (`<attempt id>-<n>`).
fn payment(t: &Transaction, transaction_id: &str, row: i64, p: &PaymentResult) -> WireRecord {
    let id = format!("{}-{row}", p.attempt_id);
    WireRecord {
        collection: "/payment-results",
        patch_only: false,
        body: json!({
            "id": id,
            "attemptId": p.attempt_id,
            "transactionId": transaction_id,
            "provider": p.provider,
            "providerPaymentId": p.provider_payment_id,
            "amount": format_amount(p.amount),
            "currency": t.currency.code(),
            "paidAt": time(p.paid_at.unwrap_or(p.observed_at)),
        }),
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_has_the_changed_fields_and_the_update_time() {
        let record = WireRecord {
            collection: "/payment-attempts",
            id: "a 1".into(),
            body: json!({"id": "a 1", "status": "500_FAIL", "paid": "0.0000",
                         "failureCode": "X", "failureMessage": "y", "updatedAt": "t"}),
            patch_only: false,
        };
        assert_eq!(record.path(), "/payment-attempts/a%201");
        assert_eq!(
            record.patch(&["status", "failure"]),
            json!({"status": "500_FAIL", "failureCode": "X", "failureMessage": "y",
                   "updatedAt": "t"})
        );
        assert_eq!(
            record.patch(&[]),
            json!({"status": "500_FAIL", "paid": "0.0000", "failureCode": "X",
                   "failureMessage": "y", "updatedAt": "t"})
        );
    }
}
