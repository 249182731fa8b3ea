//! What handlers deep inside the router learn about a request (who called,
//! which upstream, which MCP method and tool, why OAuth refused), noted for
//! the layer around the router that writes the access log line, the metrics,
//! the span's attributes and the tool-call audit event once the answer is out.
//!
//! The note travels in a task-local set by [`crate::observe`], so a hook is
//! one call with no request in hand; outside that layer (tests, the CLI) the
//! calls do nothing.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Deserialize;
use serde_json::value::RawValue;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub(crate) use crate::clean::clean;

/// Everything noted about one request.
#[derive(Debug, Default)]
pub(crate) struct Note {
    pub(crate) subject: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) verifier: Option<String>,
    pub(crate) upstream: Option<String>,
    pub(crate) mcp_method: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) jsonrpc_id: Option<String>,
    pub(crate) tool: Option<String>,
    /// The tool call's arguments, kept only while the audit trail wants them.
    pub(crate) arguments: Option<String>,
    /// An OAuth refusal: its code and description.
    pub(crate) oauth_error: Option<(&'static str, String)>,
    /// A policy refusal's reason.
    pub(crate) denied: Option<String>,
    /// The request's span (when traces are exported), and whether a caller's
    /// trace context already became its parent.
    pub(crate) span: Option<tracing::Span>,
    pub(crate) has_parent: bool,
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

/// The caller was authenticated: its subject, OAuth client and how
/// (`method` serializes to `api_key`, `jwt`, …). Counts an allowed
/// authentication decision.
pub fn note_principal(subject: &str, client_id: Option<&str>, method: impl serde::Serialize) {
    let verifier = match serde_json::to_value(method) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "other".to_owned(),
    };
    crate::metrics().auth_decision(&verifier, true, "ok");
    with(|n| {
        n.subject = Some(clean(subject));
        n.client_id = client_id.map(clean);
        n.verifier = Some(verifier);
    });
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
    let parsed = params.and_then(|p| serde_json::from_str::<Params<'_>>(p).ok());
    let is_call = method == Some("tools/call");
    with(|n| {
        n.upstream = Some(clean(upstream));
        n.mcp_method = method.map(clean);
        n.jsonrpc_id = id.map(clean);
        n.session_id = session_id.map(clean);
        if let Some(p) = parsed.as_ref().filter(|_| is_call) {
            n.tool = p.name.as_deref().map(clean);
            if crate::audit::wants_arguments() {
                n.arguments = Some(p.arguments.map_or("null", |a| a.get()).to_owned());
            }
        }
    });
    // Continues the caller's trace unless a header already did.
    if let Some(meta) = parsed.and_then(|p| p.meta)
        && let Some(tp) = meta.traceparent
        && let Some(cx) = crate::trace::parent_from_meta(&tp, meta.tracestate.as_deref())
    {
        with(|n| {
            if !n.has_parent
                && let Some(span) = &n.span
            {
                n.has_parent = span.set_parent(cx).is_ok();
            }
        });
    }
}

#[cfg(test)]
mod tests;
