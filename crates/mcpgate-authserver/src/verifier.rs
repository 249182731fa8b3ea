//! In-process verification of this server's access tokens, for the guard:
//! signature by one of its keys, `typ: at+jwt`, `iss`, an `aud` claim, `exp`,
//! and that the token's grant is still active — so a replayed code, a reused
//! refresh token or a revocation ends its access tokens too, within the one
//! second a verification is cached.
//!
//! Which audience is right depends on where the token is presented: the
//! gateway holds each endpoint to its own URL (its `audience` module), and a
//! registered resource server checks the `aud` that introspection returns.
//!
//! Replicas on one store sign with keys another replica may not have read
//! yet (two replicas starting at once each generate a first key; a rotation
//! lands in one process). A token that names this issuer but an unknown `kid`
//! makes the verifier re-read the key ring — at most once a second — before
//! it gives up, so any replica accepts what any other signed.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use mcpgate_guard::{
    AuthMethod, BoxFuture, Credential, Principal, Verified, Verifier, VerifyError,
};

use mcpgate_types::{Audience, ClientId, ScopeSet, Subject};

use crate::Inner;

/// How long the guard may reuse a verification: the revocation latency.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// The least time between two re-reads of the key ring for unknown `kid`s:
/// a stream of forged kids must not become a stream of store reads.
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// The verifier of this server's access tokens.
#[derive(Debug, Clone)]
pub struct AccessTokenVerifier {
    inner: Arc<Inner>,
    last_reload: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl AccessTokenVerifier {
    pub(crate) fn new(inner: Arc<Inner>) -> AccessTokenVerifier {
        AccessTokenVerifier {
            inner,
            last_reload: Arc::default(),
        }
    }

    /// Whether the token's unverified `iss` is this server: only then is an
    /// unknown `kid` worth a look in the store.
    fn names_this_issuer(&self, token: &str) -> bool {
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<Iss>(&b).ok())
            .and_then(|c| c.iss)
            .is_some_and(|iss| self.inner.issuer == iss)
    }

    /// Re-reads the key ring unless that was done less than a second ago.
    async fn reload_keys(&self) {
        let mut last = self.last_reload.lock().await;
        if last.is_some_and(|t| t.elapsed() < RELOAD_AT_MOST_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        match self
            .inner
            .keys
            .reload(&self.inner.store, &self.inner.master)
            .await
        {
            Ok(()) => tracing::debug!("re-read the signing keys for a token with an unknown kid"),
            Err(e) => tracing::warn!("cannot re-read the signing keys: {e}"),
        }
    }

    fn kid_of(&self, token: &str) -> Option<String> {
        if token.split('.').count() != 3 {
            return None;
        }
        jsonwebtoken::decode_header(token).ok()?.kid
    }

    async fn check(&self, token: &str) -> Result<Verified, VerifyError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| VerifyError::Invalid("malformed access token".into()))?;
        if header
            .typ
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
            != Some("at+jwt")
        {
            return Err(VerifyError::Invalid(
                "not an access token (typ must be at+jwt)".into(),
            ));
        }
        let kid = header.kid.unwrap_or_default();
        if !self.inner.keys.has(&kid) {
            self.reload_keys().await;
        }
        let (key, alg) = self.inner.keys.decoding(&kid).ok_or(VerifyError::NotMine)?;
        if header.alg != alg {
            return Err(VerifyError::Invalid(
                "access token algorithm does not match its key".into(),
            ));
        }
        let mut v = jsonwebtoken::Validation::new(alg);
        v.set_issuer(&[&self.inner.issuer]);
        // Every token this server signed names a resource it accepted; which
        // one is acceptable here is the caller's decision (see the module doc).
        v.validate_aud = false;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 5;
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
                .map_err(|e| {
                    VerifyError::Invalid(match e.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                            "the access token expired; refresh it or sign in again".to_owned()
                        }
                        _ => format!("invalid access token: {e}"),
                    })
                })?;
        let claims = data.claims;
        let gid = claims
            .get("gid")
            .and_then(|v| v.as_str())
            .ok_or_else(|| VerifyError::Invalid("the access token has no grant".into()))?;
        let grant = self.inner.store.find_grant(gid).await.map_err(|_| {
            VerifyError::Unavailable("the authorization server's store cannot be read".into())
        })?;
        if !grant.is_some_and(|g| g.is_active(std::time::SystemTime::now())) {
            return Err(VerifyError::Invalid(
                "the access token was revoked; sign in again".into(),
            ));
        }
        let s = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        // This server signed these claims from values it had parsed, so a
        // value that does not parse back is left out (or refused, for `sub`)
        // rather than trusted.
        let subject = s("sub")
            .and_then(|x| Subject::try_from(x).ok())
            .ok_or_else(|| VerifyError::Invalid("the access token names no subject".into()))?;
        let scopes = ScopeSet::from_words_lossy(s("scope").as_deref());
        let audience = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str()).collect(),
            _ => Vec::new(),
        };
        let audience: Vec<Audience> = audience
            .into_iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let exp = claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0);
        Ok(Verified::new(
            Principal::new(subject, AuthMethod::Jwt)
                .with_client_id(s("client_id").and_then(|c| ClientId::try_from(c).ok()))
                .with_scopes(scopes)
                .with_audience(audience)
                .with_expires_at(Some(UNIX_EPOCH + Duration::from_secs(exp)))
                .with_claims(claims),
            CACHE_FOR,
        ))
    }
}

impl Verifier for AccessTokenVerifier {
    fn name(&self) -> &str {
        "authserver"
    }

    fn accepts(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Bearer(_))
            && credential.token().is_some_and(|t| {
                self.kid_of(t)
                    .is_some_and(|kid| self.inner.keys.has(&kid) || self.names_this_issuer(t))
            })
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        mcpgate_guard::claim(credential.bearer(), |t| self.check(t))
    }
}
