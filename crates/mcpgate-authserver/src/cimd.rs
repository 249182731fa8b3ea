//! Client ID metadata documents: a `client_id` that is an https URL names a
//! JSON document describing the client. It is fetched behind the SSRF guard
//! (the address is resolved, checked, and pinned for the connection), within
//! 5 seconds and 64 KiB, without following redirects, and cached per the
//! response's `Cache-Control: max-age` (bounded).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcpgate_store::oauth::ClientKind;

use crate::clients::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::redirect::check_self_registrable;
use crate::settings::CimdSettings;
use crate::ssrf;

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BYTES: usize = 64 * 1024;
/// No document is trusted longer than this without a re-fetch.
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);

/// Fetches and caches metadata documents.
#[derive(Debug)]
pub(crate) struct Fetcher {
    allow_private: bool,
    allow_hosts: Vec<String>,
    default_cache: Duration,
    cache: moka::sync::Cache<String, (Client, Instant)>,
}

fn invalid(msg: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, msg)
}

impl Fetcher {
    pub(crate) fn new(s: &CimdSettings) -> Result<Fetcher, String> {
        Ok(Fetcher {
            allow_private: s.allow_private,
            allow_hosts: s
                .allow_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            default_cache: s.default_cache.min(MAX_CACHE),
            cache: moka::sync::Cache::new(1_000),
        })
    }

    fn host_allowed(&self, u: &url::Url) -> bool {
        let Some(host) = u.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let with_port = u.port_or_known_default().map(|p| format!("{host}:{p}"));
        self.allow_hosts
            .iter()
            .any(|a| *a == host || Some(a) == with_port.as_ref())
    }

    /// Whether `client_id` is a plain-http document URL on an allow-listed loopback host (tests).
    pub(crate) fn allows_plain_http(&self, client_id: &str) -> bool {
        client_id.starts_with("http://")
            && url::Url::parse(client_id).is_ok_and(|u| {
                self.host_allowed(&u)
                    && u.host().is_some_and(|h| match h {
                        url::Host::Ipv4(ip) => ip.is_loopback(),
                        url::Host::Ipv6(ip) => ip.is_loopback(),
                        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
                    })
            })
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
        let plain_ok = self.allows_plain_http(client_id);
        if u.scheme() != "https" && !plain_ok {
            return Err(invalid(
                "a client ID metadata document must be served over https",
            ));
        }
        if u.path() == "/"
            || u.fragment().is_some()
            || !u.username().is_empty()
            || u.password().is_some()
        {
            return Err(invalid(
                "a client ID metadata document URL needs a path, and no fragment or credentials",
            ));
        }
        let host = u.host_str().unwrap_or_default().to_owned();
        let port = u.port_or_known_default().unwrap_or(443);
        let lookup_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            TIMEOUT,
            tokio::net::lookup_host((lookup_host.as_str(), port)),
        )
        .await
        .map_err(|_| invalid(format!("resolving {host} timed out")))?
        .map_err(|e| invalid(format!("cannot resolve {host}: {e}")))?
        .collect();
        let trusted = self.allow_private || self.host_allowed(&u);
        let addr = addrs
            .iter()
            .find(|a| trusted || !ssrf::is_forbidden(a.ip()))
            .copied()
            .ok_or_else(|| {
                invalid(format!(
                    "{host} resolves only to private, loopback or link-local addresses, which this server does not fetch client metadata from"
                ))
            })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            // Pinned to the address checked above: a second DNS answer cannot steer it elsewhere.
            .resolve(&lookup_host, addr)
            .build()
            .map_err(|e| invalid(format!("cannot fetch the client metadata document: {e}")))?;
        let mut resp = http
            .get(u.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                invalid(format!(
                    "cannot fetch the client metadata document {client_id}: {e}"
                ))
            })?;
        if !resp.status().is_success() {
            return Err(invalid(format!(
                "the client metadata document {client_id} answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        let ttl = cache_ttl(resp.headers(), self.default_cache);
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| invalid(format!("reading the client metadata document failed: {e}")))?
        {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(invalid(
                    "the client metadata document is larger than 64 KiB",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("the client metadata document is not JSON: {e}")))?;
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
        check_self_registrable(u).map_err(|e| invalid(format!("redirect_uris: {e}")))?;
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
    Ok(Client::from_metadata(
        client_id.to_owned(),
        ClientKind::Cimd,
        doc,
        None,
    ))
}

fn cache_ttl(headers: &reqwest::header::HeaderMap, default: Duration) -> Duration {
    let Some(cc) = headers
        .get(reqwest::header::CACHE_CONTROL)
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
