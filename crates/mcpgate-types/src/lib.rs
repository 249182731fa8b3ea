//! The values of the OAuth and MCP specs, parsed once.
//!
//! Every value that crosses a trust boundary as text (a client id, a redirect URI, a scope, a
//! resource indicator) is parsed here into a type named after the RFC that defines it, at the edge
//! where it arrives. Code further in takes the type, never the `String`, so a value that was not
//! checked cannot reach it. Each constructor says what it refuses; its error names the rule.
//!
//! [`AeadKey`] is here too: the one AES-256-GCM implementation the store (values at rest) and the
//! gateway (sealed session ids) both frame; [`random`] the one source of random bytes for the crates
//! without a randomness module of their own.
//!
//! This crate is a leaf: it depends on nothing of ours, and every other crate may use it.

#[macro_use]
mod text;

mod aead_key;
mod audience;
mod client_id;
mod error;
mod issuer;
pub mod random;
mod redirect_uri;
mod resource_uri;
mod scope;
mod session_id;
mod subject;

pub use aead_key::{
    AeadError, AeadKey, KEY_LEN, KeyFile, KeyFileError, MIN_SEALED_LEN, TAG_LEN,
    read_or_create_key_file,
};
pub use audience::{Audience, AudienceError};
pub use client_id::ClientId;
pub use error::ParseError;
pub use issuer::{Issuer, IssuerError, JwtIssuer, JwtIssuerError};
pub use redirect_uri::{OOB, RedirectUri, is_loopback_host};
pub use resource_uri::ResourceUri;
pub use scope::{Scope, ScopeError, ScopeSet};
pub use session_id::{SessionId, SessionIdError};
pub use subject::{Subject, SubjectError};
