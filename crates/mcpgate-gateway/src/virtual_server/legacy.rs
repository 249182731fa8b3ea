//! Legacy HTTP+SSE clients (2024-11-05) of a virtual server: the GET at
//! `/mcp/<name>/sse` opens a virtual session whose one stream carries every
//! answer and everything the members say; POSTs to the `endpoint` event's
//! URL are accepted at once and routed like a session client's requests.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use serde_json::value::RawValue;

use super::session::{Front, VirtualSession};
use crate::error::GatewayError;
use crate::front::caller::AuthenticatedCaller;
use crate::front::request::{parse_body, read_body};
use crate::jsonrpc::{self, Kind, Message};
use crate::protocol::{
    GATEWAY_PROTOCOL_VERSION, LEGACY_SSE_VERSION, MODERN_VERSION, SUPPORTED_VERSIONS,
};
use crate::state::Gateway;

/// GET `/mcp/<name>/sse` of virtual server `name`: a virtual session and its stream.
pub(crate) async fn open(
    gw: Gateway,
    name: Arc<str>,
    messages_path: String,
    caller: AuthenticatedCaller,
) -> Response {
    let Some(server) = gw.shared.virtuals.get(&*name).cloned() else {
        return GatewayError::UnknownUpstream(name.to_string()).answer(None);
    };
    let principal = caller.principal();
    // Not sealed: its one stream, which carries every answer, lives here (as
    // an upstream's legacy session does).
    let session = VirtualSession::new(
        crate::session_key::random_session_id(),
        gw.shared.limits.replay_events,
        server,
        principal.subject().clone(),
        None,
        Front::Legacy,
    );
    // Anonymous callers share one subject: like other sessions, not capped.
    let cap = if principal.is_anonymous() {
        0
    } else {
        gw.shared.limits.max_sessions_per_subject
    };
    if let Err(why) = gw
        .shared
        .virtual_sessions
        .insert_within(session.clone(), cap)
    {
        tracing::warn!(virtual_server = %name, subject = %session.subject.as_str(), "refused a virtual session: the subject is at server.max_sessions_per_subject");
        return GatewayError::SubjectLimit(why).answer(None);
    }
    let log = session.server_stream.clone();
    tracing::debug!(virtual_server = %name, "legacy SSE virtual session opened");
    let endpoint = format!("{messages_path}?session_id={}", session.id);
    crate::front::legacy::session_stream(log, &endpoint, async move {
        gw.shared.virtual_sessions.remove(&session.id);
        session.close().await;
    })
}

/// POST `/mcp/<name>/messages?session_id=…`: accepted at once; the answer
/// goes to the session's stream.
pub(crate) async fn message(
    gw: Gateway,
    session: Arc<VirtualSession>,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    if session.subject != *caller.principal().subject() {
        tracing::info!(virtual_server = %session.server.name, "refused a session id of another subject");
        return GatewayError::SessionNotFound.answer(None);
    }
    session.touch();
    let body = match read_body(req, gw.shared.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (msg, kind) = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let server = session.server.name.clone();
    mcpgate_telemetry::note_mcp(
        &server,
        msg.method.as_deref(),
        msg.id.as_deref().map(RawValue::get),
        Some(session.id.as_str()),
        msg.params.as_deref().map(RawValue::get),
    );
    let msg = Message {
        params: mcpgate_telemetry::trace::inject_meta_raw(msg.method.as_deref(), msg.params),
        ..msg
    };
    let (proof, msg) =
        match crate::front::legacy::admit(&gw, &server, &caller, msg, &session.server_stream).await
        {
            Ok(v) => v,
            Err(r) => return r,
        };
    let caller = caller.authed;
    match kind {
        Kind::Request if msg.method.as_deref() == Some("initialize") => {
            session.set_init_params(for_members(msg.params.as_deref()));
            // The transport is 2024-11-05's; the protocol may be newer (and
            // elicitation, say, exists only from 2025-06-18 on).
            let version = jsonrpc::requested_protocol_version(msg.params.as_deref())
                .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()) && v != MODERN_VERSION)
                .unwrap_or_else(|| LEGACY_SSE_VERSION.to_owned());
            let result = super::about::initialize_result(&session.server, &version);
            let id = msg.id.unwrap_or_else(jsonrpc::null_id);
            session
                .server_stream
                .push(&Message::response(id, jsonrpc::raw(&result)));
            StatusCode::ACCEPTED.into_response()
        }
        Kind::Request => {
            tokio::spawn(async move {
                let reply = super::route::request(&gw, &session, &caller, &proof, msg).await;
                reply.onto(&session.server_stream);
            });
            StatusCode::ACCEPTED.into_response()
        }
        Kind::Notification => super::post::notification(&session, &proof, msg).await,
        Kind::Response => super::post::answer(&session, &proof, msg).await,
    }
}

/// The legacy client's `initialize` params as the members get them: the
/// members are Streamable HTTP or stdio servers the gateway speaks to in
/// its own version, so only the client's capabilities and info are kept.
fn for_members(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    let mut p: serde_json::Map<String, Value> = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    p.insert("protocolVersion".into(), GATEWAY_PROTOCOL_VERSION.into());
    Some(jsonrpc::raw(&p))
}
