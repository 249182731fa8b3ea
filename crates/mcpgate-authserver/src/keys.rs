//! The signing keys: generated on first start, stored sealed under the master
//! key, published as a JWKS, and used to sign access tokens.
//!
//! Tokens are signed here with aws-lc-rs directly (jsonwebtoken wants RSA keys
//! as PKCS#1, which aws-lc-rs does not export); they are verified with
//! jsonwebtoken from the public JWK, as any resource server would.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use mcpgate_store::oauth::SigningKeyRow;
use mcpgate_store::{MasterKey, Store};

use crate::error::Error;
use crate::settings::SigningAlg;

enum Signer {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// One key: its signer, its public JWK and the key that verifies it.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    alg: SigningAlg,
    signer: Signer,
    jwk: serde_json::Value,
    pub(crate) decoding: DecodingKey,
    /// Whether it signs new tokens (else it is only published, for the overlap).
    active: bool,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self.alg {
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::RS256 => Algorithm::RS256,
        }
    }

    /// Parses a PKCS#8 private key; the kid is its RFC 7638 thumbprint.
    fn from_pkcs8(alg: SigningAlg, der: &[u8], active: bool) -> Result<SigningKey, String> {
        let bad = |e: &dyn std::fmt::Display| {
            format!("a stored {} signing key is unusable: {e}", alg.as_str())
        };
        let (signer, mut jwk) = match alg {
            SigningAlg::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| bad(&e))?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 {
                    return Err(bad(&"not an uncompressed P-256 point"));
                }
                let jwk = serde_json::json!({
                    "kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                });
                (Signer::Ec(pair), jwk)
            }
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| bad(&e))?;
                let jwk = serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                });
                (Signer::Ed(pair), jwk)
            }
            SigningAlg::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| bad(&e))?;
                let public = pair.public_key();
                let jwk = serde_json::json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                });
                (Signer::Rsa(pair), jwk)
            }
        };
        let parsed: Jwk = serde_json::from_value(jwk.clone()).map_err(|e| bad(&e))?;
        let kid = parsed
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| bad(&e))?;
        let decoding = DecodingKey::from_jwk(&parsed).map_err(|e| bad(&e))?;
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), kid.clone().into());
            o.insert("use".into(), "sig".into());
            o.insert("alg".into(), alg.as_str().into());
        }
        Ok(SigningKey {
            kid,
            alg,
            signer,
            jwk,
            decoding,
            active,
        })
    }

    /// A compact JWS of `claims` with header `typ`.
    fn sign(&self, typ: &str, claims: &serde_json::Value) -> Result<String, Error> {
        let failed = |_| Error::SigningKey("signing failed".to_owned());
        let header = serde_json::json!({ "alg": self.alg.as_str(), "typ": typ, "kid": self.kid });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Ec(p) => p
                .sign(&rng, input.as_bytes())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Signer::Ed(p) => p.sign(input.as_bytes()).as_ref().to_vec(),
            Signer::Rsa(p) => {
                let mut out = vec![0; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out)
                    .map_err(failed)?;
                out
            }
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// A fresh private key for `alg`, as PKCS#8 DER.
fn generate(alg: SigningAlg) -> Result<Vec<u8>, String> {
    let fail = |_| format!("cannot generate a {} signing key", alg.as_str());
    Ok(match alg {
        SigningAlg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(fail)?
            .to_pkcs8v1()
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        SigningAlg::EdDSA => Ed25519KeyPair::generate()
            .map_err(fail)?
            .to_pkcs8v1()
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        SigningAlg::RS256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(fail)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().map_err(fail)?;
            der.as_ref().to_vec()
        }
    })
}

/// The associated data a key is sealed with: it cannot be moved to another row.
pub fn aad(kid: &str) -> Vec<u8> {
    format!("mcpgate-signing-key:{kid}").into_bytes()
}

/// Generates a key for `alg`, stores it sealed as the active key (the others
/// stay published for `overlap`), and returns its kid.
pub async fn rotate(
    store: &Store,
    master: &MasterKey,
    alg: SigningAlg,
    overlap: Duration,
) -> Result<String, Error> {
    let der = generate(alg).map_err(Error::SigningKey)?;
    let key = SigningKey::from_pkcs8(alg, &der, true).map_err(Error::SigningKey)?;
    let sealed = master
        .seal(&der, &aad(&key.kid))
        .map_err(|e| Error::SigningKey(format!("cannot seal the signing key: {e}")))?;
    store
        .add_signing_key(
            &SigningKeyRow::new(key.kid.clone(), alg.as_str().to_owned(), sealed),
            SystemTime::now() + overlap,
        )
        .await
        .map_err(Error::store("cannot store the signing key"))?;
    Ok(key.kid)
}

/// The published keys, the active one first.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyRing {
    keys: Arc<RwLock<Arc<Vec<SigningKey>>>>,
}

impl KeyRing {
    /// Loads the stored keys, generating the first one when there is none.
    pub(crate) async fn load(
        store: &Store,
        master: &MasterKey,
        alg: SigningAlg,
        overlap: Duration,
    ) -> Result<KeyRing, Error> {
        let ring = KeyRing::default();
        ring.reload(store, master).await?;
        if ring.active().is_none() {
            let kid = rotate(store, master, alg, overlap).await?;
            tracing::info!(%kid, alg = alg.as_str(), "generated the authorization server's signing key");
            ring.reload(store, master).await?;
        }
        Ok(ring)
    }

    /// Reads the keys again (after `mcpgate signing-keys rotate` in another process).
    pub(crate) async fn reload(&self, store: &Store, master: &MasterKey) -> Result<(), Error> {
        let rows = store
            .list_signing_keys()
            .await
            .map_err(Error::store("cannot read the signing keys"))?;
        let now = SystemTime::now();
        let mut keys = Vec::new();
        for row in rows.iter().filter(|r| r.retire_at.is_none_or(|t| t > now)) {
            let der = master.open(&row.sealed, &aad(&row.kid)).map_err(|e| {
                Error::SigningKey(format!(
                    "the master key does not open the sealed signing keys: {e}"
                ))
            })?;
            let alg = SigningAlg::parse(&row.alg).ok_or_else(|| {
                Error::SigningKey(format!(
                    "stored signing key {} has unknown algorithm {:?}",
                    row.kid, row.alg
                ))
            })?;
            keys.push(
                SigningKey::from_pkcs8(alg, &der, row.superseded_at.is_none())
                    .map_err(Error::SigningKey)?,
            );
        }
        // Newest active key first: it signs.
        keys.sort_by_key(|k| !k.active);
        if let Ok(mut w) = self.keys.write() {
            *w = Arc::new(keys);
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<Vec<SigningKey>> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    fn active(&self) -> Option<String> {
        self.snapshot()
            .iter()
            .find(|k| k.active)
            .map(|k| k.kid.clone())
    }

    /// Signs `claims` with the active key.
    pub(crate) fn sign(&self, typ: &str, claims: &serde_json::Value) -> Result<String, Error> {
        let keys = self.snapshot();
        let key = keys
            .iter()
            .find(|k| k.active)
            .ok_or_else(|| Error::SigningKey("no active signing key".to_owned()))?;
        key.sign(typ, claims)
    }

    /// The public key set.
    pub(crate) fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self.snapshot().iter().map(|k| k.jwk.clone()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// Whether `kid` is one of these keys.
    pub(crate) fn has(&self, kid: &str) -> bool {
        self.snapshot().iter().any(|k| k.kid == kid)
    }

    /// The verification key and algorithm for `kid`.
    pub(crate) fn decoding(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.snapshot()
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| (k.decoding.clone(), k.algorithm()))
    }

    /// The algorithms of the published keys.
    pub(crate) fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> = self.snapshot().iter().map(|k| k.alg.as_str()).collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }
}

#[cfg(test)]
mod tests;
