//! Streamable HTTP with sessions (2025-03-26, 2025-06-18, 2025-11-25):
//! POST messages, GET the server stream, DELETE the session.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::value::RawValue;

use super::answer::Answer;
use super::caller::AuthenticatedCaller;
use super::era::{Endpoint, SessionMethod};
use super::request::{Post, accepts, header_str, read_post};
use crate::config::HttpTransport;
use crate::events::{EventLog, parse_event_id};
use crate::jsonrpc::{self, Kind, Message, code};
use crate::protocol::{DEFAULT_VERSION, SESSION_HEADER};
use crate::rejection::{
    json, missing_session_id, rpc_error, session_not_found, sse, upstream_error,
};
use crate::rewrite::keep;
use crate::session::Session;
use crate::state::Gateway;
use crate::upstream::{Identity, Link, Upstream, UpstreamError};

/// A request of the sessionful era.
pub(crate) async fn serve(
    gw: Gateway,
    endpoint: Endpoint,
    method: SessionMethod,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    match method {
        SessionMethod::Post => post(gw, endpoint, caller, req).await,
        SessionMethod::Get => get_stream(gw, caller, req).await,
        SessionMethod::Delete => delete(gw, caller, req).await,
    }
}

async fn post(
    gw: Gateway,
    endpoint: Endpoint,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    let Post { headers, msg, kind } = match read_post(req, gw.shared.limits.max_body_bytes).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Endpoint { name, upstream, .. } = endpoint;
    let session_id = header_str(&headers, SESSION_HEADER);
    if let Err(r) = gw.shared.guard.authorize(&name, &caller.authed, &msg) {
        return r;
    }
    if kind == Kind::Request && msg.method.as_deref() == Some("initialize") {
        return initialize(gw, name, upstream, msg, caller).await;
    }
    let Some(session_id) = session_id else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            msg.id,
            code::INVALID_REQUEST,
            "Bad Request: missing Mcp-Session-Id header; send the id returned by initialize (or initialize first)",
        );
    };
    let Some(session) = gw.shared.sessions.get(session_id) else {
        return session_not_found(msg.id);
    };
    if *session.upstream_name != *name || !caller.owns(&session) {
        return session_not_found(msg.id);
    }
    match kind {
        Kind::Request => {
            let timeout = gw.timeout_for(&name);
            let deadline = tokio::time::Instant::now() + timeout;
            let id = msg.id.clone();
            let msg_method = msg.method.clone();
            let ex = match session.link.request(msg).await {
                Ok(ex) => gw.shared.stopping.guard(ex, id.clone()),
                Err(e) => return link_failed(&gw, &session, &e, id).await,
            };
            let method = msg_method.unwrap_or_default();
            let rewrite = gw
                .shared
                .guard
                .list_filter(&name, caller.principal(), &method)
                .unwrap_or_else(keep);
            let on_silence = session.clone();
            let answer = Answer {
                link: &session.link,
                timeout,
                deadline,
                rewrite,
                cancel: Some(Box::new(move |id| {
                    Box::pin(async move {
                        on_silence
                            .link
                            .cancel(&id, "mcpgate: request timed out")
                            .await;
                    })
                })),
            };
            let s = session.clone();
            answer
                .respond(id, ex, move || {
                    let log = s.new_stream();
                    if s.wants_priming() {
                        log.push_priming();
                    }
                    log
                })
                .await
        }
        Kind::Notification | Kind::Response => match session.link.send(msg).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(e) => link_failed(&gw, &session, &e, None).await,
        },
    }
}

/// A session whose upstream failed is ended, so the client's next request gets 404.
async fn link_failed(
    gw: &Gateway,
    session: &Arc<Session>,
    e: &UpstreamError,
    id: Option<Box<RawValue>>,
) -> Response {
    if matches!(
        e,
        UpstreamError::SessionGone | UpstreamError::Unavailable(_)
    ) {
        gw.shared.sessions.remove(&session.id);
        session.close().await;
    }
    if matches!(e, UpstreamError::Unavailable(_)) && session.link.gone().is_some() {
        return session_not_found(id);
    }
    upstream_error(e, id)
}

/// Sends (or, for a gateway-initialized upstream, answers) an `initialize`.
/// Returns the link actually used (it may have switched to legacy SSE) and the response.
pub(crate) async fn initialize_link(
    upstream: &Upstream,
    mut link: Link,
    log: &Arc<EventLog>,
    msg: Message,
    timeout: std::time::Duration,
    identity: &Identity,
) -> Result<(Link, Message), (Link, Response)> {
    let id = msg.id.clone();
    let requested = jsonrpc::requested_protocol_version(msg.params.as_deref());
    link.set_capabilities(msg.params.as_deref());
    if let Some(init) = link.init_result() {
        let result = jsonrpc::with_protocol_version(init, requested.as_deref());
        return Ok((
            link,
            Message::response(id.unwrap_or_else(jsonrpc::null_id), result),
        ));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let ex = match link.request(msg.clone()).await {
        Err(UpstreamError::NotStreamable) => {
            if let Upstream::Http(h) = upstream {
                tracing::info!(upstream = %h.name, "the URL refused Streamable HTTP; using the legacy SSE transport");
                h.set_transport(HttpTransport::Sse);
            }
            link.close().await;
            link = match upstream.open(log.clone(), identity).await {
                Ok(l) => l,
                Err(e) => return Err((link, upstream_error(&e, id))),
            };
            link.set_capabilities(msg.params.as_deref());
            link.request(msg).await
        }
        other => other,
    };
    let mut ex = match ex {
        Ok(ex) => ex,
        Err(e) => return Err((link, upstream_error(&e, id))),
    };
    let answer = tokio::time::timeout_at(deadline, async {
        while let Some(m) = ex.recv().await {
            if m.kind() == Some(Kind::Response) {
                return Some(m);
            }
            // Anything the server says before answering initialize goes to the server stream.
            log.push(&m);
        }
        None
    })
    .await;
    match answer {
        Ok(Some(m)) => Ok((link, m)),
        Ok(None) => {
            let why = link
                .gone()
                .unwrap_or_else(|| "the upstream closed without answering initialize".into());
            Err((
                link,
                rpc_error(StatusCode::BAD_GATEWAY, id, code::UPSTREAM_ERROR, &why),
            ))
        }
        Err(_) => Err((
            link,
            rpc_error(
                StatusCode::GATEWAY_TIMEOUT,
                id,
                code::UPSTREAM_TIMEOUT,
                &format!("the upstream did not answer initialize within {timeout:?}"),
            ),
        )),
    }
}

async fn initialize(
    gw: Gateway,
    name: Arc<str>,
    upstream: Arc<Upstream>,
    msg: Message,
    caller: AuthenticatedCaller,
) -> Response {
    let log = EventLog::new(0, gw.shared.limits.replay_events, None);
    let identity = gw.shared.guard.identity(&caller.authed, &name);
    // Held until the session is in the table (or the initialize failed).
    let _place = match gw.shared.sessions.reserve(
        identity.caller.subject.as_deref(),
        gw.shared.limits.max_sessions_per_subject,
    ) {
        Ok(p) => p,
        Err(e) => return upstream_error(&e, msg.id),
    };
    let link = match upstream.open(log.clone(), &identity).await {
        Ok(l) => l,
        Err(e) => return upstream_error(&e, msg.id),
    };
    let timeout = gw.timeout_for(&name);
    let (link, resp) = match initialize_link(&upstream, link, &log, msg, timeout, &identity).await {
        Ok(v) => v,
        Err((link, r)) => {
            link.close().await;
            return r;
        }
    };
    let Some(result) = resp.result.as_deref() else {
        // The upstream refused initialize: pass its error on, keep no session.
        link.close().await;
        return json(StatusCode::OK, &resp);
    };
    let version =
        jsonrpc::result_protocol_version(result).unwrap_or_else(|| DEFAULT_VERSION.to_owned());
    let session = Session::new(
        name,
        caller.principal().subject().to_owned(),
        link,
        log,
        version.clone(),
        gw.shared.limits.replay_events,
    );
    session.set_protocol_version(&version);
    gw.shared.sessions.insert(session.clone());
    tracing::debug!(session = %session.id, upstream = %session.upstream_name, %version, "session opened");
    let mut r = json(StatusCode::OK, &resp);
    if let Ok(v) = HeaderValue::try_from(session.id.as_str()) {
        r.headers_mut().insert(SESSION_HEADER, v);
    }
    r
}

async fn get_stream(gw: Gateway, caller: AuthenticatedCaller, req: Request) -> Response {
    let headers = req.headers();
    if !accepts(headers, "text/event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            code::INVALID_REQUEST,
            "Not Acceptable: a GET opens a server-sent event stream; send Accept: text/event-stream",
        );
    }
    let Some(session_id) = header_str(headers, SESSION_HEADER) else {
        return missing_session_id();
    };
    let Some(session) = gw
        .shared
        .sessions
        .get(session_id)
        .filter(|s| caller.owns(s))
    else {
        return session_not_found(None);
    };
    let resume = header_str(headers, "last-event-id").and_then(parse_event_id);
    let (log, after) =
        match resume.and_then(|(stream, seq)| session.find_stream(stream).map(|l| (l, seq))) {
            Some((log, seq)) => (log, Some(seq)),
            None => (session.server_stream.clone(), None),
        };
    let is_server_stream = log.stream_id() == 0;
    let generation = if is_server_stream {
        session.claim_get()
    } else {
        0
    };
    if is_server_stream {
        session.link.open_server_stream();
        if after.is_none() && session.wants_priming() {
            log.push_priming();
        }
    }
    let guard = ListenGuard::new(session.clone());
    let s = session.clone();
    let frames = log
        .reader(after)
        .take_while(move |_| {
            let current = !is_server_stream || s.get_is_current(generation);
            async move { current }
        })
        .map(move |f| {
            let _ = &guard;
            f
        });
    sse(frames)
}

/// Counts a session's open GET connections while one lives.
struct ListenGuard(Arc<Session>);

impl ListenGuard {
    fn new(s: Arc<Session>) -> Self {
        s.listeners
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ListenGuard(s)
    }
}

impl Drop for ListenGuard {
    fn drop(&mut self) {
        self.0
            .listeners
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.touch();
    }
}

async fn delete(gw: Gateway, caller: AuthenticatedCaller, req: Request) -> Response {
    let Some(session_id) = header_str(req.headers(), SESSION_HEADER) else {
        return missing_session_id();
    };
    let Some(session) = gw
        .shared
        .sessions
        .get(session_id)
        .filter(|s| caller.owns(s))
    else {
        return session_not_found(None);
    };
    gw.shared.sessions.remove(&session.id);
    session.close().await;
    tracing::debug!(session = %session.id, "session deleted by the client");
    StatusCode::OK.into_response()
}
