//! What every grant type ends with: the tokens it issues for a grant, and
//! the token response (always `Cache-Control: no-store`).

use mcpgate_types::{ResourceUri, ScopeSet};
use std::time::SystemTime;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcpgate_store::oauth::{GrantRow, RefreshRow, digest_hex};

use crate::client_auth::Authenticated;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::respond::no_store;
use crate::{Inner, random_token, unix};

/// One `/token` request, handed to the handler of its `grant_type`: every
/// grant reads the same four things, so they travel together.
#[derive(Clone, Copy)]
pub(crate) struct Grant<'a> {
    pub(crate) inner: &'a Inner,
    /// The client, authenticated by the `ClientForm` extractor.
    pub(crate) client: &'a Authenticated,
    pub(crate) params: &'a Params,
    /// The thumbprint of the request's DPoP key, when it carried a proof.
    pub(crate) jkt: Option<&'a str>,
}

impl<'a> Grant<'a> {
    /// The four parts, for a handler that reads them by name.
    pub(crate) fn parts(self) -> (&'a Inner, &'a Authenticated, &'a Params, Option<&'a str>) {
        (self.inner, self.client, self.params, self.jkt)
    }
}

/// What a successful grant returns.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    pub(crate) scopes: ScopeSet,
    pub(crate) refresh_token: Option<String>,
    /// OpenID Connect: for the `openid` scope of an authorization code.
    pub(crate) id_token: Option<String>,
    /// The access token is bound to a DPoP key (`token_type` `DPoP`).
    pub(crate) dpop: bool,
}

impl IntoResponse for Issued {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "access_token": self.access_token,
            "token_type": if self.dpop { "DPoP" } else { "Bearer" },
            "expires_in": self.expires_in,
            "scope": self.scopes.to_string(),
        });
        if let Some(r) = self.refresh_token {
            body["refresh_token"] = r.into();
        }
        if let Some(t) = self.id_token {
            body["id_token"] = t.into();
        }
        no_store((StatusCode::OK, Json(body)).into_response())
    }
}

/// Signs an access token (RFC 9068) for `grant` with `scopes`.
pub(crate) fn access_token(
    inner: &Inner,
    grant: &GrantRow,
    scopes: &ScopeSet,
    jkt: Option<&str>,
) -> Result<(String, u64), OAuthError> {
    let now = unix(SystemTime::now());
    let ttl = inner.settings.access_token_ttl.as_secs().max(1);
    let mut claims = serde_json::json!({
        "iss": inner.issuer,
        "sub": grant.subject,
        "aud": grant.resource,
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": random_token(),
        "client_id": grant.client_id,
        "scope": scopes.to_string(),
        "gid": grant.id,
        "auth_time": unix(grant.created_at),
    });
    if let Some(jkt) = jkt {
        // RFC 9449 §6.1: the thumbprint of the key the token is bound to.
        claims["cnf"] = serde_json::json!({ "jkt": jkt });
    }
    let token = inner.keys.sign("at+jwt", &claims).map_err(|e| {
        tracing::error!("cannot sign an access token: {e}");
        OAuthError::new(ErrorCode::ServerError, "cannot sign the access token")
    })?;
    Ok((token, ttl))
}

/// A new refresh token for `grant` (child of `parent`), and its row.
pub(crate) fn refresh_token(
    inner: &Inner,
    grant: &GrantRow,
    parent: Option<String>,
    scopes: ScopeSet,
) -> (String, RefreshRow) {
    let token = random_token();
    let expires = (SystemTime::now() + inner.settings.refresh_idle_ttl).min(grant.expires_at);
    let row = RefreshRow::new(
        digest_hex(&token),
        grant.id.clone(),
        parent,
        scopes,
        expires,
    );
    (token, row)
}

/// The grant behind a code or refresh token, which must be active and the client's.
pub(crate) async fn live_grant(
    inner: &Inner,
    grant_id: &str,
    client_id: &str,
) -> Result<GrantRow, OAuthError> {
    let grant = inner
        .store
        .find_grant(grant_id)
        .await
        .map_err(OAuthError::store)?
        .ok_or_else(|| OAuthError::grant("the grant no longer exists"))?;
    if grant.client_id != client_id {
        return Err(OAuthError::grant("this grant was issued to another client"));
    }
    if let Some(why) = grant
        .revoked_why
        .as_deref()
        .filter(|_| grant.revoked_at.is_some())
    {
        return Err(OAuthError::grant(format!(
            "the grant was revoked ({why}); sign in again"
        )));
    }
    if grant.expires_at <= SystemTime::now() {
        return Err(OAuthError::grant("the grant expired; sign in again"));
    }
    Ok(grant)
}

/// The first tokens of a grant just approved (an authorization code or a
/// device code redeemed): an access token with the grant's scopes, and a
/// refresh token when the client may use that grant.
pub(crate) struct FirstTokens {
    pub(crate) grant: GrantRow,
    access: String,
    expires_in: u64,
    dpop: bool,
    /// The refresh token and its row, which the caller stores (with whatever
    /// else must change in the same transaction).
    pub(crate) refresh: Option<(String, RefreshRow)>,
}

impl FirstTokens {
    /// Issues them for grant `grant_id`, which must be live and `client`'s.
    pub(crate) async fn issue(
        inner: &Inner,
        grant_id: &str,
        client: &Authenticated,
        jkt: Option<&str>,
    ) -> Result<FirstTokens, OAuthError> {
        let grant = live_grant(inner, grant_id, &client.client.id).await?;
        // RFC 9449 §5: a public client's refresh tokens are bound to its key
        // (a confidential client's are bound to its credentials already).
        if let Some(k) = jkt.filter(|_| !client.confidential) {
            let bound = inner
                .store
                .bind_grant_dpop(&grant.id, k)
                .await
                .map_err(OAuthError::store)?;
            super::dpop::check_bound(Some(&bound), Some(k), &client.client.id)?;
        }
        let (access, expires_in) = access_token(inner, &grant, &grant.scopes, jkt)?;
        let refresh = client
            .client
            .allows_grant("refresh_token")
            .then(|| refresh_token(inner, &grant, None, grant.scopes.clone()));
        Ok(FirstTokens {
            grant,
            access,
            expires_in,
            dpop: jkt.is_some(),
            refresh,
        })
    }

    /// The token response, with an OpenID Connect `id_token` when asked for.
    pub(crate) fn issued(self, id_token: Option<String>) -> Issued {
        Issued {
            access_token: self.access,
            expires_in: self.expires_in,
            scopes: self.grant.scopes,
            refresh_token: self.refresh.map(|(token, _)| token),
            id_token,
            dpop: self.dpop,
        }
    }
}

/// Tokens for a grant with no person and no refresh token (client
/// credentials, jwt-bearer): a grant row per issuance, so that revoking it
/// (or the client) ends the access token, then the access token.
pub(crate) async fn issue_access_only(
    inner: &Inner,
    client: &Authenticated,
    subject: &str,
    scopes: ScopeSet,
    resource: ResourceUri,
    jkt: Option<&str>,
) -> Result<Issued, OAuthError> {
    let grant = GrantRow::new(
        random_token(),
        client.client.id.clone(),
        crate::grant_subject(subject)?,
        scopes.clone(),
        resource,
        SystemTime::now() + inner.settings.access_token_ttl,
    );
    inner
        .store
        .insert_grant(&grant)
        .await
        .map_err(OAuthError::store)?;
    let (access, expires_in) = access_token(inner, &grant, &scopes, jkt)?;
    Ok(Issued {
        access_token: access,
        expires_in,
        scopes,
        refresh_token: None,
        id_token: None,
        dpop: jkt.is_some(),
    })
}
