//! The client-facing side: every MCP route lands in [`serve`], behind the
//! guard's layer (which authenticated the caller once), which decides the
//! protocol era once ([`era::Era`]) and hands the request to that era's
//! handler:
//!
//! - `legacy.rs`: the legacy HTTP+SSE transport (2024-11-05) (at a virtual
//!   server: `virtual_server/legacy.rs`);
//! - `sessionful.rs`: Streamable HTTP with sessions (2025-03-26 … 2025-11-25);
//! - `stateless.rs`: stateless 2026-07-28, with `mrtr.rs` for its
//!   multi-round-trip calls against older upstreams and `native.rs` for
//!   upstreams that speak 2026-07-28 themselves.
//!
//! The handlers share only leaf modules: `request.rs` (what every POST goes
//! through), `answer.rs` (writing an answer as JSON or SSE), `caller.rs`, and
//! the crate's `rejection.rs` (every error answer).

pub(crate) mod adopt;
pub(crate) mod answer;
pub(crate) mod caller;
pub(crate) mod era;
pub(crate) mod hangup;
pub(crate) mod legacy;
pub(crate) mod mrtr;
pub(crate) mod native;
pub(crate) mod request;
pub(crate) mod sessionful;
pub(crate) mod stateless;

use axum::extract::{Request, State};
use axum::response::Response;
use mcpgate_guard::Authenticated;

use self::caller::AuthenticatedCaller;
use self::era::Era;
use crate::state::Gateway;

/// Every MCP route: legacy SSE, Streamable HTTP with sessions, stateless.
/// The guard's layer in front has authenticated the request (a session id is
/// not a credential): its [`Authenticated`] proof is the way in.
pub(crate) async fn serve(
    State(gw): State<Gateway>,
    authenticated: Authenticated,
    era: Era,
    mut req: Request,
) -> Response {
    let caller = AuthenticatedCaller::of(authenticated, &mut req);
    // Each era's future is boxed: this one would otherwise be as large as
    // the largest era's, and the router's layers move it whole (memcpy) as
    // they box it, for every request of every era.
    match era {
        Era::LegacyOpen {
            endpoint,
            messages_path,
        } => Box::pin(legacy::open(gw, endpoint, messages_path, caller)).await,
        Era::LegacyMessage { session } => Box::pin(legacy::message(gw, session, caller, req)).await,
        Era::VirtualLegacyOpen {
            name,
            messages_path,
        } => {
            Box::pin(crate::virtual_server::legacy::open(
                gw,
                name,
                messages_path,
                caller,
            ))
            .await
        }
        Era::VirtualLegacyMessage { session } => {
            Box::pin(crate::virtual_server::legacy::message(
                gw, session, caller, req,
            ))
            .await
        }
        Era::Sessionful { endpoint, method } => {
            Box::pin(sessionful::serve(gw, endpoint, method, caller, req)).await
        }
        Era::Stateless { endpoint } => Box::pin(stateless::serve(gw, endpoint, caller, req)).await,
    }
}
