//! The guard: who is calling, and may they do this?
//!
//! It extracts a credential from a request (`Authorization: Bearer`, an API-key
//! header, `Authorization: Basic`), runs it through an ordered chain of
//! [`Verifier`]s, caches what verified, and yields a [`Principal`]. It builds the
//! RFC 9728 protected-resource metadata and the exact `WWW-Authenticate`
//! challenges (401 to sign in, 403 `insufficient_scope` to step up), and decides
//! per tool, prompt and resource which scopes a call needs.
//!
//! It stays light — no database, no HTML — so an MCP server can embed it as a
//! tower layer. It must never log or echo a credential, never accept a token
//! from the query string, and never let an unavailable verifier mean "allow".
//!
#![doc = include_str!("../../../docs/GUARD-LIBRARY.md")]

mod cache;
mod chain;
mod challenge;
mod credential;
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
pub use error::GuardError;
pub use identity_token::IdentitySigner;
pub use introspection::{ClientAuthMethod, Introspection, IntrospectionConfig};
pub use jwt::{Audience, JwksSettings, JwtConfig, JwtVerifier};
pub use layer::{
    Access, Admission, AuthBody, GuardSettings, RequireAuth, RequireAuthLayer, principal,
    require_auth,
};
pub use metadata::{ProtectedResource, canonical, same_resource};
pub use policy::{Policy, PolicyConfig, Scopes, Target};
pub use principal::{AuthMethod, Principal, danger};
pub use proof::{Authenticated, Authorized, NotBehindAuthLayer};
pub use rejection::AuthRejection;
pub use static_tokens::{MIN_TOKEN_CHARS, StaticTokenEntry, StaticTokens, StaticTokensConfig};
pub use upstream_key::{UpstreamKey, UpstreamKeyConfig, UpstreamSecret};
pub use verifier::{BoxFuture, Verified, Verifier, VerifyError};
