//! Upstream MCP servers and the per-session links to them.

mod http;
mod legacy_sse;
pub(crate) mod stdio;

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use self::http::HttpLink;
pub(crate) use self::http::{HttpUpstream, content_type_is};
use self::legacy_sse::SseLink;
use self::stdio::{StdioLink, StdioUpstream};
use crate::config::{Limits, UpstreamConfig};
use crate::credentials::{Caller, CredentialError, Credentials};
use crate::events::EventLog;
use crate::jsonrpc::Message;
use crate::mux::Exchange;

/// Who a link acts for, in the forms upstreams receive it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    /// Keys per-subject upstream sessions of stateless clients.
    pub(crate) subject: String,
    /// Environment of a per-session stdio child.
    pub(crate) env: Vec<(String, String)>,
    /// Headers to an HTTP upstream.
    pub(crate) headers: ::http::HeaderMap,
    /// The signed identity token HTTP upstreams receive, kept fresh.
    pub(crate) token: Option<Arc<crate::auth::IdentityToken>>,
    /// Whom per-user outbound credentials are resolved for.
    pub(crate) caller: Caller,
}

/// Why an upstream could not take a message. Each maps to one HTTP status in the front.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// Unreachable, crashed, or answered nonsense: 502.
    #[error("{0}")]
    Unavailable(String),
    /// At a configured limit: 503.
    #[error("{0}")]
    Busy(String),
    /// The upstream forgot the session: 404, so the client initializes again.
    #[error("the upstream ended this session; initialize a new one")]
    SessionGone,
    /// The URL refused a Streamable HTTP `initialize`: try the legacy SSE transport.
    #[error("the upstream does not speak Streamable HTTP")]
    NotStreamable,
    /// No outbound credential could be presented (missing secret, token endpoint down): 503.
    #[error("{0}")]
    Credential(String),
    /// The upstream did not answer within `request_timeout`: 504, JSON-RPC -32001.
    #[error("{0}")]
    TimedOut(String),
    /// The caller is at a per-subject limit (`server.max_sessions_per_subject`,
    /// `server.max_children_per_subject`): 429.
    #[error("{0}")]
    SubjectLimit(String),
}

impl From<CredentialError> for UpstreamError {
    fn from(e: CredentialError) -> Self {
        UpstreamError::Credential(e.0)
    }
}

/// One configured upstream.
#[derive(Debug)]
pub(crate) enum Upstream {
    /// A child process.
    Stdio(Box<StdioUpstream>),
    /// A server at a URL (Streamable HTTP or legacy SSE).
    Http(Arc<HttpUpstream>),
}

impl Upstream {
    pub(crate) fn new(
        cfg: UpstreamConfig,
        limits: Limits,
        sources: &crate::credentials::UserSources,
    ) -> Result<Self, String> {
        let credentials = Arc::new(Credentials::with_sources(&cfg, sources)?);
        if cfg.command.is_some() {
            Ok(Upstream::Stdio(Box::new(StdioUpstream::new(
                cfg,
                limits,
                credentials,
            ))))
        } else {
            Ok(Upstream::Http(Arc::new(HttpUpstream::new(
                cfg,
                limits,
                credentials,
            )?)))
        }
    }

    /// The upstream's outbound credentials.
    pub(crate) fn credentials(&self) -> &Credentials {
        match self {
            Upstream::Stdio(s) => s.credentials(),
            Upstream::Http(h) => &h.credentials,
        }
    }

    /// Opens a link for a new client session, telling the upstream who the caller is
    /// (environment of a per-session child, headers to an HTTP upstream).
    pub(crate) async fn open(
        &self,
        server_stream: Arc<EventLog>,
        id: &Identity,
    ) -> Result<Link, UpstreamError> {
        match self {
            Upstream::Stdio(s) => Ok(Link::Stdio(
                s.open(server_stream, &id.env, &id.caller).await?,
            )),
            Upstream::Http(h) => {
                h.open(
                    server_stream,
                    id.headers.clone(),
                    id.token.clone(),
                    id.caller.clone(),
                )
                .await
            }
        }
    }

    /// A link for clients without sessions (2026-07-28), already initialized by the
    /// gateway and kept per subject so that per-user state stays per user.
    pub(crate) async fn open_stateless(&self, id: &Identity) -> Result<Link, UpstreamError> {
        match self {
            Upstream::Stdio(s) => Ok(Link::Stdio(
                s.stateless(&id.subject, &id.env, &id.caller).await?,
            )),
            Upstream::Http(h) => {
                h.open_initialized(
                    &id.subject,
                    id.headers.clone(),
                    id.token.clone(),
                    id.caller.clone(),
                )
                .await
            }
        }
    }

    /// Stops gateway-held upstream sessions and children unused for `max`.
    pub(crate) async fn reap_idle(&self, max: Duration) {
        match self {
            Upstream::Stdio(s) => s.reap_idle(max).await,
            Upstream::Http(h) => h.reap_idle(max).await,
        }
    }

    /// A line for `/readyz`.
    pub(crate) fn status(&self) -> serde_json::Value {
        let mut st = self.transport_status();
        let creds = self.credentials();
        if !creds.is_empty() {
            let missing = creds.missing();
            st["credentials"] = creds.report().into();
            if !missing.is_empty() {
                st["ready"] = false.into();
                st["missing_credentials"] = missing.into();
            }
        }
        st
    }

    fn transport_status(&self) -> serde_json::Value {
        match self {
            Upstream::Stdio(s) => serde_json::json!({
                "transport": "stdio",
                "ready": true,
                "children": s.running(),
                "last_error": s.last_error(),
            }),
            Upstream::Http(h) => h.status(),
        }
    }

    pub(crate) async fn shutdown(&self, grace: Duration) {
        if let Upstream::Stdio(s) = self {
            s.shutdown(grace).await;
        }
    }
}

/// A session's connection to its upstream.
#[derive(Debug)]
pub(crate) enum Link {
    /// A stdio child (own or shared).
    Stdio(StdioLink),
    /// A Streamable HTTP upstream session.
    Http(Arc<HttpLink>),
    /// A legacy HTTP+SSE upstream connection.
    Sse(SseLink),
}

impl Link {
    /// Sends a request; its related messages and response arrive on the exchange.
    pub(crate) async fn request(&self, msg: Message) -> Result<Exchange, UpstreamError> {
        match self {
            Link::Stdio(l) => l
                .child
                .mux
                .request(l.key, msg)
                .map_err(|e| UpstreamError::Unavailable(e.0)),
            Link::Sse(l) => l
                .mux
                .request(l.key, msg)
                .map_err(|e| UpstreamError::Unavailable(e.0)),
            Link::Http(h) => h.request(msg).await,
        }
    }

    /// Sends a notification, or a response to a server request.
    pub(crate) async fn send(&self, msg: Message) -> Result<(), UpstreamError> {
        match self {
            Link::Stdio(l) => l
                .child
                .mux
                .send(l.key, msg)
                .map_err(|e| UpstreamError::Unavailable(e.0)),
            Link::Sse(l) => l
                .mux
                .send(l.key, msg)
                .map_err(|e| UpstreamError::Unavailable(e.0)),
            Link::Http(h) => h.send(msg).await,
        }
    }

    /// Gives up on a request the client no longer waits for.
    pub(crate) async fn cancel(&self, client_id: &RawValue, reason: &str) {
        match self {
            Link::Stdio(l) => l.child.mux.cancel(l.key, client_id, reason),
            Link::Sse(l) => l.mux.cancel(l.key, client_id, reason),
            Link::Http(h) => {
                let params = crate::jsonrpc::raw(
                    &serde_json::json!({ "requestId": client_id, "reason": reason }),
                );
                let _ = h
                    .send(Message::notification(
                        "notifications/cancelled",
                        Some(params),
                    ))
                    .await;
            }
        }
    }

    /// Records the client's declared capabilities (routing of server requests needs them).
    pub(crate) fn set_capabilities(&self, params: Option<&RawValue>) {
        match self {
            Link::Stdio(l) => l.child.mux.set_capabilities(l.key, params),
            Link::Sse(l) => l.mux.set_capabilities(l.key, params),
            Link::Http(_) => {}
        }
    }

    /// The cached `initialize` result of a gateway-initialized upstream.
    pub(crate) fn init_result(&self) -> Option<&RawValue> {
        match self {
            Link::Stdio(l) => l.init_result.as_deref(),
            Link::Http(h) => h.init_result(),
            Link::Sse(_) => None,
        }
    }

    /// Called once the protocol version is negotiated; HTTP upstreams need it in a header.
    pub(crate) fn set_protocol_version(&self, version: &str) {
        if let Link::Http(h) = self {
            h.set_protocol_version(version);
        }
    }

    /// The client opened its server stream: start relaying the upstream's.
    pub(crate) fn open_server_stream(&self) {
        if let Link::Http(h) = self {
            h.open_server_stream();
        }
    }

    /// The upstream's unsolicited notifications from now on, for stateless links.
    pub(crate) fn listen(&self) -> Option<tokio::sync::broadcast::Receiver<Message>> {
        match self {
            Link::Stdio(l) => l.notifications.as_ref()?.listen(),
            Link::Http(h) => h.listen(),
            Link::Sse(_) => None,
        }
    }

    /// Why the link can no longer be used, if it cannot.
    pub(crate) fn gone(&self) -> Option<String> {
        match self {
            Link::Stdio(l) => l.child.mux.dead_reason(),
            Link::Sse(l) => l.mux.dead_reason(),
            Link::Http(h) => h
                .gone()
                .then(|| "the upstream ended this session".to_owned()),
        }
    }

    /// Ends the session upstream (DELETE, or stopping a per-session child).
    pub(crate) async fn close(&self) {
        match self {
            Link::Stdio(l) => l.close().await,
            Link::Sse(l) => l.close(),
            Link::Http(h) => h.close().await,
        }
    }
}
