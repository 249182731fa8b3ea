//! MCP over plain HTTP with reqwest: for what an SDK client hides (status codes,
//! session ids, event ids, resumption) and for load.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The protocol version raw clients ask for.
pub(crate) const PROTOCOL: &str = "2025-11-25";
const SESSION: &str = "mcp-session-id";

/// A JSON-RPC request.
pub(crate) fn request(id: Value, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// A `tools/call` request.
pub(crate) fn tool_call(id: Value, name: &str, arguments: Value) -> Value {
    request(
        id,
        "tools/call",
        json!({ "name": name, "arguments": arguments }),
    )
}

/// An `initialize` request (id 1) from a client that declares no capabilities.
pub(crate) fn initialize_request() -> Value {
    request(
        json!(1),
        "initialize",
        json!({
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": { "name": "mcpgate-e2e-raw", "version": "0" }
        }),
    )
}

/// One MCP endpoint, spoken to without an SDK.
#[derive(Clone)]
pub(crate) struct Raw {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
}

impl Raw {
    pub(crate) fn new(url: &str) -> Raw {
        Raw::with_client(reqwest::Client::new(), url)
    }

    pub(crate) fn with_client(http: reqwest::Client, url: &str) -> Raw {
        Raw {
            http,
            url: url.to_owned(),
        }
    }

    /// POSTs one message the way the spec says a client must.
    pub(crate) async fn post(&self, session: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = session {
            req = req
                .header(SESSION, s)
                .header("mcp-protocol-version", PROTOCOL);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("POST {} failed: {e}", self.url))
    }

    /// Initializes a session (and sends `notifications/initialized`); returns its id.
    pub(crate) async fn initialize(&self) -> String {
        let resp = self.post(None, &initialize_request()).await;
        let status = resp.status();
        let session = resp
            .headers()
            .get(SESSION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let msgs = messages(resp).await;
        assert_eq!(status, StatusCode::OK, "initialize: {msgs:?}");
        let init = msgs.last().expect("an initialize response");
        assert_eq!(init["id"], 1, "{init}");
        assert!(init["result"]["protocolVersion"].is_string(), "{init}");
        let session = session.expect("initialize answers with Mcp-Session-Id");
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let r = self.post(Some(&session), &note).await;
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "notifications/initialized"
        );
        session
    }

    /// Sends a request and returns its response message (from JSON or SSE),
    /// asserting HTTP 200.
    pub(crate) async fn call(&self, session: &str, body: &Value) -> Value {
        let resp = self.post(Some(session), body).await;
        let status = resp.status();
        let msgs = messages(resp).await;
        assert_eq!(status, StatusCode::OK, "{body} → {msgs:?}");
        msgs.into_iter()
            .rfind(|m| m.get("id") == body.get("id") && m.get("method").is_none())
            .unwrap_or_else(|| panic!("no response to {body}"))
    }

    /// Ends a session; returns the status.
    pub(crate) async fn delete(&self, session: &str) -> StatusCode {
        self.http
            .delete(&self.url)
            .header(SESSION, session)
            .header("mcp-protocol-version", PROTOCOL)
            .send()
            .await
            .expect("DELETE")
            .status()
    }

    /// Opens the GET stream of a session, resuming after `last_event_id`.
    pub(crate) async fn resume(&self, session: &str, last_event_id: &str) -> reqwest::Response {
        self.http
            .get(&self.url)
            .header("accept", "text/event-stream")
            .header(SESSION, session)
            .header("mcp-protocol-version", PROTOCOL)
            .header("last-event-id", last_event_id)
            .send()
            .await
            .expect("GET with Last-Event-ID")
    }
}

/// The text of the first content block of a `tools/call` response.
pub(crate) fn tool_text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {response}"))
}

/// Every JSON-RPC message of a response: its JSON body, or each SSE event's data.
pub(crate) async fn messages(resp: reqwest::Response) -> Vec<Value> {
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        let text = resp.text().await.expect("read body");
        if text.trim().is_empty() {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
        return vec![v];
    }
    let mut sse = SseReader::new(resp);
    let mut out = Vec::new();
    while let Some(ev) = sse.next(Duration::from_secs(30)).await {
        if let Some(v) = ev.json() {
            out.push(v);
        }
    }
    out
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<String>,
    pub(crate) data: String,
}

impl SseEvent {
    /// The data as JSON, or `None` for an empty (priming) event.
    pub(crate) fn json(&self) -> Option<Value> {
        if self.data.trim().is_empty() {
            return None;
        }
        Some(
            serde_json::from_str(&self.data)
                .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {}", self.data)),
        )
    }
}

/// Reads an SSE body event by event.
pub(crate) struct SseReader {
    body: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl SseReader {
    pub(crate) fn new(resp: reqwest::Response) -> SseReader {
        SseReader {
            body: resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed(),
            buf: Vec::new(),
        }
    }

    /// The next event, or `None` when the stream ends; panics if none comes within `within`.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(ev) = parse_event(&String::from_utf8_lossy(&raw)) {
                    return Some(ev);
                }
                continue;
            }
            match tokio::time::timeout(within, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.extend(chunk.into_iter().filter(|b| *b != b'\r')),
                Ok(Some(Err(e))) => panic!("reading the SSE stream failed: {e}"),
                Ok(None) => return None,
                Err(_) => panic!("no SSE event within {within:?}"),
            }
        }
    }
}

fn parse_event(raw: &str) -> Option<SseEvent> {
    let mut id = None;
    let mut data: Option<String> = None;
    for line in raw.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    if id.is_none() && data.is_none() {
        return None; // a comment or keep-alive
    }
    Some(SseEvent {
        id,
        data: data.unwrap_or_default(),
    })
}
