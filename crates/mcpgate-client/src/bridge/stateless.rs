//! A handshake-era stdio app (2024-11-05 … 2025-11-25) over a server that
//! speaks only 2026-07-28: the bridge holds the handshake toward the app
//! (its `initialize` is answered from `server/discover`), sends each request
//! with the 2026-07-28 `_meta` and routing headers, and turns every
//! `input_required` answer into server→client requests toward the app, whose
//! answers go back in the retry with the `requestState` — as the gateway
//! does for its older clients.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::envelope::{Envelope, Kind};
use super::inflight::Inflight;
use super::output::{Output, one_line};
use super::remote::{Remote, chain};
use super::streamable::MAX_MESSAGE;
use crate::modern::{self, Discovered, InputError, InputHandler};
use mcpgate_sse::Parser;

/// The revisions a handshake-era app may be answered with.
const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// How long the app may take to answer one question (a person may be typing).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// The bridge's side toward a 2026-07-28-only server.
pub(crate) struct Stateless {
    remote: Arc<Remote>,
    out: Output,
    /// What the app declared in its `initialize`, sent in every `_meta`.
    capabilities: Value,
    /// Questions sent to the app, by our request id, awaiting its answer.
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    next_question: AtomicU64,
    /// The app's requests in flight: its `notifications/cancelled` drops
    /// one's HTTP exchange, which cancels it at a 2026-07-28 server.
    inflight: Inflight,
    /// The resources the app subscribed to, named by one listen stream.
    subscribed: Mutex<BTreeSet<String>>,
    /// The task relaying that stream (`subscribe.rs`).
    listening: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Why the server's answer could not be had.
enum Answer {
    /// The JSON-RPC message answering the request.
    Message(Value),
    /// Something the app should read as the request's error.
    Failed(String, Value),
}

impl Stateless {
    /// Tries `server/discover` after the app's `initialize` was refused;
    /// when the server speaks 2026-07-28, answers that `initialize` itself
    /// and returns the link. `None`: the server is older (or unreachable),
    /// and the caller goes on with its other fallbacks.
    pub(crate) async fn open(
        remote: Arc<Remote>,
        out: Output,
        initialize: &Bytes,
        env: &Envelope,
    ) -> Option<Arc<Self>> {
        let init: Value = serde_json::from_slice(initialize).ok()?;
        let capabilities = init
            .pointer("/params/capabilities")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let link = Arc::new(Stateless {
            remote,
            out,
            capabilities,
            waiting: Mutex::new(HashMap::new()),
            next_question: AtomicU64::new(1),
            inflight: Inflight::default(),
            subscribed: Mutex::new(BTreeSet::new()),
            listening: Mutex::new(None),
        });
        let discover = json!({"jsonrpc": "2.0", "id": 0, "method": "server/discover",
            "params": modern::stamp(Value::Null, &link.capabilities)});
        let (status, body) = match link.post_raw(&discover).await {
            Ok(r) => r,
            Err(why) => {
                tracing::info!("server/discover failed too: {why}");
                return None;
            }
        };
        let result = match modern::judge_discover(status, body.as_ref()) {
            Discovered::Modern(r) => r,
            Discovered::Older(why) => {
                tracing::debug!("not a 2026-07-28 server: {why}");
                return None;
            }
            Discovered::Failed(why) => {
                tracing::info!("server/discover: {why}");
                return None;
            }
        };
        tracing::info!(
            "the remote server speaks only {}; the bridge holds the handshake for the app",
            modern::VERSION
        );
        let asked = init
            .pointer("/params/protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let version = if HANDSHAKE_VERSIONS.contains(&asked) {
            asked
        } else {
            "2025-11-25"
        };
        let mut answer = json!({
            "protocolVersion": version,
            "capabilities": result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            "serverInfo": result
                .pointer(&format!("/_meta/{}", modern::META_SERVER_INFO.replace('/', "~1")))
                .cloned()
                .unwrap_or_else(|| json!({"name": "unknown", "version": "unknown"})),
        });
        if let (Some(i), Some(o)) = (result.get("instructions"), answer.as_object_mut()) {
            o.insert("instructions".into(), i.clone());
        }
        link.reply(env, Ok(answer)).await;
        Some(link)
    }

    /// Handles one message from the app.
    pub(crate) async fn deliver(self: &Arc<Self>, msg: Bytes, env: Envelope) {
        match env.kind {
            Kind::Response => {
                let v: Value = serde_json::from_slice(&msg).unwrap_or(Value::Null);
                let key = v.get("id").map(Value::to_string).unwrap_or_default();
                let waiter = self.lock().remove(&key);
                match waiter {
                    Some(w) => {
                        let _ = w.send(v);
                    }
                    None => tracing::debug!("an answer to no question of ours: {key}"),
                }
            }
            // 2026-07-28 has no client notifications: `initialized` has no
            // session to mark, and a cancellation is the closed stream.
            Kind::Notification if env.method.as_deref() == Some("notifications/cancelled") => {
                match self.inflight.cancel(&msg) {
                    Some(id) => tracing::info!(
                        request = %id,
                        "the app cancelled a request: closing its 2026-07-28 request stream"
                    ),
                    None => tracing::debug!("a cancellation for no request in flight"),
                }
            }
            Kind::Notification => tracing::debug!(
                method = env.method.as_deref().unwrap_or(""),
                "not sent to a 2026-07-28 server"
            ),
            Kind::Request => match env.method.as_deref() {
                Some("ping" | "logging/setLevel") => self.reply(&env, Ok(json!({}))).await,
                Some(m @ ("resources/subscribe" | "resources/unsubscribe")) => {
                    let outcome = self.subscription(&msg, m == "resources/subscribe").await;
                    self.reply(&env, outcome).await;
                }
                Some("initialize") => {
                    self.reply(&env, Err(("already initialized".into(), json!({}))))
                        .await;
                }
                Some(method) => {
                    let method = method.to_owned();
                    let call = self.call(&msg, &method);
                    // A cancelled request gets no answer (the app gave up on it).
                    if let Some(outcome) = self.inflight.run(env.id.as_deref(), call).await {
                        self.reply(&env, outcome).await;
                    }
                }
                None => {}
            },
        }
    }

    /// One request of the app, with as many `input_required` rounds as the
    /// server asks for.
    async fn call(&self, msg: &Bytes, method: &str) -> Result<Value, (String, Value)> {
        let request: Value =
            serde_json::from_slice(msg).map_err(|e| (format!("not JSON: {e}"), json!({})))?;
        let original = request.get("params").cloned().unwrap_or(Value::Null);
        let mut params = original.clone();
        for _round in 0..=modern::MAX_ROUNDS {
            let body = json!({"jsonrpc": "2.0", "id": request.get("id").cloned().unwrap_or(Value::Null),
                "method": method, "params": modern::stamp(params, &self.capabilities)});
            let answer = match self.post(&body).await {
                Answer::Message(m) => m,
                Answer::Failed(why, data) => return Err((why, data)),
            };
            if let Some(err) = answer.get("error") {
                return Err((
                    err.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                        .to_owned(),
                    // The server's own error object rides along whole.
                    json!({"serverError": err}),
                ));
            }
            let result = answer.get("result").cloned().unwrap_or_else(|| json!({}));
            if !modern::is_input_required(&result) {
                return Ok(handshake_result(result));
            }
            let responses = modern::answer_all(self, &result)
                .await
                .map_err(|e| (e.0, json!({})))?;
            params = modern::retry_params(&original, responses, &result);
        }
        Err((
            format!(
                "the server still asked for input after {} rounds",
                modern::MAX_ROUNDS
            ),
            json!({}),
        ))
    }

    /// POSTs a 2026-07-28 request and reads its answer, relaying the
    /// notifications before it (progress, log messages) to the app.
    async fn post(&self, body: &Value) -> Answer {
        let make = || self.request(body);
        let resp = match self.remote.send(make).await {
            Ok(r) => r,
            Err(f) => return Answer::Failed(self.remote.explain(&f), json!({})),
        };
        let status = resp.status().as_u16();
        let sse = content_type(&resp).is_some_and(|t| t == "text/event-stream");
        if sse && (200..300).contains(&status) {
            return self.read_stream(resp).await;
        }
        let bytes = match super::streamable::read_limited(resp).await {
            Ok(b) => b,
            Err(e) => return Answer::Failed(format!("the answer was cut off: {e}"), json!({})),
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v.get("result").is_some() || v.get("error").is_some() => Answer::Message(v),
            _ => {
                let excerpt: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                Answer::Failed(
                    format!("the remote MCP server answered HTTP {status}: {excerpt}"),
                    json!({"httpStatus": status}),
                )
            }
        }
    }

    async fn read_stream(&self, resp: reqwest::Response) -> Answer {
        let mut parser = Parser::new(MAX_MESSAGE);
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    return Answer::Failed(
                        format!("the answer stream broke: {}", chain(&e)),
                        json!({}),
                    );
                }
            };
            let events = match parser.feed(&chunk) {
                Ok(e) => e,
                Err(e) => return Answer::Failed(e.to_string(), json!({})),
            };
            for ev in events.into_iter().filter(|e| e.is_message()) {
                let Ok(v) = serde_json::from_slice::<Value>(&ev.data) else {
                    continue;
                };
                if v.get("method").is_some() {
                    // Notifications about this request; 2026-07-28 servers
                    // send no requests here.
                    self.out.message(one_line(ev.data)).await;
                } else if v.get("result").is_some() || v.get("error").is_some() {
                    return Answer::Message(v);
                }
            }
        }
        Answer::Failed(
            "the remote server closed the answer stream before answering".into(),
            json!({}),
        )
    }

    /// `server/discover`'s answer: status and JSON-RPC message (if any).
    async fn post_raw(&self, body: &Value) -> Result<(u16, Option<Value>), String> {
        let make = || self.request(body);
        let resp = self
            .remote
            .send(make)
            .await
            .map_err(|f| self.remote.explain(&f))?;
        let status = resp.status().as_u16();
        if content_type(&resp).is_some_and(|t| t == "text/event-stream") {
            return match self.read_stream(resp).await {
                Answer::Message(m) => Ok((status, Some(m))),
                Answer::Failed(why, _) => Err(why),
            };
        }
        let bytes = super::streamable::read_limited(resp).await?;
        Ok((status, serde_json::from_slice(&bytes).ok()))
    }

    fn request(&self, body: &Value) -> reqwest::RequestBuilder {
        let method = body.get("method").and_then(Value::as_str).unwrap_or("");
        let mut req = self
            .remote
            .post_message(&self.remote.url, body.to_string())
            .header("mcp-protocol-version", modern::VERSION);
        if let Ok(m) = HeaderValue::try_from(method) {
            req = req.header("mcp-method", m);
        }
        if let Some(name) = body
            .get("params")
            .and_then(|p| modern::routing_name(method, p))
        {
            req = req.header("mcp-name", modern::routing_value(name));
        }
        req
    }

    /// The app's answer to its request `env`.
    async fn reply(&self, env: &Envelope, outcome: Result<Value, (String, Value)>) {
        self.out.reply(env.id.as_deref(), outcome).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl InputHandler for Stateless {
    fn capabilities(&self) -> Value {
        self.capabilities.clone()
    }

    /// Asks the app, as a server request of its own era, and waits for its answer.
    // The trait's boxed-future signature, repeated as `dyn InputHandler` needs.
    fn answer<'a>(
        &'a self,
        method: &'a str,
        params: &'a Value,
    ) -> BoxFuture<'a, Result<Value, InputError>> {
        Box::pin(async move {
            let n = self.next_question.fetch_add(1, Ordering::Relaxed);
            let id = Value::String(format!("mcpgate-bridge-{n}"));
            let (tx, rx) = oneshot::channel();
            self.lock().insert(id.to_string(), tx);
            let mut q = json!({"jsonrpc": "2.0", "id": id, "method": method});
            if !params.is_null()
                && let Some(o) = q.as_object_mut()
            {
                o.insert("params".into(), params.clone());
            }
            self.out.message(Bytes::from(q.to_string())).await;
            let answer = match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
                Ok(Ok(a)) => a,
                Ok(Err(_)) => return Err(InputError("the app went away".into())),
                Err(_) => {
                    self.lock().remove(&id.to_string());
                    return Err(InputError(format!(
                        "the app did not answer {method} within {} s",
                        ANSWER_TIMEOUT.as_secs()
                    )));
                }
            };
            if let Some(e) = answer.get("error") {
                return Err(InputError(format!("the app refused {method}: {e}")));
            }
            Ok(answer.get("result").cloned().unwrap_or_else(|| json!({})))
        })
    }
}

/// A 2026-07-28 result as a handshake-era app expects it: without the
/// members its revision does not know (strict SDKs refuse extra keys).
fn handshake_result(mut result: Value) -> Value {
    if let Some(o) = result.as_object_mut() {
        o.remove("resultType");
        o.remove("ttlMs");
        o.remove("cacheScope");
    }
    result
}

fn content_type(resp: &reqwest::Response) -> Option<String> {
    let v = resp.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

mod subscribe;

#[cfg(test)]
mod tests;
