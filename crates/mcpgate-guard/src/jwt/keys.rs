//! Verification keys: one from a PEM public key or an HMAC secret, or a set
//! from a JWKS document; and the algorithm names they are used with.

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// The algorithms accepted by name in configuration and token headers.
const KNOWN: &[(&str, Algorithm)] = &[
    ("HS256", Algorithm::HS256),
    ("HS384", Algorithm::HS384),
    ("HS512", Algorithm::HS512),
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// The algorithm named `name` (exact, case-sensitive as in RFC 7518).
pub(crate) fn algorithm(name: &str) -> Option<Algorithm> {
    KNOWN.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// The RFC 7518 name of `alg`.
pub(crate) fn algorithm_name(alg: Algorithm) -> &'static str {
    KNOWN
        .iter()
        .find(|(_, a)| *a == alg)
        .map_or("?", |(n, _)| *n)
}

/// Every supported algorithm name, for error messages.
pub(crate) fn known_names() -> String {
    KNOWN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// What a key family is called in messages.
pub(crate) fn family_name(f: AlgorithmFamily) -> &'static str {
    match f {
        AlgorithmFamily::Hmac => "HMAC secret",
        AlgorithmFamily::Rsa => "RSA key",
        AlgorithmFamily::Ec => "EC key",
        AlgorithmFamily::Ed => "Ed25519 key",
    }
}

/// One verification key.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// Its id (`kid`), when it has one.
    pub(crate) kid: Option<String>,
    /// The one algorithm it is published for (JWK `alg`), when stated.
    pub(crate) alg: Option<Algorithm>,
    /// The key itself.
    pub(crate) key: DecodingKey,
}

impl Key {
    /// Whether this key may verify a signature made with `alg`.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        self.key.family() == alg.family() && self.alg.is_none_or(|a| a == alg)
    }
}

/// A public key from PEM text: EC (P-256 or P-384), RSA, or Ed25519, as
/// `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1).
pub(crate) fn from_pem(pem: &str) -> Result<Key, String> {
    if pem.contains("PRIVATE KEY") {
        return Err("holds a private key; configure the issuer's public key (-----BEGIN PUBLIC KEY-----) instead".into());
    }
    let bytes = pem.as_bytes();
    let key = DecodingKey::from_ec_pem(bytes)
        .or_else(|_| DecodingKey::from_rsa_pem(bytes))
        .or_else(|_| DecodingKey::from_ed_pem(bytes))
        .map_err(|_| {
            "is not a PEM public key (expected -----BEGIN PUBLIC KEY----- holding an EC P-256, RSA or Ed25519 key)"
                .to_owned()
        })?;
    Ok(Key {
        kid: None,
        alg: None,
        key,
    })
}

/// The keys of a JWKS document that can verify signatures. Symmetric keys,
/// encryption keys and key types this build does not know are skipped: a JWKS
/// is public, and an `oct` key in it must never become an HMAC secret.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(body)
            .map_err(|e| format!("the key set is not a JWKS document ({e})"))?;
        let mut keys = Vec::new();
        for value in doc.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            ) {
                continue;
            }
            let alg = match jwk.common.key_algorithm {
                Some(a) => match algorithm(&a.to_string()) {
                    Some(a) => Some(a),
                    None => continue,
                },
                None => None,
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            if key.family() == AlgorithmFamily::Hmac {
                continue;
            }
            keys.push(Key {
                kid: jwk.common.key_id,
                alg,
                key,
            });
        }
        Ok(KeySet { keys })
    }

    /// Whether a key has this id.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys that may verify a token signed with `alg` under `kid`: the key
    /// with that id, or every fitting key when the token names none.
    pub(crate) fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&Key> {
        self.keys
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .filter(|k| k.fits(alg))
            .collect()
    }
}
