//! DPoP (RFC 9449): a client proves, on every request, that it holds the
//! private key an access token is bound to.
//!
//! One module for the three parties: the authorization server and the guard
//! verify proofs ([`verify`]), the client makes them ([`ProofKey`]). A proof is
//! a JWT of type `dpop+jwt` signed by the key whose public half is in its
//! header (`jwk`); it names the request (`htm`, `htu`), when it was made
//! (`iat`), a unique id (`jti`), and at a resource server the hash of the
//! access token it accompanies (`ath`). The token is bound to the key by its
//! RFC 7638 thumbprint ([`thumbprint`]), the `cnf.jkt` claim.
//!
//! What this crate does not decide: whether a `jti` was seen before (each
//! server keeps its own replay cache, see docs/DPOP.md), and which nonce a
//! server wants ([`Nonces`] makes and checks them; the caller says when).

mod key;
mod nonce;
mod verify;

#[cfg(test)]
mod tests;

pub use key::{KeyError, ProofKey};
pub use nonce::{Nonces, SLOT as NONCE_SLOT};
pub use verify::{Expect, MAX_AGE, MAX_AHEAD, ProofError, Verified, ath, htu, thumbprint, verify};

/// The `typ` header of every proof.
pub const TYP: &str = "dpop+jwt";

/// The signing algorithms a proof may use, as advertised in
/// `dpop_signing_alg_values_supported`.
pub const ALGS: &[&str] = &["ES256", "ES384", "EdDSA", "RS256", "PS256"];

/// The error code of a proof that is missing, malformed or does not match
/// the request (RFC 9449 §5, §7.1).
pub const INVALID_PROOF: &str = "invalid_dpop_proof";

/// The error code that asks the client to retry with the nonce of the
/// `DPoP-Nonce` response header (RFC 9449 §8, §9).
pub const USE_NONCE: &str = "use_dpop_nonce";

/// The request header that carries the proof.
pub const HEADER: &str = "dpop";

/// The response header that carries the server's nonce.
pub const NONCE_HEADER: &str = "dpop-nonce";

/// What the master key's secret for nonces is derived for: the
/// authorization server and the gateway derive the same one, so a nonce from
/// either, on any replica, is good at all of them.
pub const NONCE_KEY_PURPOSE: &str = "dpop nonce";
