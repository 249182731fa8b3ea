//! The span of one HTTP request (one MCP request), built with the SDK's
//! tracer directly rather than as a `tracing` span bridged to OpenTelemetry:
//! the bridge cost a registry entry, a lookup per poll and per context
//! read, and a copy of every field, on every request.
//!
//! The span starts when first needed (its context goes to an upstream, or
//! the request ends), not when the request arrives, so that a
//! `params._meta.traceparent` read after authentication can still become
//! its parent; its start time is still the request's arrival. Its
//! attributes are set once, when the request ends, from what the request's
//! note holds then.

use std::time::SystemTime;

use http::HeaderValue;
use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind, Status};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::Span as SdkSpan;

/// The span's context as it is passed on to upstreams, formatted once per
/// request.
#[derive(Debug, Clone)]
pub(crate) struct Propagated {
    pub(crate) traceparent: HeaderValue,
    pub(crate) tracestate: Option<HeaderValue>,
    /// `{"traceparent":…,"tracestate":…}` for `params._meta`.
    pub(crate) meta: String,
}

/// A request's span, before and after it starts.
#[derive(Debug)]
pub(crate) struct RequestSpan {
    start: SystemTime,
    parent: Option<Context>,
    /// Whether a caller's context became the parent.
    has_parent: bool,
    started: Option<SdkSpan>,
    propagated: Option<Option<Propagated>>,
}

impl RequestSpan {
    /// A span for a request that arrived at `start`, continuing `parent`
    /// (a `traceparent` header) when given.
    pub(crate) fn new(start: SystemTime, parent: Option<Context>) -> RequestSpan {
        RequestSpan {
            start,
            has_parent: parent.is_some(),
            parent,
            started: None,
            propagated: None,
        }
    }

    /// Continues the caller's trace `cx` unless a parent is set already or
    /// the span has started (its parent is fixed then).
    pub(crate) fn set_parent(&mut self, cx: Context) {
        if !self.has_parent && self.started.is_none() {
            self.parent = Some(cx);
            self.has_parent = true;
        }
    }

    fn start(&mut self) -> Option<&mut SdkSpan> {
        if self.started.is_none() {
            let tracer = crate::pipeline::tracer()?;
            let parent = self.parent.take().unwrap_or_default();
            // The name is set when the request ends and its MCP method is known.
            let span = SpanBuilder::from_name("request")
                .with_kind(SpanKind::Server)
                .with_start_time(self.start)
                .start_with_context(tracer, &parent);
            self.started = Some(span);
        }
        self.started.as_mut()
    }

    /// The context to pass on, formatted on first use; `None` while traces
    /// are off or the context is invalid.
    pub(crate) fn propagated(&mut self) -> Option<&Propagated> {
        if self.propagated.is_none() {
            let p = self.start().and_then(|s| propagate(s.span_context()));
            self.propagated = Some(p);
        }
        self.propagated.as_ref().and_then(Option::as_ref)
    }

    /// Ends the span at `end` named `name` with `attrs`, and its steps'
    /// child spans under it.
    pub(crate) fn end(
        mut self,
        end: SystemTime,
        name: String,
        attrs: impl FnOnce() -> Vec<KeyValue>,
        error: bool,
        phases: Vec<crate::phase::Phase>,
    ) {
        self.start();
        let Some(mut span) = self.started.take() else {
            return;
        };
        if !span.is_recording() {
            return;
        }
        span.update_name(name);
        span.set_attributes(attrs());
        if error {
            span.set_status(Status::error(""));
        }
        if !phases.is_empty() {
            crate::phase::export(span.span_context(), phases);
        }
        span.end_with_timestamp(end);
    }
}

/// `00-{trace id}-{span id}-{sampled}` in lowercase hex, written by hand:
/// `format!` with the ids' `LowerHex` cost more than the rest of the
/// propagation.
fn traceparent(sc: &opentelemetry::trace::SpanContext) -> String {
    fn hex(out: &mut String, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
    }
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    hex(&mut out, &sc.trace_id().to_bytes());
    out.push('-');
    hex(&mut out, &sc.span_id().to_bytes());
    out.push('-');
    hex(&mut out, &[sc.trace_flags().to_u8() & 1]);
    out
}

/// `traceparent` (and `tracestate`) for `sc`, as headers and as `_meta`.
fn propagate(sc: &opentelemetry::trace::SpanContext) -> Option<Propagated> {
    if !sc.is_valid() {
        return None;
    }
    let traceparent = traceparent(sc);
    let header = sc.trace_state().header();
    let (tracestate, state_json) = if header.is_empty() {
        (None, None)
    } else {
        (
            HeaderValue::from_str(&header).ok(),
            serde_json::to_string(&header).ok(),
        )
    };
    let mut meta = String::with_capacity(80);
    meta.push_str("{\"traceparent\":\"");
    meta.push_str(&traceparent);
    meta.push('"');
    if let Some(ts) = &state_json {
        meta.push_str(",\"tracestate\":");
        meta.push_str(ts);
    }
    meta.push('}');
    Some(Propagated {
        traceparent: HeaderValue::from_str(&traceparent).ok()?,
        tracestate,
        meta,
    })
}

#[cfg(test)]
mod tests;
