//! The caller, as every verifier describes it.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::Serialize;

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// An API key issued by `mcpgate keys create`.
    ApiKey,
    /// A static token from configuration.
    StaticToken,
    /// HTTP Basic with a user from `mcpgate users`.
    Basic,
    /// A JWT verified against a JWKS, a PEM key or an HMAC secret.
    Jwt,
    /// An opaque token checked by RFC 7662 introspection.
    Introspection,
    /// The user's own upstream API key, passed through to one upstream.
    UpstreamKey,
    /// Nobody: `auth.mode = "optional"` without a credential, or auth disabled.
    Anonymous,
}

/// The verified caller: what policy decides on and logs name.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// Stable identifier of the user or service (`sub`).
    pub subject: String,
    /// The OAuth client the token was issued to, when known.
    pub client_id: Option<String>,
    /// Granted scopes.
    pub scopes: BTreeSet<String>,
    /// Audiences the credential is valid for.
    pub audience: Vec<String>,
    /// When the credential stops being valid.
    pub expires_at: Option<SystemTime>,
    /// How the caller authenticated.
    pub method: AuthMethod,
    /// Other claims (JWT or introspection), for group rules and forwarding.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl Principal {
    /// The caller with no credential.
    pub fn anonymous() -> Self {
        Principal {
            subject: "anonymous".to_owned(),
            client_id: None,
            scopes: BTreeSet::new(),
            audience: Vec::new(),
            expires_at: None,
            method: AuthMethod::Anonymous,
            claims: serde_json::Map::new(),
        }
    }

    /// Whether the caller holds `scope` (the `*` scope holds every scope).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains("*") || self.scopes.contains(scope)
    }

    /// The scopes of `needed` the caller lacks.
    pub fn missing<'a>(&self, needed: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        needed
            .into_iter()
            .filter(|s| !self.has_scope(s))
            .cloned()
            .collect()
    }

    /// Parses a space-separated scope string.
    pub fn parse_scopes(s: &str) -> BTreeSet<String> {
        s.split_ascii_whitespace().map(str::to_owned).collect()
    }
}
