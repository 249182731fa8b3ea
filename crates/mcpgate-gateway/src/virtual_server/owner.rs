//! Virtual sessions any replica can serve: a session client's id is sealed
//! at initialize ([`seal_id`]) with the internal address of the replica that
//! opened it. Its member sessions (stdio children among them) stay there, so
//! a replica that does not hold the session forwards the request to the
//! owner ([`locate`], then [`forward`]) as it does for an upstream's stdio
//! session (`front/adopt.rs`, `crate::forward`). The table stays the fast
//! path: an id is opened only when this process does not hold it.

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;
use mcpgate_types::{SessionId, Subject};

use super::session::VirtualSession;
use crate::error::GatewayError;
use crate::forward::send::{Forward, Held, send};
use crate::front::caller::AuthenticatedCaller;
use crate::front::request::header_str;
use crate::jsonrpc::Message;
use crate::protocol::SESSION_HEADER;
use crate::session_key::{VirtualClaims, random_session_id, unix_now};
use crate::state::Gateway;

/// Where the virtual session a request names is served.
pub(super) enum Located {
    /// In this process.
    Here(Arc<VirtualSession>),
    /// By the replica at this internal address.
    Owner(String),
}

/// The id for a virtual session of `server` initialized here.
pub(super) fn seal_id(gw: &Gateway, server: &str, subject: &Subject, version: &str) -> SessionId {
    let claims = VirtualClaims {
        server: server.to_owned(),
        subject: subject.clone(),
        version: version.to_owned(),
        created: unix_now(),
        owner: gw.shared.internal_advertise.clone(),
    };
    gw.shared.session_keys.seal_virtual(&claims).unwrap_or_else(|| {
        tracing::warn!(virtual_server = %server, "could not seal a virtual session id (no randomness); this session stays with this replica");
        random_session_id()
    })
}

/// The caller's virtual session of `server` that `Mcp-Session-Id` names:
/// held here, or by the replica the sealed id names. Anything else (an id
/// not sealed by the key, of another server or subject, too old, or whose
/// owner no longer holds it) is 404, so the client initializes again (MCP,
/// session management); the reason is logged, the id's contents never.
pub(super) fn locate(
    gw: &Gateway,
    server: &str,
    caller: &AuthenticatedCaller,
    headers: &HeaderMap,
) -> Result<Located, GatewayError> {
    let Some(id) = header_str(headers, SESSION_HEADER) else {
        return Err(GatewayError::InvalidRequest(
            "Bad Request: missing Mcp-Session-Id header; send the id returned by initialize (or initialize first)".into(),
        ));
    };
    let subject = caller.principal().subject();
    let held = gw.shared.virtual_sessions.get(id);
    if let Some(session) = held {
        if *session.server.name != *server || session.subject != *subject {
            tracing::info!(
                virtual_server = server,
                "refused a session id of another virtual server or another subject"
            );
            return Err(GatewayError::SessionNotFound);
        }
        session.touch();
        return Ok(Located::Here(session));
    }
    let claims = gw.shared.session_keys.open_virtual(id).map_err(|why| {
        tracing::info!(virtual_server = server, reason = %why, "an unknown virtual Mcp-Session-Id: 404");
        GatewayError::SessionNotFound
    })?;
    let refuse = |why: &str| {
        tracing::info!(
            virtual_server = server,
            reason = why,
            "refused a virtual session this replica does not hold: 404"
        );
        GatewayError::SessionNotFound
    };
    if claims.server != server {
        return Err(refuse("the session is another virtual server's"));
    }
    if claims.subject != *subject {
        return Err(refuse("the session belongs to another subject"));
    }
    let age = unix_now().saturating_sub(claims.created);
    if age > gw.shared.limits.session_max_age.as_secs() {
        return Err(refuse("the session is older than server.session_max_age"));
    }
    // One hop at most: a forwarded request is for a session held here.
    match claims.owner {
        _ if caller.forwarded => Err(refuse(
            "forwarded here, but this replica no longer holds it (ended by DELETE or idleness, or the replica restarted)",
        )),
        Some(owner) if Some(&owner) == gw.shared.internal_advertise.as_ref() => Err(refuse(
            "this replica opened it but no longer holds it (ended by DELETE or idleness, or the replica restarted)",
        )),
        Some(owner) => Ok(Located::Owner(owner)),
        None => Err(refuse(
            "it lives in the replica that opened it, which has no internal listener",
        )),
    }
}

/// One request for a virtual session `owner` holds (a POST's message, or
/// none for a GET or DELETE), sent there; its answer (JSON or an SSE stream)
/// is relayed as it comes. An owner that cannot be reached is gone with the
/// session: 404.
pub(super) async fn forward(
    gw: &Gateway,
    caller: &AuthenticatedCaller,
    owner: &str,
    server: &str,
    method: Method,
    headers: &HeaderMap,
    msg: Option<Message>,
) -> Response {
    let (body, id) = msg.map_or((Bytes::new(), None), |m| (m.to_bytes(), m.id));
    let fwd = Forward {
        owner,
        upstream: server,
        method,
        headers,
        body,
        id,
        held: Held::Session,
    };
    Box::pin(send(gw, caller, fwd)).await
}
