//! 2026-07-28 clients of a virtual server: every request stands alone, so
//! the member sessions are the gateway's own per-subject ones (those the
//! members' own endpoints use for 2026-07-28 clients), held in one shared
//! virtual session per subject that remembers which member shows which name.
//!
//! Lists are merged as for session clients; a call goes to its member
//! through the same bridge as a 2026-07-28 call to an older upstream
//! (`front/stateless.rs`, `front/mrtr.rs`): a member's question becomes an
//! `input_required` result whose `requestState` is sealed with the session
//! key and bound to `<virtual server>/<member>`, so the retry resumes the
//! call parked at that member and at no other; a retry that lands on another
//! replica is forwarded to the one that parked the call (its address is
//! sealed in the state too). (A member that speaks
//! 2026-07-28 itself is bridged by its link, which keeps the member's own
//! `requestState` and sends it back unchanged.)

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcpgate_guard::Authorized;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::merge::{self, List};
use super::naming::VirtualServer;
use super::session::VirtualSession;
use crate::auth::Admitted;
use crate::error::GatewayError;
use crate::forward::send::{Forward, Held, send};
use crate::front::answer::modern_json;
use crate::front::caller::AuthenticatedCaller;
use crate::front::mrtr::parked_elsewhere;
use crate::front::request::{Post, authorize_post};
use crate::front::stateless::{
    Bridged, CACHEABLE, Filter, call, check_headers, check_tool_params, listen_stream,
    rewrite_result,
};
use crate::jsonrpc::{self, Kind, Message};
use crate::protocol::MODERN_VERSION;
use crate::reply::json;
use crate::rewrite::Rewrite;
use crate::state::Gateway;

const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// One 2026-07-28 POST to a virtual server.
pub(super) async fn post(
    gw: Gateway,
    server: Arc<VirtualServer>,
    caller: AuthenticatedCaller,
    post: Post,
) -> Response {
    let Post { headers, msg, kind } = post;
    if let Err(r) = check_headers(&headers, &msg, kind) {
        return r;
    }
    let (msg, proof) = match authorize_post(&gw, &server.name, &caller, msg, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // A retry for a call parked on another replica is answered there (one
    // hop), as at an upstream's own endpoint (`front/stateless.rs`).
    if kind == Kind::Request
        && !caller.forwarded
        && let Some(owner) = parked_elsewhere(
            &gw.shared.session_keys,
            &msg,
            caller.principal().subject().as_str(),
            gw.shared.internal_advertise.as_deref(),
        )
    {
        let fwd = Forward {
            owner: &owner,
            upstream: &server.name,
            method: axum::http::Method::POST,
            headers: &headers,
            body: msg.to_bytes(),
            id: msg.id,
            held: Held::ParkedCall,
        };
        return Box::pin(send(&gw, &caller, fwd)).await;
    }
    let caller = caller.authed;
    match kind {
        Kind::Response => {
            return GatewayError::InvalidRequest("2026-07-28 clients do not send responses; server requests arrive as input_required results".into()).answer(msg.id);
        }
        // A 2026-07-28 client cancels by closing its request stream; it has
        // no session whose members another notification could concern.
        Kind::Notification => return StatusCode::ACCEPTED.into_response(),
        Kind::Request => {}
    }
    let session = gw.shared.virtual_sessions.stateless_for(
        &server,
        caller.principal().subject(),
        gw.shared.limits.replay_events,
    );
    let method = msg.method.clone().unwrap_or_default();
    if let Some(list) = List::of(&method) {
        return listed(&gw, &session, &caller, &proof, msg, list).await;
    }
    match method.as_str() {
        "server/discover" => discover(&gw, &session, &caller, &proof, msg.id).await,
        "subscriptions/listen" => listen(&gw, &session, &caller, &proof, msg).await,
        "tools/call" | "prompts/get" | "resources/read" | "completion/complete" => {
            routed(&gw, &session, &caller, proof, &headers, msg, &method).await
        }
        "initialize"
        | "ping"
        | "logging/setLevel"
        | "resources/subscribe"
        | "resources/unsubscribe" => GatewayError::MethodNotFound(format!(
            "Method not found: {method} does not exist in protocol 2026-07-28"
        ))
        .answer(msg.id),
        _ => {
            tracing::info!(virtual_server = %server.name, %method, "refused a 2026-07-28 request a virtual server does not serve");
            GatewayError::MethodNotFound(format!(
                "Method not found: {method} (a virtual server serves server/discover, subscriptions/listen, the lists, tools/call, prompts/get, resources/read and completion/complete to 2026-07-28 clients)"
            ))
            .answer(msg.id)
        }
    }
}

/// A merged list, with the virtual server's `tool_scopes` applied and the
/// keys 2026-07-28 requires of results.
async fn listed(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    msg: Message,
    list: List,
) -> Response {
    let id = msg.id.unwrap_or_else(jsonrpc::null_id);
    let method = msg.method.unwrap_or_default();
    match merge::merged(gw, session, caller, proof, list).await {
        Ok(result) => {
            let mut m = Message::response(id, result);
            // As for session clients (route.rs): the rules see each item's member.
            if let Some(filter) = gw.shared.guard.list_filter_with(
                &session.server.name,
                caller.principal(),
                &method,
                Some(super::route::member_of(session)),
            ) {
                filter(&mut m);
            }
            rewrite_result(&mut m, true);
            json(StatusCode::OK, &m)
        }
        Err(e) => e.answer(Some(id)),
    }
}

/// A call, prompt, read or completion, to the member that shows the name.
async fn routed(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: Authorized,
    headers: &axum::http::HeaderMap,
    msg: Message,
    method: &str,
) -> Response {
    let id = msg.id.clone();
    let (idx, msg) = match super::route::locate(gw, session, caller, &proof, msg, method).await {
        Ok(v) => v,
        Err(mut refusal) => {
            rewrite_result(&mut refusal, false);
            return modern_json(&refusal);
        }
    };
    let member = &session.server.members[idx];
    // `Mcp-Param-*` headers name the member's own arguments: checked as the
    // member's own endpoint checks them.
    if method == "tools/call"
        && let Err(why) = check_tool_params(member.upstream.era(), &msg, headers)
    {
        tracing::info!(virtual_server = %session.server.name, member = %member.name, reason = %why, "refused a tools/call whose Mcp-Param headers disagree with its arguments");
        return GatewayError::HeaderMismatch(why).answer(id);
    }
    let opened = match super::open::member(gw, session, idx, caller, &proof).await {
        Ok(o) => o,
        Err(e) => return e.answer(id),
    };
    let cacheable = CACHEABLE.contains(&method);
    let rewrite: Rewrite = Arc::new(move |m: &mut Message| rewrite_result(m, cacheable));
    let to = Bridged {
        link: opened.link.clone(),
        seal_as: format!("{}/{}", session.server.name, member.name).into(),
        timeout: member.timeout,
    };
    call(gw, to, msg, method, rewrite, proof).await
}

/// Every member that can be opened now, with its capabilities.
async fn members(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
) -> Vec<(usize, Arc<super::session::Opened>)> {
    let opens = (0..session.server.members.len())
        .map(|i| super::open::member(gw, session, i, caller, proof));
    let mut out = Vec::new();
    for (i, got) in futures_util::future::join_all(opens)
        .await
        .into_iter()
        .enumerate()
    {
        match got {
            Ok(o) => out.push((i, o)),
            Err(e) => {
                tracing::warn!(virtual_server = %session.server.name, member = %session.server.members[i].name, error = %e, "a member is left out of the virtual server's capabilities");
            }
        }
    }
    out
}

/// `server/discover`: the members' capabilities merged (a capability any
/// member declares, a flag any member sets), the virtual server's own name
/// and instructions.
async fn discover(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    id: Option<Box<RawValue>>,
) -> Response {
    let opened = members(gw, session, caller, proof).await;
    if opened.is_empty() {
        return GatewayError::UpstreamUnavailable(format!(
            "no member of virtual server {} could be reached",
            session.server.name
        ))
        .answer(id);
    }
    let mut capabilities = Map::new();
    for (_, o) in &opened {
        merge_capabilities(&mut capabilities, &o.capabilities);
    }
    let result = serde_json::json!({
        "resultType": "complete",
        "supportedVersions": [MODERN_VERSION],
        "capabilities": capabilities,
        "instructions": super::about::instructions(&session.server),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": { META_SERVER_INFO: super::about::server_info(&session.server) },
    });
    json(
        StatusCode::OK,
        &Message::response(id.unwrap_or_else(jsonrpc::null_id), jsonrpc::raw(&result)),
    )
}

/// Adds one member's capabilities to the union: a capability any member
/// declares is declared; a flag (`listChanged`, `subscribe`) any member sets is set.
fn merge_capabilities(into: &mut Map<String, Value>, caps: &Value) {
    let Some(caps) = caps.as_object() else { return };
    for (k, v) in caps {
        match (into.get_mut(k), v) {
            (Some(Value::Object(have)), Value::Object(more)) => {
                for (flag, x) in more {
                    let merged = match (have.get(flag), x) {
                        (Some(Value::Bool(a)), Value::Bool(b)) => Value::Bool(*a || *b),
                        (Some(a), _) => a.clone(),
                        (None, _) => x.clone(),
                    };
                    have.insert(flag.clone(), merged);
                }
            }
            (Some(_), _) => {}
            (None, _) => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// `subscriptions/listen`: what members say outside requests reaches the
/// shared virtual session's stream (names of a changed list are forgotten
/// there); this stream forwards the opted-in kinds any member can announce,
/// and subscribes each named resource at the member that lists it.
async fn listen(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    msg: Message,
) -> Response {
    let wanted = Filter::wanted(&msg);
    let opened = members(gw, session, caller, proof).await;
    let cap = |kind: &str, flag: &str| {
        opened
            .iter()
            .any(|(_, o)| o.capabilities[kind][flag].as_bool().unwrap_or(false))
    };
    let mut honoured = Filter {
        tools_list_changed: wanted.tools_list_changed && cap("tools", "listChanged"),
        prompts_list_changed: wanted.prompts_list_changed && cap("prompts", "listChanged"),
        resources_list_changed: wanted.resources_list_changed && cap("resources", "listChanged"),
        resource_subscriptions: Vec::new(),
    };
    let Some(rx) = session.server_stream.listen() else {
        return GatewayError::MethodNotFound("Method not found: subscriptions/listen".into())
            .answer(msg.id);
    };
    for uri in wanted.resource_subscriptions {
        if subscribe(gw, session, caller, proof, &opened, &uri).await {
            honoured.resource_subscriptions.push(uri);
        }
    }
    let id = msg.id.unwrap_or_else(jsonrpc::null_id);
    listen_stream(gw, &id, honoured, rx)
}

/// Subscribes `uri` at the member that lists it, if that member can.
async fn subscribe(
    gw: &Gateway,
    session: &Arc<VirtualSession>,
    caller: &Admitted,
    proof: &Authorized,
    opened: &[(usize, Arc<super::session::Opened>)],
    uri: &str,
) -> bool {
    let probe = Message::request(
        jsonrpc::raw(&"subscribe"),
        "resources/subscribe",
        Some(jsonrpc::raw(&serde_json::json!({ "uri": uri }))),
    );
    let Ok((idx, _)) =
        super::route::locate(gw, session, caller, proof, probe, "resources/subscribe").await
    else {
        return false;
    };
    let Some((_, o)) = opened.iter().find(|(i, _)| *i == idx) else {
        return false;
    };
    if !o.capabilities["resources"]["subscribe"]
        .as_bool()
        .unwrap_or(false)
    {
        return false;
    }
    let params = jsonrpc::raw(&serde_json::json!({ "uri": uri }));
    match merge::ask(session, idx, o, proof, "resources/subscribe", Some(params)).await {
        Ok(_) => true,
        Err(e) => {
            tracing::info!(virtual_server = %session.server.name, member = %session.server.members[idx].name, error = %e, "a member refused a resource subscription");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_the_union_of_the_members() {
        let mut into = Map::new();
        merge_capabilities(
            &mut into,
            &serde_json::json!({"tools": {"listChanged": false}, "logging": {}}),
        );
        merge_capabilities(
            &mut into,
            &serde_json::json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}}),
        );
        assert_eq!(
            Value::Object(into),
            serde_json::json!({"tools": {"listChanged": true}, "logging": {}, "resources": {"subscribe": true}})
        );
    }
}
