//! What `qrpayctl` prints for people: one-line summaries, tables with a header, statuses in
//! words and (on a terminal, unless `NO_COLOR` is set) in colour. Scripts use `--json`, whose
//! output this module never touches.

use std::io::IsTerminal;
use std::str::FromStr;
use std::sync::OnceLock;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::display::AmountFormat;
use crate::domain::{Currency, Timestamp};

/// The terminal's local UTC offset in seconds, read once while the process has one thread
/// (the only time it can be read safely), for the times in summaries.
static LOCAL_OFFSET: OnceLock<i32> = OnceLock::new();

/// Reads the local offset; call before any other thread starts.
pub fn capture_local_offset() {
    let offset = time::UtcOffset::current_local_offset().map_or(0, |o| o.whole_seconds());
    let _ = LOCAL_OFFSET.set(offset);
}

/// Whether and how to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour when standard output is a terminal and `NO_COLOR` is unset or empty
    /// (<https://no-color.org>).
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: std::io::stdout().is_terminal() && !no_color,
        }
    }

    /// A status code (`304_SETTLED`) or its word, coloured by what the status means: green
    /// for money received, yellow for waiting, red for an end without money.
    pub fn status(self, code: &str, text: &str) -> String {
        if !self.colour {
            return text.to_owned();
        }
        let colour = match code {
            "302_SUCCESS" | "304_SETTLED" => "32",
            "100_NEW" | "204_SENT" | "300_PARTIAL" => "33",
            _ => "31",
        };
        format!("\x1b[{colour}m{text}\x1b[0m")
    }

    /// Bold, for table headers.
    pub fn bold(self, text: &str) -> String {
        if self.colour {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// A status code in a cashier's words.
pub fn status_word(code: &str) -> &str {
    match code {
        "100_NEW" => "new",
        "204_SENT" => "waiting",
        "302_SUCCESS" => "paid",
        "300_PARTIAL" => "partly paid",
        "304_SETTLED" => "settled",
        "500_FAIL" => "failed",
        "501_EXPIRED" => "expired",
        "505_CANCELLED" => "cancelled",
        "403_BLOCKED" => "blocked",
        "404_CLOSED" => "closed",
        other => other,
    }
}

/// A string field, empty when missing.
pub fn field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// A wire amount (`"12500.0000"`) as the customer display writes it in its currency
/// (`12,500₮`, `150.000 ₫`); the text as it is when either cannot be read.
pub fn amount(value: &str, currency: &str) -> String {
    match (Decimal::from_str(value), Currency::from_str(currency)) {
        (Ok(amount), Ok(currency)) => AmountFormat::default_for(currency).format(amount, currency),
        (Ok(amount), Err(_)) => amount.normalize().to_string(),
        _ => value.to_owned(),
    }
}

/// Whether a wire amount is more than zero.
pub fn is_positive(value: &str) -> bool {
    Decimal::from_str(value).is_ok_and(|a| a > Decimal::ZERO)
}

/// An RFC 3339 time as the terminal's local `HH:MM`.
pub fn local_time(rfc3339: &str) -> String {
    Timestamp::parse_rfc3339(rfc3339).map_or_else(
        || rfc3339.to_owned(),
        |at| at.time_of_day(*LOCAL_OFFSET.get().unwrap_or(&0)),
    )
}

/// An RFC 3339 time as the terminal's local `YYYY-MM-DD HH:MM`.
pub fn local_date_time(rfc3339: &str) -> String {
    let offset = *LOCAL_OFFSET.get().unwrap_or(&0);
    let Ok(at) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return rfc3339.to_owned();
    };
    let at = time::UtcOffset::from_whole_seconds(offset).map_or(at, |o| at.to_offset(o));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// `pay`'s summary of a Checkout reply:
/// `TXN000001 ATT000001 12,500₮ waiting, expires 04:05`.
pub fn pay_summary(reply: &Value, style: Style) -> String {
    let currency = field(reply, "currency");
    let transaction_status = field(reply, "transaction_status");
    let attempt_status = field(reply, "attempt_status");
    let head = format!(
        "{} {} {}",
        field(reply, "transaction_number"),
        field(reply, "attempt_code"),
        amount(field(reply, "amount"), currency),
    );
    if transaction_status == "304_SETTLED" {
        return format!(
            "{head} {}: paid {} of {}; nothing to pay",
            style.status(transaction_status, "already settled"),
            amount(field(reply, "paid"), currency),
            amount(field(reply, "total"), currency),
        );
    }
    let word = match (field(reply, "provider"), attempt_status) {
        ("system", "100_NEW") => "waiting for cash",
        (_, status) => status_word(status),
    };
    let mut line = format!("{head} {}", style.status(attempt_status, word));
    if is_positive(field(reply, "paid")) {
        line.push_str(&format!(
            ", {} paid of {}",
            amount(field(reply, "paid"), currency),
            amount(field(reply, "total"), currency)
        ));
    }
    if matches!(attempt_status, "100_NEW" | "204_SENT") && !field(reply, "expires_at").is_empty() {
        line.push_str(&format!(
            ", expires {}",
            local_time(field(reply, "expires_at"))
        ));
    }
    line
}

/// Whether a Checkout reply is a QR the customer may still pay: its attempt is live and the
/// transaction still wants money. A settled order's old QR is never drawn.
pub fn is_payable(reply: &Value) -> bool {
    matches!(field(reply, "attempt_status"), "100_NEW" | "204_SENT")
        && matches!(
            field(reply, "transaction_status"),
            "100_NEW" | "300_PARTIAL"
        )
        && !field(reply, "qr_text").is_empty()
}

/// `status`'s line for the daemon itself, with the upstream sync's state from `sync`.
pub fn daemon_status(status: &Value, sync: &Value, bus: &str) -> String {
    let providers = status["providers"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let count = |key: &str| status[key].as_u64().unwrap_or(0);
    let bus = match bus {
        "system" | "session" => format!("the {bus} bus"),
        address => address.to_owned(),
    };
    let sync = match field(sync, "state") {
        "disabled" | "" => "the upstream sync is off".to_owned(),
        state => format!(
            "the upstream sync is {state}: {} event(s) pending, {} parked",
            count("pending_sync"),
            sync["parked"].as_u64().unwrap_or(0)
        ),
    };
    format!(
        "qrpayd {} on {bus}: providers {providers}; {} open attempt(s), {} unresolved, {} \
         orphaned; {sync}",
        field(status, "version"),
        count("open_attempts"),
        count("unresolved_attempts"),
        count("orphaned_attempts"),
    )
}

/// `status ID`: the transaction on one line, then its attempts as a table.
pub fn transaction_view(view: &Value, style: Style) -> String {
    let currency = field(view, "currency");
    let status = field(view, "transaction_status");
    let mut line = format!(
        "{} {} {}: paid {}",
        field(view, "transaction_number"),
        amount(field(view, "total"), currency),
        style.status(status, status_word(status)),
        amount(field(view, "paid"), currency),
    );
    if is_positive(field(view, "refunded")) {
        line.push_str(&format!(
            ", refunded {}",
            amount(field(view, "refunded"), currency)
        ));
    }
    if is_positive(field(view, "overpaid")) {
        line.push_str(&format!(
            ", overpaid {}",
            amount(field(view, "overpaid"), currency)
        ));
    }
    line.push_str(&format!(
        " ({} {}, created {})",
        field(view, "source_type"),
        field(view, "source_id"),
        local_date_time(field(view, "created_at")),
    ));
    let rows: Vec<Vec<Cell>> = view["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                Cell::plain(field(a, "code")),
                Cell::plain(field(a, "type")),
                Cell::plain(field(a, "provider")),
                Cell::right(amount(field(a, "amount"), currency)),
                Cell::right(amount(field(a, "paid"), currency)),
                Cell::status(field(a, "status")),
                Cell::plain(field(a, "failure_code")),
            ]
        })
        .collect();
    if rows.is_empty() {
        return line;
    }
    format!(
        "{line}\n{}",
        table(
            &[
                "ATTEMPT", "TYPE", "PROVIDER", "AMOUNT", "PAID", "STATUS", "FAILURE"
            ],
            &rows,
            style
        )
    )
}

/// `list`: a table with a header, the refunded column, and the overpaid one when any row has
/// an overpayment.
pub fn transaction_table(transactions: &[Value], style: Style) -> String {
    if transactions.is_empty() {
        return "no transactions".to_owned();
    }
    let any_overpaid = transactions
        .iter()
        .any(|t| is_positive(field(t, "overpaid")));
    let mut headers = vec![
        "NUMBER", "STATUS", "TOTAL", "PAID", "REFUNDED", "SOURCE", "CREATED",
    ];
    if any_overpaid {
        headers.push("OVERPAID");
    }
    let rows: Vec<Vec<Cell>> = transactions
        .iter()
        .map(|t| {
            let currency = field(t, "currency");
            let mut row = vec![
                Cell::plain(field(t, "transaction_number")),
                Cell::status(field(t, "transaction_status")),
                Cell::right(amount(field(t, "total"), currency)),
                Cell::right(amount(field(t, "paid"), currency)),
                Cell::right(amount(field(t, "refunded"), currency)),
                Cell::plain(&format!(
                    "{} {}",
                    field(t, "source_type"),
                    field(t, "source_id")
                )),
                Cell::plain(&local_date_time(field(t, "created_at"))),
            ];
            if any_overpaid {
                row.push(Cell::right(amount(field(t, "overpaid"), currency)));
            }
            row
        })
        .collect();
    table(&headers, &rows, style)
}

/// A wire amount with no currency at hand, as a plain number (`"3000.0000"` → `3000`).
pub fn plain_amount(value: &str) -> String {
    Decimal::from_str(value).map_or_else(|_| value.to_owned(), |a| a.normalize().to_string())
}

/// `cancel`: what was cancelled and where the transaction stands.
pub fn cancel_summary(reply: &Value, style: Style) -> String {
    let status = field(reply, "transaction_status");
    let cancels: Vec<String> = reply["cancelled_attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{} {}", field(a, "code"), field(a, "status")))
        .collect();
    let what = if cancels.is_empty() {
        "nothing left to cancel".to_owned()
    } else {
        format!("cancelled by {}", cancels.join(", "))
    };
    format!(
        "{what}; the transaction is {} ({status})",
        style.status(status, status_word(status))
    )
}

/// `refund`: the refund attempt, its amount and whether the provider confirmed it.
pub fn refund_summary(reply: &Value, style: Style, command: &str) -> String {
    let status = field(reply, "status");
    let code = field(reply, "refund_attempt_code");
    let mut line = format!(
        "refund {code} of {}: {}",
        plain_amount(field(reply, "amount")),
        style.status(
            status,
            match status {
                "302_SUCCESS" => "refunded",
                "204_SENT" => "sent",
                other => status_word(other),
            }
        )
    );
    if status == "204_SENT" {
        line.push_str(&format!(
            "; the provider has not answered yet, qrpayd repeats it (follow it with `{command} watch`)"
        ));
    }
    line
}

/// `cash`: what was taken and the change to hand back.
pub fn cash_summary(reply: &Value, style: Style) -> String {
    let status = field(reply, "transaction_status");
    format!(
        "cash: tendered {}, change {}; the transaction is {}, paid {}",
        plain_amount(field(reply, "tendered")),
        plain_amount(field(reply, "change")),
        style.status(status, status_word(status)),
        plain_amount(field(reply, "paid")),
    )
}

/// `verify`: what the provider says about the attempt.
pub fn verify_summary(reply: &Value, style: Style) -> String {
    let status = field(reply, "attempt_status");
    format!(
        "{} at {}: {} {}; paid {}",
        style.status(status, status),
        field(reply, "provider"),
        field(reply, "provider_code"),
        field(reply, "provider_message"),
        plain_amount(field(reply, "paid")),
    )
}

/// `watch`: one line per signal.
pub fn signal_line(name: &str, args: &Value, style: Style) -> String {
    let details = &args["details"];
    let status = field(args, "status");
    match name {
        "TransactionChanged" => format!(
            "TransactionChanged {} {} paid {} of {}",
            field(details, "transaction_number"),
            style.status(status, status),
            amount(field(details, "paid"), field(details, "currency")),
            amount(field(details, "total"), field(details, "currency")),
        ),
        "AttemptChanged" => {
            let mut line = format!(
                "AttemptChanged {} {} {} {} paid {}",
                field(details, "attempt_code"),
                field(details, "type"),
                field(details, "provider"),
                style.status(status, status),
                plain_amount(field(details, "paid")),
            );
            if !field(details, "failure_code").is_empty() {
                line.push_str(&format!(" ({})", field(details, "failure_code")));
            }
            line
        }
        "AttemptUnresolved" => format!(
            "AttemptUnresolved {} {} since {}: {}",
            field(details, "attempt_code"),
            field(details, "provider"),
            local_time(field(details, "since")),
            field(details, "reason"),
        ),
        _ => format!("{name} {}", args["changed"]),
    }
}

/// One table cell: its text, its alignment, and the status code that colours it.
pub struct Cell {
    text: String,
    right: bool,
    status: Option<String>,
}

impl Cell {
    pub fn plain(text: &str) -> Cell {
        Cell {
            text: text.to_owned(),
            right: false,
            status: None,
        }
    }

    pub fn right(text: String) -> Cell {
        Cell {
            text,
            right: true,
            status: None,
        }
    }

    pub fn status(code: &str) -> Cell {
        Cell {
            text: code.to_owned(),
            right: false,
            status: Some(code.to_owned()),
        }
    }
}

/// Columns padded to their widest cell (in characters, before any colour), two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<Cell>], style: Style) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.text.chars().count());
        }
    }
    let mut lines = Vec::with_capacity(rows.len() + 1);
    // A header sits over its column's numbers: right-aligned when they are.
    let right: Vec<bool> = (0..headers.len())
        .map(|i| {
            rows.first()
                .and_then(|row| row.get(i))
                .is_some_and(|c| c.right)
        })
        .collect();
    let header: Vec<String> = headers
        .iter()
        .zip(&widths)
        .zip(&right)
        .map(|((h, w), right)| {
            if *right {
                format!("{h:>w$}")
            } else {
                format!("{h:<w$}")
            }
        })
        .collect();
    lines.push(style.bold(header.join("  ").trim_end()));
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| {
                let pad = " ".repeat(width.saturating_sub(cell.text.chars().count()));
                let text = match &cell.status {
                    Some(code) => style.status(code, &cell.text),
                    None => cell.text.clone(),
                };
                if cell.right {
                    format!("{pad}{text}")
                } else {
                    format!("{text}{pad}")
                }
            })
            .collect();
        lines.push(cells.join("  ").trim_end().to_owned());
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style { colour: false };

    #[test]
    fn a_waiting_payment_is_one_line_with_its_codes_amount_and_expiry() {
        let reply = serde_json::json!({
            "transaction_number": "TXN000001", "attempt_code": "ATT000001",
            "amount": "12500.0000", "currency": "MNT", "total": "12500.0000",
            "paid": "0.0000", "transaction_status": "100_NEW", "attempt_status": "204_SENT",
            "expires_at": "2026-11-29T04:05:00Z", "qr_text": "000201",
        });
        assert_eq!(
            pay_summary(&reply, PLAIN),
            "TXN000001 ATT000001 12,500₮ waiting, expires 04:05"
        );
        assert!(is_payable(&reply));
    }

    #[test]
    fn a_settled_order_says_so_and_is_not_payable() {
        let reply = serde_json::json!({
            "transaction_number": "TXN000001", "attempt_code": "ATT000001",
            "amount": "2500.0000", "currency": "MNT", "total": "2500.0000",
            "paid": "2500.0000", "transaction_status": "304_SETTLED",
            "attempt_status": "302_SUCCESS", "qr_text": "000201",
        });
        assert_eq!(
            pay_summary(&reply, PLAIN),
            "TXN000001 ATT000001 2,500₮ already settled: paid 2,500₮ of 2,500₮; nothing to pay"
        );
        assert!(!is_payable(&reply));
    }

    #[test]
    fn a_table_pads_columns_by_characters_and_colours_only_the_status() {
        let rows = vec![vec![
            Cell::plain("TXN000001"),
            Cell::status("304_SETTLED"),
            Cell::right("12,500₮".to_owned()),
        ]];
        assert_eq!(
            table(&["NUMBER", "STATUS", "TOTAL"], &rows, PLAIN),
            "NUMBER     STATUS         TOTAL\nTXN000001  304_SETTLED  12,500₮"
        );
        let coloured = table(&["N", "S"], &rows, Style { colour: true });
        assert!(
            coloured.contains("\x1b[32m304_SETTLED\x1b[0m"),
            "{coloured:?}"
        );
    }
}
