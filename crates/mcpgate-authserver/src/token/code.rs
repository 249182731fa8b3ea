//! The `authorization_code` grant: single use, 60 seconds, bound to the
//! client, the redirect URI and the PKCE verifier. Only a request that passes
//! those checks spends the code; a second such request is a replay and
//! revokes the grant, so every token issued from it stops working.

use std::time::SystemTime;

use mcpgate_store::oauth::{CodeOutcome, digest_hex};

use super::{Issued, access_token, live_grant, refresh_token};
use crate::client_auth::Authenticated;
use crate::error::OAuthError;
use crate::params::Params;
use crate::{Inner, pkce};

/// `invalid_grant` with `why`, logged for the operator (never the code).
fn refused(client: &Authenticated, why: &'static str) -> OAuthError {
    tracing::info!(client = %client.client.id, "authorization code refused: {why}");
    OAuthError::grant(why)
}

pub(super) async fn exchange(
    inner: &Inner,
    client: &Authenticated,
    params: &Params,
) -> Result<Issued, OAuthError> {
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
    // Looked at, not spent: a request that fails the checks below (another
    // client, a wrong verifier) must not count as a use, or whoever saw the
    // code could make the real client's redemption look like a replay.
    let Some(row) = inner
        .store
        .find_code(&digest)
        .await
        .map_err(OAuthError::store)?
    else {
        return Err(refused(client, "unknown authorization code"));
    };
    if row.client_id != client.client.id {
        return Err(refused(
            client,
            "the authorization code was issued to another client",
        ));
    }
    match params.get("redirect_uri") {
        Some(r) if r == row.redirect_uri => {}
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
        let asked = crate::authorize::resource(inner, Some(r))?;
        if asked != row.resource {
            return Err(OAuthError::new(
                crate::ErrorCode::InvalidTarget,
                "resource differs from the one in the authorization request",
            ));
        }
    }
    // Everything checks out: only now is the code spent. A second request that
    // gets this far is a replay by someone holding the code and its verifier.
    match inner
        .store
        .redeem_code(&digest)
        .await
        .map_err(OAuthError::store)?
    {
        CodeOutcome::Fresh(_) => {}
        CodeOutcome::Replayed(row) => {
            let revoked = inner
                .store
                .revoke_grant(&row.grant_id, "authorization code replayed")
                .await
                .map_err(OAuthError::store)?;
            if revoked {
                tracing::warn!(client = %row.client_id, "authorization code replayed: its grant is revoked");
            }
            return Err(OAuthError::grant(
                "the authorization code was used already; every token issued from it is revoked",
            ));
        }
        _ => return Err(refused(client, "unknown authorization code")),
    }
    if row.expires_at <= SystemTime::now() {
        return Err(refused(
            client,
            "the authorization code expired; codes live 60 seconds",
        ));
    }
    let grant = live_grant(inner, &row.grant_id, &client.client.id).await?;
    let (access, expires_in) = access_token(inner, &grant, &grant.scopes)?;
    let refresh = if client.client.allows_grant("refresh_token") {
        let (token, r) = refresh_token(inner, &grant, None, grant.scopes.clone());
        inner
            .store
            .insert_refresh(&r)
            .await
            .map_err(OAuthError::store)?;
        Some(token)
    } else {
        None
    };
    let _ = inner.store.touch_grant(&grant.id, SystemTime::now()).await;
    let id_token = if row.scopes.contains("openid") || grant.scopes.contains("openid") {
        Some(crate::federation::id_token(inner, &grant, row.nonce.as_deref()).await?)
    } else {
        None
    };
    Ok(Issued {
        access_token: access,
        expires_in,
        scopes: grant.scopes.clone(),
        refresh_token: refresh,
        id_token,
    })
}
