//! Verifying a proof against the request it came with (RFC 9449 §4.3).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::nonce::Nonces;
use crate::{ALGS, INVALID_PROOF, TYP, USE_NONCE};

/// How old a proof may be. Short, because every `jti` seen in this window is
/// remembered to refuse a replay.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// How far ahead of this server's clock a proof's `iat` may be (clock skew).
pub const MAX_AHEAD: Duration = Duration::from_secs(10);

/// What the proof must match: the request as this server received it.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's URL as the client addressed it (`htu`); its query and
    /// fragment are ignored.
    pub url: &'a str,
    /// The access token of the request: the proof's `ath` must be its hash.
    /// `None` at the token endpoint, where there is no token yet.
    pub access_token: Option<&'a str>,
    /// The thumbprint the access token (or refresh token) is bound to.
    pub jkt: Option<&'a str>,
    /// When set, the proof must carry a nonce these accept.
    pub nonces: Option<&'a Nonces>,
    /// This server's clock.
    pub now: SystemTime,
}

/// A proof that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// The proof's unique id, to be seen only once.
    pub jti: String,
    /// When the proof was made (seconds since the Unix epoch).
    pub iat: u64,
}

impl Verified {
    /// The replay cache's key: the `jti` is unique per key, so both are in it,
    /// hashed to a fixed length whatever the client sent.
    pub fn replay_key(&self) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(self.jkt.as_bytes());
        ctx.update(&[0]);
        ctx.update(self.jti.as_bytes());
        URL_SAFE_NO_PAD.encode(ctx.finish())
    }

    /// Until when the replay cache must remember this proof: after that its
    /// `iat` is too old for [`verify`] to accept it anyway.
    pub fn remember_until(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.iat) + MAX_AGE + MAX_AHEAD
    }
}

/// Why a proof was refused. The message is safe to log and to send back: it
/// never contains the proof or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// No `DPoP` header, or more than one.
    #[error("the request needs exactly one DPoP header with a proof")]
    Missing,
    /// Not a JWT, or a required part is missing.
    #[error("the DPoP proof is malformed: {0}")]
    Malformed(&'static str),
    /// The `alg` is none, symmetric, or not one of [`ALGS`].
    #[error("the DPoP proof's alg is not one of {ALGS:?}")]
    Alg,
    /// The signature does not verify with the header's `jwk`.
    #[error("the DPoP proof's signature does not verify with its jwk")]
    Signature,
    /// `htm` is not the request's method.
    #[error("the DPoP proof's htm is not the request's method")]
    Method,
    /// `htu` is not the request's URL.
    #[error("the DPoP proof's htu is not the request's URL")]
    Url,
    /// `iat` is older than [`MAX_AGE`].
    #[error("the DPoP proof is too old: iat must be within the last 60 seconds")]
    Stale,
    /// `iat` is further ahead than [`MAX_AHEAD`].
    #[error("the DPoP proof's iat is in the future")]
    Future,
    /// `ath` is missing or is not the hash of the access token.
    #[error("the DPoP proof's ath is missing or is not the hash of the access token")]
    Ath,
    /// The proof's key is not the one the token is bound to.
    #[error("the DPoP proof is signed by another key than the one the token is bound to")]
    Key,
    /// The `jti` was seen before.
    #[error("the DPoP proof was used before (its jti was seen)")]
    Replayed,
    /// The server wants a nonce and the proof has none.
    #[error("a DPoP nonce is required: retry with the value of the DPoP-Nonce header")]
    NonceMissing,
    /// The proof's nonce is not one the server issued lately.
    #[error("the DPoP nonce is not current: retry with the value of the DPoP-Nonce header")]
    NonceStale,
}

impl ProofError {
    /// The OAuth error code for the response: `use_dpop_nonce` when a retry
    /// with the server's nonce would do, `invalid_dpop_proof` otherwise.
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::NonceMissing | ProofError::NonceStale => USE_NONCE,
            _ => INVALID_PROOF,
        }
    }
}

#[derive(Deserialize)]
struct RawHeader {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<serde_json::Number>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Members of a JWK that only a private key has: a proof carrying one leaked
/// its key, and a symmetric key (`k`) proves nothing to a verifier.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks `proof` against the request `expect` describes. The caller then
/// checks that [`Verified::replay_key`] was not seen before.
pub fn verify(proof: &str, expect: &Expect<'_>) -> Result<Verified, ProofError> {
    let (jwk, alg) = header(proof)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| ProofError::Malformed("unusable jwk"))?;
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<Claims>(proof, &key, &v)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => ProofError::Signature,
            _ => ProofError::Malformed("the claims are not a DPoP proof's"),
        })?
        .claims;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(ProofError::Malformed("no jti"))?;
    let htm = claims.htm.ok_or(ProofError::Malformed("no htm"))?;
    if htm != expect.method {
        return Err(ProofError::Method);
    }
    let claimed = claims.htu.ok_or(ProofError::Malformed("no htu"))?;
    if htu(&claimed) != htu(expect.url) || htu(expect.url).is_none() {
        return Err(ProofError::Url);
    }
    let iat = claims
        .iat
        .and_then(|n| n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)))
        .ok_or(ProofError::Malformed("no iat"))?;
    let now = expect
        .now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if iat + MAX_AGE.as_secs() < now {
        return Err(ProofError::Stale);
    }
    if iat > now + MAX_AHEAD.as_secs() {
        return Err(ProofError::Future);
    }
    if let Some(token) = expect.access_token
        && claims.ath.as_deref() != Some(ath(token).as_str())
    {
        return Err(ProofError::Ath);
    }
    let jkt = thumbprint(&jwk).ok_or(ProofError::Malformed("unusable jwk"))?;
    if expect.jkt.is_some_and(|bound| bound != jkt) {
        return Err(ProofError::Key);
    }
    if let Some(nonces) = expect.nonces {
        match claims.nonce {
            None => return Err(ProofError::NonceMissing),
            Some(n) if !nonces.accepts(&n, expect.now) => return Err(ProofError::NonceStale),
            Some(_) => {}
        }
    }
    Ok(Verified { jkt, jti, iat })
}

/// The header's public key and algorithm, after the checks of §4.3 (2–6).
fn header(proof: &str) -> Result<(Jwk, Algorithm), ProofError> {
    let mut parts = proof.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed("not a compact JWS"));
    };
    let raw: RawHeader = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(ProofError::Malformed("the header is not JSON"))?;
    if raw.typ.as_deref() != Some(TYP) {
        return Err(ProofError::Malformed("typ is not dpop+jwt"));
    }
    let alg = raw.alg.ok_or(ProofError::Alg)?;
    if !ALGS.contains(&alg.as_str()) {
        return Err(ProofError::Alg);
    }
    let alg: Algorithm = alg.parse().map_err(|_| ProofError::Alg)?;
    let jwk = raw
        .jwk
        .ok_or(ProofError::Malformed("no jwk in the header"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::Malformed("the jwk is not a public key"));
    }
    let jwk: Jwk = serde_json::from_value(serde_json::Value::Object(jwk))
        .map_err(|_| ProofError::Malformed("unusable jwk"))?;
    Ok((jwk, alg))
}

/// The RFC 7638 SHA-256 thumbprint of a public key, base64url: the `jkt`.
pub fn thumbprint(jwk: &Jwk) -> Option<String> {
    jwk.thumbprint(ThumbprintHash::SHA256).ok()
}

/// The `ath` of an access token: base64url(SHA-256(token)).
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

/// A URL as `htu` compares it (§4.3 (9)): without query and fragment, with
/// the scheme and host lowercased and a default port dropped. `None` for
/// what is not an absolute http(s) URL.
pub fn htu(url: &str) -> Option<String> {
    let mut u = url::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}
