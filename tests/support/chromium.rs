//! Debian's Chromium, headless, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: the browser reads commands on fd 3 and writes replies and events
//! on fd 4, each a JSON message ended by a NUL byte). No WebSocket, no port, no crate: a test
//! opens a page, sets the viewport, waits for what the page shows (through the page's own
//! `qrpayd.waitFor`, so nothing polls or sleeps), reads the DOM and takes screenshots.
//!
//! The browser must be at `/usr/bin/chromium` (`.ci/run` installs Debian's `chromium`); if it is
//! not, the test fails saying so. It runs as root in CI, hence `--no-sandbox`, with a fresh
//! profile in a temporary directory, and never reaches beyond 127.0.0.1 (no background
//! networking, no component updates, no sync, no QUIC).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Where Debian installs Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long one command may take (a wait for a state included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A headless browser with one page.
pub struct Browser {
    child: Child,
    commands: File,
    pending: Pending,
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

/// Two ends of a pipe, both close-on-exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into the array, which we then own.
    let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(result, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts Chromium with a `width` x `height` page. Fails the test if it is not installed.
    pub async fn start(width: u32, height: u32) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser tests need Debian's chromium \
             (apt-get install chromium; .ci/run installs it)"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let (browser_reads, we_write) = pipe();
        let (we_read, browser_writes) = pipe();
        let (read_fd, write_fd) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
        let mut command = Command::new(CHROMIUM);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--mute-audio",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls (dup2) are made, on
        // descriptors that stay open in the parent until the child is spawned.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(read_fd, 3) < 0 || libc::dup2(write_fd, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start chromium");
        drop((browser_reads, browser_writes));

        let pending: Pending = Arc::default();
        let (event_sender, events) = tokio::sync::mpsc::unbounded_channel();
        let replies = pending.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(File::from(we_read));
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop();
                if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                    let waiter = value["id"]
                        .as_u64()
                        .and_then(|id| replies.lock().expect("lock").remove(&id));
                    match waiter {
                        Some(waiter) => {
                            let _ = waiter.send(value);
                        }
                        None => {
                            let _ = event_sender.send(value);
                        }
                    }
                }
                message.clear();
            }
        });
        let mut browser = Browser {
            child,
            commands: File::from(we_write),
            pending,
            events,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        browser.call("Page.enable", json!({})).await;
        browser.set_viewport(width, height).await;
        browser
    }

    /// Sends a command (to the page once attached) and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().expect("lock").insert(id, sender);
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, receiver)
            .await
            .unwrap_or_else(|_| {
                panic!("chromium did not answer {method} within {COMMAND_TIMEOUT:?}")
            })
            .expect("chromium closed the pipe");
        assert!(reply.get("error").is_none(), "{method}: {reply}");
        reply["result"].clone()
    }

    /// Sets the page's size.
    pub async fn set_viewport(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    }

    /// Opens `url` and returns once its load event fired.
    pub async fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        let deadline = tokio::time::Instant::now() + COMMAND_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("{url} did not load within {COMMAND_TIMEOUT:?}"))
                .expect("chromium closed the pipe");
            if event["method"] == "Page.loadEventFired" {
                return;
            }
        }
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until the page shows what `test` (a JavaScript expression over `state`, which has
    /// `snapshot` and `online`) accepts; returns the snapshot then shown.
    pub async fn wait_for(&mut self, test: &str) -> Value {
        self.eval(&format!(
            "qrpayd.waitFor(function (state) {{ return {test}; }}).then(function (state) {{ return state.snapshot; }})"
        ))
        .await
    }

    /// The DOM as it is now, serialised (what `chromium --dump-dom` prints), with every
    /// no-break space written as a plain space.
    pub async fn dom(&mut self) -> String {
        let html = self.eval("document.documentElement.outerHTML").await;
        html.as_str()
            .expect("a string")
            .replace("&nbsp;", " ")
            .replace('\u{a0}', " ")
    }

    /// A screenshot of the page.
    pub async fn screenshot(&mut self) -> image::RgbImage {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("data"))
            .expect("base64");
        image::load_from_memory(&bytes).expect("a PNG").to_rgb8()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The QR codes in `image`, decoded.
pub fn qr_codes_in(image: &image::RgbImage) -> Vec<String> {
    let gray = image::DynamicImage::ImageRgb8(image.clone()).to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(gray);
    prepared
        .detect_grids()
        .iter()
        .filter_map(|grid| grid.decode().ok().map(|(_, content)| content))
        .collect()
}
