//! Legacy HTTP+SSE upstreams (protocol 2024-11-05): a GET stream whose first
//! `endpoint` event names the URL to POST messages to; answers arrive on the stream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

use super::error::UpstreamError;
use super::http::{HttpUpstream, content_type_is};
use super::mux::{Mux, SessionKey};
use crate::credentials::Used;
use crate::events::EventLog;
use crate::identity::OnBehalfOf;
use crate::jsonrpc::Message;
use mcpgate_sse as sse;

/// One legacy SSE connection, owned by one client session.
#[derive(Debug)]
pub(crate) struct SseLink {
    pub(super) mux: Arc<Mux>,
    pub(super) key: SessionKey,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl SseLink {
    /// Opens the event stream and waits for its `endpoint` event, all within
    /// `request_timeout`.
    pub(crate) async fn connect(
        up: &Arc<HttpUpstream>,
        server_stream: Arc<EventLog>,
        identity: HeaderMap,
        caller: OnBehalfOf,
    ) -> Result<Self, UpstreamError> {
        let limit = up.limits.request_timeout;
        tokio::time::timeout(limit, Self::open(up, server_stream, identity, caller))
            .await
            .map_err(|_| {
                UpstreamError::TimedOut(format!(
                    "upstream {} did not open its SSE stream within {limit:?} (request_timeout)",
                    up.name
                ))
            })?
    }

    async fn open(
        up: &Arc<HttpUpstream>,
        server_stream: Arc<EventLog>,
        identity: HeaderMap,
        caller: OnBehalfOf,
    ) -> Result<Self, UpstreamError> {
        let mut headers = identity.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let (creds, _) = up.credentials.headers(&caller).await?;
        for name in creds.keys() {
            headers.remove(name);
        }
        headers.extend(creds);
        let req = up.request(Method::GET, headers, Bytes::new())?;
        let resp = up.send_http(req).await?;
        if !resp.status().is_success() || !content_type_is(resp.headers(), "text/event-stream") {
            return Err(UpstreamError::Unavailable(format!(
                "upstream {} answered the SSE GET with HTTP {} and no event stream; is the url its /sse endpoint?",
                up.name,
                resp.status()
            )));
        }
        let mut body = resp.into_body();
        let mut parser = sse::Parser::new(up.limits.max_message_bytes);
        let mut early = Vec::new();
        let endpoint = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(frame) = body.frame().await {
                let data = frame.ok()?.into_data().ok();
                let Some(data) = data else { continue };
                for ev in parser.feed(&data).ok()? {
                    if ev.event == "endpoint" {
                        return Some(String::from_utf8_lossy(&ev.data).into_owned());
                    }
                    early.push(ev);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            UpstreamError::Unavailable(format!("upstream {} sent no endpoint event", up.name))
        })?;
        let post_url = resolve(&up.url, endpoint.trim()).ok_or_else(|| {
            UpstreamError::Unavailable(format!(
                "upstream {} sent an invalid endpoint {endpoint:?}",
                up.name
            ))
        })?;

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Bytes>();
        let mux = Mux::new(up.name.clone(), false, out_tx);
        let key = mux.attach(server_stream);

        let poster = {
            let (up, mux) = (up.clone(), mux.clone());
            tokio::spawn(async move {
                while let Some(body) = out_rx.recv().await {
                    let mut sent = post(&up, &post_url, &identity, &caller, body.clone()).await;
                    // A refused credential is renewed once and the message sent again.
                    if let Ok((r, Some(used))) = &sent
                        && r.status() == http::StatusCode::UNAUTHORIZED
                        && up.credentials.rejected(&caller, used).await
                    {
                        sent = post(&up, &post_url, &identity, &caller, body).await;
                    }
                    match sent.map(|(r, _)| r) {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) if r.status() == http::StatusCode::NOT_FOUND => {
                            mux.fail(&format!("upstream {} forgot the SSE session", up.name));
                            return;
                        }
                        Ok(r) => {
                            tracing::warn!(upstream = %up.name, status = %r.status(), "upstream refused a message")
                        }
                        Err(UpstreamError::TimedOut(why)) => {
                            tracing::warn!(upstream = %up.name, "{why}");
                        }
                        Err(e) => {
                            mux.fail(&e.to_string());
                            return;
                        }
                    }
                }
            })
        };
        let reader = {
            let (name, mux) = (up.name.clone(), mux.clone());
            let max = up.limits.max_message_bytes;
            tokio::spawn(async move {
                for ev in early {
                    dispatch(&name, &mux, ev);
                }
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let Ok(events) = parser.feed(&data) else {
                        tracing::warn!(upstream = %name, max, "SSE event over the size limit");
                        break;
                    };
                    for ev in events {
                        dispatch(&name, &mux, ev);
                    }
                }
                mux.fail(&format!("upstream {name} closed its SSE stream"));
            })
        };
        Ok(SseLink {
            mux,
            key,
            tasks: vec![poster.abort_handle(), reader.abort_handle()],
        })
    }

    pub(crate) fn close(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.mux.fail("session closed");
    }
}

/// POSTs one message to the session's endpoint with the outbound credentials.
async fn post(
    up: &HttpUpstream,
    url: &Uri,
    identity: &HeaderMap,
    caller: &OnBehalfOf,
    body: Bytes,
) -> Result<(http::Response<super::http::UpstreamBody>, Option<Used>), UpstreamError> {
    let (creds, used) = if up.credentials.is_empty() {
        (HeaderMap::new(), None)
    } else {
        let (h, u) = up.credentials.headers(caller).await?;
        (h, Some(u))
    };
    let mut req = Request::builder().method(Method::POST).uri(url.clone());
    if let Some(h) = req.headers_mut() {
        h.extend(up.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        h.extend(identity.iter().map(|(k, v)| (k.clone(), v.clone())));
        for name in creds.keys() {
            h.remove(name);
        }
        h.extend(creds);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| UpstreamError::Unavailable(format!("cannot build upstream request: {e}")))?;
    // A POST that hangs would hold up every later message of the session.
    let limit = up.limits.request_timeout;
    let resp = tokio::time::timeout(limit, up.send_http(req))
        .await
        .map_err(|_| {
            UpstreamError::TimedOut(format!(
                "upstream {} did not take a message within {limit:?} (request_timeout)",
                up.name
            ))
        })??;
    Ok((resp, used))
}

fn dispatch(name: &str, mux: &Mux, ev: sse::Event) {
    if !(ev.event.is_empty() || ev.event == "message") {
        return;
    }
    match Message::parse(&ev.data) {
        Ok(m) => mux.dispatch(m),
        Err(e) => {
            tracing::warn!(upstream = %name, "ignoring an SSE event that is not JSON-RPC ({e})")
        }
    }
}

/// Resolves the endpoint event's URL against the SSE URL.
fn resolve(base: &Uri, endpoint: &str) -> Option<Uri> {
    let base = url::Url::parse(&base.to_string()).ok()?;
    let joined = base.join(endpoint).ok()?;
    // The endpoint must stay on the upstream's origin: a server naming another host
    // would otherwise make the gateway send client messages there.
    if joined.origin() != base.origin() {
        return None;
    }
    joined.as_str().parse().ok()
}
