//! The tracing pipeline: the SDK's tracer and batch processor with the
//! OTLP/HTTP exporter ([`crate::otlp`]), whether traces are on, and W3C trace
//! context read from a caller (`traceparent` headers and
//! `params._meta.traceparent`). The request spans and their steps' child
//! spans are built on top of it; what goes out to upstreams is in
//! [`crate::trace`]. A leaf below both, so that neither imports the other
//! back.
//!
//! Off unless `[telemetry] otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `…_TRACES_ENDPOINT`) is set; while off, every function here returns at
//! its first line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator as _, RandomIdGenerator, Sampler,
    SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor,
};

use crate::TelemetryError;
use crate::otlp::{ExportConfig, OtlpExporter};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// The exporter's tracer: the request spans and their steps' child spans
/// are built with it directly.
static TRACER: std::sync::OnceLock<opentelemetry_sdk::trace::Tracer> = std::sync::OnceLock::new();

/// The batch processor, shared with the provider: the steps' child spans
/// are handed to it as finished records.
static PROCESSOR: std::sync::OnceLock<std::sync::Arc<BatchSpanProcessor>> =
    std::sync::OnceLock::new();

pub(crate) fn tracer() -> Option<&'static opentelemetry_sdk::trace::Tracer> {
    TRACER.get().filter(|_| enabled())
}

/// Queues a finished span for export.
pub(crate) fn export_span(span: SpanData) {
    if let Some(p) = PROCESSOR.get().filter(|_| enabled()) {
        p.on_end(span);
    }
}

/// A new span id, as the SDK's tracer makes them.
pub(crate) fn new_span_id() -> opentelemetry::trace::SpanId {
    RandomIdGenerator::default().new_span_id()
}

/// The instrumentation scope of mcpgate's spans (the tracer's).
pub(crate) fn scope() -> &'static opentelemetry::InstrumentationScope {
    static SCOPE: std::sync::LazyLock<opentelemetry::InstrumentationScope> =
        std::sync::LazyLock::new(|| {
            opentelemetry::InstrumentationScope::builder(SCOPE_NAME).build()
        });
    &SCOPE
}

const SCOPE_NAME: &str = "mcpgate";

/// The batch processor's queue, in spans, unless `OTEL_BSP_MAX_QUEUE_SIZE` says.
const QUEUE_SIZE: usize = 16_384;

/// The provider's handle on the shared processor. The exporter is given the
/// resource before the processor is built, so there is nothing to set here.
#[derive(Debug)]
struct Shared(std::sync::Arc<BatchSpanProcessor>);

impl SpanProcessor for Shared {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
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
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Exports the spans still queued and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("the OpenTelemetry exporter did not shut down cleanly: {e}");
        }
        ENABLED.store(false, Ordering::Relaxed);
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
    let mut resource = Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(
            settings
                .service_name
                .clone()
                .unwrap_or_else(|| "mcpgate".to_owned()),
        );
    }
    let resource = resource.build();
    let mut exporter = OtlpExporter::new(config, runtime);
    exporter.set_resource(&resource);
    // `OTEL_BSP_*` set the batch sizes and delay. Unset, the queue holds
    // 16,384 spans instead of the SDK's 2,048: at ten thousand requests a
    // second (three spans each) 2,048 is 70 ms, less than one export to a
    // slow collector takes, and the spans beyond it were dropped.
    let mut batch = BatchConfigBuilder::default();
    if !env_set("OTEL_BSP_MAX_QUEUE_SIZE") {
        batch = batch.with_max_queue_size(QUEUE_SIZE);
    }
    let processor = std::sync::Arc::new(
        BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch.build())
            .build(),
    );
    let mut provider = SdkTracerProvider::builder()
        .with_span_processor(Shared(processor.clone()))
        .with_resource(resource);
    if let (Some(ratio), false) = (settings.sample_ratio, env_set("OTEL_TRACES_SAMPLER")) {
        provider = provider.with_sampler(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(ratio.clamp(0.0, 1.0)),
        )));
    }
    let provider = provider.build();
    let _ = TRACER.set(provider.tracer(SCOPE_NAME));
    let _ = PROCESSOR.set(processor);
    ENABLED.store(true, Ordering::Relaxed);
    Ok(Some(Tracing { provider }))
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

fn valid(cx: opentelemetry::Context) -> Option<opentelemetry::Context> {
    cx.span().span_context().is_valid().then_some(cx)
}

/// The caller's trace context from a `traceparent` header, when valid.
pub(crate) fn parent_from_headers(headers: &http::HeaderMap) -> Option<opentelemetry::Context> {
    if !enabled() || !headers.contains_key("traceparent") {
        return None;
    }
    valid(TraceContextPropagator::new().extract(&Headers(headers)))
}

/// The trace context a `params._meta.traceparent` names, when valid.
pub(crate) fn parent_from_meta(
    traceparent: &str,
    tracestate: Option<&str>,
) -> Option<opentelemetry::Context> {
    if !enabled() {
        return None;
    }
    let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(ts) = tracestate {
        carrier.insert("tracestate".to_owned(), ts.to_owned());
    }
    valid(TraceContextPropagator::new().extract(&carrier))
}
