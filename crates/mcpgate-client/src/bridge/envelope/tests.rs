use super::*;

#[test]
fn kinds() {
    let r = Envelope::parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#).unwrap();
    assert_eq!(r.kind, Kind::Request);
    assert_eq!(r.id.as_deref().map(RawValue::get), Some("7"));
    let n = Envelope::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert_eq!(n.kind, Kind::Notification);
    assert!(n.id.is_none());
    let a = Envelope::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
    assert_eq!(a.kind, Kind::Response);
    let e =
        Envelope::parse(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#)
            .unwrap();
    assert_eq!(e.kind, Kind::Response);
    assert!(Envelope::parse(br#"{"jsonrpc":"2.0"}"#).is_err());
    assert!(Envelope::parse(b"[1,2]").is_err());
    assert!(Envelope::parse(b"not json").is_err());
}

#[test]
fn routing_name_and_stateless_version() {
    let call = Envelope::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"x"},
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","other":1}}}"#,
    )
    .unwrap();
    assert_eq!(call.name.as_deref(), Some("echo"));
    assert_eq!(call.stateless_version.as_deref(), Some("2026-07-28"));
    let read = Envelope::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"demo://x","name":"no"}}"#,
    )
    .unwrap();
    assert_eq!(read.name.as_deref(), Some("demo://x"));
    assert!(read.stateless_version.is_none());
    // Odd params never make a message unroutable.
    let odd = Envelope::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5,"_meta":"x"}}"#,
    )
    .unwrap();
    assert!(odd.name.is_none() && odd.stateless_version.is_none());
    let list =
        Envelope::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}"#).unwrap();
    assert!(list.name.is_none());
}

#[test]
fn answers_compares_ids_as_json() {
    let id = RawValue::from_string("12".into()).unwrap();
    let a = Envelope::parse(br#"{"jsonrpc":"2.0","id": 12 ,"result":{}}"#).unwrap();
    assert!(a.answers(&id));
    let s = Envelope::parse(br#"{"jsonrpc":"2.0","id":"12","result":{}}"#).unwrap();
    assert!(!s.answers(&id));
    let req = Envelope::parse(br#"{"jsonrpc":"2.0","id":12,"method":"ping"}"#).unwrap();
    assert!(
        !req.answers(&id),
        "a server request with the same id is not an answer"
    );
}
