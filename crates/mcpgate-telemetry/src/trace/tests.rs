use super::*;

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).expect("JSON")
}

#[test]
fn the_context_is_spliced_into_an_object_and_nothing_else() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let cx = format!("{{\"traceparent\":\"{tp}\"}}");
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
