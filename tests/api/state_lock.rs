//! One daemon per state directory: a second daemon on the same `state_dir`, even on another
//! bus, refuses to start and names the first one's PID; the lock goes with the first daemon,
//! whether it is dropped or killed with `kill -9`.

use std::path::Path;

use qrpayd::config::Config;
use qrpayd::daemon::{Daemon, StartError};
use qrpayd::dbus::PrivateBus;

use crate::harness::*;

/// A bus of its own in `dir/name`, and the config of a daemon on it keeping its state in
/// `state` (written to `dir/name/qrpayd.toml`).
fn bus_and_config(
    dir: &Path,
    name: &str,
    state: &Path,
) -> (PrivateBus, Config, std::path::PathBuf) {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).expect("bus directory");
    let bus = PrivateBus::start(&home).expect("private bus");
    let path = home.join("qrpayd.toml");
    let text = config_text(state, bus.address(), "");
    std::fs::write(&path, &text).expect("config file");
    let config = Config::parse(&text, &path).expect("config");
    (bus, config, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_state_dir_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let (_bus_a, first_config, _) = bus_and_config(dir.path(), "a", &state);
    let (_bus_b, second_config, _) = bus_and_config(dir.path(), "b", &state);

    let first = Daemon::start(&first_config)
        .await
        .expect("the first starts");
    let refused = Daemon::start(&second_config)
        .await
        .err()
        .expect("the second is refused");
    let me = std::process::id();
    assert!(
        matches!(&refused, StartError::AlreadyRunning { pid: Some(pid), .. } if *pid == me),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(message.contains(&format!("PID {me}")), "{message}");
    assert!(message.contains(&state.display().to_string()), "{message}");

    // Dropped, the first lets go: the same process starts a daemon there again at once.
    drop(first);
    let again = Daemon::start(&second_config).await;
    assert!(again.is_ok(), "restart in-process: {:?}", again.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_qrpayd_process_exits_naming_the_first_and_kill_9_frees_the_lock() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let (bus_a, _, first_path) = bus_and_config(dir.path(), "a", &state);
    let (_bus_b, second_config, second_path) = bus_and_config(dir.path(), "b", &state);
    let mut first = Process::start(&first_path, None);
    let _client = ready_client(&bus_a).await;
    let first_pid = first.pid().expect("running");

    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_qrpayd"))
        .arg("run")
        .arg("--config")
        .arg(&second_path)
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the second qrpayd");
    let output = tokio::time::timeout(EVENT_TIMEOUT, second.wait_with_output())
        .await
        .expect("the second qrpayd exits by itself")
        .expect("its output");
    assert!(!output.status.success(), "{:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("PID {first_pid}")), "{stderr}");

    // The kernel releases a killed process's lock: a daemon takes the directory at once.
    first.kill_9();
    let after = Daemon::start(&second_config).await;
    assert!(after.is_ok(), "start after kill -9: {:?}", after.err());
}
