//! `qrpayctl sync`: the upstream sync as IT sees it. `sync` prints its status (state, pending
//! events, the oldest one's age, parked events, the last success), `sync now` wakes it and
//! prints where it got to, `sync parked` lists the events the back office refused with its
//! answer, `sync retry [SEQ]` sends one parked event (or all of them) again.

use std::time::Duration;

use clap::Subcommand;
use futures_util::StreamExt;
use serde_json::Value;

use crate::dbus::client::{Client, ClientError};

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Wake the sync at once (through any back-off or pause) and print where it got to.
    Now,
    /// List the events the back office refused for good, with its answer.
    Parked,
    /// Send a parked event again (SEQ from `sync parked`), or every parked event.
    Retry {
        /// The parked event's SEQ (from `sync parked`); every parked event when omitted.
        seq: Option<i64>,
    },
}

/// How long `sync now` waits for the sync to get somewhere before printing its status.
const NOW_WAIT: Duration = Duration::from_secs(30);

/// Runs one `qrpayctl sync` command.
pub async fn run(
    client: &Client,
    command: Option<SyncCommand>,
    json: bool,
) -> Result<(), ClientError> {
    match command {
        None => print_status(&client.sync_status().await?, json),
        Some(SyncCommand::Now) => {
            let mut signals = client.watch().await?;
            let before = client.sync_status().await?;
            client.sync_now().await?;
            if before["pending"] != 0 {
                // Until the state or the count moves (or the wait ends): what happened next.
                let _ = tokio::time::timeout(NOW_WAIT, async {
                    while let Some(signal) = signals.next().await {
                        let changed = &signal.args["changed"];
                        if signal.name == "PropertiesChanged"
                            && (changed.get("SyncState").is_some_and(|s| s != "syncing")
                                || changed.get("PendingSync") == Some(&Value::from(0)))
                        {
                            return;
                        }
                    }
                })
                .await;
            }
            print_status(&client.sync_status().await?, json);
        }
        Some(SyncCommand::Parked) => {
            let rows = client.list_parked_sync().await?;
            if json {
                println!("{rows}");
                return Ok(());
            }
            let rows = rows.as_array().cloned().unwrap_or_default();
            for row in &rows {
                let field = |key: &str| row[key].as_str().unwrap_or("-").to_owned();
                println!(
                    "{:>8}  {}  {:<12} {:<26} {}",
                    row["seq"],
                    field("parked_at"),
                    field("transaction_number"),
                    field("kind"),
                    field("answer"),
                );
            }
            println!(
                "{} parked event(s){}",
                rows.len(),
                if rows.is_empty() {
                    ""
                } else {
                    "; fix the cause, then: qrpayctl sync retry [SEQ]"
                }
            );
        }
        Some(SyncCommand::Retry { seq }) => {
            let count = client.retry_sync(seq).await?;
            if json {
                println!("{}", serde_json::json!({ "retried": count }));
            } else {
                println!("{count} parked event(s) sent again");
            }
        }
    }
    Ok(())
}

fn print_status(status: &Value, json: bool) {
    if json {
        println!("{status}");
        return;
    }
    let last = status["last_sync_at"].as_str().filter(|s| !s.is_empty());
    println!("state: {}", status["state"].as_str().unwrap_or("-"));
    println!("pending: {}", status["pending"]);
    println!("oldest pending: {} s", status["oldest_pending_seconds"]);
    println!("parked: {}", status["parked"]);
    println!("last success: {}", last.unwrap_or("never"));
}
