//! OpenTelemetry traces: the SDK's tracer with the OTLP/HTTP exporter
//! ([`crate::otlp`]), and W3C trace context in and out (`traceparent`
//! headers and `params._meta.traceparent`). Request spans are built with the
//! tracer directly, not through `tracing` ([`crate::request_span`]).
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
use serde_json::value::RawValue;

use crate::TelemetryError;
use crate::otlp::{ExportConfig, OtlpExporter};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// The exporter's tracer: the request spans ([`crate::request_span`]) and
/// their steps' child spans ([`crate::phase`]) are built with it directly.
static TRACER: std::sync::OnceLock<opentelemetry_sdk::trace::Tracer> = std::sync::OnceLock::new();

/// The batch processor, shared with the provider: the steps' child spans
/// are handed to it as finished records ([`crate::phase`]).
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

/// The current request span's `traceparent`, to pass on to an upstream.
pub fn traceparent() -> Option<String> {
    crate::note::propagated(|p| p.traceparent.to_str().ok().map(str::to_owned)).flatten()
}

/// Adds `traceparent` (and `tracestate`) for the current request's span to
/// an upstream HTTP request's headers.
pub fn inject_headers(headers: &mut http::HeaderMap) {
    if !enabled() {
        return;
    }
    crate::note::propagated(|p| {
        headers.insert("traceparent", p.traceparent.clone());
        if let Some(ts) = &p.tracestate {
            headers.insert("tracestate", ts.clone());
        }
    });
}

/// [`inject_meta`] on a message's raw params: the same text back while
/// tracing is off, for a message without a method (a response), or when
/// there is no span; else the params with `_meta` set (a request without
/// params gets `{"_meta": …}`).
pub fn inject_meta_raw(
    method: Option<&str>,
    params: Option<Box<RawValue>>,
) -> Option<Box<RawValue>> {
    if !enabled() || method.is_none() {
        return params;
    }
    // The common case, an object without `_meta`: the context goes in front
    // of its first member, without parsing and writing the whole params.
    if let Some(p) = params.as_deref()
        && !p.get().contains("\"_meta\"")
        && p.get().trim_start().starts_with('{')
    {
        let Some(meta) = crate::note::propagated(|p| p.meta.clone()) else {
            return params;
        };
        return splice_meta(p, &meta).or(params);
    }
    let mut value = match params.as_deref() {
        Some(p) => match serde_json::from_str::<serde_json::Value>(p.get()) {
            Ok(v) => v,
            Err(_) => return params,
        },
        None => serde_json::Value::Object(Default::default()),
    };
    inject_meta(&mut value);
    serde_json::value::to_raw_value(&value).ok().or(params)
}

/// `{"_meta": meta, …the object's members}` from an object's text that
/// has no `_meta` (`meta`: the context as a JSON object); `None` when
/// `params` is not an object.
fn splice_meta(params: &RawValue, meta: &str) -> Option<Box<RawValue>> {
    let rest = params.get().trim_start().strip_prefix('{')?;
    let comma = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    let mut out = String::with_capacity(10 + meta.len() + rest.len());
    out.push_str("{\"_meta\":");
    out.push_str(meta);
    out.push_str(comma);
    out.push_str(rest);
    RawValue::from_string(out).ok()
}

/// Sets `params._meta.traceparent` (and `tracestate`) for the current span in
/// a JSON-RPC request's params object, so that stdio upstreams continue the
/// trace too. Params that are not an object are left alone.
pub fn inject_meta(params: &mut serde_json::Value) {
    if !enabled() {
        return;
    }
    let Some(context) = crate::note::propagated(|p| {
        let mut c = vec![("traceparent", p.traceparent.clone())];
        if let Some(ts) = &p.tracestate {
            c.push(("tracestate", ts.clone()));
        }
        c
    }) else {
        return;
    };
    let Some(obj) = params.as_object_mut() else {
        return;
    };
    let meta = obj
        .entry("_meta")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let Some(meta) = meta.as_object_mut() {
        for (k, v) in context {
            if let Ok(v) = v.to_str() {
                meta.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
