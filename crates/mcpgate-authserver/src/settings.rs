//! `[authserver]`: what the operator configures, with the defaults the issue sets.

use std::collections::BTreeMap;
use std::time::Duration;

use mcpgate_guard::time::deserialize_duration;
use serde::Deserialize;

/// The authorization server's configuration (`[authserver]` in `mcpgate.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// Serve the authorization server (on with `serve --demo`).
    #[serde(default)]
    pub enabled: bool,
    /// A path for the issuer (`"/tenant1"`); empty = the public URL itself (the interoperable default).
    #[serde(default)]
    pub issuer_path: String,
    /// The audience when a client sends no `resource` (default: `<public URL>/mcp`).
    #[serde(default)]
    pub default_resource: Option<String>,
    /// Access token lifetime.
    #[serde(default = "d_access", deserialize_with = "deserialize_duration")]
    pub access_token_ttl: Duration,
    /// A refresh token expires when unused this long (sliding).
    #[serde(default = "d_refresh_idle", deserialize_with = "deserialize_duration")]
    pub refresh_idle_ttl: Duration,
    /// No refresh is possible this long after the user signed in (absolute).
    #[serde(default = "d_refresh_max", deserialize_with = "deserialize_duration")]
    pub refresh_max_ttl: Duration,
    /// A rotated refresh token still works this long (concurrent refreshes); reused later, it revokes the grant.
    #[serde(default = "d_grace", deserialize_with = "deserialize_duration")]
    pub refresh_grace: Duration,
    /// Authorization code lifetime.
    #[serde(default = "d_code", deserialize_with = "deserialize_duration")]
    pub code_ttl: Duration,
    /// Browser session lifetime (the login pages).
    #[serde(default = "d_session", deserialize_with = "deserialize_duration")]
    pub session_ttl: Duration,
    /// Device code lifetime.
    #[serde(default = "d_device", deserialize_with = "deserialize_duration")]
    pub device_code_ttl: Duration,
    /// DPoP (RFC 9449): proofs at `/token` must carry a nonce of this
    /// server (`use_dpop_nonce`, `DPoP-Nonce`); off by default.
    #[serde(default)]
    pub dpop_nonce: bool,
    /// Minimum seconds between device polls.
    #[serde(default = "d_interval")]
    pub device_poll_interval: u64,
    /// The access tokens' signature algorithm for new keys.
    #[serde(default)]
    pub signing_alg: SigningAlg,
    /// How long a rotated-out signing key stays in the JWKS.
    #[serde(default = "d_overlap", deserialize_with = "deserialize_duration")]
    pub key_overlap: Duration,
    /// Scopes clients may ask for, with the descriptions the consent page shows.
    #[serde(default = "d_scopes")]
    pub scopes: BTreeMap<String, String>,
    /// What to do with a scope not in `scopes`.
    #[serde(default)]
    pub unknown_scopes: UnknownScopes,
    /// Dynamic client registration (RFC 7591).
    #[serde(default)]
    pub registration: Registration,
    /// Registrations (`POST /register`) allowed per client address, e.g.
    /// `"20/min"` (bursts up to the count); `"off"` for no limit.
    #[serde(default)]
    pub registration_rate: crate::RegistrationRate,
    /// Client ID metadata documents.
    #[serde(default)]
    pub cimd: CimdSettings,
    /// Dynamic clients unused this long are deleted.
    #[serde(default = "d_client_ttl", deserialize_with = "deserialize_duration")]
    pub dynamic_client_ttl: Duration,
    /// Passwords evaluated per account and per client IP within `login_window`
    /// (reserved before checking, so concurrent guesses count too; a success
    /// gives its reservation back).
    #[serde(default = "d_failures")]
    pub login_max_failures: u32,
    /// The window the failures are counted in.
    #[serde(default = "d_window", deserialize_with = "deserialize_duration")]
    pub login_window: Duration,
    /// How often expired rows are purged and the signing keys re-read (after
    /// `mcpgate signing-keys rotate`).
    #[serde(default = "d_maintenance", deserialize_with = "deserialize_duration")]
    pub maintenance_interval: Duration,
    /// External identity providers users may sign in with (`[[authserver.federation]]`).
    #[serde(default)]
    pub federation: Vec<crate::federation::ProviderConfig>,
    /// Whether the login page offers local password sign-in (`mcpgate users`);
    /// switch it off to allow federated sign-in only.
    #[serde(default = "d_local_login")]
    pub local_login: bool,
    /// Whether operator-configured URLs (federation issuers and what lies on
    /// their origins) may be on private addresses: set by the binary from
    /// `[server] outbound_private`, not read from `[authserver]`.
    #[serde(skip)]
    pub outbound_private: mcpgate_fetch::Private,
    /// Other resource servers this server issues tokens for (`[[authserver.resource]]`).
    #[serde(default)]
    pub resource: Vec<crate::resource_servers::ResourceServerConfig>,
    /// Issuers whose signed assertions the jwt-bearer grant redeems: ID-JAGs
    /// of enterprise IdPs, workload tokens (`[[authserver.trusted_issuer]]`).
    #[serde(default)]
    pub trusted_issuer: Vec<crate::trusted_issuer::TrustedIssuerConfig>,
}

fn d_local_login() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: false,
            issuer_path: String::new(),
            default_resource: None,
            access_token_ttl: d_access(),
            refresh_idle_ttl: d_refresh_idle(),
            refresh_max_ttl: d_refresh_max(),
            refresh_grace: d_grace(),
            code_ttl: d_code(),
            session_ttl: d_session(),
            device_code_ttl: d_device(),
            device_poll_interval: d_interval(),
            dpop_nonce: false,
            signing_alg: SigningAlg::default(),
            key_overlap: d_overlap(),
            scopes: d_scopes(),
            unknown_scopes: UnknownScopes::default(),
            registration: Registration::default(),
            registration_rate: crate::RegistrationRate::default(),
            cimd: CimdSettings::default(),
            dynamic_client_ttl: d_client_ttl(),
            login_max_failures: d_failures(),
            login_window: d_window(),
            maintenance_interval: d_maintenance(),
            federation: Vec::new(),
            local_login: true,
            outbound_private: mcpgate_fetch::Private::default(),
            resource: Vec::new(),
            trusted_issuer: Vec::new(),
        }
    }
}

/// JWS algorithms for access tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256.
    #[default]
    ES256,
    /// Ed25519.
    EdDSA,
    /// RSA 2048 PKCS#1 v1.5 with SHA-256.
    RS256,
}

impl SigningAlg {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::RS256 => "RS256",
        }
    }

    /// The algorithm named `s`.
    pub fn parse(s: &str) -> Option<SigningAlg> {
        match s {
            "ES256" => Some(SigningAlg::ES256),
            "EdDSA" => Some(SigningAlg::EdDSA),
            "RS256" => Some(SigningAlg::RS256),
            _ => None,
        }
    }
}

/// `authserver.unknown_scopes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnknownScopes {
    /// Drop them and grant the rest.
    #[default]
    Ignore,
    /// Refuse the request with `invalid_scope`.
    Reject,
}

/// `[authserver.registration]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Registration {
    /// Who may register.
    #[serde(default)]
    pub policy: RegistrationPolicy,
    /// Initial access tokens (policy `initial_access_token`).
    #[serde(default)]
    pub initial_access_tokens: Vec<String>,
    /// An environment variable holding more initial access tokens, comma-separated.
    #[serde(default)]
    pub initial_access_tokens_env: Option<String>,
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            policy: RegistrationPolicy::Open,
            initial_access_tokens: Vec::new(),
            initial_access_tokens_env: None,
        }
    }
}

/// `authserver.registration.policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegistrationPolicy {
    /// Anyone may register (what MCP clients expect).
    #[default]
    Open,
    /// Only with `Authorization: Bearer <initial access token>`.
    InitialAccessToken,
    /// No dynamic registration.
    Off,
}

/// `[authserver.cimd]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CimdSettings {
    /// Accept https `client_id` URLs (client ID metadata documents).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// DANGER: allow every URL a client or document names (metadata documents,
    /// client `jwks_uri`, federation discovery pointers) on private, loopback
    /// and link-local addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// DANGER: hosts (`host` or `host:port`) fetched even on private addresses,
    /// and over plain http when on loopback, for every URL a client or
    /// document names (metadata documents, client `jwks_uri`). For tests.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// How long a document is cached when its response says nothing.
    #[serde(default = "d_cimd_cache", deserialize_with = "deserialize_duration")]
    pub default_cache: Duration,
}

impl Default for CimdSettings {
    fn default() -> Self {
        CimdSettings {
            enabled: true,
            allow_private: false,
            allow_hosts: Vec::new(),
            default_cache: d_cimd_cache(),
        }
    }
}

fn yes() -> bool {
    true
}
fn d_access() -> Duration {
    Duration::from_secs(3600)
}
fn d_refresh_idle() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}
fn d_refresh_max() -> Duration {
    Duration::from_secs(90 * 24 * 3600)
}
fn d_grace() -> Duration {
    Duration::from_secs(30)
}
fn d_code() -> Duration {
    Duration::from_secs(60)
}
fn d_session() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn d_device() -> Duration {
    Duration::from_secs(600)
}
fn d_interval() -> u64 {
    5
}
fn d_overlap() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_client_ttl() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn d_failures() -> u32 {
    5
}
fn d_window() -> Duration {
    Duration::from_secs(15 * 60)
}
fn d_maintenance() -> Duration {
    Duration::from_secs(60)
}
fn d_cimd_cache() -> Duration {
    Duration::from_secs(3600)
}

/// The scopes the demo uses, plus the OpenID ones.
fn d_scopes() -> BTreeMap<String, String> {
    [
        ("notes:read", "Read your notes"),
        ("notes:write", "Create and change your notes"),
        ("openid", "Know who you are"),
        ("profile", "See your user name"),
        ("offline_access", "Stay signed in (refresh tokens)"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
