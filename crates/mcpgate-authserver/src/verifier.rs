//! In-process verification of this server's access tokens, for the guard:
//! signature by one of its keys, `typ: at+jwt`, `iss`, an `aud` claim, `exp`,
//! and that the token's grant is still active — so a replayed code, a reused
//! refresh token or a revocation ends its access tokens too, within the one
//! second a verification is cached.
//!
//! Which audience is right depends on where the token is presented: the
//! gateway holds each endpoint to its own URL (its `audience` module), and a
//! registered resource server checks the `aud` that introspection returns.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use mcpgate_guard::{
    AuthMethod, BoxFuture, Credential, Principal, Verified, Verifier, VerifyError,
};

use crate::Inner;

/// How long the guard may reuse a verification: the revocation latency.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// The verifier of this server's access tokens.
#[derive(Debug, Clone)]
pub struct AccessTokenVerifier {
    inner: Arc<Inner>,
}

impl AccessTokenVerifier {
    pub(crate) fn new(inner: Arc<Inner>) -> AccessTokenVerifier {
        AccessTokenVerifier { inner }
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
        let scopes: BTreeSet<String> = s("scope").map(|x| crate::scope_set(&x)).unwrap_or_default();
        let audience = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let exp = claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0);
        Ok(Verified::new(
            Principal::new(s("sub").unwrap_or_default(), AuthMethod::Jwt)
                .with_client_id(s("client_id"))
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
            && credential
                .token()
                .and_then(|t| self.kid_of(t))
                .is_some_and(|kid| self.inner.keys.has(&kid))
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        Box::pin(async move {
            match credential {
                Credential::Bearer(t) => self.check(t).await,
                _ => Err(VerifyError::NotMine),
            }
        })
    }
}
