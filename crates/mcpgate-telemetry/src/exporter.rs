//! `GET /metrics` on its own listener, so that the scrape port can stay
//! private while the gateway's port is public.

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::TelemetryError;

/// The running exporter; dropping it stops the listener.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// The bound address (the port is real when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves the registry at `/metrics` until dropped.
pub async fn serve_metrics(addr: SocketAddr) -> Result<MetricsServer, TelemetryError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    crate::metrics().record(true);
    let app = Router::new().route("/metrics", get(scrape));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the /metrics listener stopped: {e}");
        }
    });
    Ok(MetricsServer { addr: local, task })
}

async fn scrape() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics().encode(),
    )
}
