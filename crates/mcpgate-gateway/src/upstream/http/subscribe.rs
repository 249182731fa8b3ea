//! `resources/subscribe` of a session client bridged to a 2026-07-28-only
//! upstream. That revision has no `resources/subscribe`: a client names the
//! resources it follows in a `subscriptions/listen` request, whose answer is
//! a stream of `notifications/resources/updated`. The gateway keeps one such
//! stream per bridged session, naming every resource the client subscribed
//! to, opens a new one when the set changes (then closes the old), and puts
//! each update on the session's server stream, where the client expects it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::HttpLink;
use crate::jsonrpc::{self, Kind, Message, code};
use crate::upstream::modern::Bridge;
use crate::upstream::mux::Exchange;

/// The `_meta` key a 2026-07-28 server tags listen-stream notifications with.
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

static NEXT_LISTEN: AtomicU64 = AtomicU64::new(1);

impl HttpLink {
    /// Answers a session client's `resources/subscribe` or
    /// `resources/unsubscribe`: `{}` once the upstream acknowledged a listen
    /// stream for the new set of resources, else an error saying why.
    pub(super) async fn bridged_subscription(
        self: &Arc<Self>,
        bridge: &Bridge,
        msg: &Message,
    ) -> Exchange {
        let id = msg.id.clone().unwrap_or_else(jsonrpc::null_id);
        let on = msg.method.as_deref() == Some("resources/subscribe");
        let uri = msg
            .params_as::<Value>()
            .and_then(|p| p.get("uri")?.as_str().map(str::to_owned));
        let answer = match uri {
            None => Message::error(
                Some(id),
                code::INVALID_PARAMS,
                "Invalid params: resources/subscribe and resources/unsubscribe need params.uri",
            ),
            Some(uri) => {
                let uris = bridge.subscription(&uri, on);
                match self.relisten(bridge, uris).await {
                    Ok(()) => Message::response(id, jsonrpc::raw(&serde_json::json!({}))),
                    Err(why) => {
                        tracing::info!(upstream = %self.up.name, reason = %why, "a bridged resources/subscribe failed");
                        Message::error(Some(id), code::UPSTREAM_ERROR, &why)
                    }
                }
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(answer);
        Exchange::new(rx)
    }

    /// Opens the upstream listen stream for `uris` (none: closes it) and
    /// relays its resource updates into the session's server stream.
    async fn relisten(self: &Arc<Self>, bridge: &Bridge, uris: Vec<String>) -> Result<(), String> {
        if uris.is_empty() {
            bridge.listening(None);
            return Ok(());
        }
        let limit = self.up.limits.request_timeout;
        let n = NEXT_LISTEN.fetch_add(1, Ordering::Relaxed);
        let params = serde_json::json!({ "notifications": { "resourceSubscriptions": uris } });
        let listen = bridge.with_meta(&Message::request(
            jsonrpc::raw(&format!("mcpgate-listen-{n}")),
            "subscriptions/listen",
            Some(jsonrpc::raw(&params)),
        ));
        let mut ex = match tokio::time::timeout(limit, self.exchange(listen)).await {
            Ok(Ok(ex)) => ex,
            Ok(Err(e)) => return Err(format!("subscriptions/listen upstream: {e}")),
            Err(_) => {
                return Err(format!(
                    "upstream {} did not answer subscriptions/listen within {limit:?} (request_timeout)",
                    self.up.name
                ));
            }
        };
        match tokio::time::timeout(limit, ex.recv()).await {
            Ok(Some(m))
                if m.method.as_deref() == Some("notifications/subscriptions/acknowledged") => {}
            Ok(Some(m)) if m.kind() == Some(Kind::Response) => {
                let why = m
                    .error
                    .as_deref()
                    .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
                    .and_then(|e| e.get("message")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "it answered without a stream".into());
                return Err(format!(
                    "upstream {} refused subscriptions/listen: {why}",
                    self.up.name
                ));
            }
            _ => {
                return Err(format!(
                    "upstream {} did not acknowledge subscriptions/listen within {limit:?}",
                    self.up.name
                ));
            }
        }
        let log = self.server_stream.clone();
        let name = self.up.name.clone();
        let task = self.spawn_tracked(async move {
            while let Some(m) = ex.recv().await {
                if m.kind() == Some(Kind::Response) {
                    break;
                }
                if m.method.as_deref() == Some("notifications/resources/updated") {
                    log.push(&untagged(m));
                }
            }
            tracing::info!(upstream = %name, "the upstream ended the subscriptions/listen stream of a bridged session: resource updates stop until the next resources/subscribe");
        });
        // The new stream is open: only now does the old one stop, so that
        // no update falls between the two.
        bridge.listening(Some(task));
        Ok(())
    }
}

/// A listen-stream notification as a session client gets it: without the
/// 2026-07-28 subscription id in `_meta`.
fn untagged(mut m: Message) -> Message {
    let Some(mut params) = m.params_as::<Map<String, Value>>() else {
        return m;
    };
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.remove(SUBSCRIPTION_ID);
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
    m.params = Some(jsonrpc::raw(&params));
    m
}
