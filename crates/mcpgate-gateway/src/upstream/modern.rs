//! HTTP upstreams that speak 2026-07-28: finding out (`server/discover`, cached
//! per upstream), the routing headers every request carries there, and the
//! bridge that serves a client of the handshake eras against an upstream that
//! refuses `initialize`: the gateway answers `initialize` from the discovery,
//! sends each request with `_meta` (version and the client's capabilities), and
//! turns `input_required` into server→client requests on the client's session.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::future::AbortHandle;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::jsonrpc::{self, Kind, Message};
use crate::protocol::MODERN_VERSION;

pub(crate) const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub(crate) const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub(crate) const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// How long "this upstream does not speak 2026-07-28" is believed before it
/// is asked again (an upstream may be upgraded under a running gateway).
const NOT_MODERN_TTL: Duration = Duration::from_secs(300);

/// How long an upstream that could not be asked (it timed out, or answered
/// `server/discover` with something that is not JSON-RPC) is taken for an
/// older one before it is asked again.
pub(crate) const UNANSWERED_TTL: Duration = Duration::from_secs(30);

/// How long a question relayed to a session client may wait for its answer.
const ANSWER_TTL: Duration = Duration::from_secs(10 * 60);

/// Rounds of `input_required` one request may take before the gateway gives up
/// (an upstream that never stops asking).
pub(crate) const MAX_ROUNDS: usize = 16;

/// A tool's `x-mcp-header` parameters: each one's path of property names
/// from the schema's root, and its header token.
pub(crate) type ParamHeaders = Vec<(Vec<String>, String)>;

/// What is known of an upstream's protocol era.
#[derive(Debug, Default)]
pub(crate) struct EraCache {
    state: Mutex<Known>,
    /// Tool name → its `x-mcp-header` parameters, from the `tools/list`
    /// results seen (the headers a `tools/call` must carry).
    tool_headers: Mutex<HashMap<String, ParamHeaders>>,
    /// Some tool listed was seen declaring parameter headers (never unset:
    /// it only lets calls skip looking when none ever did).
    any_param_headers: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default, Clone)]
enum Known {
    #[default]
    Unknown,
    /// It answered `server/discover` listing 2026-07-28: its result.
    Modern {
        discover: Arc<Value>,
        /// It refused `initialize` (a 2026-07-28-only server).
        only: bool,
    },
    /// It did not answer `server/discover` with 2026-07-28, at this
    /// instant; believed for that long.
    NotModern(Instant, Duration),
}

impl EraCache {
    /// The cached discovery result: `Some(Some(_))` modern, `Some(None)` not
    /// modern (recently), `None` not known (ask).
    pub(crate) fn discovered(&self) -> Option<Option<Arc<Value>>> {
        match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            Known::Unknown => None,
            Known::Modern { discover, .. } => Some(Some(discover.clone())),
            Known::NotModern(at, ttl) if at.elapsed() < *ttl => Some(None),
            Known::NotModern(..) => None,
        }
    }

    /// Whether the upstream is known to refuse `initialize`, with its discovery.
    pub(crate) fn modern_only(&self) -> Option<Arc<Value>> {
        match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            Known::Modern {
                discover,
                only: true,
            } => Some(discover.clone()),
            _ => None,
        }
    }

    pub(crate) fn record(&self, discover: Option<Value>, only: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = match discover {
            Some(d) => Known::Modern {
                discover: Arc::new(d),
                only,
            },
            None => Known::NotModern(Instant::now(), NOT_MODERN_TTL),
        };
    }

    /// The upstream could not be asked: taken for an older one for `ttl`.
    pub(crate) fn unanswered(&self, ttl: Duration) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) =
            Known::NotModern(Instant::now(), ttl);
    }

    /// Forgets what was learnt: the next request asks again (after a
    /// failure or a refusal that says the upstream changed).
    pub(crate) fn forget(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Known::Unknown;
    }

    /// Notes the `x-mcp-header` parameters of the tools in a `tools/list` result.
    pub(crate) fn note_tools(&self, result: &Value) {
        let Some(tools) = result.get("tools").and_then(Value::as_array) else {
            return;
        };
        let mut map = self.tool_headers.lock().unwrap_or_else(|e| e.into_inner());
        for t in tools {
            if let Some(name) = t.get("name").and_then(Value::as_str) {
                let found = x_mcp_headers(t.get("inputSchema").unwrap_or(&Value::Null));
                if !found.is_empty() {
                    self.any_param_headers.store(true, Ordering::Relaxed);
                }
                map.insert(name.to_owned(), found);
            }
        }
    }

    /// Whether any tool listed declared `x-mcp-header` parameters: when none
    /// did, a call has no `Mcp-Param-*` headers to check or make, and its
    /// tool's name need not be read for that.
    pub(crate) fn declares_param_headers(&self) -> bool {
        self.any_param_headers.load(Ordering::Relaxed)
    }

    /// The `x-mcp-header` parameters of `tool`, when its listing was seen.
    pub(crate) fn tool_headers(&self, tool: &str) -> Option<ParamHeaders> {
        self.tool_headers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tool)
            .cloned()
    }
}

/// The `server/discover` request the gateway probes an upstream with.
pub(crate) fn discover_request() -> Message {
    let params = serde_json::json!({
        "_meta": {
            META_VERSION: MODERN_VERSION,
            META_CAPABILITIES: {},
            META_CLIENT_INFO: { "name": "mcpgate", "version": env!("CARGO_PKG_VERSION") },
        }
    });
    Message::request(
        jsonrpc::raw(&"mcpgate-discover"),
        "server/discover",
        Some(jsonrpc::raw(&params)),
    )
}

/// A `server/discover` answer that lists 2026-07-28: its result.
pub(crate) fn modern_discovery(answer: &Message) -> Option<Value> {
    let result: Value = serde_json::from_str(answer.result.as_deref()?.get()).ok()?;
    let speaks = result
        .get("supportedVersions")?
        .as_array()?
        .iter()
        .any(|v| v.as_str() == Some(MODERN_VERSION));
    speaks.then_some(result)
}

/// The `initialize` result the gateway answers a session client with, made
/// from the upstream's discovery: its capabilities, instructions and server
/// info, at the client's version when the gateway speaks it.
pub(crate) fn initialize_result(discover: &Value, requested: Option<&str>) -> Value {
    let version = match requested {
        Some(v) if crate::protocol::SUPPORTED_VERSIONS.contains(&v) && v < MODERN_VERSION => v,
        _ => crate::protocol::GATEWAY_PROTOCOL_VERSION,
    };
    let server_info = discover
        .get("_meta")
        .and_then(|m| m.get(META_SERVER_INFO))
        .or_else(|| discover.get("serverInfo"))
        .cloned()
        .unwrap_or_else(|| serde_json::json!({ "name": "upstream", "version": "" }));
    let mut r = serde_json::json!({
        "protocolVersion": version,
        "capabilities": discover.get("capabilities").cloned().unwrap_or_else(|| serde_json::json!({})),
        "serverInfo": server_info,
    });
    if let Some(i) = discover.get("instructions") {
        r["instructions"] = i.clone();
    }
    r
}

/// Encodes a routing header value: as is when it survives an HTTP field,
/// else `=?base64?…?=` (SEP-2243).
pub(crate) fn encode_header_value(v: &str) -> String {
    let plain = v.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && v.trim() == v
        && !(v.starts_with("=?base64?") && v.ends_with("?="));
    if plain {
        v.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
        )
    }
}

/// The properties of an input schema marked `x-mcp-header`, reachable from its
/// root through `properties` only, of a type a header can carry (string,
/// integer, boolean): each one's path of property names and header token.
pub(crate) fn x_mcp_headers(schema: &Value) -> ParamHeaders {
    fn walk(node: &Value, path: &mut Vec<String>, out: &mut ParamHeaders) {
        let Some(props) = node.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, sub) in props {
            path.push(name.clone());
            if let Some(token) = sub.get("x-mcp-header").and_then(Value::as_str)
                && !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                && matches!(
                    sub.get("type").and_then(Value::as_str),
                    Some("string" | "integer" | "boolean")
                )
            {
                out.push((path.clone(), token.to_owned()));
            }
            walk(sub, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

/// The rendering of an argument in its `Mcp-Param-*` header, if it has one.
fn render(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn value_at<'a>(args: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(args, |node, key| node.get(key))
        .filter(|v| !v.is_null())
}

/// The `Mcp-Param-*` headers of a `tools/call` with `args`, for the tool's
/// `x-mcp-header` parameters.
pub(crate) fn param_headers(params: &[(Vec<String>, String)], args: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (path, token) in params {
        let Some(rendered) = value_at(args, path).and_then(render) else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(format!("mcp-param-{}", token.to_ascii_lowercase())),
            HeaderValue::try_from(encode_header_value(&rendered)),
        ) {
            h.insert(name, value);
        }
    }
    h
}

/// Checks a client's `Mcp-Param-*` headers against the arguments (SEP-2243):
/// each marked parameter's header present exactly when the argument is, and
/// equal to it. Err says which one disagrees.
pub(crate) fn check_param_headers(
    params: &[(Vec<String>, String)],
    args: &Value,
    headers: &HeaderMap,
    decode: impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    for (path, token) in params {
        let header = format!("Mcp-Param-{token}");
        let mut values = headers.get_all(header.as_str()).iter();
        let raw = values.next();
        if values.next().is_some() {
            return Err(format!("{header} header appears more than once"));
        }
        let raw = raw.and_then(|v| v.to_str().ok());
        let argument = path.join(".");
        match (value_at(args, path).and_then(render), raw) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(format!(
                    "{header} header is present but the body's {argument:?} argument is absent"
                ));
            }
            (Some(_), None) => {
                return Err(format!(
                    "{header} header is missing but the body's {argument:?} argument is present"
                ));
            }
            (Some(want), Some(got)) => {
                if decode(got).as_deref() != Some(want.as_str()) {
                    return Err(format!(
                        "{header} header does not match the body's {argument:?} argument"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Adds the routing headers of a 2026-07-28 request to `h`: `Mcp-Method`, and
/// `Mcp-Name` for the methods that name something.
pub(crate) fn add_routing_headers(msg: &Message, h: &mut HeaderMap) {
    let Some(method) = msg.method.as_deref() else {
        return;
    };
    if let Ok(v) = HeaderValue::try_from(method) {
        h.insert("mcp-method", v);
    }
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return,
    };
    if let Some(name) = msg.param_str(field)
        && let Ok(v) = HeaderValue::try_from(encode_header_value(&name))
    {
        h.insert("mcp-name", v);
    }
}

/// How a link talks to a 2026-07-28 upstream.
#[derive(Debug)]
pub(crate) enum Mode {
    /// A 2026-07-28 client's request, passed through as it is, with these
    /// of its headers (`Mcp-Param-*`).
    Native { forward: HeaderMap },
    /// A session client's link to a 2026-07-28-only upstream.
    Bridged(Box<Bridge>),
}

/// A session client's side of a bridged link: what it declared at
/// `initialize`, and the questions relayed to it that wait for an answer.
#[derive(Debug, Default)]
pub(crate) struct Bridge {
    capabilities: Mutex<Value>,
    client_info: Mutex<Option<Value>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Message>>>,
    /// The client's requests in flight upstream, by their id (JSON text): a
    /// `notifications/cancelled` for one stops it, which closes its upstream
    /// request stream — the 2026-07-28 way to cancel.
    inflight: Mutex<HashMap<String, AbortHandle>>,
    /// The resources the client subscribed to (`resources/subscribe`), which
    /// one upstream `subscriptions/listen` stream names.
    subscribed: Mutex<BTreeSet<String>>,
    /// The task relaying that stream.
    listening: Mutex<Option<tokio::task::AbortHandle>>,
}

static NEXT_QUESTION: AtomicU64 = AtomicU64::new(1);

impl Bridge {
    /// Records a client's `initialize` params.
    pub(crate) fn set_client(&self, params: Option<&serde_json::value::RawValue>) {
        let p: Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        *self.capabilities.lock().unwrap_or_else(|e| e.into_inner()) = p
            .get("capabilities")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        *self.client_info.lock().unwrap_or_else(|e| e.into_inner()) = p.get("clientInfo").cloned();
    }

    /// Records the client's request `id` as in flight, stoppable by `handle`.
    pub(crate) fn started(&self, id: &str, handle: AbortHandle) {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, h| !h.is_aborted());
        map.insert(id.to_owned(), handle);
    }

    /// The client's request `id` ended (answered, failed or cancelled).
    pub(crate) fn finished(&self, id: &str) {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Stops the client's request `id`; false when none is in flight.
    pub(crate) fn cancel(&self, id: &str) -> bool {
        let handle = self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        handle.map(|h| h.abort()).is_some()
    }

    /// The resources subscribed to after adding (`on`) or removing `uri`.
    // The client bridge keeps an app's subscriptions the same way
    // (`bridge/stateless/subscribe.rs`); the crates share no module for it.
    pub(crate) fn subscription(&self, uri: &str, on: bool) -> Vec<String> {
        let mut set = self.subscribed.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            set.insert(uri.to_owned());
        } else {
            set.remove(uri);
        }
        set.iter().cloned().collect()
    }

    /// Makes `task` the one relaying the upstream's listen stream; the
    /// previous one stops (which closes its stream upstream).
    pub(crate) fn listening(&self, task: Option<tokio::task::AbortHandle>) {
        let previous = std::mem::replace(
            &mut *self.listening.lock().unwrap_or_else(|e| e.into_inner()),
            task,
        );
        if let Some(t) = previous {
            t.abort();
        }
    }

    /// `msg` with `_meta` carrying the version and the client's capabilities.
    pub(crate) fn with_meta(&self, msg: &Message) -> Message {
        let mut params: Map<String, Value> = msg.params_as().unwrap_or_default();
        let mut meta = params
            .remove("_meta")
            .and_then(|m| match m {
                Value::Object(o) => Some(o),
                _ => None,
            })
            .unwrap_or_default();
        meta.insert(META_VERSION.into(), MODERN_VERSION.into());
        meta.insert(
            META_CAPABILITIES.into(),
            self.capabilities
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        );
        if let Some(info) = self
            .client_info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            meta.insert(META_CLIENT_INFO.into(), info);
        }
        params.insert("_meta".into(), Value::Object(meta));
        Message {
            params: Some(jsonrpc::raw(&params)),
            ..msg.clone()
        }
    }

    /// A client's response to a relayed question: handed to the request
    /// waiting for it. Err gives the message back when nobody waits for it.
    pub(crate) fn answer(&self, msg: Message) -> Result<(), Message> {
        let Some(key) = msg.id.as_deref().map(|id| id.get().to_owned()) else {
            return Err(msg);
        };
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        match waiter {
            Some(tx) => {
                let _ = tx.send(msg);
                Ok(())
            }
            None => Err(msg),
        }
    }

    /// Relays an `input_required` result's questions to the client (as
    /// server→client requests into `tx`) and collects the answers, keyed as
    /// the upstream keyed its questions. Err says why not.
    pub(crate) async fn ask(
        &self,
        input_requests: &Map<String, Value>,
        tx: &mpsc::UnboundedSender<Message>,
    ) -> Result<Map<String, Value>, String> {
        let mut pending = Vec::new();
        for (key, req) in input_requests {
            let method = req
                .get("method")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("input request {key:?} has no method"))?;
            let id = format!(
                "mcpgate-ask-{}",
                NEXT_QUESTION.fetch_add(1, Ordering::Relaxed)
            );
            let raw_id = jsonrpc::raw(&id);
            let (answer_tx, answer_rx) = oneshot::channel();
            self.waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(raw_id.get().to_owned(), answer_tx);
            let params = req.get("params").map(jsonrpc::raw);
            if tx.send(Message::request(raw_id, method, params)).is_err() {
                return Err("the client stopped waiting".into());
            }
            pending.push((key.clone(), answer_rx));
        }
        let collected = self.collect(pending, tx).await;
        if collected.is_err() {
            // The questions nobody waits for any more (their receivers are
            // gone with `collect`) are forgotten.
            self.waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, tx| !tx.is_closed());
        }
        collected
    }

    async fn collect(
        &self,
        pending: Vec<(String, oneshot::Receiver<Message>)>,
        tx: &mpsc::UnboundedSender<Message>,
    ) -> Result<Map<String, Value>, String> {
        let mut answers = Map::new();
        for (key, rx) in pending {
            let waited = tokio::select! {
                r = tokio::time::timeout(ANSWER_TTL, rx) => r,
                () = tx.closed() => return Err("the client stopped waiting".into()),
            };
            let m = match waited {
                Ok(Ok(m)) => m,
                Ok(Err(_)) => return Err("the client stopped waiting".into()),
                Err(_) => return Err(format!("the client did not answer within {ANSWER_TTL:?}")),
            };
            let value = match (m.result.as_deref(), m.error.as_deref()) {
                (Some(r), _) => serde_json::from_str(r.get()).unwrap_or_default(),
                (None, Some(e)) => {
                    return Err(format!(
                        "the client refused the upstream's question: {}",
                        e.get()
                    ));
                }
                (None, None) => Value::Null,
            };
            answers.insert(key, value);
        }
        Ok(answers)
    }
}

/// An `input_required` result: its questions and state.
pub(crate) struct InputRequired {
    pub(crate) requests: Map<String, Value>,
    pub(crate) state: Option<String>,
}

/// An `input_required` result in a response, if that is what it is.
pub(crate) fn input_required(m: &Message) -> Option<InputRequired> {
    if m.kind() != Some(Kind::Response) {
        return None;
    }
    let r: Value = serde_json::from_str(m.result.as_deref()?.get()).ok()?;
    if r.get("resultType").and_then(Value::as_str) != Some("input_required") {
        return None;
    }
    Some(InputRequired {
        requests: r
            .get("inputRequests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        state: r
            .get("requestState")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The retry of `original` with the client's answers and the upstream's state.
pub(crate) fn retry(
    original: &Message,
    answers: Map<String, Value>,
    state: Option<String>,
) -> Message {
    let mut params: Map<String, Value> = original.params_as().unwrap_or_default();
    params.insert("inputResponses".into(), Value::Object(answers));
    match state {
        Some(s) => params.insert("requestState".into(), s.into()),
        None => params.remove("requestState"),
    };
    Message {
        params: Some(jsonrpc::raw(&params)),
        ..original.clone()
    }
}

/// A 2026-07-28 result as a session client expects it: without the
/// 2026-07-28-only members (`resultType`, cache hints).
pub(crate) fn older_result(mut m: Message) -> Message {
    if let Some(r) = m.result.as_deref()
        && let Ok(mut o) = serde_json::from_str::<Map<String, Value>>(r.get())
    {
        for k in ["resultType", "ttlMs", "cacheScope"] {
            o.remove(k);
        }
        m.result = Some(jsonrpc::raw(&o));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_base64_wrapped_only_when_needed() {
        assert_eq!(encode_header_value("eu-west"), "eu-west");
        assert_eq!(encode_header_value("écho"), "=?base64?w6ljaG8=?=");
        assert_eq!(encode_header_value(" padded"), "=?base64?IHBhZGRlZA==?=");
    }

    #[test]
    fn what_is_learnt_of_an_upstream_is_asked_again_when_stale_or_forgotten() {
        let era = EraCache::default();
        assert!(era.discovered().is_none(), "unknown at first");
        era.record(None, false);
        assert!(matches!(era.discovered(), Some(None)));
        era.unanswered(Duration::ZERO);
        assert!(
            era.discovered().is_none(),
            "an unanswered probe is asked again once stale"
        );
        era.record(
            Some(serde_json::json!({"supportedVersions": [MODERN_VERSION]})),
            true,
        );
        assert!(matches!(era.discovered(), Some(Some(_))));
        assert!(era.modern_only().is_some());
        era.forget();
        assert!(era.discovered().is_none() && era.modern_only().is_none());
    }

    #[test]
    fn initialize_is_answered_from_the_discovery() {
        let discover = serde_json::json!({
            "supportedVersions": ["2026-07-28"],
            "capabilities": {"tools": {}},
            "instructions": "be kind",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "up", "version": "1"}},
        });
        let answer = Message::response(jsonrpc::num_id(1), jsonrpc::raw(&discover));
        assert!(modern_discovery(&answer).is_some());
        let older = Message::response(
            jsonrpc::num_id(1),
            jsonrpc::raw(&serde_json::json!({"supportedVersions": ["2025-11-25"]})),
        );
        assert!(modern_discovery(&older).is_none());
        let r = initialize_result(&discover, Some("2025-06-18"));
        assert_eq!(r["protocolVersion"], "2025-06-18");
        assert_eq!(r["serverInfo"]["name"], "up");
        assert_eq!(r["instructions"], "be kind");
        assert_eq!(r["capabilities"], serde_json::json!({"tools": {}}));
        let newer = initialize_result(&discover, Some("2026-07-28"));
        assert_eq!(
            newer["protocolVersion"],
            crate::protocol::GATEWAY_PROTOCOL_VERSION
        );
    }

    #[test]
    fn an_input_required_round_is_retried_with_answers_and_state() {
        let original = Message::request(
            jsonrpc::num_id(7),
            "tools/call",
            Some(jsonrpc::raw(
                &serde_json::json!({"name": "t", "requestState": "old"}),
            )),
        );
        let result = serde_json::json!({"resultType": "input_required",
            "inputRequests": {"k": {"method": "roots/list"}}, "requestState": "s2"});
        let asked = input_required(&Message::response(
            jsonrpc::num_id(7),
            jsonrpc::raw(&result),
        ))
        .expect("an input_required result");
        assert_eq!(asked.state.as_deref(), Some("s2"));
        let mut answers = Map::new();
        answers.insert("k".into(), serde_json::json!({"roots": []}));
        let again: Value = retry(&original, answers, asked.state).params_as().unwrap();
        assert_eq!(again["requestState"], "s2");
        assert_eq!(again["inputResponses"]["k"]["roots"], serde_json::json!([]));
        assert_eq!(again["name"], "t");
        let done = serde_json::json!({"resultType": "complete", "ttlMs": 0, "content": []});
        let plain = older_result(Message::response(jsonrpc::num_id(7), jsonrpc::raw(&done)));
        let plain: Value = serde_json::from_str(plain.result.unwrap().get()).unwrap();
        assert_eq!(plain, serde_json::json!({"content": []}));
    }

    #[test]
    fn marked_parameters_become_headers() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "amount": {"type": "integer", "x-mcp-header": "Amount"},
            "blob": {"type": "object", "x-mcp-header": "Blob"},
            "inner": {"type": "object", "properties": {"flag": {"type": "boolean", "x-mcp-header": "Flag"}}}
        }});
        let mut found = x_mcp_headers(&schema);
        found.sort();
        assert_eq!(found.len(), 3, "{found:?}");
        let args = serde_json::json!({"region": "eu", "amount": 7, "inner": {"flag": true}});
        let h = param_headers(&found, &args);
        assert_eq!(h["mcp-param-region"], "eu");
        assert_eq!(h["mcp-param-amount"], "7");
        assert_eq!(h["mcp-param-flag"], "true");
        let decode = |v: &str| Some(v.to_owned());
        assert!(check_param_headers(&found, &args, &h, decode).is_ok());
        let mut wrong = h.clone();
        wrong.insert("mcp-param-region", HeaderValue::from_static("us"));
        assert!(check_param_headers(&found, &args, &wrong, decode).is_err());
        let mut missing = h;
        missing.remove("mcp-param-amount");
        assert!(check_param_headers(&found, &args, &missing, decode).is_err());
    }
}
