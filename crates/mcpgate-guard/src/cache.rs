//! Verified credentials, remembered by a digest of the credential, so a token
//! is verified once and not on every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::digest;

use crate::credential::Credential;
use crate::principal::Principal;

/// A bounded cache of verified principals. Keys are SHA-256 digests: the cache
/// holds no credential in the clear. Principals are shared, not copied, on a
/// hit: a request costs a reference count, not a copy of the claims.
#[derive(Debug, Clone)]
pub struct VerifiedCache {
    inner: moka::sync::Cache<[u8; 32], (Arc<Principal>, Instant)>,
    /// Bumped by every [`VerifiedCache::clear`]: a verification that started
    /// before a revocation was announced must not put its (maybe revoked)
    /// answer back after the clear.
    generation: Arc<AtomicU64>,
}

impl VerifiedCache {
    /// A cache of at most `capacity` entries, none kept longer than `max_ttl`.
    pub fn new(capacity: u64, max_ttl: Duration) -> Self {
        VerifiedCache {
            inner: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_ttl)
                .build(),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The generation to pass to [`VerifiedCache::insert_verified_at`], read
    /// before verifying.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The digest a credential is cached under. (aws-lc-rs's SHA-256, which
    /// uses the CPU's SHA instructions: this runs on every request.)
    pub fn key(c: &Credential) -> [u8; 32] {
        let mut h = digest::Context::new(&digest::SHA256);
        match c {
            Credential::Bearer(t) => {
                h.update(b"bearer\0");
                h.update(t.as_bytes());
            }
            Credential::ApiKey(t) => {
                h.update(b"apikey\0");
                h.update(t.as_bytes());
            }
            Credential::Basic { user, password } => {
                h.update(b"basic\0");
                h.update(user.as_bytes());
                h.update(b"\0");
                h.update(password.as_bytes());
            }
        }
        let mut key = [0u8; 32];
        // SHA-256 is 32 bytes by definition.
        key.copy_from_slice(h.finish().as_ref());
        key
    }

    /// A principal still valid for this credential.
    pub fn get(&self, key: &[u8; 32]) -> Option<Principal> {
        self.get_shared(key).map(Arc::unwrap_or_clone)
    }

    /// [`VerifiedCache::get`] without the copy.
    pub(crate) fn get_shared(&self, key: &[u8; 32]) -> Option<Arc<Principal>> {
        let (p, until) = self.inner.get(key)?;
        if Instant::now() >= until || p.expires_at().is_some_and(|e| e <= SystemTime::now()) {
            self.inner.invalidate(key);
            return None;
        }
        Some(p)
    }

    /// Remembers a principal for `ttl`, never past its expiry.
    pub fn insert(&self, key: [u8; 32], p: Principal, ttl: Duration) {
        self.insert_shared(key, Arc::new(p), ttl);
    }

    /// [`VerifiedCache::insert`] of a shared principal.
    pub(crate) fn insert_shared(&self, key: [u8; 32], p: Arc<Principal>, ttl: Duration) {
        let mut ttl = ttl;
        if let Some(left) = p
            .expires_at()
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
        {
            ttl = ttl.min(left);
        }
        if ttl.is_zero() {
            return;
        }
        self.inner.insert(key, (p, Instant::now() + ttl));
    }

    /// [`VerifiedCache::insert_shared`] of an answer verified in generation
    /// `generation`: dropped if the cache was cleared since. The second check
    /// covers a clear that lands between the first and the insert.
    pub(crate) fn insert_verified_at(
        &self,
        generation: u64,
        key: [u8; 32],
        p: Arc<Principal>,
        ttl: Duration,
    ) {
        if self.generation() != generation {
            return;
        }
        self.insert_shared(key, p, ttl);
        if self.generation() != generation {
            self.inner.invalidate(&key);
        }
    }

    /// Forgets everything (a key was revoked, a signing key rotated).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.inner.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthMethod;

    #[test]
    fn an_answer_verified_before_a_clear_is_not_kept_after_it() {
        let cache = VerifiedCache::new(10, Duration::from_secs(60));
        let key = VerifiedCache::key(&Credential::ApiKey("k".to_owned()));
        let p = Arc::new(Principal::new("carol".parse().unwrap(), AuthMethod::ApiKey));
        let before = cache.generation();
        // A revocation is announced while the verification is in flight.
        cache.clear();
        cache.insert_verified_at(before, key, p.clone(), Duration::from_secs(60));
        assert!(cache.get_shared(&key).is_none());
        cache.insert_verified_at(cache.generation(), key, p, Duration::from_secs(60));
        assert!(cache.get_shared(&key).is_some());
    }
}
