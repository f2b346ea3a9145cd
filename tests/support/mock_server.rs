//! What every mock provider and back office shares: serving an axum router on 127.0.0.1 until
//! the mock drops, and waiting for its state to change (an event, not a sleep). Each test or
//! bench binary includes the mocks it needs, so each uses part of this file.
#![allow(dead_code)]

use std::time::Duration;

use tokio::sync::watch;

/// A router served on a listener; the serving task ends when this drops.
pub struct Server(tokio::task::JoinHandle<()>);

impl Server {
    /// Serves `router` on `listener` in a task of its own.
    pub fn start(listener: tokio::net::TcpListener, router: axum::Router) -> Server {
        Server(tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A listener on a free port of 127.0.0.1.
pub async fn loopback_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the mock")
}

/// Waits until `done` holds, checking it again after every change `version` announces.
/// Returns whether it held within `within`.
pub async fn wait_until(
    version: &watch::Sender<u64>,
    within: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let mut changes = version.subscribe();
    tokio::time::timeout(within, async {
        loop {
            if done() {
                return;
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
    .await
    .is_ok()
}
