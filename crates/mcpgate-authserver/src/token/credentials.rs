//! The `client_credentials` grant: confidential clients acting as themselves.

use std::time::SystemTime;

use mcpgate_store::oauth::GrantRow;

use super::issue::{Issued, access_token};
use crate::client_auth::Authenticated;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::{Inner, authorize, random_token};

pub(super) async fn exchange(
    inner: &Inner,
    client: &Authenticated,
    params: &Params,
    jkt: Option<&str>,
) -> Result<Issued, OAuthError> {
    if !client.confidential {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client_credentials needs a confidential client (a secret or private_key_jwt)",
        ));
    }
    let (resource, rs) = authorize::resource(inner, params.get("resource")).await?;
    let scopes =
        authorize::requested_scopes(inner, &client.client, params.get("scope"), rs.as_ref())?;
    let now = SystemTime::now();
    // A grant per issuance, so that revoking the client's access is possible.
    let grant = GrantRow::new(
        random_token(),
        client.client.id.clone(),
        crate::grant_subject(&client.client.id)?,
        scopes.clone(),
        resource,
        now + inner.settings.access_token_ttl,
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
