//! The Streamable HTTP transport (2025-03-26 and later): every stdio message
//! is POSTed; answers come back as JSON or as an SSE stream; the session id
//! and protocol version from `initialize` go on every later request; the GET
//! stream carries server-initiated messages; SSE streams cut before their
//! answer are resumed with `Last-Event-ID`; `DELETE` ends the session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use reqwest::{RequestBuilder, Response};
use serde_json::json;
use serde_json::value::RawValue;

use super::envelope::{Envelope, Kind};
use super::inflight::Inflight;
use super::output::{Output, one_line};
use super::remote::{Failure, Remote, chain};
use mcpgate_sse::Parser;

/// The session header.
const SESSION: &str = "mcp-session-id";
/// The protocol version header.
const VERSION: &str = "mcp-protocol-version";
/// Largest JSON body or SSE event accepted from the remote server.
pub(crate) const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// How often a cut stream is resumed before its request is failed.
const MAX_RESUMES: u32 = 5;
/// The reconnect delay when the server names none.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// One Streamable HTTP connection to the remote server.
pub(crate) struct Streamable {
    remote: Arc<Remote>,
    out: Output,
    state: Mutex<State>,
    /// A 2026-07-28 app's requests in flight: its `notifications/cancelled`
    /// closes one's answer stream instead of being POSTed.
    stateless: Inflight,
}

#[derive(Default)]
struct State {
    session: Option<HeaderValue>,
    version: Option<HeaderValue>,
    /// The server answered 404 for the session: it is over.
    ended: bool,
    get_stream: Option<tokio::task::JoinHandle<()>>,
}

/// What became of a POST the caller may want to judge itself (the first
/// message, which decides between this transport and legacy SSE).
pub(crate) enum Posted {
    /// Handled: the answer (or an error) went to the stdio client.
    Done,
    /// The server answered this 4xx status, which may mean it speaks only legacy SSE.
    ClientError(Response),
    /// A 2026-07-28 app's first request was accepted: its answer, which may
    /// take as long as the request runs, is for the caller to relay aside
    /// ([`Streamable::answer_first`]) so that a cancellation can be read.
    Answering(Response),
}

impl Streamable {
    pub(crate) fn new(remote: Arc<Remote>, out: Output) -> Arc<Self> {
        Arc::new(Streamable {
            remote,
            out,
            state: Mutex::new(State::default()),
            stateless: Inflight::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Relays one message from the stdio client and its answer back.
    pub(crate) async fn deliver(self: &Arc<Self>, msg: Bytes, env: Envelope) {
        if env.kind == Kind::Notification
            && env.method.as_deref() == Some("notifications/cancelled")
            && let Some(id) = self.stateless.cancel(&msg)
        {
            // 2026-07-28 cancels a request by closing its stream, done now.
            tracing::info!(request = %id, "the app cancelled a request: closing its 2026-07-28 request stream");
            return;
        }
        let relay = async {
            if let Posted::ClientError(resp) = self.post(msg, &env, false).await {
                self.refused(resp, &env).await;
            }
        };
        if env.kind == Kind::Request && env.stateless_version.is_some() {
            self.stateless.run(env.id.as_deref(), relay).await;
        } else {
            relay.await;
        }
    }

    /// Relays the answer to a 2026-07-28 app's first request
    /// ([`Posted::Answering`]), stoppable by the app's cancellation.
    pub(crate) async fn answer_first(self: &Arc<Self>, resp: Response, env: Envelope) {
        self.stateless
            .run(env.id.as_deref(), self.answer(resp, &env))
            .await;
    }

    /// POSTs the first message; a 4xx (other than an authorization answer)
    /// comes back to the caller undigested.
    pub(crate) async fn deliver_first(self: &Arc<Self>, msg: Bytes, env: &Envelope) -> Posted {
        self.post(msg, env, true).await
    }

    async fn post(self: &Arc<Self>, msg: Bytes, env: &Envelope, probe: bool) -> Posted {
        let (session, version, ended) = {
            let s = self.state();
            (s.session.clone(), s.version.clone(), s.ended)
        };
        if ended && env.stateless_version.is_none() {
            self.fail(env, &self.session_gone(), json!({ "httpStatus": 404 }))
                .await;
            return Posted::Done;
        }
        let make = || self.post_request(&msg, env, session.as_ref(), version.as_ref());
        let resp = match self.remote.send(make).await {
            Ok(r) => r,
            Err(f) => {
                self.failed(env, &f).await;
                return Posted::Done;
            }
        };
        let status = resp.status();
        if status == StatusCode::NOT_FOUND && session.is_some() && env.stateless_version.is_none() {
            self.state().ended = true;
            tracing::warn!("the remote server ended the MCP session (404)");
            self.fail(env, &self.session_gone(), json!({ "httpStatus": 404 }))
                .await;
            return Posted::Done;
        }
        if status.is_client_error() && probe {
            return Posted::ClientError(resp);
        }
        if !status.is_success() {
            self.refused(resp, env).await;
            return Posted::Done;
        }
        if probe && env.kind == Kind::Request && env.stateless_version.is_some() {
            return Posted::Answering(resp);
        }
        if env.method.as_deref() == Some("initialize")
            && let Some(id) = resp.headers().get(SESSION)
        {
            self.state().session = Some(id.clone());
        }
        self.answer(resp, env).await;
        if env.kind == Kind::Notification
            && env.method.as_deref() == Some("notifications/initialized")
        {
            self.open_get_stream();
        }
        Posted::Done
    }

    fn post_request(
        &self,
        msg: &Bytes,
        env: &Envelope,
        session: Option<&HeaderValue>,
        version: Option<&HeaderValue>,
    ) -> RequestBuilder {
        let mut req = self.remote.post_message(&self.remote.url, msg.clone());
        match &env.stateless_version {
            // A 2026-07-28 client: no session; the routing headers mirror the body.
            Some(v) => {
                if let Ok(v) = HeaderValue::try_from(v.as_str()) {
                    req = req.header(VERSION, v);
                }
                if let Some(m) = env
                    .method
                    .as_deref()
                    .and_then(|m| HeaderValue::try_from(m).ok())
                {
                    req = req.header("mcp-method", m);
                }
                if let Some(name) = &env.name {
                    req = req.header("mcp-name", crate::modern::routing_value(name));
                }
            }
            None => {
                if let Some(s) = session {
                    req = req.header(SESSION, s.clone());
                }
                if let Some(v) = version {
                    req = req.header(VERSION, v.clone());
                }
            }
        }
        req
    }

    /// A 2xx answer: nothing (202), one JSON message, or an SSE stream.
    async fn answer(self: &Arc<Self>, resp: Response, env: &Envelope) {
        let is_sse = content_type(&resp).is_some_and(|t| t == "text/event-stream");
        let is_json = content_type(&resp).is_some_and(|t| t == "application/json");
        if env.kind != Kind::Request {
            // Notifications and responses are answered with 202 and no body;
            // a body (some servers send one anyway) has nothing to answer.
            return;
        }
        if is_sse {
            self.stream(resp, env).await;
        } else if is_json {
            match read_limited(resp).await {
                Ok(body) => {
                    if env.method.as_deref() == Some("initialize") {
                        self.learn_version(&body);
                    }
                    self.out.message(body).await;
                }
                Err(e) => {
                    self.fail(
                        env,
                        &format!("the remote server's answer was cut off: {e}"),
                        json!({}),
                    )
                    .await;
                }
            }
        } else {
            let status = resp.status().as_u16();
            self.fail(
                env,
                &format!(
                    "the remote server answered HTTP {status} without a JSON or SSE body; is {} an MCP endpoint?",
                    self.remote.url
                ),
                json!({ "httpStatus": status }),
            )
            .await;
        }
    }

    /// Relays an SSE answer; when the stream is cut before the answer,
    /// resumes it with `Last-Event-ID`.
    async fn stream(self: &Arc<Self>, resp: Response, env: &Envelope) {
        let want = env.id.as_deref();
        let initialize = env.method.as_deref() == Some("initialize");
        let mut cursor = Cursor::default();
        let mut resp = resp;
        let mut resumes = 0;
        loop {
            match self.relay(resp, want, initialize, &mut cursor).await {
                Ok(true) => return,
                Ok(false) => tracing::debug!("an SSE answer stream ended before its answer"),
                Err(e) => tracing::info!("an SSE answer stream broke: {e}"),
            }
            let Some(last) = cursor.last_id.clone() else {
                self.fail(
                    env,
                    "the remote server closed the answer stream before answering, and gave no event id to resume it with",
                    json!({}),
                )
                .await;
                return;
            };
            resumes += 1;
            if resumes > MAX_RESUMES {
                self.fail(
                    env,
                    &format!("the remote server's answer stream broke {MAX_RESUMES} times; giving up on this request"),
                    json!({}),
                )
                .await;
                return;
            }
            tokio::time::sleep(cursor.retry).await;
            tracing::info!(last_event_id = %last, "resuming the answer stream");
            match self.get(Some(&last)).await {
                Ok(r) if r.status().is_success() => resp = r,
                Ok(r) => {
                    let status = r.status();
                    let msg = if status == StatusCode::NOT_FOUND {
                        self.state().ended = true;
                        self.session_gone()
                    } else {
                        format!(
                            "the remote server's answer stream broke and resuming it was refused (HTTP {status})"
                        )
                    };
                    self.fail(env, &msg, json!({ "httpStatus": status.as_u16() }))
                        .await;
                    return;
                }
                Err(f) => {
                    self.failed(env, &f).await;
                    return;
                }
            }
        }
    }

    /// Copies the messages of one SSE body to stdout; `Ok(true)` once the
    /// answer to `want` went through.
    async fn relay(
        &self,
        resp: Response,
        want: Option<&RawValue>,
        initialize: bool,
        cursor: &mut Cursor,
    ) -> Result<bool, String> {
        let mut parser = Parser::new(MAX_MESSAGE);
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| chain(&e))?;
            let events = parser.feed(&chunk).map_err(|e| e.to_string())?;
            for ev in events {
                if let Some(id) = ev.id.as_ref().filter(|id| !id.is_empty()) {
                    cursor.last_id = Some(id.clone());
                }
                if let Some(ms) = ev.retry {
                    cursor.retry = Duration::from_millis(ms.clamp(50, 60_000));
                }
                if !ev.is_message() {
                    continue;
                }
                let answered =
                    want.is_some_and(|w| Envelope::parse(&ev.data).is_ok_and(|e| e.answers(w)));
                if answered && initialize {
                    self.learn_version(&ev.data);
                }
                self.out.message(one_line(ev.data)).await;
                if answered {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// A GET on the endpoint: the server's own stream, or (with `last`) the
    /// rest of a cut stream.
    async fn get(&self, last: Option<&str>) -> Result<Response, Failure> {
        let (session, version) = {
            let s = self.state();
            (s.session.clone(), s.version.clone())
        };
        let make = || {
            let mut req = self
                .remote
                .client
                .get(self.remote.url.clone())
                .header(ACCEPT, "text/event-stream");
            if let Some(s) = &session {
                req = req.header(SESSION, s.clone());
            }
            if let Some(v) = &version {
                req = req.header(VERSION, v.clone());
            }
            if let Some(l) = last.and_then(|l| HeaderValue::try_from(l).ok()) {
                req = req.header("last-event-id", l);
            }
            req
        };
        self.remote.send(make).await
    }

    /// Opens the GET stream for server-initiated messages, once, if the
    /// server offers one (405 means it does not).
    fn open_get_stream(self: &Arc<Self>) {
        let me = self.clone();
        let mut state = self.state();
        if state.get_stream.is_some() {
            return;
        }
        state.get_stream = Some(tokio::spawn(async move { me.run_get_stream().await }));
    }

    async fn run_get_stream(self: Arc<Self>) {
        let mut cursor = Cursor::default();
        let mut failures = 0u32;
        loop {
            if self.state().ended {
                return;
            }
            let resp = match self.get(cursor.last_id.as_deref()).await {
                Ok(r) => r,
                Err(f) => {
                    tracing::warn!("the server stream (GET): {}", self.remote.explain(&f));
                    failures += 1;
                    if failures > MAX_RESUMES {
                        return;
                    }
                    tokio::time::sleep(cursor.retry * failures).await;
                    continue;
                }
            };
            match resp.status() {
                StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!("the remote server offers no GET stream (405)");
                    return;
                }
                StatusCode::NOT_FOUND if self.state().session.is_some() => {
                    self.state().ended = true;
                    tracing::warn!(
                        "the remote server ended the MCP session (404 on the GET stream)"
                    );
                    return;
                }
                s if s.is_success()
                    && content_type(&resp).is_some_and(|t| t == "text/event-stream") =>
                {
                    failures = 0;
                    match self.relay(resp, None, false, &mut cursor).await {
                        Ok(_) => tracing::debug!("the server stream ended; reopening it"),
                        Err(e) => tracing::info!("the server stream broke ({e}); reopening it"),
                    }
                }
                s => {
                    tracing::warn!(
                        "the remote server refused the GET stream (HTTP {s}); server-initiated messages outside requests will not arrive"
                    );
                    return;
                }
            }
            tokio::time::sleep(cursor.retry).await;
        }
    }

    /// Ends the session: stops the GET stream and sends `DELETE`.
    pub(crate) async fn close(&self) {
        let (session, version, task) = {
            let mut s = self.state();
            (s.session.clone(), s.version.clone(), s.get_stream.take())
        };
        if let Some(t) = task {
            t.abort();
        }
        let Some(session) = session else { return };
        let make = || {
            let mut req = self
                .remote
                .client
                .delete(self.remote.url.clone())
                .header(SESSION, session.clone());
            if let Some(v) = &version {
                req = req.header(VERSION, v.clone());
            }
            req
        };
        match tokio::time::timeout(Duration::from_secs(5), self.remote.send(make)).await {
            Ok(Ok(r)) => tracing::debug!("DELETE of the session: HTTP {}", r.status()),
            Ok(Err(f)) => tracing::debug!("DELETE of the session: {}", self.remote.explain(&f)),
            Err(_) => tracing::debug!("DELETE of the session timed out"),
        }
    }

    /// Keeps the negotiated protocol version from an initialize answer.
    fn learn_version(&self, body: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Answer {
            result: Option<Init>,
        }
        #[derive(serde::Deserialize)]
        struct Init {
            #[serde(rename = "protocolVersion")]
            protocol_version: Option<String>,
        }
        let version = serde_json::from_slice::<Answer>(body)
            .ok()
            .and_then(|a| a.result?.protocol_version)
            .and_then(|v| HeaderValue::try_from(v).ok());
        if let Some(v) = version {
            self.state().version = Some(v);
        }
    }

    /// A non-2xx answer: its JSON-RPC error body when it has one for this
    /// request, else an error saying what the server answered.
    pub(crate) async fn refused(&self, resp: Response, env: &Envelope) {
        let status = resp.status();
        let body = read_limited(resp).await.unwrap_or_default();
        if env.kind == Kind::Request
            && let (Some(want), Ok(e)) = (env.id.as_deref(), Envelope::parse(&body))
            && e.answers(want)
        {
            self.out.message(one_line(body)).await;
            return;
        }
        let excerpt: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        let msg = format!(
            "the remote MCP server answered HTTP {status}{}",
            if excerpt.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", excerpt.trim())
            }
        );
        self.fail(env, &msg, json!({ "httpStatus": status.as_u16() }))
            .await;
    }

    async fn failed(&self, env: &Envelope, f: &Failure) {
        let status = match f {
            Failure::Unauthorized { .. } => Some(401),
            Failure::InsufficientScope { .. } => Some(403),
            _ => None,
        };
        let data = status.map_or(json!({}), |s| json!({ "httpStatus": s }));
        self.fail(env, &self.remote.explain(f), data).await;
    }

    /// Tells the stdio client: an error answer for a request, a log line otherwise.
    async fn fail(&self, env: &Envelope, message: &str, data: serde_json::Value) {
        match env.kind {
            Kind::Request => self.out.error(env.id.as_deref(), message, data).await,
            _ => tracing::error!(
                method = env.method.as_deref().unwrap_or("(response)"),
                "could not deliver a message: {message}"
            ),
        }
    }

    fn session_gone(&self) -> String {
        format!(
            "the remote MCP server at {} ended this session (HTTP 404); restart or reconnect this server in your MCP app to start a new one",
            self.remote.url
        )
    }
}

/// Where a stream got to, for resuming it.
struct Cursor {
    last_id: Option<String>,
    retry: Duration,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            last_id: None,
            retry: DEFAULT_RETRY,
        }
    }
}

fn content_type(resp: &Response) -> Option<String> {
    let v = resp.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

/// A body, refusing more than [`MAX_MESSAGE`] bytes.
pub(crate) async fn read_limited(resp: Response) -> Result<Bytes, String> {
    let mut body = resp.bytes_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| chain(&e))?;
        if buf.len() + chunk.len() > MAX_MESSAGE {
            return Err(format!("the body exceeded {MAX_MESSAGE} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
