//! `qrpayctl qr`: decode any EMVCo merchant-presented QR payload, or build a VietQR for a bank
//! account. Offline: no bus, no daemon.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::display;
use crate::domain::{Currency, parse_amount};
use crate::emv::{self, Field, Payload, Value as EmvValue, VietQr, VietQrService};

#[derive(Debug, Subcommand)]
pub enum QrCommand {
    /// Print a payload's fields and CRC verdict; exit 1 if it is not a valid EMVCo code.
    Decode {
        /// The QR's text (`000201…`), as a scanner reads it.
        payload: String,
    },
    /// Build a VietQR (NAPAS) code for a bank account or card.
    Vietqr(VietQrArgs),
}

#[derive(Debug, Args)]
pub struct VietQrArgs {
    /// The bank's 6-digit acquirer BIN (e.g. 970416).
    #[arg(long)]
    pub bin: String,
    /// The account (or, with --card, card) number.
    #[arg(long)]
    pub account: String,
    /// Pay to a card number instead of an account.
    #[arg(long)]
    pub card: bool,
    /// The amount in VND (a whole number); a static code when omitted.
    #[arg(long)]
    pub amount: Option<String>,
    /// The purpose text shown in the bank app (62.08).
    #[arg(long)]
    pub purpose: Option<String>,
    /// Also write the code as a PNG image.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

/// Runs a `qr` command; returns the process exit code.
pub fn run(command: QrCommand, json_output: bool) -> u8 {
    match command {
        QrCommand::Decode { payload } => decode(&payload, json_output),
        QrCommand::Vietqr(args) => vietqr(args, json_output),
    }
}

fn decode(payload: &str, json_output: bool) -> u8 {
    let parsed = match Payload::parse(payload) {
        Ok(parsed) => parsed,
        Err(error) => {
            if json_output {
                println!("{}", json!({ "valid": false, "error": error.to_string() }));
            } else {
                println!("invalid: {error}");
            }
            return 1;
        }
    };
    let crc = payload.get(payload.len().saturating_sub(4)..).unwrap_or("");
    let vietqr = VietQr::from_payload(&parsed).ok();
    let merchant = emv::MerchantQr::from_payload(&parsed).ok();
    if json_output {
        println!(
            "{}",
            json!({
                "valid": true,
                "crc": crc,
                "fields": fields_json(&parsed.fields),
                "vietqr": vietqr.as_ref().map(vietqr_json),
                "merchant": merchant.as_ref().map(|m| json!({
                    "dynamic": m.dynamic,
                    "currency": m.currency,
                    "amount": m.amount.map(|a| a.to_string()),
                    "country": m.country,
                    "merchant_name": m.merchant_name,
                    "city": m.city,
                    "mcc": m.mcc,
                })),
            })
        );
    } else {
        print_fields(&parsed.fields, 0);
        println!("CRC {crc}: valid");
        if let Some(v) = &vietqr {
            println!(
                "VietQR: bank BIN {}, {} {}, amount {}, purpose {}",
                v.bin,
                if v.service == VietQrService::ToCard {
                    "card"
                } else {
                    "account"
                },
                v.account,
                v.amount.map_or("(none)".to_owned(), |a| format!("{a} VND")),
                v.purpose.as_deref().unwrap_or("(none)"),
            );
        }
    }
    0
}

fn vietqr(args: VietQrArgs, json_output: bool) -> u8 {
    let amount = match args
        .amount
        .as_deref()
        .map(|a| parse_amount(a, Currency::Vnd, None))
    {
        Some(Ok(amount)) => Some(amount),
        Some(Err(error)) => {
            eprintln!("qrpayctl: --amount: {error}");
            return 2;
        }
        None => None,
    };
    let service = if args.card {
        VietQrService::ToCard
    } else {
        VietQrService::ToAccount
    };
    let mut code = VietQr::new(args.bin, args.account, service);
    code.amount = amount;
    code.purpose = args.purpose;
    let text = match code.encode() {
        Ok(text) => text,
        Err(error) => {
            eprintln!("qrpayctl: {error}");
            return 2;
        }
    };
    if let Some(path) = &args.png {
        let written =
            display::qr_image(&text, 8).and_then(|image| display::write_png_atomic(path, &image));
        if let Err(error) = written {
            eprintln!("qrpayctl: {error}");
            return 1;
        }
    }
    if json_output {
        println!("{}", json!({ "payload": text, "png": args.png }));
    } else {
        println!("{text}");
        if let Ok(qr) = display::terminal_qr(&text) {
            println!("{qr}");
        }
    }
    0
}

fn fields_json(fields: &[Field]) -> Value {
    Value::Array(
        fields
            .iter()
            .map(|f| match &f.value {
                EmvValue::Primitive(v) => json!({ "tag": format!("{:02}", f.tag), "value": v }),
                EmvValue::Template(inner) => {
                    json!({ "tag": format!("{:02}", f.tag), "fields": fields_json(inner) })
                }
            })
            .collect(),
    )
}

fn print_fields(fields: &[Field], depth: usize) {
    for field in fields {
        let pad = "  ".repeat(depth);
        match &field.value {
            EmvValue::Primitive(value) => println!("{pad}{:02} {value}", field.tag),
            EmvValue::Template(inner) => {
                println!("{pad}{:02}", field.tag);
                print_fields(inner, depth + 1);
            }
        }
    }
}

fn vietqr_json(v: &VietQr) -> Value {
    json!({
        "bin": v.bin,
        "account": v.account,
        "service": v.service.code(),
        "amount": v.amount.map(|a| a.to_string()),
        "currency": v.currency,
        "country": v.country,
        "bill": v.bill,
        "reference": v.reference,
        "terminal": v.terminal,
        "purpose": v.purpose,
    })
}
