//! OTLP protobuf (`ExportTraceServiceRequest`) written straight from the
//! SDK's span records into a reused buffer. The generic path
//! (`opentelemetry-proto`'s conversion, then prost) copies every span, key
//! and value into owned messages and measures each nested message again at
//! every level; here each span is written once into a scratch buffer, whose
//! length then prefixes it, and every length above it is a sum.
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto` and `resource/v1/resource.proto`.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

const LEN: u32 = 2;
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const FIXED32: u32 = 5;

/// `SpanFlags`: the span says whether its parent is remote, and whether it is.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // 1 byte per 7 significant bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from((field << 3) | wire));
}

fn len_prefix(out: &mut Vec<u8>, field: u32, len: usize) {
    key(out, field, LEN);
    varint(out, len as u64);
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    len_prefix(out, field, b.len());
    out.extend_from_slice(b);
}

/// A string or bytes field, left out when empty (proto3's default).
fn opt_bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        bytes_field(out, field, b);
    }
}

fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, VARINT);
        varint(out, v);
    }
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A nested message written by `body` after its tag and length: the body goes
/// into `scratch` first, since its length comes before it.
fn message(out: &mut Vec<u8>, scratch: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    scratch.clear();
    body(scratch);
    bytes_field(out, field, scratch);
}

/// Nanoseconds since the Unix epoch (0 before it, as the SDK's own conversion).
fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Appends one `AnyValue`'s fields (its body, without tag or length).
fn any_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => bytes_field(out, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        Value::I64(i) => {
            key(out, 3, VARINT);
            // int64: two's complement as a 64-bit varint.
            varint(out, *i as u64);
        }
        Value::F64(f) => fixed64_field(out, 4, f.to_bits()),
        Value::Array(a) => {
            // ArrayValue { repeated AnyValue values = 1 }, each element a
            // nested AnyValue; arrays are rare, so they get their own buffers.
            let mut values = Vec::new();
            let mut one = Vec::new();
            match a {
                Array::Bool(xs) => xs
                    .iter()
                    .for_each(|x| element(&mut one, &mut values, &Value::Bool(*x))),
                Array::I64(xs) => xs
                    .iter()
                    .for_each(|x| element(&mut one, &mut values, &Value::I64(*x))),
                Array::F64(xs) => xs
                    .iter()
                    .for_each(|x| element(&mut one, &mut values, &Value::F64(*x))),
                Array::String(xs) => xs
                    .iter()
                    .for_each(|x| element(&mut one, &mut values, &Value::String(x.clone()))),
                // A kind of array added to the API later: as its text.
                other => element(&mut one, &mut values, &Value::from(other.to_string())),
            }
            bytes_field(out, 5, &values);
        }
        // A kind of value added to the API later: as its text.
        other => bytes_field(out, 1, other.as_str().as_bytes()),
    }
}

/// One element of an `ArrayValue` (`values = 1`).
fn element(one: &mut Vec<u8>, values: &mut Vec<u8>, v: &Value) {
    one.clear();
    any_value(one, v);
    bytes_field(values, 1, one);
}

/// The encoded length of a string `AnyValue`'s body, the common case, so
/// that a string attribute needs no scratch buffer.
fn string_value_len(s: &str) -> usize {
    1 + varint_len(s.len() as u64) + s.len()
}

/// Appends `KeyValue` messages (as `field`) for `attrs`.
fn attributes<'a>(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    field: u32,
    attrs: impl IntoIterator<Item = (&'a str, &'a Value)>,
) {
    for (k, v) in attrs {
        if let Value::String(s) = v {
            let s = s.as_str();
            let value_len = string_value_len(s);
            let kv_len = 1
                + varint_len(k.len() as u64)
                + k.len()
                + 1
                + varint_len(value_len as u64)
                + value_len;
            len_prefix(out, field, kv_len);
            bytes_field(out, 1, k.as_bytes());
            len_prefix(out, 2, value_len);
            bytes_field(out, 1, s.as_bytes());
        } else {
            scratch.clear();
            bytes_field(scratch, 1, k.as_bytes());
            let mark = scratch.len();
            any_value(scratch, v);
            let value_len = scratch.len() - mark;
            let kv_len = mark + 1 + varint_len(value_len as u64) + value_len;
            len_prefix(out, field, kv_len);
            out.extend_from_slice(&scratch[..mark]);
            len_prefix(out, 2, value_len);
            out.extend_from_slice(&scratch[mark..]);
        }
    }
}

fn key_values(kvs: &[KeyValue]) -> impl Iterator<Item = (&str, &Value)> {
    kvs.iter().map(|kv| (kv.key.as_str(), &kv.value))
}

fn flags(cx: &SpanContext, remote: bool) -> u32 {
    let mut f = u32::from(cx.trace_flags().to_u8()) | HAS_IS_REMOTE;
    if remote {
        f |= IS_REMOTE;
    }
    f
}

fn kind(k: &SpanKind) -> u64 {
    match k {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Reused buffers; an export holds them while it encodes.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    /// The encoded `Resource` message's body, set once.
    resource: Vec<u8>,
    resource_schema: String,
    spans: Vec<u8>,
    span: Vec<u8>,
    inner: Vec<u8>,
    attr: Vec<u8>,
}

impl Encoder {
    /// Encodes the resource once: every request repeats it.
    pub(crate) fn set_resource(&mut self, resource: &Resource) {
        self.resource.clear();
        let mut scratch = Vec::new();
        attributes(
            &mut self.resource,
            &mut scratch,
            1,
            resource.iter().map(|(k, v)| (k.as_str(), v)),
        );
        self.resource_schema = resource.schema_url().unwrap_or_default().to_owned();
    }

    /// The `ExportTraceServiceRequest` for `batch`, written into `out`
    /// (cleared first).
    pub(crate) fn encode(&mut self, batch: &[SpanData], out: &mut Vec<u8>) {
        out.clear();
        // ResourceSpans { resource = 1, scope_spans = 2, schema_url = 3 }, one
        // per export: every span here comes from this process's resource.
        // ScopeSpans per run of spans from the same instrumentation scope.
        let mut scopes = Vec::new();
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .position(|s| s.instrumentation_scope != first.instrumentation_scope)
                .unwrap_or(rest.len());
            let (these, after) = rest.split_at(run);
            self.scope_spans(&first.instrumentation_scope, these, &mut scopes);
            rest = after;
        }
        let resource_len = 1 + varint_len(self.resource.len() as u64) + self.resource.len();
        let schema = self.resource_schema.as_bytes();
        let schema_len = if schema.is_empty() {
            0
        } else {
            1 + varint_len(schema.len() as u64) + schema.len()
        };
        len_prefix(out, 1, resource_len + scopes.len() + schema_len);
        bytes_field(out, 1, &self.resource);
        out.extend_from_slice(&scopes);
        opt_bytes_field(out, 3, schema);
    }

    /// Appends one `ScopeSpans` (field 2 of `ResourceSpans`) to `out`.
    fn scope_spans(&mut self, scope: &InstrumentationScope, spans: &[SpanData], out: &mut Vec<u8>) {
        self.spans.clear();
        // InstrumentationScope { name = 1, version = 2, attributes = 3 }
        message(&mut self.spans, &mut self.inner, 1, |b| {
            opt_bytes_field(b, 1, scope.name().as_bytes());
            opt_bytes_field(b, 2, scope.version().unwrap_or_default().as_bytes());
            let mut scratch = Vec::new();
            attributes(
                b,
                &mut scratch,
                3,
                scope.attributes().map(|kv| (kv.key.as_str(), &kv.value)),
            );
        });
        for s in spans {
            self.span.clear();
            span(&mut self.span, &mut self.inner, &mut self.attr, s);
            bytes_field(&mut self.spans, 2, &self.span);
        }
        opt_bytes_field(
            &mut self.spans,
            3,
            scope.schema_url().unwrap_or_default().as_bytes(),
        );
        bytes_field(out, 2, &self.spans);
    }
}

/// Appends one `Span` message's body.
fn span(out: &mut Vec<u8>, inner: &mut Vec<u8>, attr: &mut Vec<u8>, s: &SpanData) {
    let cx = &s.span_context;
    bytes_field(out, 1, &cx.trace_id().to_bytes());
    bytes_field(out, 2, &cx.span_id().to_bytes());
    let state = cx.trace_state().header();
    opt_bytes_field(out, 3, state.as_bytes());
    if s.parent_span_id != SpanId::INVALID {
        bytes_field(out, 4, &s.parent_span_id.to_bytes());
    }
    opt_bytes_field(out, 5, s.name.as_bytes());
    varint_field(out, 6, kind(&s.span_kind));
    fixed64_field(out, 7, nanos(s.start_time));
    fixed64_field(out, 8, nanos(s.end_time));
    attributes(out, attr, 9, key_values(&s.attributes));
    varint_field(out, 10, u64::from(s.dropped_attributes_count));
    for e in s.events.iter() {
        // Event { time_unix_nano = 1, name = 2, attributes = 3, dropped = 4 }
        message(out, inner, 11, |b| {
            fixed64_field(b, 1, nanos(e.timestamp));
            opt_bytes_field(b, 2, e.name.as_bytes());
            attributes(b, attr, 3, key_values(&e.attributes));
            varint_field(b, 4, u64::from(e.dropped_attributes_count));
        });
    }
    varint_field(out, 12, u64::from(s.events.dropped_count));
    for l in s.links.iter() {
        // Link { trace_id = 1, span_id = 2, trace_state = 3, attributes = 4,
        // dropped = 5, flags = 6 }
        message(out, inner, 13, |b| {
            let lc = &l.span_context;
            bytes_field(b, 1, &lc.trace_id().to_bytes());
            bytes_field(b, 2, &lc.span_id().to_bytes());
            opt_bytes_field(b, 3, lc.trace_state().header().as_bytes());
            attributes(b, attr, 4, key_values(&l.attributes));
            varint_field(b, 5, u64::from(l.dropped_attributes_count));
            key(b, 6, FIXED32);
            b.extend_from_slice(&flags(lc, lc.is_remote()).to_le_bytes());
        });
    }
    varint_field(out, 14, u64::from(s.links.dropped_count));
    // Status { message = 2, code = 3 }, always present as the SDK's conversion
    // writes it.
    let (code, text) = match &s.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    };
    message(out, inner, 15, |b| {
        opt_bytes_field(b, 2, text.as_bytes());
        varint_field(b, 3, code);
    });
    key(out, 16, FIXED32);
    out.extend_from_slice(&flags(cx, s.parent_span_is_remote).to_le_bytes());
}

#[cfg(test)]
mod tests;
