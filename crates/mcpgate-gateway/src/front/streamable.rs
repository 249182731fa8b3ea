//! Streamable HTTP with sessions (2025-03-26, 2025-06-18, 2025-11-25):
//! POST messages, GET the server stream, DELETE the session.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::value::RawValue;

use super::{
    Answer, DEFAULT_VERSION, MODERN_VERSION, SUPPORTED_VERSIONS, accepts, header_str,
    is_json_content, json, keep, parse_body, read_body, rpc_error, sse, stateless, upstream_error,
};
use crate::auth;
use crate::config::HttpTransport;
use crate::events::{EventLog, parse_event_id};
use crate::gateway::Gateway;
use crate::jsonrpc::{self, Kind, Message, code};
use crate::session::Session;
use crate::upstream::{Identity, Link, Upstream, UpstreamError};
use mcpgate_guard::Principal;

pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
pub(crate) const VERSION_HEADER: &str = "mcp-protocol-version";

/// Everything that reaches `/mcp/<name>`.
pub(crate) async fn endpoint(gw: Gateway, name: String, req: Request) -> Response {
    let Some((name, upstream)) = gw.upstream(&name) else {
        return no_such_upstream(&name);
    };
    let modern = header_str(req.headers(), VERSION_HEADER) == Some(MODERN_VERSION);
    let served = matches!(*req.method(), Method::POST)
        || (!modern && matches!(*req.method(), Method::GET | Method::DELETE));
    if served {
        // Every request is authenticated: a session id is not a credential.
        let path = req.uri().path().to_owned();
        let guard = &gw.shared.guard;
        let principal = match guard
            .authenticate(&name, &path, req.headers(), req.uri().query())
            .await
        {
            Ok(p) => p,
            Err(r) => return r,
        };
        let caller = Caller {
            authed: principal,
            path,
        };
        return match *req.method() {
            Method::POST => post(gw, name, upstream, caller, req).await,
            Method::GET => get_stream(gw, caller, req).await,
            _ => delete(gw, caller, req).await,
        };
    }
    let allow = if modern { "POST" } else { "GET, POST, DELETE" };
    let mut r = rpc_error(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        code::INVALID_REQUEST,
        &format!(
            "method {} is not allowed on an MCP endpoint; use {allow}",
            req.method()
        ),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The authenticated caller and the endpoint path it used (for challenges).
pub(crate) struct Caller {
    pub(crate) authed: auth::Authenticated,
    pub(crate) path: String,
}

impl Caller {
    pub(crate) fn principal(&self) -> &Principal {
        &self.authed.principal
    }

    /// A session opened by someone else does not exist for this caller.
    pub(crate) fn owns(&self, session: &Session) -> bool {
        session.subject == self.principal().subject
    }
}

async fn post(
    gw: Gateway,
    name: Arc<str>,
    upstream: Arc<Upstream>,
    caller: Caller,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    if !(accepts(&headers, "application/json") && accepts(&headers, "text/event-stream")) {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            code::INVALID_REQUEST,
            "Not Acceptable: the Accept header must list both application/json and text/event-stream",
        );
    }
    if !is_json_content(&headers) {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            code::INVALID_REQUEST,
            "Unsupported Media Type: send the JSON-RPC message with Content-Type: application/json",
        );
    }
    let body = match read_body(req, gw.shared.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (msg, kind) = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let version = header_str(&headers, VERSION_HEADER);
    if let Some(v) = version
        && !SUPPORTED_VERSIONS.contains(&v)
    {
        return stateless::unsupported_version(msg.id.clone(), v);
    }
    let session_id = header_str(&headers, SESSION_HEADER);
    mcpgate_telemetry::note_mcp(
        &name,
        msg.method.as_deref(),
        msg.id.as_deref().map(RawValue::get),
        session_id,
        msg.params.as_deref().map(RawValue::get),
    );
    let msg = Message {
        params: mcpgate_telemetry::trace::inject_meta_raw(msg.method.as_deref(), msg.params),
        ..msg
    };
    if version == Some(MODERN_VERSION) && session_id.is_none() {
        return stateless::post(gw, name, upstream, &headers, msg, kind, caller).await;
    }
    if let Err(r) = gw
        .shared
        .guard
        .authorize(&name, &caller.path, caller.principal(), &msg)
    {
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

pub(crate) fn no_such_upstream(name: &str) -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        None,
        code::INVALID_REQUEST,
        &format!("no upstream named {name:?} is configured"),
    )
}

fn missing_session_id() -> Response {
    rpc_error(
        StatusCode::BAD_REQUEST,
        None,
        code::INVALID_REQUEST,
        "Bad Request: missing Mcp-Session-Id header",
    )
}

pub(crate) fn session_not_found(id: Option<Box<RawValue>>) -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        id,
        code::SESSION_NOT_FOUND,
        "Session not found: it ended, expired, or its upstream restarted; send initialize to start a new one",
    )
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
    caller: Caller,
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
        caller.principal().subject.clone(),
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

async fn get_stream(gw: Gateway, caller: Caller, req: Request) -> Response {
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

async fn delete(gw: Gateway, caller: Caller, req: Request) -> Response {
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
