use super::*;

#[test]
fn round_trips_unknown_members_and_raw_payloads() {
    let text = br#"{"jsonrpc":"2.0","id":"a-1","method":"x/y","params":{"b":[1,2.50]},"ext":true}"#;
    let m = Message::parse(text).unwrap();
    assert_eq!(m.kind(), Some(Kind::Request));
    assert_eq!(m.id_key(), Some("\"a-1\""));
    let out = String::from_utf8(m.to_bytes().to_vec()).unwrap();
    assert!(out.contains(r#""params":{"b":[1,2.50]}"#), "{out}");
    assert!(out.contains(r#""ext":true"#), "{out}");
}

#[test]
fn classifies_and_rejects() {
    let n = Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert_eq!(n.kind(), Some(Kind::Notification));
    let r = Message::parse(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#).unwrap();
    assert_eq!(r.kind(), Some(Kind::Response));
    let bad = Message::parse(br#"{"jsonrpc":"2.0","id":7}"#).unwrap();
    assert_eq!(bad.kind(), None);
    assert!(Message::parse(br#"{"jsonrpc":"1.0","id":1,"method":"a"}"#).is_err());
    assert!(Message::parse(br#"{"id":1,"method":"a"}"#).is_err());
    assert!(Message::parse(br#"[{"jsonrpc":"2.0","id":1,"method":"a"}]"#).is_err());
}

#[test]
fn member_names_and_the_version_are_read_escaped_too() {
    // JSON allows escapes in names and strings: `\u0072` is `r`, `\u002e` is `.`.
    let m = Message::parse(br#"{"json\u0072pc":"2\u002e0","\u0069d":3,"method":"m","x\u0079":1}"#)
        .unwrap();
    assert_eq!(m.id_key(), Some("3"));
    assert_eq!(m.method.as_deref(), Some("m"));
    assert_eq!(m.extra.len(), 1);
    assert_eq!(m.extra[0].0, "xy");
    let err = |t: &[u8]| Message::parse(t).unwrap_err().to_string();
    assert!(
        err(br#"{"jsonrpc":"2.1","id":1,"method":"a"}"#).contains("\"jsonrpc\" must be \"2.0\"")
    );
    assert!(err(br#"{"jsonrpc":2.0,"id":1,"method":"a"}"#).contains("expected a string"));
    assert!(err(br#"{"id":1,"method":"a"}"#).contains("missing \"jsonrpc\""));
}

#[test]
fn progress_token_is_read_and_rewritten() {
    let m = Message::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"progressToken":"p1"}}}"#,
    )
    .unwrap();
    let token = progress_token(m.params.as_deref()).unwrap();
    assert_eq!(token.get(), "\"p1\"");
    let rewritten = replace_progress_token(m.params.as_deref().unwrap(), &num_id(42)).unwrap();
    assert_eq!(progress_token(Some(&rewritten)).unwrap().get(), "42");
    assert!(rewritten.get().contains("\"name\":\"t\""));
}

#[test]
fn error_has_null_id_when_unknown() {
    let e = Message::error(None, code::PARSE_ERROR, "bad");
    let s = String::from_utf8(e.to_bytes().to_vec()).unwrap();
    assert!(s.contains(r#""id":null"#) && s.contains("-32700"), "{s}");
}

#[test]
fn one_param_is_read_without_the_rest() {
    let m = Message::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[1,{"y":2}]},"name":"e\u0063ho","_meta":{"k":1}}}"#,
    )
    .unwrap();
    // The last of a repeated member, escapes decoded, as a `Value` reads it.
    assert_eq!(m.param_str("name").as_deref(), Some("echo"));
    assert_eq!(m.param("_meta").map(|r| r.get()), Some(r#"{"k":1}"#));
    assert_eq!(
        m.param("arguments").map(|r| r.get()),
        Some(r#"{"x":[1,{"y":2}]}"#)
    );
    assert!(m.param("requestState").is_none());
    // Not a string, not an object, no params: nothing.
    assert!(m.param_str("_meta").is_none());
    let array =
        Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":["name"]}"#).unwrap();
    assert!(array.param("name").is_none());
    let none = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"m"}"#).unwrap();
    assert!(none.param_str("name").is_none());
}

#[test]
fn several_params_are_read_in_one_pass() {
    let m = Message::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[1]},"name":"e\u0063ho","_meta":{"k":1}}}"#,
    )
    .unwrap();
    let [meta, name, state] = m.params_members(["_meta", "name", "requestState"]);
    assert_eq!(meta.map(RawValue::get), Some(r#"{"k":1}"#));
    // The last of a repeated member, as `param` reads it.
    assert_eq!(name.and_then(raw_str).as_deref(), Some("echo"));
    assert!(state.is_none());
    let array =
        Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"m","params":["name"]}"#).unwrap();
    assert!(array.params_members(["name"])[0].is_none());
    assert!(members(&raw(&1), ["a"]).is_none());
}

#[test]
fn entries_keep_order_and_rebuild_an_object() {
    let obj =
        RawValue::from_string(r#"{"b": [1, 2], "a\u0041":{"x":1},"b":true}"#.to_owned()).unwrap();
    let e = entries(&obj).unwrap();
    let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_ref()).collect();
    // A repeated name keeps its first place and its last value.
    assert_eq!(keys, ["b", "aA"]);
    assert_eq!(e[0].1.get(), "true");
    let rebuilt = object_of(e.iter().map(|(k, v)| (k.as_ref(), *v)));
    assert_eq!(rebuilt.get(), r#"{"b":true,"aA":{"x":1}}"#);
    assert_eq!(object_of([]).get(), "{}");
    assert!(entries(&raw(&"s")).is_none());
}
