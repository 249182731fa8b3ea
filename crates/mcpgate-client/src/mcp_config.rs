//! `mcp_config.json`: the common `{"mcpServers": {"name": {"url", "headers"}}}`
//! format (VS Code's `servers` too), with an optional per-server `auth` block
//! for pre-registered clients:
//!
//! ```json
//! {"mcpServers": {"notes": {
//!     "url": "https://mcp.example.com/mcp",
//!     "headers": {"X-Team": "a"},
//!     "auth": {"client_id": "cli", "client_secret": "…", "scope": "notes:read",
//!              "authorization_url": "https://idp.example.com/authorize",
//!              "token_url": "https://idp.example.com/token",
//!              "redirect_uri": "http://127.0.0.1:8765/callback"}}}}
//! ```

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use url::Url;

use crate::error::ClientError;

/// A per-server `auth` block.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthBlock {
    /// The authorization endpoint (skips authorization-server discovery with `token_url`).
    #[serde(default)]
    pub authorization_url: Option<String>,
    /// The token endpoint.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The pre-registered client ID.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its secret, for confidential clients.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes to ask for.
    #[serde(default)]
    pub scope: Option<String>,
    /// The registered redirect URI.
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

impl std::fmt::Debug for AuthBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBlock")
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("scope", &self.scope)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// One server entry.
#[derive(Clone, Default, Deserialize)]
pub struct ServerEntry {
    /// The remote MCP endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// Extra headers for every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A stdio server's command (not usable here).
    #[serde(default)]
    pub command: Option<serde_json::Value>,
    /// Pre-registered OAuth settings.
    #[serde(default)]
    pub auth: Option<AuthBlock>,
}

impl std::fmt::Debug for ServerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEntry")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("auth", &self.auth)
            .finish()
    }
}

/// A parsed `mcp_config.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct McpConfig {
    /// Servers by name (`mcpServers`).
    #[serde(default, rename = "mcpServers")]
    pub mcp_servers: BTreeMap<String, ServerEntry>,
    /// Servers by name (VS Code's `servers`).
    #[serde(default)]
    pub servers: BTreeMap<String, ServerEntry>,
}

/// The server a command names, resolved through a config file.
#[derive(Debug, Clone)]
pub struct ResolvedServer {
    /// The MCP endpoint.
    pub url: Url,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The `auth` block, if any.
    pub auth: Option<AuthBlock>,
}

impl McpConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| ClientError::Config(format!("{}: {e}", path.display())))
    }

    /// Finds `target` (a server name, or a URL of a listed server; an
    /// unlisted URL resolves to itself without headers or auth).
    pub fn resolve(&self, target: &str) -> Result<ResolvedServer, ClientError> {
        let all = || self.mcp_servers.iter().chain(self.servers.iter());
        let entry = all().find(|(name, _)| name.as_str() == target).or_else(|| {
            all().find(|(_, e)| {
                e.url.as_deref().map(|u| u.trim_end_matches('/'))
                    == Some(target.trim_end_matches('/'))
            })
        });
        let Some((name, entry)) = entry else {
            return resolve_url(target).map(|url| ResolvedServer {
                url,
                headers: Vec::new(),
                auth: None,
            });
        };
        let Some(url) = &entry.url else {
            return Err(ClientError::Config(format!(
                "server {name:?} has no url{}; only remote (HTTP) servers can be signed in to",
                if entry.command.is_some() {
                    " (it is a stdio command)"
                } else {
                    ""
                }
            )));
        };
        Ok(ResolvedServer {
            url: resolve_url(url)?,
            headers: entry.headers.clone().into_iter().collect(),
            auth: entry.auth.clone(),
        })
    }
}

/// Parses an MCP server URL (http or https only).
pub fn resolve_url(s: &str) -> Result<Url, ClientError> {
    let url = Url::parse(s).map_err(|e| {
        ClientError::Config(format!(
            "{s:?} is not a URL ({e}); give the MCP endpoint, e.g. https://mcp.example.com/mcp, \
             or a server name with --config"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ClientError::Config(format!("{s:?} is not an http(s) URL")));
    }
    Ok(url)
}
