//! What every way of checking a credential implements.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::credential::Credential;
use crate::principal::Principal;

/// A boxed, sendable future (verifiers are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A credential that checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    principal: Principal,
    cache_for: Duration,
}

impl Verified {
    /// `principal`, reusable for `cache_for` without asking the verifier again
    /// (the cache also never outlives the principal's `expires_at`).
    pub fn new(principal: Principal, cache_for: Duration) -> Self {
        Verified {
            principal,
            cache_for,
        }
    }

    /// Who it is.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The principal, taken out.
    pub fn into_principal(self) -> Principal {
        self.principal
    }

    /// How long the result may be reused without asking the verifier again.
    pub fn cache_for(&self) -> Duration {
        self.cache_for
    }
}

/// Why a verifier did not accept a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a credential of this verifier's kind (e.g. an API key shown to the JWT verifier): try the next.
    #[error("not recognized")]
    NotMine,
    /// This verifier's kind, but invalid: expired, bad signature, revoked, wrong audience. The reason is shown to the client.
    #[error("{0}")]
    Invalid(String),
    /// The verifier cannot decide now (its identity provider is unreachable).
    #[error("{0}")]
    Unavailable(String),
}

/// One way of checking credentials (API keys, JWT, introspection…).
// Every implementation repeats `verify`'s boxed-future signature (and most an
// `accepts` of the same few lines): the guard holds them as `dyn Verifier`,
// which an `async fn` cannot be. [`claim`] is the body most of them share.
pub trait Verifier: Send + Sync + std::fmt::Debug {
    /// A short name for logs and configuration (`"jwt:auth0"`).
    fn name(&self) -> &str;

    /// Whether the credential's shape could be this verifier's (no I/O; cheap).
    fn accepts(&self, credential: &Credential) -> bool;

    /// Checks the credential.
    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>>;
}

/// What most [`Verifier::verify`]s are: `check` the token when it is this
/// verifier's (`token`, already narrowed to its kind and shape), else
/// [`VerifyError::NotMine`] so that the next verifier tries it.
pub fn claim<'a, F>(
    token: Option<&'a str>,
    check: impl FnOnce(&'a str) -> F,
) -> BoxFuture<'a, Result<Verified, VerifyError>>
where
    F: Future<Output = Result<Verified, VerifyError>> + Send + 'a,
{
    match token {
        Some(t) => Box::pin(check(t)),
        None => Box::pin(std::future::ready(Err(VerifyError::NotMine))),
    }
}
