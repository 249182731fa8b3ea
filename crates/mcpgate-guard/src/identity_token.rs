//! Identity tokens: short-lived JWTs, signed by mcpgate, that tell an upstream
//! who the caller is — instead of forwarding the caller's own token, which
//! must never reach an upstream.
//!
//! Each token is ES256, lives 60 seconds, and is bound to one upstream:
//! `iss` is the gateway's public URL, `aud` the upstream's name or URL, and
//! `sub`, `scope`, `client_id` describe the [`Principal`]; `iat`, `exp` and a
//! random `jti` complete it. Upstreams verify it with the key set from
//! [`IdentitySigner::jwks`] (which the gateway serves) or the PEM from
//! [`IdentitySigner::public_key_pem`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::error::GuardError;
use crate::principal::Principal;

/// How long an identity token is valid.
const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// Signs identity tokens with one ES256 key. `Debug` never shows the key.
pub struct IdentitySigner {
    issuer: String,
    key: EncodingKey,
    jwk: Jwk,
    kid: String,
    public_pem: String,
    ttl: Duration,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySigner")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl IdentitySigner {
    /// A signer for tokens issued as `issuer` (the gateway's public URL), from
    /// an EC P-256 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str, issuer: impl Into<String>) -> Result<Self, GuardError> {
        Self::read_pem(pem, issuer.into()).map_err(GuardError::IdentityKey)
    }

    fn read_pem(pem: &str, issuer: String) -> Result<Self, String> {
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| {
            "the identity-token key is not an EC private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)"
                .to_owned()
        })?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.as_bytes())
            .map_err(|_| "the identity-token key is not a P-256 (ES256) key".to_owned())?;
        let spki = pair
            .public_key()
            .as_der()
            .map_err(|_| "cannot encode the identity-token public key".to_owned())?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| format!("cannot describe the identity-token key as a JWK: {e}"))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| format!("cannot compute the identity-token key id: {e}"))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(IdentitySigner {
            issuer,
            key,
            jwk,
            kid,
            public_pem: pem_encode("PUBLIC KEY", spki.as_ref()),
            ttl: DEFAULT_TTL,
        })
    }

    /// A signer with a new random key, and that key as PKCS#8 PEM (to store,
    /// so that tokens stay verifiable across restarts).
    pub fn generate(issuer: impl Into<String>) -> Result<(Self, String), GuardError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| {
            GuardError::IdentityKey("cannot generate an identity-token key".to_owned())
        })?;
        let der = pair.to_pkcs8v1().map_err(|_| {
            GuardError::IdentityKey("cannot encode the identity-token key".to_owned())
        })?;
        let pem = pem_encode("PRIVATE KEY", der.as_ref());
        let signer = Self::from_pem(&pem, issuer)?;
        Ok((signer, pem))
    }

    /// The same signer with tokens valid for `ttl` instead of 60 seconds.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key id (`kid`): the key's RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The public key set (`{"keys": [...]}`) upstreams verify tokens with.
    pub fn jwks(&self) -> serde_json::Value {
        let set = JwkSet {
            keys: vec![self.jwk.clone()],
        };
        // A JWK of strings always serializes.
        serde_json::to_value(&set).unwrap_or_default()
    }

    /// A token about `principal` for the upstream `audience` (its name or URL).
    pub fn sign(&self, principal: &Principal, audience: &str) -> Result<String, GuardError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti)
            .map_err(|_| GuardError::Signing("no randomness for the token id".to_owned()))?;
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), audience.into());
        claims.insert("sub".into(), principal.subject().as_str().into());
        if !principal.scopes().is_empty() {
            claims.insert("scope".into(), principal.scopes().to_string().into());
        }
        if let Some(c) = principal.client_id() {
            claims.insert("client_id".into(), c.as_str().into());
        }
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), (iat + self.ttl.as_secs()).into());
        claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(jti).into());
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| GuardError::Signing(e.to_string()))
    }
}

/// DER as PEM with 64-character lines.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests;
