//! The mcpgate gateway: a streaming MCP reverse proxy.
//!
//! It fronts upstream MCP servers — stdio child processes, Streamable HTTP and
//! legacy HTTP+SSE servers — with one Streamable HTTP endpoint each, for clients
//! of every protocol era (sessions up to 2025-11-25, stateless 2026-07-28, and
//! the legacy SSE transport). It relays both directions, remaps request ids where
//! clients share an upstream, and keeps SSE streams resumable.
//!
//! It parses only the JSON-RPC envelope and forwards everything else as bytes.
//! It must never forward a client's credentials to an upstream, and never let one
//! session see another session's messages.
//!
//! # A request's path, in order
//!
//! 1. `gateway.rs`: the router and its layers — CORS for browsers (`cors.rs`),
//!    then the header size and Origin/Host checks (`origin.rs`), then
//!    `endpoint_of`: the upstream of the route (404 for an unknown one) and the
//!    endpoint path its challenge names. Both checks are synchronous layers
//!    (`pre_check.rs`).
//! 2. `auth.rs` with `mcpgate-guard`'s `RequireAuthLayer`: the caller is
//!    authenticated once, in front of every MCP route (400/401/403/503); the
//!    handler takes the `Authenticated` proof as an extractor.
//! 3. `front/era.rs`: the protocol era is decided once, from the route, the
//!    method and the headers: legacy SSE, Streamable HTTP with sessions, or
//!    stateless 2026-07-28. Unsupported methods (405) stop here.
//! 4. `front/request.rs`: a POST's Accept and Content-Type, its body within
//!    `server.max_body_bytes`, one JSON-RPC envelope (`jsonrpc.rs`), a supported
//!    protocol version.
//! 5. The era's handler, which only calls downward: `front/legacy.rs`,
//!    `front/sessionful.rs` (the session table, `session.rs`) or
//!    `front/stateless.rs` (multi-round-trip calls in `front/mrtr.rs`); each
//!    asks `Guard::authorize` (`auth.rs`, the guard's `Policy::authorize`)
//!    once per message whether the caller may send it (scopes, 401/403), for
//!    every method alike, and gets the `Authorized` proof; with a
//!    `[policy]` file, `Guard::decide` then asks its Cedar rules about
//!    tool calls, prompt gets and resource reads (`rules.rs`, -32003), and
//!    `limits.rs` counts the message against the `[[rate_limit]]` rules
//!    (429 for request-level rules, -32029 for per-tool ones).
//!    A session (or a parked 2026-07-28 call) that lives in another
//!    replica is forwarded there instead (`forward/send.rs`); that replica's
//!    internal listener (`forward/internal.rs`, [`Gateway::internal_router`])
//!    takes the request with a sealed pass for the caller in place of a
//!    credential and runs the same steps from 3 on.
//! 6. `upstream.rs`: the link to the upstream — a stdio child (`upstream/stdio.rs`,
//!    through `upstream/mux.rs`), a Streamable HTTP session (`upstream/http.rs`) or a
//!    legacy SSE connection (`upstream/legacy_sse.rs`), told who the caller is
//!    (`identity.rs`) and carrying outbound credentials (`credentials.rs`).
//!    `Link::request`, `Link::send` and `Upstream::open_stateless` take the
//!    `Authorized` proof, which only the guard crate can make: a path that
//!    skips step 5 does not compile. (The raw senders of `upstream/` are
//!    private to it: the mux's are `pub(super)`, the HTTP link's live in a
//!    private module.)
//! 7. The answer: one JSON body, or an SSE stream written into a resumable log
//!    (`front/answer.rs`, `events.rs`, `reply.rs`); a list may be filtered or an
//!    era bridged on the way (`rewrite.rs`).
//!
//! A virtual server (`virtual_server.rs`) takes steps 1 and 2 like an
//! upstream, then has its own handler, which opens member sessions through
//! step 6 with the same `Authorized` proof.
//!
//! Every failure is a [`GatewayError`] (`error.rs`), answered with the HTTP
//! status and JSON-RPC code chosen in `rejection.rs` and nowhere else. The
//! running state the handlers share is [`Gateway`] (`state.rs`), one
//! configuration's snapshot; a reload builds the next one (`reload.rs`).

mod audience;
mod auth;
mod config;
mod cors;
mod credentials;
mod error;
pub mod event_loop;
mod events;
mod forward;
mod front;
mod gateway;
mod identity;
pub mod jsonrpc;
mod limits;
mod origin;
mod pre_check;
mod protocol;
mod rejection;
mod reload;
mod reply;
mod rewrite;
mod rules;
mod session;
mod session_key;
mod state;
mod stopping;
mod subject_slots;
mod upstream;
mod virtual_server;

pub use audience::AudienceBinding;
pub use auth::{AccessMode, AuthSettings};
pub use config::{HttpTransport, Isolation, Limits, UpstreamConfig};
pub use credentials::{
    BodyFormat, CredentialConfig, FederatedConfig, FixedConfig, LoginConfig, OAuthClientConfig,
    SubjectToken, TokenAuthMethod, TokenExchangeConfig, UserSecret, UserSecretError,
    UserSecretSource, UserSources, VaultConfig, credential_problems, missing_credentials,
};
pub use error::{GatewayError, Limited};
pub use gateway::{GatewayConfig, IDENTITY_JWKS_PATH};
pub use limits::{
    QuotaCounter, QuotaError, RateLimitConfig, USAGE_META_KEY, rate_limit_problems,
    rate_limit_upstream_problems,
};
pub use origin::OriginPolicy;
pub use reload::{Retired, UpstreamChanges};
pub use session_key::{SESSION_KEY_FILE, SessionKeyError, SessionKeys};
pub use state::{Gateway, ReadinessCheck};
/// Reads an upstream's `ca_file` (checked when the configuration is loaded).
pub use upstream::{CaFileError, load_roots as load_upstream_roots};
pub use virtual_server::{ToolRules, VirtualServerConfig, virtual_server_problems};
