//! The client's side: a P-256 key pair (ES256) that signs a proof for every
//! request. Its PKCS#8 form is what the token store keeps.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::{TYP, ath, thumbprint};

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The stored key is not a P-256 PKCS#8 document.
    #[error("the stored DPoP key is not a P-256 PKCS#8 key")]
    Unreadable,
    /// The platform's random generator or signer failed.
    #[error("cannot make a DPoP key or proof: {0}")]
    Crypto(&'static str),
}

/// A DPoP key pair. Its `Debug` shows only the thumbprint.
pub struct ProofKey {
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    jwk: Jwk,
    jkt: String,
}

impl fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofKey").field("jkt", &self.jkt).finish()
    }
}

impl ProofKey {
    /// A new key.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| KeyError::Crypto("key generation failed"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| KeyError::Crypto("key encoding failed"))?;
        Self::from_pkcs8(der.as_ref())
    }

    /// The key the token store kept.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| KeyError::Unreadable)?;
        let point = pair.public_key().as_ref();
        // An uncompressed P-256 point: 0x04, then x and y of 32 bytes each.
        if point.len() != 65 {
            return Err(KeyError::Unreadable);
        }
        let jwk = Jwk {
            common: CommonParameters::default(),
            algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: URL_SAFE_NO_PAD.encode(&point[1..33]),
                y: URL_SAFE_NO_PAD.encode(&point[33..]),
            }),
        };
        let jkt = thumbprint(&jwk).ok_or(KeyError::Unreadable)?;
        Ok(ProofKey {
            encoding: EncodingKey::from_ec_der(der),
            pkcs8: der.to_vec(),
            jwk,
            jkt,
        })
    }

    /// The PKCS#8 document to store (a secret, like a refresh token).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key's thumbprint, which a bound token carries as `cnf.jkt`.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// A proof for one request: `method` and `url` as sent, the access token
    /// it goes with (none at the token endpoint), the server's last nonce.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, KeyError> {
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| KeyError::Crypto("no randomness"))?;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = serde_json::json!({
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "htm": method,
            "htu": crate::htu(url).unwrap_or_else(|| url.to_owned()),
            "iat": iat,
        });
        if let Some(t) = access_token {
            claims["ath"] = ath(t).into();
        }
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        self.sign(&claims)
    }

    /// Signs any claims as a proof; tests use it to make proofs that are
    /// wrong on purpose.
    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(TYP.to_owned());
        header.jwk = Some(self.jwk.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|_| KeyError::Crypto("signing failed"))
    }
}
