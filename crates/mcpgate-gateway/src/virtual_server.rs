//! Virtual servers (`[[virtual_server]]`): several upstreams served as one
//! MCP server at `/mcp/<name>`, to clients of every era.
//!
//! A request's path: the router's `endpoint_of` and the guard's layer run as
//! for an upstream (the virtual server has its own policy, audience and
//! challenge), then [`serve`]:
//!
//! 1. `post.rs`: the POST checks every front shares (`front/request.rs`),
//!    `Guard::authorize` on the virtual server's policy with the names the
//!    client sees, then `initialize` (answered here; no member is opened
//!    yet), a request (`route.rs`), a notification, or an answer to a
//!    member's question.
//! 2. `route.rs`: lists merged from every member (`merge.rs`); a call,
//!    prompt, resource or completion routed to the member that shows the
//!    name, under the member's own name (`naming.rs`).
//! 3. `session.rs`: one member session per member, opened by the first
//!    request that needs it, through the member's own `Upstream::open`; what
//!    members say outside a request is relayed to the client's GET stream,
//!    their questions under ids of ours so the client's answer finds them.
//! 4. `answer.rs`: the member's answer as JSON, or as SSE when progress or a
//!    question comes first.
//!
//! The other fronts: `stateless.rs` (2026-07-28 clients, one shared virtual
//! session per subject over the gateway's stateless member sessions) and
//! `legacy.rs` (legacy HTTP+SSE, reached through `front::serve`).
//!
//! A session client's virtual session lives in the process that opened it,
//! with its member sessions; its id is sealed with that replica's internal
//! address, and other replicas forward its requests there (`owner.rs`). A
//! 2026-07-28 retry whose call is parked on another replica is forwarded
//! there too (`stateless.rs`).

mod about;
mod answer;
mod config;
pub(crate) mod legacy;
mod merge;
pub(crate) mod naming;
mod open;
mod owner;
mod post;
mod route;
pub(crate) mod session;
mod stateless;
mod tool_rules;

pub use config::{VirtualServerConfig, virtual_server_problems};
pub use tool_rules::ToolRules;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use mcpgate_guard::Authenticated;

use self::owner::Located;
use crate::error::GatewayError;
use crate::events::parse_event_id;
use crate::front::caller::AuthenticatedCaller;
use crate::front::request::{accepts, header_str};
use crate::reply::sse;
use crate::state::Gateway;

/// The route of every virtual server, behind the router's guard layer (on
/// the internal listener too, where other replicas forward requests for the
/// virtual sessions this one holds).
pub(crate) async fn serve(
    State(gw): State<Gateway>,
    authenticated: Authenticated,
    mut req: Request,
) -> Response {
    let name = req
        .extensions()
        .get::<crate::auth::Endpoint>()
        .map(|e| e.upstream.clone());
    let Some(server) = name
        .as_deref()
        .and_then(|n| gw.shared.virtuals.get(n).cloned())
    else {
        return GatewayError::UnknownUpstream(name.as_deref().unwrap_or_default().to_owned())
            .answer(None);
    };
    let caller = AuthenticatedCaller::of(authenticated, &mut req);
    match *req.method() {
        Method::POST => post::post(gw, server, caller, req).await,
        Method::GET => get_stream(&gw, &server.name, &caller, req.headers()).await,
        Method::DELETE => delete(&gw, &server.name, &caller, req.headers()).await,
        _ => GatewayError::MethodNotAllowed {
            method: req.method().to_string(),
            allow: "GET, POST, DELETE",
        }
        .answer(None),
    }
}

/// The session's server stream: what members say outside any request.
async fn get_stream(
    gw: &Gateway,
    server: &str,
    caller: &AuthenticatedCaller,
    headers: &HeaderMap,
) -> Response {
    if !accepts(headers, "text/event-stream") {
        return GatewayError::NotAcceptable("Not Acceptable: a GET opens a server-sent event stream; send Accept: text/event-stream").answer(None);
    }
    let session = match owner::locate(gw, server, caller, headers) {
        Ok(Located::Here(s)) => s,
        Ok(Located::Owner(owner)) => {
            return owner::forward(gw, caller, &owner, server, Method::GET, headers, None).await;
        }
        Err(e) => return e.answer(None),
    };
    let log = session.server_stream.clone();
    let after = header_str(headers, "last-event-id")
        .and_then(parse_event_id)
        .filter(|id| log.issued(id))
        .map(|id| id.seq);
    sse(log.reader(after))
}

async fn delete(
    gw: &Gateway,
    server: &str,
    caller: &AuthenticatedCaller,
    headers: &HeaderMap,
) -> Response {
    let session = match owner::locate(gw, server, caller, headers) {
        Ok(Located::Here(s)) => s,
        Ok(Located::Owner(owner)) => {
            return owner::forward(gw, caller, &owner, server, Method::DELETE, headers, None).await;
        }
        Err(e) => return e.answer(None),
    };
    gw.shared.virtual_sessions.remove(&session.id);
    session.close().await;
    tracing::debug!(
        virtual_server = server,
        "virtual session deleted by the client"
    );
    StatusCode::OK.into_response()
}
