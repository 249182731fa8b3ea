//! An HTTP link's 2026-07-28 side: asking `server/discover`, and serving a
//! session client against an upstream that refuses `initialize` (the rules
//! are in `upstream/modern.rs`).

use std::sync::Arc;

use futures_util::future::{AbortHandle, Abortable, Aborted};
use serde_json::Value;
use tokio::sync::mpsc;

use super::HttpLink;
use crate::jsonrpc::{self, Kind, Message};
use crate::upstream::UpstreamError;
use crate::upstream::modern::{self, Bridge, Mode};
use crate::upstream::mux::Exchange;

impl HttpLink {
    /// Whether this link bridges a session client to a 2026-07-28-only upstream.
    pub(crate) fn is_bridged(&self) -> bool {
        matches!(self.modern.get(), Some(Mode::Bridged(_)))
    }

    /// Asks the upstream `server/discover` the 2026-07-28 way (whatever mode
    /// this link is in). `Ok(None)`: it answered, but not as a 2026-07-28 server.
    pub(crate) async fn probe_discover(self: &Arc<Self>) -> Result<Option<Value>, UpstreamError> {
        let probe = Arc::new(HttpLink::new(
            self.up.clone(),
            crate::events::EventLog::tapped(0, 1),
            false,
            self.identity.clone(),
            self.token.clone(),
            self.caller.clone(),
        ));
        let _ = probe.modern.set(Mode::Native {
            forward: http::HeaderMap::new(),
        });
        let limit = self.up.limits.request_timeout;
        // Boxed: `exchange` itself asks this after a refused `initialize`.
        let asking = Box::pin(probe.exchange(modern::discover_request()));
        let mut ex = match tokio::time::timeout(limit, asking).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(UpstreamError::TimedOut(format!(
                    "upstream {} did not answer server/discover within {limit:?}",
                    self.up.name
                )));
            }
        };
        let answer = ex.response_within(limit).await;
        Ok(answer.as_ref().and_then(modern::modern_discovery))
    }

    /// Answers a session client's `initialize` from the upstream's discovery
    /// and turns this link into a bridge to it.
    pub(super) fn bridge_initialize(&self, msg: &Message, discover: &Value) -> Exchange {
        let bridge = Bridge::default();
        bridge.set_client(msg.params.as_deref());
        let _ = self.modern.set(Mode::Bridged(Box::new(bridge)));
        let requested = jsonrpc::requested_protocol_version(msg.params.as_deref());
        let result = modern::initialize_result(discover, requested.as_deref());
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Message::response(
            msg.id.clone().unwrap_or_else(jsonrpc::null_id),
            jsonrpc::raw(&result),
        ));
        Exchange::new(rx)
    }

    /// A session client's request to a 2026-07-28-only upstream: sent with
    /// `_meta`; each `input_required` answer becomes server→client requests
    /// on the returned exchange, and the request is sent again with the
    /// client's answers and the upstream's `requestState` until it completes.
    pub(super) async fn bridged_request(
        self: &Arc<Self>,
        msg: Message,
    ) -> Result<Exchange, UpstreamError> {
        let Some(Mode::Bridged(bridge)) = self.modern.get() else {
            return Err(UpstreamError::Unavailable(
                "the link is not bridged to a 2026-07-28 upstream".into(),
            ));
        };
        let limit = self.up.limits.request_timeout;
        let method = msg.method.clone().unwrap_or_default();
        if matches!(
            method.as_str(),
            "resources/subscribe" | "resources/unsubscribe"
        ) {
            return Ok(self.bridged_subscription(bridge, &msg).await);
        }
        if matches!(method.as_str(), "ping" | "logging/setLevel") {
            // Gone from 2026-07-28: the gateway, which holds the session, answers.
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(Message::response(
                msg.id.clone().unwrap_or_else(jsonrpc::null_id),
                jsonrpc::raw(&serde_json::json!({})),
            ));
            return Ok(Exchange::new(rx));
        }
        // The request can be cancelled from here on: a client's
        // `notifications/cancelled` aborts it (`send`), which drops its
        // upstream stream — how a 2026-07-28 server is told.
        let key = msg.id_key().map(str::to_owned);
        let (handle, registration) = AbortHandle::new_pair();
        if let Some(k) = &key {
            bridge.started(k, handle);
        }
        let first = async {
            if method == "tools/call" {
                self.learn_tool_headers(&msg).await;
            }
            let first = bridge.with_meta(&msg);
            (
                tokio::time::timeout(limit, self.exchange(first.clone())).await,
                first,
            )
        };
        let ex = match Abortable::new(first, registration).await {
            Ok((Ok(Ok(ex)), first)) => (ex, first),
            Ok((Ok(Err(e)), _)) => {
                finish(bridge, key.as_deref());
                return Err(e);
            }
            Ok((Err(_), _)) => {
                finish(bridge, key.as_deref());
                return Err(UpstreamError::TimedOut(format!(
                    "upstream {} did not answer within {limit:?} (request_timeout)",
                    self.up.name
                )));
            }
            Err(Aborted) => {
                return Err(UpstreamError::Unavailable(
                    "the client cancelled the request".into(),
                ));
            }
        };
        let (ex, first) = ex;
        let (tx, rx) = mpsc::unbounded_channel();
        let this = self.clone();
        let (handle, registration) = AbortHandle::new_pair();
        if let Some(k) = &key {
            bridge.started(k, handle);
        }
        let rounds = Abortable::new(this.clone().run_rounds(first, ex, tx), registration);
        self.spawn_tracked(async move {
            if rounds.await.is_err() {
                tracing::info!(upstream = %this.up.name, "a client cancelled a bridged request: its 2026-07-28 request stream was closed");
            }
            if let Some(Mode::Bridged(bridge)) = this.modern.get() {
                finish(bridge, key.as_deref());
            }
        });
        Ok(Exchange::new(rx))
    }

    /// A session client's `notifications/cancelled` for a bridged request:
    /// stops it, closing its upstream stream. False when none is in flight.
    pub(super) fn cancel_bridged(&self, bridge: &Bridge, msg: &Message) -> bool {
        let Some(id) = jsonrpc::cancelled_request_id(msg.params.as_deref()) else {
            return false;
        };
        let stopped = bridge.cancel(id.get());
        if stopped {
            tracing::info!(upstream = %self.up.name, request = id.get(), "cancelling a bridged request: closing its 2026-07-28 request stream");
        }
        stopped
    }

    async fn run_rounds(
        self: Arc<Self>,
        original: Message,
        mut ex: Exchange,
        tx: mpsc::UnboundedSender<Message>,
    ) {
        let Some(Mode::Bridged(bridge)) = self.modern.get() else {
            return;
        };
        let id = original.id.clone();
        let method = original.method.clone().unwrap_or_default();
        let limit = self.up.limits.request_timeout;
        for _ in 0..modern::MAX_ROUNDS {
            let response = loop {
                match ex.recv().await {
                    Some(m) if m.kind() == Some(Kind::Response) => break Some(m),
                    Some(m) => {
                        let _ = tx.send(m);
                    }
                    None => break None,
                }
            };
            let Some(response) = response else {
                return;
            };
            let Some(asked) = modern::input_required(&response) else {
                if method == "tools/list"
                    && let Some(r) = response.result.as_deref()
                    && let Ok(v) = serde_json::from_str::<Value>(r.get())
                {
                    self.up.era.note_tools(&v);
                }
                let _ = tx.send(modern::older_result(response));
                return;
            };
            let answers = match bridge.ask(&asked.requests, &tx).await {
                Ok(a) => a,
                Err(why) => {
                    tracing::info!(upstream = %self.up.name, %method, reason = %why, "a bridged input_required round ended");
                    let _ = tx.send(Message::error(id, jsonrpc::code::UPSTREAM_ERROR, &why));
                    return;
                }
            };
            let again = modern::retry(&original, answers, asked.state);
            ex = match tokio::time::timeout(limit, self.exchange(again)).await {
                Ok(Ok(ex)) => ex,
                Ok(Err(e)) => {
                    let _ = tx.send(Message::error(
                        id,
                        jsonrpc::code::UPSTREAM_ERROR,
                        &e.to_string(),
                    ));
                    return;
                }
                Err(_) => {
                    let why = format!(
                        "upstream {} did not answer within {limit:?} (request_timeout)",
                        self.up.name
                    );
                    let _ = tx.send(Message::error(id, jsonrpc::code::UPSTREAM_TIMEOUT, &why));
                    return;
                }
            };
        }
        let why = format!(
            "upstream {} asked for input more than {} times in one request",
            self.up.name,
            modern::MAX_ROUNDS
        );
        tracing::warn!("{why}");
        let _ = tx.send(Message::error(id, jsonrpc::code::UPSTREAM_ERROR, &why));
    }

    /// A `tools/call` must carry its tool's `Mcp-Param-*` headers: when the
    /// tool's listing was never seen, list the tools first.
    async fn learn_tool_headers(self: &Arc<Self>, msg: &Message) {
        let Some(tool) = msg
            .params_as::<Value>()
            .and_then(|p| p.get("name")?.as_str().map(str::to_owned))
        else {
            return;
        };
        if self.up.era.tool_headers(&tool).is_some() {
            return;
        }
        let Some(Mode::Bridged(bridge)) = self.modern.get() else {
            return;
        };
        let mut cursor: Option<String> = None;
        // A bounded walk: a paginator that never ends must not hold the call.
        for page in 0..20u32 {
            let params = match &cursor {
                Some(c) => serde_json::json!({ "cursor": c }),
                None => serde_json::json!({}),
            };
            let list = bridge.with_meta(&Message::request(
                jsonrpc::raw(&format!("mcpgate-tools-{page}")),
                "tools/list",
                Some(jsonrpc::raw(&params)),
            ));
            let limit = self.up.limits.request_timeout;
            let Ok(Ok(mut ex)) = tokio::time::timeout(limit, self.exchange(list)).await else {
                return;
            };
            let Some(result) = ex
                .response_within(limit)
                .await
                .and_then(|m| m.result)
                .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
            else {
                return;
            };
            self.up.era.note_tools(&result);
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() || self.up.era.tool_headers(&tool).is_some() {
                return;
            }
        }
    }
}

/// Forgets a request that ended before its rounds began.
fn finish(bridge: &Bridge, key: Option<&str>) {
    if let Some(k) = key {
        bridge.finished(k);
    }
}
