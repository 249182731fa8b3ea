//! DPoP at the resource (RFC 9449 §7): `Authorization: DPoP <token>` with a
//! `DPoP` proof for this method and URL, signed by the key the token is bound
//! to (`cnf.jkt`); a bound token presented as Bearer is refused wherever
//! DPoP is checked, whatever the mode.
//!
//! Seen proofs are remembered per process for their acceptance window
//! (`mcpgate_dpop::MAX_AGE` + `MAX_AHEAD`, 70 seconds), and, where the
//! server has one, in a [`DpopReplay`] store that every replica shares: the
//! local cache answers a replay to the same process without a round trip,
//! the store one to another replica (docs/DPOP.md).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::request::Parts;
use mcpgate_dpop::{Expect, Nonces, ProofError};

use crate::credential::Credential;
pub use crate::dpop_mode::DpopMode;
use crate::principal::{AuthMethod, Principal};
use crate::rejection::AuthRejection;
use crate::verifier::BoxFuture;

/// A replay cache shared by every replica (the store's `dpop_jtis`), so that
/// a proof is accepted once across all of them.
pub trait DpopReplay: Send + Sync + std::fmt::Debug {
    /// Records the proof `key` until `until`: `Ok(true)` the first time,
    /// `Ok(false)` while an earlier record of it is live (a replay), in one
    /// atomic step. An error means the cache cannot say now: the request is
    /// refused (503), never let through.
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, ReplayUnavailable>>;
}

/// The shared replay cache could not be asked (the database is down).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the DPoP replay cache is unavailable: {0}")]
pub struct ReplayUnavailable(pub String);

/// What the proof of one request is checked against.
#[derive(Debug, Clone)]
pub struct DpopCheck {
    /// The resource's mode.
    pub mode: DpopMode,
    /// The request's URL as the client addressed it (the public URL of the
    /// endpoint), for `htu`.
    pub url: String,
    /// When set, proofs must carry one of these nonces.
    pub nonces: Option<Nonces>,
    /// When set, each proof is also recorded here, so that it is accepted
    /// once across the replicas that share it; `None`: this process only.
    pub replay: Option<Arc<dyn DpopReplay>>,
}

/// Proofs seen lately, by [`mcpgate_dpop::Verified::replay_key`].
#[derive(Debug, Clone)]
pub(crate) struct SeenProofs {
    inner: moka::sync::Cache<String, ()>,
}

impl SeenProofs {
    pub(crate) fn new() -> Self {
        let window = mcpgate_dpop::MAX_AGE + mcpgate_dpop::MAX_AHEAD + Duration::from_secs(1);
        SeenProofs {
            inner: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(window)
                .build(),
        }
    }

    /// `true` the first time `key` is seen within the window.
    fn first_use(&self, key: String) -> bool {
        self.inner.entry(key).or_insert(()).is_fresh()
    }
}

/// The key a token is bound to, from its `cnf.jkt` claim.
fn bound_key(p: &Principal) -> Option<&str> {
    p.claims().get("cnf")?.get("jkt")?.as_str()
}

/// Whether the caller came with an OAuth access token, which `required`
/// wants bound; API keys, static tokens and upstream keys are not.
fn is_access_token(p: &Principal) -> bool {
    matches!(p.method(), AuthMethod::Jwt | AuthMethod::Introspection)
}

/// Whether the request's `Authorization` scheme is `DPoP`: only then is a
/// proof checked, and with it [`DpopCheck::url`], so an [`crate::Admission`]
/// may skip making that URL for other requests.
pub fn dpop_scheme(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().get(..5))
        .is_some_and(|s| s.eq_ignore_ascii_case(b"dpop "))
}

/// A refusal, logged with its reason (never the token or the proof).
fn refuse(parts: &Parts, code: &'static str, why: String, nonce: Option<String>) -> AuthRejection {
    tracing::info!(path = parts.uri.path(), error = code, reason = %why, "DPoP refused");
    AuthRejection::Dpop { code, why, nonce }
}

/// The DPoP rules for a caller the chain accepted.
pub(crate) async fn check(
    seen: &SeenProofs,
    parts: &Parts,
    credential: &Credential,
    principal: &Principal,
    check: &DpopCheck,
) -> Result<(), AuthRejection> {
    let Credential::Bearer(token) = credential else {
        return Ok(());
    };
    let invalid = |why: &str| refuse(parts, "invalid_token", why.to_owned(), None);
    match (dpop_scheme(parts), bound_key(principal)) {
        (false, Some(_)) => Err(invalid(
            "this token is bound to a DPoP key: send it as Authorization: DPoP <token> with a DPoP proof",
        )),
        (false, None) if check.mode == DpopMode::Required && is_access_token(principal) => {
            Err(invalid(
                "this resource takes DPoP-bound access tokens only: sign in with DPoP (mcpgate login --dpop)",
            ))
        }
        (false, None) => Ok(()),
        (true, _) if check.mode == DpopMode::Off => Err(invalid(
            "this resource does not take DPoP-bound tokens: sign in again without DPoP",
        )),
        (true, None) => Err(invalid(
            "the token is not bound to a DPoP key: send it as Authorization: Bearer <token>",
        )),
        (true, Some(jkt)) => proof(seen, parts, token, jkt, check).await,
    }
}

async fn proof(
    seen: &SeenProofs,
    parts: &Parts,
    token: &str,
    jkt: &str,
    check: &DpopCheck,
) -> Result<(), AuthRejection> {
    let now = SystemTime::now();
    let mut values = parts.headers.get_all(mcpgate_dpop::HEADER).iter();
    let verified = match (values.next().map(|v| v.to_str()), values.next()) {
        (Some(Ok(p)), None) => mcpgate_dpop::verify(
            p,
            &Expect {
                method: parts.method.as_str(),
                url: &check.url,
                access_token: Some(token),
                jkt: Some(jkt),
                nonces: check.nonces.as_ref(),
                now,
            },
        ),
        _ => Err(ProofError::Missing),
    }
    .and_then(|v| {
        // The local cache first: a replay to this process costs no round trip.
        if seen.first_use(v.replay_key()) {
            Ok(v)
        } else {
            Err(ProofError::Replayed)
        }
    });
    let verified = match (verified, &check.replay) {
        (Ok(v), Some(shared)) => match shared
            .first_use(&v.replay_key(), v.remember_until(), now)
            .await
        {
            Ok(true) => Ok(v),
            Ok(false) => Err(ProofError::Replayed),
            Err(e) => {
                tracing::warn!(path = parts.uri.path(), "DPoP refused: {e}");
                return Err(AuthRejection::Unavailable(e.to_string()));
            }
        },
        (other, _) => other,
    };
    match verified {
        Ok(_) => Ok(()),
        Err(e) => {
            let nonce = (e.code() == mcpgate_dpop::USE_NONCE)
                .then(|| check.nonces.as_ref().map(|n| n.current(now)))
                .flatten();
            Err(refuse(parts, e.code(), e.to_string(), nonce))
        }
    }
}

#[cfg(test)]
mod tests;
