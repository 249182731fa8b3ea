//! PKCE (RFC 7636), S256 only: `plain` would let an intercepted code be redeemed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Whether `s` is 43–128 characters of `[A-Za-z0-9-._~]` (the shape of both
/// verifiers and, for S256, challenges are 43 of them).
fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks the challenge of an authorization request; the message says what is wrong.
pub(crate) fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<String, String> {
    let Some(challenge) = challenge else {
        return Err("PKCE is required: send code_challenge (BASE64URL(SHA256(code_verifier))) and code_challenge_method=S256".into());
    };
    match method {
        Some("S256") => {}
        None => {
            return Err(
                "code_challenge_method is missing, which means \"plain\"; only S256 is supported"
                    .into(),
            );
        }
        Some(m) => {
            return Err(format!(
                "code_challenge_method {m:?} is not supported; use S256"
            ));
        }
    }
    if challenge.len() != 43 || !well_formed(challenge) {
        return Err(
            "code_challenge must be 43 base64url characters (the S256 hash of the verifier)".into(),
        );
    }
    Ok(challenge.to_owned())
}

/// Whether `verifier` hashes to `challenge`.
pub(crate) fn verify(verifier: &str, challenge: &str) -> bool {
    if !well_formed(verifier) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// Whether `verifier` has a verifier's shape (else the request is malformed).
pub(crate) fn verifier_well_formed(verifier: &str) -> bool {
    well_formed(verifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verify(v, c));
        assert!(!verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", c));
        assert_eq!(check_challenge(Some(c), Some("S256")).unwrap(), c);
        assert!(check_challenge(Some(c), Some("plain")).is_err());
        assert!(check_challenge(Some(c), None).is_err());
        assert!(check_challenge(None, Some("S256")).is_err());
        assert!(check_challenge(Some("short"), Some("S256")).is_err());
    }
}
