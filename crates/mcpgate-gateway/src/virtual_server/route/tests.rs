use super::*;

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("valid JSON")
}

#[test]
fn a_call_is_renamed_and_its_arguments_go_on_as_written() {
    // Numbers a parsed tree would rewrite (1.50 → 1.5) or refuse (out of f64's range).
    let params = raw(
        r#"{"name":"demo_echo","arguments":{"n":1.50,"big":1e400,"s":"a\u00e9"},"_meta":{"progressToken":7}}"#,
    );
    let fields = fields_of(&params).expect("an object");
    let (target, path) = target_of("tools/call", &fields).expect("a name");
    assert_eq!(target, Named::Tool("demo_echo".into()));
    let out = with_path(fields, path, &jsonrpc::raw(&"echo"));
    assert_eq!(
        out.get(),
        r#"{"_meta":{"progressToken":7},"arguments":{"n":1.50,"big":1e400,"s":"a\u00e9"},"name":"echo"}"#
    );
}

#[test]
fn a_completion_is_renamed_inside_its_ref() {
    let params = raw(
        r#"{"ref":{"type":"ref/prompt","name":"demo_greet"},"argument":{"name":"x","value":"y"}}"#,
    );
    let fields = fields_of(&params).expect("an object");
    let (target, path) = target_of("completion/complete", &fields).expect("a name");
    assert_eq!(target, Named::Prompt("demo_greet".into()));
    let out = with_path(fields, path, &jsonrpc::raw(&"greet"));
    assert_eq!(
        out.get(),
        r#"{"argument":{"name":"x","value":"y"},"ref":{"name":"greet","type":"ref/prompt"}}"#
    );
}

#[test]
fn names_that_are_not_strings_name_nothing() {
    for (method, params) in [
        ("tools/call", r#"{"name":7}"#),
        ("tools/call", r#"{"arguments":{}}"#),
        ("resources/read", r#"{"uri":null}"#),
        ("completion/complete", r#"{"ref":"ref/prompt"}"#),
    ] {
        let params = raw(params);
        let fields = fields_of(&params).expect("an object");
        assert!(target_of(method, &fields).is_none(), "{method} {params}");
    }
    assert!(fields_of(&raw("[1]")).is_none());
}
