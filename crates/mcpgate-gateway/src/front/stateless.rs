//! Clients of 2026-07-28: no session, every request standalone, routing headers
//! checked against the body. Against an upstream of an older era the gateway
//! keeps one upstream session of its own and translates (see docs/ERA-BRIDGING.md).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use mcpgate_guard::Authorized;
use serde_json::Value;
use serde_json::value::RawValue;

use super::answer::modern_json;
use super::caller::AuthenticatedCaller;
use super::era::Endpoint;
use super::mrtr::{self, Step};
use super::native::Native;
use super::request::{Post, authorize_post, header_str, read_post};
use crate::error::GatewayError;
use crate::events::EventLog;
use crate::jsonrpc::{self, Kind, Message, code};
use crate::protocol::MODERN_VERSION;
use crate::reply::{json, sse};
use crate::rewrite::{Rewrite, result_value};
use crate::state::Gateway;
use crate::upstream::{Link, Upstream};

use crate::upstream::modern::{META_CAPABILITIES, META_VERSION};
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// Results that carry cache hints in 2026-07-28.
pub(crate) const CACHEABLE: &[&str] = &[
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

fn mismatch(id: Option<Box<RawValue>>, what: &str) -> Response {
    tracing::info!(reason = %what, "refused a 2026-07-28 request (header mismatch)");
    GatewayError::HeaderMismatch(what.to_owned()).answer(id)
}

fn invalid_params(id: Option<Box<RawValue>>, what: String) -> Response {
    tracing::info!(reason = %what, "refused a 2026-07-28 request (invalid params)");
    GatewayError::InvalidParams(what).answer(id)
}

/// Decodes a routing header value: plain, or `=?base64?…?=`.
pub(crate) fn decode_header(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(v.to_owned()),
    }
}

/// Checks a request like a 2026-07-28 server, in the spec's order: `_meta`
/// carries the protocol version and the client capabilities (else -32602);
/// `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` agree with the body and
/// appear once (else -32020); the version is a string the gateway speaks.
/// Ok says whether the request carries a `requestState` (read in the same pass).
pub(crate) fn check_headers(
    headers: &HeaderMap,
    msg: &Message,
    kind: Kind,
) -> Result<bool, Response> {
    if kind != Kind::Request {
        return Ok(false);
    }
    let method = msg.method.as_deref().unwrap_or_default();
    let field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    // One pass over `params` for `_meta`, the name and `requestState`, and
    // one over `_meta` for its two keys: the arguments and the rest are
    // skipped, not built. (With no name to read, `_meta` is asked for twice:
    // the first wins.)
    let [meta, named, state] =
        msg.params_members(["_meta", field.unwrap_or("_meta"), "requestState"]);
    let Some([meta_version, capabilities]) =
        meta.and_then(|m| jsonrpc::members(m, [META_VERSION, META_CAPABILITIES]))
    else {
        return Err(invalid_params(
            msg.id.clone(),
            format!(
                "Invalid params: params._meta must be an object carrying {META_VERSION:?} and {META_CAPABILITIES:?} on every 2026-07-28 request"
            ),
        ));
    };
    let (Some(meta_version), Some(_)) = (meta_version, capabilities) else {
        let missing: Vec<&str> = [
            (META_VERSION, meta_version),
            (META_CAPABILITIES, capabilities),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
        return Err(invalid_params(
            msg.id.clone(),
            format!(
                "Invalid params: params._meta is missing the required key(s): {}",
                missing.join(", ")
            ),
        ));
    };
    for name in ["mcp-protocol-version", "mcp-method", "mcp-name"] {
        if headers.get_all(name).iter().count() > 1 {
            return Err(mismatch(
                msg.id.clone(),
                &format!("the {name} header appears more than once"),
            ));
        }
    }
    // A string's text; `None` for any other JSON value.
    let version = jsonrpc::raw_str(meta_version);
    if let Some(v) = &version
        && v.as_ref() != MODERN_VERSION
    {
        // Shown as JSON, as the client wrote it (escapes decoded).
        let shown = serde_json::Value::from(v.as_ref());
        return Err(mismatch(
            msg.id.clone(),
            &format!("MCP-Protocol-Version header does not match _meta version {shown}"),
        ));
    }
    match header_str(headers, "mcp-method") {
        None => {
            return Err(mismatch(
                msg.id.clone(),
                "the Mcp-Method header is required on every request",
            ));
        }
        Some(h) if h != method => {
            return Err(mismatch(
                msg.id.clone(),
                &format!("Mcp-Method header {h:?} does not match body method {method:?}"),
            ));
        }
        _ => {}
    }
    if let Some(field) = field {
        let body_value = named.and_then(jsonrpc::raw_str).unwrap_or_default();
        match header_str(headers, "mcp-name").map(decode_header) {
            None => {
                return Err(mismatch(
                    msg.id.clone(),
                    &format!("the Mcp-Name header is required on {method}"),
                ));
            }
            Some(h) if h.as_deref() != Some(&*body_value) => {
                return Err(mismatch(
                    msg.id.clone(),
                    &format!("Mcp-Name header does not match body {field} {body_value:?}"),
                ));
            }
            _ => {}
        }
    }
    if version.is_none() {
        return Err(invalid_params(
            msg.id.clone(),
            "Invalid params: the _meta protocol version must be a string".into(),
        ));
    }
    Ok(state.is_some())
}

/// One stateless POST.
pub(crate) async fn serve(
    gw: Gateway,
    endpoint: Endpoint,
    caller: AuthenticatedCaller,
    req: Request,
) -> Response {
    match read_post(req, gw.shared.limits.max_body_bytes).await {
        Ok(p) => post(gw, endpoint, caller, p).await,
        Err(r) => r,
    }
}

// Shaped like the sessionful era's `post`, but the two route differently
// after their shared prologue (`authorize_post`): no session here, and a
// follow-up may be parked on another replica.
async fn post(
    gw: Gateway,
    endpoint: Endpoint,
    caller: AuthenticatedCaller,
    post: Post,
) -> Response {
    let Post { headers, msg, kind } = post;
    let Endpoint { name, upstream, .. } = endpoint;
    let resumes = match check_headers(&headers, &msg, kind) {
        Ok(resumes) => resumes,
        Err(r) => return r,
    };
    let (msg, proof) = match authorize_post(&gw, &name, &caller, msg, None).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // A follow-up for a call parked on another replica is answered there (one hop).
    if resumes
        && !caller.forwarded
        && let Some(owner) = mrtr::parked_elsewhere(
            &gw.shared.session_keys,
            &msg,
            caller.principal().subject().as_str(),
            gw.shared.internal_advertise.as_deref(),
        )
    {
        let fwd = crate::forward::send::Forward {
            owner: &owner,
            upstream: &name,
            method: axum::http::Method::POST,
            headers: &headers,
            body: msg.to_bytes(),
            id: msg.id,
            held: crate::forward::send::Held::ParkedCall,
        };
        return crate::forward::send::send(&gw, &caller, fwd).await;
    }
    // An upstream that speaks 2026-07-28 itself gets the request as it is.
    if let Upstream::Http(h) = &*upstream {
        let known = match h.known_modern() {
            Some(known) => Ok(known),
            None => {
                let id = gw.shared.guard.identity(&caller.authed, &name);
                h.discover(id.headers, id.token, id.on_behalf_of)
                    .await
                    .map(|d| d.is_some())
            }
        };
        match known {
            Ok(true) => {
                let native = Native {
                    name: &name,
                    upstream: h,
                    headers: &headers,
                    decode: decode_header,
                };
                return native.forward(&gw, &caller, msg, kind, proof).await;
            }
            Ok(false) => {}
            Err(e) => return GatewayError::from(&e).answer(msg.id),
        }
    }
    let method = msg.method.clone().unwrap_or_default();
    // An older upstream knows no `Mcp-Param-*` headers: the gateway checks
    // them as a 2026-07-28 server would, and does not send them on.
    if method == "tools/call"
        && let Err(why) = check_tool_params(upstream.era(), &msg, &headers)
    {
        tracing::info!(upstream = %name, reason = %why, "refused a tools/call whose Mcp-Param headers disagree with its arguments");
        return GatewayError::HeaderMismatch(why).answer(msg.id);
    }
    // The upstream session is the gateway's, one per subject, and never closed
    // here. It declared every client capability; each request's own
    // `clientCapabilities` decide whether an upstream question reaches the client.
    let link = match upstream
        .open_stateless(&proof, &gw.shared.guard.identity(&caller.authed, &name))
        .await
    {
        Ok(l) => l,
        Err(e) => return GatewayError::from(&e).answer(msg.id),
    };
    match kind {
        Kind::Response => GatewayError::InvalidRequest("2026-07-28 clients do not send responses; server requests arrive as input_required results".into()).answer(msg.id),
        Kind::Notification => match link.send(&proof, msg).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(e) => GatewayError::from(&e).answer(None),
        },
        Kind::Request => match method.as_str() {
            "server/discover" => discover(&link, msg.id),
            "subscriptions/listen" => listen(&gw, link, msg, &proof).await,
            "initialize"
            | "ping"
            | "logging/setLevel"
            | "resources/subscribe"
            | "resources/unsubscribe" => GatewayError::MethodNotFound(format!("Method not found: {method} does not exist in protocol 2026-07-28")).answer(msg.id),
            _ => {
                let cacheable = CACHEABLE.contains(&method.as_str());
                let filter = gw
                    .shared
                    .guard
                    .list_filter(&name, caller.principal(), &method);
                let lists_tools = method == "tools/list";
                let learn = upstream.clone();
                let rewrite: Rewrite = Arc::new(move |m: &mut Message| {
                    if lists_tools && let Some(v) = result_value(m) {
                        learn.era().note_tools(&v);
                    }
                    if let Some(f) = &filter {
                        f(m);
                    }
                    rewrite_result(m, cacheable);
                });
                let to = Bridged {
                    link: Arc::new(link),
                    seal_as: name.clone(),
                    timeout: gw.timeout_for(&name),
                };
                call(&gw, to, msg, &method, rewrite, proof).await
            }
        },
    }
}

/// Where a bridged request goes: the gateway's upstream session, the name a
/// `requestState` it issues is bound to, and the upstream's timeout.
pub(crate) struct Bridged {
    pub(crate) link: Arc<Link>,
    /// The upstream's name, or `<virtual server>/<member>` for a member of
    /// a virtual server: a state issued here is good for that target only.
    pub(crate) seal_as: Arc<str>,
    pub(crate) timeout: std::time::Duration,
}

/// A forwarded request: JSON when the first thing back is the answer, SSE when
/// progress comes first; an upstream question becomes `input_required`.
pub(crate) async fn call(
    gw: &Gateway,
    to: Bridged,
    mut msg: Message,
    method: &str,
    rewrite: Rewrite,
    proof: Authorized,
) -> Response {
    let Bridged {
        link,
        seal_as,
        timeout,
    } = to;
    let parked = gw.shared.parked.clone();
    let seal = mrtr::StateSeal {
        keys: gw.shared.session_keys.clone(),
        upstream: seal_as,
        owner: gw.shared.internal_advertise.clone(),
    };
    let state = msg
        .param_str("requestState")
        .map(std::borrow::Cow::into_owned);
    // When the request went upstream: its first answer is due `timeout` later.
    let mut sent = tokio::time::Instant::now();
    let mut call = match state {
        Some(state) => {
            match mrtr::resume(&parked, seal, &msg, method, &state, rewrite, proof).await {
                Ok(c) => c,
                Err(e) => return modern_json(&e),
            }
        }
        None => {
            let client_id = msg.id.clone();
            let upstream_id = mrtr::unique_id();
            let capabilities = mrtr::client_capabilities(msg.params.as_deref());
            msg.id = Some(upstream_id.clone());
            msg.params = msg.params.take().map(strip_modern_meta);
            sent = tokio::time::Instant::now();
            mcpgate_telemetry::note_upstream_sent();
            let ex = match link.request(&proof, msg).await {
                Ok(ex) => ex.until(gw.shared.stopping.stop_for(Some(upstream_id.clone()))),
                Err(e) => {
                    // An HTTP upstream's wait (and its timeout) is inside the request.
                    mcpgate_telemetry::note_upstream_answered(true);
                    return GatewayError::from(&e).answer(client_id);
                }
            };
            mrtr::Call {
                ex: Some(ex),
                link,
                client_id,
                upstream_id,
                method: method.to_owned(),
                capabilities,
                rewrite,
                parked,
                proof,
                seal,
                settled: false,
            }
        }
    };
    let first = timeout.saturating_sub(sent.elapsed());
    let step = call.step(first, timeout).await;
    mcpgate_telemetry::note_upstream_answered(matches!(step, Step::Failed(_)));
    match step {
        Step::Final(m) | Step::Failed(m) => modern_json(&m),
        Step::Interim(m) => {
            let log = EventLog::new(1, gw.shared.limits.replay_events, None);
            log.push(&m);
            let reader = log.reader(Some(0));
            let (hung_up, mut hangup) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(async move {
                loop {
                    let step = tokio::select! {
                        s = call.step(timeout, timeout) => s,
                        // The client closed the stream: dropping the
                        // unanswered call cancels it upstream.
                        _ = &mut hangup => break,
                    };
                    match step {
                        Step::Interim(m) => log.push(&m),
                        Step::Final(m) | Step::Failed(m) => {
                            log.push(&m);
                            break;
                        }
                    }
                }
                drop(call);
                log.close();
            });
            super::hangup::on_body_drop(sse(reader), move || drop(hung_up))
        }
    }
}

/// What a `subscriptions/listen` asks for, or what of it is honoured.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Filter {
    pub(crate) tools_list_changed: bool,
    pub(crate) prompts_list_changed: bool,
    pub(crate) resources_list_changed: bool,
    pub(crate) resource_subscriptions: Vec<String>,
}

impl Filter {
    /// What the request asks for.
    pub(crate) fn wanted(msg: &Message) -> Filter {
        msg.params_as::<Value>()
            .and_then(|p| serde_json::from_value(p.get("notifications")?.clone()).ok())
            .unwrap_or_default()
    }
}

/// `subscriptions/listen` against an older upstream: the gateway's upstream
/// session for this subject already receives list-changed and resource-updated
/// notifications; this stream acknowledges what can be honoured and forwards
/// the opted-in ones, tagged with the subscription id (the request's id).
async fn listen(gw: &Gateway, link: Link, msg: Message, proof: &Authorized) -> Response {
    let wanted = Filter::wanted(&msg);
    let caps: Value = link
        .init_result()
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    let cap = |kind: &str, flag: &str| caps["capabilities"][kind][flag].as_bool().unwrap_or(false);
    let honoured = Filter {
        tools_list_changed: wanted.tools_list_changed && cap("tools", "listChanged"),
        prompts_list_changed: wanted.prompts_list_changed && cap("prompts", "listChanged"),
        resources_list_changed: wanted.resources_list_changed && cap("resources", "listChanged"),
        resource_subscriptions: if cap("resources", "subscribe") {
            wanted.resource_subscriptions
        } else {
            Vec::new()
        },
    };
    let Some(rx) = link.listen() else {
        return GatewayError::MethodNotFound(
            "Method not found: subscriptions/listen is not bridged to a legacy SSE upstream".into(),
        )
        .answer(msg.id);
    };
    for uri in &honoured.resource_subscriptions {
        let params = jsonrpc::raw(&serde_json::json!({ "uri": uri }));
        if let Ok(mut ex) = link
            .request(
                proof,
                Message::request(mrtr::unique_id(), "resources/subscribe", Some(params)),
            )
            .await
        {
            let _ = tokio::time::timeout(gw.timeout_for_any(), ex.recv()).await;
        }
    }
    let id = msg.id.unwrap_or_else(jsonrpc::null_id);
    listen_stream(gw, &id, honoured, rx)
}

/// A `subscriptions/listen` answer: its acknowledgement, then the
/// notifications from `rx` that `honoured` lets through, tagged with the
/// subscription id (the request's `id`), until the client goes away.
pub(crate) fn listen_stream(
    gw: &Gateway,
    id: &RawValue,
    honoured: Filter,
    mut rx: tokio::sync::broadcast::Receiver<Message>,
) -> Response {
    let sub_meta = serde_json::json!({ "io.modelcontextprotocol/subscriptionId": serde_json::from_str::<Value>(id.get()).unwrap_or_default() });
    let ack = serde_json::json!({
        "_meta": sub_meta,
        "notifications": {
            "toolsListChanged": honoured.tools_list_changed,
            "promptsListChanged": honoured.prompts_list_changed,
            "resourcesListChanged": honoured.resources_list_changed,
            "resourceSubscriptions": honoured.resource_subscriptions,
        },
    });
    let log = EventLog::new(1, gw.shared.limits.replay_events, None);
    log.push(&Message::notification(
        "notifications/subscriptions/acknowledged",
        Some(jsonrpc::raw(&ack)),
    ));
    let reader = log.reader(Some(0));
    tokio::spawn(async move {
        // Ends when the client goes away (the log's last reader is dropped) or the upstream does.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
        loop {
            let next = tokio::select! {
                r = rx.recv() => r,
                _ = tick.tick() => {
                    if Arc::strong_count(&log) <= 1 {
                        break;
                    }
                    continue;
                }
            };
            let m = match next {
                Ok(m) => m,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            };
            let method = m.method.as_deref().unwrap_or_default();
            let pass = match method {
                "notifications/tools/list_changed" => honoured.tools_list_changed,
                "notifications/prompts/list_changed" => honoured.prompts_list_changed,
                "notifications/resources/list_changed" => honoured.resources_list_changed,
                "notifications/resources/updated" => m
                    .params_as::<Value>()
                    .and_then(|p| p.get("uri")?.as_str().map(str::to_owned))
                    .is_some_and(|u| honoured.resource_subscriptions.contains(&u)),
                _ => false,
            };
            if !pass {
                continue;
            }
            let mut params: serde_json::Map<String, Value> = m.params_as().unwrap_or_default();
            params.insert("_meta".into(), sub_meta.clone());
            log.push(&Message::notification(method, Some(jsonrpc::raw(&params))));
            if Arc::strong_count(&log) <= 1 {
                break;
            }
        }
        log.close();
    });
    sse(reader)
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments,
/// when the tool's listing (its `x-mcp-header` parameters) was seen.
pub(crate) fn check_tool_params(
    era: &crate::upstream::modern::EraCache,
    msg: &Message,
    headers: &HeaderMap,
) -> Result<(), String> {
    if !era.declares_param_headers() {
        return Ok(());
    }
    let Some(params) = msg
        .param_str("name")
        .and_then(|tool| era.tool_headers(&tool))
    else {
        return Ok(());
    };
    let args: Value = msg
        .param("arguments")
        .and_then(|a| serde_json::from_str(a.get()).ok())
        .unwrap_or_default();
    crate::upstream::modern::check_param_headers(&params, &args, headers, decode_header)
}

/// Older upstreams know nothing of the per-request protocol keys; the gateway's
/// upstream session already negotiated a version, so they are dropped. The
/// other members, and the rest of `_meta`, go on as the client wrote them.
fn strip_modern_meta(params: Box<RawValue>) -> Box<RawValue> {
    let Some(mut members) = jsonrpc::entries(&params) else {
        return params;
    };
    let Some(at) = members.iter().position(|(k, _)| k == "_meta") else {
        return params;
    };
    let Some(meta) = jsonrpc::entries(members[at].1) else {
        return params;
    };
    let kept: Vec<_> = meta
        .iter()
        .filter(|(k, _)| !k.starts_with("io.modelcontextprotocol/"))
        .map(|(k, v)| (k.as_ref(), *v))
        .collect();
    if kept.len() == meta.len() {
        return params;
    }
    let kept = (!kept.is_empty()).then(|| jsonrpc::object_of(kept));
    match &kept {
        Some(m) => members[at].1 = m,
        None => {
            members.remove(at);
        }
    }
    jsonrpc::object_of(members.iter().map(|(k, v)| (k.as_ref(), *v)))
}

/// `server/discover` answered from the upstream's `initialize` result.
fn discover(link: &crate::upstream::Link, id: Option<Box<RawValue>>) -> Response {
    let init: Value = link
        .init_result()
        .and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default();
    let mut result = serde_json::json!({
        "resultType": "complete",
        "supportedVersions": [MODERN_VERSION],
        "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| serde_json::json!({})),
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(instructions) = init.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    if let Some(info) = init.get("serverInfo") {
        result["_meta"] = serde_json::json!({ META_SERVER_INFO: info });
    }
    json(
        StatusCode::OK,
        &Message::response(id.unwrap_or_else(jsonrpc::null_id), jsonrpc::raw(&result)),
    )
}

/// Adds what 2026-07-28 requires of results and older servers do not send:
/// `resultType`, and cache hints on list and read results. Nothing is cached
/// by default (`ttlMs: 0`, `private`) because answers may be per user.
pub(crate) fn rewrite_result(m: &mut Message, cacheable: bool) {
    if let Some(result) = m.result.as_deref() {
        // The members present are found without building the result; the
        // missing ones are written in front of the rest, left as it is.
        let Some([kind, ttl, scope]) =
            jsonrpc::members(result, ["resultType", "ttlMs", "cacheScope"])
        else {
            return;
        };
        let mut added = String::new();
        if kind.is_none() {
            added.push_str(r#""resultType":"complete","#);
        }
        if cacheable && ttl.is_none() {
            added.push_str(r#""ttlMs":0,"#);
        }
        if cacheable && scope.is_none() {
            added.push_str(r#""cacheScope":"private","#);
        }
        let Some(rest) = result.get().trim_start().strip_prefix('{') else {
            return;
        };
        if added.is_empty() {
            return;
        }
        let rest = rest.trim_start();
        if rest.starts_with('}') {
            added.pop();
        }
        if let Ok(r) = RawValue::from_string(format!("{{{added}{rest}")) {
            m.result = Some(r);
        }
    } else if let Some(err) = m.error.as_deref() {
        // Resource-not-found moved from -32002 to -32602 in 2026-07-28.
        if let Ok(mut e) = serde_json::from_str::<serde_json::Map<String, Value>>(err.get())
            && e.get("code").and_then(Value::as_i64) == Some(-32002)
        {
            e.insert("code".into(), code::INVALID_PARAMS.into());
            m.error = Some(jsonrpc::raw(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_routing_headers() {
        assert_eq!(decode_header("echo").as_deref(), Some("echo"));
        assert_eq!(
            decode_header("=?base64?w6ljaG8=?=").as_deref(),
            Some("écho")
        );
        assert_eq!(decode_header("=?base64?***?="), None);
    }

    #[test]
    fn results_gain_result_type_and_cache_hints() {
        let mut m = Message::parse(br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#).unwrap();
        rewrite_result(&mut m, true);
        let r: Value = serde_json::from_str(m.result.unwrap().get()).unwrap();
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["ttlMs"], 0);
        assert_eq!(r["cacheScope"], "private");
        let mut e =
            Message::parse(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"nf"}}"#)
                .unwrap();
        rewrite_result(&mut e, false);
        assert!(e.error.unwrap().get().contains("-32602"));
    }

    #[test]
    fn results_keep_what_they_carry() {
        let rewritten = |result: &str, cacheable: bool| {
            let mut m = Message::response(
                jsonrpc::num_id(1),
                RawValue::from_string(result.to_owned()).unwrap(),
            );
            rewrite_result(&mut m, cacheable);
            m.result.unwrap().get().to_owned()
        };
        assert_eq!(rewritten("{}", false), r#"{"resultType":"complete"}"#);
        assert_eq!(
            rewritten(r#"{ "content":[]}"#, false),
            r#"{"resultType":"complete","content":[]}"#
        );
        assert_eq!(
            rewritten(r#"{"resultType":"input_required","ttlMs":5}"#, true),
            r#"{"cacheScope":"private","resultType":"input_required","ttlMs":5}"#
        );
        let kept = r#"{"resultType":"complete","ttlMs":1,"cacheScope":"public"}"#;
        assert_eq!(rewritten(kept, true), kept);
        assert_eq!(rewritten("[1]", true), "[1]");
    }

    #[test]
    fn client_capabilities_are_the_names_declared() {
        let caps = |params: &str| {
            let mut names: Vec<String> =
                mrtr::client_capabilities(Some(&RawValue::from_string(params.to_owned()).unwrap()))
                    .into_iter()
                    .collect();
            names.sort();
            names
        };
        assert_eq!(
            caps(
                r#"{"arguments":{"_meta":1},"_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{},"elicitation":{"form":{}}}}}"#
            ),
            ["elicitation", "sampling"]
        );
        assert!(caps(r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":[1]}}"#).is_empty());
        assert!(caps(r#"{"_meta":[]}"#).is_empty());
        assert!(caps("[]").is_empty());
    }

    #[test]
    fn only_the_protocol_keys_of_meta_are_dropped() {
        let stripped = |params: &str| {
            strip_modern_meta(RawValue::from_string(params.to_owned()).unwrap())
                .get()
                .to_owned()
        };
        let modern = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
        assert_eq!(
            stripped(&format!(
                r#"{{"name":"echo","_meta":{modern},"arguments":{{"text":"a b"}}}}"#
            )),
            r#"{"name":"echo","arguments":{"text":"a b"}}"#
        );
        assert_eq!(
            stripped(
                r#"{"_meta":{"progressToken":7,"io.modelcontextprotocol/clientInfo":{}},"name":"t"}"#
            ),
            r#"{"_meta":{"progressToken":7},"name":"t"}"#
        );
        // Nothing to drop: the params go on byte for byte.
        for same in [
            r#"{"name":"t", "_meta":{"k":1}}"#,
            r#"{"name":"t"}"#,
            "[1]",
            r#"{"_meta":3}"#,
        ] {
            assert_eq!(stripped(same), same);
        }
    }
}
