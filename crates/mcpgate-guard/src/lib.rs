//! The guard: who is calling, and may they do this?
//!
//! It extracts a credential from a request (`Authorization: Bearer`, an API-key
//! header, `Authorization: Basic`), runs it through an ordered chain of
//! [`Verifier`]s, caches what verified, and hands the request on with an
//! [`Authenticated`] proof. It builds the RFC 9728 protected-resource metadata
//! and the exact `WWW-Authenticate` challenges (401 to sign in, 403
//! `insufficient_scope` to step up), and decides per tool, prompt and resource
//! which scopes a call needs, answering with an [`Authorized`] proof.
//!
//! It stays light — no database, no HTML — so an MCP server can embed it as a
//! tower layer. It must never log or echo a credential, never accept a token
//! from the query string, and never let an unavailable verifier mean "allow".
//!
//! ## The path of a request, in order
//!
//! 1. `layer.rs` — [`RequireAuth`] (made by [`require_auth`] or
//!    [`RequireAuthLayer::with_admission`]): answers the metadata paths
//!    (`metadata.rs`) and lets `OPTIONS` through; with [`Access::Disabled`]
//!    everyone is [`danger::superuser_for_disabled_auth`] (`principal.rs`).
//! 2. `credential.rs` — [`extract`]: the one credential of the request, or a
//!    400 for two, or one in the query string.
//! 3. `chain.rs` — [`Chain::authenticate`]: the cache (`cache.rs`), then each
//!    [`Verifier`] whose shape matches (`verifier.rs`): `static_tokens.rs`,
//!    `upstream_key.rs`, `jwt.rs` (with `jwt/`), `introspection.rs`, and the
//!    API keys and users of the store crate. Each yields a [`Principal`]
//!    (`principal.rs`: a `Subject`, `ClientId`, `ScopeSet` and `Audience`s of
//!    `mcpgate-types`, parsed from the credential) or a refusal.
//! 4. `layer.rs` — the [`Admission`]: which resource's challenge a refusal
//!    carries and what must hold of the caller there (required scopes; in the
//!    gateway, audience binding and subject rules). A refusal becomes its
//!    response in `rejection.rs` with the challenge of `challenge.rs`.
//! 5. `proof.rs` — the [`Authenticated`] proof goes into the request's
//!    extensions; handlers take it as an extractor.
//! 6. `policy.rs` — [`Policy::authorize`]: per operation, the scopes a tool,
//!    prompt or resource needs, yielding [`Authorized`] for the upstream call.
//!
//! Outside the request path: `identity_token.rs` signs the short-lived token
//! upstreams receive about the caller; `time.rs` reads durations;
//! `error.rs` holds [`GuardError`], why a part could not be built.
//!
#![doc = include_str!("../../../docs/GUARD-LIBRARY.md")]

mod cache;
mod chain;
mod challenge;
mod credential;
mod dpop;
mod dpop_mode;
mod error;
mod identity_token;
mod introspection;
mod jwt;
mod layer;
mod metadata;
mod policy;
mod principal;
mod proof;
mod rejection;
mod static_tokens;
pub mod time;
mod upstream_key;
mod verifier;

pub use cache::VerifiedCache;
pub use chain::{Chain, UNRECOGNIZED};
pub use challenge::Challenge;
pub use credential::{Credential, CredentialKind, ExtractOptions, extract};
pub use dpop::{DpopCheck, DpopMode, DpopReplay, ReplayUnavailable, dpop_scheme};
pub use error::GuardError;
pub use identity_token::IdentitySigner;
pub use introspection::{ClientAuthMethod, Introspection, IntrospectionConfig};
pub use jwt::{Audience, JwksSettings, JwtConfig, JwtVerifier};
pub use layer::{
    Access, Admission, AuthBody, GuardSettings, RequireAuth, RequireAuthLayer, principal,
    require_auth,
};
pub use mcpgate_dpop::Nonces as DpopNonces;
/// The issuer types the settings and verifiers take, so that an embedder
/// needs no other crate of ours.
pub use mcpgate_types::{Issuer, IssuerError, JwtIssuer, JwtIssuerError};
pub use metadata::{ProtectedResource, canonical, same_resource};
pub use policy::{Policy, PolicyConfig, Scopes, Target};
pub use principal::{AuthMethod, Principal, danger};
pub use proof::{Authenticated, Authorized, NotBehindAuthLayer};
pub use rejection::AuthRejection;
pub use static_tokens::{MIN_TOKEN_CHARS, StaticTokenEntry, StaticTokens, StaticTokensConfig};
pub use upstream_key::{UpstreamKey, UpstreamKeyConfig, UpstreamSecret};
pub use verifier::{BoxFuture, Verified, Verifier, VerifyError, claim};
