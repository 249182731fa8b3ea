//! A POST to a virtual server: `initialize` opens a virtual session (and no
//! member session yet), a request is routed (`route.rs`), a notification
//! goes to the members it concerns, and a client's answer goes back to the
//! member that asked.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_guard::Authorized;

use super::naming::VirtualServer;
use super::owner::Located;
use super::session::{Front, VirtualSession};
use crate::auth::Admitted;
use crate::error::GatewayError;
use crate::front::caller::AuthenticatedCaller;
use crate::front::request::{Post, authorize_post, header_str, read_post};
use crate::jsonrpc::{self, Kind, Message};
use crate::protocol::{
    GATEWAY_PROTOCOL_VERSION, LEGACY_SSE_VERSION, MODERN_VERSION, SESSION_HEADER,
    SUPPORTED_VERSIONS, VERSION_HEADER,
};
use crate::reply::json;
use crate::state::Gateway;

pub(super) async fn post(
    gw: Gateway,
    server: Arc<VirtualServer>,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    let Post { headers, msg, kind } = match read_post(req, gw.shared.limits.max_body_bytes).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let session_id = header_str(&headers, SESSION_HEADER);
    if session_id.is_none() && header_str(&headers, VERSION_HEADER) == Some(MODERN_VERSION) {
        let post = Post { headers, msg, kind };
        return super::stateless::post(gw, server, caller, post).await;
    }
    let (msg, proof) = match authorize_post(&gw, &server.name, &caller, msg, session_id).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if kind == Kind::Request && msg.method.as_deref() == Some("initialize") {
        return initialize(&gw, server, &caller.authed, msg);
    }
    let session = match super::owner::locate(&gw, &server.name, &caller, &headers) {
        Ok(Located::Here(s)) => s,
        Ok(Located::Owner(owner)) => {
            let (name, msg) = (&server.name, Some(msg));
            return super::owner::forward(&gw, &caller, &owner, name, Method::POST, &headers, msg)
                .await;
        }
        Err(e) => return e.answer(msg.id),
    };
    let caller = caller.authed;
    match kind {
        Kind::Request => super::route::request(&gw, &session, &caller, &proof, msg)
            .await
            .into_response(),
        Kind::Notification => notification(&session, &proof, msg).await,
        Kind::Response => answer(&session, &proof, msg).await,
    }
}

/// Answered here from what the virtual server offers; the members are
/// initialized with the client's own params when first needed.
fn initialize(
    gw: &Gateway,
    server: Arc<VirtualServer>,
    caller: &Admitted,
    msg: Message,
) -> Response {
    let requested = jsonrpc::requested_protocol_version(msg.params.as_deref());
    let version = requested
        .filter(|v| {
            SUPPORTED_VERSIONS.contains(&v.as_str())
                && v != MODERN_VERSION
                && v != LEGACY_SSE_VERSION
        })
        .unwrap_or_else(|| GATEWAY_PROTOCOL_VERSION.to_owned());
    let result = super::about::initialize_result(&server, &version);
    let subject = caller.principal().subject();
    let id = super::owner::seal_id(gw, &server.name, subject, &version);
    let session = VirtualSession::new(
        id,
        gw.shared.limits.replay_events,
        server,
        subject.clone(),
        msg.params.clone(),
        Front::Sessions,
    );
    // Anonymous callers share one subject: like other sessions, not capped.
    let cap = if caller.principal().is_anonymous() {
        0
    } else {
        gw.shared.limits.max_sessions_per_subject
    };
    if let Err(why) = gw
        .shared
        .virtual_sessions
        .insert_within(session.clone(), cap)
    {
        tracing::warn!(virtual_server = %session.server.name, subject = %session.subject.as_str(), "refused a virtual session: the subject is at server.max_sessions_per_subject");
        return GatewayError::SubjectLimit(why).answer(msg.id);
    }
    tracing::debug!(virtual_server = %session.server.name, %version, "virtual session opened");
    let id = msg.id.unwrap_or_else(jsonrpc::null_id);
    let mut r = json(
        StatusCode::OK,
        &Message::response(id, jsonrpc::raw(&result)),
    );
    if let Ok(v) = HeaderValue::try_from(session.id.as_str()) {
        r.headers_mut().insert(SESSION_HEADER, v);
    }
    r
}

/// A cancellation goes to the member the request went to; `initialized` was
/// sent to each member when it was opened; anything else (roots changed…)
/// to every member opened so far.
pub(super) async fn notification(
    session: &VirtualSession,
    proof: &Authorized,
    msg: Message,
) -> Response {
    match msg.method.as_deref() {
        Some("notifications/initialized") => {}
        Some("notifications/cancelled") => {
            let target = jsonrpc::cancelled_request_id(msg.params.as_deref())
                .and_then(|id| session.in_flight(&id));
            if let Some((_, opened)) = session
                .opened()
                .into_iter()
                .find(|(i, _)| Some(*i) == target)
            {
                let _ = opened.link.send(proof, msg).await;
            }
        }
        _ => {
            for (_, opened) in session.opened() {
                let _ = opened.link.send(proof, msg.clone()).await;
            }
        }
    }
    StatusCode::ACCEPTED.into_response()
}

/// The client's answer to a member's question (sampling, elicitation, roots).
pub(super) async fn answer(
    session: &VirtualSession,
    proof: &Authorized,
    mut msg: Message,
) -> Response {
    let asked = msg.id.as_deref().and_then(|id| session.answered(id));
    let Some((idx, theirs)) = asked else {
        tracing::info!(virtual_server = %session.server.name, "dropped a response to no question a member asked in this session");
        return StatusCode::ACCEPTED.into_response();
    };
    msg.id = Some(theirs);
    if let Some((_, opened)) = session.opened().into_iter().find(|(i, _)| *i == idx)
        && let Err(e) = opened.link.send(proof, msg).await
    {
        return GatewayError::from(&e).answer(None);
    }
    StatusCode::ACCEPTED.into_response()
}
