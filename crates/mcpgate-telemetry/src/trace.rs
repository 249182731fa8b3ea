//! OpenTelemetry traces: the OTLP/HTTP exporter behind a `tracing` layer,
//! and W3C trace context in and out (`traceparent` headers and
//! `params._meta.traceparent`).
//!
//! Off unless `[telemetry] otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `…_TRACES_ENDPOINT`) is set; while off, every function here returns at
//! its first line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, span_processor_with_async_runtime};
use serde_json::value::RawValue;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use crate::TelemetryError;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// The exporter's tracer, for the request steps' child spans ([`crate::phase`]).
static TRACER: std::sync::OnceLock<opentelemetry_sdk::trace::Tracer> = std::sync::OnceLock::new();

pub(crate) fn tracer() -> Option<&'static opentelemetry_sdk::trace::Tracer> {
    TRACER.get().filter(|_| enabled())
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

/// The `tracing` layer that exports spans.
pub type OtelLayer<S> = OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>;

/// The layer that turns `tracing` spans into OpenTelemetry spans, or `None`
/// when no endpoint is configured. Must be called inside the Tokio runtime.
pub fn layer<S>(settings: &TraceSettings) -> Result<Option<(OtelLayer<S>, Tracing)>, TelemetryError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let configured = settings
        .otlp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if configured.is_none()
        && !env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
        && !env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    {
        return Ok(None);
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(base) = configured {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    let exporter = exporter.build()?;
    // The SDK's own batch thread has no Tokio reactor for the hyper client.
    let processor = span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let mut resource = Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(
            settings
                .service_name
                .clone()
                .unwrap_or_else(|| "mcpgate".to_owned()),
        );
    }
    let mut provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build());
    if let (Some(ratio), false) = (settings.sample_ratio, env_set("OTEL_TRACES_SAMPLER")) {
        provider = provider.with_sampler(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(ratio.clamp(0.0, 1.0)),
        )));
    }
    let provider = provider.build();
    let tracer = provider.tracer("mcpgate");
    let _ = TRACER.set(tracer.clone());
    ENABLED.store(true, Ordering::Relaxed);
    // Without activation on enter, a request span stays unstarted until its
    // first child or its end, so a `params._meta.traceparent` read after the
    // span was entered can still become its parent.
    // Only the attributes mcpgate sets: no source location, thread, target or
    // busy/idle timings (the last reads the clock on every poll of a request).
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false);
    Ok(Some((layer, Tracing { provider })))
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

/// The current span's context as W3C headers (`traceparent`, and
/// `tracestate` when there is one); empty while tracing is off.
fn current() -> HashMap<String, String> {
    let mut out = HashMap::new();
    if enabled() {
        let cx = tracing::Span::current().context();
        if cx.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&cx, &mut out);
        }
    }
    out
}

/// The current span's `traceparent`, to pass on to an upstream.
pub fn traceparent() -> Option<String> {
    current().remove("traceparent")
}

/// Adds `traceparent` (and `tracestate`) for the current span to an upstream
/// HTTP request's headers.
pub fn inject_headers(headers: &mut http::HeaderMap) {
    for (k, v) in current() {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(&v),
        ) {
            headers.insert(k, v);
        }
    }
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
        let context = current();
        if context.is_empty() {
            return params;
        }
        let spliced = splice_meta(p, &context);
        return spliced.or(params);
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

/// `{"_meta": context, …the object's members}` from an object's text that
/// has no `_meta`; `None` when `params` is not an object.
fn splice_meta(params: &RawValue, context: &HashMap<String, String>) -> Option<Box<RawValue>> {
    let rest = params.get().trim_start().strip_prefix('{')?;
    let meta = serde_json::to_string(context).ok()?;
    let comma = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    RawValue::from_string(format!("{{\"_meta\":{meta}{comma}{rest}")).ok()
}

/// Sets `params._meta.traceparent` (and `tracestate`) for the current span in
/// a JSON-RPC request's params object, so that stdio upstreams continue the
/// trace too. Params that are not an object are left alone.
pub fn inject_meta(params: &mut serde_json::Value) {
    let context = current();
    if context.is_empty() {
        return;
    }
    let Some(obj) = params.as_object_mut() else {
        return;
    };
    let meta = obj
        .entry("_meta")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let Some(meta) = meta.as_object_mut() {
        for (k, v) in context {
            meta.insert(k, serde_json::Value::String(v));
        }
    }
}

#[cfg(test)]
mod tests;
