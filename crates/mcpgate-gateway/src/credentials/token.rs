//! Renewable tokens: one cell per token (per user for per-user kinds) that
//! hands out the current token, renews it a little before it expires, and lets
//! exactly one renewal run at a time — everyone else waits for its result.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use super::secret::Secret;

/// A token and what is known about its life.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) access: Secret,
    /// A refresh token, for kinds that have one.
    pub(crate) refresh: Option<Secret>,
    /// How long the issuer said it lives (`expires_in`, or the JWT's `exp`).
    pub(crate) lifetime: Option<Duration>,
}

#[derive(Debug)]
struct Held {
    issued: Issued,
    renew_at: Option<Instant>,
}

/// The current token of one credential (and one user, for per-user kinds).
#[derive(Debug, Default)]
pub(crate) struct TokenCell {
    // A tokio mutex held across the renewal request is the single flight:
    // callers that find the token due queue on it and then see the new token.
    held: tokio::sync::Mutex<Option<Held>>,
}

/// How renewals are done; the cell decides when.
pub(crate) trait Renew: Sync {
    /// A first token (log in, or ask the token endpoint).
    fn obtain(&self) -> impl Future<Output = Result<Issued, String>> + Send;
    /// A new token from the previous one (refresh); `None` when the kind cannot refresh.
    fn refresh(
        &self,
        _previous: &Issued,
    ) -> impl Future<Output = Option<Result<Issued, String>>> + Send {
        std::future::ready(None)
    }
    /// The upstream and the credential's kind, for the renewal's metric and span.
    fn label(&self) -> (&str, &'static str) {
        ("", "other")
    }
}

impl TokenCell {
    /// The token to send now, renewing it first when it is due.
    pub(crate) async fn current(&self, how: &impl Renew) -> Result<Secret, String> {
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref()
            && h.renew_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(h.issued.access.clone());
        }
        // On failure the old token stays, so its refresh token can be tried again.
        let previous = held.as_ref().map(|h| h.issued.clone());
        let issued = renew(how, previous.as_ref()).await?;
        let access = issued.access.clone();
        *held = Some(Held::new(issued));
        Ok(access)
    }

    /// The upstream refused `rejected`: renew it, unless someone already did.
    /// Returns whether sending again is worth it.
    pub(crate) async fn rejected(&self, how: &impl Renew, rejected: &Secret) -> bool {
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref()
            && h.issued.access != *rejected
        {
            return true;
        }
        let previous = held.as_ref().map(|h| h.issued.clone());
        match renew(how, previous.as_ref()).await {
            Ok(issued) => {
                *held = Some(Held::new(issued));
                true
            }
            Err(e) => {
                tracing::warn!("renewing a rejected upstream credential failed: {e}");
                false
            }
        }
    }

    /// Whether the token is past its expiry (used to prune per-user caches).
    pub(crate) fn is_stale(&self) -> bool {
        match self.held.try_lock() {
            Ok(h) => h
                .as_ref()
                .is_none_or(|h| h.renew_at.is_some_and(|at| Instant::now() >= at)),
            Err(_) => false,
        }
    }
}

/// One renewal, counted (`mcpgate_credential_renewals_total`) and timed as
/// the request's `credential renewal` span.
async fn renew(how: &impl Renew, previous: Option<&Issued>) -> Result<Issued, String> {
    let (upstream, kind) = how.label();
    let step = mcpgate_telemetry::step(mcpgate_telemetry::StepName::CredentialRenewal);
    let result = obtain_or_refresh(how, previous).await;
    mcpgate_telemetry::metrics().credential_renewal(upstream, kind, result.is_ok());
    step.end(
        result.is_err(),
        &[
            ("mcpgate.upstream", upstream),
            ("mcpgate.credential.kind", kind),
        ],
    );
    result
}

/// Refresh when there is a refresh token and the kind can; otherwise (or when
/// refreshing fails) obtain a new token from scratch.
async fn obtain_or_refresh(how: &impl Renew, previous: Option<&Issued>) -> Result<Issued, String> {
    if let Some(p) = previous
        && p.refresh.is_some()
    {
        match how.refresh(p).await {
            Some(Ok(mut issued)) => {
                if issued.refresh.is_none() {
                    issued.refresh = p.refresh.clone();
                }
                return Ok(issued);
            }
            Some(Err(e)) => {
                tracing::info!("refreshing an upstream token failed ({e}); obtaining a new one");
            }
            None => {}
        }
    }
    how.obtain().await
}

impl Held {
    fn new(issued: Issued) -> Self {
        let renew_at = issued
            .lifetime
            .map(|l| Instant::now() + l.saturating_sub(renew_margin(l)));
        Held { issued, renew_at }
    }
}

/// How long before expiry a token is renewed: a tenth of its life, at most a minute.
pub(crate) fn renew_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

/// The value at a dotted path (`data.access_token`) of a JSON document.
pub(crate) fn at_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(doc, |v, key| v.as_object().and_then(|o| o.get(key)))
}

/// The seconds left until a JWT's `exp`, read without verification: it only
/// decides when to renew, and the upstream verifies the token itself.
pub(crate) fn jwt_lifetime(token: &str) -> Option<Duration> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(exp.saturating_sub(now)))
}

/// A token endpoint's (or login API's) JSON answer → [`Issued`].
pub(crate) fn parse_issued(
    doc: &Value,
    access_field: &str,
    refresh_field: Option<&str>,
    expires_field: &str,
) -> Result<Issued, String> {
    let access = at_path(doc, access_field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the answer has no string at {access_field:?}"))?;
    let refresh = refresh_field
        .and_then(|f| at_path(doc, f))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    let lifetime = at_path(doc, expires_field)
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .map(Duration::from_secs)
        .or_else(|| jwt_lifetime(access));
    Ok(Issued {
        access: Secret::new(access),
        refresh,
        lifetime,
    })
}
