//! What every POST to an MCP endpoint goes through before its era's handler
//! sees it: content negotiation, the body within its limit, one JSON-RPC
//! envelope, a protocol version the gateway speaks.

use axum::http::{HeaderMap, header};
use axum::response::Response;
use bytes::Bytes;

use mcpgate_guard::Authorized;
use serde_json::value::RawValue;

use super::caller::AuthenticatedCaller;
use crate::error::GatewayError;
use crate::jsonrpc::{Kind, Message};
use crate::protocol::{SUPPORTED_VERSIONS, VERSION_HEADER};
use crate::state::Gateway;

/// Whether an Accept header admits `want` (`type/sub`), wildcards included.
pub(crate) fn accepts(headers: &HeaderMap, want: &str) -> bool {
    accepts_all(headers, &[want])
}

/// Whether Accept headers admit every one of `wants`, in one pass over them
/// (a POST checks two types on every call).
pub(crate) fn accepts_all(headers: &HeaderMap, wants: &[&str]) -> bool {
    let all = (1u32 << wants.len()) - 1;
    let mut admitted = 0u32;
    for value in headers.get_all(header::ACCEPT) {
        for item in value.as_bytes().split(|b| *b == b',') {
            let media = item
                .split(|b| *b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            for (i, want) in wants.iter().enumerate() {
                if admits(media, want.as_bytes()) {
                    admitted |= 1 << i;
                }
            }
            if admitted == all {
                return true;
            }
        }
    }
    admitted == all
}

/// Whether one media range of an Accept header (`*/*`, `type/*`, `type/sub`) admits `want`.
fn admits(media: &[u8], want: &[u8]) -> bool {
    if media.eq_ignore_ascii_case(want) || media == b"*/*" {
        return true;
    }
    media.strip_suffix(b"/*").is_some_and(|t| {
        want.len() > t.len() && want[t.len()] == b'/' && want[..t.len()].eq_ignore_ascii_case(t)
    })
}

pub(crate) fn is_json_content(headers: &HeaderMap) -> bool {
    crate::upstream::content_type_is(headers, "application/json")
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads a POST body within `limit` bytes. A body whose `Content-Length`
/// exceeds the limit is refused before any of it is read.
pub(crate) async fn read_body(
    req: axum::extract::Request,
    limit: usize,
) -> Result<Bytes, Response> {
    let (parts, body) = req.into_parts();
    read_body_of(&parts.headers, body, limit).await
}

/// [`read_body`] of a request already taken apart.
async fn read_body_of(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        return Err(body_too_large(Some(n), limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| body_too_large(None, limit))
}

fn body_too_large(declared: Option<u64>, limit: usize) -> Response {
    tracing::info!(
        content_length = declared,
        limit,
        "refused a request body larger than server.max_body_bytes"
    );
    GatewayError::BodyTooLarge { limit }.answer(None)
}

/// Reads and classifies a POST body: one JSON-RPC message, or an error response.
pub(crate) fn parse_body(body: &[u8]) -> Result<(Message, Kind), Response> {
    // Before parsing: the envelope parser skips `params` without a depth limit,
    // and an upstream choking on a deep array would leave the client waiting.
    if crate::jsonrpc::nests_deeper_than(body, crate::jsonrpc::MAX_DEPTH) {
        tracing::info!(
            limit = crate::jsonrpc::MAX_DEPTH,
            "refused a JSON-RPC message nested too deeply"
        );
        return Err(GatewayError::InvalidRequest(format!(
            "Invalid request: the message nests arrays and objects more than {} levels deep",
            crate::jsonrpc::MAX_DEPTH
        ))
        .answer(None));
    }
    let trimmed = body.iter().find(|b| !b.is_ascii_whitespace());
    // Only a well-formed array is a batch; `[1, 2` is plain invalid JSON (-32700).
    if trimmed == Some(&b'[') && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(GatewayError::InvalidRequest("JSON-RPC batches are not supported (MCP removed them in 2025-06-18): send one message per POST".into()).answer(None));
    }
    let msg = Message::parse(body).map_err(|e| GatewayError::Parse(e.to_string()).answer(None))?;
    let kind = msg.kind().ok_or_else(|| {
        GatewayError::InvalidRequest("Invalid request: a message needs a method (request, notification) or a result/error (response)".into()).answer(msg.id.clone())
    })?;
    if let Some(why) = msg.id_problem(kind) {
        tracing::info!("refused a JSON-RPC message: {why}");
        return Err(GatewayError::InvalidRequest(format!("Invalid request: {why}")).answer(None));
    }
    Ok((msg, kind))
}

/// A POST's envelope, after the checks every era shares.
pub(crate) struct Post {
    pub(crate) headers: HeaderMap,
    pub(crate) msg: Message,
    pub(crate) kind: Kind,
}

/// Content negotiation (406, 415), the body within `limit` (413), one
/// JSON-RPC message (400) and a supported `MCP-Protocol-Version` (400).
pub(crate) async fn read_post(req: axum::extract::Request, limit: usize) -> Result<Post, Response> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    if !accepts_all(&headers, &["application/json", "text/event-stream"]) {
        return Err(GatewayError::NotAcceptable("Not Acceptable: the Accept header must list both application/json and text/event-stream").answer(None));
    }
    if !is_json_content(&headers) {
        return Err(GatewayError::UnsupportedMediaType(
            "Unsupported Media Type: send the JSON-RPC message with Content-Type: application/json",
        )
        .answer(None));
    }
    let body = read_body_of(&headers, body, limit).await?;
    let (msg, kind) = parse_body(&body)?;
    if let Some(v) = header_str(&headers, VERSION_HEADER)
        && !SUPPORTED_VERSIONS.contains(&v)
    {
        return Err(GatewayError::UnsupportedVersion(v.to_owned()).answer(msg.id));
    }
    Ok(Post { headers, msg, kind })
}

/// What every era does with a POST's message before routing it: note it for
/// telemetry (with the client's session id, if it sent one), carry the trace
/// context in `_meta`, ask the guard whether the caller may send it, and
/// count it against the `[[rate_limit]]` rules (once: not again on the
/// replica a request is forwarded to).
pub(crate) async fn authorize_post(
    gw: &Gateway,
    upstream: &str,
    caller: &AuthenticatedCaller,
    msg: Message,
    session_id: Option<&str>,
) -> Result<(Message, Authorized), Response> {
    mcpgate_telemetry::note_mcp(
        upstream,
        msg.method.as_deref(),
        msg.id.as_deref().map(RawValue::get),
        session_id,
        msg.params.as_deref().map(RawValue::get),
    );
    let msg = Message {
        params: mcpgate_telemetry::trace::inject_meta_raw(msg.method.as_deref(), msg.params),
        ..msg
    };
    let proof = gw.shared.guard.authorize(upstream, &caller.authed, &msg)?;
    if caller.forwarded || gw.shared.rate_limits.is_empty() {
        return Ok((msg, proof));
    }
    match gw
        .shared
        .rate_limits
        .check(upstream, caller.principal(), &msg)
        .await
    {
        Ok(standing) => Ok((crate::limits::tell_upstream(msg, &standing), proof)),
        Err(e) => Err(e.answer(msg.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT, axum::http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn an_accept_header_admits_types_ranges_and_wildcards() {
        let both = ["application/json", "text/event-stream"];
        assert!(accepts_all(
            &accept(&["application/json, text/event-stream"]),
            &both
        ));
        assert!(accepts_all(
            &accept(&["Text/Event-Stream;q=0.5 , APPLICATION/JSON"]),
            &both
        ));
        // Over two Accept headers, and by ranges.
        assert!(accepts_all(&accept(&["application/*", "text/*"]), &both));
        assert!(accepts_all(&accept(&["*/*"]), &both));
        assert!(!accepts_all(&accept(&["application/json"]), &both));
        assert!(!accepts_all(&accept(&[]), &both));
        // A range admits its own type only, and `*` alone is no range.
        assert!(!accepts(&accept(&["text/*"]), "application/json"));
        assert!(!accepts(&accept(&["app/*"]), "application/json"));
        assert!(!accepts(&accept(&["*"]), "text/event-stream"));
        assert!(accepts(
            &accept(&["text/event-stream"]),
            "text/event-stream"
        ));
        assert!(!accepts(
            &accept(&["text/event-streams"]),
            "text/event-stream"
        ));
    }
}
