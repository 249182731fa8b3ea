//! The stream (stdio) transport, driven through an in-memory pipe.

use rmcp::{
    ServiceExt as _,
    model::{CallToolRequestParams, ReadResourceRequestParams, ResourceContents},
};
use serde_json::{Value, json};

use super::*;

#[tokio::test]
async fn stream_session_acts_for_the_process_subject_until_closed() {
    let data = tempfile::tempdir().expect("tempdir");
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    let opts = DemoOptions {
        data_dir: data.path().join("data"),
        credential_names: Vec::new(),
    };
    let subject = identity::Subject::parse("henry").expect("valid subject");
    let server = tokio::spawn(serve_stream(server_end, opts, Some(subject)));

    let client = ().serve(client_end).await.expect("client connects");
    let whoami = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .expect("whoami");
    let me = whoami.structured_content.expect("structured");
    assert_eq!(me["subject"], "henry");
    assert_eq!(me["source"], "environment");

    let Value::Object(args) = json!({ "title": "stdio", "content": "works" }) else {
        unreachable!()
    };
    let created = client
        .call_tool(CallToolRequestParams::new("create_secure_note").with_arguments(args))
        .await
        .expect("create");
    assert_eq!(created.is_error, Some(false));
    let profile = client
        .read_resource(ReadResourceRequestParams::new("user://profile"))
        .await
        .expect("profile");
    let [ResourceContents::TextResourceContents { text, .. }] = profile.contents.as_slice() else {
        panic!("one text content expected: {profile:?}");
    };
    let profile: Value = serde_json::from_str(text).expect("json");
    assert_eq!(profile["note_count"], 1);

    // Closing the client's end is stdin closing: the server returns cleanly.
    client.cancel().await.expect("client closes");
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("server ends when the stream closes")
        .expect("no panic")
        .expect("no error");
    assert!(data.path().join("data").join("demo.sqlite").exists());
}
