//! A request routed to one member, answered to the client: one JSON body
//! when the member's response comes first, else an SSE stream that carries
//! the member's progress and questions (with ids of the virtual session's,
//! so answers find their member) up to the response. On the legacy front
//! everything goes to the session's one stream instead.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use mcpgate_guard::Authorized;
use serde_json::value::RawValue;

use super::session::{Front, Opened, VirtualSession};
use crate::error::GatewayError;
use crate::events::EventLog;
use crate::front::answer::Silence;
use crate::jsonrpc::{Kind, Message, code};
use crate::reply::{json, sse};
use crate::state::Gateway;
use crate::upstream::Exchange;

/// A virtual session's answer to one request, before it is written out.
pub(super) enum Reply {
    /// One message, with the status a Streamable HTTP client gets it with.
    One(StatusCode, Message),
    /// The gateway's error in place of an answer.
    Failed(GatewayError, Option<Box<RawValue>>),
    /// A stream that ends with the answer (on the legacy front: the
    /// session's own stream, already being written to).
    Stream(Arc<EventLog>),
}

impl Reply {
    pub(super) fn ok(m: Message) -> Reply {
        Reply::One(StatusCode::OK, m)
    }

    /// As a Streamable HTTP client gets it.
    pub(super) fn into_response(self) -> Response {
        match self {
            Reply::One(status, m) => json(status, &m),
            Reply::Failed(e, id) => e.answer(id),
            Reply::Stream(log) => sse(log.reader(Some(0))),
        }
    }

    /// As a legacy client gets it: on the session's stream.
    pub(super) fn onto(self, stream: &EventLog) {
        match self {
            Reply::One(_, m) => stream.push(&m),
            Reply::Failed(e, id) => stream.push(&e.message(id)),
            Reply::Stream(_) => {}
        }
    }
}

/// Sends `msg` (already in the member's names) to member `idx` and answers it.
pub(super) async fn respond(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    idx: usize,
    opened: Arc<Opened>,
    proof: &Authorized,
    msg: Message,
) -> Reply {
    let member = &session.server.members[idx];
    let id = msg.id.clone();
    let Some(key) = id.clone() else {
        return Reply::Failed(
            GatewayError::InvalidRequest("a request needs an id".into()),
            None,
        );
    };
    session.start(&key, idx);
    let deadline = tokio::time::Instant::now() + member.timeout;
    mcpgate_telemetry::note_upstream_sent();
    let mut ex = match opened.link.request(proof, msg).await {
        Ok(ex) => ex.until(gw.shared.stopping.stop_for(id.clone())),
        Err(e) => {
            session.finish(&key);
            mcpgate_telemetry::note_upstream_answered(true);
            return Reply::Failed(GatewayError::from(&e), id);
        }
    };
    let first = tokio::time::timeout_at(deadline, ex.recv()).await;
    mcpgate_telemetry::note_upstream_answered(!matches!(first, Ok(Some(_))));
    match first {
        Ok(Some(m)) if m.kind() == Some(Kind::Response) => {
            session.finish(&key);
            Reply::ok(m)
        }
        Ok(Some(m)) => {
            // The legacy front has one stream for everything.
            let legacy = session.front == Front::Legacy;
            let log = if legacy {
                session.server_stream.clone()
            } else {
                session.new_stream(gw.shared.limits.replay_events)
            };
            let silence = Silence {
                limit: member.timeout,
                waiting_on_client: m.kind() == Some(Kind::Request),
            };
            log.push(&session.relayed_from(idx, m));
            let s = session.clone();
            let answer = log.clone();
            tokio::spawn(async move {
                relay(&s, idx, &opened, ex, &answer, key, silence).await;
                if !legacy {
                    answer.close();
                }
            });
            Reply::Stream(log)
        }
        Ok(None) => {
            session.finish(&key);
            Reply::Failed(
                GatewayError::UpstreamUnavailable(format!(
                    "member {} closed the connection without answering",
                    member.name
                )),
                id,
            )
        }
        Err(_) => {
            session.finish(&key);
            opened.link.cancel(&key, "mcpgate: request timed out").await;
            Reply::Failed(
                GatewayError::UpstreamTimedOut(format!(
                    "member {} did not answer within {:?} (request_timeout)",
                    member.name, member.timeout
                )),
                id,
            )
        }
    }
}

/// Copies the rest of an exchange into its SSE log until the response.
async fn relay(
    session: &VirtualSession,
    idx: usize,
    opened: &Opened,
    mut ex: Exchange,
    log: &EventLog,
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
