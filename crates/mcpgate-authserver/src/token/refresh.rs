//! The `refresh_token` grant: every use rotates the token. A rotated token
//! presented again within the grace window (concurrent refreshes) gets a new
//! pair; later, or with no grace window at all, it is treated as stolen and
//! the whole grant is revoked. The store decides which, under a lock on the
//! token's row, so concurrent requests on any number of replicas agree. The
//! scope may narrow (the refresh token keeps its own), never widen; the
//! resource stays the grant's.

use std::time::SystemTime;

use mcpgate_store::oauth::{Rotation, digest_hex};

use super::issue::{Grant, Issued, access_token, live_grant, refresh_token};
use crate::error::{ErrorCode, OAuthError};
use mcpgate_types::ScopeSet;

pub(super) async fn exchange(grant: Grant<'_>) -> Result<Issued, OAuthError> {
    let (inner, client, params, jkt) = grant.parts();
    let presented = params.require("refresh_token")?;
    let digest = digest_hex(presented);
    let row = inner
        .store
        .find_refresh(&digest)
        .await
        .map_err(OAuthError::store)?
        .ok_or_else(|| OAuthError::grant("unknown refresh token"))?;
    let grant = live_grant(inner, &row.grant_id, &client.client.id).await?;
    super::dpop::check_bound(grant.dpop_jkt.as_deref(), jkt, &client.client.id)?;
    // RFC 8707 §2.2: a refresh may name the grant's resource, never another
    // one. Answering with a token for the old audience would hand the client a
    // token that the resource it named refuses, with no way to tell why.
    if let Some(r) = params.get("resource") {
        let (asked, _) = crate::authorize::resource(inner, Some(r)).await?;
        if asked != grant.resource {
            tracing::info!(client = %client.client.id, asked = %asked, granted = %grant.resource, "refresh refused: another resource than the grant's");
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "this refresh token was issued for {}; sign in again for {asked}",
                    grant.resource
                ),
            ));
        }
    }
    let now = SystemTime::now();
    if row.expires_at <= now {
        return Err(OAuthError::grant(
            "the refresh token expired; sign in again",
        ));
    }
    let scopes = match params.get("scope") {
        Some(s) => {
            let extra: Vec<&str> = s
                .split_ascii_whitespace()
                .filter(|w| !row.scopes.contains(w))
                .collect();
            if !extra.is_empty() {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!(
                        "a refresh cannot widen the scope; not granted: {}",
                        extra.join(" ")
                    ),
                ));
            }
            // Every word is one of the row's scopes, so none is lost here.
            ScopeSet::from_words_lossy([s])
        }
        None => row.scopes.clone(),
    };
    // Decided by the store under a lock on the token's row, so that two
    // requests with the same token (on one replica or two) are ordered: the
    // first rotates it; a later one gets a sibling only within the grace
    // window, and is a reuse otherwise.
    let (token, new_row) = refresh_token(inner, &grant, Some(digest.clone()), row.scopes.clone());
    let grace = inner.settings.refresh_grace;
    match inner
        .store
        .rotate_refresh(&digest, &new_row, grace, now)
        .await
        .map_err(OAuthError::store)?
    {
        Rotation::Rotated | Rotation::Sibling => {}
        Rotation::Reused { .. } => {
            inner
                .store
                .revoke_grant(&grant.id, "rotated refresh token reused")
                .await
                .map_err(OAuthError::store)?;
            tracing::warn!(client = %client.client.id, subject = %grant.subject, grace_secs = grace.as_secs(), "a rotated refresh token was reused: the grant is revoked");
            mcpgate_telemetry::audit_simple(
                mcpgate_telemetry::AuditKind::ReplayDetected,
                Some(grant.subject.as_str()),
                Some(&client.client.id),
                Some("refresh_token"),
            );
            return Err(OAuthError::grant(
                "this refresh token was already used; as a precaution the grant is revoked, sign in again",
            ));
        }
        _ => return Err(OAuthError::grant("unknown refresh token")),
    }
    // The rotation also marked the grant used.
    let (access, expires_in) = access_token(inner, &grant, &scopes, jkt)?;
    Ok(Issued {
        access_token: access,
        expires_in,
        scopes,
        refresh_token: Some(token),
        id_token: None,
        dpop: jkt.is_some(),
    })
}
