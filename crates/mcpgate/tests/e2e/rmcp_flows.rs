//! An rmcp client through the gateway to the demo server: tools, notes,
//! resources, the prompt, progress, elicitation, sampling, cancellation and
//! the end of the session — over a stdio upstream and over HTTP upstreams.

use std::collections::BTreeSet;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CancelledNotificationParam, ClientRequest, GetPromptRequestParams,
    ReadResourceRequestParams, Request, ResourceContents,
};
use rmcp::service::{PeerRequestOptions, ServiceError};
use serde_json::{Value, json};

use crate::harness::client::{
    Client, MODEL_REPLY, Recording, TestClient, call, call_ok, connect, text_of,
};
use crate::harness::raw::{Raw, tool_call};
use crate::harness::{DemoHttp, Gateway, config, demo_stdio_upstream, eventually, toml_str};

const DEMO_TOOLS: [&str; 9] = [
    "confirm_action",
    "create_secure_note",
    "echo",
    "get_api_usage",
    "health_check",
    "list_secure_notes",
    "slow_count",
    "summarize",
    "whoami",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_through_a_stdio_demo() {
    let data = tempfile::tempdir().expect("tempdir");
    let upstream = demo_stdio_upstream(
        "demo",
        data.path(),
        "isolation = \"session\"\nenv = { MCPGATE_SUBJECT = \"alice\" }",
    );
    let gw = Gateway::start(&config(&upstream)).await;
    let handler = TestClient::default();
    let (client, recording) = connect(&gw.mcp("demo"), handler.clone()).await;

    // The upstream's environment reached the per-session child.
    let me = call_ok(&client, "whoami", json!({})).await;
    assert_eq!(me["subject"], "alice", "{me}");
    assert_eq!(me["source"], "environment", "{me}");

    full_flow(&client, &handler).await;
    let ready = gw.readyz().await;
    assert_eq!(ready["upstreams"]["demo"]["children"], 1, "{ready}");
    assert_eq!(ready["upstreams"]["demo"]["sessions"], 1, "{ready}");

    close_and_check_gone(client, &recording, &gw.mcp("demo")).await;
    // The session's own child is stopped with it.
    let mut children = Value::Null;
    for _ in 0..100 {
        children = gw.readyz().await["upstreams"]["demo"]["children"].clone();
        if children == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(children, 0, "the per-session child outlived its session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_through_an_http_demo() {
    through_http_demo(Some("streamable-http")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_through_an_http_demo_with_transport_undetected() {
    through_http_demo(None).await;
}

async fn through_http_demo(transport: Option<&str>) {
    let demo = DemoHttp::start().await;
    let transport = transport
        .map(|t| format!("transport = {}", toml_str(t)))
        .unwrap_or_default();
    let upstream = format!(
        "[[upstream]]\nname = \"demo\"\nurl = {}\n{transport}\n",
        toml_str(&demo.url)
    );
    let gw = Gateway::start(&config(&upstream)).await;
    let handler = TestClient::default();
    let (client, recording) = connect(&gw.mcp("demo"), handler.clone()).await;
    full_flow(&client, &handler).await;
    close_and_check_gone(client, &recording, &gw.mcp("demo")).await;
}

/// Everything the demo offers, through the gateway, with values checked.
async fn full_flow(client: &Client, handler: &TestClient) {
    let tools: BTreeSet<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let expected: BTreeSet<String> = DEMO_TOOLS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(tools, expected);

    let text = "héllo through the gateway ✓ \"quoted\"\nsecond line";
    let echoed = call(client, "echo", json!({ "text": text })).await;
    assert_ne!(echoed.is_error, Some(true), "{echoed:?}");
    assert_eq!(text_of(&echoed), text);

    // Notes: create, then list.
    let note = call_ok(
        client,
        "create_secure_note",
        json!({ "title": "Groceries", "content": "milk, eggs" }),
    )
    .await;
    let id = note["id"].as_i64().expect("a numeric note id");
    assert_eq!(note["uri"], format!("user://notes/{id}"));
    let listed = call_ok(client, "list_secure_notes", json!({})).await;
    let notes = listed["notes"].as_array().expect("notes");
    assert_eq!(notes.len(), 1, "{listed}");
    assert_eq!(notes[0]["id"], id);
    assert_eq!(notes[0]["content"], "milk, eggs");

    // Resources: the profile and the note.
    let profile = read_json(client, "user://profile").await;
    assert_eq!(profile["note_count"], 1, "{profile}");
    let read = read_json(client, &format!("user://notes/{id}")).await;
    assert_eq!(read["title"], "Groceries");
    assert_eq!(read["content"], "milk, eggs");

    // The prompt.
    let Value::Object(args) = json!({ "note_id": id.to_string() }) else {
        unreachable!()
    };
    let prompt = client
        .get_prompt(GetPromptRequestParams::new("note_summary").with_arguments(args))
        .await
        .expect("prompts/get");
    let rendered = serde_json::to_string(&prompt.messages).expect("serializes");
    assert!(
        rendered.contains("Groceries") && rendered.contains("milk, eggs"),
        "{rendered}"
    );

    progress(client, handler).await;

    // Elicitation: the demo asks the client, which accepts.
    let confirmed = call_ok(
        client,
        "confirm_action",
        json!({ "action": "archive old notes" }),
    )
    .await;
    assert_eq!(
        confirmed,
        json!({ "action": "accept", "confirmed": true, "outcome": "confirmed: archive old notes" })
    );
    assert_eq!(
        handler.elicited.lock().expect("lock").as_slice(),
        ["The demo server wants to: archive old notes. Go ahead?"]
    );

    // Sampling: the demo asks the client's model.
    let long = "The quick brown fox jumps over the lazy dog, again and again.";
    let summary = call(client, "summarize", json!({ "text": long })).await;
    assert_ne!(summary.is_error, Some(true), "{summary:?}");
    assert_eq!(text_of(&summary), MODEL_REPLY);
    let sampled = handler.sampled.lock().expect("lock").clone();
    assert_eq!(sampled.len(), 1, "{sampled:?}");
    assert!(sampled[0].contains(long), "{sampled:?}");

    cancellation(client, handler).await;
}

/// slow_count with a progress token: notifications arrive, in order, then the result.
async fn progress(client: &Client, handler: &TestClient) {
    let before = handler.progress_count();
    let reply = call_ok(client, "slow_count", json!({ "steps": 4, "delay_ms": 30 })).await;
    assert_eq!(reply["completed"], 4, "{reply}");
    assert_eq!(reply["reported_progress"], true, "{reply}");
    // Notifications are handled as they arrive; give the last one a moment.
    eventually(Duration::from_secs(5), "4 progress notifications", || {
        handler.progress_count() >= before + 4
    })
    .await;
    let got = handler.progress()[before..].to_vec();
    let steps: Vec<f64> = got.iter().map(|p| p.progress).collect();
    assert!(steps.len() >= 2, "{steps:?}");
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "progress must increase: {steps:?}"
    );
    assert_eq!(steps, [1.0, 2.0, 3.0, 4.0]);
    assert!(got.iter().all(|p| p.total == Some(4.0)));
    assert!(
        got.iter()
            .all(|p| p.progress_token == got[0].progress_token)
    );
}

/// slow_count cancelled mid-way: the call ends as cancelled, the count stops,
/// and the session keeps working.
async fn cancellation(client: &Client, handler: &TestClient) {
    let before = handler.progress_count();
    let Value::Object(args) = json!({ "steps": 200, "delay_ms": 50 }) else {
        unreachable!()
    };
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("slow_count").with_arguments(args),
    ));
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .expect("slow_count sent");
    let id = handle.id.clone();
    let waiting = tokio::spawn(handle.await_response());
    eventually(Duration::from_secs(10), "2 progress notifications", || {
        handler.progress_count() >= before + 2
    })
    .await;
    client
        .notify_cancelled(CancelledNotificationParam::new(
            Some(id),
            Some("the test cancels".to_owned()),
        ))
        .await
        .expect("notifications/cancelled sent");
    let outcome = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the cancelled call ends")
        .expect("the waiting task did not panic");
    match outcome {
        Err(ServiceError::Cancelled { reason }) => {
            assert_eq!(reason.as_deref(), Some("the test cancels"));
        }
        other => panic!("the call should end as cancelled, got {other:?}"),
    }

    // The upstream stopped counting: progress settles far below 200 steps.
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = handler.progress_count();
            tokio::time::sleep(Duration::from_millis(400)).await;
            if handler.progress_count() == n {
                return n - before;
            }
        }
    })
    .await
    .expect("progress stops after the cancellation");
    assert!(
        settled < 100,
        "{settled} steps: the cancellation did not reach the upstream"
    );

    // The gateway and the session still work.
    let after = call(client, "echo", json!({ "text": "still here" })).await;
    assert_eq!(text_of(&after), "still here");
}

/// Closes the client (rmcp sends DELETE), then checks the old session id is refused with 404.
async fn close_and_check_gone(client: Client, recording: &Recording, url: &str) {
    let session = recording
        .issued
        .lock()
        .expect("lock")
        .first()
        .cloned()
        .expect("the gateway issued a session id");
    client.cancel().await.expect("the client closes");
    let deleted = recording.deleted.lock().expect("lock").clone();
    assert_eq!(deleted, [(session.clone(), true)], "one successful DELETE");

    let raw = Raw::new(url);
    let resp = raw
        .post(
            Some(&session),
            &tool_call(json!(1), "echo", json!({ "text": "x" })),
        )
        .await;
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.expect("a JSON-RPC error body");
    assert!(body["error"]["code"].is_i64(), "{body}");
}

async fn read_json(client: &Client, uri: &str) -> Value {
    let result = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("resources/read {uri}: {e}"));
    let [ResourceContents::TextResourceContents { text, .. }] = result.contents.as_slice() else {
        panic!("expected one text content for {uri}: {result:?}");
    };
    serde_json::from_str(text).expect("the resource is JSON")
}
