use super::*;

#[test]
fn one_line_keeps_single_line_messages_as_they_are() {
    let msg = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{"text":"a\nb"}}"#);
    let out = one_line(msg.clone());
    assert_eq!(out, msg);
    assert_eq!(out.as_ptr(), msg.as_ptr(), "no copy");
}

#[test]
fn one_line_flattens_pretty_printed_json() {
    let pretty = Bytes::from_static(b"\n{\r\n  \"id\": 1,\n  \"result\": {}\n}\n");
    let out = one_line(pretty);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"], 1);
    assert!(!out.contains(&b'\n'));
}

#[tokio::test]
async fn errors_are_json_rpc_errors_with_the_callers_id() {
    let (w, r) = tokio::io::duplex(4096);
    let (out, task) = Output::spawn(w);
    let id = RawValue::from_string("\"abc\"".into()).unwrap();
    out.error(
        Some(&id),
        "no way through",
        serde_json::json!({"httpStatus": 502}),
    )
    .await;
    drop(out);
    task.await.unwrap().unwrap();
    let mut text = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(r), &mut text)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(v["id"], "abc");
    assert_eq!(v["error"]["code"], BRIDGE_ERROR);
    assert_eq!(v["error"]["message"], "no way through");
    assert_eq!(v["error"]["data"]["httpStatus"], 502);
    assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
}
