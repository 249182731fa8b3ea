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

mod audience;
mod auth;
mod config;
mod credentials;
mod events;
mod front;
mod gateway;
pub mod jsonrpc;
mod mux;
mod origin;
mod session;
mod stopping;
mod upstream;

pub use audience::AudienceBinding;
pub use auth::{AccessMode, AuthSettings};
pub use config::{HttpTransport, Isolation, Limits, UpstreamConfig};
pub use credentials::{
    BodyFormat, CredentialConfig, FederatedConfig, LoginConfig, OAuthClientConfig, SubjectToken,
    TokenAuthMethod, TokenExchangeConfig, UserSecret, UserSecretSource, UserSources, VaultConfig,
    credential_problems, missing_credentials,
};
pub use gateway::{Gateway, GatewayConfig, IDENTITY_JWKS_PATH, ReadinessCheck};
pub use origin::OriginPolicy;
