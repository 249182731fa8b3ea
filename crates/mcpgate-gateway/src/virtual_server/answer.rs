//! A request routed to one member, answered to the client: one JSON body
//! when the member's response comes first, else an SSE stream that carries
//! the member's progress and questions (with ids of the virtual session's,
//! so answers find their member) up to the response.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use mcpgate_guard::Authorized;
use serde_json::value::RawValue;

use super::session::{Opened, VirtualSession};
use crate::error::GatewayError;
use crate::front::answer::Silence;
use crate::jsonrpc::{Kind, Message, code};
use crate::reply::{json, sse};
use crate::state::Gateway;
use crate::upstream::Exchange;

/// Sends `msg` (already in the member's names) to member `idx` and answers it.
pub(super) async fn respond(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    idx: usize,
    opened: Arc<Opened>,
    proof: &Authorized,
    msg: Message,
) -> Response {
    let member = &session.server.members[idx];
    let id = msg.id.clone();
    let Some(key) = id.clone() else {
        return GatewayError::InvalidRequest("a request needs an id".into()).answer(None);
    };
    session.start(&key, idx);
    let deadline = tokio::time::Instant::now() + member.timeout;
    mcpgate_telemetry::note_upstream_sent();
    let mut ex = match opened.link.request(proof, msg).await {
        Ok(ex) => ex.until(gw.shared.stopping.stop_for(id.clone())),
        Err(e) => {
            session.finish(&key);
            mcpgate_telemetry::note_upstream_answered(true);
            return GatewayError::from(&e).answer(id);
        }
    };
    let first = tokio::time::timeout_at(deadline, ex.recv()).await;
    mcpgate_telemetry::note_upstream_answered(!matches!(first, Ok(Some(_))));
    match first {
        Ok(Some(m)) if m.kind() == Some(Kind::Response) => {
            session.finish(&key);
            json(StatusCode::OK, &m)
        }
        Ok(Some(m)) => {
            let log = session.new_stream(gw.shared.limits.replay_events);
            let silence = Silence {
                limit: member.timeout,
                waiting_on_client: m.kind() == Some(Kind::Request),
            };
            log.push(&session.relayed_from(idx, m));
            let reader = log.reader(Some(0));
            let s = session.clone();
            tokio::spawn(async move {
                relay(&s, idx, &opened, ex, &log, key, silence).await;
                log.close();
            });
            sse(reader)
        }
        Ok(None) => {
            session.finish(&key);
            GatewayError::UpstreamUnavailable(format!(
                "member {} closed the connection without answering",
                member.name
            ))
            .answer(id)
        }
        Err(_) => {
            session.finish(&key);
            opened.link.cancel(&key, "mcpgate: request timed out").await;
            GatewayError::UpstreamTimedOut(format!(
                "member {} did not answer within {:?} (request_timeout)",
                member.name, member.timeout
            ))
            .answer(id)
        }
    }
}

/// Copies the rest of an exchange into its SSE log until the response.
async fn relay(
    session: &VirtualSession,
    idx: usize,
    opened: &Opened,
    mut ex: Exchange,
    log: &crate::events::EventLog,
    key: Box<RawValue>,
    mut silence: Silence,
) {
    loop {
        match silence.next(&mut ex).await {
            Ok(Some(m)) => {
                let done = m.kind() == Some(Kind::Response);
                log.push(&session.relayed_from(idx, m));
                if done {
                    break;
                }
            }
            Ok(None) => {
                let why = "the member closed the stream before answering";
                log.push(&Message::error(
                    Some(key.clone()),
                    code::UPSTREAM_ERROR,
                    why,
                ));
                break;
            }
            Err(()) => {
                let why = silence.message();
                tracing::warn!(virtual_server = %session.server.name, member = %session.server.members[idx].name, "{why}");
                opened.link.cancel(&key, "mcpgate: request timed out").await;
                log.push(&Message::error(
                    Some(key.clone()),
                    code::UPSTREAM_TIMEOUT,
                    &why,
                ));
                break;
            }
        }
    }
    session.finish(&key);
}
