//! The JWT bearer grant (RFC 7523 §2.1) with an assertion from a
//! `[[authserver.trusted_issuer]]`: an ID-JAG (a user, through an enterprise
//! IdP; SEP-990) or a workload token (no user; SEP-1933).
//!
//! Every refusal of the assertion is `invalid_grant` (a scope beyond what the
//! assertion or the issuer's table allows is `invalid_scope`, RFC 6749 §5.2),
//! with a description that says what to fix, and an info log line with the
//! reason; the assertion itself is never logged.
//!
//! No refresh token: the ID-JAG draft says the resource authorization server
//! SHOULD NOT issue one (the client goes back to the IdP, which keeps its
//! policy in the loop), and a workload presents its platform's current token
//! again.

use std::time::{Duration, SystemTime};

use mcpgate_store::oauth::digest_hex;
use mcpgate_types::ResourceUri;
use serde_json::{Map, Value};

use super::assertion_user;
use super::issue::{Grant, Issued, issue_access_only};
use crate::error::{ErrorCode, OAuthError};
use crate::trusted_issuer::{Checked, IssuerKind, Refusal};
use crate::{Inner, authorize};

/// The grant type.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Logs why a grant was refused and returns the error the client sees.
pub(super) fn refuse(client: &str, issuer: &str, code: ErrorCode, reason: String) -> OAuthError {
    tracing::info!(client, issuer, reason = %reason, "refused a jwt-bearer grant");
    OAuthError::new(code, reason)
}

pub(super) async fn exchange(grant: Grant<'_>) -> Result<Issued, OAuthError> {
    let (inner, client, params, _) = grant.parts();
    let cid = client.client.id.as_str();
    let assertion = params.require("assertion")?;
    if inner.trusted.is_empty() {
        return Err(refuse(
            cid,
            "-",
            ErrorCode::InvalidGrant,
            "this server trusts no assertion issuer ([[authserver.trusted_issuer]] is not configured)".into(),
        ));
    }
    let checked = match inner.trusted.check(assertion).await {
        Ok(c) => c,
        Err(Refusal::Invalid(reason)) => {
            return Err(refuse(cid, "-", ErrorCode::InvalidGrant, reason));
        }
        Err(Refusal::Unavailable(reason)) => {
            tracing::warn!(client = cid, reason = %reason, "cannot check a jwt-bearer assertion: its issuer's keys are unavailable");
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                format!(
                    "the assertion's issuer keys cannot be fetched now; try again later ({reason})"
                ),
            ));
        }
    };
    match checked.issuer.cfg.kind {
        IssuerKind::IdJag => id_jag(grant, &checked).await,
        IssuerKind::Workload => workload(grant, &checked).await,
    }
}

fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// The resource: the assertion's `resource` claim (which a `resource`
/// parameter must repeat), else the parameter, else the default.
async fn resource(
    inner: &Inner,
    client: &str,
    issuer: &str,
    claim: Option<&str>,
    param: Option<&str>,
) -> Result<(ResourceUri, Option<crate::resource_servers::ResourceServer>), OAuthError> {
    if let (Some(c), Some(p)) = (claim, param)
        && !mcpgate_guard::same_resource(c, p)
    {
        return Err(refuse(
            client,
            issuer,
            ErrorCode::InvalidGrant,
            format!("the resource parameter {p:?} differs from the assertion's resource {c:?}"),
        ));
    }
    match claim {
        Some(c) => authorize::resource(inner, Some(c)).await.map_err(|e| {
            refuse(
                client,
                issuer,
                ErrorCode::InvalidGrant,
                format!(
                    "the assertion's resource is not served here: {}",
                    e.description
                ),
            )
        }),
        None => authorize::resource(inner, param).await,
    }
}

/// The scopes asked for (the parameter, else `fallback`), each within `ceiling`.
fn within(
    client: &str,
    issuer: &str,
    asked: &str,
    ceiling: Option<&[String]>,
    what: &str,
) -> Result<(), OAuthError> {
    let Some(ceiling) = ceiling else {
        return Ok(());
    };
    let over: Vec<&str> = asked
        .split_ascii_whitespace()
        .filter(|s| !ceiling.iter().any(|c| c == s))
        .collect();
    if over.is_empty() {
        Ok(())
    } else {
        Err(refuse(
            client,
            issuer,
            ErrorCode::InvalidScope,
            format!(
                "scope {} is not allowed: {what} allows only {:?}",
                over.join(" "),
                ceiling.join(" ")
            ),
        ))
    }
}

async fn id_jag(grant: Grant<'_>, checked: &Checked<'_>) -> Result<Issued, OAuthError> {
    let (inner, client, params, jkt) = grant.parts();
    let (cfg, cid) = (&checked.issuer.cfg, client.client.id.as_str());
    let iss = cfg.name.as_str();
    let claims = &checked.claims;
    let fail = |m: String| refuse(cid, iss, ErrorCode::InvalidGrant, m);
    let granted_to = text(claims, "client_id").unwrap_or("");
    if granted_to != cid {
        return Err(fail(format!(
            "the ID-JAG was issued to client {granted_to:?}, not to the client presenting it ({cid:?})"
        )));
    }
    if !cfg.allowed_clients.is_empty() && !cfg.allowed_clients.iter().any(|c| c == cid) {
        return Err(fail(format!(
            "client {cid:?} may not redeem ID-JAGs of {iss} (allowed_clients)"
        )));
    }
    let (resource, rs) = resource(
        inner,
        cid,
        iss,
        text(claims, "resource"),
        params.get("resource"),
    )
    .await?;
    // The IdP's `scope` is its policy: a request may narrow it, never widen it.
    let idp_scope = text(claims, "scope");
    let asked = params.get("scope").or(idp_scope);
    if let Some(a) = asked {
        let idp: Option<Vec<String>> =
            idp_scope.map(|s| s.split_ascii_whitespace().map(str::to_owned).collect());
        within(cid, iss, a, idp.as_deref(), "the ID-JAG")?;
        let allowed = (!cfg.allowed_scopes.is_empty()).then_some(cfg.allowed_scopes.as_slice());
        within(cid, iss, a, allowed, "this trusted issuer (allowed_scopes)")?;
    }
    let scopes = authorize::requested_scopes(inner, &client.client, asked, rs.as_ref())?;
    let scopes = if cfg.allowed_scopes.is_empty() {
        scopes
    } else {
        scopes
            .iter()
            .filter(|s| cfg.allowed_scopes.iter().any(|a| a == s.as_str()))
            .cloned()
            .collect()
    };
    let user = assertion_user::local_user(inner, checked.issuer, claims)
        .await
        .map_err(|e| match e {
            assertion_user::NoUser::Refused(m) => fail(m),
            assertion_user::NoUser::Store(e) => e,
        })?;
    let scopes = authorize::user_scopes(&user, &scopes);
    once(inner, cid, iss, &cfg.issuer, claims).await?;
    tracing::info!(client = cid, issuer = iss, user = %user.name, scope = %scopes, "redeemed an ID-JAG");
    issue_access_only(inner, client, &user.name, scopes, resource, jkt).await
}

/// Each ID-JAG once, on every replica, until it expires.
async fn once(
    inner: &Inner,
    cid: &str,
    name: &str,
    issuer: &str,
    claims: &Map<String, Value>,
) -> Result<(), OAuthError> {
    let jti = text(claims, "jti").unwrap_or("");
    let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0);
    let now = SystemTime::now();
    // Kept past `exp` by the leeway the verifier allowed.
    let until = std::time::UNIX_EPOCH
        + Duration::from_secs_f64(exp.clamp(0.0, 253_402_300_799.0))
        + Duration::from_secs(600);
    let key = digest_hex(&format!("{issuer}\u{0}{jti}"));
    let first = inner
        .store
        .assertion_first_use(&key, until, now)
        .await
        .map_err(OAuthError::store)?;
    if first {
        Ok(())
    } else {
        Err(refuse(
            cid,
            name,
            ErrorCode::InvalidGrant,
            format!("this ID-JAG (jti {jti:?}) was redeemed before; get a new one from the IdP"),
        ))
    }
}

async fn workload(grant: Grant<'_>, checked: &Checked<'_>) -> Result<Issued, OAuthError> {
    let (inner, client, params, jkt) = grant.parts();
    let (cfg, cid) = (&checked.issuer.cfg, client.client.id.as_str());
    let iss = cfg.name.as_str();
    let sub = text(&checked.claims, "sub").unwrap_or("");
    let fail = |m: String| refuse(cid, iss, ErrorCode::InvalidGrant, m);
    let rule = checked.issuer.workload_rule(sub).ok_or_else(|| {
        fail(format!(
            "workload subject {sub:?} matches no workload rule of trusted issuer {iss}"
        ))
    })?;
    if rule.client != cid {
        return Err(fail(format!(
            "workload subject {sub:?} acts as client {:?}, not {cid:?}",
            rule.client
        )));
    }
    let (resource, rs) = resource(inner, cid, iss, None, params.get("resource")).await?;
    let rule_scopes = rule.scopes.join(" ");
    let asked = params.get("scope").unwrap_or(&rule_scopes);
    within(
        cid,
        iss,
        asked,
        Some(&rule.scopes),
        &format!("the workload rule for {:?}", rule.subject),
    )?;
    let scopes = authorize::requested_scopes(inner, &client.client, Some(asked), rs.as_ref())?;
    // Workload tokens are reused until the platform rotates them (a projected
    // service-account token lives an hour): no one-use jti here.
    tracing::info!(client = cid, issuer = iss, workload = %sub, scope = %scopes, "redeemed a workload token");
    issue_access_only(inner, client, cid, scopes, resource, jkt).await
}
