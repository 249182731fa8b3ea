//! The GET stream of a session on a Streamable HTTP upstream resumes on
//! another replica (issue 14, item 4): two `mcpgate serve` on one PostgreSQL
//! database, sharing the session key, in front of server-everything in
//! Streamable HTTP mode (whose sessions keep an event store). A client reads
//! the stream on A, drops it, and resumes on B with the last id it saw: B,
//! which holds no log of A's, resumes the upstream's stream from the position
//! that id carries and relays what the client missed. An id whose upstream
//! position was tampered with gets the stream without replay. The same holds
//! when A stopped (it lets the session go rather than ending it upstream),
//! and for the SSE answer to a POST, resumed on B up to its result.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::everything::start_streamable_http;
use crate::harness::raw::{PROTOCOL, Raw, SseReader, request};
use crate::harness::{Gateway, toml_str};
use crate::session_forwarding::replicas;
use crate::session_replicas::as_key;

async fn get_stream(raw: &Raw, sid: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = raw
        .http
        .get(&raw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", PROTOCOL);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.expect("GET")
}

/// `resources/subscribe` to `uri`: server-everything acknowledges it with a
/// log message on the session's server stream, one event per call.
async fn subscribe(raw: &Raw, sid: &str, id: u64, uri: &str) {
    let answer = raw
        .call(
            sid,
            &request(json!(id), "resources/subscribe", json!({ "uri": uri })),
        )
        .await;
    assert!(answer["result"].is_object(), "{answer}");
}

/// Reads `stream` until a log message naming each of `uris` arrived (or
/// `within` passed); the URIs of every log message seen, with their event ids.
async fn read_logs(
    stream: &mut SseReader,
    uris: &[&str],
    within: Duration,
) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen: Vec<(String, String)> = Vec::new();
    while !uris.iter().all(|u| seen.iter().any(|(s, _)| s == u)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(ev) = stream.next(left.max(Duration::from_millis(1))).await else {
            break;
        };
        let Some(m): Option<Value> = ev.json() else {
            continue;
        };
        if m["method"] != "notifications/message" {
            continue;
        }
        let text = m["params"]["data"].as_str().unwrap_or_default().to_owned();
        if let Some(uri) = text.split_whitespace().find(|w| w.starts_with("test://")) {
            seen.push((uri.to_owned(), ev.id.expect("an event id")));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_stream_resumes_on_another_replica_through_the_upstreams_event_ids() {
    let (_server, url, _server_dir) = start_streamable_http().await;
    let upstream = format!(
        "[[upstream]]\nname = \"everything\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&url)
    );
    let r = replicas("resume", 2, &upstream).await;
    let (a, b) = (&r.gws[0], &r.gws[1]);
    let alice = |gw: &Gateway| as_key(&gw.mcp("everything"), &r.alice);
    let sid = alice(a).initialize().await;

    // On A: the stream, then one event from the upstream, whose id carries
    // the upstream's position.
    let resp = get_stream(&alice(a), &sid, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut on_a = SseReader::new(resp);
    // A answers the GET before its own GET to the upstream is connected;
    // what the upstream sends before that reaches no stream.
    tokio::time::sleep(Duration::from_secs(1)).await;
    subscribe(&alice(a), &sid, 2, "test://one").await;
    let seen = read_logs(&mut on_a, &["test://one"], Duration::from_secs(15)).await;
    let (_, last) = seen
        .iter()
        .find(|(u, _)| u == "test://one")
        .unwrap_or_else(|| panic!("no event for test://one on A: {seen:?}"))
        .clone();
    assert!(
        last.contains(".e1."),
        "the id carries a sealed upstream position: {last}"
    );
    assert!(
        !last.contains("test") && last.len() < 300,
        "opaque and short: {last}"
    );
    drop(on_a);

    // What the client misses while it is away (sent through B, which adopts
    // the session for it).
    subscribe(&alice(b), &sid, 3, "test://two").await;
    subscribe(&alice(b), &sid, 4, "test://three").await;

    // B holds no log of A's: it resumes the upstream's stream after `last`.
    let resp = get_stream(&alice(b), &sid, Some(&last)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut on_b = SseReader::new(resp);
    let primed = on_b
        .next(Duration::from_secs(10))
        .await
        .expect("B's priming event");
    assert!(
        primed.json().is_none() && primed.id.as_deref().is_some_and(|i| i.contains(".e1.")),
        "B's priming event carries the client's position on: {primed:?}"
    );
    let replayed = read_logs(
        &mut on_b,
        &["test://two", "test://three"],
        Duration::from_secs(15),
    )
    .await;
    let uris: Vec<&str> = replayed.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(
        uris,
        ["test://two", "test://three"],
        "exactly what was missed, in order; B: {}",
        b.log_tail(40)
    );
    assert!(
        replayed.iter().all(|(_, id)| id.contains(".e1.")),
        "{replayed:?}"
    );
    assert!(
        b.log_tail(300)
            .contains("resuming the upstream's stream from the position it carries"),
        "{}",
        b.log_tail(40)
    );
    drop(on_b);

    // A position that was not handed out in this session is not sent
    // upstream: the stream opens without replay, and the log says why.
    let (own, _) = last.split_once(".e1.").expect("an upstream part");
    let forged = format!("{own}.e1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let resp = get_stream(&alice(b), &sid, Some(&forged)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut plain = SseReader::new(resp);
    // What B relayed after the last event the client read comes first (the
    // upstream's replay goes on after test://three); then the new priming event.
    loop {
        let ev = plain
            .next(Duration::from_secs(10))
            .await
            .expect("a priming event");
        let Some(m) = ev.json() else { break };
        assert_ne!(m["method"], "notifications/message", "replayed again: {m}");
    }
    assert!(
        b.log_tail(300)
            .contains("its upstream position was not handed out in this session"),
        "{}",
        b.log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_stream_cut_by_a_stopping_replica_resumes_on_another() {
    let (_server, url, _server_dir) = start_streamable_http().await;
    let upstream = format!(
        "[[upstream]]\nname = \"everything\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&url)
    );
    let mut r = replicas("resume_stop", 2, &upstream).await;
    let alice_a = as_key(&r.gws[0].mcp("everything"), &r.alice);
    let alice_b = as_key(&r.gws[1].mcp("everything"), &r.alice);
    let sid = alice_a.initialize().await;
    let resp = get_stream(&alice_a, &sid, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut on_a = SseReader::new(resp);
    tokio::time::sleep(Duration::from_secs(1)).await;
    subscribe(&alice_a, &sid, 2, "test://one").await;
    let seen = read_logs(&mut on_a, &["test://one"], Duration::from_secs(15)).await;
    let last = seen.last().expect("an event for test://one").1.clone();

    // A deploy stops A: its streams end, and the session stays open upstream
    // (A lets go of it rather than ending it), so B continues it.
    let status = r.gws[0].stop().await;
    assert!(status.success(), "A exits cleanly: {status:?}");
    while on_a.next(Duration::from_secs(10)).await.is_some() {}
    subscribe(&alice_b, &sid, 3, "test://two").await;

    let resp = get_stream(&alice_b, &sid, Some(&last)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut on_b = SseReader::new(resp);
    let replayed = read_logs(&mut on_b, &["test://two"], Duration::from_secs(15)).await;
    let uris: Vec<&str> = replayed.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(uris, ["test://two"], "B: {}", r.gws[1].log_tail(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_answer_stream_resumes_on_another_replica() {
    let (_server, url, _server_dir) = start_streamable_http().await;
    let upstream = format!(
        "[[upstream]]\nname = \"everything\"\nurl = {}\ntransport = \"streamable-http\"\n",
        toml_str(&url)
    );
    let r = replicas("resume_post", 2, &upstream).await;
    let alice_a = as_key(&r.gws[0].mcp("everything"), &r.alice);
    let alice_b = as_key(&r.gws[1].mcp("everything"), &r.alice);
    let sid = alice_a.initialize().await;

    // A long call through A answers with SSE: progress first, the result last.
    let call = json!({
        "jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {
            "name": "trigger-long-running-operation",
            "arguments": { "duration": 2, "steps": 4 },
            "_meta": { "progressToken": "p9" }
        }
    });
    let resp = alice_a.post(Some(&sid), &call).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut on_a = SseReader::new(resp);
    let first = loop {
        let ev = on_a
            .next(Duration::from_secs(15))
            .await
            .expect("a progress event");
        if let Some(m) = ev.json() {
            assert_eq!(m["method"], "notifications/progress", "{m}");
            break ev;
        }
    };
    let last = first.id.expect("an event id");
    assert!(
        last.contains(".e1."),
        "the id carries the upstream's: {last}"
    );
    assert!(
        !last.starts_with("0-"),
        "an answer stream, not the server stream: {last}"
    );
    drop(on_a);

    // The call ends while the client is away; it resumes through B.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resp = get_stream(&alice_b, &sid, Some(&last)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut on_b = SseReader::new(resp);
    let mut progress = Vec::new();
    let result = loop {
        let ev = on_b.next(Duration::from_secs(15)).await.unwrap_or_else(|| {
            panic!(
                "B's stream ended before the result: {}",
                r.gws[1].log_tail(30)
            )
        });
        let Some(m) = ev.json() else { continue };
        if m["method"] == "notifications/progress" {
            progress.push(m["params"]["progress"].as_u64().expect("a number"));
            continue;
        }
        break m;
    };
    assert_eq!(
        progress,
        [2, 3, 4],
        "what was missed after the first progress"
    );
    assert_eq!(result["id"], 9, "{result}");
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("completed")),
        "{result}"
    );
    assert!(
        on_b.next(Duration::from_secs(10)).await.is_none(),
        "the resumed answer ends with its result"
    );
    assert!(
        r.gws[1]
            .log_tail(300)
            .contains("resuming it from the upstream's position it carries"),
        "{}",
        r.gws[1].log_tail(40)
    );
}
