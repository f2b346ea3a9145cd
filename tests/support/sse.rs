//! The kiosk page's server read as a page reads it, over real HTTP on 127.0.0.1: the event
//! stream (`GET /events`) and plain GETs, as HTTP/1.0 so the body is the stream itself (no
//! chunked encoding). Shared by the API tests and the display benchmark.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a read may wait for the next snapshot.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(20);

/// An open `GET /events` stream, read as HTTP/1.0 (no chunked encoding: the body is the
/// event stream itself).
pub struct Events {
    lines: BufReader<TcpStream>,
}

impl Events {
    pub async fn connect(address: SocketAddr) -> Events {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream
            .write_all(b"GET /events HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
            .await
            .expect("request");
        let mut lines = BufReader::new(stream);
        let mut status = String::new();
        lines.read_line(&mut status).await.expect("status line");
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut header = String::new();
            lines.read_line(&mut header).await.expect("header");
            if header.trim().is_empty() {
                break;
            }
            if let Some(kind) = header.to_ascii_lowercase().strip_prefix("content-type:") {
                assert_eq!(kind.trim(), "text/event-stream");
            }
        }
        Events { lines }
    }

    /// The next `snapshot` event's data (pings are skipped).
    pub async fn next(&mut self) -> Value {
        let read = async {
            let (mut event, mut data) = (String::new(), String::new());
            loop {
                let mut line = String::new();
                let n = self.lines.read_line(&mut line).await.expect("read");
                assert!(n > 0, "the event stream ended");
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if event == "snapshot" {
                        return serde_json::from_str::<Value>(&data).expect("JSON");
                    }
                    (event, data) = (String::new(), String::new());
                } else if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
        };
        tokio::time::timeout(SNAPSHOT_TIMEOUT, read)
            .await
            .expect("a snapshot in time")
    }

    /// Snapshots until one `accept`s.
    pub async fn until(&mut self, mut accept: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let snapshot = self.next().await;
            if accept(&snapshot) {
                return snapshot;
            }
        }
    }
}

/// `GET path` over HTTP/1.0: the status, the headers (lower-case names) and the body.
pub async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response)
        .await
        .expect("response");
    let response = String::from_utf8(response).expect("UTF-8");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}
