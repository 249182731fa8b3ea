//! A 2026-07-28 stdio app over a server of the handshake eras (one that
//! refuses the app's stateless requests): the bridge opens a session of its
//! own with `initialize` (declaring the capabilities the app put in its
//! `_meta`), answers `server/discover` from the initialize result, and sends
//! each request on that session. A question the server asks during a call
//! (elicitation, sampling, roots) becomes an `input_required` result for the
//! app; the call waits, parked under a random `requestState`, until the app
//! retries with its answers, which go to the server as the responses it is
//! waiting for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::HeaderValue;
use http::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::envelope::{Envelope, Kind};
use super::inflight::Inflight;
use super::output::Output;
use super::remote::{Remote, chain};
use super::streamable::{MAX_MESSAGE, read_limited};
use crate::modern;
use mcpgate_sse::Parser;

/// The revision the bridge's own session asks for.
const HANDSHAKE_VERSION: &str = "2025-11-25";
/// How long a parked call waits for the app to come back.
const PARKED_FOR: Duration = Duration::from_secs(600);
/// How often a cut answer stream is resumed before its call is failed.
const MAX_RESUMES: u32 = 5;
/// The wait before resuming when the server set no `retry:`.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// Results a 2026-07-28 app may cache; nothing is, since answers may change.
const CACHEABLE: [&str; 6] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
];

/// The bridge's session with an older server, on behalf of a 2026-07-28 app.
pub(crate) struct Handshake {
    remote: Arc<Remote>,
    out: Output,
    session: Option<HeaderValue>,
    version: HeaderValue,
    init: Value,
    parked: Mutex<HashMap<String, Parked>>,
    /// The app's requests in flight, for its `notifications/cancelled`.
    inflight: Inflight,
    /// The app's open `subscriptions/listen` requests, by id (`listen.rs`).
    listening: Mutex<HashMap<String, listen::Listen>>,
    /// The task reading the session's GET stream, once a listen needs it.
    get_stream: Mutex<Option<Running>>,
    /// The app's retries in flight (its id, as JSON text) → the id the
    /// server runs the call under (the app's first request's).
    retries: Mutex<HashMap<String, Value>>,
}

/// A call waiting for the app's answers to the server's questions.
struct Parked {
    messages: mpsc::Receiver<Value>,
    /// `inputRequests` key → the id of the server's request.
    questions: Vec<(String, Value)>,
    /// The id of the app's first request, which the server runs the call under.
    origin: Value,
    task: Running,
}

/// The task reading a call's answer from the server. Dropping it (the app
/// cancelled the call, a parked call expired, the bridge closes) stops it,
/// which closes the answer stream.
struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Outcome = Result<Value, (String, Value)>;

impl Handshake {
    /// Opens the session after the app's first (stateless) request was
    /// refused; `None` when `initialize` fails too.
    pub(crate) async fn open(remote: Arc<Remote>, out: Output, first: &Bytes) -> Option<Arc<Self>> {
        let msg: Value = serde_json::from_slice(first).ok()?;
        let meta = msg.pointer("/params/_meta");
        let capabilities = meta
            .and_then(|m| m.get(modern::META_CAPABILITIES))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let client_info = meta
            .and_then(|m| m.get(modern::META_CLIENT_INFO))
            .cloned()
            .unwrap_or_else(modern::client_info);
        let init = json!({"jsonrpc": "2.0", "id": "mcpgate-bridge-init", "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE_VERSION, "capabilities": capabilities,
                       "clientInfo": client_info}});
        let make = || request(&remote, &init, None, None);
        let resp = match remote.send(make).await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tracing::info!("initialize answered HTTP {} too", r.status());
                return None;
            }
            Err(f) => {
                tracing::info!("initialize failed too: {}", remote.explain(&f));
                return None;
            }
        };
        let session = resp.headers().get("mcp-session-id").cloned();
        let (tx, mut rx) = mpsc::channel(16);
        read_answer(resp, tx).await;
        let mut answer = None;
        while let Some(m) = rx.recv().await {
            if m.get("result").is_some() || m.get("error").is_some() {
                answer = Some(m);
                break;
            }
        }
        let result = answer?.get("result").cloned()?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::try_from(v).ok())
            .unwrap_or(HeaderValue::from_static(HANDSHAKE_VERSION));
        let link = Arc::new(Handshake {
            remote,
            out,
            session,
            version,
            init: result,
            parked: Mutex::new(HashMap::new()),
            inflight: Inflight::default(),
            listening: Mutex::new(HashMap::new()),
            get_stream: Mutex::new(None),
            retries: Mutex::new(HashMap::new()),
        });
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let make = || link.post(&initialized);
        if let Err(f) = link.remote.send(make).await {
            tracing::warn!("notifications/initialized: {}", link.remote.explain(&f));
        }
        tracing::info!(
            "the remote server does not speak {}; the bridge holds a {} session for the app",
            modern::VERSION,
            link.version.to_str().unwrap_or("?")
        );
        Some(link)
    }

    /// Handles one message from the app.
    pub(crate) async fn deliver(self: &Arc<Self>, msg: Bytes, env: Envelope) {
        if env.kind == Kind::Notification
            && env.method.as_deref() == Some("notifications/cancelled")
        {
            self.cancel(msg).await;
            return;
        }
        if env.kind != Kind::Request {
            // 2026-07-28 apps send no other notifications, nor responses.
            return;
        }
        let method = env.method.clone().unwrap_or_default();
        let outcome = match method.as_str() {
            "server/discover" => Ok(self.discover()),
            "subscriptions/listen" => {
                self.listen(&msg, &env).await;
                return;
            }
            _ => match self.inflight.run(env.id.as_deref(), self.call(&msg)).await {
                Some(outcome) => outcome,
                // Cancelled: the app expects no answer.
                None => return,
            },
        };
        let outcome = outcome.map(|r| complete(r, &method));
        self.out.reply(env.id.as_deref(), outcome).await;
    }

    /// The app's `notifications/cancelled` (over stdio a 2026-07-28 app still
    /// sends one): the request stops here, and the server, which runs it
    /// under the app's own id on the bridge's session, is told as its
    /// revision expects.
    async fn cancel(&self, msg: Bytes) {
        let Some(named) = super::inflight::cancelled_id(&msg) else {
            return;
        };
        if self.end_listen(&named).await {
            return;
        }
        let Some(origin) = self.stop(&named) else {
            tracing::debug!("a cancellation for no request in flight");
            return;
        };
        tracing::info!(request = %named, "the app cancelled a request: passing notifications/cancelled to the server");
        let Ok(mut notification) = serde_json::from_slice::<Value>(&msg) else {
            return;
        };
        if let Some(p) = notification
            .get_mut("params")
            .and_then(Value::as_object_mut)
        {
            p.insert("requestId".into(), origin);
        }
        let make = || self.post(&notification);
        if let Err(f) = self.remote.send(make).await {
            tracing::warn!("notifications/cancelled: {}", self.remote.explain(&f));
        }
    }

    /// Stops the call the app's request `named` (JSON text) belongs to —
    /// running, a retry of it, or parked waiting for the app's answers to
    /// `input_required` (the rounds stop; a later retry finds no state) — and
    /// returns the id the server runs it under.
    fn stop(&self, named: &str) -> Option<Value> {
        if self.inflight.cancel_id(named) {
            let retry = self.retries_lock().remove(named);
            return retry.or_else(|| serde_json::from_str(named).ok());
        }
        let wanted: Value = serde_json::from_str(named).ok()?;
        let parked = {
            let mut map = self.lock();
            let state = map
                .iter()
                .find(|(_, p)| p.origin == wanted)
                .map(|(s, _)| s.clone());
            state.and_then(|s| map.remove(&s))
        };
        if let Some(p) = parked {
            // Dropping it stops the task reading the call's answer.
            return Some(p.origin.clone());
        }
        let retry = {
            let retries = self.retries_lock();
            retries
                .iter()
                .find(|(_, origin)| **origin == wanted)
                .map(|(r, o)| (r.clone(), o.clone()))
        };
        let (retry, origin) = retry?;
        self.retries_lock().remove(&retry);
        self.inflight.cancel_id(&retry).then_some(origin)
    }

    fn retries_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.retries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn discover(&self) -> Value {
        let mut r = json!({
            "supportedVersions": [modern::VERSION],
            "capabilities": self.init.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            "_meta": {modern::META_SERVER_INFO:
                self.init.get("serverInfo").cloned().unwrap_or_else(|| json!({}))},
        });
        if let (Some(i), Some(o)) = (self.init.get("instructions"), r.as_object_mut()) {
            o.insert("instructions".into(), i.clone());
        }
        r
    }

    /// A request of the app: a new call, or the app's answers to a parked one.
    async fn call(self: &Arc<Self>, msg: &Bytes) -> Outcome {
        let request: Value =
            serde_json::from_slice(msg).map_err(|e| (format!("not JSON: {e}"), json!({})))?;
        let params = request.get("params").cloned().unwrap_or(Value::Null);
        let own_id = request.get("id").cloned().unwrap_or(Value::Null);
        if let Some(state) = params.get("requestState").and_then(Value::as_str) {
            let parked = self.lock().remove(state).ok_or_else(|| {
                (
                    "requestState is unknown or expired: send the request again without it"
                        .to_owned(),
                    json!({}),
                )
            })?;
            let responses = params
                .get("inputResponses")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (key, server_id) in &parked.questions {
                let answer = match responses.get(key) {
                    Some(r) => json!({"jsonrpc": "2.0", "id": server_id, "result": r}),
                    None => json!({"jsonrpc": "2.0", "id": server_id,
                        "error": {"code": -32603, "message": "the client gave no answer"}}),
                };
                let make = || self.post(&answer);
                if let Err(f) = self.remote.send(make).await {
                    return Err((self.remote.explain(&f), json!({})));
                }
            }
            let retry = own_id.to_string();
            self.retries_lock()
                .insert(retry.clone(), parked.origin.clone());
            let outcome = self
                .drive(parked.messages, parked.task, parked.origin)
                .await;
            self.retries_lock().remove(&retry);
            return outcome;
        }
        let mut body = request.clone();
        if let Some(p) = body.get_mut("params") {
            strip_envelope(p);
        }
        let (tx, rx) = mpsc::channel(64);
        let remote = self.remote.clone();
        let (session, version) = (self.session.clone(), self.version.clone());
        let task = tokio::spawn(async move {
            let make = || self::request(&remote, &body, session.as_ref(), Some(&version));
            match remote.send(make).await {
                Ok(resp) if resp.status().is_success() => {
                    let cut = read_answer(resp, tx.clone()).await;
                    resume(&remote, session.as_ref(), &version, cut, &tx).await;
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = read_limited(resp).await.unwrap_or_default();
                    let v = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .filter(|v| v.get("error").is_some());
                    let _ = tx
                        .send(v.unwrap_or_else(|| {
                            json!({"error": {"code": -32000,
                            "message": format!("the remote MCP server answered HTTP {status}"),
                            "data": {"httpStatus": status}}})
                        }))
                        .await;
                }
                Err(f) => {
                    let _ = tx
                        .send(json!({"error": {"code": -32000, "message": remote.explain(&f)}}))
                        .await;
                }
            }
        });
        self.drive(rx, Running(task), own_id).await
    }

    /// Reads the call's messages until its answer, or until the server asks
    /// something: then the call is parked and the app gets `input_required`.
    async fn drive(
        self: &Arc<Self>,
        mut rx: mpsc::Receiver<Value>,
        task: Running,
        origin: Value,
    ) -> Outcome {
        while let Some(m) = rx.recv().await {
            match (m.get("method").and_then(Value::as_str), m.get("id")) {
                (Some(method), Some(id)) => {
                    let key = format!("mcpgate-{}", mcpgate_types::random::hex::<16>());
                    let mut q = Map::new();
                    q.insert("method".into(), Value::String(method.to_owned()));
                    if let Some(p) = m.get("params") {
                        q.insert("params".into(), p.clone());
                    }
                    let state = mcpgate_types::random::hex::<16>();
                    let mut requests = Map::new();
                    requests.insert(key.clone(), Value::Object(q));
                    self.park(
                        state.clone(),
                        Parked {
                            messages: rx,
                            questions: vec![(key, id.clone())],
                            task,
                            origin,
                        },
                    );
                    return Ok(json!({"resultType": "input_required",
                        "inputRequests": requests, "requestState": state}));
                }
                (Some(method), None) if listen::is_change(method) => self.dispatch(&m).await,
                (Some(_), None) => {
                    self.out.message(Bytes::from(m.to_string())).await;
                }
                (None, _) => {
                    if let Some(e) = m.get("error") {
                        let why = e
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("error")
                            .to_owned();
                        return Err((why, e.get("data").cloned().unwrap_or_else(|| json!({}))));
                    }
                    return Ok(m.get("result").cloned().unwrap_or_else(|| json!({})));
                }
            }
        }
        Err((
            "the remote server closed the answer stream before answering".into(),
            json!({}),
        ))
    }

    fn park(self: &Arc<Self>, state: String, parked: Parked) {
        self.lock().insert(state.clone(), parked);
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(PARKED_FOR).await;
            let Some(this) = this.upgrade() else { return };
            let parked = this.lock().remove(&state);
            if let Some(p) = parked {
                tracing::info!(
                    "a call waited {} s for the app's answers; cancelled",
                    PARKED_FOR.as_secs()
                );
                drop(p);
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        request(
            &self.remote,
            body,
            self.session.as_ref(),
            Some(&self.version),
        )
    }

    /// Ends the session.
    pub(crate) async fn close(&self) {
        // Dropping a parked call stops its task.
        self.lock().clear();
        self.listens().clear();
        drop(
            self.get_stream
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        let Some(session) = self.session.clone() else {
            return;
        };
        let make = || {
            self.remote
                .client
                .delete(self.remote.url.clone())
                .header("mcp-session-id", session.clone())
                .header("mcp-protocol-version", self.version.clone())
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), self.remote.send(make)).await;
    }
}

fn request(
    remote: &Remote,
    body: &Value,
    session: Option<&HeaderValue>,
    version: Option<&HeaderValue>,
) -> reqwest::RequestBuilder {
    let mut req = remote.post_message(&remote.url, body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s.clone());
    }
    if let Some(v) = version {
        req = req.header("mcp-protocol-version", v.clone());
    }
    req
}

/// Where a cut answer stream got to: its last event id, and how long the
/// server asked to wait before coming back (`retry:`).
struct Cut {
    last_id: String,
    retry: Duration,
}

/// Comes back for an answer stream the server ended (or that broke) before
/// the response, with a GET carrying `Last-Event-ID`, as the handshake eras
/// allow; at most [`MAX_RESUMES`] times. When it cannot, the call gets an
/// error saying why (a stream without event ids ends the call in `drive`).
async fn resume(
    remote: &Remote,
    session: Option<&HeaderValue>,
    version: &HeaderValue,
    mut cut: Option<Cut>,
    tx: &mpsc::Sender<Value>,
) {
    let mut resumes = 0;
    while let Some(Cut { last_id, retry }) = cut.take() {
        resumes += 1;
        if resumes > MAX_RESUMES {
            let why = format!(
                "the remote server's answer stream broke {MAX_RESUMES} times; giving up on this request"
            );
            let _ = tx
                .send(json!({"error": {"code": -32000, "message": why}}))
                .await;
            return;
        }
        tokio::time::sleep(retry).await;
        tracing::info!(last_event_id = %last_id, "resuming the answer stream");
        let make = || {
            let mut req = remote
                .client
                .get(remote.url.clone())
                .header(ACCEPT, "text/event-stream")
                .header("mcp-protocol-version", version.clone());
            if let Some(s) = session {
                req = req.header("mcp-session-id", s.clone());
            }
            if let Ok(l) = HeaderValue::try_from(last_id.as_str()) {
                req = req.header("last-event-id", l);
            }
            req
        };
        match remote.send(make).await {
            Ok(r) if r.status().is_success() => cut = read_answer(r, tx.clone()).await,
            Ok(r) => {
                let status = r.status().as_u16();
                let why = format!(
                    "the remote server's answer stream broke and resuming it (GET with Last-Event-ID) was refused (HTTP {status})"
                );
                let _ = tx
                    .send(json!({"error": {"code": -32000, "message": why, "data": {"httpStatus": status}}}))
                    .await;
                return;
            }
            Err(f) => {
                let _ = tx
                    .send(json!({"error": {"code": -32000, "message": remote.explain(&f)}}))
                    .await;
                return;
            }
        }
    }
}

/// Sends every JSON-RPC message of an answer (a JSON body or an SSE stream)
/// to `tx`, in order. `Some` when an SSE stream ended before the response
/// after an event id, so that it can be resumed.
async fn read_answer(resp: reqwest::Response, tx: mpsc::Sender<Value>) -> Option<Cut> {
    let sse = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !sse {
        if let Ok(body) = read_limited(resp).await
            && let Ok(v) = serde_json::from_slice::<Value>(&body)
        {
            let _ = tx.send(v).await;
        }
        return None;
    }
    let mut parser = Parser::new(MAX_MESSAGE);
    let mut body = resp.bytes_stream();
    let mut last_id: Option<String> = None;
    let mut retry = DEFAULT_RETRY;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk.map_err(|e| tracing::info!("the answer stream broke: {}", chain(&e)))
        else {
            break;
        };
        let Ok(events) = parser.feed(&chunk) else {
            return None;
        };
        for ev in events {
            if let Some(id) = ev.id.as_ref().filter(|id| !id.is_empty()) {
                last_id = Some(id.clone());
            }
            if let Some(ms) = ev.retry {
                retry = Duration::from_millis(ms.clamp(50, 60_000));
            }
            if !ev.is_message() {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(&ev.data) else {
                continue;
            };
            let answered = v.get("method").is_none();
            if tx.send(v).await.is_err() || answered {
                return None;
            }
        }
    }
    last_id.map(|last_id| Cut { last_id, retry })
}

/// Removes what only the stateless revision carries: the
/// `io.modelcontextprotocol/…` keys of `_meta` (the session negotiated them).
fn strip_envelope(params: &mut Value) {
    if let Some(o) = params.as_object_mut() {
        o.remove("inputResponses");
        o.remove("requestState");
        if let Some(Value::Object(meta)) = o.get_mut("_meta") {
            meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
            if meta.is_empty() {
                o.remove("_meta");
            }
        }
    }
}

/// What 2026-07-28 requires of a final result.
fn complete(mut result: Value, method: &str) -> Value {
    if let Some(o) = result.as_object_mut() {
        o.entry("resultType")
            .or_insert_with(|| Value::String("complete".into()));
        if CACHEABLE.contains(&method) {
            o.entry("ttlMs").or_insert(json!(0));
            o.entry("cacheScope").or_insert(json!("private"));
        }
    }
    result
}

mod listen;

#[cfg(test)]
mod tests;
