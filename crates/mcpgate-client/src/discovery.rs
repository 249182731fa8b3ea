//! Finding the authorization server of an MCP server, in exactly the order
//! the MCP authorization spec gives: an unauthenticated request and its 401
//! challenge, protected-resource metadata (the challenge's URL, else
//! path-inserted, else root), then authorization-server metadata (RFC 8414
//! and OpenID forms, path-aware), refusing servers without PKCE S256 and
//! metadata whose `issuer` differs from the one asked for.

#[cfg(test)]
mod tests;

use mcpgate_types::Issuer;
use serde::de::DeserializeOwned;
use url::Url;

use crate::challenge::BearerChallenge;
use crate::error::ClientError;
use crate::metadata::{AuthServerMetadata, ProtectedResourceMetadata};

/// Metadata documents larger than this are refused.
const MAX_METADATA_BYTES: usize = 1 << 20;

/// What discovery found for one MCP server.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The RFC 8707 resource to ask tokens for.
    pub resource: String,
    /// Where the protected-resource metadata was found (`None`: none was).
    pub resource_metadata_url: Option<String>,
    /// The protected-resource metadata, when found.
    pub resource_metadata: Option<ProtectedResourceMetadata>,
    /// The authorization server's metadata (its `issuer` checked).
    pub auth_server: AuthServerMetadata,
    /// The Bearer challenge of the unauthenticated request, if there was one.
    pub challenge: Option<BearerChallenge>,
}

/// The answer to an unauthenticated request.
#[derive(Debug, Clone)]
pub enum Probe {
    /// 401 (or 403) with this challenge (`None`: no Bearer challenge).
    Challenged(Option<BearerChallenge>),
    /// The server answered without asking for credentials.
    Open(u16),
}

/// Sends an `initialize` without credentials, as a client's first request.
pub async fn probe(http: &reqwest::Client, server_url: &Url) -> Result<Probe, ClientError> {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": crate::mcp_http::PROTOCOL_VERSION, "capabilities": {},
                   "clientInfo": {"name": "mcpgate", "version": env!("CARGO_PKG_VERSION")}}
    });
    let resp = http
        .post(server_url.clone())
        .header("Accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .map_err(|e| ClientError::http(&format!("could not reach {server_url}"), e))?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        let challenge = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(BearerChallenge::parse);
        return Ok(Probe::Challenged(challenge));
    }
    Ok(Probe::Open(status))
}

/// Where to look for protected-resource metadata, in order: the challenge's
/// `resource_metadata`, the path-inserted well-known URL, the root one.
pub fn resource_metadata_candidates(
    server_url: &Url,
    challenge: Option<&BearerChallenge>,
) -> Vec<Url> {
    let mut out = Vec::new();
    if let Some(u) = challenge
        .and_then(|c| c.resource_metadata.as_deref())
        .and_then(|u| server_url.join(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
    {
        out.push(u);
    }
    let path = server_url.path().trim_end_matches('/');
    let mut base = server_url.clone();
    base.set_query(None);
    base.set_fragment(None);
    if !path.is_empty() {
        let mut u = base.clone();
        u.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
        push_unique(&mut out, u);
    }
    let mut u = base;
    u.set_path("/.well-known/oauth-protected-resource");
    push_unique(&mut out, u);
    out
}

/// Where to look for an issuer's metadata, in the spec's order. With a path
/// (`/t1`): `/.well-known/oauth-authorization-server/t1`,
/// `/.well-known/openid-configuration/t1`, `/t1/.well-known/openid-configuration`;
/// without: `/.well-known/oauth-authorization-server`, `/.well-known/openid-configuration`.
pub fn auth_server_metadata_candidates(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_matches('/');
    let mut base = issuer.clone();
    base.set_query(None);
    base.set_fragment(None);
    let paths = if path.is_empty() {
        vec![
            "/.well-known/oauth-authorization-server".to_owned(),
            "/.well-known/openid-configuration".to_owned(),
        ]
    } else {
        vec![
            format!("/.well-known/oauth-authorization-server/{path}"),
            format!("/.well-known/openid-configuration/{path}"),
            format!("/{path}/.well-known/openid-configuration"),
        ]
    };
    paths
        .into_iter()
        .map(|p| {
            let mut u = base.clone();
            u.set_path(&p);
            u
        })
        .collect()
}

fn push_unique(out: &mut Vec<Url>, u: Url) {
    if !out.contains(&u) {
        out.push(u);
    }
}

/// GETs a JSON document; `Ok(None)` for a status other than 200 or a body
/// that is not the expected JSON (the caller tries the next candidate).
async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
) -> Result<Option<T>, ClientError> {
    let resp = match http
        .get(url.clone())
        .header("Accept", "application/json")
        .header("MCP-Protocol-Version", crate::mcp_http::PROTOCOL_VERSION)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%url, error = %e, "metadata fetch failed");
            return Ok(None);
        }
    };
    if resp.status() != reqwest::StatusCode::OK {
        tracing::debug!(%url, status = %resp.status(), "no metadata here");
        return Ok(None);
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::http(&format!("reading {url}"), e))?;
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(ClientError::Discovery(format!(
            "{url} is larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Whether protected-resource metadata naming `resource` may describe `server_url`:
/// same origin, and the server's path at or under the resource's path.
pub fn resource_covers(resource: &str, server_url: &Url) -> bool {
    let Ok(r) = Url::parse(resource) else {
        return false;
    };
    if r.origin() != server_url.origin() || r.fragment().is_some() {
        return false;
    }
    let rp = r.path().trim_end_matches('/');
    let sp = server_url.path().trim_end_matches('/');
    sp == rp || sp.starts_with(&format!("{rp}/"))
}

/// Fetches the protected-resource metadata: the first candidate that is a
/// valid document for this server with at least one authorization server.
pub async fn fetch_resource_metadata(
    http: &reqwest::Client,
    server_url: &Url,
    challenge: Option<&BearerChallenge>,
) -> Result<Option<(Url, ProtectedResourceMetadata)>, ClientError> {
    let mut rejected = Vec::new();
    for url in resource_metadata_candidates(server_url, challenge) {
        let Some(doc) = get_json::<ProtectedResourceMetadata>(http, &url).await? else {
            continue;
        };
        if doc.authorization_servers.is_empty() {
            rejected.push(format!("{url} names no authorization_servers"));
            continue;
        }
        if let Some(resource) = &doc.resource
            && !resource_covers(resource, server_url)
        {
            rejected.push(format!(
                "{url} describes {resource}, not {server_url} (RFC 9728 §3.3)"
            ));
            continue;
        }
        return Ok(Some((url, doc)));
    }
    if rejected.is_empty() {
        Ok(None)
    } else {
        Err(ClientError::Discovery(rejected.join("; ")))
    }
}

/// Fetches and checks the metadata of the authorization server `issuer`
/// (an RFC 8414 issuer: https, or http on loopback; the caller parses what a
/// resource's metadata names).
pub async fn fetch_auth_server_metadata(
    http: &reqwest::Client,
    issuer: &Issuer,
) -> Result<AuthServerMetadata, ClientError> {
    let issuer_url = Url::parse(issuer.as_str())
        .map_err(|e| ClientError::Discovery(format!("issuer {issuer} is not a URL: {e}")))?;
    let candidates = auth_server_metadata_candidates(&issuer_url);
    for url in &candidates {
        let Some(meta) = get_json::<AuthServerMetadata>(http, url).await? else {
            continue;
        };
        if *issuer != meta.issuer {
            return Err(ClientError::Unsafe(format!(
                "metadata at {url} names issuer {:?}, but it was fetched for {issuer:?}",
                meta.issuer
            )));
        }
        check_auth_server(&meta)?;
        return Ok(meta);
    }
    Err(ClientError::Discovery(format!(
        "no authorization-server metadata for {issuer} (tried {})",
        candidates
            .iter()
            .map(Url::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The checks every authorization server must pass before a client uses it.
pub fn check_auth_server(meta: &AuthServerMetadata) -> Result<(), ClientError> {
    if !meta.supports_s256() {
        return Err(ClientError::Unsafe(format!(
            "{} does not advertise PKCE S256 (code_challenge_methods_supported)",
            meta.issuer
        )));
    }
    for endpoint in [
        &meta.authorization_endpoint,
        &meta.token_endpoint,
        &meta.registration_endpoint,
        &meta.revocation_endpoint,
        &meta.device_authorization_endpoint,
    ]
    .into_iter()
    .flatten()
    {
        let ok = Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err(ClientError::Unsafe(format!(
                "{} names a non-http(s) endpoint {endpoint:?}",
                meta.issuer
            )));
        }
    }
    Ok(())
}

/// Runs the whole discovery for `server_url`.
pub async fn discover(http: &reqwest::Client, server_url: &Url) -> Result<Discovered, ClientError> {
    let probe = probe(http, server_url).await?;
    let challenge = match &probe {
        Probe::Challenged(c) => c.clone(),
        Probe::Open(_) => None,
    };
    let found = fetch_resource_metadata(http, server_url, challenge.as_ref()).await?;
    let Some((prm_url, prm)) = found else {
        return Err(match probe {
            Probe::Open(status) if (200..300).contains(&status) => {
                ClientError::NoSignInNeeded(format!(
                    "{server_url} answered {status} without asking for credentials and publishes no \
                     protected-resource metadata"
                ))
            }
            Probe::Open(status) => ClientError::Discovery(format!(
                "{server_url} answered {status} without asking for credentials and publishes no \
                 protected-resource metadata: no sign-in needed"
            )),
            Probe::Challenged(challenge) => {
                return legacy_discovery(http, server_url, challenge).await;
            }
        });
    };
    let mut errors = Vec::new();
    for issuer in &prm.authorization_servers {
        // RFC 8414 §2: an https URL without query or fragment (http only on
        // loopback); anything else cannot be trusted to be the server named.
        let issuer = match issuer.parse::<Issuer>() {
            Ok(i) => i,
            Err(e) => {
                errors.push(ClientError::Unsafe(format!("authorization server {e}")).to_string());
                continue;
            }
        };
        match fetch_auth_server_metadata(http, &issuer).await {
            Ok(auth_server) => {
                let mut resource = prm.resource.clone().unwrap_or_else(|| {
                    let mut u = server_url.clone();
                    u.set_fragment(None);
                    u.to_string()
                });
                if resource.is_empty() {
                    resource = server_url.to_string();
                }
                return Ok(Discovered {
                    resource,
                    resource_metadata_url: Some(prm_url.to_string()),
                    resource_metadata: Some(prm),
                    auth_server,
                    challenge,
                });
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(ClientError::Discovery(errors.join("; ")))
}

/// A server that asks for credentials but publishes no protected-resource
/// metadata (the 2025-03-26 revision had none): the authorization server is
/// at the server's origin — its RFC 8414 metadata when it serves some, else
/// the default `/authorize`, `/token` and `/register` endpoints there.
async fn legacy_discovery(
    http: &reqwest::Client,
    server_url: &Url,
    challenge: Option<BearerChallenge>,
) -> Result<Discovered, ClientError> {
    let origin = server_url.origin().ascii_serialization();
    let mut base = server_url.clone();
    base.set_query(None);
    base.set_fragment(None);
    base.set_path("/.well-known/oauth-authorization-server");
    let auth_server = match get_json::<AuthServerMetadata>(http, &base).await? {
        Some(meta) => {
            if meta.issuer.trim_end_matches('/') != origin {
                return Err(ClientError::Unsafe(format!(
                    "metadata at {base} names issuer {:?}, not the server's origin {origin}",
                    meta.issuer
                )));
            }
            tracing::info!(
                "{server_url} publishes no protected-resource metadata; using the authorization \
                 server at its origin (2025-03-26)"
            );
            meta
        }
        None => {
            tracing::info!(
                "{server_url} publishes no protected-resource or authorization-server metadata; \
                 using the default /authorize, /token and /register at {origin} (2025-03-26)"
            );
            serde_json::from_value(serde_json::json!({
                "issuer": origin,
                "authorization_endpoint": format!("{origin}/authorize"),
                "token_endpoint": format!("{origin}/token"),
                "registration_endpoint": format!("{origin}/register"),
                // The 2025-03-26 revision requires PKCE of every client and server.
                "code_challenge_methods_supported": ["S256"],
            }))
            .map_err(|e| ClientError::Discovery(format!("default endpoints: {e}")))?
        }
    };
    check_auth_server(&auth_server)?;
    let mut resource = server_url.clone();
    resource.set_fragment(None);
    Ok(Discovered {
        resource: resource.to_string(),
        resource_metadata_url: None,
        resource_metadata: None,
        auth_server,
        challenge,
    })
}
