//! The 2026-07-28 revision as a client speaks it: the `_meta` every request
//! carries, the routing headers, telling a 2026-07-28 server from an older
//! one by its answer to `server/discover`, and the multi-round-trip requests
//! (MRTR, SEP-2322) — `input_required` answered through an [`InputHandler`]
//! and the request sent again with `inputResponses` and `requestState`.
//!
//! A leaf module: `mcp_http` (for `mcpgate call`) and the bridge both build
//! on it, so the two answer a server's questions the same way.

use base64::Engine as _;
use futures_util::future::BoxFuture;
use http::HeaderValue;
use serde_json::{Map, Value, json};

/// The stateless revision.
pub const VERSION: &str = "2026-07-28";
/// `_meta` key of the request's protocol version.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities.
pub const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key of the server's name and version in a `server/discover` result.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// How many `input_required` rounds one request may take before the client
/// gives up (a server that keeps asking is broken or hostile).
pub const MAX_ROUNDS: usize = 10;

/// JSON-RPC "method not found".
const METHOD_NOT_FOUND: i64 = -32601;
/// 2026-07-28 `UnsupportedProtocolVersionError`.
const UNSUPPORTED_VERSION: i64 = -32022;

/// Who this client is, as `_meta` and `initialize` carry it.
pub fn client_info() -> Value {
    json!({"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")})
}

/// `params` with the per-request `_meta` a 2026-07-28 server requires
/// (protocol version, client capabilities, client info); other `_meta` keys
/// the caller set are kept.
pub fn stamp(params: Value, capabilities: &Value) -> Value {
    let mut params = match params {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Some(m) = meta.as_object_mut() {
        m.insert(META_VERSION.into(), Value::String(VERSION.into()));
        m.insert(META_CAPABILITIES.into(), capabilities.clone());
        m.entry(META_CLIENT_INFO).or_insert_with(client_info);
    }
    Value::Object(params)
}

/// What `Mcp-Name` mirrors: `params.name` of `tools/call` and `prompts/get`,
/// `params.uri` of `resources/read`.
pub fn routing_name<'a>(method: &str, params: &'a Value) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params.get(key).and_then(Value::as_str)
}

/// An `Mcp-Name` value: as is when a header can carry it unchanged, else
/// `=?base64?…?=`.
pub fn routing_value(name: &str) -> HeaderValue {
    let plain = !name.is_empty()
        && name.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && !name.starts_with("=?");
    if plain && let Ok(v) = HeaderValue::try_from(name) {
        return v;
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(name.as_bytes());
    HeaderValue::try_from(format!("=?base64?{b64}?=")).unwrap_or(HeaderValue::from_static(""))
}

/// What an answer to `server/discover` says about the server.
#[derive(Debug, Clone)]
pub enum Discovered {
    /// It speaks 2026-07-28: the discover result.
    Modern(Value),
    /// It is older (a handshake-era or legacy-SSE server): why we think so.
    Older(String),
    /// Neither: a server error, or a 2026-07-28 server refusing something
    /// of ours; what it said. Not a reason to fall back.
    Failed(String),
}

/// Judges the answer to `server/discover` sent with `MCP-Protocol-Version:
/// 2026-07-28`: `status` and the JSON-RPC message of the body, if it had one.
/// [`Discovered::Failed`] when the answer is neither a 2026-07-28 server nor
/// a clear sign of an older one — a server error, or a 2026-07-28 server
/// refusing something of ours — so the client does not hide a real failure
/// behind a fallback.
///
/// Older servers answer, by what they implement:
/// - 2025-era servers validate the version header first: 400 (any body, often
///   a JSON-RPC error about the protocol version or the missing session);
/// - stateless or lenient ones reach method dispatch: JSON-RPC -32601, with
///   HTTP 200 or 404;
/// - servers that only speak legacy HTTP+SSE on this URL: 404, 405, or 406 /
///   415 for the content negotiation they do not know;
/// - a -32022 "unsupported protocol version" whose `supported` list holds no
///   stateless revision.
pub fn judge_discover(status: u16, body: Option<&Value>) -> Discovered {
    let error = body.and_then(|b| b.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if (200..300).contains(&status)
        && let Some(result) = body.and_then(|b| b.get("result"))
    {
        let speaks = result
            .get("supportedVersions")
            .and_then(Value::as_array)
            .is_none_or(|v| v.iter().any(|x| x.as_str() == Some(VERSION)));
        return if speaks {
            Discovered::Modern(result.clone())
        } else {
            Discovered::Older(format!(
                "server/discover lists only {}",
                result.get("supportedVersions").unwrap_or(&Value::Null)
            ))
        };
    }
    if code == Some(UNSUPPORTED_VERSION) {
        let supported = error
            .and_then(|e| e.get("data"))
            .and_then(|d| d.get("supported"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let stateless = supported
            .iter()
            .filter_map(Value::as_str)
            .any(|v| v >= VERSION);
        if stateless {
            return Discovered::Failed(format!(
                "the server does not speak {VERSION} but a later stateless revision ({}); \
                 this mcpgate is too old for it",
                Value::Array(supported)
            ));
        }
        return Discovered::Older(format!("it supports only {}", Value::Array(supported)));
    }
    if code == Some(METHOD_NOT_FOUND) {
        return Discovered::Older(format!(
            "server/discover is unknown to it (HTTP {status}, -32601)"
        ));
    }
    if matches!(status, 400 | 404 | 405 | 406 | 415) {
        let said = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        return Discovered::Older(format!("server/discover answered HTTP {status}{said}"));
    }
    Discovered::Failed(format!(
        "server/discover answered HTTP {status}{}",
        if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        }
    ))
}

/// Whether a result is an MRTR interim answer.
pub fn is_input_required(result: &Value) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

/// One question of an `input_required` result.
#[derive(Debug, Clone)]
pub struct InputRequest {
    /// The server's key for it; the answer goes back under the same key.
    pub key: String,
    /// `elicitation/create`, `sampling/createMessage` or `roots/list`.
    pub method: String,
    /// The request's params (`Null` when it had none).
    pub params: Value,
}

/// The questions of an `input_required` result, in the server's order.
pub fn input_requests(result: &Value) -> Vec<InputRequest> {
    let Some(map) = result.get("inputRequests").and_then(Value::as_object) else {
        return Vec::new();
    };
    map.iter()
        .map(|(key, req)| InputRequest {
            key: key.clone(),
            method: req
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            params: req.get("params").cloned().unwrap_or(Value::Null),
        })
        .collect()
}

/// The params of the retry after an `input_required` round: the original
/// params with this round's `inputResponses` and the echoed `requestState`
/// (the previous round's are replaced, not merged: the state carries them).
pub fn retry_params(original: &Value, responses: Map<String, Value>, interim: &Value) -> Value {
    let mut params = match original {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    params.remove("inputResponses");
    params.remove("requestState");
    if !responses.is_empty() {
        params.insert("inputResponses".into(), Value::Object(responses));
    }
    if let Some(state) = interim.get("requestState") {
        params.insert("requestState".into(), state.clone());
    }
    Value::Object(params)
}

/// Why a question could not be answered. `call` stops on it; the bridge
/// passes its message to the stdio app as the request's error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Answers a server's questions (elicitation, sampling, roots): the stdio
/// app behind the bridge, or the command line for `mcpgate call`.
// Each implementation repeats `answer`'s boxed-future signature: the
// transport holds its handler as `Arc<dyn InputHandler>`, which an
// `async fn` cannot be.
pub trait InputHandler: Send + Sync {
    /// The capabilities to declare in `_meta` (and `initialize`): exactly
    /// what [`answer`](Self::answer) can serve.
    fn capabilities(&self) -> Value;

    /// The result for one question (an `ElicitResult`, `CreateMessageResult`
    /// or `ListRootsResult` object).
    fn answer<'a>(
        &'a self,
        method: &'a str,
        params: &'a Value,
    ) -> BoxFuture<'a, Result<Value, InputError>>;
}

/// Answers every question of one `input_required` result, in order.
pub async fn answer_all(
    handler: &dyn InputHandler,
    interim: &Value,
) -> Result<Map<String, Value>, InputError> {
    let mut out = Map::new();
    for q in input_requests(interim) {
        tracing::debug!(method = %q.method, key = %q.key, "the server asks");
        let answer = handler.answer(&q.method, &q.params).await?;
        out.insert(q.key, answer);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
