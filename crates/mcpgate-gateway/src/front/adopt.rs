//! Sessions any replica can serve: the id of a new session is sealed at
//! initialize ([`seal_id`]), and a request whose id this process does not hold
//! is opened and, for a Streamable HTTP upstream, continued on a connection of
//! this replica's own ([`locate`]); a stdio or legacy SSE session lives with
//! its owner, so its requests are forwarded there (`crate::forward`).
//! Sealing and opening stay off the path of a session this process holds.

use std::sync::Arc;

use super::caller::AuthenticatedCaller;
use mcpgate_types::{SessionId, Subject};

use crate::error::GatewayError;
use crate::events::{EventLog, UpstreamIds};
use crate::session::Session;
use crate::session_key::{Carrier, EventPosition, SessionClaims, random_session_id, unix_now};
use crate::state::Gateway;
use crate::upstream::Link;

/// The id for a session just initialized on `link`.
pub(crate) fn seal_id(
    gw: &Gateway,
    upstream: &str,
    link: &Link,
    subject: &Subject,
    version: &str,
) -> SessionId {
    let claims = SessionClaims {
        upstream: upstream.to_owned(),
        carrier: if link.is_portable() {
            Carrier::Http
        } else {
            Carrier::Local
        },
        upstream_session: link.upstream_session_id(),
        subject: subject.clone(),
        version: version.to_owned(),
        created: unix_now(),
        owner: if link.is_portable() {
            None
        } else {
            gw.shared.internal_advertise.clone()
        },
    };
    gw.shared.session_keys.seal(&claims).unwrap_or_else(|| {
        tracing::warn!(%upstream, "could not seal a session id (no randomness); this session stays with this replica");
        random_session_id()
    })
}

/// Lets the server stream of session `id` (on a portable link) carry the
/// upstream's event ids, so another replica can resume the upstream's stream
/// where the client stopped (`front::sessionful`).
///
/// The upstream id is sealed, bound to the session id, rather than carried in
/// the clear: the gateway sends whatever the client presents to the upstream
/// as `Last-Event-ID`, and an upstream whose event store is shared by its
/// sessions (the SDKs' example stores are) and whose ids can be guessed
/// (counters) would replay another session's events, maybe another user's, to
/// a client that made one up. Sealed, a client can only resume from a
/// position this session was handed; and the upstream's ids, which may name
/// its internal streams, stay opaque.
///
/// `method` is the request's, for a POST's answer stream: the resuming replica
/// rewrites the answer as this one does (policy's list filters).
pub(crate) fn carry_upstream_ids(
    gw: &Gateway,
    id: &SessionId,
    link: &Link,
    log: &EventLog,
    method: Option<String>,
) {
    if !link.is_portable() {
        return;
    }
    let keys = gw.shared.session_keys.clone();
    let session = id.clone();
    log.carry_upstream_ids(UpstreamIds(Box::new(move |up| {
        let position = EventPosition {
            upstream_id: up.to_owned(),
            method: method.clone(),
        };
        keys.seal_event(&session, &position)
    })));
}

/// Where the session a request names is served.
pub(crate) enum Located {
    /// In this process (opened or adopted here).
    Here(Arc<Session>),
    /// By the replica at this internal address, which holds its child.
    Owner(String),
}

/// The session `id` (the client's `Mcp-Session-Id`) names, if the caller may
/// use it: the one in this process's table, else one another replica opened
/// (adopted here, or served by its owner). An id outside visible ASCII is no
/// id this gateway handed out: 404, like any unknown one.
pub(crate) async fn locate(
    gw: &Gateway,
    caller: &AuthenticatedCaller,
    id: &str,
) -> Result<Located, GatewayError> {
    // Looked up as text: the table holds only checked ids, so the id is parsed
    // (into a new `String`) only when this process does not hold it.
    match gw.shared.sessions.get(id) {
        Some(s) if caller.owns(&s) => Ok(Located::Here(s)),
        Some(_) => Err(GatewayError::SessionNotFound),
        None => {
            let id = id.parse::<SessionId>().map_err(|why| {
                tracing::info!(reason = %why, "an Mcp-Session-Id that is no session id: 404");
                GatewayError::SessionNotFound
            })?;
            Box::pin(adopt(gw, caller, &id)).await
        }
    }
}

/// Opens a sealed id this process does not hold and continues its upstream
/// session here. Anything it cannot continue is 404, so the client
/// initializes again (MCP, session management); the reason is logged, the
/// id's contents never.
async fn adopt(
    gw: &Gateway,
    caller: &AuthenticatedCaller,
    id: &SessionId,
) -> Result<Located, GatewayError> {
    let claims = gw.shared.session_keys.open(id.as_str()).map_err(|why| {
        tracing::info!(reason = %why, "an unknown Mcp-Session-Id: 404");
        GatewayError::SessionNotFound
    })?;
    let refuse = |why: &str| {
        tracing::info!(upstream = %claims.upstream, reason = why, "refused to continue a session this replica does not hold: 404");
        GatewayError::SessionNotFound
    };
    let age = unix_now().saturating_sub(claims.created);
    if age > gw.shared.limits.session_max_age.as_secs() {
        return Err(refuse("the session is older than server.session_max_age"));
    }
    if claims.subject != *caller.principal().subject() {
        return Err(refuse("the session belongs to another subject"));
    }
    if claims.carrier != Carrier::Http {
        // One hop at most: a forwarded request is for a session held here.
        return match claims.owner {
            _ if caller.forwarded => Err(refuse(
                "forwarded here, but this replica no longer holds it (its child ended, or the replica restarted)",
            )),
            Some(owner) if Some(&owner) == gw.shared.internal_advertise.as_ref() => Err(refuse(
                "this replica opened it but no longer holds it (its child ended, or the replica restarted)",
            )),
            Some(owner) => Ok(Located::Owner(owner)),
            None => Err(refuse(
                "its upstream connection (a stdio child or legacy SSE) lives in the replica that opened it, which has no internal listener",
            )),
        };
    }
    let Some((name, upstream)) = gw.upstream(&claims.upstream) else {
        return Err(refuse("its upstream is no longer configured"));
    };
    let identity = gw.shared.guard.identity(&caller.authed, &name);
    // No place is reserved: the session was counted against its subject's
    // cap where it was initialized (`SessionTable::reserve`).
    let log = EventLog::new(0, gw.shared.limits.replay_events, None);
    let link = upstream
        .open(log.clone(), &identity)
        .await
        .map_err(|e| GatewayError::from(&e))?;
    if !link.is_portable()
        || link
            .adopt(claims.upstream_session.as_ref(), &claims.version)
            .is_err()
    {
        link.release().await;
        return Err(refuse("the upstream no longer speaks Streamable HTTP"));
    }
    carry_upstream_ids(gw, id, &link, &log, None);
    let session = Session::new(
        id.clone(),
        name,
        claims.subject,
        link,
        log,
        claims.version.clone(),
        gw.shared.limits.replay_events,
    );
    session.set_protocol_version(&claims.version);
    session.mark_adopted();
    let held = gw.shared.sessions.insert_or_get(session.clone());
    if !Arc::ptr_eq(&held, &session) {
        // Another request adopted it at the same moment: use that one.
        session.release().await;
    } else {
        tracing::info!(upstream = %held.upstream_name, "continuing a session another replica opened");
    }
    Ok(Located::Here(held))
}
