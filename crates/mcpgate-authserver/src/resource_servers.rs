//! Resource servers besides the gateway's own endpoints: another gateway or
//! MCP server that uses this authorization server and checks its tokens by
//! introspection. Each has a resource URI (its tokens' `aud`), the scopes it
//! accepts, a name for the consent page, and its own credentials for
//! `/introspect` — the permission to learn about tokens issued for it.
//!
//! They come from `[[authserver.resource]]` (secret from an environment
//! variable) and from `mcpgate resources add` (the store keeps a digest).

use mcpgate_types::ScopeSet;

use axum::http::HeaderMap;
use mcpgate_store::StoreError;
use mcpgate_store::oauth::{ResourceServerRow, digest_hex};
use mcpgate_types::{ClientId, ResourceUri};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::Inner;
use crate::client_auth::basic_credentials;
use crate::error::{Error, ErrorCode, OAuthError};
use crate::params::Params;

/// One `[[authserver.resource]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ResourceServerConfig {
    /// The resource URI clients ask for (`resource=`): the `aud` of its tokens.
    pub resource: String,
    /// The name the consent page shows.
    pub name: String,
    /// The scopes it accepts; tokens for it carry no others.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Its client id at `/introspect`.
    pub client_id: String,
    /// The environment variable holding its introspection secret.
    pub client_secret_env: String,
}

/// A registered resource server.
#[derive(Debug, Clone)]
pub(crate) struct ResourceServer {
    pub(crate) resource: ResourceUri,
    pub(crate) name: String,
    pub(crate) scopes: ScopeSet,
    /// Its client id at `/introspect`.
    pub(crate) client_id: ClientId,
    secret_digest: String,
}

impl From<ResourceServerRow> for ResourceServer {
    fn from(r: ResourceServerRow) -> Self {
        ResourceServer {
            resource: r.resource,
            name: r.name,
            scopes: r.scopes,
            client_id: r.client_id,
            secret_digest: r.secret_digest,
        }
    }
}

/// The resource servers of `[[authserver.resource]]`, checked at start.
#[derive(Debug, Default)]
pub(crate) struct Configured(Vec<ResourceServer>);

impl Configured {
    /// Resolves the tables; `own` are the gateway's endpoints (canonical),
    /// which cannot be registered again.
    pub(crate) fn new(
        cfgs: &[ResourceServerConfig],
        own: &[ResourceUri],
    ) -> Result<Configured, Error> {
        let mut out: Vec<ResourceServer> = Vec::new();
        for (i, c) in cfgs.iter().enumerate() {
            let at = format!("authserver.resource[{i}]");
            let resource = c
                .resource
                .parse::<ResourceUri>()
                .map_err(|e| Error::Config(format!("{at}.resource: {e}")))?;
            if own.contains(&resource) {
                return Err(Error::Config(format!(
                    "{at}.resource: {resource} is one of this gateway's own endpoints; register only other servers"
                )));
            }
            if c.name.trim().is_empty() || c.client_id.trim().is_empty() {
                return Err(Error::Config(format!(
                    "{at}: name and client_id must not be empty"
                )));
            }
            let client_id = c
                .client_id
                .parse::<ClientId>()
                .map_err(|e| Error::Config(format!("{at}.client_id: {e}")))?;
            if out
                .iter()
                .any(|o| o.resource == resource || o.client_id == client_id)
            {
                return Err(Error::Config(format!(
                    "{at}: another resource server has the same resource or client_id"
                )));
            }
            let secret = std::env::var(&c.client_secret_env).map_err(|_| {
                Error::Config(format!(
                    "{at}.client_secret_env: the environment variable {} is not set",
                    c.client_secret_env
                ))
            })?;
            if secret.len() < 16 {
                return Err(Error::Config(format!(
                    "{at}.client_secret_env: the secret in {} is shorter than 16 characters",
                    c.client_secret_env
                )));
            }
            let scopes = c
                .scopes
                .iter()
                .map(|s| s.parse::<mcpgate_types::Scope>())
                .collect::<Result<_, _>>()
                .map_err(|e| Error::Config(format!("{at}.scopes: {e}")))?;
            out.push(ResourceServer {
                resource,
                name: c.name.clone(),
                scopes,
                client_id,
                secret_digest: digest_hex(&secret),
            });
        }
        Ok(Configured(out))
    }
}

/// The registered resource server for a canonical resource URI (configured first, then the store).
pub(crate) async fn find(
    inner: &Inner,
    resource: &str,
) -> Result<Option<ResourceServer>, OAuthError> {
    let stored = inner.store.find_resource_server(resource);
    configured_or_stored(inner, |r| r.resource == resource, stored).await
}

async fn find_by_client(
    inner: &Inner,
    client_id: &str,
) -> Result<Option<ResourceServer>, OAuthError> {
    let stored = inner.store.find_resource_server_by_client(client_id);
    configured_or_stored(inner, |r| r.client_id == client_id, stored).await
}

/// The configured resource server `is_it` picks, else what `stored` finds
/// (a lookup not started unless needed: futures run when awaited).
async fn configured_or_stored(
    inner: &Inner,
    is_it: impl Fn(&ResourceServer) -> bool,
    stored: impl Future<Output = Result<Option<ResourceServerRow>, StoreError>>,
) -> Result<Option<ResourceServer>, OAuthError> {
    if let Some(r) = inner.resource_servers.0.iter().find(|r| is_it(r)) {
        return Ok(Some(r.clone()));
    }
    let row = stored.await.map_err(OAuthError::store)?;
    Ok(row.map(ResourceServer::from))
}

/// The resource server whose credentials a request presents (Basic, or
/// `client_id` + `client_secret` in the body); `None` when the client id is
/// no resource server's (then it may be an OAuth client).
pub(crate) async fn authenticate(
    inner: &Inner,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<ResourceServer>, OAuthError> {
    let (id, secret) = match basic_credentials(headers).flatten() {
        Some(pair) => pair,
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => return Ok(None),
        },
    };
    let Some(rs) = find_by_client(inner, &id).await? else {
        return Ok(None);
    };
    if bool::from(
        digest_hex(&secret)
            .as_bytes()
            .ct_eq(rs.secret_digest.as_bytes()),
    ) {
        return Ok(Some(rs));
    }
    tracing::warn!(client_id = %id, resource = %rs.resource, "introspection refused: wrong secret for this resource server");
    Err(OAuthError::new(
        ErrorCode::InvalidClient,
        "the resource server's credentials are not valid",
    ))
}
