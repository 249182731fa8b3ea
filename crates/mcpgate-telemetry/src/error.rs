//! The crate's one error type.

use std::net::SocketAddr;

/// Why telemetry could not start. Each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// `[metrics] listen` cannot be bound.
    #[error("cannot listen for /metrics on {addr} (metrics.listen): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The OTLP exporter cannot be configured (a malformed endpoint URL,
    /// headers or an unsupported compression).
    #[error(
        "cannot start the OpenTelemetry exporter (telemetry.otlp_endpoint or OTEL_EXPORTER_OTLP_*): {0}"
    )]
    Otlp(String),
}
