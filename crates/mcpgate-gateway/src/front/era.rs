//! The one place a request's protocol era is decided, from its route, method
//! and headers, before anything else reads it. Each era then has one handler
//! (`legacy.rs`, `sessionful.rs`, `stateless.rs`) that only calls downward.
//!
//! | Era | Route and method | Handler |
//! |-----|------------------|---------|
//! | legacy HTTP+SSE (2024-11-05) | GET `…/sse`, then POST `…/messages?session_id=` | `legacy.rs` |
//! | Streamable HTTP with sessions (2025-03-26 … 2025-11-25) | POST, GET, DELETE `/mcp…` | `sessionful.rs` |
//! | stateless (2026-07-28) | POST `/mcp…` with `MCP-Protocol-Version: 2026-07-28`, no session | `stateless.rs` |

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::Response;

use super::request::{header_str, is_json_content};
use crate::error::GatewayError;
use crate::protocol::{MODERN_VERSION, SESSION_HEADER, VERSION_HEADER};
use crate::session::Session;
use crate::state::Gateway;
use crate::upstream::Upstream;
use crate::virtual_server::session::VirtualSession;

/// The upstream a request is for. (The endpoint path its client used, which
/// challenges name, the router settled before authentication: `auth::Endpoint`.)
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) name: Arc<str>,
    pub(crate) upstream: Arc<Upstream>,
}

/// A request classified by protocol era.
#[derive(Debug)]
pub(crate) enum Era {
    /// Legacy HTTP+SSE: a GET that opens a session and its only stream, whose
    /// first event names `messages_path`.
    LegacyOpen {
        endpoint: Endpoint,
        messages_path: String,
    },
    /// Legacy HTTP+SSE: a message for the open `session`, answered on its stream.
    LegacyMessage { session: Arc<Session> },
    /// Legacy HTTP+SSE at a virtual server: the GET that opens a virtual session.
    VirtualLegacyOpen {
        name: Arc<str>,
        messages_path: String,
    },
    /// Legacy HTTP+SSE: a message for an open virtual session.
    VirtualLegacyMessage { session: Arc<VirtualSession> },
    /// Streamable HTTP with sessions: POST a message, GET the server stream,
    /// DELETE the session.
    Sessionful {
        endpoint: Endpoint,
        method: SessionMethod,
    },
    /// 2026-07-28: a POST that stands alone, with no session.
    Stateless { endpoint: Endpoint },
}

/// What a Streamable HTTP request with sessions does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionMethod {
    Post,
    Get,
    Delete,
}

/// How the route was written: the legacy routes end in `/sse` and `/messages`.
enum Route {
    Streamable,
    LegacyOpen,
    LegacyMessage,
}

impl FromRequestParts<Gateway> for Era {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, gw: &Gateway) -> Result<Self, Response> {
        let matched = parts.extensions.get::<MatchedPath>().cloned();
        let matched = matched.as_ref().map_or("", MatchedPath::as_str);
        let route = if matched.ends_with("/sse") {
            Route::LegacyOpen
        } else if matched.ends_with("/messages") {
            Route::LegacyMessage
        } else {
            Route::Streamable
        };
        if let Route::LegacyMessage = route {
            return legacy_message(parts, gw);
        }
        let named = matched.contains("{name}");
        // The router's first step (`endpoint_of`) resolved the upstream, and
        // answered 404 for an unknown one.
        let Some(e) = parts.extensions.get::<crate::auth::Endpoint>() else {
            tracing::error!(
                path = parts.uri.path(),
                "an MCP route without its upstream resolved"
            );
            return Err(GatewayError::UnknownUpstream(String::new()).answer(None));
        };
        let name = e.upstream.clone();
        let messages_path = if named {
            format!("/mcp/{name}/messages")
        } else {
            "/messages".to_owned()
        };
        let Some(upstream) = e.target.clone() else {
            // A virtual server's own route serves its Streamable HTTP
            // clients; only its legacy routes come here.
            return match route {
                Route::LegacyOpen => Ok(Era::VirtualLegacyOpen {
                    name,
                    messages_path,
                }),
                _ => Err(GatewayError::UnknownUpstream(name.to_string()).answer(None)),
            };
        };
        match route {
            Route::LegacyOpen => Ok(Era::LegacyOpen {
                endpoint: Endpoint { name, upstream },
                messages_path,
            }),
            _ => streamable(parts, Endpoint { name, upstream }),
        }
    }
}

/// Stateless when the client speaks 2026-07-28 and names no session; a
/// 2026-07-28 client has no server stream or session to GET or DELETE.
fn streamable(parts: &Parts, endpoint: Endpoint) -> Result<Era, Response> {
    let modern = header_str(&parts.headers, VERSION_HEADER) == Some(MODERN_VERSION);
    let method = match parts.method {
        Method::POST if modern && header_str(&parts.headers, SESSION_HEADER).is_none() => {
            return Ok(Era::Stateless { endpoint });
        }
        Method::POST => SessionMethod::Post,
        Method::GET if !modern => SessionMethod::Get,
        Method::DELETE if !modern => SessionMethod::Delete,
        _ => {
            let allow = if modern { "POST" } else { "GET, POST, DELETE" };
            return Err(GatewayError::MethodNotAllowed {
                method: parts.method.to_string(),
                allow,
            }
            .answer(None));
        }
    };
    Ok(Era::Sessionful { endpoint, method })
}

/// A legacy message names its session in the query; the session names the upstream.
fn legacy_message(parts: &Parts, gw: &Gateway) -> Result<Era, Response> {
    let Some(session_id) = session_id(parts.uri.query()) else {
        return Err(GatewayError::InvalidRequest(
            "missing session_id query parameter: POST to the URL of the endpoint event".into(),
        )
        .answer(None));
    };
    if !is_json_content(&parts.headers) {
        return Err(
            GatewayError::UnsupportedMediaType("send Content-Type: application/json").answer(None),
        );
    }
    // An id that is no session id (outside visible ASCII) names no session either.
    let session = gw.shared.sessions.get(&session_id);
    let Some(session) = session else {
        let virtual_session = gw.shared.virtual_sessions.get(&session_id);
        return match virtual_session {
            Some(session) => Ok(Era::VirtualLegacyMessage { session }),
            None => Err(GatewayError::SessionNotFound.answer(None)),
        };
    };
    Ok(Era::LegacyMessage { session })
}

/// The session a legacy message is for (`?session_id=`, or `sessionId` as some
/// clients write it).
pub(crate) fn session_id(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "session_id" || k == "sessionId")
        .map(|(_, v)| v.into_owned())
}
