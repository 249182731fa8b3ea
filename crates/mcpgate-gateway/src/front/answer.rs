//! Writing a forwarded request's answer: one JSON body when the response comes
//! first, else an SSE stream that relays everything up to the response.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::events::EventLog;
use crate::jsonrpc::{Kind, Message, code};
use crate::rejection::modern_status;
use crate::reply::{json, sse};
use crate::rewrite::Rewrite;
use crate::upstream::Exchange;
use crate::upstream::Link;

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
    /// A 2026-07-28 client's: a JSON answer's error code sets the HTTP status
    /// too ([`with_error_status`]).
    pub(crate) modern: bool,
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
        mcpgate_telemetry::note_upstream_answered(!matches!(first, Ok(Some(_))));
        match first {
            Ok(Some(mut m)) if m.kind() == Some(Kind::Response) => {
                (self.rewrite)(&mut m);
                if self.modern {
                    modern_json(&m)
                } else {
                    json(StatusCode::OK, &m)
                }
            }
            Ok(Some(m)) => {
                let log = open_stream();
                if let Some(id) = ex.upstream_id() {
                    log.note_upstream_id(id);
                }
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
            Ok(None) => {
                let r = GatewayError::UpstreamUnavailable(
                    "the upstream closed the connection without answering".into(),
                )
                .answer(id);
                failed(self.modern, r).await
            }
            Err(_) => {
                if let Some(id) = &id {
                    self.link.cancel(id, "mcpgate: request timed out").await;
                }
                let r = GatewayError::UpstreamTimedOut(format!(
                    "the upstream did not answer within {:?} (server.request_timeout)",
                    self.timeout
                ))
                .answer(id);
                failed(self.modern, r).await
            }
        }
    }
}

/// The gateway's own error answer, in the client's era (a free function: an
/// `Answer` held across the await would make the future `!Send`).
async fn failed(modern: bool, r: Response) -> Response {
    if modern {
        with_error_status(r).await
    } else {
        r
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
                if let Some(id) = ex.upstream_id() {
                    log.note_upstream_id(id);
                }
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

/// 2026-07-28 puts some JSON-RPC errors in the HTTP status: -32601 → 404, invalid → 400.
pub(crate) async fn with_error_status(r: Response) -> Response {
    let is_json = r
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json || r.status() != StatusCode::OK {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if let Ok(m) = Message::parse(&bytes)
        && let Some(status) = modern_error_status(&m)
    {
        parts.status = status;
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A message the gateway holds, answered as JSON the 2026-07-28 way (see
/// [`with_error_status`]): the status is read from the message before it is
/// written, not parsed back out of the body.
pub(crate) fn modern_json(m: &Message) -> Response {
    json(modern_error_status(m).unwrap_or(StatusCode::OK), m)
}

/// The HTTP status 2026-07-28 gives an error answer's code, if any.
fn modern_error_status(m: &Message) -> Option<StatusCode> {
    let [code] = crate::jsonrpc::members(m.error.as_deref()?, ["code"])?;
    modern_status(serde_json::from_str::<i64>(code?.get()).ok()?)
}
