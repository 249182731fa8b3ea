//! What `[metrics]`, `[telemetry]` and `[audit]` ask for, started with
//! `serve`: the log subscriber with its span exporter, the `/metrics`
//! listener, the audit trail's writer.

use std::time::Duration;

use mcpgate_telemetry::MetricsServer;
use mcpgate_telemetry::trace::{TraceSettings, Tracing};

use crate::config::{Config, LogFormat};
use crate::telemetry_config::DEFAULT_METRICS_LISTEN;

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
    mcpgate_telemetry::set_access_log(cfg.telemetry.access_log);
    let t = &cfg.telemetry;
    mcpgate_telemetry::init_logging(
        cfg.server.log_format == LogFormat::Json,
        crate::logging::colour(),
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
        // Like the other upstreams on an unwritable data directory (/readyz
        // says so): serving goes on, without the trail, and says why.
        match crate::audit_cmd::Writer::start(&cfg.store_url(), &cfg.audit).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!("the audit trail is off: {e}");
                None
            }
        }
    } else {
        None
    };
    Ok(Running {
        metrics,
        audit,
        tracing,
    })
}
