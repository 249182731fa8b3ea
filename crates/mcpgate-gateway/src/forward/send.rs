//! The forwarding side: one request for a session another replica holds,
//! sent to that replica's internal listener, its answer (JSON or an SSE
//! stream) streamed back to the client as it comes.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, header};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::value::RawValue;

use super::pass::{self, Binding};
use crate::error::GatewayError;
use crate::front::caller::AuthenticatedCaller;
use crate::state::Gateway;

/// What the owner is told of the client's request; never its credentials.
const REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "traceparent",
    "tracestate",
];
/// What the client is told of the owner's answer.
const RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "mcp-session-id",
    "mcp-protocol-version",
    "www-authenticate",
    "x-accel-buffering",
];

/// One request the client sent about a session `owner` holds.
pub(crate) struct Forward<'a> {
    pub(crate) owner: &'a str,
    pub(crate) upstream: &'a str,
    pub(crate) method: Method,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: Bytes,
    /// The JSON-RPC id the client's request had (for an error answer).
    pub(crate) id: Option<Box<RawValue>>,
    /// What was forwarded, for the answer when the owner is gone.
    pub(crate) held: Held,
}

/// What the owner holds for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// A session (its child or legacy SSE connection).
    Session,
    /// A parked 2026-07-28 call.
    ParkedCall,
}

impl Held {
    /// The answer when the owner cannot be reached: what the client would
    /// get had the owner forgotten it.
    fn gone(self, id: Option<Box<RawValue>>) -> Response {
        match self {
            Held::Session => GatewayError::SessionNotFound.answer(id),
            Held::ParkedCall => GatewayError::InvalidParams(
                "requestState is unknown here or expired (the replica that held the call is gone); send the request again without it".into(),
            )
            .answer(id),
        }
    }
}

/// Sends `fwd` to its owner and answers with what the owner answered. An
/// owner that cannot be reached is gone with what it held: a session is 404,
/// so the client initializes again (MCP, session management).
pub(crate) async fn send(gw: &Gateway, caller: &AuthenticatedCaller, fwd: Forward<'_>) -> Response {
    let path = format!("/mcp/{}", fwd.upstream);
    let binding = Binding::of(&fwd.method, &path, fwd.headers);
    let Some(pass) = pass::issue(&gw.shared.session_keys, caller.principal(), &binding) else {
        tracing::warn!(
            upstream = fwd.upstream,
            "no randomness for a forwarding pass"
        );
        return GatewayError::UpstreamUnavailable(
            "the gateway cannot forward this request now".into(),
        )
        .answer(fwd.id);
    };
    let mut req = Request::builder()
        .method(fwd.method.clone())
        .uri(format!("http://{}{path}", fwd.owner));
    for name in REQUEST_HEADERS {
        for v in fwd.headers.get_all(*name) {
            req = req.header(*name, v);
        }
    }
    let req = match req
        .header(header::AUTHORIZATION, format!("Bearer {pass}"))
        .body(Full::new(fwd.body))
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(owner = fwd.owner, error = %e, "cannot forward to the replica that holds this session: 404");
            return GatewayError::SessionNotFound.answer(fwd.id);
        }
    };
    let resp = match gw.shared.forwarder.request(req).await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            tracing::info!(
                owner = fwd.owner,
                upstream = fwd.upstream,
                held = ?fwd.held,
                "the replica that holds this session is gone (connection refused or timed out): the client starts again"
            );
            return fwd.held.gone(fwd.id);
        }
        Err(e) => {
            tracing::warn!(owner = fwd.owner, upstream = fwd.upstream, error = %e, "the replica that holds this session failed to answer");
            return GatewayError::UpstreamUnavailable(
                "the replica that holds this session failed to answer".into(),
            )
            .answer(fwd.id);
        }
    };
    tracing::debug!(owner = fwd.owner, status = %resp.status(), "forwarded to the session's owner");
    let (parts, body) = resp.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = parts.status;
    for name in RESPONSE_HEADERS {
        for v in parts.headers.get_all(*name) {
            out.headers_mut().append(*name, HeaderValue::clone(v));
        }
    }
    out
}
