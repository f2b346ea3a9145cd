//! `qrpayctl`: a command-line till. Every command is one D-Bus call (or a signal watch), so it
//! is also the quickest way for a till developer to try the API.
//!
//! Exit codes: the table in [`exit`], shown by `--help` and the man page. Human output is in
//! `human`; `pay --wait` in `wait`; `--json` output is for scripts and stays stable.

pub mod exit;
mod human;
mod wait;

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use serde_json::Value;

use crate::dbus::BusAddress;
use crate::dbus::client::{Arg, Client, ClientError, Request};
use crate::display;

/// qrpayctl: talk to qrpayd over D-Bus, as a till would.
#[derive(Debug, Parser)]
#[command(name = "qrpayctl", version, about, long_about = None, after_long_help = exit::help())]
pub struct CtlArgs {
    /// The bus: `system`, `session` or a D-Bus address.
    #[arg(long, global = true, env = "QRPAYD_BUS", default_value = "system")]
    pub bus: String,

    /// Print replies as JSON (one object per line), and errors as JSON on stderr.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Take a payment (Checkout) and show its QR.
    Pay(Box<PayArgs>),
    /// Show the daemon's status, or one transaction by id or number.
    Status {
        /// A transaction id or number (`TXN000001`); without it, the daemon's own status.
        id_or_number: Option<String>,
    },
    /// List transactions, newest first.
    List(ListArgs),
    /// Cancel an attempt or a whole transaction.
    Cancel(CancelArgs),
    /// Refund part or all of a successful payment attempt.
    Refund(RefundArgs),
    /// Confirm a cash payment and print the change.
    Cash(CashArgs),
    /// Check an attempt with its provider now.
    Verify {
        /// The attempt's id or code (`ATT000001`).
        attempt_id: String,
    },
    /// Print the daemon's signals as they come.
    Watch,
    /// Compare a provider's payments of a day with the local records.
    Reconcile {
        /// The provider whose payments to compare (`qpay`, `appotapay`).
        #[arg(long)]
        provider: String,
        /// The provider's day, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// Record the payments the store lacks (by checking their invoices).
        #[arg(long)]
        record_missing: bool,
    },
    /// Drive the simulated provider.
    #[command(subcommand)]
    Simulate(SimulateCommand),
    /// The upstream sync's status; `now`, `parked`, `retry [SEQ]`.
    Sync {
        #[command(subcommand)]
        command: Option<super::sync::SyncCommand>,
    },
    /// Decode or build EMVCo / VietQR payloads (offline: no bus needed).
    #[command(subcommand)]
    Qr(super::qr::QrCommand),
}

/// The hidden `qrpayctl generate-assets DIR`: writes the man pages and shell completions of
/// qrpayd and qrpayctl under DIR (packaging). Here rather than in qrpayd, so that the daemon's
/// binary, resident all day, does not carry the generators; read before clap parses, so that it
/// is in neither the completions nor the man pages it writes.
const GENERATE_ASSETS: &str = "generate-assets";

#[derive(Debug, Args)]
pub struct PayArgs {
    /// The amount, as a decimal string (`12500`, `99.50`).
    #[arg(long)]
    pub amount: String,
    /// The till's order id (the idempotency key); a fresh one when omitted.
    #[arg(long)]
    pub order: Option<String>,
    /// The kind of source the order id belongs to (default `Order`).
    #[arg(long)]
    pub source_type: Option<String>,
    /// The till's own reference shown with the payment (a receipt number, say).
    #[arg(long)]
    pub source_uid: Option<String>,
    /// MNT or VND (default: the daemon's `default_currency`).
    #[arg(long)]
    pub currency: Option<String>,
    /// The provider: `simulator`, `qpay`, `appotapay`, `vietqr`, or `system` for cash
    /// (default: the daemon's `default_provider`).
    #[arg(long)]
    pub provider: Option<String>,
    /// `100_QR_CODE`, `200_CASH` (with `--provider system`) or `ATM` (a card or account).
    #[arg(long)]
    pub method: Option<String>,
    /// What is sold, as the customer's bank app shows it.
    #[arg(long)]
    pub description: Option<String>,
    /// How long the QR stays payable, in milliseconds (1000 to 86400000).
    #[arg(long, value_name = "MS")]
    pub expires_in_ms: Option<u64>,
    /// Accept less than the amount from this QR (a partial payment); the rest is paid another
    /// way.
    #[arg(long)]
    pub allow_partial: bool,
    /// An item as `DESCRIPTION:QUANTITY:UNIT_PRICE`; repeat for more.
    #[arg(long = "item")]
    pub items: Vec<String>,
    /// Wait until the payment settles, expires, fails or is cancelled, printing its signals;
    /// the exit status says how it ended (see EXIT STATUS).
    #[arg(long)]
    pub wait: bool,
    /// Card or bank-account payment (method ATM): the bank's code.
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub bank_code: Option<String>,
    /// The card number (sent to the provider only; never stored or logged by qrpayd, but
    /// visible in this machine's process list while qrpayctl runs: for trying the API).
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub card_number: Option<String>,
    /// The name on the card.
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub card_holder_name: Option<String>,
    /// The card's month, two digits.
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub card_month: Option<String>,
    /// The card's year, two digits.
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub card_year: Option<String>,
    /// The bank account number (sent to the provider only; never stored or logged).
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub account_number: Option<String>,
    /// The account holder's name.
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub account_holder_name: Option<String>,
    /// The account holder's identification (ID card) number.
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub identification_number: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only transactions in this status (`100_NEW`, `300_PARTIAL`, `304_SETTLED`,
    /// `505_CANCELLED`).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this kind of source (`Order`).
    #[arg(long)]
    pub source_type: Option<String>,
    /// Only this order id.
    #[arg(long)]
    pub source_id: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only transactions that received more money than they needed (late payments on a
    /// settled or cancelled sale), for the merchant to refund or reconcile.
    #[arg(long)]
    pub overpaid: bool,
    /// At most this many (default 50, at most 500).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Skip this many of the newest first (for paging).
    #[arg(long)]
    pub offset: Option<u32>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "target")]
pub struct TargetArgs {
    /// The attempt's id or code (`ATT000001`).
    #[arg(long, group = "target")]
    pub attempt: Option<String>,
    /// The transaction's id or number (`TXN000001`).
    #[arg(long, group = "target")]
    pub transaction: Option<String>,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Why, for the records (at most 1000 characters).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RefundArgs {
    /// The successful payment attempt's id or code (`ATT000001`).
    #[arg(long)]
    pub attempt: String,
    /// How much to give back, as a decimal string.
    #[arg(long)]
    pub amount: String,
    /// Why, for the records (at most 1000 characters).
    #[arg(long)]
    pub reason: Option<String>,
    /// Your own key for this refund: repeating the command with the same key answers the same
    /// refund instead of refunding again (safe after a timeout or a ProviderUnavailable).
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct CashArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The cash handed over.
    #[arg(long)]
    pub tendered: String,
    /// A note for the records (at most 1000 characters).
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SimulateCommand {
    /// The customer pays (all, or `--amount` for a partial payment).
    Pay {
        /// The attempt's id or code (`ATT000001`).
        attempt_id: String,
        /// How much the customer pays; all that is left when omitted.
        #[arg(long, default_value = "")]
        amount: String,
    },
    /// The provider fails the payment.
    Fail {
        /// The attempt's id or code (`ATT000001`).
        attempt_id: String,
    },
    /// The provider goes offline (`on`) or comes back (`off`).
    Offline {
        /// `on`: every call to the simulated provider answers unavailable; `off`: it answers.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// The `qrpayctl` entry point.
pub fn main() -> ExitCode {
    restore_sigpipe();
    let mut raw = std::env::args_os().skip(1);
    if raw.next().is_some_and(|first| first == GENERATE_ASSETS) {
        return match (raw.next(), raw.next()) {
            (Some(dir), None) => generate_assets(std::path::Path::new(&dir)),
            _ => {
                eprintln!("usage: qrpayctl {GENERATE_ASSETS} DIR");
                exit::Exit::Usage.into()
            }
        };
    }
    let args = match CtlArgs::try_parse() {
        Ok(args) => args,
        Err(error) => return usage_error(error),
    };
    super::init_logging("warn");
    // Before the runtime's threads exist: the only time the local offset can be read.
    human::capture_local_offset();
    let args = match args.command {
        CtlCommand::Qr(command) => return ExitCode::from(super::qr::run(command, args.json)),
        _ => args,
    };
    let json = args.json;
    super::daemon::runtime_then(|| async move {
        match run(args).await {
            Ok(exit) => exit.into(),
            Err(failure) => {
                let exit = failure.exit();
                if json {
                    eprintln!("{}", failure.to_json(exit));
                } else {
                    eprintln!("qrpayctl: {failure}");
                }
                exit.into()
            }
        }
    })
}

/// A command line clap refused: as clap prints it, or as a JSON error on stderr when `--json`
/// was asked for; `--help` and `--version` as usual.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().any(|arg| arg == "--json");
    let informational = matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    );
    if json && !informational {
        // clap's text up to its usage lines, on one line: "the following required arguments
        // were not provided: --amount <AMOUNT>".
        let rendered = error.render().to_string();
        let message = rendered
            .split("\n\nUsage:")
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!("{}", Failure::Usage(message).to_json(exit::Exit::Usage));
        return exit::Exit::Usage.into();
    }
    let _ = error.print();
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(exit::Exit::Usage.code()))
}

/// Lets SIGPIPE end the process quietly, as it does `ls` or `grep`: `qrpayctl list | head`
/// must not panic when `head` stops reading (Rust ignores SIGPIPE by default, turning it into a
/// write error that `println!` panics on).
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to its default, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `qrpayctl generate-assets DIR`: prints each file written.
fn generate_assets(dir: &std::path::Path) -> ExitCode {
    match super::assets::generate(dir) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("qrpayctl: cannot write to {}: {error}", dir.display());
            exit::Exit::LocalFailure.into()
        }
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Client(ClientError),
    /// The daemon left the bus while `pay --wait` waited.
    #[error("{0}")]
    DaemonLeft(String),
}

impl Failure {
    fn exit(&self) -> exit::Exit {
        match self {
            Failure::Usage(_) => exit::Exit::Usage,
            Failure::Client(error) => exit::Exit::of(error),
            Failure::DaemonLeft(_) => exit::Exit::Unreachable,
        }
    }

    /// The error as `--json` prints it on stderr: `error` is qrpayd's short error name
    /// (`InvalidArgument`), or `Usage`, `Unreachable`, `DaemonLeft`.
    fn to_json(&self, exit: exit::Exit) -> Value {
        let (error, name, message) = match self {
            Failure::Usage(message) => ("Usage".to_owned(), None, message.clone()),
            Failure::Client(ClientError::Remote { name, message }) => (
                name.rsplit('.').next().unwrap_or(name).to_owned(),
                Some(name.clone()),
                message.clone(),
            ),
            Failure::Client(error @ ClientError::Unreachable { .. }) => {
                ("Unreachable".to_owned(), None, error.to_string())
            }
            Failure::DaemonLeft(message) => ("DaemonLeft".to_owned(), None, message.clone()),
        };
        serde_json::json!({
            "error": error,
            "name": name,
            "message": message,
            "exit_code": exit.code(),
        })
    }
}

/// `qrpayctl` with the `--bus` in use (none for the default, the system bus), for the commands
/// that hints print, so that they work when pasted.
fn command_prefix(bus: &str) -> String {
    if bus == "system" {
        return "qrpayctl".to_owned();
    }
    let safe = bus
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./:=,@%+-".contains(c));
    if safe {
        format!("qrpayctl --bus {bus}")
    } else {
        format!("qrpayctl --bus '{}'", bus.replace('\'', "'\\''"))
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Failure::Client(error)
    }
}

fn put(request: &mut Request, key: &str, value: Option<impl Into<Arg>>) {
    if let Some(value) = value {
        request.insert(key.to_owned(), value.into());
    }
}

impl From<u64> for Arg {
    fn from(value: u64) -> Self {
        Arg::U64(value)
    }
}

impl From<u32> for Arg {
    fn from(value: u32) -> Self {
        Arg::U32(value)
    }
}

async fn run(args: CtlArgs) -> Result<exit::Exit, Failure> {
    let bus = BusAddress::parse(&args.bus);
    let client = Client::connect(&bus).await?;
    client.require_daemon().await?;
    let json = args.json;
    let style = human::Style::detect();
    let command = command_prefix(&args.bus);
    match args.command {
        CtlCommand::Pay(pay) => {
            let order = pay.order.unwrap_or_else(|| {
                format!("cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
            });
            let mut request = Request::new();
            put(&mut request, "source_id", Some(order));
            put(&mut request, "amount", Some(pay.amount));
            put(&mut request, "source_type", pay.source_type);
            put(&mut request, "source_uid", pay.source_uid);
            put(&mut request, "currency", pay.currency);
            put(&mut request, "provider", pay.provider);
            put(&mut request, "method", pay.method);
            put(&mut request, "description", pay.description);
            put(&mut request, "expires_in_ms", pay.expires_in_ms);
            if pay.allow_partial {
                request.insert("allow_partial".into(), Arg::Bool(true));
            }
            put(&mut request, "bank_code", pay.bank_code);
            put(&mut request, "card_number", pay.card_number);
            put(&mut request, "card_holder_name", pay.card_holder_name);
            put(&mut request, "card_month", pay.card_month);
            put(&mut request, "card_year", pay.card_year);
            put(&mut request, "account_number", pay.account_number);
            put(&mut request, "account_holder_name", pay.account_holder_name);
            put(
                &mut request,
                "identification_number",
                pay.identification_number,
            );
            if !pay.items.is_empty() {
                let items = pay
                    .items
                    .iter()
                    .map(|item| parse_item(item))
                    .collect::<Result<Vec<_>, _>>()?;
                request.insert("items".into(), Arg::Dicts(items));
            }
            // Subscribed before the Checkout, so that no signal and no departure of the
            // daemon in between is missed.
            let watching = if pay.wait {
                Some((client.watch().await?, client.presence().await?))
            } else {
                None
            };
            let reply = client.checkout(&request).await?;
            if json {
                println!("{reply}");
            } else {
                print_payment(&reply, style, &command);
            }
            if let Some((signals, presence)) = watching {
                let waiter = wait::Waiter::new(&client, json, style, &command);
                let outcome = waiter.wait(&reply, signals, presence).await?;
                return Ok(outcome.exit());
            }
        }
        CtlCommand::Status { id_or_number } => match id_or_number {
            Some(id) => {
                let view = client.get_transaction(&id).await?;
                print_json_or(&view, json, || human::transaction_view(&view, style));
            }
            None => {
                let status = client.status().await?;
                if json {
                    println!("{status}");
                } else {
                    let sync = client.sync_status().await?;
                    println!("{}", human::daemon_status(&status, &sync, &args.bus));
                }
            }
        },
        CtlCommand::List(list) => {
            let mut filter = Request::new();
            put(&mut filter, "status", list.status);
            put(&mut filter, "source_type", list.source_type);
            put(&mut filter, "source_id", list.source_id);
            put(&mut filter, "since", list.since);
            put(&mut filter, "until", list.until);
            if list.overpaid {
                filter.insert("overpaid".to_owned(), Arg::Bool(true));
            }
            put(&mut filter, "limit", list.limit);
            put(&mut filter, "offset", list.offset);
            let reply = client.list_transactions(&filter).await?;
            print_json_or(&reply, json, || {
                human::transaction_table(reply.as_array().map_or(&[], Vec::as_slice), style)
            });
        }
        CtlCommand::Cancel(cancel) => {
            let mut request = target_request(cancel.target);
            put(&mut request, "reason", cancel.reason);
            let reply = client.cancel(&request).await?;
            print_json_or(&reply, json, || human::cancel_summary(&reply, style));
        }
        CtlCommand::Refund(refund) => {
            let mut request = Request::new();
            put(&mut request, "attempt_id", Some(refund.attempt));
            put(&mut request, "amount", Some(refund.amount));
            put(&mut request, "reason", refund.reason);
            put(&mut request, "request_id", refund.request_id);
            let reply = client.refund(&request).await?;
            print_json_or(&reply, json, || {
                human::refund_summary(&reply, style, &command)
            });
        }
        CtlCommand::Cash(cash) => {
            let mut request = target_request(cash.target);
            put(&mut request, "tendered", Some(cash.tendered));
            put(&mut request, "note", cash.note);
            let reply = client.confirm_system_payment(&request).await?;
            print_json_or(&reply, json, || human::cash_summary(&reply, style));
        }
        CtlCommand::Verify { attempt_id } => {
            let reply = client.verify(&attempt_id).await?;
            print_json_or(&reply, json, || human::verify_summary(&reply, style));
        }
        CtlCommand::Watch => {
            let mut signals = client.watch().await?;
            let mut presence = client.presence().await?;
            loop {
                tokio::select! {
                    Some(signal) = signals.next() => {
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({ "signal": signal.name, "args": signal.args })
                            );
                        } else {
                            println!("{}", human::signal_line(&signal.name, &signal.args, style));
                        }
                    }
                    Some(present) = presence.next() => {
                        // The daemon stopped or came back: a till re-reads its open
                        // transactions then (docs/integrating-a-till.md).
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({
                                    "signal": "NameOwnerChanged",
                                    "args": { "name": crate::dbus::names::BUS_NAME, "present": present },
                                })
                            );
                        } else if present {
                            println!("qrpayd is on the bus again");
                        } else {
                            println!("qrpayd left the bus (stopped or crashed)");
                        }
                    }
                    else => break,
                }
            }
        }
        CtlCommand::Reconcile {
            provider,
            date,
            record_missing,
        } => {
            let mut request = Request::new();
            put(&mut request, "provider", Some(provider));
            put(&mut request, "date", Some(date));
            if record_missing {
                request.insert("record_missing".into(), Arg::Bool(true));
            }
            let rows = client.reconcile(&request).await?;
            if json {
                println!("{rows}");
            } else {
                let rows = rows.as_array().cloned().unwrap_or_default();
                for row in &rows {
                    let field = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
                    println!(
                        "{:<15} {:<24} provider {:>16} {:<9} local {:>16}  {}",
                        field("verdict"),
                        field("payment_id"),
                        field("provider_amount"),
                        field("provider_status"),
                        field("local_amount"),
                        field("transaction_id"),
                    );
                }
                let differences = rows.iter().filter(|r| r["verdict"] != "matched").count();
                println!("{} payment(s), {differences} difference(s)", rows.len());
            }
        }
        CtlCommand::Sync { command } => super::sync::run(&client, command, json).await?,
        // Handled before connecting.
        CtlCommand::Qr(_) => {}
        CtlCommand::Simulate(command) => match command {
            SimulateCommand::Pay { attempt_id, amount } => {
                client.simulate_pay(&attempt_id, &amount).await?;
                println!("paid");
            }
            SimulateCommand::Fail { attempt_id } => {
                client.simulate_fail(&attempt_id).await?;
                println!("failed");
            }
            SimulateCommand::Offline { state } => {
                client.simulate_offline(state == "on").await?;
                println!("simulator offline: {state}");
            }
        },
    }
    Ok(exit::Exit::Success)
}

/// `pay`'s human output: the one-line summary, the QR while the customer may pay it, and what
/// to do next.
fn print_payment(reply: &Value, style: human::Style, command: &str) {
    println!("{}", human::pay_summary(reply, style));
    let open = matches!(
        human::field(reply, "transaction_status"),
        "100_NEW" | "300_PARTIAL"
    );
    if open && human::field(reply, "provider") == crate::engine::SYSTEM_PROVIDER {
        println!(
            "Cash: confirm what the customer hands over with\n  {command} cash --attempt {} --tendered AMOUNT",
            human::field(reply, "attempt_code")
        );
    }
    if !human::is_payable(reply) {
        return;
    }
    match display::terminal_qr(human::field(reply, "qr_text")) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("(cannot draw the QR: {error})"),
    }
    match human::field(reply, "provider") {
        "vietqr" => print_vietqr_guidance(reply, command),
        "simulator" => println!(
            "Simulator: the customer pays with\n  {command} simulate pay {}",
            human::field(reply, "attempt_code")
        ),
        _ => {}
    }
}

/// A VietQR transfer to the merchant's own account is confirmed by the cashier: say how.
fn print_vietqr_guidance(reply: &Value, command: &str) {
    let field = |key: &str| reply[key].as_str().unwrap_or("").to_owned();
    let purpose = crate::emv::Payload::parse(&field("qr_text"))
        .ok()
        .and_then(|p| crate::emv::VietQr::from_payload(&p).ok())
        .and_then(|v| v.purpose)
        .unwrap_or_default();
    println!(
        "Cashier: no gateway reports this transfer. When the merchant's bank app shows {} VND \
         with the purpose \"{purpose}\", confirm it:\n  {command} cash --attempt {} --tendered {}",
        field("amount").trim_end_matches(".0000"),
        field("attempt_code"),
        field("amount").trim_end_matches(".0000"),
    );
}

fn target_request(target: TargetArgs) -> Request {
    let mut request = Request::new();
    put(&mut request, "attempt_id", target.attempt);
    put(&mut request, "transaction_id", target.transaction);
    request
}

fn parse_item(text: &str) -> Result<BTreeMap<String, String>, Failure> {
    let mut parts = text.rsplitn(3, ':');
    let (Some(unit_price), Some(quantity), Some(description)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::Usage(format!(
            "--item {text:?} is not DESCRIPTION:QUANTITY:UNIT_PRICE"
        )));
    };
    Ok([
        ("description".to_owned(), description.to_owned()),
        ("quantity".to_owned(), quantity.to_owned()),
        ("unit_price".to_owned(), unit_price.to_owned()),
    ]
    .into_iter()
    .collect())
}

/// Prints `value` as JSON, or what `human` makes of it.
fn print_json_or(value: &Value, json: bool, human: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}
