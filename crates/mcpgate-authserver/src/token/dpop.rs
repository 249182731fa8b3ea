//! DPoP at `/token` (RFC 9449 §5): a request with a `DPoP` header gets tokens
//! bound to the proof's key. The proof is checked for this endpoint (`POST`,
//! the token endpoint's URL), its age, the server nonce when
//! `authserver.dpop_nonce` is on, and is accepted once across every replica
//! (the store's replay cache).

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use mcpgate_dpop::{Expect, ProofError, Verified};

use crate::Inner;
use crate::error::{ErrorCode, OAuthError};

/// The proof of this token request: `None` without a `DPoP` header, an error
/// (`invalid_dpop_proof`, `use_dpop_nonce`) for a proof that does not hold.
pub(super) async fn proof(
    inner: &Inner,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<Option<Verified>, OAuthError> {
    let mut values = headers.get_all(mcpgate_dpop::HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let checked = match (value.to_str(), values.next()) {
        (Ok(proof), None) => check(inner, proof).await?,
        _ => Err(ProofError::Missing),
    };
    match checked {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            tracing::info!(client = %client_id, reason = %e, "DPoP proof refused at the token endpoint");
            let code = if e.code() == mcpgate_dpop::USE_NONCE {
                ErrorCode::UseDpopNonce
            } else {
                ErrorCode::InvalidDpopProof
            };
            Err(OAuthError::new(code, e.to_string()))
        }
    }
}

/// The proof's checks; the outer error is the store's.
async fn check(inner: &Inner, proof: &str) -> Result<Result<Verified, ProofError>, OAuthError> {
    let now = SystemTime::now();
    let url = inner.url("/token");
    let expect = Expect {
        method: "POST",
        url: &url,
        access_token: None,
        jkt: None,
        nonces: inner.dpop_nonces.as_ref(),
        now,
    };
    let v = match mcpgate_dpop::verify(proof, &expect) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let first = inner
        .store
        .dpop_first_use(&v.replay_key(), v.remember_until(), now)
        .await
        .map_err(OAuthError::store)?;
    Ok(if first {
        Ok(v)
    } else {
        Err(ProofError::Replayed)
    })
}

/// Every `/token` answer carries the current nonce when nonces are on, so a
/// client learns it from its first request, whatever the outcome.
pub(super) fn with_nonce(inner: &Inner, mut response: Response) -> Response {
    if let Some(n) = &inner.dpop_nonces
        && let Ok(v) = HeaderValue::from_str(&n.current(SystemTime::now()))
    {
        response.headers_mut().insert(mcpgate_dpop::NONCE_HEADER, v);
    }
    response
}

/// The refresh of a grant bound to `bound`: the proof must be signed by that key.
pub(super) fn check_bound(
    bound: Option<&str>,
    proof: Option<&str>,
    client_id: &str,
) -> Result<(), OAuthError> {
    match (bound, proof) {
        (None, _) => Ok(()),
        (Some(_), None) => {
            tracing::info!(client = %client_id, "refresh refused: the grant is bound to a DPoP key and the request has no proof");
            Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "this refresh token is bound to a DPoP key: send a DPoP proof signed by it",
            ))
        }
        (Some(b), Some(p)) if b != p => {
            tracing::info!(client = %client_id, "refresh refused: the DPoP proof is signed by another key than the grant's");
            Err(OAuthError::grant(
                "this refresh token is bound to another DPoP key",
            ))
        }
        _ => Ok(()),
    }
}
