//! The span of one HTTP request (one MCP request) and its steps' child
//! spans, as mcpgate's own records: the span's context is made (and the
//! sampler asked) when first needed, and everything else waits until the
//! request ends, when the spans are encoded straight into the export queue
//! from what the request holds then. The SDK's spans cost a record per span
//! with every attribute key and value owned, a channel send, a conversion
//! and a free, on every request.
//!
//! The span starts when first needed (its context goes to an upstream, or
//! the request ends), not when the request arrives, so that a
//! `params._meta.traceparent` read after authentication can still become
//! its parent; its start time is still the request's arrival.

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use opentelemetry::trace::{SpanContext, SpanKind};

use crate::otlp::proto::{Attr, Kind, SpanRecord};
use crate::phase::{MAX_PHASE_ATTRS, Phase};

/// The span's context as it is passed on to upstreams, formatted once per
/// request; the header value and the `_meta` text are made from it where
/// they go (one copy each, none kept).
#[derive(Debug, Clone)]
pub(crate) struct Propagated {
    /// `00-{trace id}-{span id}-{flags}`: hex digits and dashes.
    traceparent: [u8; 55],
    pub(crate) tracestate: Option<HeaderValue>,
    /// The `tracestate` as a JSON string, for `_meta`.
    state_json: Option<String>,
}

impl Propagated {
    /// The `traceparent` text.
    pub(crate) fn traceparent(&self) -> &str {
        std::str::from_utf8(&self.traceparent).unwrap_or_default()
    }

    /// The `traceparent` header's value.
    pub(crate) fn traceparent_header(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&self.traceparent).ok()
    }

    /// The length of what [`Propagated::write_meta`] writes.
    pub(crate) fn meta_len(&self) -> usize {
        18 + self.traceparent.len() + self.state_json.as_ref().map_or(0, |s| 14 + s.len())
    }

    /// Appends `{"traceparent":…,"tracestate":…}`, the context as
    /// `params._meta`, to `out`.
    pub(crate) fn write_meta(&self, out: &mut String) {
        out.push_str("{\"traceparent\":\"");
        out.push_str(self.traceparent());
        out.push('"');
        if let Some(ts) = &self.state_json {
            out.push_str(",\"tracestate\":");
            out.push_str(ts);
        }
        out.push('}');
    }
}

/// A request's span, before and after it starts.
#[derive(Debug)]
pub(crate) struct RequestSpan {
    start: SystemTime,
    /// A caller's context, continued.
    parent: Option<SpanContext>,
    /// The span's own context once started (`None` inside: traces are off).
    started: Option<Option<SpanContext>>,
    propagated: Option<Option<Propagated>>,
}

/// Nanoseconds since the Unix epoch (0 before it, as the SDK's conversion).
fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl RequestSpan {
    /// A span for a request that arrived at `start`, continuing `parent`
    /// (a `traceparent` header) when given.
    pub(crate) fn new(start: SystemTime, parent: Option<SpanContext>) -> RequestSpan {
        RequestSpan {
            start,
            parent,
            started: None,
            propagated: None,
        }
    }

    /// Continues the caller's trace `cx` unless a parent is set already or
    /// the span has started (its parent is fixed then).
    pub(crate) fn set_parent(&mut self, cx: SpanContext) {
        if self.parent.is_none() && self.started.is_none() {
            self.parent = Some(cx);
        }
    }

    /// The span's context, made on first use (named `request` for the
    /// sampler: the MCP method is not known yet).
    fn context(&mut self) -> Option<&SpanContext> {
        if self.started.is_none() {
            self.started = Some(crate::pipeline::new_span(
                self.parent.as_ref(),
                "request",
                SpanKind::Server,
            ));
        }
        self.started.as_ref().and_then(Option::as_ref)
    }

    /// The context to pass on, formatted on first use; `None` while traces
    /// are off or the context is invalid.
    pub(crate) fn propagated(&mut self) -> Option<&Propagated> {
        if self.propagated.is_none() {
            let p = self.context().and_then(propagate);
            self.propagated = Some(p);
        }
        self.propagated.as_ref().and_then(Option::as_ref)
    }

    /// Ends the span at `end`, named by the pieces of `name`, with `attrs`,
    /// and its steps' child spans under it (`call_attrs`: the attributes of
    /// the `upstream call` step), and queues them for export when sampled:
    /// each is written into the batch as it is built, nothing collected.
    pub(crate) fn end(
        mut self,
        end: SystemTime,
        name: &[&str],
        attrs: &[Attr<'_>],
        error: bool,
        phases: &[Phase],
        call_attrs: &[Attr<'_>],
    ) {
        self.context();
        let Some(Some(cx)) = &self.started else {
            return;
        };
        if !cx.is_valid() || !cx.is_sampled() {
            return;
        }
        let trace_state = cx.trace_state().header();
        let trace_id = cx.trace_id().to_bytes();
        let span_id = cx.span_id().to_bytes();
        let flags = cx.trace_flags().to_u8();
        let request = SpanRecord {
            trace_id,
            span_id,
            trace_state: &trace_state,
            parent_span_id: self.parent.as_ref().map(|p| p.span_id().to_bytes()),
            parent_is_remote: self.parent.is_some(),
            trace_flags: flags,
            name,
            kind: Kind::Server,
            start: nanos(self.start),
            end: nanos(end),
            attrs,
            error,
        };
        crate::pipeline::export(1 + phases.len(), |out| {
            request.write(out);
            for p in phases {
                let mut room = [Attr::int("", 0); MAX_PHASE_ATTRS];
                // A child is sampled as its parent is (what the SDK's
                // samplers decide for a local parent) and in its trace state.
                SpanRecord {
                    trace_id,
                    span_id: crate::pipeline::new_span_id().to_bytes(),
                    trace_state: &trace_state,
                    parent_span_id: Some(span_id),
                    parent_is_remote: false,
                    trace_flags: flags,
                    name: p.name.name_pieces(),
                    kind: p.name.kind(),
                    start: nanos(p.start),
                    end: nanos(p.end),
                    attrs: p.attributes(call_attrs, &mut room),
                    error: p.failed,
                }
                .write(out);
            }
        });
    }
}

/// `00-{trace id}-{span id}-{sampled}` in lowercase hex, written by hand
/// into a stack buffer: `format!` with the ids' `LowerHex` cost more than
/// the rest of the propagation.
fn traceparent(sc: &opentelemetry::trace::SpanContext) -> [u8; 55] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    let trace_id = sc.trace_id().to_bytes();
    let span_id = sc.span_id().to_bytes();
    let flags = [sc.trace_flags().to_u8() & 1];
    // The hex digits of each id start after "00-", then after the next "-".
    for (at, bytes) in [(3, &trace_id[..]), (36, &span_id[..]), (53, &flags[..])] {
        for (i, b) in bytes.iter().enumerate() {
            if let Some(pair) = out.get_mut(at + 2 * i..at + 2 * i + 2) {
                pair[0] = DIGITS[usize::from(b >> 4)];
                pair[1] = DIGITS[usize::from(b & 0xf)];
            }
        }
    }
    out
}

/// `traceparent` (and `tracestate`) for `sc`, as headers and as `_meta`.
pub(crate) fn propagate(sc: &opentelemetry::trace::SpanContext) -> Option<Propagated> {
    if !sc.is_valid() {
        return None;
    }
    let header = sc.trace_state().header();
    let (tracestate, state_json) = if header.is_empty() {
        (None, None)
    } else {
        (
            HeaderValue::from_str(&header).ok(),
            serde_json::to_string(&header).ok(),
        )
    };
    Some(Propagated {
        traceparent: traceparent(sc),
        tracestate,
        state_json,
    })
}

#[cfg(test)]
mod tests;
