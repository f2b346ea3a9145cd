//! `qrpayctl` as a cashier and a script use it: exit codes, `pay --wait`, summaries and tables,
//! colour on a terminal, `--json`, hints that work when pasted, and the offline `qr` tools.

use serde_json::Value;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qrpayctl_exit_codes_tell_usage_refusal_provider_and_unreachable_apart() {
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let text_config = config(&dir.path().join("state"), bus.address());
    let parsed = Config::parse(&text_config, &dir.path().join("qrpayd.toml")).expect("config");
    let _daemon = Daemon::start(&parsed).await.expect("daemon");
    let ctl = env!("CARGO_BIN_EXE_qrpayctl");
    let address = bus.address();

    let usage = run(ctl, &["--bus", address, "pay"]).await;
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));

    let paid = run(
        ctl,
        &[
            "--bus", address, "--json", "pay", "--amount", "2500", "--order", "cli-1",
        ],
    )
    .await;
    assert_eq!(paid.status.code(), Some(0), "{}", text(&paid));
    let reply: serde_json::Value =
        serde_json::from_slice(&paid.stdout).expect("pay --json prints JSON");
    assert_eq!(reply["attempt_status"], "204_SENT");
    let attempt_id = reply["attempt_id"].as_str().expect("attempt_id");

    let human = run(
        ctl,
        &[
            "--bus", address, "pay", "--amount", "2500", "--order", "cli-1",
        ],
    )
    .await;
    assert_eq!(human.status.code(), Some(0));
    assert!(
        text(&human).contains('█'),
        "pay draws the QR in the terminal"
    );

    let refused = run(ctl, &["--bus", address, "pay", "--amount", "1e5"]).await;
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(text(&refused).contains("InvalidArgument"));

    let provider = run(
        ctl,
        &[
            "--bus",
            address,
            "pay",
            "--amount",
            "10",
            "--provider",
            "qpay",
        ],
    )
    .await;
    assert_eq!(provider.status.code(), Some(4), "{}", text(&provider));

    // Card details travel as Checkout keys; the simulator takes no cards: refused by name, and
    // the number is not echoed back.
    let card = run(
        ctl,
        &[
            "--bus",
            address,
            "pay",
            "--amount",
            "10",
            "--bank-code",
            "VCB",
            "--card-number",
            "9704000000000018",
            "--card-holder-name",
            "NGUYEN VAN A",
            "--card-month",
            "03",
            "--card-year",
            "07",
        ],
    )
    .await;
    assert_eq!(card.status.code(), Some(3), "{}", text(&card));
    assert!(text(&card).contains("InvalidArgument"), "{}", text(&card));
    assert!(!text(&card).contains("9704000000000018"), "{}", text(&card));

    let simulated = run(ctl, &["--bus", address, "simulate", "pay", attempt_id]).await;
    assert_eq!(simulated.status.code(), Some(0), "{}", text(&simulated));
    let status = run(ctl, &["--bus", address, "--json", "status", "cli-1"]).await;
    assert_eq!(
        status.status.code(),
        Some(3),
        "an order id is not a transaction id: {}",
        text(&status)
    );
    let list = run(ctl, &["--bus", address, "--json", "list"]).await;
    assert_eq!(list.status.code(), Some(0));
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    let nowhere = format!("unix:path={}", dir.path().join("no-bus").display());
    let unreachable = run(ctl, &["--bus", &nowhere, "status"]).await;
    assert_eq!(unreachable.status.code(), Some(5), "{}", text(&unreachable));
}

/// Regression: with the bus up and no daemon on it, the bus's `ServiceUnknown` was taken for a
/// refusal by qrpayd (exit 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_daemon_on_the_bus_is_unreachable_exit_5_and_json_errors_go_to_stderr() {
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let ctl = env!("CARGO_BIN_EXE_qrpayctl");
    let output = run(ctl, &["--bus", bus.address(), "status", "TXN000001"]).await;
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(text(&output).contains("not running"), "{}", text(&output));

    let output = run(
        ctl,
        &["--bus", bus.address(), "--json", "pay", "--amount", "10"],
    )
    .await;
    assert_eq!(output.status.code(), Some(5));
    assert!(output.stdout.is_empty());
    let error: Value = serde_json::from_slice(&output.stderr).expect("a JSON error on stderr");
    assert_eq!(error["error"], "Unreachable");
    assert_eq!(error["exit_code"], 5);

    let usage = run(ctl, &["--json", "pay"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&usage.stderr).expect("a JSON usage error");
    assert_eq!(error["error"], "Usage");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("--amount")),
        "{error}"
    );

    let till = Till::start().await;
    let refused = till.ctl(&["--json", "pay", "--amount", "1e5"]).await;
    assert_eq!(refused.status.code(), Some(3));
    let error: Value = serde_json::from_slice(&refused.stderr).expect("json");
    assert_eq!(error["error"], "InvalidArgument");
    assert_eq!(error["name"], "org.qrpayd.Pay1.Error.InvalidArgument");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("amount")),
        "{error}"
    );
}

/// `pay --wait` ends with the payment, and its exit status says how: settled 0, expired 6,
/// failed 7, cancelled 8; its `--json` lines name their signal as `watch --json` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_wait_exits_with_a_distinct_code_for_each_end() {
    let till = Till::start().await;

    let (child, lines, reply) = till
        .waiting_pay(&["--amount", "1000", "--order", "w-paid"])
        .await;
    till.client
        .simulate_pay(reply["attempt_code"].as_str().expect("code"), "")
        .await
        .expect("pay");
    let (code, rest, stderr) = finish(child, lines).await;
    assert_eq!(code, Some(0), "{rest:?} {stderr}");
    let parsed: Vec<Value> = rest
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert!(
        parsed
            .iter()
            .any(|l| l["signal"] == "AttemptChanged" && l["args"]["status"] == "302_SUCCESS"),
        "{rest:?}"
    );
    let last = parsed.last().expect("an outcome line");
    assert_eq!(last["outcome"], "settled");
    assert_eq!(last["transaction_status"], "304_SETTLED");

    // The same order again is settled already: at once, exit 0, no QR.
    let again = within(till.ctl(&["pay", "--amount", "1000", "--order", "w-paid", "--wait"])).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("already settled"), "{}", text(&again));
    assert!(
        !text(&again).contains('█'),
        "no payable-looking QR: {}",
        text(&again)
    );

    let (child, lines, _) = till
        .waiting_pay(&[
            "--amount",
            "1000",
            "--order",
            "w-expired",
            "--expires-in-ms",
            "1000",
        ])
        .await;
    let (code, rest, _) = finish(child, lines).await;
    assert_eq!(code, Some(6), "{rest:?}");

    let (child, lines, reply) = till
        .waiting_pay(&["--amount", "1000", "--order", "w-failed"])
        .await;
    till.client
        .simulate_fail(reply["attempt_id"].as_str().expect("id"))
        .await
        .expect("fail");
    let (code, rest, _) = finish(child, lines).await;
    assert_eq!(code, Some(7), "{rest:?}");

    let (child, lines, reply) = till
        .waiting_pay(&["--amount", "1000", "--order", "w-cancel"])
        .await;
    let cancel = till
        .ctl(&[
            "cancel",
            "--attempt",
            reply["attempt_code"].as_str().expect("code"),
        ])
        .await;
    assert_eq!(cancel.status.code(), Some(0), "{}", text(&cancel));
    assert!(
        text(&cancel).contains("cancelled by ATT"),
        "{}",
        text(&cancel)
    );
    let (code, rest, _) = finish(child, lines).await;
    assert_eq!(code, Some(8), "{rest:?}");

    // Part paid, then the QR cancelled: the attempt ends with what it received, the rest due.
    let (child, lines, reply) = till
        .waiting_pay(&["--amount", "1000", "--order", "w-part", "--allow-partial"])
        .await;
    let code = reply["attempt_code"].as_str().expect("code");
    let mut signals = till.client.watch().await.expect("watch");
    till.client
        .simulate_pay(code, "400")
        .await
        .expect("pay part");
    until_status(&mut signals, "300_PARTIAL").await;
    let cancel = till.ctl(&["cancel", "--attempt", code]).await;
    assert_eq!(cancel.status.code(), Some(0), "{}", text(&cancel));
    let (exit, rest, _) = finish(child, lines).await;
    assert_eq!(exit, Some(9), "{rest:?}");
    let last: Value = serde_json::from_str(rest.last().expect("outcome")).expect("json");
    assert_eq!(last["outcome"], "partly_paid");
    assert_eq!(last["transaction_status"], "300_PARTIAL");
}

/// Regression: `pay --wait` waited for ever, silently, when the daemon stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_wait_notices_the_daemon_leaving_and_exits_5() {
    let mut till = Till::start().await;
    let (child, lines, _) = till
        .waiting_pay(&["--amount", "1000", "--order", "w-left"])
        .await;
    drop(till.daemon.take());
    let (code, _, stderr) = finish(child, lines).await;
    assert_eq!(code, Some(5), "{stderr}");
    let error: Value = serde_json::from_str(stderr.trim()).expect("json error");
    assert_eq!(error["error"], "DaemonLeft");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("left the bus")
                && m.contains(&format!("--bus {}", till.bus.address()))),
        "{error}"
    );
    let _ = &till.dir;
}

/// Waits (at most 20 s) for a signal whose status is `status`.
async fn until_status(
    signals: &mut (impl futures_util::Stream<Item = qrpayd::dbus::client::Signal> + Unpin),
    status: &str,
) {
    within(async {
        while let Some(signal) = futures_util::StreamExt::next(signals).await {
            if signal.args["status"] == status {
                return;
            }
        }
        panic!("the signals ended before {status}");
    })
    .await;
}

/// What a cashier reads: one-line summaries, a table with a header and the refunded column, no
/// colour when the output is not a terminal, and hints that carry the `--bus` in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_is_summaries_and_tables_with_hints_that_carry_the_bus() {
    let till = Till::start().await;
    let paid = till
        .ctl(&["pay", "--amount", "12500", "--order", "h-1"])
        .await;
    let printed = text(&paid);
    assert_eq!(paid.status.code(), Some(0), "{printed}");
    let first = printed.lines().next().expect("a summary");
    assert!(
        first.starts_with("TXN000001 ATT000001 12,500₮ waiting, expires "),
        "{printed}"
    );
    assert!(printed.contains('█'), "the QR: {printed}");
    assert!(
        printed.contains(&format!(
            "qrpayctl --bus {} simulate pay ATT000001",
            till.bus.address()
        )),
        "{printed}"
    );
    assert!(
        !printed.contains('\x1b'),
        "no colour into a pipe: {printed:?}"
    );

    let cash = till
        .ctl(&[
            "pay",
            "--amount",
            "3000",
            "--order",
            "h-cash",
            "--provider",
            "system",
        ])
        .await;
    let printed = text(&cash);
    assert!(printed.contains("waiting for cash"), "{printed}");
    assert!(
        printed.contains(&format!(
            "qrpayctl --bus {} cash --attempt ATT000002 --tendered AMOUNT",
            till.bus.address()
        )),
        "{printed}"
    );

    let mut signals = till.client.watch().await.expect("watch");
    till.client
        .simulate_pay("ATT000001", "")
        .await
        .expect("pay");
    until_status(&mut signals, "304_SETTLED").await;
    let refund = till
        .ctl(&["refund", "--attempt", "ATT000001", "--amount", "2500"])
        .await;
    assert_eq!(refund.status.code(), Some(0), "{}", text(&refund));
    assert!(
        text(&refund).starts_with("refund ATT000003 of 2500: refunded"),
        "{}",
        text(&refund)
    );

    let list = till.ctl(&["list"]).await;
    let table = text(&list);
    let mut rows = table.lines();
    let header = rows.next().expect("header");
    for column in [
        "NUMBER", "STATUS", "TOTAL", "PAID", "REFUNDED", "SOURCE", "CREATED",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let row = rows
        .find(|row| row.starts_with("TXN000001"))
        .expect("the settled sale's row");
    assert!(
        row.starts_with("TXN000001  304_SETTLED")
            && row.contains("2,500₮")
            && row.contains("Order h-1"),
        "{table}"
    );

    let status = till.ctl(&["status", "TXN000001"]).await;
    let printed = text(&status);
    assert!(
        printed.starts_with("TXN000001 12,500₮ settled: paid 12,500₮, refunded 2,500₮"),
        "{printed}"
    );
    assert!(
        printed.contains("ATT000003  300_REFUND_PAYMENT"),
        "{printed}"
    );

    let daemon = till.ctl(&["status"]).await;
    assert!(
        text(&daemon).contains("providers simulator, system"),
        "{}",
        text(&daemon)
    );
}

/// Output to a terminal: statuses in colour unless `NO_COLOR` is set, and `pay --wait` counts
/// down to the QR's expiry (neither happens into a pipe, as the other tests show).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_statuses_are_coloured_unless_no_color_and_pay_wait_counts_down() {
    let till = Till::start().await;
    let paid = till
        .client
        .checkout(
            &[
                (
                    "source_id".to_owned(),
                    qrpayd::dbus::client::Arg::from("tty-1"),
                ),
                ("amount".to_owned(), qrpayd::dbus::client::Arg::from("1000")),
            ]
            .into_iter()
            .collect(),
        )
        .await
        .expect("checkout");
    let mut signals = till.client.watch().await.expect("watch");
    till.client
        .simulate_pay(paid["attempt_id"].as_str().expect("id"), "")
        .await
        .expect("pay");
    until_status(&mut signals, "304_SETTLED").await;

    let (code, coloured) = on_a_terminal(&till, &["list"], None).await;
    assert_eq!(code, Some(0), "{coloured}");
    assert!(
        coloured.contains("\x1b[32m304_SETTLED\x1b[0m"),
        "{coloured:?}"
    );
    let (_, plain) = on_a_terminal(&till, &["list"], Some("1")).await;
    assert!(
        plain.contains("304_SETTLED") && !plain.contains('\x1b'),
        "{plain:?}"
    );

    let (code, waited) = on_a_terminal(
        &till,
        &[
            "pay",
            "--amount",
            "100",
            "--expires-in-ms",
            "1500",
            "--wait",
        ],
        Some("1"),
    )
    .await;
    assert_eq!(code, Some(6), "{waited}");
    assert!(
        waited.contains("waiting for the customer: 0:0"),
        "{waited:?}"
    );
}

/// Runs `qrpayctl --bus … ARGS` with its standard output on a new pseudo-terminal (and
/// `NO_COLOR` as given), and returns its exit code and everything it wrote there.
async fn on_a_terminal(
    till: &Till,
    args: &[&str],
    no_color: Option<&str>,
) -> (Option<i32>, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors into the integers given; the rest are null.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned by these files alone.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_qrpayctl"));
    command
        .arg("--bus")
        .arg(till.bus.address())
        .args(args)
        .env_remove("QRPAYD_BUS")
        .env_remove("NO_COLOR")
        .stdout(slave)
        .stderr(std::process::Stdio::null());
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let mut child = command.spawn().expect("spawn qrpayctl");
    // The parent's end of the terminal goes with the command, so reading ends with the child.
    drop(command);
    within(tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        // A pseudo-terminal's master reads EIO once no process holds the other end.
        while let Ok(n) = master.read(&mut buffer) {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buffer[..n]);
        }
        let status = child.wait().expect("wait");
        (status.code(), String::from_utf8_lossy(&bytes).into_owned())
    }))
    .await
    .expect("join")
}

/// A VietQR to the merchant's own account: `qrpayctl pay` tells the cashier how to confirm it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qrpayctl_pay_guides_the_cashier_through_a_vietqr_transfer() {
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let text_config = format!(
        "{}\n[providers.vietqr]\nbin = \"970416\"\naccount = \"257678859\"\n",
        config(&dir.path().join("state"), bus.address())
    )
    .replace(
        "max_amount = \"1000000\"",
        "max_amount = \"1000000\"\ndefault_provider = \"simulator\"",
    );
    let parsed = Config::parse(&text_config, &dir.path().join("qrpayd.toml")).expect("config");
    let _daemon = Daemon::start(&parsed).await.expect("daemon");
    let ctl = env!("CARGO_BIN_EXE_qrpayctl");
    let paid = run(
        ctl,
        &[
            "--bus",
            bus.address(),
            "pay",
            "--amount",
            "150000",
            "--currency",
            "VND",
            "--provider",
            "vietqr",
        ],
    )
    .await;
    assert_eq!(paid.status.code(), Some(0), "{}", text(&paid));
    let printed = text(&paid);
    assert!(printed.contains("purpose \"QRP ATT000001\""), "{printed}");
    // The hint works when pasted: it names the bus in use and the attempt by its code.
    assert!(
        printed.contains(&format!(
            "qrpayctl --bus {} cash --attempt ATT000001 --tendered 150000",
            bus.address()
        )),
        "{printed}"
    );
}

const VIETQR_VECTOR: &str = "00020101021238530010A0000007270123000697041601092576788590208QRIBFTTA5303704540410005802VN62150811Chuyen tien6304BBB8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_decode_prints_fields_and_exits_1_on_a_bad_crc() {
    let ctl = env!("CARGO_BIN_EXE_qrpayctl");
    let good = run(ctl, &["--json", "qr", "decode", VIETQR_VECTOR]).await;
    assert_eq!(good.status.code(), Some(0), "{}", text(&good));
    let decoded: serde_json::Value = serde_json::from_slice(&good.stdout).expect("json");
    assert_eq!(decoded["valid"], true);
    assert_eq!(decoded["crc"], "BBB8");
    assert_eq!(decoded["vietqr"]["bin"], "970416");
    assert_eq!(decoded["vietqr"]["purpose"], "Chuyen tien");

    let corrupt = VIETQR_VECTOR.replace("Chuyen", "Chuyan");
    let bad = run(ctl, &["qr", "decode", &corrupt]).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("CRC"), "{}", text(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_vietqr_builds_the_reference_vector_and_a_png_that_scans() {
    let dir = tempfile::tempdir().expect("dir");
    let png = dir.path().join("vietqr.png");
    let ctl = env!("CARGO_BIN_EXE_qrpayctl");
    let output = run(
        ctl,
        &[
            "--json",
            "qr",
            "vietqr",
            "--bin",
            "970416",
            "--account",
            "257678859",
            "--amount",
            "1000",
            "--purpose",
            "Chuyen tien",
            "--png",
            png.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(reply["payload"], VIETQR_VECTOR);
    let image = image::open(&png).expect("png").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    let (_, content) = grids[0].decode().expect("decodes");
    assert_eq!(content, VIETQR_VECTOR);

    let bad_amount = run(
        ctl,
        &[
            "qr",
            "vietqr",
            "--bin",
            "970416",
            "--account",
            "1",
            "--amount",
            "10.5",
        ],
    )
    .await;
    assert_eq!(bad_amount.status.code(), Some(2));
}
