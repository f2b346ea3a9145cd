//! `qrpayctl pay --wait`: follows one payment to its end and says how it ended, in words and in
//! the exit code (see [`super::exit`]). It returns at once when the Checkout reply is already
//! final, and notices the daemon leaving the bus (`NameOwnerChanged`) instead of waiting for
//! ever. On a terminal it shows a live countdown to the QR's expiry.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures_util::{FutureExt, Stream, StreamExt};
use serde_json::Value;

use super::Failure;
use super::exit::Exit;
use super::human::{self, Style, field};
use crate::dbus::client::{Client, Signal};
use crate::domain::Timestamp;

/// How a payment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Settled,
    Expired,
    PaymentFailed,
    Cancelled,
    PartlyPaid,
}

impl Outcome {
    /// The exit that reports it.
    pub fn exit(self) -> Exit {
        match self {
            Outcome::Settled => Exit::Success,
            Outcome::Expired => Exit::Expired,
            Outcome::PaymentFailed => Exit::PaymentFailed,
            Outcome::Cancelled => Exit::Cancelled,
            Outcome::PartlyPaid => Exit::PartlyPaid,
        }
    }

    /// Its name in `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Settled => "settled",
            Outcome::Expired => "expired",
            Outcome::PaymentFailed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::PartlyPaid => "partly_paid",
        }
    }
}

/// How the payment ended, given its transaction's status and its attempt's status and
/// failure code; `None` while it may still take money.
pub fn outcome_of(
    transaction_status: &str,
    attempt_status: &str,
    failure_code: &str,
) -> Option<Outcome> {
    match transaction_status {
        "304_SETTLED" => return Some(Outcome::Settled),
        "505_CANCELLED" => return Some(Outcome::Cancelled),
        _ => {}
    }
    match attempt_status {
        "100_NEW" | "204_SENT" => None,
        "501_EXPIRED" => Some(Outcome::Expired),
        "500_FAIL" if failure_code == "CANCELLED" => Some(Outcome::Cancelled),
        // Money received, yet the transaction is not settled: part of it was paid.
        "302_SUCCESS" => Some(Outcome::PartlyPaid),
        _ => Some(Outcome::PaymentFailed),
    }
}

/// What `pay --wait` prints and how.
pub struct Waiter<'a> {
    client: &'a Client,
    json: bool,
    style: Style,
    /// `qrpayctl` with the `--bus` in use, for the commands hints print.
    command: &'a str,
    /// The attempt's money last reported, so that a repeated signal is not printed twice.
    last_paid: std::cell::RefCell<Option<String>>,
}

/// The end state as read back from the daemon.
struct Ended {
    outcome: Outcome,
    view: Value,
    attempt: Value,
}

impl<'a> Waiter<'a> {
    /// A waiter printing JSON lines or, for people, in `style`; `command` is `qrpayctl` with
    /// the `--bus` in use.
    pub fn new(client: &'a Client, json: bool, style: Style, command: &'a str) -> Waiter<'a> {
        Waiter {
            client,
            json,
            style,
            command,
            last_paid: std::cell::RefCell::new(None),
        }
    }

    /// Waits for the end of the payment `reply` (a Checkout reply) started, printing its
    /// signals, and returns how it ended. `signals` and `presence` were subscribed to before
    /// the Checkout, so nothing in between is missed.
    pub async fn wait(
        &self,
        reply: &Value,
        mut signals: impl Stream<Item = Signal> + Unpin,
        mut presence: impl Stream<Item = bool> + Unpin,
    ) -> Result<Outcome, Failure> {
        let transaction_id = field(reply, "transaction_id").to_owned();
        let attempt_id = field(reply, "attempt_id").to_owned();
        let currency = field(reply, "currency").to_owned();
        if outcome_of(
            field(reply, "transaction_status"),
            field(reply, "attempt_status"),
            "",
        )
        .is_some()
            && let Some(ended) = self.read_end(&transaction_id, &attempt_id).await?
        {
            return Ok(self.finish(&ended, &currency));
        }
        let countdown = !self.json && std::io::stdout().is_terminal();
        let expires_at = Timestamp::parse_rfc3339(field(reply, "expires_at"));
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                signal = signals.next() => {
                    let Some(signal) = signal else {
                        return Err(self.left(reply));
                    };
                    if let Some(ended) = self.on_signal(&signal, &transaction_id, &attempt_id, &currency, countdown).await? {
                        clear_line(countdown);
                            return Ok(self.finish(&ended, &currency));
                    }
                }
                present = presence.next() => {
                    if present == Some(true) {
                        continue;
                    }
                    // The bus delivered everything the daemon sent before it left: whatever
                    // of it is queued still counts.
                    while let Some(Some(signal)) = signals.next().now_or_never() {
                        if let Some(ended) = self.on_signal(&signal, &transaction_id, &attempt_id, &currency, countdown).await? {
                            clear_line(countdown);
                            return Ok(self.finish(&ended, &currency));
                        }
                    }
                    clear_line(countdown);
                    return Err(self.left(reply));
                }
                _ = tick.tick(), if countdown => {
                    if let Some(expires_at) = expires_at {
                        show_countdown(expires_at);
                    }
                }
            }
        }
    }

    /// Prints one signal about this payment; the end state once the attempt has ended.
    async fn on_signal(
        &self,
        signal: &Signal,
        transaction_id: &str,
        attempt_id: &str,
        currency: &str,
        countdown: bool,
    ) -> Result<Option<Ended>, Failure> {
        if signal.args["transaction_id"] != transaction_id {
            return Ok(None);
        }
        let args = &signal.args;
        let details = &args["details"];
        if self.json {
            println!(
                "{}",
                serde_json::json!({ "signal": signal.name, "args": args })
            );
        }
        let ours = signal.name == "AttemptChanged" && args["attempt_id"] == attempt_id;
        let status = field(args, "status");
        // The summary said how it started and the last line will say how it ended: in between,
        // only money received on a live attempt (a partial payment) is news for a person.
        if !self.json
            && ours
            && matches!(status, "100_NEW" | "204_SENT")
            && human::is_positive(field(details, "paid"))
            && self
                .last_paid
                .replace(Some(field(details, "paid").to_owned()))
                .as_deref()
                != Some(field(details, "paid"))
        {
            clear_line(countdown);
            println!(
                "{} {}: {} paid of {}",
                field(details, "attempt_code"),
                self.style.status("300_PARTIAL", "partly paid"),
                human::amount(field(details, "paid"), currency),
                human::amount(field(details, "amount"), currency)
            );
        }
        let transaction_ended = signal.name == "TransactionChanged"
            && matches!(status, "304_SETTLED" | "505_CANCELLED");
        let attempt_ended = ours && !matches!(status, "100_NEW" | "204_SENT");
        if transaction_ended || attempt_ended {
            return self.read_end(transaction_id, attempt_id).await;
        }
        Ok(None)
    }

    /// Reads the transaction back (it is committed before its signals are sent) and decides.
    async fn read_end(
        &self,
        transaction_id: &str,
        attempt_id: &str,
    ) -> Result<Option<Ended>, Failure> {
        let view = self.client.get_transaction(transaction_id).await?;
        let attempt = view["attempts"]
            .as_array()
            .and_then(|attempts| attempts.iter().find(|a| a["id"] == attempt_id))
            .cloned()
            .unwrap_or(Value::Null);
        let outcome = outcome_of(
            field(&view, "transaction_status"),
            field(&attempt, "status"),
            field(&attempt, "failure_code"),
        );
        Ok(outcome.map(|outcome| Ended {
            outcome,
            view,
            attempt,
        }))
    }

    /// Says how the payment ended.
    fn finish(&self, ended: &Ended, currency: &str) -> Outcome {
        let (view, attempt) = (&ended.view, &ended.attempt);
        let number = field(view, "transaction_number");
        let code = field(attempt, "code");
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "outcome": ended.outcome.name(),
                    "exit_code": ended.outcome.exit().code(),
                    "transaction_id": view["transaction_id"],
                    "transaction_number": number,
                    "transaction_status": view["transaction_status"],
                    "attempt_id": attempt["id"],
                    "attempt_status": attempt["status"],
                    "paid": view["paid"],
                })
            );
            return ended.outcome;
        }
        let paid = human::amount(field(view, "paid"), currency);
        let total = human::amount(field(view, "total"), currency);
        let status = field(view, "transaction_status");
        let line = match ended.outcome {
            Outcome::Settled => format!(
                "{number} {}: paid {paid} of {total}",
                self.style.status(status, "settled")
            ),
            Outcome::Expired => format!(
                "{code} {}: no money came. The same pay (same --order) makes a new QR.",
                self.style.status("501_EXPIRED", "expired")
            ),
            Outcome::PaymentFailed => format!(
                "{code} {}: {} {}",
                self.style.status("500_FAIL", "failed"),
                field(attempt, "failure_code"),
                field(attempt, "failure_message")
            ),
            Outcome::Cancelled => {
                format!("{code} {}", self.style.status("505_CANCELLED", "cancelled"))
            }
            Outcome::PartlyPaid => format!(
                "{number} {}: {paid} of {total}; take the rest in cash with\n  {} cash --transaction {number} --tendered AMOUNT",
                self.style.status(status, "partly paid"),
                self.command,
            ),
        };
        println!("{line}");
        ended.outcome
    }

    /// The failure of a wait whose daemon left the bus.
    fn left(&self, reply: &Value) -> Failure {
        Failure::DaemonLeft(format!(
            "qrpayd left the bus while waiting for {} (stopped or crashed). The payment is kept \
             in its database; once qrpayd is back, `{} status {}` shows it.",
            field(reply, "attempt_code"),
            self.command,
            field(reply, "transaction_number"),
        ))
    }
}

/// Redraws `waiting for the customer: 1:45 left` in place.
fn show_countdown(expires_at: Timestamp) {
    let now = Timestamp::now();
    let left = now.millis_until(expires_at) / 1000;
    print!(
        "\r\x1b[Kwaiting for the customer: {}:{:02} left",
        left / 60,
        left % 60
    );
    let _ = std::io::stdout().flush();
}

/// Clears the countdown line, so that the next line starts clean.
fn clear_line(countdown: bool) {
    if countdown {
        print!("\r\x1b[K");
        let _ = std::io::stdout().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_of_a_payment_has_its_own_outcome() {
        for (transaction, attempt, failure, expected) in [
            ("100_NEW", "204_SENT", "", None),
            ("100_NEW", "100_NEW", "", None),
            ("300_PARTIAL", "204_SENT", "", None),
            ("304_SETTLED", "302_SUCCESS", "", Some(Outcome::Settled)),
            ("100_NEW", "501_EXPIRED", "", Some(Outcome::Expired)),
            (
                "100_NEW",
                "500_FAIL",
                "PROVIDER_FAILED",
                Some(Outcome::PaymentFailed),
            ),
            ("100_NEW", "500_FAIL", "CANCELLED", Some(Outcome::Cancelled)),
            (
                "505_CANCELLED",
                "500_FAIL",
                "CANCELLED",
                Some(Outcome::Cancelled),
            ),
            ("300_PARTIAL", "302_SUCCESS", "", Some(Outcome::PartlyPaid)),
        ] {
            assert_eq!(
                outcome_of(transaction, attempt, failure),
                expected,
                "{transaction} {attempt} {failure}"
            );
        }
    }
}
