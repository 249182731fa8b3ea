//! `/token`: the grant types, client authentication, and the token response
//! (always `Cache-Control: no-store`).

mod assertion_user;
mod code;
mod credentials;
mod dpop;
pub(crate) mod issue;
pub(crate) mod jwt_bearer;
mod refresh;

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::Inner;
use crate::client_auth::{Authenticated, ClientForm};
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;

/// `POST /token`.
pub(crate) async fn post(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    ClientForm { client, params }: ClientForm,
) -> Response {
    let response = match handle(&inner, &client, &params, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    dpop::with_nonce(&inner, response)
}

async fn handle(
    inner: &Inner,
    client: &Authenticated,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, OAuthError> {
    let grant_type = params.require("grant_type")?.to_owned();
    if !client.client.allows_grant(&grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client is not registered for the {grant_type} grant"),
        ));
    }
    let proof = dpop::proof(inner, headers, &client.client.id).await?;
    let jkt = proof.as_ref().map(|p| p.jkt.as_str());
    let grant = issue::Grant {
        inner,
        client,
        params,
        jkt,
    };
    let issued = match grant_type.as_str() {
        "authorization_code" => code::exchange(grant).await?,
        "refresh_token" => refresh::exchange(grant).await?,
        "client_credentials" => credentials::exchange(grant).await?,
        crate::device::DEVICE_GRANT => crate::device::exchange(grant).await?,
        jwt_bearer::JWT_BEARER => jwt_bearer::exchange(grant).await?,
        other => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {other:?} is not supported"),
            ));
        }
    };
    crate::clients::used(inner, &client.client).await;
    mcpgate_telemetry::token_issued(
        &grant_type,
        &client.client.id,
        issued.scopes.iter().map(|s| s.as_str()),
    );
    Ok(issued.into_response())
}
