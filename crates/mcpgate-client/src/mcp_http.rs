//! Just enough Streamable HTTP for `mcpgate call`: 2026-07-28 first
//! (`server/discover`, `_meta` and routing headers on every request, and
//! `input_required` rounds answered through an [`InputHandler`]), else the
//! handshake eras (initialize, one request, end the session) — with the
//! credential refreshed on 401 and stepped up on 403 `insufficient_scope`
//! (one retry each).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;
use url::Url;

use crate::challenge::BearerChallenge;
use crate::credentials::Credentials;
use crate::error::ClientError;
use crate::modern::{self, Discovered, InputHandler};

/// The handshake-era protocol revision this client asks for.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// Which revision the session speaks, once known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    /// Not connected yet.
    Unknown,
    /// 2026-07-28: no session, `_meta` and headers on every request.
    Stateless,
    /// `initialize` was answered: a session of the 2025 eras.
    Handshake,
}

/// A connection to one MCP server over Streamable HTTP.
pub struct McpHttp {
    http: reqwest::Client,
    url: Url,
    credentials: Arc<dyn Credentials>,
    headers: Vec<(String, String)>,
    session: Option<String>,
    protocol: Option<String>,
    next_id: u64,
    era: Era,
    input: Arc<dyn InputHandler>,
}

impl std::fmt::Debug for McpHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHttp").field("url", &self.url).finish()
    }
}

/// Answers no question: declares no client capability.
struct NoInput;

impl InputHandler for NoInput {
    fn capabilities(&self) -> Value {
        serde_json::json!({})
    }

    fn answer<'a>(
        &'a self,
        method: &'a str,
        _params: &'a Value,
    ) -> futures_util::future::BoxFuture<'a, Result<Value, modern::InputError>> {
        Box::pin(async move {
            Err(modern::InputError(format!(
                "the server asked {method}, which this client did not declare"
            )))
        })
    }
}

/// The HTTP answer to one POST, judged by the caller.
struct Posted {
    status: u16,
    /// The JSON-RPC message answering the request, when there was one.
    body: Option<Value>,
}

impl McpHttp {
    /// A client for `url`, sending `headers` (extra, from a config) on every request.
    pub fn new(
        url: Url,
        credentials: Arc<dyn Credentials>,
        headers: Vec<(String, String)>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap_or_default();
        Self {
            http,
            url,
            credentials,
            headers,
            session: None,
            protocol: None,
            next_id: 1,
            era: Era::Unknown,
            input: Arc::new(NoInput),
        }
    }

    /// Answers the server's questions (elicitation, sampling, roots) with
    /// `input`, and declares its capabilities.
    #[must_use]
    pub fn with_input(mut self, input: Arc<dyn InputHandler>) -> Self {
        self.input = input;
        self
    }

    /// The negotiated protocol revision (after [`connect`](Self::connect)).
    pub fn protocol(&self) -> Option<&str> {
        match self.era {
            Era::Stateless => Some(modern::VERSION),
            _ => self.protocol.as_deref(),
        }
    }

    /// Connects the way the server understands: `server/discover` with
    /// 2026-07-28, and when the server's answer shows an older one
    /// ([`modern::judge_discover`]), `initialize`. Returns the discover or
    /// initialize result.
    pub async fn connect(&mut self) -> Result<Value, ClientError> {
        let id = self.take_id();
        let msg = serde_json::json!({
            "jsonrpc": "2.0", "id": id, "method": "server/discover",
            "params": modern::stamp(Value::Null, &self.input.capabilities()),
        });
        let posted = self.post(&msg, Some(id), true).await?;
        match modern::judge_discover(posted.status, posted.body.as_ref()) {
            Discovered::Modern(result) => {
                tracing::debug!("{} speaks {}", self.url, modern::VERSION);
                self.era = Era::Stateless;
                Ok(result)
            }
            Discovered::Older(why) => {
                tracing::info!(
                    "{} does not speak {} ({why}); initializing a session",
                    self.url,
                    modern::VERSION
                );
                self.initialize().await
            }
            Discovered::Failed(why) => Err(ClientError::Mcp(format!("{}: {why}", self.url))),
        }
    }

    /// `initialize` and `notifications/initialized`; returns the initialize result.
    pub async fn initialize(&mut self) -> Result<Value, ClientError> {
        self.era = Era::Handshake;
        let result = self
            .request(
                "initialize",
                serde_json::json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": self.input.capabilities(),
                    "clientInfo": modern::client_info()
                }),
            )
            .await?;
        self.protocol = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.send(
            serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            None,
        )
        .await?;
        Ok(result)
    }

    /// Sends a request and returns its JSON-RPC `result` (an `error` is an
    /// `Err`). On a 2026-07-28 server, `input_required` answers are answered
    /// and the request sent again, for at most [`modern::MAX_ROUNDS`] rounds.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        if self.era != Era::Stateless {
            return self.request_once(method, params).await;
        }
        let capabilities = self.input.capabilities();
        let original = params;
        let mut params = original.clone();
        for round in 0..=modern::MAX_ROUNDS {
            let result = self
                .request_once(method, modern::stamp(params, &capabilities))
                .await?;
            if !modern::is_input_required(&result) {
                return Ok(result);
            }
            if round == modern::MAX_ROUNDS {
                break;
            }
            let responses = modern::answer_all(self.input.as_ref(), &result)
                .await
                .map_err(|e| ClientError::Mcp(format!("{method}: {e}")))?;
            params = modern::retry_params(&original, responses, &result);
        }
        Err(ClientError::Mcp(format!(
            "{method}: the server still asked for input after {} rounds; giving up",
            modern::MAX_ROUNDS
        )))
    }

    async fn request_once(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.take_id();
        let mut msg = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method});
        if !params.is_null()
            && let Some(o) = msg.as_object_mut()
        {
            o.insert("params".into(), params);
        }
        let answer = self
            .send(msg, Some(id))
            .await?
            .ok_or_else(|| ClientError::Mcp(format!("no answer to {method}")))?;
        if let Some(err) = answer.get("error") {
            return Err(ClientError::Mcp(format!("{method} failed: {err}")));
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Ends the session (DELETE), best effort; a 2026-07-28 server has none.
    pub async fn close(&mut self) {
        if let Some(session) = self.session.take() {
            let mut req = self
                .http
                .delete(self.url.clone())
                .header("Mcp-Session-Id", session);
            if let Ok(Some(a)) = self.credentials.authorization().await {
                if let Ok(Some(p)) = self
                    .credentials
                    .proof("DELETE", self.url.as_str(), &a)
                    .await
                {
                    req = req.header(mcpgate_dpop::HEADER, p);
                }
                req = req.header("Authorization", a);
            }
            let _ = req.send().await;
        }
    }

    /// Sends a message; a non-2xx answer is an `Err` with what the server said.
    async fn send(&mut self, msg: Value, id: Option<u64>) -> Result<Option<Value>, ClientError> {
        let posted = self.post(&msg, id, false).await?;
        Ok(posted.body)
    }

    /// POSTs `msg`, with the retries a 401 and a 403 `insufficient_scope`
    /// earn. With `probe`, a non-2xx answer comes back as a [`Posted`] for
    /// the caller to judge; otherwise it is an `Err`.
    async fn post(
        &mut self,
        msg: &Value,
        id: Option<u64>,
        probe: bool,
    ) -> Result<Posted, ClientError> {
        let stateless = probe || self.era == Era::Stateless;
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        let name = msg
            .get("params")
            .and_then(|p| modern::routing_name(method, p))
            .map(modern::routing_value);
        let mut auth = self.credentials.authorization().await?;
        let mut retried_401 = false;
        let mut retried_403 = false;
        let mut retried_nonce = false;
        loop {
            let mut req = self
                .http
                .post(self.url.clone())
                .header("Accept", "application/json, text/event-stream")
                .json(msg);
            for (k, v) in &self.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            if let Some(a) = &auth {
                // A proof per request (its jti is single use), retries included.
                if let Some(p) = self.credentials.proof("POST", self.url.as_str(), a).await? {
                    req = req.header(mcpgate_dpop::HEADER, p);
                }
                req = req.header("Authorization", a.as_str());
            }
            if stateless {
                req = req
                    .header("MCP-Protocol-Version", modern::VERSION)
                    .header("Mcp-Method", method);
                if let Some(n) = &name {
                    req = req.header("Mcp-Name", n.clone());
                }
            } else {
                if let Some(s) = &self.session {
                    req = req.header("Mcp-Session-Id", s.as_str());
                }
                if let Some(p) = &self.protocol {
                    req = req.header("MCP-Protocol-Version", p.as_str());
                }
            }
            let resp = req
                .send()
                .await
                .map_err(|e| ClientError::http(&format!("calling {}", self.url), e))?;
            let status = resp.status();
            let took_nonce = crate::dpop_nonce::offered(resp.headers())
                .is_some_and(|n| self.credentials.dpop_nonce(n));
            if took_nonce && !retried_nonce && crate::dpop_nonce::asked(status, resp.headers()) {
                // RFC 9449 §9: the same request once more, its proof with the nonce.
                retried_nonce = true;
                continue;
            }
            let challenge = resp
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| BearerChallenge::parse(v).is_some())
                .map(str::to_owned);
            if status == 401 && !retried_401 {
                retried_401 = true;
                match self.credentials.unauthorized(challenge.as_deref()).await? {
                    Some(a) => {
                        auth = Some(a);
                        continue;
                    }
                    None => {
                        return Err(ClientError::Mcp(format!(
                            "{} answered 401 Unauthorized",
                            self.url
                        )));
                    }
                }
            }
            if status == 403 && !retried_403 {
                let insufficient = challenge
                    .as_deref()
                    .and_then(BearerChallenge::parse)
                    .is_some_and(|c| c.is_insufficient_scope());
                if let (true, Some(ch)) = (insufficient, challenge.as_deref()) {
                    retried_403 = true;
                    if let Some(a) = self.credentials.insufficient_scope(ch).await? {
                        auth = Some(a);
                        continue;
                    }
                }
            } else if status == 403
                && let Some(c) = challenge.as_deref().and_then(BearerChallenge::parse)
                && c.is_insufficient_scope()
            {
                // Signed in again for the scope and still refused: the
                // authorization server did not grant it, which no retry fixes.
                return Err(ClientError::NeedsPerson(format!(
                    "{} still answers 403 insufficient_scope (it needs: {}) after signing in                      again: the authorization server did not grant that scope to this account;                      ask its administrator",
                    self.url,
                    c.scope.as_deref().unwrap_or("a scope it does not name")
                )));
            }
            if let Some(s) = resp
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                self.session = Some(s.to_owned());
            }
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                if probe {
                    return Ok(Posted {
                        status: status.as_u16(),
                        body: serde_json::from_str(&body).ok(),
                    });
                }
                let body: String = body.chars().take(500).collect();
                return Err(ClientError::Mcp(format!(
                    "{} answered {status}: {body}",
                    self.url
                )));
            }
            let status = status.as_u16();
            let Some(id) = id else {
                return Ok(Posted { status, body: None });
            };
            let is_sse = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            let body = if is_sse {
                self.read_sse_answer(resp, id).await?
            } else {
                resp.json()
                    .await
                    .map_err(|e| ClientError::Mcp(format!("the answer is not JSON: {e}")))?
            };
            return Ok(Posted {
                status,
                body: Some(body),
            });
        }
    }

    /// Reads SSE events until the JSON-RPC response with `id`. A request of
    /// the server's on the way (a handshake-era elicitation, sampling or
    /// roots question) is answered through the input handler and POSTed back.
    async fn read_sse_answer(
        &self,
        resp: reqwest::Response,
        id: u64,
    ) -> Result<Value, ClientError> {
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::http("reading the event stream", e))?;
            buf.push_str(&String::from_utf8_lossy(&chunk));
            buf = buf.replace("\r\n", "\n");
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf[..end].to_owned();
                buf.drain(..end + 2);
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let Ok(v) = serde_json::from_str::<Value>(&data.join("\n")) else {
                    continue;
                };
                if let (Some(method), Some(qid)) =
                    (v.get("method").and_then(Value::as_str), v.get("id"))
                {
                    self.reply(method, qid, v.get("params").unwrap_or(&Value::Null))
                        .await;
                    continue;
                }
                if v.get("id").and_then(Value::as_u64) == Some(id)
                    && (v.get("result").is_some() || v.get("error").is_some())
                {
                    return Ok(v);
                }
            }
        }
        Err(ClientError::Mcp(
            "the event stream ended without an answer".into(),
        ))
    }

    /// Answers a server request of the handshake eras on the session.
    async fn reply(&self, method: &str, id: &Value, params: &Value) {
        let answer = match self.input.answer(method, params).await {
            Ok(result) => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(e) => serde_json::json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32603, "message": e.to_string()}}),
        };
        let mut req = self
            .http
            .post(self.url.clone())
            .header("Accept", "application/json, text/event-stream")
            .json(&answer);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Ok(Some(a)) = self.credentials.authorization().await {
            if let Ok(Some(p)) = self.credentials.proof("POST", self.url.as_str(), &a).await {
                req = req.header(mcpgate_dpop::HEADER, p);
            }
            req = req.header("Authorization", a);
        }
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s.as_str());
        }
        if let Some(p) = &self.protocol {
            req = req.header("MCP-Protocol-Version", p.as_str());
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(
                "the server refused our answer to {method}: HTTP {}",
                r.status()
            ),
            Err(e) => tracing::warn!("could not send our answer to {method}: {e}"),
        }
    }
}
