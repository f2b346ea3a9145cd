//! The command lines as a cashier, a till developer or the store's IT run them: exit codes and
//! what they print.

use std::path::Path;
use std::process::Output;

use qrpayd::config::Config;
use qrpayd::daemon::Daemon;
use qrpayd::dbus::PrivateBus;

async fn run(program: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(program)
        .args(args)
        .env_remove("QRPAYD_BUS")
        .env_remove("QRPAYD_CONFIG")
        .output()
        .await
        .expect("run the binary")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn config(state: &Path, bus: &str) -> String {
    format!(
        "[daemon]\nbus = \"{bus}\"\nstate_dir = \"{}\"\nterminal_id = \"CLI-01\"\ndefault_currency = \"MNT\"\nmax_amount = \"1000000\"\n\n[display]\npng_path = \"{}\"\n\n[providers.simulator]\npoll_interval_ms = 100\n",
        state.display(),
        state.join("display.png").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_exits_0_or_1_naming_the_key_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config(dir.path(), "system")).expect("write");
    let output = run(
        env!("CARGO_BIN_EXE_qrpayd"),
        &["check-config", "--config", good.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"MNT\"\nmax_amount = 5\n",
    )
    .expect("write");
    let output = run(
        env!("CARGO_BIN_EXE_qrpayd"),
        &["check-config", "--config", bad.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let message = text(&output);
    assert!(
        message.contains("line 4") && message.contains("max_amount"),
        "{message}"
    );
}

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

/// The newcomer's path: `qrpayd demo` takes one payment end to end and ends settled; with
/// `--keep` its directory stays for a look at the frame and the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_settles_one_payment() {
    let output = run(env!("CARGO_BIN_EXE_qrpayd"), &["demo", "--keep"]).await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(0), "{printed}");
    for expected in [
        "Checkout(source_id=demo-order-1",
        "signal AttemptChanged ATT000001 100_PAYMENT 302_SUCCESS",
        "signal TransactionChanged TXN000001 304_SETTLED paid 12500.0000",
        "TXN000001 304_SETTLED: total 12500.0000 MNT, paid 12500.0000",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} missing from:\n{printed}"
        );
    }
    let dir = printed
        .lines()
        .find_map(|l| l.strip_prefix("qrpayd demo: everything lives in "))
        .expect("the demo names its directory");
    assert!(Path::new(dir).join("display.png").exists());
    std::fs::remove_dir_all(dir).expect("clean up the demo directory");
}

/// Regression: `qrpayd demo` left a directory behind on every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_removes_its_directory_unless_told_to_keep_it() {
    let output = run(env!("CARGO_BIN_EXE_qrpayd"), &["demo"]).await;
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(0), "{printed}");
    let dir = printed
        .lines()
        .find_map(|l| l.strip_prefix("qrpayd demo: everything lives in "))
        .expect("the demo names its directory");
    assert!(!Path::new(dir).exists(), "{dir} is left behind");
    assert!(printed.contains("--keep"), "{printed}");
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

/// Under systemd (`Type=notify`): `READY=1` once serving, then on SIGTERM `STOPPING=1` and a
/// clean exit 0 within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qrpayd_run_notifies_systemd_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let bus = PrivateBus::start(dir.path()).expect("bus");
    let config_path = dir.path().join("qrpayd.toml");
    std::fs::write(
        &config_path,
        config(&dir.path().join("state"), bus.address()),
    )
    .expect("config");
    let socket_path = dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("notify socket");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_qrpayd"))
        .args(["run", "--config"])
        .arg(&config_path)
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("QRPAYD_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn qrpayd");
    let ready = receive(&socket).await;
    assert!(ready.contains("READY=1"), "{ready:?}");

    let pid = child.id().expect("pid") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stopping = receive(&socket).await;
    assert!(stopping.contains("STOPPING=1"), "{stopping:?}");
    let status = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait())
        .await
        .expect("exits within 5 s")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// The next datagram on a notify socket, as text.
async fn receive(socket: &tokio::net::UnixDatagram) -> String {
    let mut buffer = [0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), socket.recv(&mut buffer))
        .await
        .expect("a notification in time")
        .expect("receive");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// A daemon with the simulator on a private bus, for the `qrpayctl` tests.
struct Till {
    dir: tempfile::TempDir,
    bus: PrivateBus,
    daemon: Option<Daemon>,
    client: qrpayd::dbus::client::Client,
}

impl Till {
    async fn start() -> Till {
        let dir = tempfile::tempdir().expect("dir");
        let bus = PrivateBus::start(dir.path()).expect("bus");
        let text = config(&dir.path().join("state"), bus.address());
        let parsed = Config::parse(&text, &dir.path().join("qrpayd.toml")).expect("config");
        let daemon = Daemon::start(&parsed).await.expect("daemon");
        let client =
            qrpayd::dbus::client::Client::connect(&qrpayd::dbus::BusAddress::parse(bus.address()))
                .await
                .expect("client");
        Till {
            dir,
            bus,
            daemon: Some(daemon),
            client,
        }
    }

    async fn ctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["--bus", self.bus.address()];
        all.extend_from_slice(args);
        run(env!("CARGO_BIN_EXE_qrpayctl"), &all).await
    }

    /// `qrpayctl --json pay ... --wait` running, once its Checkout reply is printed.
    async fn waiting_pay(&self, args: &[&str]) -> (tokio::process::Child, Lines, Value) {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_qrpayctl"))
            .args(["--bus", self.bus.address(), "--json", "pay", "--wait"])
            .args(args)
            .env_remove("QRPAYD_BUS")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn qrpayctl");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = within(lines.next_line())
            .await
            .expect("read")
            .expect("the Checkout reply");
        let reply: Value = serde_json::from_str(&first).expect("json");
        (child, lines, reply)
    }
}

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

/// Awaits `future` for at most 20 s (an upper bound on an event, not a sleep).
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(20), future)
        .await
        .expect("in time")
}

/// The rest of a child's output and its exit code.
async fn finish(
    child: tokio::process::Child,
    mut lines: Lines,
) -> (Option<i32>, Vec<String>, String) {
    let mut rest = Vec::new();
    while let Some(line) = within(lines.next_line()).await.expect("read") {
        rest.push(line);
    }
    let output = within(child.wait_with_output()).await.expect("wait");
    (
        output.status.code(),
        rest,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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

/// `qrpayd dev` with no session bus: a private bus it prints as `export QRPAYD_BUS=…`, which
/// `qrpayctl` finds through the environment; the simulated customer pays on their own; the
/// kiosk page is on loopback; Ctrl-C stops it cleanly, removing its temporary directory but
/// not `--state-dir`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qrpayd_dev_serves_a_private_bus_pays_on_its_own_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("dir");
    let state = dir.path().join("kept-state");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_qrpayd"));
    command
        .args([
            "dev",
            "--auto-pay-after-ms",
            "200",
            "--kiosk-listen",
            "127.0.0.1:0",
        ])
        .arg("--state-dir")
        .arg(&state)
        // No session bus, hermetically.
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", dir.path().join("none").display()),
        )
        .env("XDG_RUNTIME_DIR", dir.path());
    let (mut child, mut lines, banner) = start_dev(command).await;
    let find = |prefix: &str| {
        banner
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix:?} in {banner:#?}"))
            .to_owned()
    };
    let address = find("export QRPAYD_BUS=");
    assert!(address.starts_with("unix:path="), "{banner:#?}");
    assert!(find("bus:").contains("private"), "{banner:#?}");
    assert!(find("state:").contains("kept-state"), "{banner:#?}");
    let kiosk = find("kiosk page:");
    assert!(kiosk.trim().starts_with("http://127.0.0.1:"), "{banner:#?}");
    let png = std::path::PathBuf::from(find("display PNG:").trim());
    let run_dir = png.parent().expect("the run directory").to_owned();

    let paid = within(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_qrpayctl"))
            .args(["pay", "--amount", "1000", "--wait"])
            .env("QRPAYD_BUS", &address)
            .output(),
    )
    .await
    .expect("run qrpayctl");
    assert_eq!(paid.status.code(), Some(0), "{}", text(&paid));
    assert!(text(&paid).contains("settled"), "{}", text(&paid));

    let pid = child.id().expect("pid") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let mut rest = Vec::new();
    while let Some(line) = within(lines.next_line()).await.expect("read") {
        rest.push(line);
    }
    let status = within(child.wait()).await.expect("wait");
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l == "qrpayd dev: stopped"), "{rest:?}");
    assert!(!run_dir.exists(), "{} is left behind", run_dir.display());
    assert!(
        state.join(qrpayd::store::Store::FILE_NAME).exists(),
        "--state-dir is kept"
    );
}

/// With a session bus (here a private broker standing in for it), `qrpayd dev` serves there and
/// `qrpayctl --bus session` finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qrpayd_dev_takes_the_session_bus_when_there_is_one() {
    let dir = tempfile::tempdir().expect("dir");
    let session = PrivateBus::start(dir.path()).expect("bus");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_qrpayd"));
    command
        .args(["dev", "--kiosk-listen", "127.0.0.1:0"])
        .env("DBUS_SESSION_BUS_ADDRESS", session.address());
    let (_child, _lines, banner) = start_dev(command).await;
    assert!(
        banner.iter().any(|l| l == "  export QRPAYD_BUS=session"),
        "{banner:#?}"
    );
    let status = within(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_qrpayctl"))
            .args(["--bus", "session", "status"])
            .env("DBUS_SESSION_BUS_ADDRESS", session.address())
            .env_remove("QRPAYD_BUS")
            .output(),
    )
    .await
    .expect("run qrpayctl");
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(
        text(&status).contains("on the session bus"),
        "{}",
        text(&status)
    );
}

/// Starts `qrpayd dev` and reads its banner, up to "Ctrl-C stops it.".
async fn start_dev(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, Lines, Vec<String>) {
    let mut child = command
        .env_remove("QRPAYD_BUS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn qrpayd dev");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    while let Some(line) = within(lines.next_line()).await.expect("read") {
        let done = line.starts_with("Ctrl-C");
        banner.push(line);
        if done {
            break;
        }
    }
    (child, lines, banner)
}

/// Regression: `check-config` passed `bus = "sesion"`, `log_level = "verbose"` (the daemon then
/// logs nothing), a lone `vietqr` provider with `default_currency = "MNT"` and a `png_path` in
/// a missing directory, and said `providers: none` for real providers. Each is refused naming
/// the key; an unknown key gets the nearest known one; TOML errors keep their lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_refuses_what_would_not_work_and_lists_the_providers_enabled() {
    let dir = tempfile::tempdir().expect("dir");
    let base = "[daemon]\nterminal_id = \"T1\"\ndefault_currency = \"VND\"\n";
    let vietqr = "[providers.vietqr]\nbin = \"970416\"\naccount = \"1\"\n";
    let png = format!(
        "[display]\npng_path = \"{}\"\n",
        dir.path().join("display.png").display()
    );
    let check = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        async move {
            run(
                env!("CARGO_BIN_EXE_qrpayd"),
                &["check-config", "--config", path.to_str().expect("utf-8")],
            )
            .await
        }
    };
    for (name, config_text, expected) in [
        (
            "bus.toml",
            format!("{base}bus = \"sesion\"\n{png}{vietqr}"),
            vec!["line 4", "daemon.bus", "did you mean \"session\""],
        ),
        (
            "level.toml",
            format!("{base}log_level = \"verbose\"\n{png}{vietqr}"),
            vec!["line 4", "daemon.log_level", "\"verbose\" is not a level"],
        ),
        (
            "currency.toml",
            format!("{base}{png}{vietqr}").replace("VND", "MNT"),
            vec!["daemon.default_currency", "vietqr", "takes VND only"],
        ),
        (
            "png.toml",
            format!(
                "{base}[display]\npng_path = \"{}\"\n{vietqr}",
                dir.path().join("missing/display.png").display()
            ),
            vec!["display.png_path", "does not exist"],
        ),
        (
            "unknown.toml",
            format!("{base}log_levl = \"info\"\n{vietqr}"),
            vec![
                "line 4",
                "\n",
                "unknown field `log_levl`",
                "did you mean `log_level`?",
            ],
        ),
    ] {
        let output = check(name, config_text).await;
        let printed = text(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {printed}");
        for part in expected {
            assert!(
                printed.contains(part),
                "{name}: {part:?} missing from {printed}"
            );
        }
    }
    let valid = check(
        "valid.toml",
        format!("{base}{png}{vietqr}[providers.simulator]\n").replace(
            "default_currency = \"VND\"\n",
            "default_currency = \"VND\"\ndefault_provider = \"vietqr\"\n",
        ),
    )
    .await;
    assert_eq!(valid.status.code(), Some(0), "{}", text(&valid));
    assert!(
        text(&valid).contains("providers: simulator, vietqr, system (cash); default vietqr in VND"),
        "{}",
        text(&valid)
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
