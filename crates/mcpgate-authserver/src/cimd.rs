//! Client ID metadata documents: a `client_id` that is an https URL names a
//! JSON document describing the client. It is fetched through the
//! authserver's SSRF-guarded fetcher (`mcpgate-fetch`: every resolved address
//! checked and pinned, no redirects, 64 KiB read while streaming, 5 seconds),
//! and cached per the response's `Cache-Control: max-age` (bounded).

use std::time::{Duration, Instant};

use mcpgate_fetch::{FetchError, Fetcher, Request};
use mcpgate_store::oauth::ClientKind;
use mcpgate_types::{ClientId, RedirectUri};

use crate::clients::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::settings::CimdSettings;

/// No document is trusted longer than this without a re-fetch.
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);

/// Fetches (through the guarded fetcher) and caches metadata documents.
#[derive(Debug)]
pub(crate) struct Documents {
    fetcher: Fetcher,
    allow_hosts: Vec<String>,
    default_cache: Duration,
    cache: moka::sync::Cache<String, (Client, Instant)>,
}

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, msg)
}

impl Documents {
    pub(crate) fn new(s: &CimdSettings, fetcher: Fetcher) -> Documents {
        Documents {
            fetcher,
            allow_hosts: s
                .allow_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            default_cache: s.default_cache.min(MAX_CACHE),
            cache: moka::sync::Cache::new(1_000),
        }
    }

    fn host_allowed(&self, u: &url::Url) -> bool {
        mcpgate_fetch::host_listed(u, &self.allow_hosts)
    }

    /// Whether `client_id` is a plain-http document URL on an allow-listed loopback host (tests).
    pub(crate) fn allows_plain_http(&self, client_id: &str) -> bool {
        client_id.starts_with("http://")
            && url::Url::parse(client_id)
                .is_ok_and(|u| self.host_allowed(&u) && mcpgate_types::is_loopback_host(&u))
    }

    /// The client the document at `client_id` describes (cached).
    pub(crate) async fn client(&self, client_id: &str) -> Result<Client, OAuthError> {
        if let Some((c, until)) = self.cache.get(client_id)
            && Instant::now() < until
        {
            return Ok(c);
        }
        let (client, ttl) = self.fetch(client_id).await?;
        if !ttl.is_zero() {
            self.cache
                .insert(client_id.to_owned(), (client.clone(), Instant::now() + ttl));
        }
        Ok(client)
    }

    async fn fetch(&self, client_id: &str) -> Result<(Client, Duration), OAuthError> {
        let u = url::Url::parse(client_id)
            .map_err(|e| invalid(format!("client_id {client_id:?} is not a URL ({e})")))?;
        if u.path() == "/"
            || u.fragment().is_some()
            || !u.username().is_empty()
            || u.password().is_some()
        {
            return Err(invalid(
                "a client ID metadata document URL needs a path, and no fragment or credentials",
            ));
        }
        let fetched = |e: FetchError| {
            tracing::warn!(client_id, reason = %e, "client metadata document not fetched");
            invalid(format!(
                "cannot use the client metadata document {client_id}: {e}"
            ))
        };
        let resp = self
            .fetcher
            .send(Request::get(client_id).accept_json())
            .await
            .and_then(|r| r.success())
            .map_err(fetched)?;
        let ttl = cache_ttl(&resp.headers, self.default_cache);
        let doc: serde_json::Value = resp.json().map_err(fetched)?;
        Ok((validate(client_id, &doc)?, ttl))
    }
}

/// Checks a document's required fields; the client it describes.
pub(crate) fn validate(client_id: &str, doc: &serde_json::Value) -> Result<Client, OAuthError> {
    if doc.get("client_id").and_then(|v| v.as_str()) != Some(client_id) {
        return Err(invalid(
            "the client metadata document's client_id must equal its URL exactly",
        ));
    }
    if doc
        .get("client_name")
        .and_then(|v| v.as_str())
        .is_none_or(str::is_empty)
    {
        return Err(invalid("the client metadata document has no client_name"));
    }
    let uris = doc
        .get("redirect_uris")
        .and_then(|v| v.as_array())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("the client metadata document has no redirect_uris"))?;
    for u in uris {
        let u = u
            .as_str()
            .ok_or_else(|| invalid("redirect_uris must be strings"))?;
        RedirectUri::self_registered(u).map_err(|e| invalid(format!("redirect_uris: {e}")))?;
    }
    match doc
        .get("token_endpoint_auth_method")
        .and_then(|v| v.as_str())
    {
        None | Some("none") | Some("private_key_jwt") => {}
        Some(m) => {
            return Err(invalid(format!(
                "token_endpoint_auth_method {m:?} cannot be used with a public metadata document; use none or private_key_jwt"
            )));
        }
    }
    let id = client_id
        .parse::<ClientId>()
        .map_err(|e| invalid(format!("client_id: {e}")))?;
    Ok(Client::from_metadata(id, ClientKind::Cimd, doc, None))
}

fn cache_ttl(headers: &http::HeaderMap, default: Duration) -> Duration {
    let Some(cc) = headers
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return default;
    };
    let mut ttl = default;
    for d in cc.split(',').map(str::trim) {
        let d = d.to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(v) = d.strip_prefix("max-age=")
            && let Ok(secs) = v.trim_matches('"').parse::<u64>()
        {
            ttl = Duration::from_secs(secs);
        }
    }
    ttl.min(MAX_CACHE)
}
