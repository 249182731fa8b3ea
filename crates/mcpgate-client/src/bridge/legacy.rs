//! The legacy HTTP+SSE transport (2024-11-05): a GET opens an SSE stream whose
//! first `endpoint` event names the URL to POST messages to; the server's
//! messages arrive as `message` events on that stream. There is no resuming:
//! when the stream ends the session is gone, so the bridge fails what is in
//! flight and ends.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::StatusCode;
use http::header::{ACCEPT, CONTENT_TYPE};
use serde_json::json;
use tokio::sync::watch;
use url::Url;

use super::envelope::{Envelope, Kind};
use super::output::{Output, one_line};
use super::remote::{Failure, Remote, chain};
use super::streamable::{MAX_MESSAGE, read_limited};
use mcpgate_sse::{Event, Parser};

/// How long the server has to name its POST endpoint.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(15);

/// One legacy SSE session.
pub(crate) struct Legacy {
    remote: Arc<Remote>,
    out: Output,
    endpoint: Url,
    /// Ids (as JSON text) of requests still waiting for their answer.
    pending: Mutex<HashSet<String>>,
    stream: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Why the legacy session could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The GET failed at the HTTP level (authorization, network).
    Remote(Failure),
    /// The server answered, but not with a usable SSE stream and endpoint.
    Protocol(String),
}

impl Legacy {
    /// Opens the SSE stream at the remote URL and waits for its endpoint.
    /// `fatal` is told why when the stream later ends.
    pub(crate) async fn connect(
        remote: Arc<Remote>,
        out: Output,
        fatal: watch::Sender<Option<String>>,
    ) -> Result<Arc<Self>, ConnectError> {
        let url = remote.url.clone();
        let make = || {
            remote
                .client
                .get(url.clone())
                .header(ACCEPT, "text/event-stream")
        };
        let resp = remote.send(make).await.map_err(ConnectError::Remote)?;
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !status.is_success() || !is_sse {
            return Err(ConnectError::Protocol(format!(
                "GET {url} answered HTTP {status}{}, not an SSE stream",
                if is_sse {
                    ""
                } else {
                    " without text/event-stream"
                }
            )));
        }
        let mut body: BoxStream<'static, Result<Bytes, reqwest::Error>> =
            resp.bytes_stream().boxed();
        let mut parser = Parser::new(MAX_MESSAGE);
        let mut early: Vec<Event> = Vec::new();
        let found = tokio::time::timeout(ENDPOINT_TIMEOUT, async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| chain(&e))?;
                let mut events = parser.feed(&chunk).map_err(|e| e.to_string())?.into_iter();
                while let Some(ev) = events.by_ref().next() {
                    if ev.event == "endpoint" {
                        early.extend(events);
                        return Ok(ev.data);
                    }
                }
            }
            Err("the SSE stream ended before an `endpoint` event".to_owned())
        })
        .await;
        let data = match found {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(ConnectError::Protocol(e)),
            Err(_) => {
                return Err(ConnectError::Protocol(format!(
                    "no `endpoint` event within {} s",
                    ENDPOINT_TIMEOUT.as_secs()
                )));
            }
        };
        let endpoint = endpoint_url(&url, &data).map_err(ConnectError::Protocol)?;
        tracing::info!(%endpoint, "legacy SSE session open");
        let me = Arc::new(Legacy {
            remote,
            out,
            endpoint,
            pending: Mutex::new(HashSet::new()),
            stream: Mutex::new(None),
        });
        let pump = me.clone();
        let task = tokio::spawn(async move {
            let why = pump.pump(early, parser, body).await;
            pump.fail_pending(&why).await;
            fatal.send_replace(Some(why));
        });
        *me.stream.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(me)
    }

    /// Copies `message` events to stdout until the stream ends; returns why it ended.
    async fn pump(
        &self,
        early: Vec<Event>,
        mut parser: Parser,
        mut body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    ) -> String {
        for ev in early {
            self.event(ev).await;
        }
        while let Some(chunk) = body.next().await {
            let events = match chunk {
                Ok(c) => match parser.feed(&c) {
                    Ok(e) => e,
                    Err(e) => return e.to_string(),
                },
                Err(e) => {
                    return format!(
                        "the legacy SSE stream from the remote server broke: {}",
                        chain(&e)
                    );
                }
            };
            for ev in events {
                self.event(ev).await;
            }
        }
        "the remote server closed the legacy SSE stream, which ends the session".to_owned()
    }

    async fn event(&self, ev: Event) {
        if !ev.is_message() {
            return;
        }
        if let Ok(env) = Envelope::parse(&ev.data)
            && env.kind == Kind::Response
            && let Some(id) = env.id.as_deref()
        {
            self.pending().remove(id.get().trim());
        }
        self.out.message(one_line(ev.data)).await;
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// POSTs one message to the session's endpoint.
    pub(crate) async fn deliver(&self, msg: Bytes, env: Envelope) {
        let key = env.id.as_deref().map(|id| id.get().trim().to_owned());
        if env.kind == Kind::Request
            && let Some(k) = &key
        {
            self.pending().insert(k.clone());
        }
        let make = || self.remote.post_message(&self.endpoint, msg.clone());
        let problem = match self.remote.send(make).await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => {
                let status = r.status();
                let body = read_limited(r).await.unwrap_or_default();
                let excerpt: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                let gone = if status == StatusCode::NOT_FOUND {
                    " (the legacy session may have ended; restart this server in your MCP app)"
                } else {
                    ""
                };
                Some((
                    format!(
                        "the remote MCP server answered HTTP {status} to a message{gone}{}",
                        if excerpt.trim().is_empty() {
                            String::new()
                        } else {
                            format!(": {}", excerpt.trim())
                        }
                    ),
                    json!({ "httpStatus": status.as_u16() }),
                ))
            }
            Err(f) => Some((self.remote.explain(&f), json!({}))),
        };
        let Some((message, data)) = problem else {
            return;
        };
        match (env.kind, key) {
            (Kind::Request, Some(k)) => {
                if self.pending().remove(&k) {
                    self.out.error(env.id.as_deref(), &message, data).await;
                }
            }
            _ => tracing::error!("could not deliver a message: {message}"),
        }
    }

    async fn fail_pending(&self, why: &str) {
        let ids: Vec<String> = self.pending().drain().collect();
        for id in ids {
            if let Ok(raw) = serde_json::value::RawValue::from_string(id) {
                self.out.error(Some(&raw), why, json!({})).await;
            }
        }
    }

    /// Stops reading the stream (the session ends with the connection).
    pub(crate) fn close(&self) {
        if let Some(t) = self.stream.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

/// The POST URL an `endpoint` event names, resolved against the SSE URL. It
/// must stay on the same origin: the bridge sends credentials there.
fn endpoint_url(sse: &Url, data: &[u8]) -> Result<Url, String> {
    let text = std::str::from_utf8(data)
        .map_err(|_| "the `endpoint` event is not UTF-8".to_owned())?
        .trim();
    let url = sse
        .join(text)
        .map_err(|e| format!("the `endpoint` event {text:?} is not a URL: {e}"))?;
    if url.origin() != sse.origin() {
        return Err(format!(
            "the `endpoint` event names {}, another origin than {}; refusing to send messages and credentials there",
            url.origin().ascii_serialization(),
            sse.origin().ascii_serialization()
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
