//! OTLP protobuf (`ExportTraceServiceRequest`) written straight from
//! mcpgate's own span records. A span is encoded once, when its request
//! ends, from strings the request already holds (no owned attribute keys or
//! values, no SDK span record), into the export queue's buffer as one
//! `ScopeSpans.spans` field; an export wraps a run of them in the resource
//! and scope, which are encoded once. Every length is computed before it is
//! written, so nothing is encoded twice.
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto` and `resource/v1/resource.proto`.

use opentelemetry::Value;
use opentelemetry_sdk::Resource;

const LEN: u32 = 2;
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const FIXED32: u32 = 5;

/// `SpanFlags`: the span says whether its parent is remote, and whether it is.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// The instrumentation scope every span of mcpgate's is in.
pub(crate) const SCOPE_NAME: &str = "mcpgate";

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

/// The encoded size of a length-delimited field with a one-byte tag
/// (fields 1 to 15) and a body of `len` bytes.
fn delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
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

fn opt_bytes_len(len: usize) -> usize {
    if len == 0 { 0 } else { delimited_len(len) }
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

/// An attribute's value: what mcpgate's spans carry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AttrValue<'a> {
    Str(&'a str),
    Int(i64),
}

/// One attribute, borrowed from whoever holds its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Attr<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: AttrValue<'a>,
}

impl<'a> Attr<'a> {
    pub(crate) fn str(key: &'a str, value: &'a str) -> Attr<'a> {
        Attr {
            key,
            value: AttrValue::Str(value),
        }
    }

    pub(crate) fn int(key: &'a str, value: i64) -> Attr<'a> {
        Attr {
            key,
            value: AttrValue::Int(value),
        }
    }

    /// The `AnyValue` message's body length.
    fn value_len(&self) -> usize {
        match self.value {
            AttrValue::Str(s) => delimited_len(s.len()),
            // int_value = 3, always written: it is a member of a oneof.
            AttrValue::Int(i) => 1 + varint_len(i as u64),
        }
    }

    /// The `KeyValue` message's body length.
    fn len(&self) -> usize {
        delimited_len(self.key.len()) + delimited_len(self.value_len())
    }

    /// Writes the attribute as a `Span.attributes` field (9, a `KeyValue`).
    fn write(&self, w: &mut Slot<'_>) {
        let value_len = self.value_len();
        w.byte(tag(9, LEN));
        w.varint((delimited_len(self.key.len()) + delimited_len(value_len)) as u64);
        w.delimited(tag(1, LEN), self.key.as_bytes());
        w.byte(tag(2, LEN));
        w.varint(value_len as u64);
        match self.value {
            AttrValue::Str(s) => w.delimited(tag(1, LEN), s.as_bytes()),
            AttrValue::Int(i) => {
                w.byte(tag(3, VARINT));
                // int64: two's complement as a 64-bit varint.
                w.varint(i as u64);
            }
        }
    }
}

/// A span's kind, as OTLP numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// One finished span, everything borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanRecord<'a> {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: [u8; 8],
    /// The W3C `tracestate` header's text, empty when there is none.
    pub(crate) trace_state: &'a str,
    pub(crate) parent_span_id: Option<[u8; 8]>,
    pub(crate) parent_is_remote: bool,
    /// The W3C trace flags (bit 0: sampled).
    pub(crate) trace_flags: u8,
    /// The name, as pieces written one after the other (`"tools/call"`,
    /// `" "`, `"echo"`): no string is built for it.
    pub(crate) name: &'a [&'a str],
    pub(crate) kind: Kind,
    /// Nanoseconds since the Unix epoch.
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) attrs: &'a [Attr<'a>],
    /// The status is an error (with no message), else unset.
    pub(crate) error: bool,
}

impl SpanRecord<'_> {
    fn name_len(&self) -> usize {
        self.name.iter().map(|p| p.len()).sum()
    }

    /// The `Status` message's body length: `code = 3` only (no message).
    fn status_len(&self) -> usize {
        if self.error { 2 } else { 0 }
    }

    /// The `Span` message's body length.
    fn body_len(&self) -> usize {
        delimited_len(16)
            + delimited_len(8)
            + opt_bytes_len(self.trace_state.len())
            + if self.parent_span_id.is_some() {
                delimited_len(8)
            } else {
                0
            }
            + opt_bytes_len(self.name_len())
            + 2 // kind: field 6, a one-byte value
            + 2 * 9 // start and end: fixed64
            + self
                .attrs
                .iter()
                .map(|a| delimited_len(a.len()))
                .sum::<usize>()
            + delimited_len(self.status_len())
            + 2 + 4 // flags: field 16 (a two-byte tag), fixed32
    }

    /// The encoded size of the span as a `ScopeSpans.spans` field.
    #[cfg(test)]
    pub(crate) fn encoded_len(&self) -> usize {
        delimited_len(self.body_len())
    }

    /// Appends the span as a `ScopeSpans.spans` field (2): what an export
    /// request's scope holds, one after another. Its length is summed once,
    /// here (it walks every attribute), and the bytes are written into a
    /// slice of exactly that size rather than pushed one by one.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let len = self.body_len();
        let at = out.len();
        out.resize(at + delimited_len(len), 0);
        let Some(slice) = out.get_mut(at..) else {
            return;
        };
        let mut w = Slot::new(slice);
        w.byte(tag(2, LEN));
        w.varint(len as u64);
        w.delimited(tag(1, LEN), &self.trace_id);
        w.delimited(tag(2, LEN), &self.span_id);
        if !self.trace_state.is_empty() {
            w.delimited(tag(3, LEN), self.trace_state.as_bytes());
        }
        if let Some(p) = &self.parent_span_id {
            w.delimited(tag(4, LEN), p);
        }
        let name_len = self.name_len();
        if name_len > 0 {
            w.byte(tag(5, LEN));
            w.varint(name_len as u64);
            for p in self.name {
                w.bytes(p.as_bytes());
            }
        }
        // kind = 6: never 0 (unspecified), one byte.
        w.byte(tag(6, VARINT));
        w.byte(self.kind as u8);
        w.byte(tag(7, FIXED64));
        w.bytes(&self.start.to_le_bytes());
        w.byte(tag(8, FIXED64));
        w.bytes(&self.end.to_le_bytes());
        for a in self.attrs {
            a.write(&mut w);
        }
        // Status { message = 2, code = 3 }, always present as the SDK's
        // conversion writes it.
        w.byte(tag(15, LEN));
        if self.error {
            w.byte(2);
            w.byte(tag(3, VARINT));
            w.byte(2);
        } else {
            w.byte(0);
        }
        let mut flags = u32::from(self.trace_flags) | HAS_IS_REMOTE;
        if self.parent_is_remote {
            flags |= IS_REMOTE;
        }
        // flags = 16: a two-byte tag.
        w.varint(u64::from((16 << 3) | FIXED32));
        w.bytes(&flags.to_le_bytes());
        if !w.filled() {
            // Only a length summed wrong gets here (the tests compare them):
            // the span is left out rather than a torn batch posted.
            out.truncate(at);
        }
    }
}

/// A one-byte tag: fields 1 to 15.
const fn tag(field: u32, wire: u32) -> u8 {
    ((field << 3) | wire) as u8
}

/// A slice sized for exactly one span, written front to back: one bounds
/// check per write instead of a `Vec` push (length, capacity, growth) per
/// byte.
struct Slot<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Slot<'a> {
    fn new(buf: &'a mut [u8]) -> Slot<'a> {
        Slot { buf, pos: 0 }
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.pos) {
            *slot = b;
        }
        self.pos += 1;
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        if let Some(slot) = self.buf.get_mut(self.pos..end) {
            slot.copy_from_slice(b);
        }
        self.pos = end;
    }

    #[inline]
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// A length-delimited field with a one-byte tag.
    #[inline]
    fn delimited(&mut self, tag: u8, b: &[u8]) {
        self.byte(tag);
        self.varint(b.len() as u64);
        self.bytes(b);
    }

    /// Whether exactly the slice was written.
    fn filled(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// The part of every export request that does not change: the resource and
/// the scope, encoded once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Envelope {
    /// The `Resource` message's body.
    resource: Vec<u8>,
    resource_schema: String,
    /// The `InstrumentationScope` message's body.
    scope: Vec<u8>,
}

/// Appends a resource or scope attribute of the SDK's kind; mcpgate's
/// resource holds strings, integers, floats and booleans (from
/// `OTEL_RESOURCE_ATTRIBUTES` and the SDK's detectors).
fn sdk_attribute(out: &mut Vec<u8>, field: u32, k: &str, v: &Value) {
    let mut value = Vec::new();
    match v {
        Value::String(s) => bytes_field(&mut value, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            key(&mut value, 2, VARINT);
            value.push(u8::from(*b));
        }
        Value::I64(i) => {
            key(&mut value, 3, VARINT);
            varint(&mut value, *i as u64);
        }
        Value::F64(f) => fixed64_field(&mut value, 4, f.to_bits()),
        // Arrays and kinds added later: as their text.
        other => bytes_field(&mut value, 1, other.to_string().as_bytes()),
    }
    let body = delimited_len(k.len()) + delimited_len(value.len());
    len_prefix(out, field, body);
    bytes_field(out, 1, k.as_bytes());
    bytes_field(out, 2, &value);
}

impl Envelope {
    /// The envelope for spans of `resource`, in mcpgate's scope.
    pub(crate) fn new(resource: &Resource) -> Envelope {
        let mut r = Vec::new();
        for (k, v) in resource.iter() {
            sdk_attribute(&mut r, 1, k.as_str(), v);
        }
        let mut scope = Vec::new();
        opt_bytes_field(&mut scope, 1, SCOPE_NAME.as_bytes());
        Envelope {
            resource: r,
            resource_schema: resource.schema_url().unwrap_or_default().to_owned(),
            scope,
        }
    }

    /// The most bytes the envelope writes in front of the spans: a batch
    /// keeps that much room at its start, so that [`Envelope::wrap`] can
    /// write the envelope there instead of copying the batch after it.
    pub(crate) fn head_room(&self) -> usize {
        // Two tags with a length of at most ten bytes each.
        2 * 11 + delimited_len(self.resource.len()) + delimited_len(self.scope.len())
    }

    /// [`Envelope::request`] for the spans in `batch` after its first
    /// `head` bytes, written around them in place: the envelope ends where
    /// the spans start (the room it did not need is skipped), the schema URL
    /// goes after them. Only a batch without room enough is copied.
    pub(crate) fn wrap(&self, mut batch: Vec<u8>, head: usize) -> opentelemetry_http::Bytes {
        let Some(spans) = batch.get(head..) else {
            return opentelemetry_http::Bytes::new();
        };
        let mut front = Vec::with_capacity(self.head_room());
        let (scope_spans, resource_spans) = self.lengths(spans.len());
        len_prefix(&mut front, 1, resource_spans);
        bytes_field(&mut front, 1, &self.resource);
        len_prefix(&mut front, 2, scope_spans);
        bytes_field(&mut front, 1, &self.scope);
        let Some(start) = head
            .checked_sub(front.len())
            .filter(|s| batch.get(*s..head).is_some())
        else {
            let mut out = Vec::new();
            self.request(spans, &mut out);
            return out.into();
        };
        if let Some(room) = batch.get_mut(start..head) {
            room.copy_from_slice(&front);
        }
        opt_bytes_field(&mut batch, 3, self.resource_schema.as_bytes());
        opentelemetry_http::Bytes::from(batch).slice(start..)
    }

    /// The `ScopeSpans` and `ResourceSpans` bodies' lengths around `spans`
    /// bytes of span fields.
    fn lengths(&self, spans: usize) -> (usize, usize) {
        // ScopeSpans { scope = 1, spans = 2 } (no schema URL).
        let scope_spans = delimited_len(self.scope.len()) + spans;
        // ResourceSpans { resource = 1, scope_spans = 2, schema_url = 3 }.
        let resource_spans = delimited_len(self.resource.len())
            + delimited_len(scope_spans)
            + opt_bytes_len(self.resource_schema.len());
        (scope_spans, resource_spans)
    }

    /// The `ExportTraceServiceRequest` holding `spans` (span fields as
    /// [`SpanRecord::write`] appends them), written into `out`.
    pub(crate) fn request(&self, spans: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let (scope_spans, resource_spans) = self.lengths(spans.len());
        out.reserve(delimited_len(resource_spans));
        len_prefix(out, 1, resource_spans);
        bytes_field(out, 1, &self.resource);
        len_prefix(out, 2, scope_spans);
        bytes_field(out, 1, &self.scope);
        out.extend_from_slice(spans);
        opt_bytes_field(out, 3, self.resource_schema.as_bytes());
    }
}

#[cfg(test)]
mod tests;
