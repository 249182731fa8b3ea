//! A 2026-07-28 app's `subscriptions/listen` over a server of the handshake
//! eras, which has no such method: the bridge subscribes on its own session
//! (`resources/subscribe` for each URI the listen names), reads the session's
//! GET stream, and writes each change notification the listen asked for to
//! the app, stamped with the listen's id as its subscription id. The app's
//! `notifications/cancelled` for the listen ends it: URIs no other listen
//! follows are unsubscribed, and the listen gets no answer.

use std::collections::{BTreeSet, HashMap};
use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::ACCEPT;
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{Handshake, read_answer};
use crate::bridge::envelope::Envelope;
use crate::bridge::remote::chain;
use crate::bridge::streamable::MAX_MESSAGE;
use mcpgate_sse::Parser;

/// The `_meta` key naming the listen a notification belongs to.
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// How often the GET stream is opened again in a row before giving up.
const MAX_REOPENS: u32 = 5;
/// The wait before reopening the GET stream when the server set no `retry:`.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// One open listen of the app.
pub(super) struct Listen {
    /// The listen request's id, stamped into every notification.
    id: Value,
    filter: Filter,
    /// Dropped or fired when the app ends the listen.
    end: Option<oneshot::Sender<()>>,
}

/// What a listen asked for and the server can deliver.
#[derive(Default)]
struct Filter {
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: BTreeSet<String>,
}

impl Filter {
    fn wants(&self, method: &str, params: Option<&Value>) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            "notifications/resources/updated" => params
                .and_then(|p| p.get("uri"))
                .and_then(Value::as_str)
                .is_some_and(|u| self.uris.contains(u)),
            _ => false,
        }
    }

    fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        for (key, on) in [
            ("toolsListChanged", self.tools),
            ("promptsListChanged", self.prompts),
            ("resourcesListChanged", self.resources),
        ] {
            if on {
                o.insert(key.into(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            o.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(o)
    }
}

/// Whether a notification is one only listen streams carry in 2026-07-28.
pub(super) fn is_change(method: &str) -> bool {
    matches!(
        method,
        "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed"
            | "notifications/resources/updated"
    )
}

impl Handshake {
    /// The app's `subscriptions/listen`: answered with an error when it
    /// cannot be had, else acknowledged and held open until the app cancels
    /// it (a listen has no answer before then).
    pub(super) async fn listen(self: &std::sync::Arc<Self>, msg: &Bytes, env: &Envelope) {
        let request: Value = serde_json::from_slice(msg).unwrap_or(Value::Null);
        let Some(id) = request.get("id").cloned() else {
            return;
        };
        let key = id.to_string();
        let asked = request
            .pointer("/params/notifications")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let filter = self.honored(&asked);
        let before = self.followed();
        let added: Vec<String> = filter.uris.difference(&before).cloned().collect();
        let mut done: Vec<&String> = Vec::new();
        for uri in &added {
            if let Err(why) = self.session_call("resources/subscribe", uri).await {
                for uri in &done {
                    self.unsubscribe(uri).await;
                }
                let why = format!("the server refused resources/subscribe for {uri}: {why}");
                tracing::info!("subscriptions/listen: {why}");
                self.out
                    .reply(env.id.as_deref(), Err((why, json!({}))))
                    .await;
                return;
            }
            done.push(uri);
        }
        let (end, ended) = oneshot::channel();
        let honored = filter.to_json();
        self.listens().insert(
            key.clone(),
            Listen {
                id: id.clone(),
                filter,
                end: Some(end),
            },
        );
        self.open_get_stream();
        let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": honored, "_meta": {SUBSCRIPTION_ID: id}}});
        self.out.message(Bytes::from(ack.to_string())).await;
        tracing::info!(listen = %key, "subscriptions/listen held on the bridge's session");
        // The app ends a listen by cancelling it; it then expects no answer.
        let _ = ended.await;
    }

    /// The listen a `notifications/cancelled` names ends; `true` when it was one.
    pub(super) async fn end_listen(&self, id: &str) -> bool {
        let Some(mut listen) = self.listens().remove(id) else {
            return false;
        };
        if let Some(end) = listen.end.take() {
            let _ = end.send(());
        }
        let still = self.followed();
        for uri in listen.filter.uris.difference(&still) {
            self.unsubscribe(uri).await;
        }
        tracing::info!(listen = %id, "the app ended a subscriptions/listen");
        true
    }

    /// Writes a change notification of the server to every listen that asked for it.
    pub(super) async fn dispatch(&self, notification: &Value) {
        let Some(method) = notification.get("method").and_then(Value::as_str) else {
            return;
        };
        let params = notification.get("params");
        let targets: Vec<Value> = self
            .listens()
            .values()
            .filter(|l| l.filter.wants(method, params))
            .map(|l| l.id.clone())
            .collect();
        for id in targets {
            let mut p = params.cloned().unwrap_or_else(|| json!({}));
            if let Some(o) = p.as_object_mut() {
                let meta = o.entry("_meta").or_insert_with(|| json!({}));
                if let Some(m) = meta.as_object_mut() {
                    m.insert(SUBSCRIPTION_ID.into(), id);
                }
            }
            let n = json!({"jsonrpc": "2.0", "method": method, "params": p});
            self.out.message(Bytes::from(n.to_string())).await;
        }
    }

    /// The part of the app's filter the server's capabilities can deliver.
    fn honored(&self, asked: &Value) -> Filter {
        let caps = self.init.get("capabilities");
        let cap = |path: &str| {
            caps.and_then(|c| c.pointer(path))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let on = |key: &str| asked.get(key).and_then(Value::as_bool).unwrap_or(false);
        let mut filter = Filter {
            tools: on("toolsListChanged") && cap("/tools/listChanged"),
            prompts: on("promptsListChanged") && cap("/prompts/listChanged"),
            resources: on("resourcesListChanged") && cap("/resources/listChanged"),
            uris: BTreeSet::new(),
        };
        if cap("/resources/subscribe") {
            filter.uris = asked
                .get("resourceSubscriptions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
        } else if asked.get("resourceSubscriptions").is_some() {
            tracing::info!(
                "subscriptions/listen: the server offers no resources/subscribe; resource updates are not honored"
            );
        }
        filter
    }

    /// Every URI some open listen follows.
    fn followed(&self) -> BTreeSet<String> {
        self.listens()
            .values()
            .flat_map(|l| l.filter.uris.iter().cloned())
            .collect()
    }

    async fn unsubscribe(&self, uri: &str) {
        if let Err(why) = self.session_call("resources/unsubscribe", uri).await {
            tracing::warn!("resources/unsubscribe for {uri}: {why}");
        }
    }

    /// `resources/subscribe` or `resources/unsubscribe` on the session.
    async fn session_call(&self, method: &str, uri: &str) -> Result<(), String> {
        let body = json!({"jsonrpc": "2.0", "id": format!("mcpgate-bridge-{}", mcpgate_types::random::hex::<16>()),
            "method": method, "params": {"uri": uri}});
        let make = || self.post(&body);
        let resp = self
            .remote
            .send(make)
            .await
            .map_err(|f| self.remote.explain(&f))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let (tx, mut rx) = mpsc::channel(16);
        read_answer(resp, tx).await;
        while let Some(m) = rx.recv().await {
            if let Some(e) = m.get("error") {
                let why = e.get("message").and_then(Value::as_str).unwrap_or("error");
                return Err(why.to_owned());
            }
            if m.get("result").is_some() {
                return Ok(());
            }
        }
        Err("no answer".into())
    }

    /// Starts reading the session's GET stream, once.
    fn open_get_stream(self: &std::sync::Arc<Self>) {
        let mut slot = self.get_stream.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let me = std::sync::Arc::downgrade(self);
            *slot = Some(super::Running(tokio::spawn(read_get_stream(me))));
        }
    }

    pub(super) fn listens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Listen>> {
        self.listening.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads the server's messages outside requests, reopening the stream when it
/// ends (with `Last-Event-ID` when the server gave event ids).
async fn read_get_stream(link: Weak<Handshake>) {
    let mut last_id: Option<String> = None;
    let mut retry = REOPEN_AFTER;
    let mut failures = 0u32;
    loop {
        let Some(me) = link.upgrade() else { return };
        let make = || {
            let mut req = me
                .remote
                .client
                .get(me.remote.url.clone())
                .header(ACCEPT, "text/event-stream")
                .header("mcp-protocol-version", me.version.clone());
            if let Some(s) = &me.session {
                req = req.header("mcp-session-id", s.clone());
            }
            if let Some(l) = last_id
                .as_deref()
                .and_then(|l| HeaderValue::try_from(l).ok())
            {
                req = req.header("last-event-id", l);
            }
            req
        };
        match me.remote.send(make).await {
            Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => {
                tracing::warn!(
                    "the remote server offers no GET stream (405): subscriptions/listen gets no notifications"
                );
                return;
            }
            Ok(r) if r.status().is_success() => {
                failures = 0;
                let mut parser = Parser::new(MAX_MESSAGE);
                let mut body = r.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) =
                        chunk.map_err(|e| tracing::info!("the GET stream broke: {}", chain(&e)))
                    else {
                        break;
                    };
                    let Ok(events) = parser.feed(&chunk) else {
                        break;
                    };
                    for ev in events {
                        if let Some(id) = ev.id.as_ref().filter(|id| !id.is_empty()) {
                            last_id = Some(id.clone());
                        }
                        if let Some(ms) = ev.retry {
                            retry = Duration::from_millis(ms.clamp(50, 60_000));
                        }
                        if let Ok(v) = serde_json::from_slice::<Value>(&ev.data) {
                            me.dispatch(&v).await;
                        }
                    }
                }
                tracing::debug!("the GET stream ended; reopening it");
            }
            Ok(r) => {
                failures += 1;
                tracing::warn!("the GET stream was refused (HTTP {})", r.status());
            }
            Err(f) => {
                failures += 1;
                tracing::warn!("the GET stream: {}", me.remote.explain(&f));
            }
        }
        if failures > MAX_REOPENS {
            tracing::warn!(
                "the GET stream failed {MAX_REOPENS} times in a row: subscriptions/listen gets no more notifications"
            );
            return;
        }
        drop(me);
        tokio::time::sleep(retry * failures.max(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_lets_through_only_what_was_asked() {
        let filter = Filter {
            tools: true,
            uris: ["note://one".to_owned()].into(),
            ..Filter::default()
        };
        let one = json!({"uri": "note://one"});
        let two = json!({"uri": "note://two"});
        assert!(filter.wants("notifications/resources/updated", Some(&one)));
        assert!(!filter.wants("notifications/resources/updated", Some(&two)));
        assert!(filter.wants("notifications/tools/list_changed", None));
        assert!(!filter.wants("notifications/prompts/list_changed", None));
        assert!(!filter.wants("notifications/message", None));
        assert_eq!(
            filter.to_json(),
            json!({"toolsListChanged": true, "resourceSubscriptions": ["note://one"]})
        );
        assert!(is_change("notifications/resources/list_changed"));
        assert!(!is_change("notifications/progress"));
    }
}
