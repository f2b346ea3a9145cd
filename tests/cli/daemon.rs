//! `qrpayd`'s commands as the store's IT and a till developer run them: `check-config`, `demo`,
//! `run` under systemd, and the development daemon `dev`.

use std::path::Path;

use tokio::io::AsyncBufReadExt;

use crate::*;

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
