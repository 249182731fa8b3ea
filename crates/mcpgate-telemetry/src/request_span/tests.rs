use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

use opentelemetry::Context;

use super::*;

fn context(flags: TraceFlags, state: &str) -> SpanContext {
    SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c),
        SpanId::from(0xb7ad_6b71_6920_3331),
        flags,
        true,
        state.parse::<TraceState>().unwrap_or_default(),
    )
}

#[test]
fn the_context_is_formatted_as_the_w3c_propagator_does() {
    use opentelemetry::propagation::TextMapPropagator as _;
    for (flags, state) in [
        (TraceFlags::SAMPLED, ""),
        (TraceFlags::default(), "vendor=abc,other=c"),
    ] {
        let sc = context(flags, state);
        let p = propagate(&sc).expect("a valid context");
        let mut theirs = std::collections::HashMap::new();
        opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .inject_context(&Context::new().with_remote_span_context(sc), &mut theirs);
        assert_eq!(p.traceparent(), theirs["traceparent"]);
        assert_eq!(
            p.traceparent_header().expect("a header value"),
            theirs["traceparent"]
        );
        assert_eq!(
            p.tracestate
                .as_ref()
                .map(|t| t.to_str().unwrap_or_default()),
            Some(theirs["tracestate"].as_str()).filter(|t| !t.is_empty())
        );
        let mut text = String::new();
        p.write_meta(&mut text);
        assert_eq!(text.len(), p.meta_len());
        let meta: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(meta["traceparent"], theirs["traceparent"]);
        if !state.is_empty() {
            assert_eq!(meta["tracestate"], theirs["tracestate"]);
        } else {
            assert!(meta.get("tracestate").is_none(), "{meta}");
        }
    }
    assert!(propagate(&SpanContext::NONE).is_none());
}
