//! The command lines as a cashier, a till developer or the store's IT run them: exit codes and
//! what they print.
//!
//! - `daemon`: `qrpayd`'s commands: `check-config`, `demo`, `run` under systemd, `dev`.
//! - `ctl`: `qrpayctl`: exit codes, `pay --wait`, what people read, `--json`, the `qr` tools.
//!
//! Shared here: running a binary, a daemon on a private bus for `qrpayctl` (`Till`), and
//! awaiting a child's output with an upper bound.

mod ctl;
mod daemon;

use std::path::Path;
use std::process::Output;

use qrpayd::config::Config;
use qrpayd::daemon::Daemon;
use qrpayd::dbus::PrivateBus;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

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
