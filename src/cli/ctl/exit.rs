//! `qrpayctl`'s exit codes: one table that the code, `--help` and the man page all read, so a
//! script's `case $?` and the documentation cannot disagree.

use std::process::ExitCode;

use crate::dbus::client::ClientError;

/// How `qrpayctl` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; with `pay --wait`, the transaction settled.
    Success,
    /// A command that needs no daemon failed: `qr decode` found the payload invalid, or a file
    /// could not be written.
    LocalFailure,
    /// The command line is wrong.
    Usage,
    /// The daemon refused the request (a named D-Bus error).
    Refused,
    /// The provider failed (unavailable, refused, not configured).
    ProviderFailed,
    /// The bus or the daemon cannot be reached, or the daemon left the bus while waiting.
    Unreachable,
    /// `pay --wait`: the attempt expired without money.
    Expired,
    /// `pay --wait`: the provider failed the payment.
    PaymentFailed,
    /// `pay --wait`: the attempt or the transaction was cancelled.
    Cancelled,
    /// `pay --wait`: the attempt ended with part of the amount paid; the rest is still due.
    PartlyPaid,
}

/// Every exit code with its meaning, in order.
pub const EXIT_CODES: &[(Exit, &str)] = &[
    (
        Exit::Success,
        "Success; with pay --wait, the transaction settled (304_SETTLED).",
    ),
    (
        Exit::LocalFailure,
        "A command that needs no daemon failed: qr decode found the payload invalid, or a file \
         could not be written.",
    ),
    (Exit::Usage, "Usage error: the command line is wrong."),
    (
        Exit::Refused,
        "The daemon refused the request (a D-Bus error reply such as InvalidArgument).",
    ),
    (
        Exit::ProviderFailed,
        "The provider failed (ProviderUnavailable, ProviderRejected, ProviderNotConfigured).",
    ),
    (
        Exit::Unreachable,
        "The bus or the daemon cannot be reached (no bus, qrpayd not running), or qrpayd left \
         the bus while pay --wait waited.",
    ),
    (
        Exit::Expired,
        "pay --wait: the attempt expired without money (501_EXPIRED).",
    ),
    (
        Exit::PaymentFailed,
        "pay --wait: the provider failed the payment (500_FAIL).",
    ),
    (
        Exit::Cancelled,
        "pay --wait: the attempt or the transaction was cancelled (500_FAIL with failure_code \
         CANCELLED, or 505_CANCELLED).",
    ),
    (
        Exit::PartlyPaid,
        "pay --wait: the attempt ended with part of the amount paid (300_PARTIAL); the rest is \
         still due.",
    ),
];

impl Exit {
    /// The process's exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::LocalFailure => 1,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::ProviderFailed => 4,
            Exit::Unreachable => 5,
            Exit::Expired => 6,
            Exit::PaymentFailed => 7,
            Exit::Cancelled => 8,
            Exit::PartlyPaid => 9,
        }
    }

    /// The exit for a failed call.
    pub fn of(error: &ClientError) -> Exit {
        match error {
            ClientError::Unreachable { .. } => Exit::Unreachable,
            error if error.is_provider_failure() => Exit::ProviderFailed,
            ClientError::Remote { .. } => Exit::Refused,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// The table as `--help` shows it.
pub fn help() -> String {
    let mut text = String::from("Exit status:\n");
    for (exit, meaning) in EXIT_CODES {
        text.push_str(&format!("  {}  {meaning}\n", exit.code()));
    }
    text
}

/// The table as a man page's EXIT STATUS section, in roff.
pub fn roff() -> String {
    let mut text = String::from(".SH EXIT STATUS\n");
    for (exit, meaning) in EXIT_CODES {
        text.push_str(&format!(
            ".TP\n{}\n{}\n",
            exit.code(),
            meaning.replace('-', "\\-")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exit_is_listed_once_in_order_of_its_code() {
        let codes: Vec<u8> = EXIT_CODES.iter().map(|(exit, _)| exit.code()).collect();
        assert_eq!(codes, (0..=9).collect::<Vec<u8>>());
    }
}
