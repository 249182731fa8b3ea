//! The layer around the whole router: one span, one access log line and the
//! HTTP and MCP metrics per request, from what the request itself says
//! (method, route template, client address) and what handlers noted
//! ([`crate::note`]) by the time the response head leaves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::audit::{AuditEvent, AuditKind};
use crate::mcp_text::Field;
use crate::metrics::McpOutcome;
use crate::note::{NOTE, Note, clean, lock};
use crate::otlp::proto::Attr;
use crate::request_span::RequestSpan;

use crate::logs::{ACCESS_TARGET, access_log};

/// Wraps every route of `router` (the fallback included) in the layer.
pub fn observe(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(observe_request))
}

/// Whether anything the layer does is on: metrics, traces, the access log,
/// the audit trail. When none is, a request passes straight through, but for
/// the OAuth endpoints, whose refusals are always logged.
fn anything_on() -> bool {
    crate::metrics().recording()
        || crate::pipeline::enabled()
        || crate::audit::installed()
        || access_log()
}

async fn observe_request(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>();
    let route = matched.map_or("unmatched", MatchedPath::as_str);
    if !anything_on() && !is_oauth_endpoint(route) {
        return next.run(req).await;
    }
    let start = Instant::now();
    // The template is shared (an `Arc`): kept without a copy.
    let matched = matched.cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let uri = req.uri().clone();
    // The client an authorization request names is in its query.
    let query_client = route
        .ends_with("/authorize")
        .then(|| req.uri().query())
        .flatten()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "client_id")
                .map(|(_, v)| clean(&v))
        });
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let given_id = req.headers().get("x-request-id").cloned();
    let mut note = Note {
        client_id: query_client,
        ..Note::default()
    };
    let request_id = RequestId::new(given_id);
    if crate::pipeline::enabled() {
        note.span = Some(RequestSpan::new(
            SystemTime::now(),
            crate::pipeline::parent_from_headers(req.headers()),
        ));
    }
    let shared = Arc::new(Mutex::new(note));
    let resp = NOTE.scope(shared.clone(), next.run(req)).await;
    let note = std::mem::take(&mut *lock(&shared));
    finish(
        &Seen {
            route,
            method: &method,
            uri: &uri,
            peer,
            request_id,
            elapsed: start.elapsed(),
        },
        note,
        &resp,
    );
    resp
}

/// The request's id: the client's `X-Request-Id`, or one made when a log
/// line or a span first needs it.
struct RequestId {
    given: Option<http::HeaderValue>,
    made: std::sync::OnceLock<Text>,
}

impl RequestId {
    fn new(given: Option<http::HeaderValue>) -> RequestId {
        RequestId {
            given: given.filter(|v| !v.is_empty() && v.to_str().is_ok()),
            made: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> &str {
        self.made
            .get_or_init(|| match &self.given {
                Some(v) => Text::Owned(clean(v.to_str().unwrap_or_default())),
                None => new_request_id(),
            })
            .as_str()
    }
}

/// What the layer saw of the request itself.
struct Seen<'a> {
    route: &'a str,
    method: &'a http::Method,
    uri: &'a http::Uri,
    peer: Option<SocketAddr>,
    request_id: RequestId,
    elapsed: Duration,
}

fn finish(seen: &Seen<'_>, mut note: Note, resp: &Response) {
    let status = resp.status().as_u16();
    let m = crate::metrics();
    m.http_request(seen.route, status);
    // The session id of a new session is in the answer to initialize.
    if !note.mcp.is_set(Field::SessionId)
        && note.span.is_some()
        && let Some(s) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
    {
        note.mcp.set(Field::SessionId, s);
    }
    // A request that never got its answer: the wait ends now.
    crate::note::upstream_answered(&mut note, true);
    if let (Some(upstream), Some(method), false) =
        (note.upstream(), note.mcp_method(), note.deferred)
    {
        crate::mcp_answered(
            upstream,
            method,
            McpOutcome::from_status(status),
            seen.elapsed,
            note.upstream_wait.unwrap_or_default(),
        );
    }
    if access_log() {
        let duration_ms = seen.elapsed.as_secs_f64() * 1000.0;
        let path = clean(seen.uri.path());
        tracing::info!(
            target: ACCESS_TARGET,
            request_id = seen.request_id.get(),
            client = seen.peer.map(|p| p.to_string()),
            method = seen.method.as_str(),
            path = path.as_str(),
            status,
            duration_ms,
            subject = note.subject.as_deref(),
            client_id = note.client_id.as_deref(),
            upstream = note.upstream(),
            mcp_method = note.mcp_method(),
            tool = note.tool(),
            "{} {path} {status}",
            seen.method,
        );
    }
    oauth_refusal(seen, &note, resp);
    if crate::audit::installed() {
        audit_events(&note, status, seen.elapsed);
    }
    // Last, so that the span can take the note's strings instead of copies.
    if let Some(span) = note.span.take() {
        end_span(seen, span, note, status);
    }
}

/// Ends the request's span with the HTTP and MCP attributes (OpenTelemetry's
/// semantic conventions; `mcpgate.*` for the gateway's own), borrowed from
/// the note and the request: nothing is copied for the span.
fn end_span(seen: &Seen<'_>, span: RequestSpan, note: Note, status: u16) {
    let method = seen.method.as_str();
    // The MCP conventions name the span "{method} {target}".
    let name: [&str; 3] = match (note.mcp_method(), note.tool()) {
        (Some(m), Some(t)) => [m, " ", t],
        (Some(m), None) => [m, "", ""],
        (None, _) => [method, " ", seen.route],
    };
    let path = crate::clean::clean_cow(seen.uri.path());
    let client = seen.peer.map(|p| client_address(p.ip()));
    let client = client.as_ref().map(Text::as_str);
    let mut a = [Attr::int("", 0); 13];
    let mut n = 0;
    macro_rules! push {
        ($attr:expr) => {{
            a[n] = $attr;
            n += 1;
        }};
    }
    push!(Attr::str("http.request.method", method));
    push!(Attr::str("http.route", seen.route));
    push!(Attr::str("url.path", &path));
    push!(Attr::int("http.response.status_code", i64::from(status)));
    if let Some(c) = &client {
        push!(Attr::str("client.address", c));
    }
    push!(Attr::str("mcpgate.request_id", seen.request_id.get()));
    if let Some(m) = note.mcp_method() {
        push!(Attr::str("mcp.method.name", m));
    }
    if let Some(t) = note.tool() {
        push!(Attr::str("gen_ai.tool.name", t));
        push!(Attr::str("gen_ai.operation.name", "execute_tool"));
    }
    if let Some(s) = note.session_id() {
        push!(Attr::str("mcp.session.id", s));
    }
    if let Some(id) = note.jsonrpc_id() {
        // A string id is noted as its JSON text; a number moves as is.
        let id = if id.starts_with('"') {
            id.trim_matches('"')
        } else {
            id
        };
        push!(Attr::str("jsonrpc.request.id", id));
    }
    if let Some(u) = note.upstream() {
        push!(Attr::str("mcpgate.upstream", u));
    }
    // The upstream call's span repeats the upstream, method and tool.
    let mut call = [Attr::int("", 0); 3];
    let mut c = 0;
    for (k, v) in [
        ("mcpgate.upstream", note.upstream()),
        ("mcp.method.name", note.mcp_method()),
        ("gen_ai.tool.name", note.tool()),
    ] {
        if let Some(v) = v {
            call[c] = Attr::str(k, v);
            c += 1;
        }
    }
    span.end(
        SystemTime::now(),
        &name,
        &a[..n],
        status >= 500,
        &note.phases,
        &call[..c],
    );
}

/// The OAuth endpoints whose refusals a user debugs.
fn is_oauth_endpoint(route: &str) -> bool {
    ["/authorize", "/token", "/register"]
        .iter()
        .any(|e| route.ends_with(e))
}

/// Logs a refused `/authorize`, `/token` or `/register` at warn, with the
/// client it named and the reason, and counts it.
fn oauth_refusal(seen: &Seen<'_>, note: &Note, resp: &Response) {
    let status = resp.status().as_u16();
    let (code, reason) = match &note.oauth_error {
        Some((code, why)) => ((*code).to_owned(), why.clone()),
        None if !is_oauth_endpoint(seen.route) => return,
        // An authorization error goes back to the client in the redirect.
        None => match redirect_error(resp) {
            Some(e) => e,
            None if status >= 400 => (
                format!("http_{status}"),
                "refused before an OAuth error was chosen (see the lines above)".to_owned(),
            ),
            None => return,
        },
    };
    crate::metrics().oauth_failure(seen.route, &code);
    tracing::warn!(
        target: ACCESS_TARGET,
        request_id = seen.request_id.get(),
        endpoint = seen.route,
        client_id = note.client_id.as_deref(),
        error = %code,
        status,
        "refused {}: {code}: {reason}",
        clean(seen.uri.path()),
    );
}

/// `error` and `error_description` from a redirect's `Location`.
fn redirect_error(resp: &Response) -> Option<(String, String)> {
    let location = resp.headers().get(http::header::LOCATION)?.to_str().ok()?;
    let query = location.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    let mut code = None;
    let mut description = String::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "error" => code = Some(clean(&v)),
            "error_description" => description = clean(&v),
            _ => {}
        }
    }
    code.map(|c| (c, description))
}

fn audit_events(note: &Note, status: u16, elapsed: Duration) {
    let subject = note.subject.clone();
    if let Some(reason) = &note.denied {
        let mut e = AuditEvent::new(AuditKind::PolicyDenied)
            .client(note.client_id.clone())
            .outcome(reason.clone());
        e.subject = subject.clone();
        e.upstream = note.upstream().map(str::to_owned);
        e.tool = note.tool().map(str::to_owned);
        crate::audit(e);
        return;
    }
    if let Some((policy, method, target)) = &note.policy_allowed {
        let mut e = AuditEvent::new(AuditKind::PolicyAllowed)
            .client(note.client_id.clone())
            .outcome(format!("policy {policy}"))
            .with("method", *method);
        e.subject = subject.clone();
        e.upstream = note.upstream().map(str::to_owned);
        e.tool = Some(target.clone());
        crate::audit(e);
    }
    if note.tool().is_none() || note.mcp_method() != Some("tools/call") {
        return;
    }
    let outcome = match McpOutcome::from_status(status) {
        McpOutcome::Ok => "ok",
        McpOutcome::Refused => "refused",
        McpOutcome::Failed => "failed",
    };
    let mut e = AuditEvent::new(AuditKind::ToolCalled)
        .client(note.client_id.clone())
        .outcome(outcome)
        .with("duration_ms", elapsed.as_millis() as u64)
        .with("status", status);
    if let Some((k, v)) = note
        .arguments
        .as_deref()
        .and_then(crate::audit::arguments_detail)
    {
        e = e.with(k, v);
    }
    e.subject = subject;
    e.upstream = note.upstream().map(str::to_owned);
    e.tool = note.tool().map(str::to_owned);
    crate::audit(e);
}

/// A short text the layer makes per request (a request id, a client
/// address), on the stack: no allocation for the usual one.
enum Text {
    Short([u8; 40], usize),
    Owned(String),
}

impl Text {
    fn short() -> Text {
        Text::Short([0; 40], 0)
    }

    fn push(&mut self, b: u8) {
        match self {
            Text::Short(buf, len) => {
                if let Some(slot) = buf.get_mut(*len) {
                    *slot = b;
                    *len += 1;
                }
            }
            Text::Owned(s) => s.push(char::from(b)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Only ASCII digits, letters, dots and dashes are pushed.
            Text::Short(buf, len) => buf
                .get(..*len)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }
}

/// A request id when the client sent none: process start time and a counter,
/// unique per process and sortable.
fn new_request_id() -> Text {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    // At most 16 + 1 + 16 characters.
    let mut id = Text::short();
    hex_into(&mut id, *START, 1);
    id.push(b'-');
    hex_into(&mut id, NEXT.fetch_add(1, Ordering::Relaxed), 6);
    id
}

/// `v` in lowercase hex, at least `width` digits (`{:0width$x}`; `width`
/// at most 16), written by hand: `format!` costs more than the rest of the
/// request's span.
fn hex_into(out: &mut Text, v: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - v.leading_zeros() as usize).div_ceil(4).max(width);
    for i in (0..digits).rev() {
        let nibble = if i < 16 { (v >> (4 * i)) & 0xf } else { 0 };
        out.push(DIGITS[nibble as usize]);
    }
}

/// The client's address without its port, as `IpAddr`'s `Display` writes
/// it; an IPv4 address (the usual one) without the formatting machinery.
fn client_address(ip: std::net::IpAddr) -> Text {
    let std::net::IpAddr::V4(v4) = ip else {
        return Text::Owned(ip.to_string());
    };
    let mut out = Text::short();
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
    out
}

#[cfg(test)]
mod tests;
