//! `qrpayctl`: a command-line till. Every command is one D-Bus call (or a signal watch), so it
//! is also the quickest way for a till developer to try the API.
//!
//! Exit codes: 0 success; 2 usage error; 3 the daemon refused the request (a D-Bus error
//! reply); 4 the provider failed (unavailable, refused, not configured); 5 the bus or the
//! daemon cannot be reached.

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
#[command(name = "qrpayctl", version, about, long_about = None)]
pub struct CtlArgs {
    /// The bus: `system`, `session` or a D-Bus address.
    #[arg(long, global = true, env = "QRPAYD_BUS", default_value = "system")]
    pub bus: String,

    /// Print replies as JSON.
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
    Status { id_or_number: Option<String> },
    /// List transactions, newest first.
    List(ListArgs),
    /// Cancel an attempt or a whole transaction.
    Cancel(CancelArgs),
    /// Refund part or all of a successful payment attempt.
    Refund(RefundArgs),
    /// Confirm a cash payment and print the change.
    Cash(CashArgs),
    /// Check an attempt with its provider now.
    Verify { attempt_id: String },
    /// Print the daemon's signals as they come.
    Watch,
    /// Compare a provider's payments of a day with the local records.
    Reconcile {
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
    /// Write the man pages and shell completions of qrpayd and qrpayctl under DIR (packaging).
    /// Here rather than in qrpayd, so that the daemon's binary, resident all day, does not
    /// carry the generators.
    #[command(hide = true)]
    GenerateAssets { dir: std::path::PathBuf },
}

#[derive(Debug, Args)]
pub struct PayArgs {
    /// The amount, as a decimal string (`12500`, `99.50`).
    #[arg(long)]
    pub amount: String,
    /// The till's order id (the idempotency key); a fresh one when omitted.
    #[arg(long)]
    pub order: Option<String>,
    #[arg(long)]
    pub source_type: Option<String>,
    #[arg(long)]
    pub source_uid: Option<String>,
    #[arg(long)]
    pub currency: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    #[arg(long)]
    pub method: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub expires_in_ms: Option<u64>,
    #[arg(long)]
    pub allow_partial: bool,
    /// An item as `DESCRIPTION:QUANTITY:UNIT_PRICE`; repeat for more.
    #[arg(long = "item")]
    pub items: Vec<String>,
    /// Wait until the payment settles, expires or is cancelled, printing signals.
    #[arg(long)]
    pub wait: bool,
    /// Card or bank-account payment (method ATM): the bank's code.
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub bank_code: Option<String>,
    /// The card number (sent to the provider only; never stored or logged by qrpayd, but
    /// visible in this machine's process list while qrpayctl runs: for trying the API).
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub card_number: Option<String>,
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub card_holder_name: Option<String>,
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub card_month: Option<String>,
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub card_year: Option<String>,
    /// The bank account number (sent to the provider only; never stored or logged).
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub account_number: Option<String>,
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub account_holder_name: Option<String>,
    #[arg(long, help_heading = "Card / account (method ATM)")]
    pub identification_number: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub source_type: Option<String>,
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
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long)]
    pub offset: Option<u32>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "target")]
pub struct TargetArgs {
    #[arg(long, group = "target")]
    pub attempt: Option<String>,
    #[arg(long, group = "target")]
    pub transaction: Option<String>,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RefundArgs {
    #[arg(long)]
    pub attempt: String,
    #[arg(long)]
    pub amount: String,
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
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SimulateCommand {
    /// The customer pays (all, or `--amount` for a partial payment).
    Pay {
        attempt_id: String,
        #[arg(long, default_value = "")]
        amount: String,
    },
    /// The provider fails the payment.
    Fail { attempt_id: String },
    /// The provider goes offline (`on`) or comes back (`off`).
    Offline {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// The `qrpayctl` entry point.
pub fn main() -> ExitCode {
    let args = CtlArgs::parse();
    super::init_logging("warn");
    let args = match args.command {
        CtlCommand::Qr(command) => return ExitCode::from(super::qr::run(command, args.json)),
        CtlCommand::GenerateAssets { dir } => return generate_assets(&dir),
        _ => args,
    };
    super::daemon::runtime_then(|| async move {
        match run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure::Usage(message)) => {
                eprintln!("qrpayctl: {message}");
                ExitCode::from(2)
            }
            Err(Failure::Client(error)) => {
                eprintln!("qrpayctl: {error}");
                ExitCode::from(exit_code(&error))
            }
        }
    })
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
            ExitCode::FAILURE
        }
    }
}

/// The exit code for a failed call.
pub fn exit_code(error: &ClientError) -> u8 {
    match error {
        ClientError::Unreachable { .. } => 5,
        error if error.is_provider_failure() => 4,
        ClientError::Remote { .. } => 3,
    }
}

enum Failure {
    Usage(String),
    Client(ClientError),
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

async fn run(args: CtlArgs) -> Result<(), Failure> {
    let bus = BusAddress::parse(&args.bus);
    let client = Client::connect(&bus).await?;
    let json = args.json;
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
            let mut signals = if pay.wait {
                Some(client.watch().await?)
            } else {
                None
            };
            let reply = client.checkout(&request).await?;
            print_reply(&reply, json);
            if !json && let Some(qr) = reply["qr_text"].as_str() {
                match display::terminal_qr(qr) {
                    Ok(text) => println!("{text}"),
                    Err(error) => eprintln!("(cannot draw the QR: {error})"),
                }
            }
            if !json && reply["provider"] == "vietqr" {
                print_vietqr_guidance(&reply);
            }
            if let Some(signals) = signals.as_mut() {
                let transaction_id = reply["transaction_id"].as_str().unwrap_or("").to_owned();
                let attempt_id = reply["attempt_id"].as_str().unwrap_or("").to_owned();
                while let Some(signal) = signals.next().await {
                    print_json_or(
                        &signal.args,
                        json,
                        &format!("{} {}", signal.name, signal.args),
                    );
                    let final_attempt = signal.name == "AttemptChanged"
                        && signal.args["attempt_id"] == attempt_id.as_str()
                        && !matches!(signal.args["status"].as_str(), Some("100_NEW" | "204_SENT"));
                    let settled = signal.name == "TransactionChanged"
                        && signal.args["transaction_id"] == transaction_id.as_str()
                        && signal.args["status"] == "304_SETTLED";
                    if settled || (final_attempt && signal.args["status"] != "302_SUCCESS") {
                        break;
                    }
                }
            }
        }
        CtlCommand::Status { id_or_number } => {
            let reply = match id_or_number {
                Some(id) => client.get_transaction(&id).await?,
                None => client.status().await?,
            };
            print_reply(&reply, json);
        }
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
            if json {
                println!("{reply}");
            } else {
                for t in reply.as_array().into_iter().flatten() {
                    let field = |key: &str| t[key].as_str().unwrap_or("");
                    let overpaid = match field("overpaid") {
                        "" | "0.0000" => String::new(),
                        amount => format!("  overpaid {amount} refunded {}", field("refunded")),
                    };
                    println!(
                        "{}  {}  {:>16} {}  paid {:>16}  {} {}  {}{overpaid}",
                        field("transaction_number"),
                        field("transaction_status"),
                        field("total"),
                        field("currency"),
                        field("paid"),
                        field("source_type"),
                        field("source_id"),
                        field("created_at"),
                    );
                }
            }
        }
        CtlCommand::Cancel(cancel) => {
            let mut request = target_request(cancel.target);
            put(&mut request, "reason", cancel.reason);
            print_reply(&client.cancel(&request).await?, json);
        }
        CtlCommand::Refund(refund) => {
            let mut request = Request::new();
            put(&mut request, "attempt_id", Some(refund.attempt));
            put(&mut request, "amount", Some(refund.amount));
            put(&mut request, "reason", refund.reason);
            put(&mut request, "request_id", refund.request_id);
            print_reply(&client.refund(&request).await?, json);
        }
        CtlCommand::Cash(cash) => {
            let mut request = target_request(cash.target);
            put(&mut request, "tendered", Some(cash.tendered));
            put(&mut request, "note", cash.note);
            print_reply(&client.confirm_system_payment(&request).await?, json);
        }
        CtlCommand::Verify { attempt_id } => {
            print_reply(&client.verify(&attempt_id).await?, json);
        }
        CtlCommand::Watch => {
            let mut signals = client.watch().await?;
            while let Some(signal) = signals.next().await {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "signal": signal.name, "args": signal.args })
                    );
                } else {
                    println!("{} {}", signal.name, signal.args);
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
        CtlCommand::Qr(_) | CtlCommand::GenerateAssets { .. } => {}
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
    Ok(())
}

/// A VietQR transfer to the merchant's own account is confirmed by the cashier: say how.
fn print_vietqr_guidance(reply: &Value) {
    let field = |key: &str| reply[key].as_str().unwrap_or("").to_owned();
    let purpose = crate::emv::Payload::parse(&field("qr_text"))
        .ok()
        .and_then(|p| crate::emv::VietQr::from_payload(&p).ok())
        .and_then(|v| v.purpose)
        .unwrap_or_default();
    println!(
        "Cashier: no gateway reports this transfer. When the merchant's bank app shows {} VND \
         with the purpose \"{purpose}\", confirm it:\n  qrpayctl cash --attempt {} --tendered {}",
        field("amount").trim_end_matches(".0000"),
        field("attempt_id"),
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

fn print_json_or(value: &Value, json: bool, human: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{human}");
    }
}

/// Prints a reply: JSON, or one `key: value` line per field.
fn print_reply(reply: &Value, json: bool) {
    if json {
        println!("{reply}");
        return;
    }
    print_fields(reply, 0);
}

fn print_fields(value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::Array(items) if items.iter().any(Value::is_object) => {
                        println!("{pad}{key}:");
                        for (i, item) in items.iter().enumerate() {
                            println!("{pad}  [{i}]");
                            print_fields(item, indent + 4);
                        }
                    }
                    Value::String(s) => println!("{pad}{key}: {s}"),
                    other => println!("{pad}{key}: {other}"),
                }
            }
        }
        other => println!("{pad}{other}"),
    }
}
