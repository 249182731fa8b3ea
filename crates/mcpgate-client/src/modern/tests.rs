use serde_json::{Value, json};

use super::*;

#[test]
fn stamp_adds_the_envelope_and_keeps_other_meta() {
    let p = stamp(
        json!({"name": "echo", "_meta": {"progressToken": 3}}),
        &json!({"roots": {}}),
    );
    assert_eq!(p["name"], "echo");
    assert_eq!(p["_meta"]["progressToken"], 3);
    assert_eq!(p["_meta"][META_VERSION], VERSION);
    assert_eq!(p["_meta"][META_CAPABILITIES], json!({"roots": {}}));
    assert_eq!(p["_meta"][META_CLIENT_INFO]["name"], "mcpgate");
    assert!(stamp(Value::Null, &json!({}))["_meta"].is_object());
}

#[test]
fn discover_answers_of_a_modern_server() {
    let ok = json!({"jsonrpc": "2.0", "id": 1, "result":
        {"supportedVersions": ["2026-07-28"], "capabilities": {}}});
    assert!(matches!(
        judge_discover(200, Some(&ok)),
        Discovered::Modern(_)
    ));
    let later_only = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32022,
        "message": "Unsupported protocol version",
        "data": {"supported": ["2027-01-01"], "requested": "2026-07-28"}}});
    assert!(matches!(
        judge_discover(400, Some(&later_only)),
        Discovered::Failed(_)
    ));
    // A 2026-07-28 server refusing our headers is a bug to show, not an old server.
    let mismatch = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32020, "message": "x"}});
    assert!(matches!(
        judge_discover(500, Some(&mismatch)),
        Discovered::Failed(_)
    ));
}

#[test]
fn discover_answers_of_older_servers() {
    let older = |status, body: Option<Value>| {
        matches!(judge_discover(status, body.as_ref()), Discovered::Older(_))
    };
    // A 2025 server: unsupported version header, or no session.
    assert!(older(
        400,
        Some(json!({"jsonrpc": "2.0", "id": null,
        "error": {"code": -32000, "message": "Bad Request: Unsupported protocol version"}}))
    ));
    assert!(older(400, None));
    // Method dispatch reached: -32601 at 200 or 404.
    let nf = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "Method not found"}});
    assert!(older(200, Some(nf.clone())));
    assert!(older(404, Some(nf)));
    // Legacy SSE only.
    assert!(older(405, None));
    assert!(older(404, None));
    let handshake_only = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32022,
        "message": "Unsupported", "data": {"supported": ["2025-06-18", "2025-11-25"]}}});
    assert!(older(400, Some(handshake_only)));
    // Server errors are errors, not a reason to fall back.
    assert!(matches!(judge_discover(500, None), Discovered::Failed(_)));
    assert!(matches!(judge_discover(502, None), Discovered::Failed(_)));
}

#[test]
fn input_required_round_trip() {
    let interim = json!({"resultType": "input_required",
        "inputRequests": {"a": {"method": "elicitation/create", "params": {"message": "ok?"}},
                          "b": {"method": "roots/list"}},
        "requestState": "s1"});
    assert!(is_input_required(&interim));
    let qs = input_requests(&interim);
    assert_eq!(qs.len(), 2);
    assert_eq!(qs[0].method, "elicitation/create");
    assert_eq!(qs[1].params, Value::Null);
    let mut answers = serde_json::Map::new();
    answers.insert("a".into(), json!({"action": "accept"}));
    let original = json!({"name": "t", "inputResponses": {"old": {}}, "requestState": "s0"});
    let p = retry_params(&original, answers, &interim);
    assert_eq!(p["name"], "t");
    assert_eq!(p["requestState"], "s1");
    assert_eq!(p["inputResponses"], json!({"a": {"action": "accept"}}));
    assert!(!is_input_required(&json!({"resultType": "complete"})));
}

#[test]
fn routing_names() {
    assert_eq!(
        routing_name("tools/call", &json!({"name": "echo"})),
        Some("echo")
    );
    assert_eq!(
        routing_name("resources/read", &json!({"uri": "a://b"})),
        Some("a://b")
    );
    assert_eq!(routing_name("tools/list", &json!({"name": "x"})), None);
    assert_eq!(routing_value("echo"), "echo");
    assert_eq!(routing_value("é"), "=?base64?w6k=?=");
}

#[test]
fn routing_values_encode_what_a_header_cannot_carry() {
    use base64::Engine as _;
    assert_eq!(routing_value("echo"), "echo");
    assert_eq!(routing_value("demo://notes/1"), "demo://notes/1");
    let v = routing_value("café");
    let s = v.to_str().unwrap();
    let b64 = s
        .strip_prefix("=?base64?")
        .unwrap()
        .strip_suffix("?=")
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(decoded, "café".as_bytes());
    assert!(
        routing_value(" padded")
            .to_str()
            .unwrap()
            .starts_with("=?base64?")
    );
}
