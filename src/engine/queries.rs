//! The till's look-ups: one transaction with its attempts and payments, lists and counts.

use super::{Engine, EngineError, ListRequest, Target, TransactionView};
use crate::domain::model::{MAX_ID_LEN, check_id, quote_for_error};
use crate::domain::{Timestamp, Transaction, TransactionFilter, TransactionStatus};

impl Engine {
    /// A transaction by id or number, with its attempts and recorded payments.
    pub async fn get_transaction(
        &self,
        id_or_number: &str,
    ) -> Result<TransactionView, EngineError> {
        check_id("id", id_or_number, MAX_ID_LEN)?;
        let key = id_or_number.to_owned();
        self.read(move |tx| {
            let transaction = match tx.transaction(&key)? {
                Some(t) => t,
                None => tx.transaction_by_number(&key)?.ok_or_else(|| {
                    EngineError::TransactionNotFound(format!("no transaction {key}"))
                })?,
            };
            let attempts = tx.attempts_of(&transaction.id)?;
            let mut payments = Vec::new();
            for attempt in &attempts {
                payments.extend(tx.payment_results_of(&attempt.id)?);
            }
            Ok(TransactionView {
                transaction,
                attempts,
                payments,
            })
        })
        .await
    }

    /// The attempt id that `id_or_code` names: an attempt id as it is, or the id of the attempt
    /// with that code (`ATT000001`, as the daemon's messages and `qrpayctl` show attempts). A
    /// code no attempt has is given back unchanged, so the caller's look-up fails naming it.
    pub async fn attempt_id_of(&self, id_or_code: &str) -> Result<String, EngineError> {
        check_id("attempt_id", id_or_code, MAX_ID_LEN)?;
        if !is_attempt_code(id_or_code) {
            return Ok(id_or_code.to_owned());
        }
        let code = id_or_code.to_owned();
        let id = self
            .read(move |tx| Ok(tx.attempt_id_by_code(&code)?))
            .await?;
        Ok(id.unwrap_or_else(|| id_or_code.to_owned()))
    }

    /// `target` with an attempt named by its code turned into the attempt's id.
    pub async fn resolve_target(&self, target: Target) -> Result<Target, EngineError> {
        Ok(match target {
            Target::Attempt(id_or_code) => Target::Attempt(self.attempt_id_of(&id_or_code).await?),
            transaction => transaction,
        })
    }

    /// Transactions matching the filter, newest first.
    pub async fn list_transactions(
        &self,
        request: ListRequest,
    ) -> Result<Vec<Transaction>, EngineError> {
        let filter = validate_filter(request)?;
        self.read(move |tx| Ok(tx.list_transactions(&filter)?))
            .await
    }

    /// How many transactions match the filter (limit and offset ignored).
    pub async fn count_transactions(&self, request: ListRequest) -> Result<u64, EngineError> {
        let filter = validate_filter(request)?;
        self.read(move |tx| Ok(tx.count_transactions(&filter)?))
            .await
    }
}

/// Whether `text` has the shape of an attempt code: `ATT` and digits (ids are UUIDs).
fn is_attempt_code(text: &str) -> bool {
    text.strip_prefix("ATT")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

fn validate_filter(request: ListRequest) -> Result<TransactionFilter, EngineError> {
    let status = request
        .status
        .map(|s| {
            s.parse::<TransactionStatus>()
                .map_err(|e| EngineError::invalid("status", e))
        })
        .transpose()?;
    let time = |field: &str, value: Option<String>| {
        value
            .map(|v| {
                Timestamp::parse_rfc3339(&v).ok_or_else(|| {
                    EngineError::invalid(
                        field,
                        format!("{} is not an RFC 3339 time", quote_for_error(&v)),
                    )
                })
            })
            .transpose()
    };
    for (field, value) in [
        ("source_type", &request.source_type),
        ("source_id", &request.source_id),
    ] {
        if let Some(value) = value {
            check_id(field, value, MAX_ID_LEN)?;
        }
    }
    let limit = request.limit.unwrap_or(TransactionFilter::DEFAULT_LIMIT);
    if limit == 0 || limit > TransactionFilter::MAX_LIMIT {
        return Err(EngineError::invalid(
            "limit",
            format!("{limit} is outside 1..={}", TransactionFilter::MAX_LIMIT),
        ));
    }
    Ok(TransactionFilter {
        status,
        source_type: request.source_type,
        source_id: request.source_id,
        since: time("since", request.since)?,
        until: time("until", request.until)?,
        overpaid_only: request.overpaid.unwrap_or(false),
        limit,
        offset: request.offset.unwrap_or(0),
    })
}
