//! What handlers deep inside the router learn about a request (who called,
//! which upstream, which MCP method and tool, why OAuth refused), noted for
//! the layer around the router that writes the access log line, the metrics,
//! the span's attributes and the tool-call audit event once the answer is out.
//!
//! The note travels in a task-local set by [`crate::observe`], so a hook is
//! one call with no request in hand; outside that layer (tests, the CLI) the
//! calls do nothing.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::value::RawValue;

pub(crate) use crate::clean::clean;
use crate::mcp_text::{Field, McpText};

/// Everything noted about one request.
#[derive(Debug, Default)]
pub(crate) struct Note {
    pub(crate) subject: Option<String>,
    pub(crate) client_id: Option<String>,
    /// The upstream, MCP method, JSON-RPC id, session id and tool.
    pub(crate) mcp: McpText,
    /// The tool call's arguments, kept only while the audit trail wants them.
    pub(crate) arguments: Option<String>,
    /// An OAuth refusal: its code and description.
    pub(crate) oauth_error: Option<(&'static str, String)>,
    /// A policy refusal's reason.
    pub(crate) denied: Option<String>,
    /// A `[policy]` rule let the call through: the deciding policy, the
    /// method and its target (noted only while the audit trail is on).
    pub(crate) policy_allowed: Option<(String, &'static str, String)>,
    /// The request's span, when traces are exported.
    pub(crate) span: Option<crate::request_span::RequestSpan>,
    /// When the request went upstream (and the wall clock then, while traces
    /// are exported), until its first answer.
    pub(crate) upstream_sent: Option<(Instant, Option<SystemTime>)>,
    /// How long the upstream took to answer, summed over its calls.
    pub(crate) upstream_wait: Option<Duration>,
    /// The steps that become child spans ([`crate::phase`]).
    pub(crate) phases: Vec<crate::phase::Phase>,
    /// The front counts the MCP request itself (its answer comes later, on
    /// another stream: the legacy SSE front).
    pub(crate) deferred: bool,
}

impl Note {
    pub(crate) fn upstream(&self) -> Option<&str> {
        self.mcp.get(Field::Upstream)
    }

    pub(crate) fn mcp_method(&self) -> Option<&str> {
        self.mcp.get(Field::Method)
    }

    pub(crate) fn jsonrpc_id(&self) -> Option<&str> {
        self.mcp.get(Field::JsonrpcId)
    }

    pub(crate) fn session_id(&self) -> Option<&str> {
        self.mcp.get(Field::SessionId)
    }

    pub(crate) fn tool(&self) -> Option<&str> {
        self.mcp.get(Field::Tool)
    }
}

pub(crate) type Shared = Arc<Mutex<Note>>;

tokio::task_local! {
    pub(crate) static NOTE: Shared;
}

pub(crate) fn lock(n: &Shared) -> MutexGuard<'_, Note> {
    // A panic while noting leaves plain data behind; keep using it.
    n.lock().unwrap_or_else(|p| p.into_inner())
}

fn with(f: impl FnOnce(&mut Note)) {
    let _ = NOTE.try_with(|n| f(&mut lock(n)));
}

/// `f` on the current request span's context as it is passed on (the span
/// starts if it has not); `None` outside the layer, while traces are off, or
/// for an invalid context.
pub(crate) fn propagated<R>(f: impl FnOnce(&crate::request_span::Propagated) -> R) -> Option<R> {
    NOTE.try_with(|n| lock(n).span.as_mut()?.propagated().map(f))
        .ok()
        .flatten()
}

/// The current request's note, inside the layer.
pub(crate) fn shared() -> Option<Shared> {
    NOTE.try_with(Clone::clone).ok()
}

/// The request is sent upstream now: the wait for its first answer starts
/// (the gateway's own share is the rest), and its `upstream call` span.
pub fn note_upstream_sent() {
    let tracing = crate::pipeline::enabled();
    if !tracing && !crate::metrics().recording() {
        return;
    }
    with(|n| n.upstream_sent = Some((Instant::now(), tracing.then(SystemTime::now))));
}

/// The upstream's first answer to the request arrived (`failed`: it failed,
/// timed out, or went away instead).
pub fn note_upstream_answered(failed: bool) {
    with(|n| upstream_answered(n, failed));
}

pub(crate) fn upstream_answered(n: &mut Note, failed: bool) {
    let Some((sent, wall)) = n.upstream_sent.take() else {
        return;
    };
    n.upstream_wait = Some(n.upstream_wait.unwrap_or_default() + sent.elapsed());
    if let Some(start) = wall {
        // Its attributes (upstream, method, tool) are the note's, read when
        // the request ends; the session and request ids are on the
        // request's span, its parent.
        n.phases
            .push(crate::phase::Phase::upstream_call(start, failed));
    }
}

/// The MCP request is counted by the front itself, once its answer is out
/// (the legacy SSE front answers 202 and sends the answer on its stream).
pub fn note_mcp_deferred() {
    with(|n| n.deferred = true);
}

/// The caller was authenticated: its subject, OAuth client and how
/// (`method` serializes to `api_key`, `jwt`, …). Counts an allowed
/// authentication decision.
pub fn note_principal(subject: &str, client_id: Option<&str>, method: impl serde::Serialize) {
    let m = crate::metrics();
    if m.recording() {
        let mut buf = [0u8; 48];
        let verifier = verifier_label(&method, &mut buf);
        m.auth_decision(verifier, true, "ok");
    }
    with(|n| {
        n.subject = Some(clean(subject));
        n.client_id = client_id.map(clean);
    });
}

/// The name `method` serializes to (a unit variant: `api_key`), written into
/// `buf` on the stack since this runs on every request; `other` for anything
/// longer or not a string.
fn verifier_label(method: impl serde::Serialize, buf: &mut [u8; 48]) -> &str {
    let mut out = &mut buf[..];
    if serde_json::to_writer(&mut out, &method).is_err() {
        return "other";
    }
    let len = 48 - out.len();
    std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(|s| s.strip_prefix('"')?.strip_suffix('"'))
        .unwrap_or("other")
}

/// The caller was refused authentication with this error code.
pub fn note_auth_refused(reason: &'static str) {
    crate::metrics().auth_decision("none", false, reason);
}

/// The OAuth client a request to the authorization server names (before it
/// is authenticated: what the client claimed, for the refusal's log line).
pub fn note_client_id(client_id: Option<&str>) {
    if let Some(c) = client_id {
        with(|n| n.client_id = Some(clean(c)));
    }
}

/// The authorization server refused a request: its OAuth error code and description.
pub fn note_oauth_error(code: &'static str, description: &str) {
    with(|n| n.oauth_error = Some((code, clean(description))));
}

/// The gateway's policy refused a request (scope, tool, group rule).
pub fn note_denied(reason: &str) {
    with(|n| n.denied = Some(clean(reason)));
}

/// The `[policy]` rules allowed a call: `policy` permitted `method` of
/// `target`, for the `policy_allowed` audit event. Nothing is copied while
/// the audit trail is off.
pub fn note_policy_allowed(policy: &str, method: &'static str, target: &str) {
    if !crate::audit::installed() {
        return;
    }
    with(|n| n.policy_allowed = Some((clean(policy), method, clean(target))));
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default)]
    traceparent: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    tracestate: Option<std::borrow::Cow<'a, str>>,
}

/// One JSON-RPC message a client sent to `upstream`: its method, id (raw
/// JSON), session and parameters (raw JSON). For `tools/call` the tool's name
/// is kept, and its arguments while the audit trail records them; a
/// `params._meta.traceparent` continues the caller's trace when no header did.
pub fn note_mcp(
    upstream: &str,
    method: Option<&str>,
    id: Option<&str>,
    session_id: Option<&str>,
    params: Option<&str>,
) {
    if NOTE.try_with(|_| ()).is_err() {
        return;
    }
    let tracing = crate::pipeline::enabled();
    let is_call = method == Some("tools/call");
    // The tool's name is for the access log, the span and the audit trail;
    // `_meta` for the trace. Nothing reads them otherwise: no parse.
    // A byte scan finds the usual request without `_meta` (a key written
    // with escapes is not looked for, as when the context is passed on).
    let wanted = (is_call && (tracing || crate::audit::installed() || crate::logs::access_log()))
        || (tracing && params.is_some_and(|p| p.contains("\"_meta\"")));
    let parsed = params
        .filter(|_| wanted)
        .and_then(|p| serde_json::from_str::<Params<'_>>(p).ok());
    let tool = parsed
        .as_ref()
        .filter(|_| is_call)
        .and_then(|p| p.name.as_deref());
    // Only the span shows the id and session; the session id is long (sealed).
    let (id, session_id) = if tracing {
        (id, session_id)
    } else {
        (None, None)
    };
    let len = |s: Option<&str>| s.map_or(0, str::len);
    with(|n| {
        n.mcp
            .reserve(upstream.len() + len(method) + len(id) + len(session_id) + len(tool));
        for (field, value) in [
            (Field::Upstream, Some(upstream)),
            (Field::Method, method),
            (Field::JsonrpcId, id),
            (Field::SessionId, session_id),
            (Field::Tool, tool),
        ] {
            if let Some(v) = value {
                n.mcp.set(field, v);
            }
        }
        if let Some(p) = parsed.as_ref().filter(|_| is_call)
            && crate::audit::wants_arguments()
        {
            n.arguments = Some(p.arguments.map_or("null", |a| a.get()).to_owned());
        }
    });
    // Continues the caller's trace unless a header already did.
    if let Some(meta) = parsed.and_then(|p| p.meta)
        && let Some(tp) = meta.traceparent
        && let Some(cx) = crate::pipeline::parent_from_meta(&tp, meta.tracestate.as_deref())
    {
        with(|n| {
            if let Some(span) = &mut n.span {
                span.set_parent(cx);
            }
        });
    }
}

/// A step of a request being timed for its child span (authentication,
/// policy, a credential renewal).
#[derive(Debug)]
pub struct Step {
    inner: Option<(crate::phase::StepName, SystemTime, Shared)>,
}

/// Starts timing `name` for the current request; a no-op while traces are
/// off or outside the layer.
pub fn step(name: crate::phase::StepName) -> Step {
    if !crate::pipeline::enabled() {
        return Step { inner: None };
    }
    Step {
        inner: shared().map(|n| (name, SystemTime::now(), n)),
    }
}

impl Step {
    /// Ends the step; `failed` marks its span as an error, `attrs` are its
    /// attributes, four at most (`mcpgate.outcome` is added).
    pub fn end(mut self, failed: bool, attrs: &[(&'static str, &str)]) {
        self.finish(failed, attrs);
    }

    fn finish(&mut self, failed: bool, attrs: &[(&'static str, &str)]) {
        let Some((name, start, shared)) = self.inner.take() else {
            return;
        };
        let attrs = crate::phase::HookAttrs::new(attrs);
        lock(&shared).phases.push(crate::phase::Phase {
            name,
            start,
            end: SystemTime::now(),
            attrs,
            failed,
        });
    }

    /// Whether the step is being timed.
    pub fn is_timed(&self) -> bool {
        self.inner.is_some()
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.finish(false, &[]);
    }
}

#[cfg(test)]
mod tests;
