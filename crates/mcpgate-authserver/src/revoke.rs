//! `/revoke` (RFC 7009): revoking a refresh token ends its grant; revoking
//! an access token ends its grant too (its `gid`), as the issue asks.
//! Unknown tokens are answered 200, as the RFC requires.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcpgate_guard::{Credential, Verifier as _};
use mcpgate_store::oauth::digest_hex;

use crate::Inner;
use crate::client_auth::ClientForm;
use crate::error::OAuthError;
use crate::respond::no_store;
use crate::verifier::AccessTokenVerifier;

/// `POST /revoke`.
pub(crate) async fn post(
    State(inner): State<Arc<Inner>>,
    ClientForm { client, params }: ClientForm,
) -> Response {
    let result = async {
        let token = params.require("token")?;
        let grant_id = match inner
            .store
            .find_refresh(&digest_hex(token))
            .await
            .map_err(OAuthError::store)?
        {
            Some(r) => Some(r.grant_id),
            None => {
                let cred = Credential::Bearer(token.to_owned());
                let v = AccessTokenVerifier::new(inner.clone());
                match v.verify(&cred).await {
                    Ok(ok) => ok
                        .principal()
                        .claims()
                        .get("gid")
                        .and_then(|g| g.as_str())
                        .map(str::to_owned),
                    Err(_) => None,
                }
            }
        };
        if let Some(gid) = grant_id
            && let Some(g) = inner.store.find_grant(&gid).await.map_err(OAuthError::store)?
            // Only the client the token was issued to may revoke it.
            && g.client_id == client.client.id
        {
            inner
                .store
                .revoke_grant(&gid, "revoked by the client")
                .await
                .map_err(OAuthError::store)?;
            mcpgate_telemetry::audit(
                mcpgate_telemetry::AuditEvent::new(mcpgate_telemetry::AuditKind::TokenRevoked)
                    .subject(g.subject.as_str())
                    .client(Some(g.client_id.as_str()))
                    .with("grant", gid.as_str()),
            );
        }
        Ok::<_, OAuthError>(())
    }
    .await;
    no_store(match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    })
}
