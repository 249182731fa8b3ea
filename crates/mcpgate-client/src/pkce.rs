//! PKCE (RFC 7636, S256 only) and `state` values.

#[cfg(test)]
mod tests;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;

/// A fresh PKCE verifier and its S256 challenge.
#[derive(Clone)]
pub struct Pkce {
    /// The secret sent with the token request.
    pub verifier: String,
    /// `BASE64URL(SHA256(verifier))`, sent with the authorization request.
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish()
    }
}

impl Pkce {
    /// 32 random bytes as the verifier (43 characters).
    pub fn new() -> Self {
        let verifier = random_token(32);
        let challenge = s256(&verifier);
        Self {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// The S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// `n` random bytes, base64url without padding (for `state` and verifiers).
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // The system's random source failing is not something to sign in with.
    aws_lc_rs::rand::fill(&mut buf).expect("the system random source failed");
    URL_SAFE_NO_PAD.encode(buf)
}
