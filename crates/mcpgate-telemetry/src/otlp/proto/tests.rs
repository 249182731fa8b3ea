use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message as _;

use super::*;

const START: u64 = 1_765_000_000_123_456_789;

/// Our record and the SDK's record of the same span.
fn pair<'a>(
    name: &'a [&'a str],
    attrs: &'a [Attr<'a>],
    rich: bool,
    scope: &InstrumentationScope,
) -> (SpanRecord<'a>, SpanData) {
    let state = if rich { "vendor=x,other=y" } else { "" };
    let ours = SpanRecord {
        trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128.to_be_bytes(),
        span_id: 0x00f0_67aa_0ba9_02b7_u64.to_be_bytes(),
        trace_state: state,
        parent_span_id: rich.then_some(0xb7ad_6b71_6920_3331_u64.to_be_bytes()),
        parent_is_remote: rich,
        trace_flags: 1,
        name,
        kind: if rich { Kind::Client } else { Kind::Server },
        start: START,
        end: START + 1_500_000,
        attrs,
        error: rich,
    };
    let at = UNIX_EPOCH + Duration::from_nanos(START);
    let theirs = SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(ours.trace_id),
            SpanId::from_bytes(ours.span_id),
            TraceFlags::SAMPLED,
            false,
            state.parse::<TraceState>().unwrap_or_default(),
        ),
        parent_span_id: ours
            .parent_span_id
            .map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: rich,
        span_kind: if rich {
            SpanKind::Client
        } else {
            SpanKind::Server
        },
        name: Cow::Owned(name.concat()),
        start_time: at,
        end_time: at + Duration::from_micros(1500),
        attributes: attrs
            .iter()
            .map(|a| match a.value {
                AttrValue::Str(s) => KeyValue::new(a.key.to_owned(), s.to_owned()),
                AttrValue::Int(i) => KeyValue::new(a.key.to_owned(), i),
            })
            .collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: if rich {
            Status::error("")
        } else {
            Status::Unset
        },
        instrumentation_scope: scope.clone(),
    };
    (ours, theirs)
}

/// What the generic path (opentelemetry-proto's conversion) makes of the
/// SDK's records of the same spans must be what this encoder's bytes decode
/// to.
#[test]
fn the_encoding_decodes_to_what_the_generic_conversion_builds() {
    let resource = Resource::builder()
        .with_service_name("mcpgate-under-test")
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .with_attribute(KeyValue::new("replica", 3_i64))
        .build();
    let scope = InstrumentationScope::builder(SCOPE_NAME).build();
    let long = "x".repeat(300);
    let call_attrs = [
        Attr::str("mcp.method.name", "tools/call"),
        Attr::int("http.response.status_code", 200),
        Attr::int("negative", -5),
        Attr::int("zero", 0),
        Attr::str("jsonrpc.request.id", &long),
        Attr::str("empty", ""),
        Attr::str("é", "ü"),
    ];
    let step_attrs = [Attr::str("mcpgate.outcome", "failed")];
    let (a, a_sdk) = pair(&["tools/call", " ", "echo"], &call_attrs, false, &scope);
    let (b, b_sdk) = pair(&["upstream call"], &step_attrs, true, &scope);
    let (c, c_sdk) = pair(&[], &[], false, &scope);

    let mut spans = Vec::new();
    for s in [&a, &b, &c] {
        let before = spans.len();
        s.write(&mut spans);
        assert_eq!(spans.len() - before, s.encoded_len(), "{:?}", s.name);
    }
    let mut body = Vec::new();
    Envelope::new(&resource).request(&spans, &mut body);
    let decoded = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");

    let mut want = group_spans_by_resource_and_scope(
        vec![a_sdk, b_sdk, c_sdk],
        &ResourceAttributesWithSchema::from(&resource),
    );
    assert_eq!(decoded.resource_spans.len(), 1);
    assert_eq!(decoded.resource_spans[0], want.remove(0));
    // And the same bytes as prost writes for that message.
    assert_eq!(body, decoded.encode_to_vec());
    // Wrapped in place in a batch with room in front: the same bytes; with
    // too little room (copied) too.
    let envelope = Envelope::new(&resource);
    for head in [envelope.head_room(), envelope.head_room() + 7, 3, 0] {
        let mut batch = vec![0xee; head];
        batch.extend_from_slice(&spans);
        assert_eq!(envelope.wrap(batch, head), body, "room {head}");
    }
}

#[test]
fn varint_lengths_match_the_encoding() {
    for v in [
        0_u64,
        1,
        127,
        128,
        16_383,
        16_384,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let mut out = Vec::new();
        varint(&mut out, v);
        assert_eq!(out.len(), varint_len(v), "{v}");
    }
}

#[test]
fn an_empty_batch_is_a_scope_without_spans() {
    let mut body = vec![1, 2, 3];
    Envelope::new(&Resource::builder_empty().build()).request(&[], &mut body);
    let decoded = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
    let spans: usize = decoded
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(spans, 0);
}
