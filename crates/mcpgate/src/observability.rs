//! `[metrics]`, `[telemetry]` and `[audit]`: the settings, and starting what
//! they ask for when `serve` starts (the log subscriber with its span
//! exporter, the `/metrics` listener, the audit trail's writer).

use std::net::SocketAddr;
use std::time::Duration;

use mcpgate_telemetry::trace::{TraceSettings, Tracing};
use mcpgate_telemetry::{MetricsServer, ToolArguments};
use serde::Deserialize;

use crate::config::{Config, LogFormat};

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

/// Installs the log subscriber (and the span exporter when configured);
/// replaces `logging::init` for `serve`. A failure is printed here.
pub(crate) fn init_logging(cfg: &Config) -> Result<Option<Tracing>, ()> {
    let default = "info,mcpgate::upstream::stderr=info";
    let mut filter = std::env::var("MCPGATE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .filter(|f| tracing_subscriber::EnvFilter::try_new(f).is_ok())
        .unwrap_or_else(|| default.to_owned());
    if !cfg.telemetry.access_log {
        filter.push_str(",mcpgate::access=off");
    }
    let t = &cfg.telemetry;
    mcpgate_telemetry::init_logging(
        cfg.server.log_format == LogFormat::Json,
        &filter,
        &TraceSettings {
            otlp_endpoint: t.otlp_endpoint.clone(),
            service_name: t.service_name.clone(),
            sample_ratio: t.sample_ratio,
        },
    )
    .map_err(|e| eprintln!("mcpgate: {e}"))
}

/// What `serve` keeps running besides the gateway.
pub(crate) struct Running {
    metrics: Option<MetricsServer>,
    audit: Option<crate::audit_cmd::Writer>,
    tracing: Option<Tracing>,
}

impl Running {
    /// The `/metrics` URL, when served.
    pub(crate) fn metrics_url(&self) -> Option<String> {
        self.metrics
            .as_ref()
            .map(|m| format!("http://{}/metrics", m.local_addr()))
    }

    /// Writes the audit records still queued and the spans still buffered.
    pub(crate) async fn stop(self) {
        if let Some(a) = self.audit {
            a.flush(Duration::from_secs(3)).await;
        }
        if let Some(t) = self.tracing {
            // Exporting blocks on the network: not on a runtime thread.
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
        drop(self.metrics);
    }
}

/// Starts the `/metrics` listener and the audit writer. A listener that
/// cannot bind is an error when configured, a warning when it is the default
/// (a second mcpgate on the machine keeps working without it).
pub(crate) async fn start(cfg: &Config, tracing: Option<Tracing>) -> Result<Running, String> {
    let metrics = match cfg.metrics.listen {
        None => None,
        Some(addr) => match mcpgate_telemetry::serve_metrics(addr).await {
            Ok(m) => {
                tracing::info!(url = %format!("http://{}/metrics", m.local_addr()), "serving metrics");
                Some(m)
            }
            Err(e) if addr == DEFAULT_METRICS_LISTEN => {
                tracing::warn!(
                    "{e}; metrics are not exported (set [metrics] listen, or \"\" to silence this)"
                );
                None
            }
            Err(e) => return Err(e.to_string()),
        },
    };
    let audit = if cfg.audit.enabled {
        Some(crate::audit_cmd::Writer::start(&cfg.server.data_dir, &cfg.audit).await?)
    } else {
        None
    };
    Ok(Running {
        metrics,
        audit,
        tracing,
    })
}
