//! `request_timeout` bounds the whole upstream exchange: an HTTP upstream that
//! accepts the connection and never answers, one that sends the headers of a
//! JSON answer and never the body, and SSE answers (HTTP and stdio, shared and
//! per-session children) that fall silent after their first event, all end with
//! HTTP 504 (or, once the answer is a stream, an error event) and JSON-RPC
//! -32001 at the timeout, in the sessionful and the stateless (2026-07-28) era.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::Gateway;
use crate::harness::raw::{Raw, messages, tool_call};

/// The gateway's request_timeout in these tests.
const TIMEOUT: Duration = Duration::from_secs(2);
/// A client that waits this long has waited "forever".
const PATIENCE: Duration = Duration::from_secs(20);

/// The stdio child that misbehaves on request.
pub(crate) const FAULTY_CHILD: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/faulty_child.py");

/// `[[upstream]]` running the faulty child with `extra` keys.
pub(crate) fn faulty_upstream(name: &str, extra: &str) -> String {
    format!(
        "[[upstream]]\nname = \"{name}\"\ncommand = [\"python3\", {}]\n{extra}\n",
        crate::harness::toml_str(FAULTY_CHILD)
    )
}

/// A Streamable HTTP upstream on loopback that answers `initialize` and then,
/// for `tools/call`, misbehaves by tool name: `hang` (never sends headers),
/// `late_body` (headers of a JSON answer, no body), `progress_then_silence`
/// (an SSE answer with one event, then nothing).
async fn faulty_http_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve_connection(sock));
        }
    });
    format!("http://{addr}/mcp")
}

async fn serve_connection(mut sock: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let Some((head, body)) = read_request(&mut sock, &mut buf).await else {
            return;
        };
        let method = head.split(' ').next().unwrap_or("").to_owned();
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        if method == "GET" && path == "/sse-hang" {
            // A legacy SSE upstream that accepts the stream's GET and never answers it.
            std::future::pending::<()>().await;
        }
        let reply = |status: &str, extra: &str, body: &str| {
            format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n{body}",
                body.len()
            )
        };
        if method != "POST" {
            let status = if method == "DELETE" {
                "200 OK"
            } else {
                "405 Method Not Allowed"
            };
            let _ = sock.write_all(reply(status, "", "").as_bytes()).await;
            continue;
        }
        let msg: Value = serde_json::from_slice(&body).unwrap_or_default();
        let id = msg["id"].clone();
        match msg["method"].as_str().unwrap_or("") {
            "initialize" => {
                let answer = json!({ "jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": msg["params"]["protocolVersion"],
                    "capabilities": { "tools": {} },
                    "serverInfo": { "name": "faulty-http", "version": "1" } } });
                let extra = "content-type: application/json\r\nmcp-session-id: s1\r\n";
                let _ = sock
                    .write_all(reply("200 OK", extra, &answer.to_string()).as_bytes())
                    .await;
            }
            "tools/call" => {
                match msg["params"]["name"].as_str().unwrap_or("") {
                    "late_body" => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
                        let _ = sock.write_all(head.as_bytes()).await;
                    }
                    "progress_then_silence" => {
                        let token = msg["params"]["_meta"]["progressToken"].clone();
                        let note = json!({ "jsonrpc": "2.0", "method": "notifications/progress",
                            "params": { "progressToken": token, "progress": 1, "total": 10 } });
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
                        let _ = sock
                            .write_all(format!("{head}data: {note}\n\n").as_bytes())
                            .await;
                    }
                    // "hang": the request was read; no answer ever comes.
                    _ => {}
                }
                // Hold the connection open, saying nothing more.
                std::future::pending::<()>().await;
            }
            _ => {
                let _ = sock
                    .write_all(reply("202 Accepted", "", "").as_bytes())
                    .await;
            }
        }
    }
}

/// One HTTP/1.1 request (head, body) from a keep-alive connection.
async fn read_request(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < end + len {
        let n = sock.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + len].to_vec();
    buf.drain(..end + len);
    Some((head, body))
}

fn gateway_config(upstreams: &str) -> String {
    format!(
        "[server]\nrequest_timeout = \"{}s\"\n\n[auth]\nmode = \"disabled\"\n\n{upstreams}",
        TIMEOUT.as_secs()
    )
}

fn patient_client(url: &str) -> Raw {
    let http = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("a reqwest client");
    Raw::with_client(http, url)
}

fn progress_call(id: i64, name: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": name, "arguments": {}, "_meta": { "progressToken": "p" } } })
}

/// Sends `body` and expects 504 with JSON-RPC -32001 at the timeout, not later.
async fn expect_504(raw: &Raw, session: Option<&str>, body: &Value, modern: bool) {
    let started = Instant::now();
    let mut req = raw
        .http
        .post(&raw.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    if modern {
        req = req
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", body["method"].as_str().unwrap_or(""))
            .header("mcp-name", body["params"]["name"].as_str().unwrap_or(""));
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{body}: no answer within {PATIENCE:?} ({e})"));
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT, "{body}");
    let answer: Value = resp.json().await.expect("a JSON-RPC error body");
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    assert_eq!(answer["id"], body["id"], "{answer}");
    assert!(
        elapsed >= TIMEOUT && elapsed < TIMEOUT * 4,
        "answered after {elapsed:?}, the timeout is {TIMEOUT:?}"
    );
}

/// Sends `body`, expects an SSE answer whose last event is a -32001 error.
async fn expect_silence_error(raw: &Raw, session: Option<&str>, body: &Value, modern: bool) {
    let started = Instant::now();
    let mut req = raw
        .http
        .post(&raw.url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    if modern {
        req = req
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", body["params"]["name"].as_str().unwrap_or(""));
    }
    let resp = req.send().await.expect("the answer starts");
    assert_eq!(resp.status(), StatusCode::OK);
    let events = tokio::time::timeout(PATIENCE, messages(resp))
        .await
        .unwrap_or_else(|_| panic!("{body}: the SSE answer was still open after {PATIENCE:?}"));
    let last = events.last().expect("at least one event");
    assert_eq!(last["error"]["code"], -32001, "{events:?}");
    assert_eq!(last["id"], body["id"], "{events:?}");
    assert!(
        events
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "the progress came first: {events:?}"
    );
    assert!(started.elapsed() < TIMEOUT * 4, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_upstream_that_never_sends_headers_gets_504() {
    let url = faulty_http_upstream().await;
    let gw = Gateway::start(&gateway_config(&format!(
        "[[upstream]]\nname = \"h\"\nurl = \"{url}\"\n"
    )))
    .await;
    let raw = patient_client(&gw.mcp("h"));
    let session = raw.initialize().await;
    expect_504(
        &raw,
        Some(&session),
        &tool_call(json!(5), "hang", json!({})),
        false,
    )
    .await;
    // The session survives a timeout.
    expect_504(
        &raw,
        Some(&session),
        &tool_call(json!(6), "late_body", json!({})),
        false,
    )
    .await;
    // The stateless era: the gateway's own upstream session, same rule.
    expect_504(&raw, None, &modern_call("m1", "hang"), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sse_upstream_that_never_opens_its_stream_gets_504() {
    let url = faulty_http_upstream().await.replace("/mcp", "/sse-hang");
    let gw = Gateway::start(&gateway_config(&format!(
        "[[upstream]]\nname = \"old\"\nurl = \"{url}\"\ntransport = \"sse\"\n"
    )))
    .await;
    let raw = patient_client(&gw.mcp("old"));
    expect_504(
        &raw,
        None,
        &crate::harness::raw::initialize_request(),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_answers_that_fall_silent_end_with_32001() {
    let url = faulty_http_upstream().await;
    let gw = Gateway::start(&gateway_config(&format!(
        "[[upstream]]\nname = \"h\"\nurl = \"{url}\"\n\n{}\n{}",
        faulty_upstream("own", "isolation = \"session\""),
        faulty_upstream("shared", "isolation = \"shared\""),
    )))
    .await;
    for name in ["h", "own", "shared"] {
        let raw = patient_client(&gw.mcp(name));
        let session = raw.initialize().await;
        expect_silence_error(
            &raw,
            Some(&session),
            &progress_call(7, "progress_then_silence"),
            false,
        )
        .await;
        // A request that never gets an answer: 504 in both eras.
        expect_504(
            &raw,
            Some(&session),
            &tool_call(json!(8), "hang", json!({})),
            false,
        )
        .await;
        expect_504(&raw, None, &modern_call("m2", "hang"), true).await;
    }
}

/// A 2026-07-28 `tools/call` of `name`, with the stateless `_meta`.
fn modern_call(id: &str, name: &str) -> Value {
    let mut call = tool_call(json!(id), name, json!({}));
    call["params"]["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { "name": "t", "version": "0" },
    });
    call
}
