//! W3C trace context out: the current request span's `traceparent` (and
//! `tracestate`) written into upstream requests, as a header for HTTP
//! upstreams and in `params._meta` for every upstream. The pipeline
//! underneath (sampler, export queue, context in) is `pipeline.rs`; its
//! public parts are re-exported here.

use serde_json::value::RawValue;

use crate::request_span::Propagated;

pub use crate::pipeline::{TraceSettings, Tracing, enabled, start};

/// The current request span's `traceparent`, to pass on to an upstream.
pub fn traceparent() -> Option<String> {
    crate::note::propagated(|p| p.traceparent().to_owned())
}

/// Adds `traceparent` (and `tracestate`) for the current request's span to
/// an upstream HTTP request's headers.
pub fn inject_headers(headers: &mut http::HeaderMap) {
    if !enabled() {
        return;
    }
    // Names made once: a `&str` name is parsed again on every insert.
    static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
    static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
    crate::note::propagated(|p| {
        if let Some(tp) = p.traceparent_header() {
            headers.insert(TRACEPARENT.clone(), tp);
        }
        if let Some(ts) = &p.tracestate {
            headers.insert(TRACESTATE.clone(), ts.clone());
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
        return match crate::note::propagated(|c| splice_meta(p, c)) {
            Some(Some(spliced)) => Some(spliced),
            _ => params,
        };
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
fn splice_meta(params: &RawValue, context: &Propagated) -> Option<Box<RawValue>> {
    let rest = params.get().trim_start().strip_prefix('{')?;
    let comma = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    let mut out = String::with_capacity(10 + context.meta_len() + rest.len());
    out.push_str("{\"_meta\":");
    context.write_meta(&mut out);
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
        let mut c = vec![("traceparent", p.traceparent().to_owned())];
        if let Some(ts) = p.tracestate.as_ref().and_then(|t| t.to_str().ok()) {
            c.push(("tracestate", ts.to_owned()));
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
            meta.insert(k.to_owned(), serde_json::Value::String(v));
        }
    }
}

#[cfg(test)]
mod tests;
