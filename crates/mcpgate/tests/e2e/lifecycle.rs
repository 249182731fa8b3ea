//! Sessions and processes over time: resuming a dropped stream, a child that
//! crashes mid-call, an upstream that is not there, the max_children limit,
//! and a restart that keeps what was acknowledged.

use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::raw::{Raw, SseReader, initialize_request, tool_call, tool_text};
use crate::harness::{
    Gateway, children_of, config, demo_stdio_upstream, eventually, free_port, is_running, signal,
    toml_str,
};

fn is_sse(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// slow_count with a progress token, as a raw request.
fn slow_count(id: i64, steps: u32, delay_ms: u32, token: &str) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": "slow_count",
            "arguments": { "steps": steps, "delay_ms": delay_ms },
            "_meta": { "progressToken": token }
        }
    })
}

fn is_progress(m: &Value) -> bool {
    m["method"] == "notifications/progress"
}

async fn demo_gateway(extra: &str) -> (Gateway, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(&config(&demo_stdio_upstream("demo", data.path(), extra))).await;
    (gw, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_with_last_event_id() {
    let (gw, _data) = demo_gateway("isolation = \"session\"").await;
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;

    let steps = 8;
    let resp = raw
        .post(Some(&session), &slow_count(42, steps, 150, "resume-me"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        is_sse(&resp),
        "a call with progress streams: {:?}",
        resp.headers()
    );
    let mut sse = SseReader::new(resp);
    let (first_id, first_progress) = loop {
        let ev = sse
            .next(Duration::from_secs(10))
            .await
            .expect("the stream ended before any progress");
        if let Some(m) = ev.json() {
            assert!(is_progress(&m), "the first message should be progress: {m}");
            assert_eq!(m["params"]["progressToken"], "resume-me", "{m}");
            let id = ev.id.clone().expect("events carry ids");
            break (id, m["params"]["progress"].as_f64().expect("progress"));
        }
    };
    assert_eq!(first_progress, 1.0);
    // Disconnect — not a cancellation — and let the count go on without us.
    drop(sse);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let resp = raw.resume(&session, &first_id).await;
    assert_eq!(resp.status(), StatusCode::OK, "GET with Last-Event-ID");
    assert!(is_sse(&resp));
    let mut sse = SseReader::new(resp);
    let mut progress = Vec::new();
    let mut ids = vec![first_id.clone()];
    let mut final_response = None;
    while let Some(ev) = sse.next(Duration::from_secs(10)).await {
        let Some(m) = ev.json() else { continue };
        let id = ev.id.clone().expect("events carry ids");
        assert!(!ids.contains(&id), "event id {id} repeated");
        ids.push(id);
        if is_progress(&m) {
            progress.push(m["params"]["progress"].as_f64().expect("progress"));
        } else {
            final_response = Some(m);
            break;
        }
    }
    let expected: Vec<f64> = (2..=steps).map(f64::from).collect();
    assert_eq!(
        progress, expected,
        "every progress event after the one we saw, once, in order"
    );
    let done = final_response.expect("the final response arrives on the resumed stream");
    assert_eq!(done["id"], 42, "{done}");
    assert_eq!(
        done["result"]["structuredContent"]["completed"], steps,
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_call_ends_its_session() {
    let (gw, _data) = demo_gateway("isolation = \"session\"").await;
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    let children = children_of(gw.pid());
    assert_eq!(children.len(), 1, "one child for one session: {children:?}");

    let resp = raw
        .post(Some(&session), &slow_count(9, 100, 100, "doomed"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut sse = SseReader::new(resp);
    loop {
        let ev = sse
            .next(Duration::from_secs(10))
            .await
            .expect("progress before the kill");
        if ev.json().is_some_and(|m| is_progress(&m)) {
            break;
        }
    }
    signal(children[0], Signal::SIGKILL);

    // The call in flight ends with a JSON-RPC error naming the upstream.
    let error = loop {
        let ev = sse
            .next(Duration::from_secs(10))
            .await
            .expect("the stream ended without an answer to the call");
        if let Some(m) = ev.json()
            && !is_progress(&m)
        {
            break m;
        }
    };
    assert_eq!(error["id"], 9, "{error}");
    assert!(error["result"].is_null(), "{error}");
    assert!(error["error"]["code"].is_i64(), "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("demo"),
        "the error should name the upstream: {error}"
    );

    // The session is gone…
    let resp = raw
        .post(
            Some(&session),
            &tool_call(json!(10), "echo", json!({ "text": "x" })),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // …and a new one works, on a new child.
    let fresh = raw.initialize().await;
    assert_ne!(fresh, session);
    let answer = raw
        .call(
            &fresh,
            &tool_call(json!(1), "echo", json!({ "text": "reborn" })),
        )
        .await;
    assert_eq!(tool_text(&answer), "reborn");
    let now = children_of(gw.pid());
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now[0], children[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_http_upstream_answers_502_naming_it() {
    let port = free_port();
    let url = toml_str(&format!("http://127.0.0.1:{port}/mcp"));
    let upstreams = format!(
        "[[upstream]]\nname = \"absent\"\nurl = {url}\n\n\
         [[upstream]]\nname = \"gone\"\nurl = {url}\ntransport = \"streamable-http\"\n"
    );
    let gw = Gateway::start(&config(&upstreams)).await;
    for name in ["absent", "gone"] {
        let raw = Raw::new(&gw.mcp(name));
        let resp = raw.post(None, &initialize_request()).await;
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY, "{name}");
        assert!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json")),
            "{name}: {:?}",
            resp.headers()
        );
        let body: Value = resp.json().await.expect("a JSON-RPC error body");
        assert_eq!(body["jsonrpc"], "2.0", "{body}");
        assert_eq!(body["id"], 1, "{body}");
        assert!(body["error"]["code"].is_i64(), "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("upstream {name} ")),
            "{name}: the message should name the upstream: {body}"
        );
        let ready = gw.readyz().await;
        assert_eq!(ready["upstreams"][name]["ready"], false, "{ready}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_children_refuses_a_second_session_with_503() {
    let (gw, _data) = demo_gateway("isolation = \"session\"\nmax_children = 1").await;
    let raw = Raw::new(&gw.mcp("demo"));
    let first = raw.initialize().await;

    let resp = raw.post(None, &initialize_request()).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.expect("a JSON-RPC error body");
    assert_eq!(body["id"], 1, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_children"), "{body}");

    // The first session is unharmed, and ending it frees the slot.
    let answer = raw
        .call(
            &first,
            &tool_call(json!(2), "echo", json!({ "text": "first" })),
        )
        .await;
    assert_eq!(tool_text(&answer), "first");
    assert_eq!(raw.delete(&first).await, StatusCode::OK);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        status = raw.post(None, &initialize_request()).await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "a slot frees up once the first session ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_survive_a_gateway_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut gw = Gateway::start_demo(data.path()).await;
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    let created = raw
        .call(
            &session,
            &tool_call(
                json!(2),
                "create_secure_note",
                json!({ "title": "survivor", "content": "kept across restarts" }),
            ),
        )
        .await;
    let note = created["result"]["structuredContent"].clone();
    let id = note["id"].as_i64().unwrap_or_else(|| panic!("{created}"));
    let children = children_of(gw.pid());
    assert_eq!(children.len(), 1, "the demo child runs: {children:?}");

    let status = gw.stop().await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM is a clean exit ({status}); log:\n{}",
        gw.log_tail(30)
    );
    eventually(
        Duration::from_secs(5),
        "the demo child exits with the gateway",
        || !children.iter().any(|c| is_running(*c)),
    )
    .await;

    let gw = Gateway::start_demo(data.path()).await;
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    let listed = raw
        .call(
            &session,
            &tool_call(json!(2), "list_secure_notes", json!({})),
        )
        .await;
    let notes = listed["result"]["structuredContent"]["notes"].clone();
    assert_eq!(notes.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(notes[0]["id"], id);
    assert_eq!(notes[0]["title"], "survivor");
    assert_eq!(notes[0]["content"], "kept across restarts");
}
