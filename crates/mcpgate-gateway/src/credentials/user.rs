//! Per-user secrets kept outside the gateway (the vault, federated tokens),
//! and the sources the binary wires in to look them up.

use std::collections::HashMap;
use std::sync::Arc;

use super::secret::Secret;

/// A secret one user keeps for one upstream, as a [`UserSecretSource`] returns it.
/// `Debug` never shows it.
#[derive(Clone)]
pub struct UserSecret(pub(super) Secret);

impl UserSecret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        UserSecret(Secret::new(value))
    }
}

impl UserSecret {
    /// The value, for a source comparing what was sent with what it holds.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserSecret(<redacted>)")
    }
}

/// Why a [`UserSecretSource`] has no secret to give. Its text is shown to the
/// caller and the operator, so it names what failed and what to do, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserSecretError {
    /// The source is not wired (no authorization server, no identity provider
    /// of that name); the text says what to enable.
    #[error("{0}")]
    NotConfigured(String),
    /// The user has not stored the secret the upstream needs; the text says
    /// where to add it.
    #[error("{0}")]
    NotStored(String),
    /// Looking it up failed (the store, the identity provider).
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// Where per-user secrets come from (the vault implements it): the secret
/// `subject` stored for `upstream`, `Ok(None)` when there is none.
// Each implementation repeats the boxed-future signatures below: the gateway
// holds sources as `dyn UserSecretSource`, which an `async fn` cannot be.
pub trait UserSecretSource: Send + Sync + std::fmt::Debug {
    /// Looks the secret up; an `Err` is shown to the caller and the operator, so it
    /// must name what failed, never a value.
    fn secret_for<'a>(
        &'a self,
        subject: &'a str,
        upstream: &'a str,
    ) -> mcpgate_guard::BoxFuture<'a, Result<Option<UserSecret>, UserSecretError>>;

    /// The upstream refused `sent` (401) on `subject`'s request: renew it if
    /// the source can (a federated token refreshed, or found revoked and
    /// marked). Returns whether sending the request again is worth it; by
    /// default nothing is renewed.
    fn rejected<'a>(
        &'a self,
        subject: &'a str,
        upstream: &'a str,
        sent: &'a UserSecret,
    ) -> mcpgate_guard::BoxFuture<'a, bool> {
        let _ = (subject, upstream, sent);
        Box::pin(async { false })
    }
}

/// The per-user secret stores the gateway asks (wired by the binary).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UserSources {
    /// The vault, for `kind = "vault"`; without it those credentials fail
    /// with a message saying to enable the authorization server.
    pub vault: Option<Arc<dyn UserSecretSource>>,
    /// Per identity provider name, its users' tokens, for `kind = "federated"`.
    pub federated: HashMap<String, Arc<dyn UserSecretSource>>,
}

impl UserSources {
    /// Sources with `vault` as the vault.
    pub fn with_vault(vault: Arc<dyn UserSecretSource>) -> Self {
        UserSources {
            vault: Some(vault),
            federated: HashMap::new(),
        }
    }
}
