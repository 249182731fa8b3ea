//! `[[authserver.federation]]`: the settings of one identity provider, as
//! read from the configuration file (checked when the server starts, in
//! `idp.rs`).

use std::path::PathBuf;

use serde::Deserialize;

/// Which protocol an IdP speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProviderKind {
    /// GitHub (or GitHub Enterprise Server): OAuth 2.0 without OIDC; identity from its user API.
    Github,
    /// Google: OIDC at `https://accounts.google.com`, refresh tokens with `access_type=offline`.
    Google,
    /// Microsoft Entra ID, v2 endpoints of `tenant` (no `resource` parameter).
    Entra,
    /// Any OpenID Connect provider, found by discovery from `issuer`.
    Oidc,
}

/// How a federated identity finds its local user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum MapBy {
    /// The local user whose email is the IdP's verified email.
    #[default]
    Email,
    /// Only the link made at the first sign-in (provider + the IdP's subject).
    Subject,
}

/// One `[[authserver.federation]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// `github`, `google`, `entra` or `oidc`.
    pub kind: ProviderKind,
    /// The provider's name in URLs and in `kind = "federated"` credentials (`[a-z0-9-]`).
    pub name: String,
    /// The button text: "Sign in with <display_name>" (default: by kind).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The OAuth client id registered at the IdP.
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Entra: the tenant (id, domain, `organizations` or `common`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// `oidc`: the issuer, whose `/.well-known/openid-configuration` is fetched.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Scopes to ask for (default by kind; GitHub adds `read:org` for `allowed_orgs`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// GitHub: only members of one of these organizations.
    #[serde(default)]
    pub allowed_orgs: Vec<String>,
    /// Only verified emails in one of these domains.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// OIDC: only members of one of these groups (the `groups_claim` claim).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Only identities whose verified email or login matches one of these globs.
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// The claim holding group names (default `groups`).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// `email` (default) or `subject`.
    #[serde(default)]
    pub map_by: MapBy,
    /// Create a local user at the first sign-in when none matches.
    #[serde(default)]
    pub create_users: bool,
    /// Scopes of users created at their first sign-in (each an RFC 6749
    /// scope-token, checked when the configuration is read).
    #[serde(default)]
    pub user_scopes: Vec<mcpgate_types::Scope>,
    /// GitHub Enterprise Server: the web URL (default `https://github.com`).
    #[serde(default)]
    pub github_url: Option<url::Url>,
    /// GitHub Enterprise Server: the API URL (default `https://api.github.com`).
    #[serde(default)]
    pub github_api_url: Option<url::Url>,
}
