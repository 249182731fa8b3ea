use super::*;

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("valid JSON")
}

fn renamed(method: &str, params: &str, to: &str) -> (Named, String) {
    let params = raw(params);
    let (target, at) = target_of(method, &params).expect("a name");
    let out = jsonrpc::spliced(&params, at, &jsonrpc::raw(&to)).expect("inside");
    (target, out.get().to_owned())
}

#[test]
fn a_call_is_renamed_and_everything_else_goes_on_as_written() {
    // Numbers a parsed tree would rewrite (1.50 → 1.5) or refuse (out of
    // f64's range), spacing and member order: all kept.
    let (target, out) = renamed(
        "tools/call",
        r#"{"_meta":{"progressToken":7}, "name" : "demo_echo","arguments":{"n":1.50,"big":1e400,"s":"a\u00e9","name":"demo_echo"}}"#,
        "echo",
    );
    assert_eq!(target, Named::Tool("demo_echo".into()));
    assert_eq!(
        out,
        r#"{"_meta":{"progressToken":7}, "name" : "echo","arguments":{"n":1.50,"big":1e400,"s":"a\u00e9","name":"demo_echo"}}"#
    );
}

#[test]
fn an_escaped_name_is_read_decoded_and_written_escaped() {
    let (target, out) = renamed("tools/call", r#"{"name":"demo_\u0065cho"}"#, "say \"hi\"");
    assert_eq!(target, Named::Tool("demo_echo".into()));
    assert_eq!(out, r#"{"name":"say \"hi\""}"#);
}

#[test]
fn a_completion_is_renamed_inside_its_ref() {
    let (target, out) = renamed(
        "completion/complete",
        r#"{"ref":{"type":"ref/prompt","name":"demo_greet"},"argument":{"name":"x","value":"y"}}"#,
        "greet",
    );
    assert_eq!(target, Named::Prompt("demo_greet".into()));
    assert_eq!(
        out,
        r#"{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"x","value":"y"}}"#
    );
    let (target, out) = renamed("resources/read", r#"{"uri":"file:///a"}"#, "file:///a");
    assert_eq!(target, Named::Resource("file:///a".into()));
    assert_eq!(out, r#"{"uri":"file:///a"}"#);
}

#[test]
fn names_that_are_not_strings_name_nothing() {
    for (method, params) in [
        ("tools/call", r#"{"name":7}"#),
        ("tools/call", r#"{"arguments":{}}"#),
        ("tools/call", "[1]"),
        ("resources/read", r#"{"uri":null}"#),
        ("completion/complete", r#"{"ref":"ref/prompt"}"#),
    ] {
        let params = raw(params);
        assert_eq!(
            target_of(method, &params).err(),
            Some(Missing::Name),
            "{method} {params}"
        );
    }
}

/// A first-wins parser upstream would call the first, the gateway would
/// have checked the last: refused instead.
#[test]
fn a_name_given_twice_is_refused() {
    for (method, params) in [
        ("tools/call", r#"{"name":"demo_delete","name":"demo_echo"}"#),
        (
            "completion/complete",
            r#"{"ref":{"type":"ref/prompt","name":"a_x","name":"b_y"}}"#,
        ),
        (
            "completion/complete",
            r#"{"ref":{"type":"ref/prompt","name":"a_x"},"ref":{"type":"ref/prompt","name":"b_y"}}"#,
        ),
    ] {
        let params = raw(params);
        assert_eq!(
            target_of(method, &params).err(),
            Some(Missing::Repeated),
            "{method} {params}"
        );
    }
}

#[test]
fn a_value_from_elsewhere_is_not_spliced() {
    let a = raw(r#"{"name":"x"}"#);
    let b = raw(r#"{"name":"x"}"#);
    let Sole::Once(in_b) = jsonrpc::sole_member(&b, "name") else {
        panic!("a member");
    };
    assert!(jsonrpc::spliced(&a, in_b, &jsonrpc::raw(&"y")).is_none());
}
