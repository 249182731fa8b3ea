//! The client side of mcpgate: how an MCP client gets through an
//! OAuth-protected MCP server.
//!
//! It discovers the authorization server the way the MCP authorization spec
//! lays out, registers (pre-registered, client ID metadata document, dynamic
//! registration), signs in with PKCE, keeps tokens in the OS keyring or a
//! private file, refreshes them before they expire, and bridges a local stdio
//! MCP client to a remote server ([`bridge`]).
//!
//! The path of a sign-in (`mcpgate client login`, or the first call that
//! needs a token), each step in its module:
//!
//! ```text
//! login        manager::TokenManager::token: a stored token still good? done
//!  → discovery   discovery: 401 + WWW-Authenticate (challenge) → RFC 9728
//!                protected-resource metadata → RFC 8414 / OIDC server metadata
//!  → registration  manager/signin: pre-registered, a client ID metadata
//!                document, one stored earlier, or RFC 7591 (registration)
//!  → authorize   authorize: PKCE (pkce) + state; browser and the loopback
//!                callback server, a pasted URL, or the device flow (device)
//!  → token       oauth: the code (or refresh token) for tokens at the token
//!                endpoint, client authentication as registered
//!  → store       store: one record per (issuer, resource), secrets in the
//!                OS keyring or a 0600 file, refreshed under a lock file
//! ```
//!
//! Errors are one [`ClientError`]; `mcp_http` makes the MCP calls of
//! `mcpgate call` (2026-07-28 first, else a handshake-era session), and
//! [`bridge`] relays a stdio client with those tokens. [`modern`] holds the
//! 2026-07-28 wire pieces both use — the per-request `_meta`, the routing
//! headers, telling an older server by its answer to `server/discover`, and
//! `input_required` rounds answered through a [`modern::InputHandler`]
//! (the stdio app behind the bridge, [`prompt`] for `call`).
//!
//! It must never send a token to a server other than the one it was issued
//! for, never write a secret to a file others can read, and never open a URL
//! through a shell.

pub mod bridge;
pub mod credentials;

pub mod assertion_grant;
pub mod authorize;
pub mod challenge;
pub mod clock;
pub mod device;
pub mod discovery;
mod dpop_nonce;
pub mod error;
pub mod manager;
pub mod mcp_config;
pub mod mcp_http;
pub mod metadata;
pub mod modern;
pub mod oauth;
pub mod pkce;
pub mod prompt;
pub mod registration;
pub mod store;

pub use credentials::{Credentials, CredentialsError, StaticCredentials};
pub use error::ClientError;
pub use manager::{SignInMethod, SignInOptions, TokenManager};
pub use store::{RefreshMargin, TokenStore};
