//! Every refusal and error answer of the gateway as HTTP: the status and the
//! JSON-RPC error code are chosen here and nowhere else.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::value::RawValue;

use crate::jsonrpc::{Message, code};
use crate::upstream::UpstreamError;

/// A JSON-RPC error as an HTTP response with the given status.
pub(crate) fn rpc_error(
    status: StatusCode,
    id: Option<Box<RawValue>>,
    code: i64,
    message: &str,
) -> Response {
    json(status, &Message::error(id, code, message))
}

/// An error with `data`, for the 2026-07-28 error shapes.
pub(crate) fn rpc_error_data(
    status: StatusCode,
    id: Option<Box<RawValue>>,
    code: i64,
    message: &str,
    data: serde_json::Value,
) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.map(|i| serde_json::from_str::<serde_json::Value>(i.get()).unwrap_or_default()),
        "error": { "code": code, "message": message, "data": data },
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn json(status: StatusCode, msg: &Message) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        msg.to_bytes(),
    )
        .into_response()
}

/// Maps a link failure to its status: 502 unreachable, 503 at a limit, 504 timed out,
/// 429 at a per-subject limit, 404 session gone.
pub(crate) fn upstream_error(e: &UpstreamError, id: Option<Box<RawValue>>) -> Response {
    match e {
        UpstreamError::Unavailable(why) => {
            rpc_error(StatusCode::BAD_GATEWAY, id, code::UPSTREAM_ERROR, why)
        }
        UpstreamError::Busy(why) => {
            let mut r = rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                id,
                code::UPSTREAM_ERROR,
                why,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        UpstreamError::TimedOut(why) => {
            rpc_error(StatusCode::GATEWAY_TIMEOUT, id, code::UPSTREAM_TIMEOUT, why)
        }
        UpstreamError::SubjectLimit(why) => {
            let mut r = rpc_error(StatusCode::TOO_MANY_REQUESTS, id, code::UPSTREAM_ERROR, why);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            r
        }
        UpstreamError::Credential(why) => rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            id,
            code::UPSTREAM_ERROR,
            why,
        ),
        UpstreamError::SessionGone | UpstreamError::NotStreamable => rpc_error(
            StatusCode::NOT_FOUND,
            id,
            code::SESSION_NOT_FOUND,
            &e.to_string(),
        ),
    }
}

/// An SSE response over a stream of already-framed events.
pub(crate) fn sse(frames: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let body = Body::from_stream(frames.map(Ok::<_, Infallible>));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub(crate) fn no_such_upstream(name: &str) -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        None,
        code::INVALID_REQUEST,
        &format!("no upstream named {name:?} is configured"),
    )
}

pub(crate) fn missing_session_id() -> Response {
    rpc_error(
        StatusCode::BAD_REQUEST,
        None,
        code::INVALID_REQUEST,
        "Bad Request: missing Mcp-Session-Id header",
    )
}

pub(crate) fn session_not_found(id: Option<Box<RawValue>>) -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        id,
        code::SESSION_NOT_FOUND,
        "Session not found: it ended, expired, or its upstream restarted; send initialize to start a new one",
    )
}
