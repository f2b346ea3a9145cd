//! The optional local IPN listener: accepts AppotaPay's notifications forwarded to the terminal
//! (`POST` of `{"data": base64(json), "signature": hex}`), checks the signature in constant
//! time before reading anything, and hands the invoice id on. It never changes a payment
//! itself: the daemon applies an IPN exactly like a poll result, only after AppotaPay's status
//! API agrees. A bad signature is answered `400` and changes nothing.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::ipn::{IPN_ACK_BODY, IpnError, verify_ipn};

/// The path AppotaPay's notifications are posted to.
pub const IPN_PATH: &str = "/appotapay/ipn";

#[derive(Deserialize)]
struct IpnBody {
    data: String,
    signature: String,
}

#[derive(Clone)]
struct Shared {
    secret: SecretString,
    invoices: mpsc::Sender<String>,
}

/// A running listener; dropping it stops it.
pub struct IpnListener {
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl IpnListener {
    /// Listens on `address` (loopback unless the config says otherwise) and sends the invoice id
    /// of every correctly signed IPN to `invoices`.
    pub async fn start(
        address: SocketAddr,
        secret: SecretString,
        invoices: mpsc::Sender<String>,
    ) -> std::io::Result<IpnListener> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let app = axum::Router::new()
            .route(IPN_PATH, post(receive))
            .with_state(Shared { secret, invoices });
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the AppotaPay IPN listener stopped");
            }
        });
        tracing::info!(%address, path = IPN_PATH, "AppotaPay IPN listener ready");
        Ok(IpnListener { address, server })
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
            tracing::info!(
                provider = "appotapay",
                invoice_id = %payload.invoice_id,
                "IPN received; checking with the status API"
            );
            if shared.invoices.send(payload.invoice_id).await.is_err() {
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "ShuttingDown");
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
