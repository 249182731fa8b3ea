//! The ordered list of verifiers a credential is tried against.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::VerifiedCache;
use crate::credential::Credential;
use crate::principal::Principal;
use crate::rejection::AuthRejection;
use crate::verifier::{Verifier, VerifyError};

/// The refusal of a bearer or API-key credential that no verifier recognized.
pub const UNRECOGNIZED: &str = "the credential is not recognized by this server";

/// Verifiers in configured order, with the verified-credential cache in front.
#[derive(Debug, Clone)]
pub struct Chain {
    verifiers: Vec<Arc<dyn Verifier>>,
    cache: VerifiedCache,
}

impl Chain {
    /// A chain over `verifiers`, caching up to 10,000 verified credentials for at most 5 minutes.
    pub fn new(verifiers: Vec<Arc<dyn Verifier>>) -> Self {
        Chain {
            verifiers,
            cache: VerifiedCache::new(10_000, Duration::from_secs(300)),
        }
    }

    /// Whether any verifier is configured.
    pub fn is_empty(&self) -> bool {
        self.verifiers.is_empty()
    }

    /// The cache, to clear it on revocation.
    pub fn cache(&self) -> &VerifiedCache {
        &self.cache
    }

    /// Who the credential belongs to. Verifiers whose shape matches are tried in
    /// order; the first that accepts or refuses it decides (`NotMine` passes it
    /// on). If none decides, an unavailable verifier makes it 503 (never "allow"),
    /// else it is a 401.
    pub async fn authenticate(&self, credential: &Credential) -> Result<Principal, AuthRejection> {
        self.authenticate_shared(credential)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// [`Chain::authenticate`], sharing the cached principal instead of copying it.
    pub(crate) async fn authenticate_shared(
        &self,
        credential: &Credential,
    ) -> Result<Arc<Principal>, AuthRejection> {
        let key = VerifiedCache::key(credential);
        if let Some(p) = self.cache.get_shared(&key) {
            return Ok(p);
        }
        let generation = self.cache.generation();
        let mut unavailable: Option<String> = None;
        for v in self.verifiers.iter().filter(|v| v.accepts(credential)) {
            match v.verify(credential).await {
                Ok(verified) => {
                    let cache_for = verified.cache_for();
                    let principal = Arc::new(verified.into_principal());
                    self.cache
                        .insert_verified_at(generation, key, principal.clone(), cache_for);
                    return Ok(principal);
                }
                Err(VerifyError::NotMine) => {}
                Err(VerifyError::Invalid(why)) => {
                    // The verifier owns this credential and refuses it: stop here, so a
                    // revoked key or an expired token is never shown to the verifiers
                    // after it (an introspection endpoint of another party).
                    tracing::debug!(verifier = v.name(), %why, "credential refused");
                    return Err(AuthRejection::InvalidToken(why));
                }
                Err(VerifyError::Unavailable(why)) => {
                    tracing::warn!(verifier = v.name(), %why, "verifier unavailable");
                    unavailable.get_or_insert(why);
                }
            }
        }
        if let Some(why) = unavailable {
            return Err(AuthRejection::Unavailable(format!(
                "cannot verify the credential right now: {why}; try again shortly"
            )));
        }
        Err(AuthRejection::InvalidToken(match credential {
            Credential::Basic { .. } => "unknown user or wrong password".to_owned(),
            _ => UNRECOGNIZED.to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests;
