//! The loopback redirect receiver (RFC 8252 §7.3): an HTTP server on
//! 127.0.0.1 that takes one authorization response from the browser, shows a
//! short page and stops. The `state` and `iss` checks follow in the caller
//! ([`code_from_response`](super::code_from_response)).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::error::ClientError;

/// The path the browser is sent back to.
pub(super) const CALLBACK_PATH: &str = "/callback";

/// How long the server may take to hand the page over once the response came.
const FINISH: Duration = Duration::from_secs(5);

/// A bound loopback listener.
#[derive(Debug)]
pub struct Loopback {
    listener: TcpListener,
    port: u16,
}

/// Where the first callback's query pairs go; taken by that request.
type Slot = Arc<Mutex<Option<oneshot::Sender<Vec<(String, String)>>>>>;

impl Loopback {
    /// Binds 127.0.0.1 on `port` (0: an ephemeral port).
    pub async fn bind(port: u16) -> Result<Self, ClientError> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
            ClientError::Config(format!(
                "cannot listen on 127.0.0.1:{port} for the sign-in callback: {e}"
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| ClientError::Config(format!("callback listener: {e}")))?
            .port();
        Ok(Self { listener, port })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub fn redirect_uri(&self) -> String {
        redirect_uri(self.port)
    }

    /// Waits for the browser's request to the callback path; answers it with
    /// a short page and returns its query pairs. Other requests (a favicon)
    /// get 404 and are skipped.
    pub async fn wait(self, timeout: Duration) -> Result<Vec<(String, String)>, ClientError> {
        let (tx, rx) = oneshot::channel();
        let slot: Slot = Arc::new(Mutex::new(Some(tx)));
        let app = axum::Router::new()
            .route(CALLBACK_PATH, axum::routing::any(callback))
            .fallback(|| async { page(StatusCode::NOT_FOUND, "Not found") })
            .with_state(slot);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        let got = tokio::time::timeout(timeout, rx).await;
        // Stop taking requests; the page of the one taken is still delivered.
        let _ = stop.send(());
        if got.is_ok() && tokio::time::timeout(FINISH, server).await.is_err() {
            tracing::debug!("the browser kept the callback connection open; not waiting for it");
        }
        match got {
            Ok(Ok(pairs)) => Ok(pairs),
            Ok(Err(_)) => Err(ClientError::Authorization(
                "the callback listener stopped before the browser came back".into(),
            )),
            Err(_) => Err(ClientError::NeedsPerson(format!(
                "no sign-in arrived within {}s; run the command again, or use --manual \
                 (paste the redirect URL) or --device",
                timeout.as_secs()
            ))),
        }
    }
}

/// The browser's return: hands the query on (the first time only) and says
/// whether to go back to the terminal.
async fn callback(State(slot): State<Slot>, RawQuery(query): RawQuery) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let ok = pairs.iter().any(|(k, _)| k == "code");
    let sender = slot.lock().ok().and_then(|mut s| s.take());
    if let Some(sender) = sender {
        let _ = sender.send(pairs);
    }
    let msg = if ok {
        "Signed in. You can close this tab and return to the terminal."
    } else {
        "Sign-in did not complete. Return to the terminal for details."
    };
    page(StatusCode::OK, msg)
}

fn page(status: StatusCode, msg: &str) -> Response {
    let body = format!("<!doctype html><meta charset=utf-8><title>mcpgate</title><p>{msg}</p>");
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The loopback redirect URI for a port.
pub(super) fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}{CALLBACK_PATH}")
}
