//! The client a request names: from the store (pre-registered or
//! dynamically registered) or, for an https `client_id`, its metadata document.

use std::time::SystemTime;

use mcpgate_store::oauth::{ClientKind, ClientRow};
use mcpgate_types::{ClientId, RedirectUri};

use crate::Inner;
use crate::error::{ErrorCode, OAuthError};

/// A client as the endpoints use it.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) id: ClientId,
    pub(crate) kind: ClientKind,
    pub(crate) name: Option<String>,
    pub(crate) logo_uri: Option<String>,
    /// As registered; a stored URI that no longer parses (registered before
    /// the rules of RFC 8252 were enforced) is left out, and so never matches.
    pub(crate) redirect_uris: Vec<RedirectUri>,
    pub(crate) grant_types: Vec<String>,
    /// `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub(crate) auth_method: String,
    pub(crate) secret_digest: Option<String>,
    /// Scopes it may ask for (`None`: any configured scope).
    pub(crate) scope: Option<String>,
    pub(crate) jwks: Option<serde_json::Value>,
    pub(crate) jwks_uri: Option<String>,
}

impl Client {
    pub(crate) fn from_metadata(
        id: ClientId,
        kind: ClientKind,
        m: &serde_json::Value,
        secret_digest: Option<String>,
    ) -> Client {
        let s = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let list = |k: &str| -> Vec<String> {
            m.get(k)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut grant_types = list("grant_types");
        if grant_types.is_empty() {
            grant_types = vec!["authorization_code".into(), "refresh_token".into()];
        }
        let redirect_uris = list("redirect_uris")
            .into_iter()
            .filter_map(|u| {
                u.parse()
                    .map_err(
                        |e| tracing::warn!(client = %id, "registered redirect URI ignored: {e}"),
                    )
                    .ok()
            })
            .collect();
        Client {
            id,
            kind,
            name: s("client_name"),
            logo_uri: s("logo_uri").filter(|u| u.starts_with("https://")),
            redirect_uris,
            grant_types,
            auth_method: s("token_endpoint_auth_method").unwrap_or_else(|| {
                if secret_digest.is_some() {
                    "client_secret_basic".into()
                } else {
                    "none".into()
                }
            }),
            secret_digest,
            scope: s("scope"),
            jwks: m.get("jwks").cloned(),
            jwks_uri: s("jwks_uri"),
        }
    }

    fn from_row(row: &ClientRow) -> Client {
        Client::from_metadata(
            row.client_id.clone(),
            row.kind,
            &row.metadata,
            row.secret_digest.clone(),
        )
    }

    /// The name to show: the registered one, else the client id.
    pub(crate) fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.to_string())
    }

    pub(crate) fn is_public(&self) -> bool {
        self.auth_method == "none"
    }

    pub(crate) fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

/// Whether `client_id` names a metadata document rather than a stored client.
pub(crate) fn is_document_url(inner: &Inner, client_id: &str) -> bool {
    inner.settings.cimd.enabled
        && (client_id.starts_with("https://") || inner.cimd.allows_plain_http(client_id))
}

/// The client named `client_id`, or `None` when there is no such client.
pub(crate) async fn find(inner: &Inner, client_id: &str) -> Result<Option<Client>, OAuthError> {
    if is_document_url(inner, client_id) {
        return inner.cimd.client(client_id).await.map(Some);
    }
    let row = inner
        .store
        .find_client(client_id)
        .await
        .map_err(OAuthError::store)?;
    Ok(row
        .filter(|r| r.expires_at.is_none_or(|t| t > SystemTime::now()))
        .as_ref()
        .map(Client::from_row))
}

/// The client, or `invalid_client`.
pub(crate) async fn require(inner: &Inner, client_id: &str) -> Result<Client, OAuthError> {
    find(inner, client_id).await?.ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InvalidClient,
            format!("unknown client {client_id:?}: register it first"),
        )
    })
}

/// Records that the client got a token now; a dynamic client's expiry moves out.
pub(crate) async fn used(inner: &Inner, client: &Client) {
    let now = SystemTime::now();
    if client.kind == ClientKind::Cimd {
        // A document client gets a row too: the purge deletes grants whose
        // client has none, and `mcpgate clients list` shows it.
        let mut row = ClientRow::new(
            client.id.clone(),
            ClientKind::Cimd,
            serde_json::json!({
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "grant_types": client.grant_types,
                "token_endpoint_auth_method": client.auth_method,
            }),
        );
        row.expires_at = Some(now + inner.settings.dynamic_client_ttl);
        if let Err(e) = inner.store.upsert_client(&row).await {
            tracing::warn!(client = %client.id, "cannot record the document client: {e}");
        }
        return;
    }
    let expires =
        (client.kind == ClientKind::Dynamic).then(|| now + inner.settings.dynamic_client_ttl);
    if let Err(e) = inner
        .store
        .touch_client(client.id.as_str(), now, expires)
        .await
    {
        tracing::warn!(client = %client.id, "cannot record the client's use: {e}");
    }
}
