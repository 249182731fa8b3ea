//! JWT bearer tokens from a trusted issuer (`[[auth.jwt]]`), checked locally
//! against its JWKS, a PEM public key, or a shared HMAC secret.
//!
//! A token is refused — with a message the client can act on — when it is
//! larger than 8 KiB, malformed, unsigned (`alg: none`), signed with an
//! algorithm outside the allow-list, signed with an HMAC algorithm while the
//! issuer has public keys (or the reverse: algorithm confusion), badly signed,
//! expired (`Token expired at 2026-…Z`), not yet valid, issued in the future,
//! not for this server's audience, or missing a required claim. A token whose
//! `iss` is another issuer is [`VerifyError::NotMine`], so the next
//! `[[auth.jwt]]` table can try it. `exp` is always required.
//!
//! The [`Principal`](crate::Principal) gets `sub` (or `subject_claim`) as subject, `client_id`
//! (else `azp`, or `client_id_claim`), the scopes of `scope` and `scp` (or
//! `scope_claim`), the token's audiences, its expiry, and all its claims.
//!
//! JWKS keys are cached and refreshed as [`JwksSettings`] describes: rotation
//! is picked up on the first token with a new `kid`, floods of invented `kid`s
//! cost the identity provider at most one fetch per 30 s, and an unreachable
//! identity provider leaves the cached keys in use.
//!
//! # Identity providers
//!
//! Working tables for common providers (replace the capitals). `issuer` must
//! be byte-for-byte the token's `iss`: decode one token (e.g. on jwt.io, from a
//! test account) when in doubt.
//!
//! **Auth0.** The issuer ends with a slash. Auth0 ignores the RFC 8707
//! `resource` parameter and issues a JWT for your API only when the client
//! sends `audience=<API identifier>`; make the API identifier this server's
//! MCP URL. With RBAC's "Add Permissions in the Access Token", permissions
//! arrive as an array in `permissions`.
//!
//! ```toml
//! [[auth.jwt]]
//! name = "auth0"
//! issuer = "https://TENANT.us.auth0.com/"
//! audience = "https://mcp.example.com/mcp"
//! jwks_uri = "https://TENANT.us.auth0.com/.well-known/jwks.json"
//! # scope_claim = "permissions"   # when RBAC puts permissions in the token
//! ```
//!
//! **Microsoft Entra ID, v2 tokens.** An API's tokens are v2 only when its app
//! manifest says `"requestedAccessTokenVersion": 2`; otherwise the v2 endpoint
//! still issues v1 tokens (next table). v2 tokens carry the API's application
//! (client) ID as `aud`, the calling app in `azp`, delegated scopes as a
//! space-separated `scp` (without the `api://…/` prefix), and application
//! permissions as an array in `roles`. `sub` differs per application; `oid` is
//! the user's stable id. Entra does not accept the `resource` parameter
//! (AADSTS9010010) and has no dynamic registration: register the client in
//! the portal. Tokens for Microsoft Graph cannot be verified by anyone but Graph.
//!
//! ```toml
//! [[auth.jwt]]
//! name = "entra"
//! issuer = "https://login.microsoftonline.com/TENANT_ID/v2.0"
//! audience = "APPLICATION_CLIENT_ID"
//! jwks_uri = "https://login.microsoftonline.com/TENANT_ID/discovery/v2.0/keys"
//! subject_claim = "oid"
//! groups_claim = "roles"
//! ```
//!
//! **Microsoft Entra ID, v1 tokens.** The issuer is `sts.windows.net` with a
//! trailing slash; `aud` is the Application ID URI (`api://…`) or the client
//! ID; the calling app is in `appid`.
//!
//! ```toml
//! [[auth.jwt]]
//! name = "entra-v1"
//! issuer = "https://sts.windows.net/TENANT_ID/"
//! audience = ["api://APPLICATION_CLIENT_ID", "APPLICATION_CLIENT_ID"]
//! jwks_uri = "https://login.microsoftonline.com/TENANT_ID/discovery/keys"
//! subject_claim = "oid"
//! client_id_claim = "appid"
//! groups_claim = "roles"
//! ```
//!
//! **Keycloak.** `iss` is built from the URL clients reach Keycloak at (set its
//! `hostname`), even when mcpgate fetches the keys from an in-cluster address
//! (then `allow_http = true` if that address is plain http). By default tokens
//! carry only `aud: "account"`: add an *Audience* mapper (or a client scope with
//! one) that puts this server's MCP URL in `aud`. Realm roles live in
//! `realm_access.roles`; the *Group Membership* mapper adds `groups`.
//!
//! ```toml
//! [[auth.jwt]]
//! name = "keycloak"
//! issuer = "https://kc.example.com/realms/REALM"
//! audience = "https://mcp.example.com/mcp"
//! jwks_uri = "https://kc.example.com/realms/REALM/protocol/openid-connect/certs"
//! groups_claim = "realm_access.roles"
//! ```
//!
//! **Google.** Google's OAuth access tokens are opaque, not JWTs: they cannot be
//! checked here. Google *ID tokens* can — those of service accounts and
//! workloads (`gcloud auth print-identity-token --audiences=https://mcp.example.com/mcp`,
//! Cloud Run, GKE workload identity) — with this server's URL as audience. They
//! carry no scopes: admit callers with subject rules (`allow_subjects`) rather
//! than scopes. Some Google tokens say `iss: "accounts.google.com"` without the
//! scheme; a second table covers them.
//!
//! ```toml
//! [[auth.jwt]]
//! name = "google"
//! issuer = "https://accounts.google.com"
//! audience = "https://mcp.example.com/mcp"
//! jwks_uri = "https://www.googleapis.com/oauth2/v3/certs"
//! subject_claim = "email"
//!
//! [[auth.jwt]]
//! name = "google-legacy-iss"
//! issuer = "accounts.google.com"
//! audience = "https://mcp.example.com/mcp"
//! jwks_uri = "https://www.googleapis.com/oauth2/v3/certs"
//! subject_claim = "email"
//! ```
//!
//! **A shared secret** (services that mint their own HS256 tokens):
//!
//! ```toml
//! [[auth.jwt]]
//! name = "internal"
//! issuer = "https://billing.internal.example"
//! audience = "https://mcp.example.com/mcp"
//! hmac_secret_env = "MCPGATE_JWT_SECRET"
//! ```

mod claims;
mod config;
mod jwks;
mod keys;
mod token;

use std::sync::Arc;
use std::time::SystemTime;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use mcpgate_types::JwtIssuer;

pub use config::{Audience, JwtConfig};
pub use jwks::JwksSettings;

use crate::credential::Credential;
use crate::error::GuardError;
use crate::verifier::{BoxFuture, Verified, Verifier, VerifyError};

use claims::ClaimRules;
use config::Source;
use jwks::Jwks;
use keys::{Key, algorithm, algorithm_name, family_name};
use token::Compact;

/// Most keys tried for a token that names no `kid`.
const MAX_CANDIDATES: usize = 8;

/// Verifies JWTs of one issuer (one `[[auth.jwt]]` table).
#[derive(Debug)]
pub struct JwtVerifier {
    name: String,
    issuer: JwtIssuer,
    keys: Keys,
    /// The family of the fixed key; `None` for a JWKS (public keys of any family).
    family: Option<AlgorithmFamily>,
    algorithms: Vec<Algorithm>,
    rules: ClaimRules,
}

#[derive(Debug)]
enum Keys {
    Fixed(Key),
    Jwks(Arc<Jwks>),
}

impl JwtVerifier {
    /// The verifier for `config`, reading `hmac_secret_env` from the process
    /// environment and `public_key_file` from disk now. Nothing is fetched
    /// yet. The error names the table and the key at fault.
    pub fn new(config: &JwtConfig) -> Result<Self, GuardError> {
        Self::with_env(config, |name| std::env::var(name).ok())
    }

    // Each verifier that reads secrets from the environment has this `new` /
    // `with_env` pair: setting process variables in a threaded test is unsound
    // (`set_var` is unsafe), so tests and embedders pass their own lookup.
    /// The verifier for `config`, reading environment variables through `env`.
    pub fn with_env(
        config: &JwtConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GuardError> {
        Self::with_settings(config, env, JwksSettings::default())
    }

    /// The verifier for `config` with JWKS fetching tuned by `settings`.
    pub fn with_settings(
        config: &JwtConfig,
        env: impl Fn(&str) -> Option<String>,
        settings: JwksSettings,
    ) -> Result<Self, GuardError> {
        let r = config.resolve(&env).map_err(GuardError::Config)?;
        let keys = match r.source {
            Source::Fixed(key) => Keys::Fixed(key),
            Source::Jwks(uri) => {
                Keys::Jwks(Arc::new(Jwks::new(uri, settings).map_err(|e| {
                    GuardError::Config(format!("auth.jwt ({}): {e}", r.label))
                })?))
            }
        };
        Ok(JwtVerifier {
            name: format!("jwt:{}", r.label),
            issuer: r.issuer,
            keys,
            family: r.family,
            algorithms: r.algorithms,
            rules: r.rules,
        })
    }

    /// The issuer whose tokens this verifier checks (named in the
    /// `authorization_servers` of the protected-resource metadata when it is
    /// an authorization server: [`JwtIssuer::as_authorization_server`]).
    pub fn issuer(&self) -> &JwtIssuer {
        &self.issuer
    }

    /// The JWKS URL, when keys come from one.
    pub fn jwks_uri(&self) -> Option<&url::Url> {
        match &self.keys {
            Keys::Jwks(j) => Some(j.uri()),
            Keys::Fixed(_) => None,
        }
    }

    /// Fetches the JWKS now (at startup, to report an unreachable identity
    /// provider early); a no-op for fixed keys.
    pub async fn warm_up(&self) -> Result<(), GuardError> {
        match &self.keys {
            Keys::Jwks(j) => j
                .current()
                .await
                .map(|_| ())
                .map_err(|e| GuardError::KeysUnavailable(e.to_string())),
            Keys::Fixed(_) => Ok(()),
        }
    }

    async fn check(&self, token: &str) -> Result<Verified, VerifyError> {
        let t = Compact::parse(token)?;
        let alg_name = t
            .header
            .alg
            .as_deref()
            .ok_or_else(|| invalid("JWT header has no alg".into()))?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(invalid(
                "JWT algorithm \"none\" is refused: the token is not signed".into(),
            ));
        }
        match t.claims.get("iss") {
            Some(serde_json::Value::String(iss)) if self.issuer == *iss => {}
            Some(serde_json::Value::String(_)) => return Err(VerifyError::NotMine),
            _ => return Err(invalid("Token has no iss claim".into())),
        }
        if t.header.crit.is_some() {
            return Err(invalid(
                "JWT header lists critical extensions (crit) this server does not support".into(),
            ));
        }
        let alg = self.check_algorithm(alg_name)?;
        let kid = t.header.kid.as_deref();
        match &self.keys {
            Keys::Fixed(key) => {
                if !verify_signature(&t, key, alg) {
                    return Err(bad_signature());
                }
            }
            Keys::Jwks(jwks) => self.verify_with_jwks(jwks, &t, kid, alg).await?,
        }
        let (principal, cache_for) = self.rules.principal(t.claims, SystemTime::now())?;
        Ok(Verified::new(principal, cache_for))
    }

    /// The algorithm named in the header, if this issuer may use it.
    fn check_algorithm(&self, name: &str) -> Result<Algorithm, VerifyError> {
        let alg = algorithm(name).ok_or_else(|| {
            invalid(format!(
                "JWT algorithm {:?} is not supported",
                name.chars().take(32).collect::<String>()
            ))
        })?;
        let hmac_token = alg.family() == AlgorithmFamily::Hmac;
        let hmac_issuer = self.family == Some(AlgorithmFamily::Hmac);
        if hmac_token && !hmac_issuer {
            return Err(invalid(format!(
                "JWT algorithm {name} (HMAC) is refused: this issuer signs with public keys (algorithm confusion)"
            )));
        }
        if !hmac_token && hmac_issuer {
            return Err(invalid(format!(
                "JWT algorithm {name} is refused: this issuer signs with a shared HMAC secret (algorithm confusion)"
            )));
        }
        if let Some(f) = self.family
            && f != alg.family()
        {
            return Err(invalid(format!(
                "JWT algorithm {name} does not fit this issuer's {}",
                family_name(f)
            )));
        }
        if !self.algorithms.contains(&alg) {
            let allowed: Vec<&str> = self.algorithms.iter().map(|a| algorithm_name(*a)).collect();
            return Err(invalid(format!(
                "JWT algorithm {name} is not allowed for this issuer (allowed: {})",
                allowed.join(", ")
            )));
        }
        Ok(alg)
    }

    async fn verify_with_jwks(
        &self,
        jwks: &Arc<Jwks>,
        t: &Compact<'_>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(), VerifyError> {
        let mut snapshot = jwks.current().await?;
        if let Some(kid) = kid
            && !snapshot.keys.has_kid(kid)
        {
            // The issuer may have rotated its keys: ask again (rate-limited).
            match jwks.refetch_for_unknown_kid(snapshot.generation).await {
                Some(fresh) if fresh.keys.has_kid(kid) => snapshot = fresh,
                _ => {
                    return Err(invalid(format!(
                        "JWT signing key {:?} is not among the issuer's keys",
                        kid.chars().take(64).collect::<String>()
                    )));
                }
            }
        }
        let candidates = snapshot.keys.candidates(kid, alg);
        if candidates.is_empty() {
            return Err(invalid(match kid {
                Some(_) => format!(
                    "JWT signing key is not published for {}",
                    algorithm_name(alg)
                ),
                None => format!(
                    "JWT names no signing key (kid) and the issuer has no {} key",
                    algorithm_name(alg)
                ),
            }));
        }
        if candidates
            .into_iter()
            .take(MAX_CANDIDATES)
            .any(|key| verify_signature(t, key, alg))
        {
            Ok(())
        } else {
            Err(bad_signature())
        }
    }
}

fn invalid(msg: String) -> VerifyError {
    VerifyError::Invalid(msg)
}

fn bad_signature() -> VerifyError {
    invalid("JWT signature does not verify".into())
}

fn verify_signature(t: &Compact<'_>, key: &Key, alg: Algorithm) -> bool {
    key.fits(alg)
        && jsonwebtoken::crypto::verify(t.signature, t.signing_input.as_bytes(), &key.key, alg)
            .unwrap_or(false)
}

impl Verifier for JwtVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Bearer(t) if token::looks_like_jws(t))
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        let jws = credential.bearer().filter(|t| token::looks_like_jws(t));
        crate::claim(jws, |t| self.check(t))
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests;
