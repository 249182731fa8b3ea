//! Every way the gateway fails: at start (a configuration it cannot serve) and
//! per request (a refusal, or an upstream that could not answer). Each request
//! variant has one HTTP status and one JSON-RPC code, chosen in `rejection.rs`.

/// Why the gateway could not start, or refused or failed a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// At start: an `[[upstream]]` table cannot be served (a bad policy, URL or
    /// credential, or a per-user credential without identity tokens).
    #[error("{}", problems.join("\n"))]
    Config {
        /// The upstream's name.
        upstream: String,
        /// One line per problem, each naming the upstream and what to change.
        problems: Vec<String>,
    },
    /// The request headers together exceed what any MCP request needs: 431.
    #[error("the request headers total {total} bytes; the limit is {limit}")]
    HeadersTooLarge {
        /// Bytes of names and values sent.
        total: usize,
        /// The gateway's limit.
        limit: usize,
    },
    /// A browser page of another origin, or a `Host` naming another site
    /// (DNS rebinding): 403.
    #[error("{0}")]
    ForeignOrigin(String),
    /// The path names no configured upstream: 404.
    #[error("no upstream named {0:?} is configured")]
    UnknownUpstream(String),
    /// Protected-resource metadata was asked for, but no authorization server
    /// is configured to name in it: 404.
    #[error(
        "no authorization server is configured for this gateway; authenticate with an API key or token"
    )]
    NoAuthorizationServer,
    /// The HTTP method is not served by this endpoint (or not in this era): 405.
    #[error("method {method} is not allowed on an MCP endpoint; use {allow}")]
    MethodNotAllowed {
        /// The method sent.
        method: String,
        /// The methods the endpoint serves, as the `Allow` header lists them.
        allow: &'static str,
    },
    /// The `Accept` header does not admit the answer's media types: 406.
    #[error("{0}")]
    NotAcceptable(&'static str),
    /// The body is not declared as JSON: 415.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// The body is larger than `server.max_body_bytes`: 413.
    #[error("the request body is larger than server.max_body_bytes = {limit}")]
    BodyTooLarge {
        /// `server.max_body_bytes`.
        limit: usize,
    },
    /// The body is not JSON-RPC 2.0: 400, JSON-RPC -32700.
    #[error("Parse error: the body is not a JSON-RPC 2.0 message ({0})")]
    Parse(String),
    /// The message or its HTTP framing breaks a rule (a batch, nesting too
    /// deep, a bad id, a missing session header): 400, JSON-RPC -32600.
    #[error("{0}")]
    InvalidRequest(String),
    /// The session does not exist for this caller (ended, expired, its upstream
    /// restarted, or opened by someone else): 404, JSON-RPC -32002.
    #[error(
        "Session not found: it ended, expired, or its upstream restarted; send initialize to start a new one"
    )]
    SessionNotFound,
    /// `MCP-Protocol-Version` names a version the gateway does not speak:
    /// 400, JSON-RPC -32022 with the supported versions.
    #[error("Unsupported protocol version {0:?}")]
    UnsupportedVersion(String),
    /// A 2026-07-28 routing header disagrees with the body: 400, JSON-RPC -32020.
    #[error("Header mismatch: {0}")]
    HeaderMismatch(String),
    /// The parameters are not what the method needs: 400, JSON-RPC -32602.
    #[error("{0}")]
    InvalidParams(String),
    /// The method does not exist in the client's protocol era: 404, JSON-RPC -32601.
    #[error("{0}")]
    MethodNotFound(String),
    /// The upstream is unreachable, crashed, or answered nonsense: 502, JSON-RPC -32000.
    #[error("{0}")]
    UpstreamUnavailable(String),
    /// The upstream is at a configured limit: 503 with `Retry-After`, JSON-RPC -32000.
    #[error("{0}")]
    UpstreamBusy(String),
    /// The upstream did not answer within `request_timeout`: 504, JSON-RPC -32001.
    #[error("{0}")]
    UpstreamTimedOut(String),
    /// The caller is at a per-subject limit: 429 with `Retry-After`, JSON-RPC -32000.
    #[error("{0}")]
    SubjectLimit(String),
    /// No outbound credential could be presented to the upstream (a missing
    /// secret, a token endpoint down): 503, JSON-RPC -32000.
    #[error("{0}")]
    CredentialUnavailable(String),
    /// The upstream ended the session, so the client must initialize again:
    /// 404, JSON-RPC -32002.
    #[error("{0}")]
    UpstreamSessionEnded(String),
    /// A `[policy]` rule forbade the call (or none permitted it): a JSON-RPC
    /// error -32003 naming the rule, with HTTP 200 like every JSON-RPC error
    /// answer.
    #[error("{0}")]
    PolicyDenied(String),
    /// A request-level `[[rate_limit]]` (one without `tool`) is used up:
    /// 429 with `Retry-After`, JSON-RPC -32029 with the rule and retry time.
    #[error("{}", .0.message)]
    RateLimited(Limited),
    /// A per-tool `[[rate_limit]]` is used up: a JSON-RPC error -32029 with
    /// the rule and retry time in `data`, with HTTP 200 like `PolicyDenied`.
    #[error("{}", .0.message)]
    ToolRateLimited(Limited),
    /// A daily quota could not be counted (the store failed): 503 with
    /// `Retry-After`, JSON-RPC -32000.
    #[error("{0}")]
    LimitUnavailable(String),
}

/// Which `[[rate_limit]]` refused a call, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// The rule's name.
    pub rule: String,
    /// Seconds until a retry can succeed.
    pub retry_after: u64,
    /// The rule's `limit`.
    pub limit: u64,
    /// The rule's window in seconds.
    pub window: u64,
    /// The message the client sees.
    pub message: String,
}
