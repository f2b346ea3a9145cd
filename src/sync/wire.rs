//! The records as the back office receives them: MQ-Pay's camelCase names, amounts as decimal
//! strings with four places, times in RFC 3339 UTC, records keyed by qrpayd's own ids. The
//! README's "Upstream sync" section is this file in prose; change both or neither.
//!
//! Nothing else of a record is ever sent: no QR text, invoice URL, deep link, card or account
//! data, token or note.

use serde_json::{Map, Value, json};

use crate::domain::format_amount;
use crate::domain::{Attempt, Item, OutboxRecord, PaymentResult, Timestamp, Transaction};
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
}

impl WireRecord {
    /// The record's own path, for a PATCH.
    pub fn path(&self) -> String {
        format!("{}/{}", self.collection, percent_encode(&self.id))
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

/// The record `key` names as it stands in `records`; `None` when it is not there.
pub fn record(key: &RecordKey, records: &TransactionRecords) -> Option<WireRecord> {
    let t = &records.transaction;
    match key {
        RecordKey::Transaction => Some(transaction(t)),
        RecordKey::Item(position) => usize::try_from(*position)
            .ok()
            .and_then(|p| t.items.get(p))
            .map(|item| self::item(t, *position, item)),
        RecordKey::Attempt(id) => records.attempts.iter().find(|a| &a.id == id).map(attempt),
        RecordKey::Payment(row) => records
            .payments
            .iter()
            .find(|(id, _)| id == row)
            .map(|(id, p)| payment(t, *id, p)),
    }
}

fn time(at: Timestamp) -> String {
    at.to_rfc3339()
}

fn transaction(t: &Transaction) -> WireRecord {
    WireRecord {
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
fn item(t: &Transaction, position: i64, item: &Item) -> WireRecord {
    let id = format!("{}-{position}", t.id);
    WireRecord {
        collection: "/transaction-items",
        body: json!({
            "id": id,
            "transactionId": t.id,
            "description": item.description,
            "quantity": item.quantity.normalize().to_string(),
            "unitPrice": format_amount(item.unit_price),
        }),
        id,
    }
}

fn attempt(a: &Attempt) -> WireRecord {
    WireRecord {
        collection: "/payment-attempts",
        id: a.id.clone(),
        body: json!({
            "id": a.id,
            "transactionId": a.transaction_id,
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
fn payment(t: &Transaction, row: i64, p: &PaymentResult) -> WireRecord {
    let id = format!("{}-{row}", p.attempt_id);
    WireRecord {
        collection: "/payment-results",
        body: json!({
            "id": id,
            "attemptId": p.attempt_id,
            "transactionId": t.id,
            "provider": p.provider,
            "providerPaymentId": p.provider_payment_id,
            "amount": format_amount(p.amount),
            "currency": t.currency.code(),
            "paidAt": time(p.paid_at.unwrap_or(p.observed_at)),
        }),
        id,
    }
}

/// An id as one path segment: everything but unreserved characters percent-encoded.
fn percent_encode(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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
