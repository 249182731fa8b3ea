//! The gateway's part of the configuration: upstreams and limits, as the
//! binary deserializes them from TOML and environment overrides.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mcpgate_guard::{PolicyConfig, Scopes};
use serde::Deserialize;

/// How an HTTP upstream speaks MCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpTransport {
    /// Streamable HTTP (2025-03-26 and later).
    StreamableHttp,
    /// The legacy HTTP+SSE transport (2024-11-05).
    Sse,
}

/// Whether clients of a stdio upstream share one child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// One child per client session (the safe default: no shared state between users).
    #[default]
    Session,
    /// One child for every client; request ids are remapped so they never collide.
    Shared,
}

/// One `[[upstream]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// Served at `/mcp/<name>`.
    pub name: String,
    /// A stdio server: program and arguments.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// An HTTP server's MCP endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// Forces the HTTP transport instead of detecting it.
    #[serde(default)]
    pub transport: Option<HttpTransport>,
    /// stdio only: one child per session, or one shared child.
    #[serde(default)]
    pub isolation: Isolation,
    /// stdio only: extra environment variables for the child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// stdio only: working directory of the child.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// stdio only: most children alive at once for this upstream.
    #[serde(default = "default_max_children")]
    pub max_children: usize,
    /// Extra static headers sent to an HTTP upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// https only: a PEM file of the certificate authorities this upstream's
    /// certificate must chain to, trusted instead of the built-in public ones
    /// (an upstream behind a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Credentials the gateway presents to this upstream: headers to an HTTP
    /// upstream, environment variables of a stdio child. One table
    /// (`[upstream.credentials]`) or several (`[[upstream.credentials]]`).
    #[serde(default, deserialize_with = "crate::credentials::one_or_many")]
    pub credentials: Vec<crate::credentials::CredentialConfig>,
    /// Overrides the server-wide request timeout for this upstream.
    #[serde(
        default,
        deserialize_with = "mcpgate_guard::time::deserialize_opt_duration"
    )]
    pub request_timeout: Option<Duration>,
    /// For JWTs of `[[auth.jwt]]` issuers: the audience(s) a token must name to
    /// be accepted here, instead of the issuer's configured `audience`. Tokens
    /// of the built-in authorization server always name the endpoint's URL.
    #[serde(default)]
    pub audience: Option<mcpgate_guard::Audience>,
    /// DPoP-bound access tokens (RFC 9449): `off`, `allowed` (the default)
    /// or `required`.
    #[serde(default)]
    pub dpop: mcpgate_guard::DpopMode,
    /// DPoP proofs to this upstream must carry the server's nonce (RFC 9449
    /// §9): a proof without a current one gets 401 `use_dpop_nonce` with a
    /// `DPoP-Nonce` header. Off by default.
    #[serde(default)]
    pub dpop_nonce: bool,
    // The policy keys repeat `mcpgate_guard::PolicyConfig` field by field because
    // serde cannot `flatten` into a struct that denies unknown keys, and unknown
    // keys must stay errors. `policy_config()` maps them across.
    /// Scopes needed for anything on this upstream.
    #[serde(default)]
    pub required_scopes: Scopes,
    /// Tool-name glob → scopes needed to see and call matching tools.
    #[serde(default)]
    pub tool_scopes: BTreeMap<String, Scopes>,
    /// Prompt-name glob → scopes.
    #[serde(default)]
    pub prompt_scopes: BTreeMap<String, Scopes>,
    /// Resource-URI glob → scopes.
    #[serde(default)]
    pub resource_scopes: BTreeMap<String, Scopes>,
    /// Only these subjects (globs) may use the upstream.
    #[serde(default)]
    pub allow_subjects: Vec<String>,
    /// These subjects (globs) may not.
    #[serde(default)]
    pub deny_subjects: Vec<String>,
    /// Only members of these groups may use the upstream.
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Members of these groups may not.
    #[serde(default)]
    pub deny_groups: Vec<String>,
    /// As a member of a `[[virtual_server]]`: show its tools and prompts as
    /// `<upstream><separator><name>` (the default), or under their own names
    /// when they are known not to collide.
    #[serde(default = "yes")]
    pub prefix: bool,
    /// As a member of a `[[virtual_server]]`: which tools are shown, renamed
    /// or described differently (`[upstream.tools]`).
    #[serde(default)]
    pub tools: crate::virtual_server::ToolRules,
}

fn yes() -> bool {
    true
}

impl UpstreamConfig {
    /// The policy part of the table.
    pub fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            required_scopes: self.required_scopes.clone(),
            tool_scopes: self.tool_scopes.clone(),
            prompt_scopes: self.prompt_scopes.clone(),
            resource_scopes: self.resource_scopes.clone(),
            allow_subjects: self.allow_subjects.clone(),
            deny_subjects: self.deny_subjects.clone(),
            allow_groups: self.allow_groups.clone(),
            deny_groups: self.deny_groups.clone(),
        }
    }
}

fn default_max_children() -> usize {
    100
}

/// Limits and timeouts shared by every upstream.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time an upstream may take for a whole exchange: connecting, its response
    /// headers, a JSON body, or the first event of an SSE answer; then the longest
    /// silence between events of an SSE answer (not counted while a question the
    /// upstream asked the client waits for the client).
    pub request_timeout: Duration,
    /// Sessions (and their per-session children) idle this long are closed.
    pub session_idle_timeout: Duration,
    /// A sealed session id older than this is not adopted by a replica that
    /// does not hold the session (404: the client initializes again).
    pub session_max_age: Duration,
    /// Events kept per SSE stream for `Last-Event-ID` resumption.
    pub replay_events: usize,
    /// Largest single message accepted from an upstream.
    pub max_message_bytes: usize,
    /// Client sessions one signed-in subject may hold at once (0: no limit).
    pub max_sessions_per_subject: usize,
    /// stdio children one signed-in subject may run at once, per upstream (0: no limit).
    pub max_children_per_subject: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_max_age: Duration::from_secs(24 * 60 * 60),
            replay_events: 256,
            max_message_bytes: 16 * 1024 * 1024,
            max_sessions_per_subject: 32,
            max_children_per_subject: 8,
        }
    }
}
