//! `resources/subscribe` of a handshake-era app over a 2026-07-28-only
//! server, which has no such method: the resources the app follows are named
//! in one `subscriptions/listen` request, whose answer stream carries their
//! `notifications/resources/updated`. The bridge opens a new stream whenever
//! the set changes (then drops the old one, which closes it) and writes each
//! update to the app without the 2026-07-28 subscription id.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use super::Stateless;
use crate::bridge::remote::chain;
use crate::bridge::streamable::MAX_MESSAGE;
use crate::modern;
use mcpgate_sse::Parser;

/// The `_meta` key a 2026-07-28 server tags listen-stream notifications with.
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// The first wait before reopening a listen stream the server ended.
const REOPEN_AFTER: Duration = Duration::from_secs(1);
/// The longest wait between attempts to reopen it.
const REOPEN_AT_MOST: Duration = Duration::from_secs(30);
/// A stream that lived less than this counts as a failed reopening (backoff grows).
const SHORT_LIVED: Duration = Duration::from_secs(10);

/// A listen stream's body, after its acknowledgement.
type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

impl Stateless {
    /// The app's `resources/subscribe` (`on`) or `resources/unsubscribe`:
    /// `{}` once the server acknowledged a listen stream for the new set.
    pub(super) async fn subscription(
        self: &Arc<Self>,
        msg: &Bytes,
        on: bool,
    ) -> Result<Value, (String, Value)> {
        let request: Value =
            serde_json::from_slice(msg).map_err(|e| (format!("not JSON: {e}"), json!({})))?;
        let uri = request
            .pointer("/params/uri")
            .and_then(Value::as_str)
            .ok_or_else(|| ("resources/subscribe needs params.uri".to_owned(), json!({})))?;
        // The gateway's `upstream/modern.rs` keeps its upstreams' subscriptions
        // the same way; the crates share no module for seven lines.
        let uris: Vec<String> = {
            let mut set = self.subscribed.lock().unwrap_or_else(|e| e.into_inner());
            if on {
                set.insert(uri.to_owned());
            } else {
                set.remove(uri);
            }
            set.iter().cloned().collect()
        };
        if uris.is_empty() {
            self.listen_task(None);
            return Ok(json!({}));
        }
        let (parser, stream) = self.open_listen(&uris).await?;
        let task = tokio::spawn(relay(Arc::downgrade(self), parser, stream));
        self.listen_task(Some(task));
        Ok(json!({}))
    }

    /// Sends `subscriptions/listen` for `uris` and waits for its
    /// acknowledgement; the stream, with what follows it, is the caller's.
    async fn open_listen(&self, uris: &[String]) -> Result<(Parser, Body), (String, Value)> {
        let body = json!({"jsonrpc": "2.0", "id": "mcpgate-bridge-listen", "method": "subscriptions/listen",
            "params": modern::stamp(json!({"notifications": {"resourceSubscriptions": uris}}), &self.capabilities)});
        let make = || self.request(&body);
        let resp = self
            .remote
            .send(make)
            .await
            .map_err(|f| (self.remote.explain(&f), json!({})))?;
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !status.is_success() || !is_sse {
            let excerpt = super::super::streamable::read_limited(resp)
                .await
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .chars()
                        .take(300)
                        .collect::<String>()
                })
                .unwrap_or_default();
            return Err((
                format!("the server refused subscriptions/listen (HTTP {status}): {excerpt}"),
                json!({"httpStatus": status.as_u16()}),
            ));
        }
        let mut parser = Parser::new(MAX_MESSAGE);
        let mut stream: Body = Box::pin(resp.bytes_stream());
        // The acknowledgement comes first; what follows is relayed aside.
        let mut acknowledged = false;
        while !acknowledged {
            let Some(chunk) = stream.next().await else {
                return Err((
                    "the server closed the subscriptions/listen stream without acknowledging it"
                        .into(),
                    json!({}),
                ));
            };
            let chunk = chunk.map_err(|e| {
                (
                    format!("the subscriptions/listen stream broke: {}", chain(&e)),
                    json!({}),
                )
            })?;
            let events = parser
                .feed(&chunk)
                .map_err(|e| (e.to_string(), json!({})))?;
            for ev in events.into_iter().filter(|e| e.is_message()) {
                let v: Value = serde_json::from_slice(&ev.data).unwrap_or(Value::Null);
                match v.get("method").and_then(Value::as_str) {
                    Some("notifications/subscriptions/acknowledged") => acknowledged = true,
                    Some("notifications/resources/updated") if acknowledged => {
                        self.out.message(Bytes::from(untagged(v).to_string())).await;
                    }
                    _ if v.get("error").is_some() => {
                        let why = v
                            .pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("error");
                        return Err((
                            format!("the server refused subscriptions/listen: {why}"),
                            json!({"serverError": v["error"]}),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok((parser, stream))
    }

    /// Makes `task` the listen stream's relay; the previous one stops.
    fn listen_task(&self, task: Option<tokio::task::JoinHandle<()>>) {
        let previous = std::mem::replace(
            &mut *self.listening.lock().unwrap_or_else(|e| e.into_inner()),
            task,
        );
        if let Some(t) = previous {
            t.abort();
        }
    }
}

/// Relays a listen stream's updates; when the server ends the stream, opens
/// it again (after a growing wait) while the app still follows resources —
/// events in between are lost (2026-07-28 has no replay), as after any drop.
async fn relay(link: Weak<Stateless>, mut parser: Parser, mut stream: Body) {
    let mut failures = 0u32;
    loop {
        let opened = Instant::now();
        while let Some(Ok(chunk)) = stream.next().await {
            let Ok(events) = parser.feed(&chunk) else {
                break;
            };
            let Some(me) = link.upgrade() else { return };
            for ev in events.into_iter().filter(|e| e.is_message()) {
                let v: Value = serde_json::from_slice(&ev.data).unwrap_or(Value::Null);
                if v.get("method").and_then(Value::as_str)
                    == Some("notifications/resources/updated")
                {
                    me.out.message(Bytes::from(untagged(v).to_string())).await;
                }
            }
        }
        if opened.elapsed() >= SHORT_LIVED {
            failures = 0;
        }
        loop {
            let wait = REOPEN_AFTER
                .saturating_mul(1 << failures.min(5))
                .min(REOPEN_AT_MOST);
            tracing::info!(
                "the server ended the subscriptions/listen stream; reopening it in {} ms",
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
            let Some(me) = link.upgrade() else { return };
            let uris: Vec<String> = {
                let set = me.subscribed.lock().unwrap_or_else(|e| e.into_inner());
                set.iter().cloned().collect()
            };
            if uris.is_empty() {
                return;
            }
            failures = failures.saturating_add(1);
            match me.open_listen(&uris).await {
                Ok((p, s)) => {
                    tracing::info!("the subscriptions/listen stream is open again");
                    (parser, stream) = (p, s);
                    break;
                }
                Err((why, _)) => tracing::warn!("reopening subscriptions/listen: {why}"),
            }
        }
    }
}

/// A listen-stream notification without the subscription id in `_meta`.
fn untagged(mut v: Value) -> Value {
    if let Some(params) = v.get_mut("params").and_then(Value::as_object_mut)
        && let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut)
    {
        meta.remove(SUBSCRIPTION_ID);
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
    v
}
