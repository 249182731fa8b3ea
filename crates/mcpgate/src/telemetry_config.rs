//! `[metrics]`, `[telemetry]` and `[audit]` as the configuration file has them
//! (what they start: `observability.rs`).

use std::net::SocketAddr;

use mcpgate_telemetry::ToolArguments;
use serde::Deserialize;

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsConfig {
    /// Where `GET /metrics` is served; `""` switches it off.
    #[serde(default = "default_metrics_listen", deserialize_with = "listen_or_off")]
    pub(crate) listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}

/// The default exporter address (Prometheus's registry lists 9464 for OpenTelemetry exporters).
pub(crate) const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

fn default_metrics_listen() -> Option<SocketAddr> {
    Some(DEFAULT_METRICS_LISTEN)
}

fn listen_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim().parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not an address: use host:port (e.g. \"127.0.0.1:9464\"), or \"\" to switch /metrics off"
        ))
    })
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelemetryConfig {
    /// The OTLP/HTTP collector's base URL; `OTEL_EXPORTER_OTLP_ENDPOINT` works too.
    #[serde(default)]
    pub(crate) otlp_endpoint: Option<String>,
    /// `service.name` (default `mcpgate`; `OTEL_SERVICE_NAME` wins).
    #[serde(default)]
    pub(crate) service_name: Option<String>,
    /// The share of new traces sampled (`OTEL_TRACES_SAMPLER` wins).
    #[serde(default)]
    pub(crate) sample_ratio: Option<f64>,
    /// One log line per HTTP request (target `mcpgate::access`).
    #[serde(default = "yes")]
    pub(crate) access_log: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: None,
            sample_ratio: None,
            access_log: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditConfig {
    /// Record security events in the store.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// `digest` (default), `full` or `none`.
    #[serde(default)]
    pub(crate) tool_arguments: ToolArguments,
    /// Also write each record as a JSON line: `"stdout"` or a file path.
    #[serde(default)]
    pub(crate) mirror: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            tool_arguments: ToolArguments::default(),
            mirror: None,
        }
    }
}
