//! The tracing pipeline: the sampler, the export queue and its task with the
//! OTLP/HTTP exporter ([`crate::span_queue`], [`crate::otlp`]), whether
//! traces are on, and W3C trace context read from a caller (`traceparent`
//! headers and `params._meta.traceparent`). Of the OpenTelemetry SDK only
//! the parts that decide something are used: the sampler (configured as
//! the SDK configures it), the id generator, the resource detectors and the
//! W3C propagator; spans are mcpgate's own records, encoded when their
//! request ends. The request spans and their steps' child
//! spans are built on top of it; what goes out to upstreams is in
//! [`crate::trace`]. A leaf below both, so that neither imports the other
//! back.
//!
//! Off unless `[telemetry] otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `…_TRACES_ENDPOINT`) is set; while off, every function here returns at
//! its first line.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SamplingDecision, SpanContext, SpanId, SpanKind, TraceContextExt};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Config, IdGenerator as _, RandomIdGenerator, Sampler, ShouldSample,
};

use crate::TelemetryError;
use crate::otlp::proto::Envelope;
use crate::otlp::{ExportConfig, OtlpExporter};
use crate::span_queue::{Limits, SpanQueue};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// What the request spans need while traces are exported: the sampler and
/// the export queue.
#[derive(Debug)]
struct Pipeline {
    sampler: Box<dyn ShouldSample>,
    queue: Arc<SpanQueue>,
}

static PIPELINE: std::sync::OnceLock<Pipeline> = std::sync::OnceLock::new();

fn pipeline() -> Option<&'static Pipeline> {
    PIPELINE.get().filter(|_| enabled())
}

/// Queues one request's `n` finished spans for export, written by `write`
/// into the batch being filled.
pub(crate) fn export(n: usize, write: impl FnOnce(&mut Vec<u8>)) {
    if let Some(p) = pipeline() {
        p.queue.push(n, write);
    }
}

/// A new span id, as the SDK's tracer makes them.
pub(crate) fn new_span_id() -> SpanId {
    RandomIdGenerator::default().new_span_id()
}

/// A new span's context: in `parent`'s trace (a caller's context) or a new
/// one, sampled as the configured sampler decides, as the SDK's tracer
/// starts a span; `None` while traces are off.
pub(crate) fn new_span(
    parent: Option<&SpanContext>,
    name: &str,
    kind: SpanKind,
) -> Option<SpanContext> {
    let p = pipeline()?;
    let ids = RandomIdGenerator::default();
    let span_id = ids.new_span_id();
    let (trace_id, flags, parent_cx) = match parent {
        Some(sc) => (
            sc.trace_id(),
            sc.trace_flags(),
            opentelemetry::Context::new().with_remote_span_context(sc.clone()),
        ),
        None => (
            ids.new_trace_id(),
            opentelemetry::trace::TraceFlags::default(),
            opentelemetry::Context::new(),
        ),
    };
    let decision = p
        .sampler
        .should_sample(Some(&parent_cx), trace_id, name, &kind, &[], &[]);
    let sampled = decision.decision == SamplingDecision::RecordAndSample;
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags.with_sampled(sampled),
        false,
        decision.trace_state,
    ))
}

/// The sampler: `sample_ratio` as a parent-based ratio, unless
/// `OTEL_TRACES_SAMPLER` names one (read as the SDK reads it).
fn sampler(ratio: Option<f64>) -> Box<dyn ShouldSample> {
    match (ratio, env_set("OTEL_TRACES_SAMPLER")) {
        (Some(ratio), false) => Box::new(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(ratio.clamp(0.0, 1.0)),
        ))),
        _ => Config::default().sampler,
    }
}

/// The `[telemetry]` settings the exporter reads; the standard `OTEL_…`
/// variables win over them.
#[derive(Debug, Clone, Default)]
pub struct TraceSettings {
    /// The collector's base URL (`/v1/traces` is appended), e.g. `http://127.0.0.1:4318`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` (default `mcpgate`; `OTEL_SERVICE_NAME` wins).
    pub service_name: Option<String>,
    /// The share of new traces sampled, 0.0 to 1.0; a caller's sampled flag is
    /// followed (`OTEL_TRACES_SAMPLER` wins).
    pub sample_ratio: Option<f64>,
}

/// The running exporter; [`Tracing::shutdown`] sends what is still queued.
#[derive(Debug)]
pub struct Tracing {
    queue: Arc<SpanQueue>,
    done: std::sync::mpsc::Receiver<()>,
    timeout: std::time::Duration,
}

impl Tracing {
    /// Exports the spans still queued and stops the exporter. Blocks until
    /// the last export is done (or its timeout): call it off the runtime's
    /// threads (`spawn_blocking`).
    pub fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        self.queue.close();
        if self.done.recv_timeout(self.timeout).is_err() {
            tracing::warn!(
                "the OpenTelemetry exporter did not finish within {} s; spans still queued are lost",
                self.timeout.as_secs()
            );
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Starts exporting spans, or returns `None` when no endpoint is configured.
/// Must be called inside the Tokio runtime.
pub fn start(settings: &TraceSettings) -> Result<Option<Tracing>, TelemetryError> {
    let Some(config) = ExportConfig::resolve(settings.otlp_endpoint.as_deref())? else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        TelemetryError::Otlp("the exporter must be started inside the Tokio runtime".to_owned())
    })?;
    // The SDK's detectors: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
    // `telemetry.sdk.*`.
    let mut resource = Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(
            settings
                .service_name
                .clone()
                .unwrap_or_else(|| "mcpgate".to_owned()),
        );
    }
    let envelope = Envelope::new(&resource.build());
    let limits = Limits::from_env();
    let queue = Arc::new(SpanQueue::new(limits, envelope.head_room()));
    let pipeline = Pipeline {
        sampler: sampler(settings.sample_ratio),
        queue: queue.clone(),
    };
    if PIPELINE.set(pipeline).is_err() {
        return Err(TelemetryError::Otlp(
            "the span exporter is already running in this process".to_owned(),
        ));
    }
    let exporter = OtlpExporter::new(config);
    let (done_tx, done) = std::sync::mpsc::channel();
    let task_queue = queue.clone();
    runtime.spawn(async move {
        crate::span_queue::run(task_queue, exporter, envelope).await;
        let _ = done_tx.send(());
    });
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(Tracing {
        queue,
        done,
        // The last export, and a little more.
        timeout: limits.export_timeout + std::time::Duration::from_secs(1),
    }))
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

fn valid(cx: opentelemetry::Context) -> Option<SpanContext> {
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The caller's trace context from a `traceparent` header, when valid.
pub(crate) fn parent_from_headers(headers: &http::HeaderMap) -> Option<SpanContext> {
    // A name made once: a `&str` name is parsed (and checked) on every lookup.
    static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
    if !enabled() || !headers.contains_key(&TRACEPARENT) {
        return None;
    }
    valid(TraceContextPropagator::new().extract(&Headers(headers)))
}

/// The trace context a `params._meta.traceparent` names, when valid.
pub(crate) fn parent_from_meta(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    if !enabled() {
        return None;
    }
    let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(ts) = tracestate {
        carrier.insert("tracestate".to_owned(), ts.to_owned());
    }
    valid(TraceContextPropagator::new().extract(&carrier))
}
