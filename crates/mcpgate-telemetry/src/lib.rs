//! mcpgate's observability. A request's path through it:
//!
//! 1. [`observe`] wraps the whole router: it reads the route template, the
//!    client address and an incoming `traceparent`, opens the request's span
//!    (when traces are exported) and a [note](note_mcp) that lives as long as
//!    the request's handler runs.
//! 2. Code inside the router fills the note with one call and no request in
//!    hand: the guard the principal ([`note_principal`]) or the refusal,
//!    the gateway the upstream, MCP method, id, session and tool
//!    ([`note_mcp`], which also continues a `params._meta.traceparent`), the
//!    authorization server its OAuth refusals ([`note_oauth_error`]).
//! 3. When the response head is out the layer writes the access log line
//!    (target `mcpgate::access`), counts `mcpgate_http_requests_total` and the
//!    MCP families ([`Metrics`]), sets the span's MCP attributes, logs a refused
//!    `/authorize`, `/token` or `/register` at warn, and hands a `tool_called`
//!    or `policy_denied` event to the audit sink ([`audit`]).
//!
//! [`serve_metrics`] exports the registry at `GET /metrics` on its own
//! listener; [`trace::start`] exports spans over OTLP/HTTP. Nothing here
//! sees a credential: subjects and client ids are logged, never tokens, and
//! tool arguments reach the audit trail as a digest unless configured otherwise.

mod audit;
mod clean;
mod error;
mod exporter;
mod http;
mod log_fields;
mod logs;
mod mcp_text;
mod metrics;
mod note;
mod otlp;
mod phase;
mod pipeline;
mod request_span;
mod span_queue;
pub mod trace;

pub use audit::{
    AuditEvent, AuditKind, AuditSink, ToolArguments, audit, audit_simple, hex, install_audit_sink,
    token_issued,
};
pub use error::TelemetryError;
pub use exporter::{MetricsServer, serve_metrics};
pub use http::observe;
pub use logs::{ACCESS_TARGET, init_logging, set_access_log};
pub use metrics::{McpOutcome, Metrics, mcp_answered, method_label, metrics};
pub use note::{Step, step};
pub use note::{
    note_auth_refused, note_client_id, note_denied, note_mcp, note_mcp_deferred, note_oauth_error,
    note_policy_allowed, note_principal, note_upstream_answered, note_upstream_sent,
};
pub use phase::StepName;
