use super::*;

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).expect("JSON")
}

#[test]
fn the_context_is_spliced_into_an_object_and_nothing_else() {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let cx = crate::request_span::propagate(&SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
    .expect("a valid context");
    for (given, members) in [
        (r#"{"name":"echo","arguments":{"text":"x"}}"#, 3),
        (" { } ", 1),
        ("{}", 1),
    ] {
        let out = splice_meta(&raw(given), &cx).expect("an object");
        let v: serde_json::Value = serde_json::from_str(out.get()).expect("valid JSON");
        assert_eq!(v["_meta"]["traceparent"], tp, "{given} -> {out}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(members), "{out}");
    }
    let out = splice_meta(&raw(r#"{"name":"echo"}"#), &cx).expect("an object");
    let v: serde_json::Value = serde_json::from_str(out.get()).expect("valid JSON");
    assert_eq!(v["name"], "echo");
    assert!(splice_meta(&raw("[1,2]"), &cx).is_none());
    assert!(splice_meta(&raw("\"text\""), &cx).is_none());
}
