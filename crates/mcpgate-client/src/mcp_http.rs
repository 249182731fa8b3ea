//! Just enough Streamable HTTP for `mcpgate call`: initialize, one request,
//! end the session — with the credential refreshed on 401 and stepped up on
//! 403 `insufficient_scope` (one retry each).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::Value;
use url::Url;

use crate::challenge::BearerChallenge;
use crate::credentials::Credentials;
use crate::error::ClientError;

/// The protocol revision this client asks for.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// A Streamable HTTP session with one MCP server.
pub struct McpHttp {
    http: reqwest::Client,
    url: Url,
    credentials: Arc<dyn Credentials>,
    headers: Vec<(String, String)>,
    session: Option<String>,
    protocol: Option<String>,
    next_id: u64,
}

impl std::fmt::Debug for McpHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHttp").field("url", &self.url).finish()
    }
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
        }
    }

    /// `initialize` and `notifications/initialized`; returns the initialize result.
    pub async fn initialize(&mut self) -> Result<Value, ClientError> {
        let result = self
            .request(
                "initialize",
                serde_json::json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}
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

    /// Sends a request and returns its JSON-RPC `result` (an `error` is an `Err`).
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
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

    /// Ends the session (DELETE), best effort.
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

    async fn send(&mut self, msg: Value, id: Option<u64>) -> Result<Option<Value>, ClientError> {
        let mut auth = self.credentials.authorization().await?;
        let mut retried_401 = false;
        let mut retried_403 = false;
        let mut retried_nonce = false;
        loop {
            let mut req = self
                .http
                .post(self.url.clone())
                .header("Accept", "application/json, text/event-stream")
                .json(&msg);
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
            if let Some(s) = &self.session {
                req = req.header("Mcp-Session-Id", s.as_str());
            }
            if let Some(p) = &self.protocol {
                req = req.header("MCP-Protocol-Version", p.as_str());
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
                let body: String = body.chars().take(500).collect();
                return Err(ClientError::Mcp(format!(
                    "{} answered {status}: {body}",
                    self.url
                )));
            }
            let Some(id) = id else {
                return Ok(None);
            };
            let is_sse = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            return if is_sse {
                read_sse_answer(resp, id).await.map(Some)
            } else {
                let v: Value = resp
                    .json()
                    .await
                    .map_err(|e| ClientError::Mcp(format!("the answer is not JSON: {e}")))?;
                Ok(Some(v))
            };
        }
    }
}

/// Reads SSE events until the JSON-RPC response with `id`.
async fn read_sse_answer(resp: reqwest::Response, id: u64) -> Result<Value, ClientError> {
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
