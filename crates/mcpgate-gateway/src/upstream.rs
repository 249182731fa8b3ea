//! Upstream MCP servers and the per-session links to them.

mod error;
mod http;
mod legacy_sse;
pub(crate) mod modern;
// Private: the mux's raw senders pair requests without asking for a proof, so
// only the `Link` methods below, which take `Authorized`, may reach them.
mod mux;
pub(crate) mod stdio;

use std::sync::Arc;
use std::time::Duration;

use mcpgate_guard::Authorized;
use serde_json::value::RawValue;

pub(crate) use self::error::UpstreamError;
use self::http::HttpLink;
pub use self::http::{CaFileError, load_roots};
pub(crate) use self::http::{HttpUpstream, content_type_is};
use self::legacy_sse::SseLink;
pub(crate) use self::mux::Exchange;
use self::mux::{Mux, SessionKey};
use self::stdio::{StdioLink, StdioUpstream};
use crate::config::{HttpTransport, Limits, UpstreamConfig};
use crate::credentials::Credentials;
use crate::error::GatewayError;
use crate::events::EventLog;
use crate::identity::Identity;
use crate::jsonrpc::Message;

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
    ) -> Result<Self, GatewayError> {
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

    /// The upstream's configured name (its key in the gateway's table), shared.
    pub(crate) fn name(&self) -> &Arc<str> {
        match self {
            Upstream::Stdio(s) => s.name(),
            Upstream::Http(h) => &h.name,
        }
    }

    /// The upstream's outbound credentials.
    pub(crate) fn credentials(&self) -> &Credentials {
        match self {
            Upstream::Stdio(s) => s.credentials(),
            Upstream::Http(h) => &h.credentials,
        }
    }

    /// What is known of the upstream's era and of its tools' `x-mcp-header`
    /// parameters (learnt from the `tools/list` answers relayed).
    pub(crate) fn era(&self) -> &modern::EraCache {
        match self {
            Upstream::Stdio(s) => &s.era,
            Upstream::Http(h) => &h.era,
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
                s.open(server_stream, &id.env, &id.on_behalf_of).await?,
            )),
            Upstream::Http(h) => match h.transport() {
                Some(HttpTransport::Sse) => Ok(Link::Sse(
                    SseLink::connect(
                        h,
                        server_stream,
                        id.headers.clone(),
                        id.on_behalf_of.clone(),
                    )
                    .await?,
                )),
                t => Ok(Link::Http(Arc::new(HttpLink::new(
                    h.clone(),
                    server_stream,
                    t.is_none(),
                    id.headers.clone(),
                    id.token.clone(),
                    id.on_behalf_of.clone(),
                )))),
            },
        }
    }

    /// A link for clients without sessions (2026-07-28), already initialized by the
    /// gateway and kept per subject so that per-user state stays per user.
    /// The gateway initializes it on the caller's behalf, so it takes policy's
    /// yes for the caller's request like [`Link::request`].
    pub(crate) async fn open_stateless(
        &self,
        _proof: &Authorized,
        id: &Identity,
    ) -> Result<Link, UpstreamError> {
        match self {
            Upstream::Stdio(s) => Ok(Link::Stdio(
                s.stateless(&id.subject, &id.env, &id.on_behalf_of).await?,
            )),
            Upstream::Http(h) => Ok(Link::Http(
                h.open_initialized(
                    &id.subject,
                    id.headers.clone(),
                    id.token.clone(),
                    id.on_behalf_of.clone(),
                )
                .await?,
            )),
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
    /// A message pipe (stdio child, legacy SSE) pairs requests through its mux,
    /// under this session's key; an HTTP session pairs them itself.
    fn pipe(&self) -> Result<(&Mux, SessionKey), &Arc<HttpLink>> {
        match self {
            Link::Stdio(l) => Ok((&l.child.mux, l.key)),
            Link::Sse(l) => Ok((&l.mux, l.key)),
            Link::Http(h) => Err(h),
        }
    }

    /// Sends a request; its related messages and response arrive on the exchange.
    /// `_proof` is policy's yes for it ([`Guard::authorize`](crate::auth::Guard::authorize)):
    /// nothing reaches an upstream without one.
    pub(crate) async fn request(
        &self,
        _proof: &Authorized,
        msg: Message,
    ) -> Result<Exchange, UpstreamError> {
        match self.pipe() {
            Ok((mux, key)) => mux
                .request(key, msg)
                .map_err(|e| UpstreamError::Unavailable(e.0)),
            Err(h) => h.request(msg).await,
        }
    }

    /// Sends a notification, or a response to a server request, under policy's
    /// yes for the client message it carries or answers.
    pub(crate) async fn send(
        &self,
        _proof: &Authorized,
        msg: Message,
    ) -> Result<(), UpstreamError> {
        match self.pipe() {
            Ok((mux, key)) => mux
                .send(key, msg)
                .map_err(|e| UpstreamError::Unavailable(e.0)),
            Err(h) => h.send(msg).await,
        }
    }

    /// Gives up on a request the client no longer waits for. It takes no proof:
    /// it only withdraws a request that went upstream under one.
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

    /// The client resumes its server stream after the upstream's event
    /// `last`: relay the upstream's from there (HTTP upstreams; the others
    /// have no event ids to resume from).
    pub(crate) fn resume_server_stream(&self, last: String) {
        if let Link::Http(h) = self {
            h.resume_server_stream(last);
        }
    }

    /// Resumes a POST answer stream after the upstream's event `last` into
    /// `log`, its response rewritten by `rewrite` (HTTP upstreams); Err says
    /// why it cannot be.
    pub(crate) async fn resume_answer(
        &self,
        last: &str,
        log: Arc<crate::events::EventLog>,
        rewrite: crate::rewrite::Rewrite,
    ) -> Result<(), String> {
        match self {
            Link::Http(h) => h.resume_answer(last, log, rewrite).await,
            Link::Stdio(_) | Link::Sse(_) => Err("its upstream has no streams to resume".into()),
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

    /// The upstream's own session id (Streamable HTTP upstreams that gave one).
    pub(crate) fn upstream_session_id(&self) -> Option<mcpgate_types::SessionId> {
        match self {
            Link::Http(h) => h.upstream_session_id(),
            Link::Stdio(_) | Link::Sse(_) => None,
        }
    }

    /// Whether any replica can continue this link's upstream session.
    pub(crate) fn is_portable(&self) -> bool {
        // A bridged link's state (the client's capabilities, its pending
        // answers) lives in this process only.
        matches!(self, Link::Http(h) if h.init_result().is_none() && !h.is_bridged())
    }

    /// Continues another replica's upstream session on this (fresh) link.
    pub(crate) fn adopt(
        &self,
        session_id: Option<&mcpgate_types::SessionId>,
        version: &str,
    ) -> Result<(), UpstreamError> {
        match self {
            Link::Http(h) => {
                h.adopt(session_id, version);
                Ok(())
            }
            Link::Stdio(_) | Link::Sse(_) => Err(UpstreamError::SessionGone),
        }
    }

    /// Lets go of the link without ending a portable upstream session, which
    /// another replica may be serving (idle expiry); ends anything else.
    pub(crate) async fn release(&self) {
        match self {
            Link::Http(h) if h.init_result().is_none() && !h.is_bridged() => h.release(),
            _ => self.close().await,
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
