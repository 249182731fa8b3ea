//! The client side of mcpgate: how an MCP client gets through an
//! OAuth-protected MCP server.
//!
//! It discovers the authorization server the way the MCP authorization spec
//! lays out, registers (pre-registered, client ID metadata document, dynamic
//! registration), signs in with PKCE, keeps tokens in the OS keyring or a
//! private file, refreshes them before they expire, and bridges a local stdio
//! MCP client to a remote server ([`bridge`]).
//!
//! It must never send a token to a server other than the one it was issued
//! for, never write a secret to a file others can read, and never open a URL
//! through a shell.

pub mod bridge;
pub mod credentials;

pub mod authorize;
pub mod challenge;
pub mod clock;
pub mod device;
pub mod discovery;
pub mod error;
pub mod manager;
pub mod mcp_config;
pub mod mcp_http;
pub mod metadata;
pub mod oauth;
pub mod pkce;
pub mod registration;
pub mod store;

pub use credentials::{Credentials, CredentialsError, StaticCredentials};
pub use error::ClientError;
pub use manager::{SignInMethod, SignInOptions, TokenManager};
pub use store::{RefreshMargin, TokenStore};
