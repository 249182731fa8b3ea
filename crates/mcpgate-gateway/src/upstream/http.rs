//! Streamable HTTP upstreams: one upstream session per client session, with
//! request and response bodies streamed through a hyper client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use super::error::{UpstreamError, error_chain};
use super::modern::{self, EraCache, Mode};
use super::mux::{Driver, Exchange};
use crate::config::{HttpTransport, Limits, UpstreamConfig};
use crate::credentials::Credentials;
use crate::error::GatewayError;
use crate::events::EventLog;
use crate::identity::OnBehalfOf;
use crate::identity::{IDENTITY_HEADER, IdentityToken};
use crate::jsonrpc::{self, Message};
use crate::protocol::{GATEWAY_PROTOCOL_VERSION, MODERN_VERSION, SESSION_HEADER, VERSION_HEADER};
use mcpgate_sse as sse;
use mcpgate_types::SessionId;

mod bridge;
mod connections;
mod subscribe;
mod trust;

pub use trust::{CaFileError, load_roots};

pub(crate) use connections::Body as UpstreamBody;
use connections::Connections;

/// The SSE resumption header (not among `http`'s named headers).
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// How long to wait before coming back for an answer stream the upstream
/// ended early without a `retry:` interval (the SSE default is the client's choice).
const POLL_DEFAULT_WAIT: Duration = Duration::from_secs(1);

/// The longest `retry:` interval honoured: an upstream's hint must not hold a
/// client's request for longer than a poll is worth.
const POLL_MAX_WAIT: Duration = Duration::from_secs(10);

/// Failed attempts in a row to come back for an answer stream before the
/// request ends with an error.
const POLL_ATTEMPTS: u32 = 3;

/// A configured HTTP upstream.
#[derive(Debug)]
pub(crate) struct HttpUpstream {
    pub(crate) name: Arc<str>,
    pub(crate) url: Uri,
    /// Kept connections, one set per event loop: see `event_loop.rs`.
    connections: Connections,
    pub(crate) headers: HeaderMap,
    pub(crate) limits: Limits,
    /// Outbound credentials, as headers on every request.
    pub(crate) credentials: Arc<Credentials>,
    transport: Mutex<Option<HttpTransport>>,
    last_error: Mutex<Option<String>>,
    /// Gateway-initialized upstream sessions of stateless clients, one per subject.
    stateless:
        tokio::sync::Mutex<std::collections::HashMap<String, (Arc<HttpLink>, std::time::Instant)>>,
    /// Whether it speaks 2026-07-28 (and only that), and its tools' routing headers.
    pub(crate) era: EraCache,
    /// The server stream of every pass-through link: a link that carries one
    /// request has no stream of its own to fill (nothing listens to it, and
    /// it opens no GET), so one untapped log, made once, stands in for it.
    native_stream: Arc<EventLog>,
}

impl HttpUpstream {
    pub(crate) fn new(
        cfg: UpstreamConfig,
        limits: Limits,
        credentials: Arc<Credentials>,
    ) -> Result<Self, GatewayError> {
        let problem = |line: String| GatewayError::Config {
            upstream: cfg.name.clone(),
            problems: vec![line],
        };
        let raw = cfg.url.clone().unwrap_or_default();
        let url: Uri = raw.parse().map_err(|e| {
            problem(format!(
                "upstream {}: url {raw:?} is not a valid URL: {e}",
                cfg.name
            ))
        })?;
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::try_from(k.as_str()).map_err(|_| {
                problem(format!(
                    "upstream {}: {k:?} is not a valid header name",
                    cfg.name
                ))
            })?;
            let value = HeaderValue::try_from(v.as_str()).map_err(|_| {
                problem(format!(
                    "upstream {}: the value of header {k} is not a valid header value",
                    cfg.name
                ))
            })?;
            headers.insert(name, value);
        }
        let tls = match &cfg.ca_file {
            None => None,
            Some(path) => Some(
                trust::load_roots(path)
                    .map_err(|e| e.to_string())
                    .and_then(trust::client_config)
                    .map_err(|e| problem(format!("upstream {}: ca_file: {e}", cfg.name)))?,
            ),
        };
        Ok(HttpUpstream {
            name: cfg.name.as_str().into(),
            connections: Connections::new(&url, tls),
            url,
            headers,
            limits,
            credentials,
            transport: Mutex::new(cfg.transport),
            last_error: Mutex::new(None),
            stateless: tokio::sync::Mutex::new(std::collections::HashMap::new()),
            era: EraCache::default(),
            native_stream: EventLog::new(0, 1, None),
        })
    }

    pub(crate) fn transport(&self) -> Option<HttpTransport> {
        *self.transport.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_transport(&self, t: HttpTransport) {
        *self.transport.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
    }

    /// Records that the upstream answered (a server error is not an answer here).
    fn record_reachable(&self) {
        mcpgate_telemetry::metrics().upstream_up(&self.name, true);
        if self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
        {
            tracing::info!(upstream = %self.name, "upstream answers again");
        }
    }

    /// Records that the upstream could not be reached. The operator is told
    /// once per change of reason, not per failed call: clients get the same
    /// reason in each error, and a dead upstream must not flood the log. The
    /// URL is left out of the line (it may carry credentials).
    fn record_unreachable(&self, reason: &str, why: String) {
        mcpgate_telemetry::metrics().upstream_up(&self.name, false);
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() != Some(why.as_str()) {
            tracing::warn!(upstream = %self.name, reason, "upstream unreachable: its calls fail with 502 until it answers");
        }
        *last = Some(why);
    }

    pub(crate) fn status(&self) -> serde_json::Value {
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let transport = match self.transport() {
            Some(HttpTransport::Sse) => "sse",
            Some(HttpTransport::StreamableHttp) => "streamable-http",
            None => "undetected",
        };
        serde_json::json!({ "transport": transport, "url": self.url.to_string(), "ready": last_error.is_none(), "last_error": last_error })
    }

    /// Ends gateway-held sessions of subjects idle for `max`.
    pub(crate) async fn reap_idle(&self, max: std::time::Duration) {
        // Taken out under the lock, closed after it is released.
        let stale: Vec<Arc<HttpLink>> = self
            .stateless
            .lock()
            .await
            .extract_if(|_, (l, used)| used.elapsed() > max || l.gone())
            .map(|(_, (l, _))| l)
            .collect();
        for l in stale {
            l.close().await;
        }
    }

    /// The gateway-initialized upstream session used for stateless clients.
    pub(crate) async fn open_initialized(
        self: &Arc<Self>,
        subject: &str,
        identity: HeaderMap,
        token: Option<Arc<IdentityToken>>,
        caller: OnBehalfOf,
    ) -> Result<Arc<HttpLink>, UpstreamError> {
        let mut map = self.stateless.lock().await;
        if let Some((l, used)) = map.get_mut(subject)
            && !l.gone()
        {
            *used = std::time::Instant::now();
            return Ok(l.clone());
        }
        let sink = EventLog::tapped(0, 1);
        let link = Arc::new(HttpLink::new(
            self.clone(),
            sink,
            false,
            identity,
            token,
            caller,
        ));
        let params = jsonrpc::raw(&serde_json::json!({
            "protocolVersion": GATEWAY_PROTOCOL_VERSION,
            // Every capability: each stateless request's own clientCapabilities decide
            // whether an upstream question reaches the client (front/mrtr.rs).
            "capabilities": { "sampling": {}, "elicitation": {}, "roots": {} },
            "clientInfo": { "name": "mcpgate", "version": env!("CARGO_PKG_VERSION") }
        }));
        let mut ex = link
            .request(Message::request(
                jsonrpc::num_id(0),
                "initialize",
                Some(params),
            ))
            .await?;
        let answer = tokio::time::timeout(self.limits.request_timeout, async {
            while let Some(m) = ex.recv().await {
                if m.id.is_some() && m.method.is_none() {
                    return Some(m);
                }
            }
            None
        })
        .await;
        let result = match answer {
            Ok(Some(Message {
                result: Some(r), ..
            })) => r,
            Err(_) => {
                return Err(UpstreamError::TimedOut(format!(
                    "upstream {} did not answer initialize within {:?} (request_timeout)",
                    self.name, self.limits.request_timeout
                )));
            }
            _ => {
                return Err(UpstreamError::Unavailable(format!(
                    "upstream {} did not complete initialize",
                    self.name
                )));
            }
        };
        #[derive(serde::Deserialize)]
        struct R {
            #[serde(rename = "protocolVersion")]
            protocol_version: Option<String>,
        }
        if let Some(v) = serde_json::from_str::<R>(result.get())
            .ok()
            .and_then(|r| r.protocol_version)
        {
            link.set_protocol_version(&v);
        }
        let _ = link.init_result.set(result);
        link.send(Message::notification("notifications/initialized", None))
            .await?;
        map.insert(
            subject.to_owned(),
            (link.clone(), std::time::Instant::now()),
        );
        Ok(link)
    }

    /// A link that passes one 2026-07-28 client request through as it is,
    /// with `forward` (the client's `Mcp-Param-*` headers) added.
    pub(crate) fn native_link(
        self: &Arc<Self>,
        identity: HeaderMap,
        token: Option<Arc<IdentityToken>>,
        caller: OnBehalfOf,
        forward: HeaderMap,
    ) -> Arc<HttpLink> {
        let link = HttpLink::new(
            self.clone(),
            self.native_stream.clone(),
            false,
            identity,
            token,
            caller,
        );
        let _ = link.modern.set(Mode::Native { forward });
        Arc::new(link)
    }

    /// Whether the upstream speaks 2026-07-28, when that is already known
    /// (no request needed).
    pub(crate) fn known_modern(&self) -> Option<bool> {
        if self.transport() == Some(HttpTransport::Sse) {
            return Some(false);
        }
        self.era.discovered().map(|d| d.is_some())
    }

    /// Whether the upstream speaks 2026-07-28: its `server/discover` result,
    /// asked once and cached ([`EraCache`]). Err when it could not be asked.
    pub(crate) async fn discover(
        self: &Arc<Self>,
        identity: HeaderMap,
        token: Option<Arc<IdentityToken>>,
        caller: OnBehalfOf,
    ) -> Result<Option<Arc<serde_json::Value>>, UpstreamError> {
        if self.transport() == Some(HttpTransport::Sse) {
            return Ok(None);
        }
        if let Some(known) = self.era.discovered() {
            return Ok(known);
        }
        let link = self.native_link(identity, token, caller, HeaderMap::new());
        let found = match link.probe_discover().await {
            Ok(found) => found,
            // Silence or nonsense is no 2026-07-28 server; an unusable
            // credential is the request's error either way.
            Err(e @ (UpstreamError::TimedOut(_) | UpstreamError::Unavailable(_))) => {
                tracing::info!(upstream = %self.name, reason = %e, "server/discover went unanswered: treating the upstream as an older one for now");
                self.era.unanswered(modern::UNANSWERED_TTL);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.era.record(found.clone(), false);
        tracing::info!(upstream = %self.name, modern = found.is_some(), "asked the upstream whether it speaks 2026-07-28 (server/discover)");
        Ok(self.era.discovered().flatten())
    }

    /// The request to the upstream: its configured static headers, then `headers`
    /// (appended, so a name in both is sent with both values).
    pub(crate) fn request(
        &self,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, UpstreamError> {
        let mut req = Request::builder()
            .method(method)
            .uri(self.url.clone())
            .body(Full::new(body))
            .map_err(|e| {
                UpstreamError::Unavailable(format!("cannot build upstream request: {e}"))
            })?;
        if self.headers.is_empty() {
            // The usual case: the caller's map becomes the request's, not copied
            // into a second one per request.
            *req.headers_mut() = headers;
        } else {
            let h = req.headers_mut();
            h.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
            h.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(req)
    }

    pub(crate) async fn send_http(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        match self.connections.send(req).await {
            Ok(r) => {
                if !r.status().is_server_error() {
                    self.record_reachable();
                }
                Ok(r)
            }
            Err(e) => {
                let reason = error_chain(&*e);
                let why = format!(
                    "upstream {} is unreachable at {}: {reason}",
                    self.name, self.url,
                );
                self.record_unreachable(&reason, why.clone());
                Err(UpstreamError::Unavailable(why))
            }
        }
    }
}

/// The `Mcp-Session-Id` an upstream gave at initialize, parsed once: an id the
/// spec forbids would be echoed on every request and sealed into ours.
fn upstream_session_id(v: &HeaderValue) -> Result<SessionId, UpstreamError> {
    v.to_str()
        .ok()
        .ok_or(mcpgate_types::SessionIdError::Char)
        .and_then(str::parse)
        .map_err(|e| {
            UpstreamError::Unavailable(format!("the upstream's Mcp-Session-Id is unusable: {e}"))
        })
}

/// One upstream Streamable HTTP session.
#[derive(Debug)]
pub(crate) struct HttpLink {
    up: Arc<HttpUpstream>,
    session_id: Mutex<Option<SessionId>>,
    protocol_version: Mutex<Option<HeaderValue>>,
    server_stream: Arc<EventLog>,
    /// The transport is not known yet: a refused `initialize` means "try legacy SSE".
    detect: bool,
    gone: watch::Sender<bool>,
    get_started: AtomicBool,
    /// The task relaying the upstream's GET stream, replaced by a resumption.
    get_task: Mutex<Option<tokio::task::AbortHandle>>,
    init_result: OnceLock<Box<RawValue>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Set (and `stopping` notified) when [`HttpLink::stop_tasks`] runs: the
    /// SSE answers being read, which run inside their requests rather than
    /// as tasks of the link, stop then too.
    stopped: AtomicBool,
    stopping: tokio::sync::Notify,
    /// Who this session acts for, as headers on every upstream request.
    identity: HeaderMap,
    token: Option<Arc<IdentityToken>>,
    /// Whom per-user outbound credentials are resolved for.
    caller: OnBehalfOf,
    /// Set when the link talks 2026-07-28 to the upstream.
    modern: OnceLock<Mode>,
}

impl HttpLink {
    pub(super) fn new(
        up: Arc<HttpUpstream>,
        server_stream: Arc<EventLog>,
        detect: bool,
        identity: HeaderMap,
        token: Option<Arc<IdentityToken>>,
        caller: OnBehalfOf,
    ) -> Self {
        HttpLink {
            up,
            session_id: Mutex::new(None),
            protocol_version: Mutex::new(None),
            server_stream,
            detect,
            gone: watch::channel(false).0,
            get_started: AtomicBool::new(false),
            get_task: Mutex::new(None),
            init_result: OnceLock::new(),
            tasks: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
            stopping: tokio::sync::Notify::new(),
            identity,
            token,
            caller,
            modern: OnceLock::new(),
        }
    }

    /// The upstream's unsolicited notifications from now on (stateless sessions only).
    pub(crate) fn listen(self: &Arc<Self>) -> Option<tokio::sync::broadcast::Receiver<Message>> {
        let rx = self.server_stream.listen()?;
        self.open_server_stream();
        Some(rx)
    }

    pub(crate) fn init_result(&self) -> Option<&RawValue> {
        self.init_result.get().map(|b| &**b)
    }

    pub(crate) fn gone(&self) -> bool {
        *self.gone.borrow()
    }

    pub(crate) fn set_protocol_version(&self, v: &str) {
        if let Ok(v) = HeaderValue::try_from(v) {
            *self
                .protocol_version
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(v);
        }
    }

    fn session_headers(&self, accept: &'static str) -> HeaderMap {
        let mut h = self.identity.clone();
        if let Some(v) = self.token.as_ref().and_then(|t| t.header()) {
            h.insert(IDENTITY_HEADER, v);
        }
        h.insert(ACCEPT, HeaderValue::from_static(accept));
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.modern.get().is_some() {
            // 2026-07-28 has no sessions; the version goes on every request.
            h.insert(VERSION_HEADER, HeaderValue::from_static(MODERN_VERSION));
            return h;
        }
        if let Some(sid) = self
            .session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|sid| HeaderValue::from_str(sid.as_str()).ok())
        {
            h.insert(SESSION_HEADER, sid);
        }
        if let Some(v) = self
            .protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            h.insert(VERSION_HEADER, v);
        }
        h
    }

    /// The upstream's own session id, once initialize gave one.
    pub(crate) fn upstream_session_id(&self) -> Option<SessionId> {
        self.session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Continues an upstream session another replica initialized: requests
    /// carry its id and version, and the upstream decides whether it still
    /// exists (its 404 ends the session here too).
    pub(crate) fn adopt(&self, session_id: Option<&SessionId>, version: &str) {
        *self.session_id.lock().unwrap_or_else(|e| e.into_inner()) = session_id.cloned();
        self.set_protocol_version(version);
    }

    fn has_session(&self) -> bool {
        self.session_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The session's headers plus the outbound credentials, and what was sent.
    async fn headers_with_credentials(
        &self,
        accept: &'static str,
    ) -> Result<(HeaderMap, Option<crate::credentials::Used>), UpstreamError> {
        let mut h = self.session_headers(accept);
        mcpgate_telemetry::trace::inject_headers(&mut h);
        if self.up.credentials.is_empty() {
            return Ok((h, None));
        }
        // Boxed: only upstreams with outbound credentials await this, and its
        // future (token exchange, a token endpoint) would size every request's.
        let (creds, used) = Box::pin(self.up.credentials.headers(&self.caller)).await?;
        // Configured credentials win over same-named static or identity headers.
        for name in creds.keys() {
            h.remove(name);
        }
        h.extend(creds);
        Ok((h, Some(used)))
    }

    /// Adds the 2026-07-28 headers of one message to `h`: `Mcp-Method`,
    /// `Mcp-Name`, and `Mcp-Param-*` (the client's own when passed through,
    /// else made from the tool's `x-mcp-header` parameters).
    fn add_modern_headers(&self, msg: &Message, h: &mut HeaderMap) {
        let Some(mode) = self.modern.get() else {
            return;
        };
        match mode {
            Mode::Native { forward } => {
                // A passed-through request whose routing headers the front
                // checked against its body carries them: no second scan of `params`.
                if !forward.contains_key("mcp-method") {
                    modern::add_routing_headers(msg, h);
                }
                h.extend(forward.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            // The arguments are read only when some tool declared parameter headers.
            Mode::Bridged(_)
                if msg.method.as_deref() == Some("tools/call")
                    && self.up.era.declares_param_headers() =>
            {
                modern::add_routing_headers(msg, h);
                let p: serde_json::Value = msg.params_as().unwrap_or_default();
                if let Some(tool) = p.get("name").and_then(serde_json::Value::as_str)
                    && let Some(params) = self.up.era.tool_headers(tool)
                {
                    let args = p.get("arguments").cloned().unwrap_or_default();
                    h.extend(modern::param_headers(&params, &args));
                }
            }
            Mode::Bridged(_) => modern::add_routing_headers(msg, h),
        }
    }

    async fn post(&self, msg: &Message) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        let body = msg.to_bytes();
        let (mut headers, used) = self
            .headers_with_credentials("application/json, text/event-stream")
            .await?;
        self.add_modern_headers(msg, &mut headers);
        let req = self.up.request(Method::POST, headers, body.clone())?;
        let mut resp = self.up.send_http(req).await?;
        // A 401 before anything reached the client: renew the credential once and
        // send the same bytes again.
        if resp.status() == StatusCode::UNAUTHORIZED
            && let Some(used) = used
            && self.up.credentials.renewable()
            && Box::pin(self.up.credentials.rejected(&self.caller, &used)).await
        {
            let (mut headers, _) = self
                .headers_with_credentials("application/json, text/event-stream")
                .await?;
            self.add_modern_headers(msg, &mut headers);
            let req = self.up.request(Method::POST, headers, body)?;
            resp = self.up.send_http(req).await?;
        }
        if resp.status() == StatusCode::NOT_FOUND && self.has_session() {
            self.gone.send_replace(true);
            return Err(UpstreamError::SessionGone);
        }
        Ok(resp)
    }

    /// Sends a request. Everything up to the exchange (credentials, connecting,
    /// the response headers, a JSON body) happens within `request_timeout`: an
    /// upstream that accepts the connection and then says nothing is cut off with
    /// [`UpstreamError::TimedOut`] instead of holding the client forever.
    pub(super) async fn request(self: &Arc<Self>, msg: Message) -> Result<Exchange, UpstreamError> {
        let limit = self.up.limits.request_timeout;
        // initialize must not be cancelled (MCP lifecycle); anything else is.
        let cancel = msg
            .id
            .clone()
            .filter(|_| msg.method.as_deref() != Some("initialize"));
        let bridged = matches!(self.modern.get(), Some(Mode::Bridged(_)))
            && msg.method.as_deref() != Some("initialize");
        if bridged {
            // Boxed, as are the other 2026-07-28 steps below: every request's
            // future is as large as its largest branch, and is moved (copied)
            // whole each time a layer boxes it.
            return Box::pin(self.bridged_request(msg)).await;
        }
        match tokio::time::timeout(limit, self.exchange(msg)).await {
            Ok(r) => r,
            Err(_) => {
                let why = format!(
                    "upstream {} did not answer within {limit:?} (request_timeout)",
                    self.up.name
                );
                tracing::warn!(upstream = %self.up.name, ?limit, "an HTTP upstream request timed out before its answer began");
                if let Some(id) = cancel {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let params = jsonrpc::raw(&serde_json::json!({
                            "requestId": id,
                            "reason": "mcpgate: request timed out"
                        }));
                        let _ = this
                            .send(Message::notification(
                                "notifications/cancelled",
                                Some(params),
                            ))
                            .await;
                    });
                }
                Err(UpstreamError::TimedOut(why))
            }
        }
    }

    async fn exchange(self: &Arc<Self>, msg: Message) -> Result<Exchange, UpstreamError> {
        let is_init = msg.method.as_deref() == Some("initialize");
        let request_id = msg.id.clone();
        if is_init && let Some(discover) = self.up.era.modern_only() {
            return Ok(self.bridge_initialize(&msg, &discover));
        }
        let resp = self.post(&msg).await?;
        let status = resp.status();
        if is_init && matches!(status.as_u16(), 400 | 404 | 405) {
            // A 2026-07-28-only server refuses the handshake: ask whether that is what it is.
            match Box::pin(self.probe_discover()).await {
                Ok(Some(discover)) => {
                    tracing::info!(upstream = %self.up.name, "the upstream refused initialize and speaks only 2026-07-28: bridging this session to it");
                    self.up.era.record(Some(discover), true);
                    if self.detect {
                        self.up.set_transport(HttpTransport::StreamableHttp);
                    }
                    if let Some(discover) = self.up.era.modern_only() {
                        return Ok(self.bridge_initialize(&msg, &discover));
                    }
                }
                Ok(None) => self.up.era.record(None, false),
                Err(e) => {
                    tracing::info!(upstream = %self.up.name, reason = %e, "could not ask the upstream server/discover after it refused initialize");
                }
            }
            if self.detect {
                return Err(UpstreamError::NotStreamable);
            }
        }
        if is_init {
            if let Some(sid) = resp.headers().get(SESSION_HEADER) {
                let sid = upstream_session_id(sid)?;
                *self.session_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(sid);
            }
            if self.detect {
                self.up.set_transport(HttpTransport::StreamableHttp);
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let is_sse = content_type_is(resp.headers(), "text/event-stream");
        if status.is_success() && is_sse {
            let (ids_tx, ids) = mpsc::unbounded_channel();
            let this = self.clone();
            // Read by whoever waits for the answer, not by a task of its own:
            // no task and no hand-off between threads per request. Dropping
            // the exchange (a timeout, a disconnect) closes the upstream
            // response with it; stopping the link ends it too.
            let relay = async move {
                let stopping = this.stopping.notified();
                if this.stopped.load(Ordering::SeqCst) {
                    return;
                }
                tokio::select! {
                    () = this.clone().read_answer(resp.into_body(), request_id, tx, ids_tx) => {}
                    () = stopping => {}
                }
            };
            return Ok(Exchange::with_ids(rx, ids).driven_by(Driver::new(relay)));
        }
        let body = read_limited(resp.into_body(), self.up.limits.max_message_bytes).await?;
        let parsed = Message::parse(&body);
        if self.modern.get().is_some()
            && matches!(status.as_u16(), 400 | 404 | 405)
            && parsed.as_ref().ok().and_then(Message::id_key)
                != request_id.as_deref().map(RawValue::get)
        {
            // Refused before any JSON-RPC answer to the request: the upstream
            // may have restarted as an older server. Ask again next time; a
            // bridged session ends (404), so its client starts a new one.
            tracing::info!(upstream = %self.up.name, %status, "the upstream refused a 2026-07-28 request without answering it: asking server/discover again on the next request");
            self.up.era.forget();
            if self.is_bridged() {
                self.gone.send_replace(true);
                return Err(UpstreamError::SessionGone);
            }
        }
        match parsed {
            Ok(m) if m.id.is_some() => {
                let _ = tx.send(m);
                Ok(Exchange::new(rx))
            }
            _ if status.is_success() => Err(UpstreamError::Unavailable(format!(
                "upstream {} answered a request with HTTP {status} and no JSON-RPC response",
                self.up.name
            ))),
            _ => {
                let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                let why = format!(
                    "upstream {} answered HTTP {status}: {snippet}",
                    self.up.name
                );
                let _ = tx.send(Message::error(
                    request_id,
                    jsonrpc::code::UPSTREAM_ERROR,
                    &why,
                ));
                Ok(Exchange::new(rx))
            }
        }
    }

    pub(super) async fn send(&self, msg: Message) -> Result<(), UpstreamError> {
        if let Some(Mode::Bridged(bridge)) = self.modern.get() {
            // A 2026-07-28 upstream takes no notifications or responses: a
            // response answers a question relayed from an `input_required`,
            // and a cancellation closes the request's stream.
            if msg.method.as_deref() == Some("notifications/cancelled") {
                self.cancel_bridged(bridge, &msg);
            } else if msg.kind() == Some(jsonrpc::Kind::Response)
                && let Err(m) = bridge.answer(msg)
            {
                tracing::info!(upstream = %self.up.name, id = ?m.id, "dropped a client response nobody waits for");
            }
            return Ok(());
        }
        let limit = self.up.limits.request_timeout;
        let resp = tokio::time::timeout(limit, self.post(&msg))
            .await
            .map_err(|_| {
                UpstreamError::TimedOut(format!(
                    "upstream {} did not take a message within {limit:?} (request_timeout)",
                    self.up.name
                ))
            })??;
        if !resp.status().is_success() {
            tracing::warn!(upstream = %self.up.name, status = %resp.status(), "upstream refused a notification or response");
        }
        Ok(())
    }

    /// Relays a POST's SSE answer into `tx` (each message's event id into
    /// `ids` just before it) until its response. Since 2025-11-25 an upstream
    /// may end the stream before the response once it sent an event id (SSE
    /// polling): the answer continues on a GET with the last id as
    /// `Last-Event-ID`, after the stream's `retry:` interval (capped at
    /// [`POLL_MAX_WAIT`] and `request_timeout`), as often as the upstream
    /// ends it early and while it keeps sending something within
    /// `request_timeout`. Whatever stops that ends the request with an error
    /// saying why.
    async fn read_answer(
        self: Arc<Self>,
        body: UpstreamBody,
        request_id: Option<Box<RawValue>>,
        tx: mpsc::UnboundedSender<Message>,
        ids: mpsc::UnboundedSender<Option<Arc<str>>>,
    ) {
        let (name, max) = (self.up.name.clone(), self.up.limits.max_message_bytes);
        let limit = self.up.limits.request_timeout;
        let mut last: Option<String> = None;
        let mut wait = POLL_DEFAULT_WAIT;
        let mut heard = tokio::time::Instant::now();
        let mut body = Some(body);
        let mut failures = 0u32;
        let why = loop {
            if let Some(stream) = body.take() {
                let mut answered = false;
                let mut got_message = false;
                let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
                let mut done_tx = Some(done_tx);
                let reading = pump(name.clone(), stream, max, |id, m| {
                    if let Some(id) = id {
                        last = Some(id.to_owned());
                    }
                    // Replays can hold what is not JSON-RPC (an event
                    // store's record of a priming event): its id counts,
                    // its data is not the client's.
                    if let Some(m) = m.filter(|m| m.kind().is_some()) {
                        got_message = true;
                        answered = m.kind() == Some(jsonrpc::Kind::Response);
                        let _ = ids.send(id.map(Arc::from));
                        let _ = tx.send(m);
                        if answered && let Some(tx) = done_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                });
                // A resumed stream may stay open after the response; the
                // answer is complete then.
                let retry = tokio::select! {
                    r = reading => r,
                    _ = done => None,
                };
                if answered {
                    return;
                }
                if let Some(ms) = retry {
                    wait = Duration::from_millis(ms);
                }
                if got_message {
                    heard = tokio::time::Instant::now();
                    failures = 0;
                }
            }
            if self.modern.get().is_some() {
                // 2026-07-28 streams cannot be resumed (no Last-Event-ID, no GET).
                break format!(
                    "upstream {name} closed its 2026-07-28 answer stream before the response; such streams cannot be resumed, so send the request again"
                );
            }
            let Some(from) = last.clone() else {
                break format!(
                    "upstream {name} ended its SSE answer before the response without an event id to resume it from (MCP 2025-11-25 lets a server end the stream early only after sending one)"
                );
            };
            if heard.elapsed() >= limit {
                break format!(
                    "upstream {name} kept ending its SSE answer early and sent nothing for {limit:?} (request_timeout)"
                );
            }
            tokio::time::sleep(wait.min(POLL_MAX_WAIT).min(limit)).await;
            // Boxed: resuming is rare, and its future (credentials, a GET) would
            // otherwise size the task spawned for every SSE answer.
            match Box::pin(self.poll_answer(&from)).await {
                Ok(resumed) => body = Some(resumed),
                Err(e) => {
                    failures += 1;
                    tracing::info!(upstream = %name, attempt = failures, reason = %e, "could not come back for an SSE answer the upstream ended early");
                    if failures >= POLL_ATTEMPTS {
                        break format!(
                            "upstream {name} ended its SSE answer before the response and did not resume it (GET with Last-Event-ID): {e}"
                        );
                    }
                }
            }
        };
        tracing::warn!(upstream = %name, "{why}");
        let _ = ids.send(None);
        let _ = tx.send(Message::error(
            request_id,
            jsonrpc::code::UPSTREAM_ERROR,
            &why,
        ));
    }

    /// The rest of an answer stream after the upstream's event `last`: a GET
    /// with it as `Last-Event-ID` (both the gateway's own polling and a
    /// client's resumption on a replica without the log ask this way). Err
    /// says why the upstream did not give it.
    async fn poll_answer(&self, last: &str) -> Result<UpstreamBody, String> {
        let (mut headers, _) = self
            .headers_with_credentials("text/event-stream")
            .await
            .map_err(|e| e.to_string())?;
        let last_id = HeaderValue::try_from(last)
            .map_err(|_| "its event id is not a valid header value".to_owned())?;
        headers.insert(LAST_EVENT_ID, last_id);
        let req = self
            .up
            .request(Method::GET, headers, Bytes::new())
            .map_err(|e| e.to_string())?;
        let limit = self.up.limits.request_timeout;
        let resp = tokio::time::timeout(limit, self.up.send_http(req))
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() || !content_type_is(resp.headers(), "text/event-stream") {
            return Err(format!("the upstream answered HTTP {}", resp.status()));
        }
        Ok(resp.into_body())
    }

    /// Runs `work` as a task of this link ([`HttpLink::stop_tasks`] aborts it).
    ///
    /// The task forgets its own handle when it ends: a handle kept past the
    /// end keeps the finished task's allocation (its whole future) alive
    /// until the link's next task, for as long as the session stays idle.
    fn spawn_tracked<F>(self: &Arc<Self>, work: F) -> tokio::task::AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let link = Arc::downgrade(self);
        // Held across the spawn: a task that ends at once on another worker
        // waits here, so it never untracks before it is tracked.
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let handle = tokio::spawn(async move {
            work.await;
            if let Some(link) = link.upgrade() {
                link.untrack(tokio::task::id());
            }
        })
        .abort_handle();
        tasks.retain(|h| !h.is_finished());
        tasks.push(handle.clone());
        handle
    }

    fn untrack(&self, id: tokio::task::Id) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|h| h.id() != id && !h.is_finished());
    }

    /// Starts relaying the upstream's GET stream into the session's server stream.
    pub(crate) fn open_server_stream(self: &Arc<Self>) {
        if self.get_started.swap(true, Ordering::SeqCst) {
            return;
        }
        self.relay_server_stream(None);
    }

    /// Relays the upstream's GET stream from after its event `last` (a
    /// client's `Last-Event-ID` this replica has no log for), replacing a
    /// relay already running: the upstream replays what came after `last`.
    pub(crate) fn resume_server_stream(self: &Arc<Self>, last: String) {
        self.relay_server_stream(Some(last));
    }

    fn relay_server_stream(self: &Arc<Self>, resume: Option<String>) {
        let this = self.clone();
        let handle = self.spawn_tracked(async move {
            this.relay_until_done(resume).await;
            // A later GET from the client starts a relay again (the upstream
            // may offer its stream again, or another replica let go of it).
            let mut current = this.get_task.lock().unwrap_or_else(|e| e.into_inner());
            if current
                .as_ref()
                .is_some_and(|h| h.id() == tokio::task::id())
            {
                *current = None;
                this.get_started.store(false, Ordering::SeqCst);
            }
        });
        let mut current = self.get_task.lock().unwrap_or_else(|e| e.into_inner());
        self.get_started.store(true, Ordering::SeqCst);
        if let Some(previous) = current.replace(handle) {
            previous.abort();
        }
    }

    /// Resumes one of the upstream's POST answer streams after its event
    /// `last` (a client's `Last-Event-ID` this replica has no log for) into
    /// `log`: the upstream's GET with that id replays the rest of the answer.
    /// Err (why) when the upstream does not resume it; else the relay runs
    /// until the answer's response (rewritten by `rewrite`), or
    /// `request_timeout`, and closes `log`.
    pub(crate) async fn resume_answer(
        self: &Arc<Self>,
        last: &str,
        log: Arc<EventLog>,
        rewrite: crate::rewrite::Rewrite,
    ) -> Result<(), String> {
        let body = self.poll_answer(last).await?;
        let limit = self.up.limits.request_timeout;
        let (name, max) = (self.up.name.clone(), self.up.limits.max_message_bytes);
        self.spawn_tracked(async move {
            let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
            let mut done_tx = Some(done_tx);
            let into = log.clone();
            // The upstream may keep the stream open after the response; the
            // answer is complete then, so the relay stops there.
            tokio::select! {
                _ = pump(name, body, max, move |id, m| {
                    if let Some(id) = id {
                        into.note_upstream_id(id);
                    }
                    if let Some(mut m) = m.filter(|m| m.kind().is_some()) {
                        let done = m.kind() == Some(jsonrpc::Kind::Response);
                        if done {
                            rewrite(&mut m);
                        }
                        into.push(&m);
                        if done && let Some(tx) = done_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                }) => {}
                _ = done => {}
                () = tokio::time::sleep(limit) => {}
            }
            log.close();
        });
        Ok(())
    }

    /// Relays the upstream's GET stream into the server stream until the
    /// session ends, the upstream offers none, or it fails 5 times in a row.
    async fn relay_until_done(self: &Arc<Self>, mut resume: Option<String>) {
        let mut attempts = 0u32;
        while !self.gone() && attempts < 5 {
            let Ok((mut headers, used)) = self.headers_with_credentials("text/event-stream").await
            else {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            };
            if let Some(v) = resume
                .as_deref()
                .and_then(|l| HeaderValue::try_from(l).ok())
            {
                headers.insert(LAST_EVENT_ID, v);
            }
            let Ok(req) = self.up.request(Method::GET, headers, Bytes::new()) else {
                return;
            };
            let resp = match self.up.send_http(req).await {
                Ok(r) => r,
                Err(_) => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if resp.status() == StatusCode::UNAUTHORIZED
                && let Some(used) = used
                && self.up.credentials.rejected(&self.caller, &used).await
            {
                attempts += 1;
                continue;
            }
            let is_stream =
                resp.status().is_success() && content_type_is(resp.headers(), "text/event-stream");
            if !is_stream && resume.take().is_some() {
                // The client still gets the stream, only without what it missed.
                tracing::info!(upstream = %self.up.name, status = %resp.status(), "the upstream did not resume its GET stream from the client's Last-Event-ID: relaying it without replay");
                attempts += 1;
                continue;
            }
            if !is_stream {
                // 405: the upstream offers no server stream, which the spec allows.
                return;
            }
            // Reconnects after this one do not resume: a replica whose
            // stream another replica took over by resuming it would take
            // it back, and the two would trade it forever.
            resume = None;
            attempts = 0;
            let log = self.server_stream.clone();
            pump(
                self.up.name.clone(),
                resp.into_body(),
                self.up.limits.max_message_bytes,
                move |id, m| {
                    if let Some(id) = id {
                        log.note_upstream_id(id);
                    }
                    // Replays can hold what is not JSON-RPC (an event
                    // store's record of a priming event): its id counts,
                    // its data is not the client's.
                    if let Some(m) = m.filter(|m| m.kind().is_some()) {
                        log.push(&m);
                    }
                },
            )
            .await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Aborts the tasks this link runs (the GET relay) and ends the SSE
    /// answers its requests are reading.
    fn stop_tasks(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stopping.notify_waiters();
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Stops this process's use of the session (its GET relay) without ending
    /// it upstream: another replica may still be serving it.
    pub(crate) fn release(&self) {
        self.stop_tasks();
        self.gone.send_replace(true);
    }

    /// Ends the session: this process's tasks stop, and the upstream is told
    /// (DELETE) while it still knows the session.
    pub(crate) async fn close(&self) {
        self.stop_tasks();
        if self.has_session()
            && !self.gone()
            && let Ok((headers, _)) = self
                .headers_with_credentials("application/json, text/event-stream")
                .await
            && let Ok(req) = self.up.request(Method::DELETE, headers, Bytes::new())
        {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.up.send_http(req))
                .await;
        }
        self.gone.send_replace(true);
    }
}

/// Reads SSE events from an upstream body and hands each one's id (if it
/// has one) and JSON-RPC message (if it carries one) on. Returns the last
/// `retry:` interval (milliseconds) the stream set, for coming back to it.
pub(crate) async fn pump(
    name: Arc<str>,
    mut body: UpstreamBody,
    max: usize,
    mut each: impl FnMut(Option<&str>, Option<Message>),
) -> Option<u64> {
    let mut parser = sse::Parser::new(max);
    let mut retry = None;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match parser.feed(&data) {
            Ok(events) => {
                for ev in events {
                    retry = ev.retry.or(retry);
                    let id = ev.id.as_deref();
                    if !(ev.event.is_empty() || ev.event == "message")
                        || ev.data.trim_ascii().is_empty()
                    {
                        // A priming event: a position without a message.
                        if id.is_some() {
                            each(id, None);
                        }
                        continue;
                    }
                    match Message::parse(&ev.data) {
                        Ok(m) => each(id, Some(m)),
                        Err(e) => {
                            tracing::warn!(upstream = %name, "ignoring an SSE event that is not JSON-RPC ({e})");
                            if id.is_some() {
                                each(id, None);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(upstream = %name, "{e}");
                break;
            }
        }
    }
    retry
}

pub(crate) async fn read_limited(body: UpstreamBody, max: usize) -> Result<Bytes, UpstreamError> {
    let limited = http_body_util::Limited::new(body, max);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|e| {
        UpstreamError::Unavailable(format!("reading the upstream's answer failed: {e}"))
    })
}

pub(crate) fn content_type_is(h: &HeaderMap, want: &str) -> bool {
    h.get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(want)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_session_id_outside_visible_ascii_is_an_upstream_error() {
        let ok = upstream_session_id(&HeaderValue::from_static("3f0c-1a~x")).unwrap();
        assert_eq!(ok, "3f0c-1a~x");
        for bad in [
            HeaderValue::from_static("a b"),
            HeaderValue::from_static(""),
            HeaderValue::from_bytes("é".as_bytes()).unwrap(),
        ] {
            match upstream_session_id(&bad) {
                Err(UpstreamError::Unavailable(m)) => {
                    assert!(m.contains("Mcp-Session-Id"), "{m}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
