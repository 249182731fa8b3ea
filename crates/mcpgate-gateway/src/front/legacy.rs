//! The legacy HTTP+SSE front (protocol 2024-11-05) for old clients: a GET opens
//! the session's only stream and names, in its first `endpoint` event, the URL
//! to POST messages to; every answer travels on that stream.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::answer::Silence;
use super::caller::AuthenticatedCaller;
use super::era::Endpoint;
use super::request::{parse_body, read_body};
use crate::error::GatewayError;
use crate::events::EventLog;
use crate::jsonrpc::{self, Kind, code};
use crate::protocol::LEGACY_SSE_VERSION;
use crate::reply::sse;
use crate::rewrite::{Rewrite, keep};
use crate::session::Session;
use crate::state::Gateway;
use crate::upstream::UpstreamError;
use mcpgate_guard::Authorized;
use mcpgate_telemetry::McpOutcome;

/// GET `/mcp/<name>/sse`: opens a session and its stream.
pub(crate) async fn open(
    gw: Gateway,
    endpoint: Endpoint,
    messages_path: String,
    caller: AuthenticatedCaller,
) -> Response {
    let Endpoint { name, upstream, .. } = endpoint;
    let log = EventLog::new(0, gw.shared.limits.replay_events, Some("message"));
    let identity = gw.shared.guard.identity(&caller.authed, &name);
    let _place = match gw.shared.sessions.reserve(
        identity.on_behalf_of.subject.as_deref(),
        gw.shared.limits.max_sessions_per_subject,
    ) {
        Ok(p) => p,
        Err(e) => return GatewayError::from(&e).answer(None),
    };
    let link = match upstream.open(log.clone(), &identity).await {
        Ok(l) => l,
        Err(e) => return GatewayError::from(&e).answer(None),
    };
    let session = Session::new(
        crate::session_key::random_session_id(),
        name,
        caller.principal().subject().clone(),
        link,
        log.clone(),
        LEGACY_SSE_VERSION.into(),
        gw.shared.limits.replay_events,
    );
    gw.shared.sessions.insert(session.clone());
    let endpoint = format!("{messages_path}?session_id={}", session.id);
    session_stream(log, &endpoint, async move {
        gw.shared.sessions.remove(&session.id);
        session.close().await;
    })
}

/// A legacy POST's checks after authentication, for an upstream's session and a
/// virtual server's alike: scopes and `[policy]` rules, then rate limits. A
/// refusal that answers the request goes out on the session's `stream` (the
/// POST gets 202); one that refuses the POST itself (missing scope, a
/// request-level limit) is the response to return.
pub(crate) async fn admit(
    gw: &Gateway,
    endpoint: &str,
    caller: &AuthenticatedCaller,
    msg: jsonrpc::Message,
    stream: &EventLog,
) -> Result<(Authorized, jsonrpc::Message), Response> {
    let proof = match gw.shared.guard.decide(endpoint, &caller.authed, &msg) {
        Ok(p) => p,
        Err(crate::auth::Refused::Scope(r)) => return Err(r),
        Err(crate::auth::Refused::Rule(e)) => {
            stream.push(&e.message(msg.id.clone()));
            return Err(StatusCode::ACCEPTED.into_response());
        }
    };
    if caller.forwarded || gw.shared.rate_limits.is_empty() {
        return Ok((proof, msg));
    }
    match gw
        .shared
        .rate_limits
        .check(endpoint, caller.principal(), &msg)
        .await
    {
        Ok(standing) => Ok((proof, crate::limits::tell_upstream(msg, &standing))),
        // A per-tool limit answers on the stream, like a rule; a
        // request-level one refuses the POST itself (429).
        Err(e @ GatewayError::ToolRateLimited(_)) => {
            stream.push(&e.message(msg.id.clone()));
            Err(StatusCode::ACCEPTED.into_response())
        }
        Err(e) => Err(e.answer(msg.id)),
    }
}

/// The one stream of a legacy session (an upstream's or a virtual server's):
/// its first event names the URL to POST to, and `end` runs, in a task of its
/// own, once the client has gone: the stream is the session.
pub(crate) fn session_stream<F>(log: Arc<EventLog>, endpoint: &str, end: F) -> Response
where
    F: Future<Output = ()> + Send + 'static,
{
    log.push_data(Some("endpoint"), endpoint.as_bytes());
    let guard = EndOnDrop(Some(end));
    sse(log.reader(Some(0)).map(move |f| {
        let _ = &guard;
        f
    }))
}

struct EndOnDrop<F: Future<Output = ()> + Send + 'static>(Option<F>);

impl<F: Future<Output = ()> + Send + 'static> Drop for EndOnDrop<F> {
    fn drop(&mut self) {
        if let Some(end) = self.0.take() {
            tokio::spawn(end);
        }
    }
}

/// POST `/messages?session_id=…`: accepted at once; the answer goes to the stream.
pub(crate) async fn message(
    gw: Gateway,
    session: Arc<Session>,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    if !caller.owns(&session) {
        return GatewayError::SessionNotFound.answer(None);
    }
    let body = match read_body(req, gw.shared.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (msg, kind) = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let received = std::time::Instant::now();
    mcpgate_telemetry::note_mcp(
        &session.upstream_name,
        msg.method.as_deref(),
        msg.id.as_deref().map(serde_json::value::RawValue::get),
        Some(session.id.as_str()),
        msg.params.as_deref().map(serde_json::value::RawValue::get),
    );
    // The answer goes out later on the stream: counted there, not as this 202.
    mcpgate_telemetry::note_mcp_deferred();
    let msg = jsonrpc::Message {
        params: mcpgate_telemetry::trace::inject_meta_raw(msg.method.as_deref(), msg.params),
        ..msg
    };
    let (proof, msg) = match admit(
        &gw,
        &session.upstream_name,
        &caller,
        msg,
        &session.server_stream,
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let timeout = gw.timeout_for(&session.upstream_name);
    let log = session.server_stream.clone();
    match kind {
        Kind::Request if msg.method.as_deref() == Some("initialize") => {
            // The link is already open; initialize it in the background and answer on the stream.
            let deadline = tokio::time::Instant::now() + timeout;
            tokio::spawn(async move {
                let sent = std::time::Instant::now();
                let requested = jsonrpc::requested_protocol_version(msg.params.as_deref());
                session.link.set_capabilities(msg.params.as_deref());
                let resp = match session.link.init_result() {
                    Some(init) => {
                        let result = jsonrpc::with_protocol_version(init, requested.as_deref());
                        Some(jsonrpc::Message::response(
                            msg.id.clone().unwrap_or_else(jsonrpc::null_id),
                            result,
                        ))
                    }
                    None => match session.link.request(&proof, msg.clone()).await {
                        Ok(mut ex) => tokio::time::timeout_at(deadline, ex.recv())
                            .await
                            .ok()
                            .flatten(),
                        Err(e) => Some(jsonrpc::Message::error(
                            msg.id.clone(),
                            code::UPSTREAM_ERROR,
                            &e.to_string(),
                        )),
                    },
                };
                let resp = resp.unwrap_or_else(|| {
                    jsonrpc::Message::error(
                        msg.id,
                        code::UPSTREAM_TIMEOUT,
                        "the upstream did not answer initialize",
                    )
                });
                if let Some(v) = resp
                    .result
                    .as_deref()
                    .and_then(jsonrpc::result_protocol_version)
                {
                    session.set_protocol_version(&v);
                }
                let outcome = if resp.error.is_some() {
                    McpOutcome::Failed
                } else {
                    McpOutcome::Ok
                };
                log.push(&resp);
                let total = received.elapsed();
                mcpgate_telemetry::mcp_answered(
                    &session.upstream_name,
                    "initialize",
                    outcome,
                    total,
                    total.saturating_sub(sent.duration_since(received)),
                );
            });
        }
        Kind::Request => {
            let id = msg.id.clone();
            let method = msg.method.clone().unwrap_or_default();
            let rewrite = gw
                .shared
                .guard
                .list_filter(&session.upstream_name, caller.principal(), &method)
                .unwrap_or_else(keep);
            let deadline = tokio::time::Instant::now() + timeout;
            tokio::spawn(async move {
                let sent = std::time::Instant::now();
                let outcome = match session.link.request(&proof, msg).await {
                    Ok(ex) => {
                        let ex = ex.until(gw.shared.stopping.stop_for(id.clone()));
                        relay_into(ex, &session, deadline, timeout, id, rewrite).await
                    }
                    Err(e) => {
                        let code = match e {
                            UpstreamError::TimedOut(_) => code::UPSTREAM_TIMEOUT,
                            _ => code::UPSTREAM_ERROR,
                        };
                        log.push(&jsonrpc::Message::error(id, code, &e.to_string()));
                        McpOutcome::Failed
                    }
                };
                let total = received.elapsed();
                mcpgate_telemetry::mcp_answered(
                    &session.upstream_name,
                    &method,
                    outcome,
                    total,
                    total.saturating_sub(sent.duration_since(received)),
                );
            });
        }
        Kind::Notification | Kind::Response => {
            if let Err(e) = session.link.send(&proof, msg).await {
                return GatewayError::from(&e).answer(None);
            }
        }
    }
    StatusCode::ACCEPTED.into_response()
}

/// Copies an exchange into the session's one stream; the stream outlives the request.
/// The first message is due by `deadline`; then the request is a stream that may
/// fall silent for `limit` at most (see [`Silence`]).
async fn relay_into(
    mut ex: crate::upstream::Exchange,
    session: &Session,
    deadline: tokio::time::Instant,
    limit: std::time::Duration,
    id: Option<Box<serde_json::value::RawValue>>,
    rewrite: Rewrite,
) -> McpOutcome {
    let log = &session.server_stream;
    let timed_out = |why: String| {
        tracing::warn!(session = %session.id, "{why}");
        jsonrpc::Message::error(id.clone(), code::UPSTREAM_TIMEOUT, &why)
    };
    let head = match tokio::time::timeout_at(deadline, ex.recv()).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            log.push(&jsonrpc::Message::error(
                id,
                code::UPSTREAM_ERROR,
                "the upstream closed without answering",
            ));
            return McpOutcome::Failed;
        }
        Err(_) => {
            if let Some(id) = &id {
                session.link.cancel(id, "mcpgate: request timed out").await;
            }
            log.push(&timed_out(format!(
                "the upstream did not answer within {limit:?} (server.request_timeout)"
            )));
            return McpOutcome::Failed;
        }
    };
    let mut silence = Silence {
        limit,
        waiting_on_client: head.kind() == Some(Kind::Request),
    };
    let mut next = Some(head);
    while let Some(mut m) = next {
        let done = m.kind() == Some(Kind::Response);
        if done {
            rewrite(&mut m);
        }
        log.push(&m);
        if done {
            return McpOutcome::Ok;
        }
        next = match silence.next(&mut ex).await {
            Ok(m) => m,
            Err(()) => {
                if let Some(id) = &id {
                    session.link.cancel(id, "mcpgate: request timed out").await;
                }
                log.push(&timed_out(silence.message()));
                return McpOutcome::Failed;
            }
        };
    }
    log.push(&jsonrpc::Message::error(
        id,
        code::UPSTREAM_ERROR,
        "the upstream closed the stream before answering",
    ));
    McpOutcome::Failed
}
