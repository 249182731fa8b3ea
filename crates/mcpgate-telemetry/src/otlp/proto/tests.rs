use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
use prost::Message as _;

use super::*;

fn context(trace: u128, span: u64, state: &str, remote: bool) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::SAMPLED,
        remote,
        state.parse::<TraceState>().unwrap_or_default(),
    )
}

fn span(name: &'static str, scope: &InstrumentationScope, rich: bool) -> SpanData {
    let at = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
    let mut events = SpanEvents::default();
    let mut links = SpanLinks::default();
    let mut attributes = vec![
        KeyValue::new("mcp.method.name", "tools/call"),
        KeyValue::new("http.response.status_code", 200_i64),
        KeyValue::new("jsonrpc.request.id", "x".repeat(300)),
    ];
    if rich {
        attributes.extend([
            KeyValue::new("negative", -5_i64),
            KeyValue::new("flag", true),
            KeyValue::new("off", false),
            KeyValue::new("ratio", 0.25_f64),
            KeyValue::new("empty", ""),
            KeyValue::new(
                "list",
                Value::Array(Array::String(vec![
                    StringValue::from("a"),
                    StringValue::from("é"),
                ])),
            ),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, 1 << 40]))),
        ]);
        events.events.push(Event::new(
            "retry",
            at,
            vec![KeyValue::new("attempt", 2_i64)],
            1,
        ));
        events.dropped_count = 3;
        links.links.push(Link::new(
            context(7, 8, "k=v", true),
            vec![KeyValue::new("why", "follows")],
            0,
        ));
        links.dropped_count = 2;
    }
    SpanData {
        span_context: context(
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            0x00f0_67aa_0ba9_02b7,
            if rich { "vendor=x,other=y" } else { "" },
            false,
        ),
        parent_span_id: if rich {
            SpanId::from(0xb7ad_6b71_6920_3331)
        } else {
            SpanId::INVALID
        },
        parent_span_is_remote: rich,
        span_kind: if rich {
            SpanKind::Client
        } else {
            SpanKind::Server
        },
        name: name.into(),
        start_time: at,
        end_time: at + Duration::from_micros(1500),
        attributes,
        dropped_attributes_count: u32::from(rich) * 4,
        events,
        links,
        status: if rich {
            Status::error("upstream went away")
        } else {
            Status::Unset
        },
        instrumentation_scope: scope.clone(),
    }
}

/// What the generic path (opentelemetry-proto's conversion) makes of the
/// same spans, decoded from this encoder's bytes, must be the same message.
#[test]
fn the_encoding_decodes_to_what_the_generic_conversion_builds() {
    let resource = Resource::builder()
        .with_service_name("mcpgate-under-test")
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .build();
    let ours = InstrumentationScope::builder("mcpgate").build();
    let other = InstrumentationScope::builder("other")
        .with_version("1.2.3")
        .with_attributes([KeyValue::new("scope.attr", 1_i64)])
        .build();
    let batch = vec![
        span("tools/call echo", &ours, false),
        span("upstream call", &ours, true),
        span("elsewhere", &other, true),
    ];
    let mut encoder = Encoder::default();
    encoder.set_resource(&resource);
    let mut body = Vec::new();
    encoder.encode(&batch, &mut body);
    let decoded = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");

    let mut expected =
        group_spans_by_resource_and_scope(batch, &ResourceAttributesWithSchema::from(&resource));
    assert_eq!(decoded.resource_spans.len(), 1);
    let got = &decoded.resource_spans[0];
    let want = expected.remove(0);
    assert_eq!(got.resource, want.resource);
    assert_eq!(got.schema_url, want.schema_url);
    // The generic conversion orders scopes by a hash map; compare by name.
    let mut got_scopes = got.scope_spans.clone();
    let mut want_scopes = want.scope_spans;
    let by_name = |s: &opentelemetry_proto::tonic::trace::v1::ScopeSpans| {
        s.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default()
    };
    got_scopes.sort_by_key(by_name);
    want_scopes.sort_by_key(by_name);
    assert_eq!(got_scopes, want_scopes);
    assert_eq!(got_scopes.iter().map(|s| s.spans.len()).sum::<usize>(), 3);
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
fn an_empty_batch_is_an_empty_resource_spans() {
    let mut encoder = Encoder::default();
    encoder.set_resource(&Resource::builder_empty().build());
    let mut body = vec![1, 2, 3];
    encoder.encode(&[], &mut body);
    let decoded = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
    assert!(
        decoded
            .resource_spans
            .iter()
            .all(|r| r.scope_spans.is_empty())
    );
}
