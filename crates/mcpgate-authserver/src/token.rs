//! `/token`: the grant types, client authentication, and the token response
//! (always `Cache-Control: no-store`).

mod code;
mod credentials;
mod refresh;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgate_store::oauth::{GrantRow, RefreshRow, digest_hex};

use crate::client_auth;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::{Inner, random_token, scope_string, unix};

pub(crate) const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /token`.
pub(crate) async fn post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    match handle(&inner, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(inner: &Inner, headers: &HeaderMap, body: &str) -> Result<Response, OAuthError> {
    let params = Params::parse(body)?;
    let grant_type = params.require("grant_type")?.to_owned();
    let client = client_auth::authenticate(inner, headers, &params).await?;
    if !client.client.allows_grant(&grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client is not registered for the {grant_type} grant"),
        ));
    }
    let issued = match grant_type.as_str() {
        "authorization_code" => code::exchange(inner, &client, &params).await?,
        "refresh_token" => refresh::exchange(inner, &client, &params).await?,
        "client_credentials" => credentials::exchange(inner, &client, &params).await?,
        DEVICE_GRANT => crate::device::exchange(inner, &client, &params).await?,
        other => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {other:?} is not supported"),
            ));
        }
    };
    crate::clients::used(inner, &client.client).await;
    mcpgate_telemetry::token_issued(&grant_type, &client.client.id, &issued.scopes);
    Ok(issued.into_response())
}

/// What a successful grant returns.
#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
    pub(crate) scopes: BTreeSet<String>,
    pub(crate) refresh_token: Option<String>,
    /// OpenID Connect: for the `openid` scope of an authorization code.
    pub(crate) id_token: Option<String>,
}

impl IntoResponse for Issued {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": scope_string(&self.scopes),
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

/// Marks a response uncacheable (every token response).
pub(crate) fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Signs an access token (RFC 9068) for `grant` with `scopes`.
pub(crate) fn access_token(
    inner: &Inner,
    grant: &GrantRow,
    scopes: &BTreeSet<String>,
) -> Result<(String, u64), OAuthError> {
    let now = unix(SystemTime::now());
    let ttl = inner.settings.access_token_ttl.as_secs().max(1);
    let claims = serde_json::json!({
        "iss": inner.issuer,
        "sub": grant.subject,
        "aud": grant.resource,
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": random_token(),
        "client_id": grant.client_id,
        "scope": scope_string(scopes),
        "gid": grant.id,
        "auth_time": unix(grant.created_at),
    });
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
    scopes: BTreeSet<String>,
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
