//! Opening a member session: the first request of a virtual session that
//! needs a member opens it through the member's own `Upstream::open`, with
//! the caller's identity at that member and the client's `initialize`
//! params, then relays what the member says outside requests to the
//! client's GET stream.

use std::sync::Arc;

use mcpgate_guard::Authorized;
use serde_json::value::RawValue;

use super::session::{Front, Opened, VirtualSession};
use crate::auth::Admitted;
use crate::error::GatewayError;
use crate::events::EventLog;
use crate::jsonrpc::{self, Message};
use crate::state::Gateway;

/// Member `idx` of session `s`, opened if this is the first request that needs it.
pub(super) async fn member(
    gw: &Gateway,
    s: &Arc<VirtualSession>,
    idx: usize,
    caller: &Admitted,
    proof: &Authorized,
) -> Result<Arc<Opened>, GatewayError> {
    let slot = s
        .slot(idx)
        .ok_or_else(|| GatewayError::UnknownUpstream(format!("member #{idx}")))?;
    if let (Some(o), _) = slot.live() {
        return Ok(o);
    }
    let _opening = slot.opening.lock().await;
    let (live, dead) = slot.live();
    if let Some(o) = live {
        return Ok(o);
    }
    if let Some(dead) = dead {
        tracing::info!(virtual_server = %s.server.name, member = %s.server.members[idx].name, reason = dead.link.gone().unwrap_or_default(), "a member session ended; opening a new one");
        dead.pump.abort();
        if s.front != Front::Stateless {
            dead.link.close().await;
        }
    }
    let o = Arc::new(open(s, gw, idx, caller, proof).await?);
    slot.set(o.clone());
    Ok(o)
}

async fn open(
    s: &Arc<VirtualSession>,
    gw: &Gateway,
    idx: usize,
    caller: &Admitted,
    proof: &Authorized,
) -> Result<Opened, GatewayError> {
    let member = &s.server.members[idx];
    let identity = gw.shared.guard.identity(caller, &member.name);
    if s.front == Front::Stateless {
        return open_shared(s, idx, proof, &identity).await;
    }
    // Listening before the link opens: nothing the member says first is lost.
    let log = EventLog::tapped(0, gw.shared.limits.replay_events);
    let Some(rx) = log.listen() else {
        return Err(GatewayError::UpstreamUnavailable(
            "the member's stream cannot be listened to".into(),
        ));
    };
    let link = member
        .upstream
        .open(log.clone(), &identity)
        .await
        .map_err(|e| GatewayError::from(&e))?;
    let init = Message::request(s.own_id(), "initialize", s.init_params());
    let (link, resp) = match crate::front::sessionful::initialize_link(
        &member.upstream,
        link,
        &log,
        init,
        member.timeout,
        &identity,
        proof,
    )
    .await
    {
        Ok(v) => v,
        Err((link, _)) => {
            link.close().await;
            let why = format!("member {} did not complete initialize", member.name);
            tracing::warn!(virtual_server = %s.server.name, member = %member.name, "{why}");
            return Err(GatewayError::UpstreamUnavailable(why));
        }
    };
    let Some(result) = resp.result.as_deref() else {
        link.close().await;
        let why = format!(
            "member {} refused initialize: {}",
            member.name,
            resp.error.as_deref().map_or("", RawValue::get)
        );
        tracing::warn!(virtual_server = %s.server.name, member = %member.name, "{why}");
        return Err(GatewayError::UpstreamUnavailable(why));
    };
    let parsed: serde_json::Value = serde_json::from_str(result.get()).unwrap_or_default();
    let version = jsonrpc::result_protocol_version(result)
        .unwrap_or_else(|| crate::protocol::DEFAULT_VERSION.to_owned());
    link.set_protocol_version(&version);
    link.send(
        proof,
        Message::notification("notifications/initialized", None),
    )
    .await
    .map_err(|e| GatewayError::from(&e))?;
    link.open_server_stream();
    let pump = relay(s, idx, Some(rx));
    tracing::debug!(virtual_server = %s.server.name, member = %member.name, %version, "member session opened");
    Ok(Opened {
        link: Arc::new(link),
        capabilities: parsed.get("capabilities").cloned().unwrap_or_default(),
        pump,
    })
}

/// A stateless client's member session: the gateway's own one for the
/// subject, already initialized (declaring every client capability; each
/// request's own `_meta` decides what reaches the client), the same the
/// member's own endpoint uses for 2026-07-28 clients.
async fn open_shared(
    s: &Arc<VirtualSession>,
    idx: usize,
    proof: &Authorized,
    identity: &crate::identity::Identity,
) -> Result<Opened, GatewayError> {
    let member = &s.server.members[idx];
    let link = member
        .upstream
        .open_stateless(proof, identity)
        .await
        .map_err(|e| GatewayError::from(&e))?;
    let init: serde_json::Value = link
        .init_result()
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    let pump = relay(s, idx, link.listen());
    tracing::debug!(virtual_server = %s.server.name, member = %member.name, "member session of stateless clients opened");
    Ok(Opened {
        link: Arc::new(link),
        capabilities: init.get("capabilities").cloned().unwrap_or_default(),
        pump,
    })
}

/// Relays what a member says outside requests to the session's server stream.
fn relay(
    s: &Arc<VirtualSession>,
    idx: usize,
    rx: Option<tokio::sync::broadcast::Receiver<Message>>,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(s);
    tokio::spawn(async move {
        let Some(mut rx) = rx else { return };
        loop {
            let m = match rx.recv().await {
                Ok(m) => m,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        skipped = n,
                        "a virtual server fell behind a member's stream"
                    );
                    continue;
                }
                Err(_) => break,
            };
            let Some(s) = weak.upgrade() else { break };
            let m = s.relayed_from(idx, m);
            s.server_stream.push(&m);
        }
    })
}
