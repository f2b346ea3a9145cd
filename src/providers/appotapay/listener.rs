//! The optional local IPN listener: accepts AppotaPay's notifications forwarded to the terminal
//! (`POST` of `{"data": base64(json), "signature": hex}`), checks the signature in constant
//! time before reading anything, and hands the invoice id on. It never changes a payment
//! itself: the daemon applies an IPN exactly like a poll result, only after AppotaPay's status
//! API agrees. A bad signature is answered `400` and changes nothing.
//!
//! Whatever can reach its address can talk to it, so everything it takes is bounded
//! ([`IpnLimits`]): a body over 16 KiB is answered `413` and never parsed; each connection
//! serves one request and is closed when that request has not been answered within a few
//! seconds of the connection opening (a client that sends half a request and waits, a slow
//! loris, holds nothing for longer); at most a few dozen connections are served at once (more
//! wait in the kernel's accept queue); and the invoice ids go through a queue that coalesces a
//! burst of IPNs for one order into one status check (`ipn_queue`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::ipn::{IPN_ACK_BODY, IpnError, verify_ipn};
use super::ipn_queue::{IpnNotices, IpnQueue, Queued, ipn_queue};

/// The path AppotaPay's notifications are posted to.
pub const IPN_PATH: &str = "/appotapay/ipn";

/// How many distinct invoice ids may wait to be handed to the engine. An IPN beyond that is
/// answered `503`, and AppotaPay sends it again later.
const QUEUE_CAPACITY: usize = 256;

/// What the listener accepts from its clients.
#[derive(Debug, Clone, Copy)]
pub struct IpnLimits {
    /// The largest request body, in bytes; a larger one is answered `413`. AppotaPay's IPNs
    /// are well under 2 KiB.
    pub max_body: usize,
    /// How long a connection may take, from being accepted, to deliver its one request and be
    /// answered. It is then closed whatever it was doing.
    pub request_timeout: Duration,
    /// How many connections are served at once.
    pub max_connections: usize,
    /// How long an order handed on for a status check is held: IPNs for it meanwhile make
    /// one more check when the period ends (see `ipn_queue`).
    pub quiet_period: Duration,
}

impl Default for IpnLimits {
    fn default() -> IpnLimits {
        IpnLimits {
            max_body: 16 * 1024,
            request_timeout: Duration::from_secs(5),
            max_connections: 32,
            quiet_period: Duration::from_secs(1),
        }
    }
}

#[derive(Deserialize)]
struct IpnBody {
    data: String,
    signature: String,
}

#[derive(Clone)]
struct Shared {
    secret: SecretString,
    queue: IpnQueue,
}

/// A running listener; dropping it stops it.
pub struct IpnListener {
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl IpnListener {
    /// Listens on `address` (loopback unless the config says otherwise) within `limits`.
    /// Returns the listener and the notices of the invoices named by correctly signed IPNs.
    pub async fn start(
        address: SocketAddr,
        secret: SecretString,
        limits: IpnLimits,
    ) -> std::io::Result<(IpnListener, IpnNotices)> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let (queue, notices) = ipn_queue(QUEUE_CAPACITY, limits.quiet_period);
        let app = axum::Router::new()
            .route(IPN_PATH, post(receive))
            .layer(DefaultBodyLimit::max(limits.max_body))
            .with_state(Shared { secret, queue });
        let server = tokio::spawn(serve(listener, app, limits));
        tracing::info!(%address, path = IPN_PATH, "AppotaPay IPN listener ready");
        Ok((IpnListener { address, server }, notices))
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for IpnListener {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections while fewer than `limits.max_connections` are open, and serves each on
/// a task of its own: one request (no keep-alive), within `limits.request_timeout`.
async fn serve(listener: tokio::net::TcpListener, app: axum::Router, limits: IpnLimits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: give the connections open a moment to finish
                // rather than spin.
                tracing::warn!(%error, "cannot accept an IPN connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(limits.request_timeout, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "an IPN connection failed");
                }
                Err(_) => tracing::info!(
                    provider = "appotapay",
                    %peer,
                    timeout_ms = limits.request_timeout.as_millis() as u64,
                    "IPN connection closed: no complete request in time"
                ),
            }
            drop(permit);
        });
    }
}

async fn receive(State(shared): State<Shared>, body: axum::body::Bytes) -> impl IntoResponse {
    let refuse = |status: StatusCode, name: &str| {
        (
            status,
            [("content-type", "application/json")],
            serde_json::json!({ "status": "error", "error": name }).to_string(),
        )
    };
    let Ok(ipn) = serde_json::from_slice::<IpnBody>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "InvalidArgument");
    };
    match verify_ipn(&shared.secret, &ipn.data, &ipn.signature) {
        Ok(payload) => {
            let invoice_id = payload.invoice_id;
            match shared.queue.push(&invoice_id) {
                Queued::Now => tracing::info!(
                    provider = "appotapay",
                    invoice_id,
                    "IPN received; checking with the status API"
                ),
                Queued::Already => tracing::debug!(
                    provider = "appotapay",
                    invoice_id,
                    "IPN received; merged with a check of this order already queued"
                ),
                Queued::Full => {
                    tracing::warn!(
                        provider = "appotapay",
                        invoice_id,
                        "IPN refused: too many orders wait to be checked"
                    );
                    return refuse(StatusCode::SERVICE_UNAVAILABLE, "Busy");
                }
                Queued::Closed => return refuse(StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown"),
            }
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                IPN_ACK_BODY.to_owned(),
            )
        }
        Err(IpnError::SignatureMismatch) => {
            tracing::warn!(
                provider = "appotapay",
                "IPN refused: the signature does not match"
            );
            refuse(StatusCode::BAD_REQUEST, "SignatureMismatch")
        }
        Err(IpnError::Malformed(what)) => {
            tracing::warn!(provider = "appotapay", what, "IPN refused: unreadable");
            refuse(StatusCode::BAD_REQUEST, "InvalidArgument")
        }
    }
}
