use std::sync::{Arc, Mutex};

use super::*;

#[tokio::test]
async fn a_tool_call_is_noted_with_its_name_and_nothing_outside_the_layer() {
    // A subscriber that takes the access log: the tool's name has a reader.
    let _log = tracing::subscriber::set_default(tracing_subscriber::registry());
    crate::set_access_log(true);
    // Outside the scope: nothing to note into, and no panic.
    note_mcp(
        "demo",
        Some("tools/call"),
        Some("1"),
        None,
        Some(r#"{"name":"x"}"#),
    );
    let shared: Shared = Arc::new(Mutex::new(Note::default()));
    NOTE.scope(shared.clone(), async {
        note_mcp(
            "demo",
            Some("tools/call"),
            Some("7"),
            Some("s-1"),
            Some(r#"{"name":"create_note","arguments":{"title":"t"}}"#),
        );
        note_principal("alice", Some("cli\u{7}ent"), "api_key");
    })
    .await;
    let n = lock(&shared);
    assert_eq!(n.upstream(), Some("demo"));
    assert_eq!(n.tool(), Some("create_note"));
    // Only a span shows the request's id and session: traces are off here.
    assert_eq!(n.jsonrpc_id(), None);
    assert_eq!(n.session_id(), None);
    assert_eq!(n.subject.as_deref(), Some("alice"));
    assert_eq!(n.client_id.as_deref(), Some("cli?ent"));
}

#[tokio::test]
async fn only_tools_call_names_a_tool() {
    let _log = tracing::subscriber::set_default(tracing_subscriber::registry());
    crate::set_access_log(true);
    let shared: Shared = Arc::new(Mutex::new(Note::default()));
    NOTE.scope(shared.clone(), async {
        note_mcp(
            "demo",
            Some("prompts/get"),
            None,
            None,
            Some(r#"{"name":"p"}"#),
        );
    })
    .await;
    assert_eq!(lock(&shared).tool(), None);
}

#[test]
fn long_values_are_cut() {
    assert_eq!(clean(&"a".repeat(1000)).len(), crate::clean::MAX_FIELD);
}

#[tokio::test]
async fn with_nothing_to_read_it_the_tool_is_not_parsed() {
    // No subscriber (no access log), no audit sink, no exporter.
    let shared: Shared = Arc::new(Mutex::new(Note::default()));
    NOTE.scope(shared.clone(), async {
        note_mcp(
            "demo",
            Some("tools/call"),
            Some("7"),
            None,
            Some(r#"{"name":"create_note"}"#),
        );
    })
    .await;
    let n = lock(&shared);
    assert_eq!(n.mcp_method(), Some("tools/call"));
    assert_eq!(n.tool(), None);
}

#[test]
fn the_verifier_label_is_the_variant_name_or_other() {
    let mut buf = [0u8; 48];
    assert_eq!(verifier_label("api_key", &mut buf), "api_key");
    assert_eq!(verifier_label(7, &mut buf), "other");
    assert_eq!(verifier_label("x".repeat(60), &mut buf), "other");
}
