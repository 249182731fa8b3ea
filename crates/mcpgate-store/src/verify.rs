//! The guard's verifiers for what this store holds: API keys and Basic users.
//!
//! Both ask the database on every verification the guard's cache lets
//! through, and let the cache keep a result for one second only, so a key
//! revoked (or a user removed) by the CLI in another process stops working
//! within a second in a running server.

use std::time::{Duration, SystemTime};

use mcpgate_guard::{
    AuthMethod, BoxFuture, Credential, Principal, Verified, Verifier, VerifyError,
};

use crate::Store;
use crate::api_keys::{KEY_PREFIX, KEY_RANDOM_CHARS, KeyDigest, well_formed};
use crate::time::format_utc;

/// How long the guard may reuse a verification: the revocation latency.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// Checks `mcpg_…` keys from the API-key header or `Authorization: Bearer`
/// against the keys created by `mcpgate keys create`.
#[derive(Debug, Clone)]
pub struct ApiKeyVerifier {
    store: Store,
}

impl ApiKeyVerifier {
    /// A verifier over `store`'s keys.
    pub fn new(store: Store) -> ApiKeyVerifier {
        ApiKeyVerifier { store }
    }

    async fn check(&self, key: &str) -> Result<Verified, VerifyError> {
        if !well_formed(key) {
            return Err(VerifyError::Invalid(format!(
                "malformed API key: mcpgate keys are {KEY_PREFIX} followed by {KEY_RANDOM_CHARS} letters and digits"
            )));
        }
        // Looked up by digest: the key itself never reaches the database, and
        // an index lookup on a SHA-256 digest tells a caller nothing about
        // other keys' text.
        let record = self
            .store
            .find_api_key(&KeyDigest::of(key))
            .await
            .map_err(|_| VerifyError::Unavailable("the API key store cannot be read".into()))?
            .ok_or_else(|| {
                VerifyError::Invalid(
                    "unknown API key: check that it was copied whole, or ask for a new one".into(),
                )
            })?;
        if let Some(at) = record.revoked_at {
            return Err(VerifyError::Invalid(format!(
                "API key {:?} was revoked at {}; ask for a new key",
                record.name,
                format_utc(at)
            )));
        }
        let now = SystemTime::now();
        if let Some(at) = record.expires_at.filter(|_| record.is_expired(now)) {
            return Err(VerifyError::Invalid(format!(
                "API key {:?} expired at {}; ask for a new key",
                record.name,
                format_utc(at)
            )));
        }
        let mut claims = serde_json::Map::new();
        claims.insert("key_name".into(), record.name.into());
        Ok(Verified::new(
            Principal::new(record.subject, AuthMethod::ApiKey)
                .with_scopes(record.scopes)
                .with_expires_at(record.expires_at)
                .with_claims(claims),
            CACHE_FOR,
        ))
    }
}

impl Verifier for ApiKeyVerifier {
    fn name(&self) -> &str {
        "api_key"
    }

    fn accepts(&self, credential: &Credential) -> bool {
        credential
            .token()
            .is_some_and(|t| t.starts_with(KEY_PREFIX))
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        let key = credential.token().filter(|k| k.starts_with(KEY_PREFIX));
        mcpgate_guard::claim(key, |key| self.check(key))
    }
}

/// Checks `Authorization: Basic` against the users of `mcpgate users`.
#[derive(Debug, Clone)]
pub struct BasicVerifier {
    store: Store,
}

impl BasicVerifier {
    /// A verifier over `store`'s users.
    pub fn new(store: Store) -> BasicVerifier {
        BasicVerifier { store }
    }
}

impl Verifier for BasicVerifier {
    fn name(&self) -> &str {
        "basic"
    }

    fn accepts(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Basic { .. })
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        Box::pin(async move {
            let Credential::Basic { user, password } = credential else {
                return Err(VerifyError::NotMine);
            };
            let record = self
                .store
                .check_password(user, password)
                .await
                .map_err(|_| VerifyError::Unavailable("the user store cannot be read".into()))?
                .ok_or_else(|| VerifyError::Invalid("unknown user or wrong password".into()))?;
            Ok(Verified::new(
                Principal::new(record.name, AuthMethod::Basic).with_scopes(record.scopes),
                CACHE_FOR,
            ))
        })
    }
}

#[cfg(test)]
mod tests;
