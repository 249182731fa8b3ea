//! Properties of the JSON-RPC envelope: no input panics the parser, the
//! classification follows JSON-RPC's rules, and what the proxy forwards keeps
//! the members it did not read.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Kind, Message};

/// An id as JSON-RPC allows it: a string or a number.
fn id() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9_\\-\"\\\\é]{0,12}".prop_map(Value::from),
    ]
}

/// Any small JSON value, for params, results and unknown members.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[ -~]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An envelope with any combination of the members the proxy looks at.
fn envelope() -> impl Strategy<Value = Value> {
    (
        proptest::option::of("[a-z/_]{1,16}"),
        proptest::option::of(id()),
        proptest::option::of(value()),
        proptest::option::of(value()),
        proptest::option::of(value()),
        proptest::option::of(value()),
    )
        .prop_map(|(method, id, params, result, error, extra)| {
            let mut m = serde_json::Map::new();
            m.insert("jsonrpc".into(), json!("2.0"));
            if let Some(v) = method {
                m.insert("method".into(), json!(v));
            }
            if let Some(v) = id {
                m.insert("id".into(), v);
            }
            if let Some(v) = params {
                m.insert("params".into(), v);
            }
            if let Some(v) = result {
                m.insert("result".into(), v);
            }
            if let Some(v) = error {
                m.insert("error".into(), v);
            }
            if let Some(v) = extra {
                m.insert("x_extension".into(), v);
            }
            Value::Object(m)
        })
}

proptest! {
    /// Arbitrary bytes are parsed or refused, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = Message::parse(&bytes) {
            let _ = m.kind();
            let _ = m.to_bytes();
        }
    }

    /// Arbitrary JSON (not just envelopes) is parsed or refused, never a panic.
    #[test]
    fn arbitrary_json_never_panics(v in value()) {
        let bytes = serde_json::to_vec(&v).expect("serializable");
        if let Ok(m) = Message::parse(&bytes) {
            let _ = m.kind();
        }
    }

    /// The kind follows JSON-RPC: a request has a method and an id, a
    /// notification a method and no id, a response an id and a result or error.
    #[test]
    fn classification_follows_json_rpc(v in envelope()) {
        let bytes = serde_json::to_vec(&v).expect("serializable");
        let Ok(m) = Message::parse(&bytes) else { return Ok(()) };
        let has = |k: &str| v.get(k).is_some();
        let outcome = has("result") || has("error");
        let expected = match (has("method"), has("id"), outcome) {
            (true, true, false) => Some(Kind::Request),
            (true, false, false) => Some(Kind::Notification),
            (false, true, true) => Some(Kind::Response),
            _ => None,
        };
        prop_assert_eq!(m.kind(), expected);
    }

    /// What the proxy writes back out is the same JSON value it read: the
    /// members it does not route on pass untouched.
    #[test]
    fn forwarding_preserves_every_member(v in envelope()) {
        let bytes = serde_json::to_vec(&v).expect("serializable");
        let Ok(m) = Message::parse(&bytes) else { return Ok(()) };
        let out: Value = serde_json::from_slice(&m.to_bytes()).expect("valid JSON out");
        prop_assert_eq!(out, v);
    }
}

proptest! {
    /// Every well-formed request (string or number id, object params) parses as
    /// a request: the properties above are not satisfied by refusing everything.
    #[test]
    fn well_formed_requests_parse(
        method in "[a-z/_]{1,16}",
        id in id(),
        params in proptest::collection::btree_map("[a-z_]{1,6}", value(), 0..4),
    ) {
        let v = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let m = Message::parse(&serde_json::to_vec(&v).expect("serializable"));
        prop_assert!(m.is_ok(), "{v} was refused");
        prop_assert_eq!(m.expect("checked").kind(), Some(Kind::Request));
    }
}
