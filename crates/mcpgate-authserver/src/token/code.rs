//! The `authorization_code` grant: single use, 60 seconds, bound to the
//! client, the redirect URI and the PKCE verifier. Only a request that passes
//! those checks spends the code; a second such request is a replay and
//! revokes the grant, so every token issued from it stops working.

use std::time::SystemTime;

use mcpgate_store::oauth::{CodeOutcome, CodeRow, digest_hex};

use super::issue::{FirstTokens, Grant, Issued};
use crate::client_auth::Authenticated;
use crate::error::OAuthError;
use crate::params::Params;
use crate::{Inner, pkce};

/// `invalid_grant` with `why`, logged for the operator (never the code).
fn refused(client: &Authenticated, why: &'static str) -> OAuthError {
    tracing::info!(client = %client.client.id, "authorization code refused: {why}");
    OAuthError::grant(why)
}

pub(super) async fn exchange(grant: Grant<'_>) -> Result<Issued, OAuthError> {
    let (inner, client, params, jkt) = grant.parts();
    let code = params.require("code")?;
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| OAuthError::request("code_verifier is required (PKCE)"))?;
    if !pkce::verifier_well_formed(verifier) {
        return Err(OAuthError::request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        ));
    }
    let digest = digest_hex(code);
    // Looked at first and spent last, together with the refresh token it buys
    // (one transaction): a storage failure in between leaves it unspent, so a
    // 503 never turns the client's retry into a "replay" that revokes the grant.
    // A request that fails the checks (another client, a wrong verifier) does
    // not spend it either, or whoever saw the code could make the real
    // client's redemption look like a replay.
    let row = match inner
        .store
        .peek_code(&digest)
        .await
        .map_err(OAuthError::store)?
    {
        CodeOutcome::Fresh(row) => row,
        CodeOutcome::Replayed(row) => return Err(replayed(inner, &row).await),
        _ => return Err(refused(client, "unknown authorization code")),
    };
    let checked = async {
        check(inner, client, params, &row, verifier).await?;
        let tokens = FirstTokens::issue(inner, &row.grant_id, client, jkt).await?;
        let grant = &tokens.grant;
        let id_token = if row.scopes.contains("openid") || grant.scopes.contains("openid") {
            Some(crate::federation::id_token(inner, grant, row.nonce.as_deref()).await?)
        } else {
            None
        };
        Ok::<_, OAuthError>((tokens, id_token))
    }
    .await;
    let (tokens, id_token) = checked?;
    let spent = inner
        .store
        .spend_code(&digest, tokens.refresh.as_ref().map(|(_, r)| r))
        .await
        .map_err(OAuthError::store)?;
    if !spent {
        return Err(replayed(inner, &row).await);
    }
    let _ = inner
        .store
        .touch_grant(&tokens.grant.id, SystemTime::now())
        .await;
    Ok(tokens.issued(id_token))
}

/// A code used before: its grant is revoked, so every token issued from it stops working.
async fn replayed(inner: &Inner, row: &CodeRow) -> OAuthError {
    match inner
        .store
        .revoke_grant(&row.grant_id, "authorization code replayed")
        .await
    {
        Ok(true) => {
            tracing::warn!(client = %row.client_id, "authorization code replayed: its grant is revoked");
            mcpgate_telemetry::audit_simple(
                mcpgate_telemetry::AuditKind::ReplayDetected,
                None,
                Some(row.client_id.as_str()),
                Some("authorization_code"),
            );
        }
        Ok(false) => {}
        Err(e) => return OAuthError::store(e),
    }
    OAuthError::grant(
        "the authorization code was used already; every token issued from it is revoked",
    )
}

/// What binds the code: its client, lifetime, redirect URI, PKCE verifier and resource.
async fn check(
    inner: &Inner,
    client: &Authenticated,
    params: &Params,
    row: &CodeRow,
    verifier: &str,
) -> Result<(), OAuthError> {
    if row.client_id != client.client.id {
        return Err(refused(
            client,
            "the authorization code was issued to another client",
        ));
    }
    if row.expires_at <= SystemTime::now() {
        return Err(refused(
            client,
            "the authorization code expired; codes live 60 seconds",
        ));
    }
    match params.get("redirect_uri") {
        Some(r) if row.redirect_uri == r => {}
        Some(_) => {
            return Err(refused(
                client,
                "redirect_uri differs from the one in the authorization request",
            ));
        }
        None if client.client.redirect_uris.len() == 1 => {}
        None => return Err(OAuthError::request("redirect_uri is required")),
    }
    if !pkce::verify(verifier, &row.code_challenge) {
        return Err(refused(
            client,
            "code_verifier does not match the code_challenge",
        ));
    }
    if let Some(r) = params.get("resource") {
        let (asked, _) = crate::authorize::resource(inner, Some(r)).await?;
        if asked != row.resource {
            return Err(OAuthError::new(
                crate::ErrorCode::InvalidTarget,
                "resource differs from the one in the authorization request",
            ));
        }
    }
    Ok(())
}
