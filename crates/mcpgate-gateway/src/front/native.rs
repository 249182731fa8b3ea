//! 2026-07-28 clients against an upstream that speaks 2026-07-28 itself: each
//! request is passed through as it is — `_meta`, `inputResponses`,
//! `requestState` and the result untouched (`input_required` with the
//! upstream's own `requestState`, `resultType`, cache hints) — after the same
//! checks as every request (the guard's `Authorized`, list filtering,
//! outbound credentials, telemetry). A `subscriptions/listen` stream is
//! relayed for as long as the client holds it.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_guard::Authorized;
use serde_json::Value;

use super::answer::Answer;
use super::caller::AuthenticatedCaller;
use crate::error::GatewayError;
use crate::events::EventLog;
use crate::jsonrpc::{Kind, Message};
use crate::rewrite::{Rewrite, result_value};
use crate::state::Gateway;
use crate::upstream::modern::check_param_headers;
use crate::upstream::{HttpUpstream, Link, UpstreamError};

/// A 2026-07-28 client's message for the upstream `h`, which speaks 2026-07-28.
pub(crate) struct Native<'a> {
    pub(crate) name: &'a Arc<str>,
    pub(crate) upstream: &'a Arc<HttpUpstream>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) decode: fn(&str) -> Option<String>,
}

impl Native<'_> {
    pub(crate) async fn forward(
        self,
        gw: &Gateway,
        caller: &AuthenticatedCaller,
        msg: Message,
        kind: Kind,
        proof: Authorized,
    ) -> Response {
        let h = self.upstream;
        let method = msg.method.clone().unwrap_or_default();
        if method == "tools/call"
            && let Err(why) = self.check_params(&msg)
        {
            tracing::info!(upstream = %self.name, reason = %why, "refused a tools/call whose Mcp-Param headers disagree with its arguments");
            return GatewayError::HeaderMismatch(why).answer(msg.id);
        }
        // The client's own `Mcp-Param-*` headers go upstream with the request,
        // and so do a request's `Mcp-Method`, and `Mcp-Name` where the method
        // names something: the front checked those against the body
        // (`check_headers`; a notification's, or another method's name, not).
        let routed = kind == Kind::Request;
        let named = routed
            && matches!(
                method.as_str(),
                "tools/call" | "prompts/get" | "resources/read"
            );
        let forward: HeaderMap = self
            .headers
            .iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                k.starts_with("mcp-param-")
                    || (routed && k == "mcp-method")
                    || (named && k == "mcp-name")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let id = gw.shared.guard.identity(&caller.authed, self.name);
        let http = h.native_link(
            id.headers.clone(),
            id.token.clone(),
            id.on_behalf_of.clone(),
            forward,
        );
        let link = Link::Http(http.clone());
        match kind {
            Kind::Response => GatewayError::InvalidRequest(
                "2026-07-28 clients do not send responses; server requests arrive as input_required results".into(),
            )
            .answer(msg.id),
            Kind::Notification => match link.send(&proof, msg).await {
                Ok(()) => StatusCode::ACCEPTED.into_response(),
                Err(e) => self.failed(&e, None),
            },
            Kind::Request => {
                let filter = gw
                    .shared
                    .guard
                    .list_filter(self.name, caller.principal(), &method);
                let era = h.clone();
                let lists_tools = method == "tools/list";
                let rewrite: Rewrite = Arc::new(move |m: &mut Message| {
                    if lists_tools && let Some(v) = result_value(m) {
                        era.era.note_tools(&v);
                    }
                    if refuses_version(m) {
                        // The upstream no longer speaks 2026-07-28: ask again next time.
                        era.era.forget();
                    }
                    if let Some(f) = &filter {
                        f(m);
                    }
                });
                let client_id = msg.id.clone();
                let timeout = gw.timeout_for(self.name);
                let deadline = tokio::time::Instant::now() + timeout;
                mcpgate_telemetry::note_upstream_sent();
                let ex = match link.request(&proof, msg).await {
                    Ok(ex) => ex.until(gw.shared.stopping.stop_for(client_id.clone())),
                    Err(e) => {
                        mcpgate_telemetry::note_upstream_answered(true);
                        return self.failed(&e, client_id);
                    }
                };
                if method == "subscriptions/listen" {
                    return listen(gw, ex, client_id, timeout).await;
                }
                let answer = Answer {
                    link: &link,
                    timeout,
                    deadline,
                    rewrite,
                    // A 2026-07-28 upstream is cancelled by closing the stream,
                    // which dropping the exchange does.
                    cancel: None,
                    // Its status is set as it is written, not read back.
                    modern: true,
                };
                let replay = gw.shared.limits.replay_events;
                let r = answer
                    .respond(client_id, ex, move || EventLog::new(1, replay, None))
                    .await;
                if !is_event_stream(&r) {
                    return r;
                }
                // The client closing an SSE answer cancels the request: the
                // upstream's stream is closed too (after the answer's last
                // byte this stops nothing, the request being done).
                super::hangup::on_body_drop(r, move || http.release())
            }
        }
    }

    /// Checks the client's `Mcp-Param-*` headers against the arguments, when
    /// the tool's listing (its `x-mcp-header` parameters) was seen.
    fn check_params(&self, msg: &Message) -> Result<(), String> {
        if !self.upstream.era.declares_param_headers() {
            return Ok(());
        }
        // Only the tool's name, unless the tool declared parameter headers.
        let Some(tool) = msg.param_str("name") else {
            return Ok(());
        };
        let Some(params) = self.upstream.era.tool_headers(&tool) else {
            return Ok(());
        };
        let args: Value = msg
            .param("arguments")
            .and_then(|a| serde_json::from_str(a.get()).ok())
            .unwrap_or_default();
        check_param_headers(&params, &args, self.headers, self.decode)
    }

    fn failed(&self, e: &UpstreamError, id: Option<Box<serde_json::value::RawValue>>) -> Response {
        if matches!(e, UpstreamError::Unavailable(_)) {
            self.upstream.era.forget();
        }
        GatewayError::from(e).answer(id)
    }
}

/// A `subscriptions/listen` stream, relayed for as long as the client keeps
/// it open: unlike an answer's stream, silence is its normal state.
async fn listen(
    gw: &Gateway,
    mut ex: crate::upstream::Exchange,
    id: Option<Box<serde_json::value::RawValue>>,
    timeout: std::time::Duration,
) -> Response {
    let first = tokio::time::timeout(timeout, ex.recv()).await;
    mcpgate_telemetry::note_upstream_answered(!matches!(first, Ok(Some(_))));
    let first = match first {
        Ok(Some(m)) if m.kind() == Some(Kind::Response) => {
            return super::answer::modern_json(&m);
        }
        Ok(Some(m)) => m,
        Ok(None) => {
            return GatewayError::UpstreamUnavailable(
                "the upstream closed the subscription stream without acknowledging it".into(),
            )
            .answer(id);
        }
        Err(_) => {
            return GatewayError::UpstreamTimedOut(format!(
                "the upstream did not acknowledge subscriptions/listen within {timeout:?} (server.request_timeout)"
            ))
            .answer(id);
        }
    };
    let log = EventLog::new(1, gw.shared.limits.replay_events, None);
    log.push(&first);
    let reader = log.reader(Some(0));
    tokio::spawn(async move {
        // Ends when the upstream ends it, or the client goes away (the log's
        // last reader is dropped), which drops the exchange and so closes the
        // upstream's stream: that is how 2026-07-28 cancels.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
        loop {
            tokio::select! {
                m = ex.recv() => match m {
                    Some(m) => log.push(&m),
                    None => break,
                },
                _ = tick.tick() => {
                    if Arc::strong_count(&log) <= 1 {
                        break;
                    }
                }
            }
        }
        log.close();
    });
    crate::reply::sse(reader)
}

/// An error saying the upstream does not speak the requested version.
fn refuses_version(m: &Message) -> bool {
    m.error
        .as_deref()
        .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
        .and_then(|e| e["code"].as_i64())
        == Some(crate::protocol::UNSUPPORTED_VERSION)
}

fn is_event_stream(r: &Response) -> bool {
    r.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}
