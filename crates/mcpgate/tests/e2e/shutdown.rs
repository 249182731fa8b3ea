//! Shutdown past the grace period: calls still in flight are answered "the
//! gateway is shutting down" (a JSON-RPC error, not "the upstream closed the
//! connection"), and an SSE answer ends with that error event.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::harness::raw::{Raw, messages};
use crate::harness::{Gateway, demo_stdio_upstream, signal};

fn slow_count(id: i64, progress: bool) -> Value {
    let mut params = json!({
        "name": "slow_count",
        "arguments": { "steps": 60, "delay_ms": 500 },
    });
    if progress {
        params["_meta"] = json!({ "progressToken": format!("p{id}") });
    }
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_past_the_grace_period_are_told_the_gateway_is_shutting_down() {
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = format!(
        "[server]\nrequest_timeout = \"60s\"\nshutdown_grace = \"1s\"\n\n[auth]\nmode = \"disabled\"\n\n{}",
        demo_stdio_upstream("demo", data.path(), "")
    );
    let mut gw = Gateway::start(&cfg).await;
    let raw = Raw::new(&gw.mcp("demo"));
    let session = raw.initialize().await;
    let plain = tokio::spawn({
        let (raw, session) = (raw.clone(), session.clone());
        async move {
            let r = raw.post(Some(&session), &slow_count(2, false)).await;
            (r.status(), messages(r).await)
        }
    });
    let streamed = tokio::spawn({
        let (raw, session) = (raw.clone(), session.clone());
        async move {
            let r = raw.post(Some(&session), &slow_count(3, true)).await;
            let sse = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            (sse, messages(r).await)
        }
    });
    // Both calls are running (the streamed one has sent progress).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(gw.pid(), Signal::SIGTERM);
    let (status, plain) = tokio::time::timeout(Duration::from_secs(15), plain)
        .await
        .expect("the plain call is answered")
        .expect("join");
    let (sse, streamed) = tokio::time::timeout(Duration::from_secs(15), streamed)
        .await
        .expect("the streamed call ends")
        .expect("join");
    let log = gw.log_tail(40);
    let last = plain
        .last()
        .unwrap_or_else(|| panic!("no answer ({status}); log:\n{log}"));
    assert_eq!(last["id"], 2, "{plain:?}");
    let msg = last["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("shutting down"),
        "{status} {plain:?}\nlog:\n{log}"
    );
    assert!(
        sse,
        "the progress call should have turned into SSE: {streamed:?}"
    );
    assert!(
        streamed
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{streamed:?}"
    );
    let last = streamed.last().expect("events");
    assert_eq!(last["id"], 3, "{streamed:?}");
    let msg = last["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("shutting down"), "{streamed:?}\nlog:\n{log}");
    assert!(gw.stop().await.success());
}
