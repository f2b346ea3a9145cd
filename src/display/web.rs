//! The kiosk page's server (`[display.web]`): a local HTTP listener, like the AppotaPay IPN
//! listener, that a kiosk browser on the customer screen shows.
//!
//! - `GET /`: the page (`page.html`), self-contained: the font inlined as WOFF2, CSS and script
//!   inline, the current snapshot inline so the first paint is already right.
//! - `GET /events`: Server-Sent Events. Each `snapshot` event holds a full snapshot (never a
//!   difference, so nothing can be missed), the current one first on every (re)connection; a
//!   `ping` event every ten seconds keeps the connection alive and lets the page notice a dead
//!   one. Every message carries `now_ms`, the daemon's clock, so the page counts down on it.
//! - `GET /state`: the current snapshot as JSON.
//!
//! It listens on loopback unless the config says otherwise, and only serves GET: it shows what
//! the customer screen shows anyway, and changes nothing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;

use super::font::{BOLD_WOFF2, REGULAR_WOFF2};
use super::{Hub, Snapshot};
use crate::domain::Timestamp;

/// How often an idle event stream carries a `ping`.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// How long the page waits before it reconnects after the stream broke (SSE `retry`).
const RETRY: Duration = Duration::from_millis(1000);

/// The page without its per-request snapshot.
const PAGE: &str = include_str!("page.html");

/// A snapshot on the wire: the snapshot and the daemon's clock.
#[derive(Serialize)]
struct Wire<'a> {
    now_ms: i64,
    #[serde(flatten)]
    snapshot: &'a Snapshot,
}

/// The JSON of `snapshot` with the time now.
fn wire_json(snapshot: &Snapshot) -> String {
    let wire = Wire {
        now_ms: Timestamp::now().0,
        snapshot,
    };
    // A struct of strings and numbers always serialises.
    serde_json::to_string(&wire).unwrap_or_else(|_| "{}".to_owned())
}

/// The running kiosk page server. Dropping it stops it and ends its event streams.
#[derive(Debug)]
pub struct WebSink {
    address: SocketAddr,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    hub: Arc<Hub>,
    stop: watch::Receiver<bool>,
}

impl WebSink {
    /// Listens on `listen` and serves the page for `hub`'s snapshots.
    ///
    /// # Errors
    ///
    /// The bind's error (the address is taken, or not this machine's).
    pub async fn start(listen: SocketAddr, hub: Arc<Hub>) -> std::io::Result<WebSink> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let app = axum::Router::new()
            .route("/", get(page))
            .route("/events", get(events))
            .route("/state", get(state))
            .with_state(Shared {
                hub,
                stop: stopped.clone(),
            });
        let mut until = stopped;
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = until.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%error, "the customer display page server stopped");
            }
        });
        if !address.ip().is_loopback() {
            tracing::warn!(%address, "the customer display page is served beyond this machine");
        }
        tracing::info!(%address, "customer display page ready");
        Ok(WebSink {
            address,
            stop,
            server,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for WebSink {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.server.abort();
    }
}

/// The page's fixed part: the template with the fonts inlined (once).
fn page_template() -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let engine = base64::engine::general_purpose::STANDARD;
        PAGE.replace("{{FONT_REGULAR}}", &engine.encode(REGULAR_WOFF2))
            .replace("{{FONT_BOLD}}", &engine.encode(BOLD_WOFF2))
    })
}

/// The page as it is served now: the template with the current snapshot.
pub fn page_html(snapshot: &Snapshot) -> String {
    // Inside <script>, "</" could end the element: JSON may write it as "<\/".
    let json = wire_json(snapshot).replace("</", "<\\/");
    page_template()
        .replace("{{LANG}}", snapshot.lang.code())
        .replace("{{INITIAL}}", &json)
}

async fn page(State(shared): State<Shared>) -> Response {
    let html = page_html(&shared.hub.current());
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn state(State(shared): State<Shared>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        wire_json(&shared.hub.current()),
    )
        .into_response()
}

async fn events(State(shared): State<Shared>) -> Response {
    let stream = snapshot_events(shared.hub.subscribe(), shared.stop.clone());
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Sse::new(stream),
    )
        .into_response()
}

/// What the event stream is doing.
struct Streaming {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    stop: watch::Receiver<bool>,
    ping: tokio::time::Interval,
    first: bool,
}

/// The current snapshot at once, then every change, with a ping when nothing else was sent for
/// [`PING_INTERVAL`]; ends when the server stops.
fn snapshot_events(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    stop: watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let streaming = Streaming {
        snapshots,
        stop,
        ping,
        first: true,
    };
    futures_util::stream::unfold(streaming, |mut s| async move {
        if s.first {
            s.first = false;
            // The interval's first tick is immediate: spend it now, so the next is a period away.
            s.ping.tick().await;
            let snapshot = s.snapshots.borrow_and_update().clone();
            return Some((Ok(snapshot_event(&snapshot)), s));
        }
        let event = tokio::select! {
            changed = s.snapshots.changed() => match changed {
                Ok(()) => {
                    let snapshot = s.snapshots.borrow_and_update().clone();
                    s.ping.reset();
                    snapshot_event(&snapshot)
                }
                Err(_) => return None,
            },
            _ = s.ping.tick() => Event::default()
                .event("ping")
                .data(format!("{{\"now_ms\":{}}}", Timestamp::now().0)),
            _ = s.stop.wait_for(|stop| *stop) => return None,
        };
        Some((Ok(event), s))
    })
}

fn snapshot_event(snapshot: &Snapshot) -> Event {
    Event::default()
        .event("snapshot")
        .retry(RETRY)
        .data(wire_json(snapshot))
}
