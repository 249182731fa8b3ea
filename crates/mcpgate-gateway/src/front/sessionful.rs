//! Streamable HTTP with sessions (2025-03-26, 2025-06-18, 2025-11-25):
//! POST messages, GET the server stream, DELETE the session.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use mcpgate_guard::Authorized;
use serde_json::value::RawValue;

use super::adopt::Located;
use super::answer::Answer;
use super::caller::AuthenticatedCaller;
use super::era::{Endpoint, SessionMethod};
use super::request::{Post, accepts, authorize_post, header_str, read_post};
use crate::config::HttpTransport;
use crate::error::GatewayError;
use crate::events::{EventLog, parse_event_id, upstream_part};
use crate::forward::send::Forward;
use crate::identity::Identity;
use crate::jsonrpc::{self, Kind, Message};
use crate::protocol::{DEFAULT_VERSION, SESSION_HEADER};
use crate::reply::{json, sse};
use crate::rewrite::keep;
use crate::session::Session;
use crate::session_key::EventPosition;
use crate::state::Gateway;
use crate::upstream::{Link, Upstream, UpstreamError};

/// A request of the sessionful era.
pub(crate) async fn serve(
    gw: Gateway,
    endpoint: Endpoint,
    method: SessionMethod,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    match method {
        SessionMethod::Post => match read_post(req, gw.shared.limits.max_body_bytes).await {
            Ok(p) => post(gw, endpoint, caller, p).await,
            Err(r) => r,
        },
        SessionMethod::Get => get_stream(gw, &endpoint.name, caller, req).await,
        SessionMethod::Delete => delete(gw, &endpoint.name, caller, req).await,
    }
}

// Shaped like the stateless era's `post`; why the two stay apart is said there.
async fn post(
    gw: Gateway,
    endpoint: Endpoint,
    caller: AuthenticatedCaller,
    post: Post,
) -> Response {
    let Post { headers, msg, kind } = post;
    let Endpoint { name, upstream, .. } = endpoint;
    let session_id = header_str(&headers, SESSION_HEADER);
    let (msg, proof) = match authorize_post(&gw, &name, &caller, msg, session_id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if kind == Kind::Request && msg.method.as_deref() == Some("initialize") {
        // Boxed, like the other rare branches: a future is as large as its
        // largest branch, and each layer that boxes it copies it whole.
        return Box::pin(initialize(gw, name, upstream, msg, caller, proof)).await;
    }
    let Some(session_id) = session_id else {
        return GatewayError::InvalidRequest("Bad Request: missing Mcp-Session-Id header; send the id returned by initialize (or initialize first)".into()).answer(msg.id);
    };
    let session = match super::adopt::locate(&gw, &caller, session_id).await {
        Ok(Located::Here(s)) => s,
        Ok(Located::Owner(owner)) => {
            let fwd = Forward {
                owner: &owner,
                upstream: &name,
                method: Method::POST,
                headers: &headers,
                body: msg.to_bytes(),
                id: msg.id,
                held: crate::forward::send::Held::Session,
            };
            return Box::pin(crate::forward::send::send(&gw, &caller, fwd)).await;
        }
        Err(e) => return e.answer(msg.id),
    };
    if *session.upstream_name != *name {
        return GatewayError::SessionNotFound.answer(msg.id);
    }
    match kind {
        Kind::Request => {
            let timeout = gw.timeout_for(&name);
            let deadline = tokio::time::Instant::now() + timeout;
            let id = msg.id.clone();
            let msg_method = msg.method.clone();
            mcpgate_telemetry::note_upstream_sent();
            let ex = match session.link.request(&proof, msg).await {
                Ok(ex) => ex.until(gw.shared.stopping.stop_for(id.clone())),
                Err(e) => {
                    mcpgate_telemetry::note_upstream_answered(true);
                    return link_failed(&gw, &session, &e, id).await;
                }
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
                modern: false,
            };
            let s = session.clone();
            answer
                .respond(id, ex, move || {
                    let log = s.new_stream();
                    super::adopt::carry_upstream_ids(&gw, &s.id, &s.link, &log, Some(method));
                    if s.wants_priming() {
                        log.push_priming();
                    }
                    log
                })
                .await
        }
        Kind::Notification | Kind::Response => match session.link.send(&proof, msg).await {
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
        return GatewayError::SessionNotFound.answer(id);
    }
    GatewayError::from(e).answer(id)
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
    proof: &Authorized,
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
    let ex = match link.request(proof, msg.clone()).await {
        Err(UpstreamError::NotStreamable) => {
            if let Upstream::Http(h) = upstream {
                tracing::info!(upstream = %h.name, "the URL refused Streamable HTTP; using the legacy SSE transport");
                h.set_transport(HttpTransport::Sse);
            }
            link.close().await;
            link = match upstream.open(log.clone(), identity).await {
                Ok(l) => l,
                Err(e) => return Err((link, GatewayError::from(&e).answer(id))),
            };
            link.set_capabilities(msg.params.as_deref());
            link.request(proof, msg).await
        }
        other => other,
    };
    let mut ex = match ex {
        Ok(ex) => ex,
        Err(e) => return Err((link, GatewayError::from(&e).answer(id))),
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
                GatewayError::UpstreamUnavailable(why.to_string()).answer(id),
            ))
        }
        Err(_) => Err((
            link,
            GatewayError::UpstreamTimedOut(format!(
                "the upstream did not answer initialize within {timeout:?}"
            ))
            .answer(id),
        )),
    }
}

async fn initialize(
    gw: Gateway,
    name: Arc<str>,
    upstream: Arc<Upstream>,
    msg: Message,
    caller: AuthenticatedCaller,
    proof: Authorized,
) -> Response {
    let log = EventLog::new(0, gw.shared.limits.replay_events, None);
    let identity = gw.shared.guard.identity(&caller.authed, &name);
    // Held until the session is in the table (or the initialize failed).
    let _place = match gw.shared.sessions.reserve(
        identity.on_behalf_of.subject.as_deref(),
        gw.shared.limits.max_sessions_per_subject,
    ) {
        Ok(p) => p,
        Err(e) => return GatewayError::from(&e).answer(msg.id),
    };
    // Starting a child or connecting is the upstream's time, not the gateway's.
    mcpgate_telemetry::note_upstream_sent();
    let link = match upstream.open(log.clone(), &identity).await {
        Ok(l) => l,
        Err(e) => return GatewayError::from(&e).answer(msg.id),
    };
    let timeout = gw.timeout_for(&name);
    let initialized = initialize_link(&upstream, link, &log, msg, timeout, &identity, &proof).await;
    mcpgate_telemetry::note_upstream_answered(initialized.is_err());
    let (link, resp) = match initialized {
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
    let subject = caller.principal().subject().clone();
    let id = super::adopt::seal_id(&gw, &name, &link, &subject, &version);
    super::adopt::carry_upstream_ids(&gw, &id, &link, &log, None);
    let session = Session::new(
        id,
        name,
        subject,
        link,
        log,
        version.clone(),
        gw.shared.limits.replay_events,
    );
    session.set_protocol_version(&version);
    gw.shared.sessions.insert(session.clone());
    tracing::debug!(upstream = %session.upstream_name, %version, "session opened");
    let mut r = json(StatusCode::OK, &resp);
    if let Ok(v) = HeaderValue::try_from(session.id.as_str()) {
        r.headers_mut().insert(SESSION_HEADER, v);
    }
    r
}

async fn get_stream(
    gw: Gateway,
    upstream: &str,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    let headers = req.headers();
    if !accepts(headers, "text/event-stream") {
        return GatewayError::NotAcceptable("Not Acceptable: a GET opens a server-sent event stream; send Accept: text/event-stream").answer(None);
    }
    let session = match owned_session(&gw, &caller, headers).await {
        Ok(Located::Here(s)) => s,
        Ok(Located::Owner(owner)) => {
            return forward_bodiless(&gw, &caller, &owner, upstream, Method::GET, headers).await;
        }
        Err(e) => return e.answer(None),
    };
    let last = header_str(headers, "last-event-id");
    let resume = last.and_then(parse_event_id).and_then(|id| {
        session
            .find_stream(id.stream)
            .filter(|l| l.issued(&id))
            .map(|l| (l, id.seq))
    });
    let (log, after, from_upstream): (_, _, Option<String>) = match resume {
        Some((log, seq)) => (log, Some(seq), None),
        None => match last.map(|l| upstream_position(&gw, &session, l)) {
            Some(Ok((Stream::Answer, up))) => match resume_answer(&gw, &session, &caller, up).await
            {
                Ok(r) => return r,
                Err(why) => {
                    tracing::info!(upstream = %session.upstream_name, reason = %why, "Last-Event-ID names a POST answer stream this replica does not hold, and the upstream did not resume it: opening the session's server stream without replay");
                    (session.server_stream.clone(), None, None)
                }
            },
            Some(Ok((Stream::Server, up))) => {
                tracing::info!(upstream = %session.upstream_name, "Last-Event-ID names a stream this replica does not hold: resuming the upstream's stream from the position it carries");
                let log = session.server_stream.clone();
                // What the log holds already came before the position the client names.
                (log.clone(), Some(log.last_seq()), Some(up.upstream_id))
            }
            Some(Err(why)) => {
                // Nothing to replay here, and nothing from another stream
                // is; the spec's answer is the stream without replay (MCP,
                // resumability: the server MAY replay).
                tracing::info!(upstream = %session.upstream_name, reason = why, "Last-Event-ID names a stream this replica does not hold: opening the session's server stream without replay");
                (session.server_stream.clone(), None, None)
            }
            None => (session.server_stream.clone(), None, None),
        },
    };
    let is_server_stream = log.stream_id() == 0;
    let generation = if is_server_stream {
        session.claim_get()
    } else {
        0
    };
    // A stream resumed from the upstream's position is the session's server
    // stream from now on: a later GET without an id does not get it again.
    let track = after.is_none() || from_upstream.is_some();
    if let Some(up) = from_upstream {
        // The priming event carries the client's position on: resuming
        // from it elsewhere starts from the same place.
        log.note_upstream_id(&up);
        if session.wants_priming() {
            log.push_priming();
        }
        session.link.resume_server_stream(up);
    } else if is_server_stream {
        session.link.open_server_stream();
        if after.is_none() && session.wants_priming() {
            log.push_priming();
        }
    }
    let guard = ListenGuard::new(session.clone());
    let s = session.clone();
    let frames = log
        .reader_from(after, track)
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

/// Which kind of stream an event id names.
enum Stream {
    /// The session's GET stream.
    Server,
    /// The SSE answer to one POST.
    Answer,
}

/// The upstream position a `Last-Event-ID` from another replica carries, or
/// why it cannot be resumed from.
fn upstream_position(
    gw: &Gateway,
    session: &Session,
    last: &str,
) -> Result<(Stream, EventPosition), &'static str> {
    let Some(id) = parse_event_id(last) else {
        return Err("it is not an event id this gateway hands out");
    };
    let stream = if id.stream == 0 {
        Stream::Server
    } else {
        Stream::Answer
    };
    let Some(sealed) = upstream_part(last) else {
        return Err(
            "it carries no upstream position (the upstream sets no SSE event ids, or had sent nothing on the stream yet)",
        );
    };
    if !session.link.is_portable() {
        return Err("the session's upstream has no stream to resume");
    }
    gw.shared
        .session_keys
        .open_event(&session.id, sealed)
        .map(|up| (stream, up))
        .map_err(|_| "its upstream position was not handed out in this session")
}

/// A POST answer stream resumed from the upstream's position `up` into a
/// new stream of this replica's, whose ids are its own; its response is
/// rewritten as the replica that answered the POST rewrote it.
async fn resume_answer(
    gw: &Gateway,
    session: &Arc<Session>,
    caller: &AuthenticatedCaller,
    up: EventPosition,
) -> Result<Response, String> {
    let method = up.method.unwrap_or_default();
    let rewrite = gw
        .shared
        .guard
        .list_filter(&session.upstream_name, caller.principal(), &method)
        .unwrap_or_else(keep);
    let log = session.new_stream();
    super::adopt::carry_upstream_ids(gw, &session.id, &session.link, &log, Some(method));
    log.note_upstream_id(&up.upstream_id);
    if session.wants_priming() {
        log.push_priming();
    }
    session
        .link
        .resume_answer(&up.upstream_id, log.clone(), rewrite)
        .await?;
    tracing::info!(upstream = %session.upstream_name, "Last-Event-ID names a POST answer stream this replica does not hold: resuming it from the upstream's position it carries");
    Ok(sse(log.reader(Some(0))))
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

async fn delete(
    gw: Gateway,
    upstream: &str,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    let session = match owned_session(&gw, &caller, req.headers()).await {
        Ok(Located::Here(s)) => s,
        Ok(Located::Owner(owner)) => {
            return forward_bodiless(
                &gw,
                &caller,
                &owner,
                upstream,
                Method::DELETE,
                req.headers(),
            )
            .await;
        }
        Err(e) => return e.answer(None),
    };
    gw.shared.sessions.remove(&session.id);
    session.close().await;
    // Other replicas that continued it would keep it (and its upstream
    // connection) until it is idle.
    gw.shared.sessions.announce_end(&session);
    tracing::debug!(upstream = %session.upstream_name, "session deleted by the client");
    StatusCode::OK.into_response()
}

/// The session a GET or DELETE names, if it exists for this caller.
async fn owned_session(
    gw: &Gateway,
    caller: &AuthenticatedCaller,
    headers: &HeaderMap,
) -> Result<Located, GatewayError> {
    let Some(session_id) = header_str(headers, SESSION_HEADER) else {
        return Err(GatewayError::InvalidRequest(
            "Bad Request: missing Mcp-Session-Id header".into(),
        ));
    };
    super::adopt::locate(gw, caller, session_id).await
}

/// A GET or DELETE for a session `owner` holds, sent there.
async fn forward_bodiless(
    gw: &Gateway,
    caller: &AuthenticatedCaller,
    owner: &str,
    upstream: &str,
    method: Method,
    headers: &HeaderMap,
) -> Response {
    let fwd = Forward {
        owner,
        upstream,
        method,
        headers,
        body: bytes::Bytes::new(),
        id: None,
        held: crate::forward::send::Held::Session,
    };
    crate::forward::send::send(gw, caller, fwd).await
}
