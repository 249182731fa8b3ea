//! The `client_credentials` grant: confidential clients acting as themselves.

use super::issue::{Grant, Issued, issue_access_only};
use crate::authorize;
use crate::error::{ErrorCode, OAuthError};

pub(super) async fn exchange(grant: Grant<'_>) -> Result<Issued, OAuthError> {
    let (inner, client, params, jkt) = grant.parts();
    if !client.confidential {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "client_credentials needs a confidential client (a secret or private_key_jwt)",
        ));
    }
    let (resource, rs) = authorize::resource(inner, params.get("resource")).await?;
    let scopes =
        authorize::requested_scopes(inner, &client.client, params.get("scope"), rs.as_ref())?;
    issue_access_only(inner, client, &client.client.id, scopes, resource, jkt).await
}
