//! The compact JWS form, taken apart without trusting any of it: shape,
//! size, header and payload. Nothing here checks a signature.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::verifier::VerifyError;

/// Longest token looked at; anything longer is refused before it is decoded.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Whether `token` has the shape of a compact JWS: three base64url parts, the
/// first two non-empty (the signature may be empty: `alg: none` tokens have
/// none, and they deserve a precise refusal rather than "not recognized").
///
/// Oversized tokens are only checked for the two dots, so that the verifier
/// can refuse them without scanning them.
pub(crate) fn looks_like_jws(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if header.is_empty() || payload.is_empty() {
        return false;
    }
    if token.len() > MAX_TOKEN_BYTES {
        return true;
    }
    [header, payload, signature]
        .iter()
        .all(|p| p.bytes().all(is_base64url))
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The JOSE header fields the verifier reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    /// The signature algorithm, as written (`"none"` is kept so it can be named).
    pub(crate) alg: Option<String>,
    /// The signing key's id.
    pub(crate) kid: Option<String>,
    /// Critical extensions (RFC 7515 §4.1.11); none are understood here.
    pub(crate) crit: Option<serde_json::Value>,
}

/// A token taken apart: header and claims decoded, signature not yet checked.
#[derive(Debug)]
pub(crate) struct Compact<'a> {
    /// The decoded header.
    pub(crate) header: Header,
    /// The decoded claims.
    pub(crate) claims: serde_json::Map<String, serde_json::Value>,
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a str,
    /// The base64url signature.
    pub(crate) signature: &'a str,
}

fn malformed(what: &str) -> VerifyError {
    VerifyError::Invalid(format!("malformed JWT: {what}"))
}

impl<'a> Compact<'a> {
    /// Splits and decodes `token`, refusing oversized and malformed ones.
    pub(crate) fn parse(token: &'a str) -> Result<Self, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Invalid(format!(
                "the JWT is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let (signing_input, signature) = token
            .rsplit_once('.')
            .ok_or_else(|| malformed("expected header.payload.signature"))?;
        let (header, payload) = signing_input
            .split_once('.')
            .filter(|(_, p)| !p.contains('.'))
            .ok_or_else(|| malformed("expected header.payload.signature"))?;
        let header: Header = decode_json(header, "header")?;
        let claims = decode_json(payload, "payload")?;
        if signature.bytes().any(|b| !is_base64url(b)) {
            return Err(malformed("the signature is not base64url"));
        }
        Ok(Compact {
            header,
            claims,
            signing_input,
            signature,
        })
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(&format!("the {what} is not base64url")))?;
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|_| malformed(&format!("the {what} is not a JSON object")))?;
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|_| malformed(&format!("the {what} has fields of the wrong type")))
}
