//! The `client_credentials` grant: confidential clients acting as themselves.

use super::issue::{Issued, issue_access_only};
use crate::client_auth::Authenticated;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::{Inner, authorize};

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
    issue_access_only(inner, client, &client.client.id, scopes, resource, jkt).await
}
