//! The client-facing side: HTTP rules of Streamable HTTP (sessions and the
//! stateless 2026-07-28 era) and the legacy HTTP+SSE transport.

pub(crate) mod legacy;
pub(crate) mod mrtr;
pub(crate) mod stateless;
pub(crate) mod streamable;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::value::RawValue;

use crate::events::EventLog;
use crate::jsonrpc::{Kind, Message, code};
use crate::mux::Exchange;
use crate::upstream::{Link, UpstreamError};

/// Protocol versions the front accepts in `MCP-Protocol-Version`.
pub(crate) const SUPPORTED_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];
/// The first stateless protocol version.
pub(crate) const MODERN_VERSION: &str = "2026-07-28";
/// Assumed when a session client sends no version header (the spec's rule).
pub(crate) const DEFAULT_VERSION: &str = "2025-03-26";

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

/// Whether an Accept header admits `want` (`type/sub`), wildcards included.
pub(crate) fn accepts(headers: &HeaderMap, want: &str) -> bool {
    let (wt, _) = want.split_once('/').unwrap_or((want, ""));
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let media = item
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            media == want || media == "*/*" || media == format!("{wt}/*")
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
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared
        && n > limit as u64
    {
        return Err(body_too_large(Some(n), limit));
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| body_too_large(None, limit))
}

fn body_too_large(declared: Option<u64>, limit: usize) -> Response {
    tracing::info!(
        content_length = declared,
        limit,
        "refused a request body larger than server.max_body_bytes"
    );
    rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        code::INVALID_REQUEST,
        &format!("the request body is larger than server.max_body_bytes = {limit}"),
    )
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
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            code::INVALID_REQUEST,
            &format!(
                "Invalid request: the message nests arrays and objects more than {} levels deep",
                crate::jsonrpc::MAX_DEPTH
            ),
        ));
    }
    let trimmed = body.iter().find(|b| !b.is_ascii_whitespace());
    // Only a well-formed array is a batch; `[1, 2` is plain invalid JSON (-32700).
    if trimmed == Some(&b'[') && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            code::INVALID_REQUEST,
            "JSON-RPC batches are not supported (MCP removed them in 2025-06-18): send one message per POST",
        ));
    }
    let msg = Message::parse(body).map_err(|e| {
        rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            code::PARSE_ERROR,
            &format!("Parse error: the body is not a JSON-RPC 2.0 message ({e})"),
        )
    })?;
    let kind = msg.kind().ok_or_else(|| {
        rpc_error(
            StatusCode::BAD_REQUEST,
            msg.id.clone(),
            code::INVALID_REQUEST,
            "Invalid request: a message needs a method (request, notification) or a result/error (response)",
        )
    })?;
    if let Some(why) = msg.id_problem(kind) {
        tracing::info!("refused a JSON-RPC message: {why}");
        return Err(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            code::INVALID_REQUEST,
            &format!("Invalid request: {why}"),
        ));
    }
    Ok((msg, kind))
}

/// Rewrites a final response (era bridging, list filtering).
pub(crate) type Rewrite = std::sync::Arc<dyn Fn(&mut Message) + Send + Sync>;

/// How a request's answer is written: as one JSON body, or as an SSE stream
/// once the upstream sends anything before the response.
pub(crate) struct Answer<'a> {
    pub(crate) link: &'a Link,
    /// `request_timeout`: the first message is due by `deadline`, and an SSE
    /// answer may then fall silent this long.
    pub(crate) timeout: Duration,
    /// When the first message is due: `request_timeout` after the request was sent.
    pub(crate) deadline: tokio::time::Instant,
    /// Rewrites the final response (era bridging).
    pub(crate) rewrite: Rewrite,
    /// Cancels the request upstream when its SSE answer falls silent.
    pub(crate) cancel: Option<Cancel>,
}

/// Cancels a request upstream by its client id (from a task that outlives the handler).
pub(crate) type Cancel =
    Box<dyn FnOnce(Box<RawValue>) -> futures_util::future::BoxFuture<'static, ()> + Send>;

impl Answer<'_> {
    /// Waits for the first message; a response becomes JSON, anything else opens SSE.
    /// `open_stream` creates the log the SSE stream is written to.
    pub(crate) async fn respond(
        self,
        id: Option<Box<RawValue>>,
        mut ex: Exchange,
        open_stream: impl FnOnce() -> std::sync::Arc<EventLog>,
    ) -> Response {
        let first = tokio::time::timeout_at(self.deadline, ex.recv()).await;
        match first {
            Ok(Some(mut m)) if m.kind() == Some(Kind::Response) => {
                (self.rewrite)(&mut m);
                json(StatusCode::OK, &m)
            }
            Ok(Some(m)) => {
                let log = open_stream();
                log.push(&m);
                let reader = log.reader(Some(0));
                let silence = Silence {
                    limit: self.timeout,
                    waiting_on_client: m.kind() == Some(Kind::Request),
                };
                tokio::spawn(relay(
                    ex,
                    log,
                    self.rewrite.clone(),
                    id,
                    silence,
                    self.cancel,
                ));
                sse(reader)
            }
            Ok(None) => rpc_error(
                StatusCode::BAD_GATEWAY,
                id,
                code::UPSTREAM_ERROR,
                "the upstream closed the connection without answering",
            ),
            Err(_) => {
                if let Some(id) = &id {
                    self.link.cancel(id, "mcpgate: request timed out").await;
                }
                rpc_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    id,
                    code::UPSTREAM_TIMEOUT,
                    &format!(
                        "the upstream did not answer within {:?} (server.request_timeout)",
                        self.timeout
                    ),
                )
            }
        }
    }
}

/// How long an SSE answer may stay silent. The upstream owes a message every
/// `limit`, except while a question it asked the client (elicitation, sampling,
/// roots) is waiting: that wait is the client's (or a person's), not the upstream's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Silence {
    pub(crate) limit: Duration,
    /// The last message relayed was a request to the client.
    pub(crate) waiting_on_client: bool,
}

impl Silence {
    /// The next message, `Err(())` when the upstream stayed silent too long.
    pub(crate) async fn next(&mut self, ex: &mut Exchange) -> Result<Option<Message>, ()> {
        let m = if self.waiting_on_client {
            ex.recv().await
        } else {
            tokio::time::timeout(self.limit, ex.recv())
                .await
                .map_err(|_| ())?
        };
        self.waiting_on_client = m.as_ref().is_some_and(|m| m.kind() == Some(Kind::Request));
        Ok(m)
    }

    /// The error that ends a stream that fell silent.
    pub(crate) fn message(&self) -> String {
        format!(
            "the upstream sent nothing for {:?} while answering (server.request_timeout)",
            self.limit
        )
    }
}

/// Copies an exchange into its SSE log until the response. Progress resets the
/// timeout (see [`Silence`]); an elicitation waits for a person as long as it
/// takes. It ends with the response, or with an error when the upstream goes
/// away or falls silent (JSON-RPC -32001, and the request is cancelled upstream).
pub(crate) async fn relay(
    mut ex: Exchange,
    log: std::sync::Arc<EventLog>,
    rewrite: Rewrite,
    id: Option<Box<RawValue>>,
    mut silence: Silence,
    cancel: Option<Cancel>,
) {
    loop {
        match silence.next(&mut ex).await {
            Ok(Some(mut m)) => {
                let done = m.kind() == Some(Kind::Response);
                if done {
                    rewrite(&mut m);
                }
                log.push(&m);
                if done {
                    break;
                }
            }
            Ok(None) => {
                let why = "the upstream closed the stream before answering";
                log.push(&Message::error(id, code::UPSTREAM_ERROR, why));
                break;
            }
            Err(()) => {
                let why = silence.message();
                tracing::warn!("{why}");
                if let (Some(cancel), Some(id)) = (cancel, id.clone()) {
                    cancel(id).await;
                }
                log.push(&Message::error(id, code::UPSTREAM_TIMEOUT, &why));
                break;
            }
        }
    }
    log.close();
}

/// Leaves a response untouched.
pub(crate) fn keep() -> Rewrite {
    // Shared, so the common case allocates nothing per request.
    static KEEP: std::sync::LazyLock<Rewrite> =
        std::sync::LazyLock::new(|| std::sync::Arc::new(|_| {}));
    KEEP.clone()
}
