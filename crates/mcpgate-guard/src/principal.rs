//! The caller, as every verifier describes it.

use std::time::SystemTime;

use mcpgate_types::{Audience, ClientId, ScopeSet, Subject};
use serde::{Deserialize, Serialize};

/// How a caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
///
/// Its fields are private so that what a verifier said cannot be edited on the
/// way to policy: a verifier builds one with [`Principal::new`] and the `with_*`
/// setters, everyone else reads it.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    subject: Subject,
    client_id: Option<ClientId>,
    scopes: ScopeSet,
    audience: Vec<Audience>,
    expires_at: Option<SystemTime>,
    method: AuthMethod,
    claims: serde_json::Map<String, serde_json::Value>,
}

impl Principal {
    /// A caller known by `subject` (the `sub`), proven by `method`, with no
    /// scopes, audience, expiry or claims yet.
    pub fn new(subject: Subject, method: AuthMethod) -> Self {
        Principal {
            subject,
            client_id: None,
            scopes: ScopeSet::new(),
            audience: Vec::new(),
            expires_at: None,
            method,
            claims: serde_json::Map::new(),
        }
    }

    /// The caller with no credential.
    pub fn anonymous() -> Self {
        // A literal without control characters, so the parse cannot fail.
        let nobody = "anonymous".parse().expect("\"anonymous\" is a subject");
        Principal::new(nobody, AuthMethod::Anonymous)
    }

    /// Sets the OAuth client the credential was issued to.
    pub fn with_client_id(mut self, client_id: Option<ClientId>) -> Self {
        self.client_id = client_id;
        self
    }

    /// Sets the granted scopes.
    pub fn with_scopes(mut self, scopes: ScopeSet) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the audiences the credential is valid for.
    pub fn with_audience(mut self, audience: Vec<Audience>) -> Self {
        self.audience = audience;
        self
    }

    /// Sets when the credential stops being valid.
    pub fn with_expires_at(mut self, expires_at: Option<SystemTime>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// Sets the other claims (JWT or introspection), for group rules and forwarding.
    pub fn with_claims(mut self, claims: serde_json::Map<String, serde_json::Value>) -> Self {
        self.claims = claims;
        self
    }

    /// Stable identifier of the user or service (`sub`).
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The OAuth client the token was issued to, when known.
    pub fn client_id(&self) -> Option<&ClientId> {
        self.client_id.as_ref()
    }

    /// Granted scopes.
    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }

    /// Audiences the credential is valid for.
    pub fn audience(&self) -> &[Audience] {
        &self.audience
    }

    /// When the credential stops being valid.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// How the caller authenticated.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// Whether nobody authenticated (no credential in optional mode).
    pub fn is_anonymous(&self) -> bool {
        self.method == AuthMethod::Anonymous
    }

    /// Other claims (JWT or introspection), for group rules and forwarding.
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.claims
    }

    /// The groups listed in claim `claim`: an array of strings, or one
    /// space-separated string.
    pub fn groups(&self, claim: &str) -> Vec<String> {
        match self.claims.get(claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => {
                s.split_ascii_whitespace().map(str::to_owned).collect()
            }
            _ => Vec::new(),
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
}

/// The values of an `aud` claim that are audiences, the others left out: the
/// audience check ran on the claim as sent, this is what is kept for the
/// caller's description, and a value with a space could match nothing.
pub(crate) fn audiences_lossy(values: Vec<String>) -> Vec<Audience> {
    values
        .into_iter()
        .filter_map(|a| Audience::try_from(a).ok())
        .collect()
}

/// Principals that bypass authentication. Nothing here is for a server that
/// checks its callers: each constructor says in its name what it gives away.
pub mod danger {
    use super::{Principal, ScopeSet};

    /// The caller everyone is when authentication is disabled (`auth.mode =
    /// "disabled"`, loopback development only): anonymous, holding the `*`
    /// scope, so every tool, prompt and resource is allowed.
    pub fn superuser_for_disabled_auth() -> Principal {
        let mut p = Principal::anonymous();
        p.scopes = ScopeSet::from_words_lossy(["*"]);
        p
    }
}
