//! The process's `tracing` subscriber: log lines to stderr (human or JSON);
//! and, when configured, the span exporter ([`crate::pipeline::start`]).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::TelemetryError;

/// The access log's target (`MCPGATE_LOG=mcpgate::access=off` silences it).
pub const ACCESS_TARGET: &str = "mcpgate::access";

static ACCESS_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Switches the access log on or off (`[telemetry] access_log`; off until
/// `serve` says so).
pub fn set_access_log(on: bool) {
    ACCESS_LOG.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether access log lines are written: switched on, and not silenced by
/// the log filter (`MCPGATE_LOG=…,mcpgate::access=off`). The flag comes
/// first: with per-layer filters `enabled!` cannot say "no" on its own.
pub(crate) fn access_log() -> bool {
    ACCESS_LOG.load(std::sync::atomic::Ordering::Relaxed)
        && tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
}
use crate::pipeline::{TraceSettings, Tracing};

/// Installs the subscriber and starts the span exporter when configured.
/// `filter` is the log filter (`MCPGATE_LOG` or the default). Spans do not go
/// through `tracing`: request spans are OpenTelemetry spans from the start
/// (`request_span.rs`), so log lines carry no span prefix and the
/// exporter sees no log events. `colour` is the caller's decision (a
/// terminal, no `NO_COLOR`) for human lines.
pub fn init_logging(
    json: bool,
    colour: bool,
    filter: &str,
    traces: &TraceSettings,
) -> Result<Option<Tracing>, TelemetryError> {
    let log_filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().with_filter(log_filter).boxed()
    } else {
        fmt.fmt_fields(crate::log_fields::LogFields)
            .with_ansi(colour)
            .with_filter(log_filter)
            .boxed()
    };
    let tracing = crate::pipeline::start(traces)?;
    let _ = tracing_subscriber::registry().with(fmt).try_init();
    Ok(tracing)
}
