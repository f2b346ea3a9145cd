//! MQ-Pay's status codes and the one table of legal transitions.
//!
//! Every status change in qrpayd is checked here, by [`TransactionStatus::check_transition`] and
//! [`AttemptStatus::check_transition`], before the store writes it. A transition that is not a
//! row of these tables is `InvalidTransactionStatus`, wherever it is attempted.

use std::fmt;
use std::str::FromStr;

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order MQ-Pay lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The MQ-Pay code, as it crosses every boundary and is stored.
            pub fn code(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.code() == s)
                    .ok_or_else(|| UnknownCode { kind: stringify!($name), code: s.to_owned() })
            }
        }
    };
}

/// A code that is not one of MQ-Pay's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is not a valid {kind} code", super::model::quote_for_error(code))]
pub struct UnknownCode {
    pub kind: &'static str,
    pub code: String,
}

status_enum!(
    /// The status of a transaction (MQ-Pay's `Transaction.status`).
    TransactionStatus {
        /// Created; no money received yet.
        New => "100_NEW",
        /// Some money received, less than the total.
        Partial => "300_PARTIAL",
        /// Money received covers the total.
        Settled => "304_SETTLED",
        /// Cancelled with every attempt; final.
        Cancelled => "505_CANCELLED",
        /// Temporarily blocked (reserved by MQ-Pay; qrpayd never sets it itself).
        Blocked => "403_BLOCKED",
        /// Permanently closed (reserved by MQ-Pay; qrpayd never sets it itself).
        Closed => "404_CLOSED",
    }
);

status_enum!(
    /// The status of a payment, cancel or refund attempt (MQ-Pay's `PaymentAttempt.status`).
    AttemptStatus {
        /// Recorded, not yet sent to the provider (or the send's outcome is not known yet).
        New => "100_NEW",
        /// Sent to the provider and live there.
        Sent => "204_SENT",
        /// Confirmed by the provider (or by the cashier, for system payments).
        Success => "302_SUCCESS",
        /// Failed or cancelled.
        Fail => "500_FAIL",
        /// Timed out without money.
        Expired => "501_EXPIRED",
    }
);

status_enum!(
    /// What an attempt does (MQ-Pay's `PaymentAttempt.type`).
    AttemptType {
        /// Takes money from the customer.
        Payment => "100_PAYMENT",
        /// Cancels a payment attempt; its `parent_id` is the payment attempt.
        CancelPayment => "200_CANCEL_PAYMENT",
        /// Gives money back; its `parent_id` is the successful payment attempt.
        RefundPayment => "300_REFUND_PAYMENT",
    }
);

/// A status change that the transition tables do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {kind} cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub kind: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// The legal transaction transitions. Staying in the same status is always allowed (more money
/// on a partial transaction, a refund on a settled one) and is not listed.
pub const TRANSACTION_TRANSITIONS: &[(TransactionStatus, TransactionStatus)] = {
    use TransactionStatus::*;
    &[
        // Money arrives.
        (New, Partial),
        (New, Settled),
        (Partial, Settled),
        // Cancelling the transaction with all its attempts. From Partial only once every bit of
        // money received was refunded; the engine checks that before asking.
        (New, Cancelled),
        (Partial, Cancelled),
    ]
};

/// The legal attempt transitions. Staying in the same status is allowed and not listed.
pub const ATTEMPT_TRANSITIONS: &[(AttemptStatus, AttemptStatus)] = {
    use AttemptStatus::*;
    &[
        // The provider accepted the request.
        (New, Sent),
        // Confirmed at once (a cash payment, a cancel or a refund the provider confirmed).
        (New, Success),
        // Refused by the provider, or abandoned before it was ever created there.
        (New, Fail),
        // The attempt's time ran out before it was created at the provider.
        (New, Expired),
        // Money received.
        (Sent, Success),
        // Cancelled, or failed at the provider.
        (Sent, Fail),
        // Timed out without money.
        (Sent, Expired),
        // A late payment: the money arrived after expiry, seen by the final check or when the
        // provider refused the cancel because the invoice was paid. It is never lost.
        (Expired, Success),
        // The same for an attempt that failed or was cancelled while its invoice could still
        // take money (a close that found money, an invoice the provider cannot close): the
        // money is recorded on the attempt, which can then be refunded.
        (Fail, Success),
    ]
};

impl TransactionStatus {
    /// Whether nothing can change this transaction's status any more.
    pub fn is_final(self) -> bool {
        !TRANSACTION_TRANSITIONS
            .iter()
            .any(|(from, _)| *from == self)
    }

    /// Checks `self → to` against [`TRANSACTION_TRANSITIONS`].
    pub fn check_transition(self, to: TransactionStatus) -> Result<(), InvalidTransition> {
        if self == to || TRANSACTION_TRANSITIONS.contains(&(self, to)) {
            Ok(())
        } else {
            Err(InvalidTransition {
                kind: "transaction",
                from: self.code(),
                to: to.code(),
            })
        }
    }
}

impl AttemptStatus {
    /// Whether the attempt is still live: the customer may still pay it or the request is in
    /// flight.
    pub fn is_open(self) -> bool {
        matches!(self, AttemptStatus::New | AttemptStatus::Sent)
    }

    /// Checks `self → to` against [`ATTEMPT_TRANSITIONS`].
    pub fn check_transition(self, to: AttemptStatus) -> Result<(), InvalidTransition> {
        if self == to || ATTEMPT_TRANSITIONS.contains(&(self, to)) {
            Ok(())
        } else {
            Err(InvalidTransition {
                kind: "payment attempt",
                from: self.code(),
                to: to.code(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Mermaid state diagram of `transitions`: every status that takes part, named by its
    /// code; `[*]` into `initial` and out of every status nothing leaves.
    fn mermaid<S: Copy + PartialEq + std::fmt::Debug + std::fmt::Display>(
        all: &[S],
        transitions: &[(S, S)],
        initial: S,
    ) -> String {
        let used: Vec<S> = all
            .iter()
            .copied()
            .filter(|s| transitions.iter().any(|(from, to)| from == s || to == s))
            .collect();
        let mut lines = vec!["```mermaid".to_owned(), "stateDiagram-v2".to_owned()];
        for status in &used {
            lines.push(format!("    state \"{status}\" as {status:?}"));
        }
        lines.push(format!("    [*] --> {initial:?}"));
        for (from, to) in transitions {
            lines.push(format!("    {from:?} --> {to:?}"));
        }
        for status in &used {
            if !transitions.iter().any(|(from, _)| from == status) {
                lines.push(format!("    {status:?} --> [*]"));
            }
        }
        lines.push("```".to_owned());
        lines.join("\n")
    }

    /// The guide's state diagrams are the transition tables, so they cannot drift. With
    /// `QRPAYD_BLESS=1` the test writes them into the guide.
    #[test]
    fn state_diagrams_in_the_guide_are_the_transition_tables() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join("integrating-a-till.md");
        let mut guide = std::fs::read_to_string(&path).expect("docs/integrating-a-till.md");
        for (name, diagram) in [
            (
                "transaction-states",
                mermaid(
                    TransactionStatus::ALL,
                    TRANSACTION_TRANSITIONS,
                    TransactionStatus::New,
                ),
            ),
            (
                "attempt-states",
                mermaid(AttemptStatus::ALL, ATTEMPT_TRANSITIONS, AttemptStatus::New),
            ),
        ] {
            let begin = guide
                .find(&format!("<!-- {name}: begin"))
                .and_then(|at| guide[at..].find("-->\n").map(|end| at + end + 4))
                .unwrap_or_else(|| panic!("the guide has no {name} begin marker"));
            let end = guide
                .find(&format!("<!-- {name}: end -->"))
                .unwrap_or_else(|| panic!("the guide has no {name} end marker"));
            let expected = format!("{diagram}\n");
            if std::env::var_os("QRPAYD_BLESS").is_some() {
                guide.replace_range(begin..end, &expected);
                continue;
            }
            assert_eq!(
                guide[begin..end],
                expected,
                "{name} in {} differs from the table; QRPAYD_BLESS=1 rewrites it",
                path.display()
            );
        }
        if std::env::var_os("QRPAYD_BLESS").is_some() {
            std::fs::write(&path, guide).expect("bless the guide");
        }
    }

    /// Every pair of statuses is either a row of the table, a self-transition, or refused.
    #[test]
    fn transaction_table_is_exactly_what_is_allowed() {
        use TransactionStatus::*;
        let expected_allowed = [
            (New, Partial),
            (New, Settled),
            (Partial, Settled),
            (New, Cancelled),
            (Partial, Cancelled),
        ];
        for &from in TransactionStatus::ALL {
            for &to in TransactionStatus::ALL {
                let allowed = from == to || expected_allowed.contains(&(from, to));
                assert_eq!(from.check_transition(to).is_ok(), allowed, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn attempt_table_is_exactly_what_is_allowed() {
        use AttemptStatus::*;
        let expected_allowed = [
            (New, Sent),
            (New, Success),
            (New, Fail),
            (New, Expired),
            (Sent, Success),
            (Sent, Fail),
            (Sent, Expired),
            (Expired, Success),
            (Fail, Success),
        ];
        for &from in AttemptStatus::ALL {
            for &to in AttemptStatus::ALL {
                let allowed = from == to || expected_allowed.contains(&(from, to));
                assert_eq!(from.check_transition(to).is_ok(), allowed, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn settled_cancelled_blocked_and_closed_are_final() {
        use TransactionStatus::*;
        for status in [Settled, Cancelled, Blocked, Closed] {
            assert!(status.is_final(), "{status}");
        }
        for status in [New, Partial] {
            assert!(!status.is_final(), "{status}");
        }
    }

    #[test]
    fn an_invalid_transition_names_both_statuses() {
        let err = AttemptStatus::Success
            .check_transition(AttemptStatus::Sent)
            .expect_err("success is final");
        assert_eq!(
            err.to_string(),
            "a payment attempt cannot go from 302_SUCCESS to 204_SENT"
        );
    }

    #[test]
    fn codes_round_trip() {
        for &status in TransactionStatus::ALL {
            assert_eq!(status.code().parse::<TransactionStatus>(), Ok(status));
        }
        for &status in AttemptStatus::ALL {
            assert_eq!(status.code().parse::<AttemptStatus>(), Ok(status));
        }
        for &kind in AttemptType::ALL {
            assert_eq!(kind.code().parse::<AttemptType>(), Ok(kind));
        }
        assert!("304_settled".parse::<TransactionStatus>().is_err());
    }
}
