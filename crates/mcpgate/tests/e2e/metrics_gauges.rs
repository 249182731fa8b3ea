//! The metrics fed from inside the gateway (issue 15), scraped from the real
//! binary: open sessions and running children per upstream as sessions open
//! and end (DELETE, a legacy SSE stream that goes away), whether the upstream
//! is up, the gateway's own share of a call next to its total, and MCP
//! requests through the legacy HTTP+SSE front. Credential renewals are
//! counted in `credentials` (client credentials against a token server).

use std::time::Duration;

use serde_json::json;

use crate::harness::raw::{Raw, SseReader, tool_call};
use crate::harness::{Gateway, config, demo_stdio_upstream, free_port};
use crate::observability::{sample, scrape};

/// Scrapes until `series` has `want` (gauges follow processes that take a moment to exit).
async fn until(port: u16, series: &str, want: f64) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(port).await;
        if sample(&text, series) == Some(want) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{series} never became {want}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_children_liveness_overhead_and_the_legacy_front_are_measured() {
    let notes = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
        config(&demo_stdio_upstream(
            "demo",
            notes.path(),
            "isolation = \"session\""
        ))
    );
    let gw = Gateway::start(&cfg).await;
    let raw = Raw::new(&gw.mcp("demo"));
    let first = raw.initialize().await;
    let second = raw.initialize().await;
    let who = raw
        .call(&first, &tool_call(json!(2), "whoami", json!({})))
        .await;
    assert!(who.get("result").is_some(), "{who}");

    let sessions = "mcpgate_sessions_active{upstream=\"demo\"}";
    let children = "mcpgate_upstream_children{upstream=\"demo\"}";
    let text = until(port, sessions, 2.0).await;
    assert_eq!(sample(&text, children), Some(2.0), "{text}");
    assert_eq!(
        sample(&text, "mcpgate_upstream_up{upstream=\"demo\"}"),
        Some(1.0),
        "{text}"
    );
    let call = "{upstream=\"demo\",method=\"tools/call\"}";
    assert_eq!(
        sample(
            &text,
            &format!("mcpgate_gateway_overhead_seconds_count{call}")
        ),
        Some(1.0),
        "{text}"
    );
    let overhead = sample(
        &text,
        &format!("mcpgate_gateway_overhead_seconds_sum{call}"),
    )
    .expect("an overhead sum");
    let total = sample(
        &text,
        &format!("mcpgate_mcp_request_duration_seconds_sum{call}"),
    )
    .expect("a duration sum");
    assert!(
        overhead > 0.0 && overhead < total,
        "the gateway's share {overhead} of {total}:\n{text}"
    );

    // DELETE ends the session and its child.
    assert!(raw.delete(&first).await.is_success());
    until(port, sessions, 1.0).await;
    until(port, children, 1.0).await;

    // The legacy HTTP+SSE front: a session of its own, its requests counted
    // when their answers arrive on the stream.
    let stream = reqwest::Client::new()
        .get(format!("{}/sse", gw.mcp("demo")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /sse");
    assert_eq!(stream.status(), 200);
    let mut events = SseReader::new(stream);
    let endpoint = events
        .next(Duration::from_secs(10))
        .await
        .expect("the endpoint event")
        .data;
    let messages = format!("{}{endpoint}", gw.base);
    let send = |body: serde_json::Value| {
        let messages = messages.clone();
        async move {
            let r = reqwest::Client::new()
                .post(&messages)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("POST");
            assert_eq!(r.status(), 202);
        }
    };
    send(json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2024-11-05", "capabilities": {},
                    "clientInfo": { "name": "legacy", "version": "0" } }
    }))
    .await;
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    send(tool_call(json!(2), "whoami", json!({}))).await;
    loop {
        let ev = events
            .next(Duration::from_secs(10))
            .await
            .expect("the call's answer on the stream");
        if ev.json().is_some_and(|v| v["id"] == 2) {
            break;
        }
    }
    let text = until(
        port,
        "mcpgate_mcp_requests_total{upstream=\"demo\",method=\"tools/call\",outcome=\"ok\"}",
        2.0,
    )
    .await;
    assert_eq!(
        sample(
            &text,
            "mcpgate_mcp_requests_total{upstream=\"demo\",method=\"initialize\",outcome=\"ok\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(sample(&text, sessions), Some(2.0), "{text}");
    assert_eq!(sample(&text, children), Some(2.0), "{text}");
    // The stream goes away, and the session with it.
    drop(events);
    until(port, sessions, 1.0).await;
    until(port, children, 1.0).await;
    let _ = second;
}
