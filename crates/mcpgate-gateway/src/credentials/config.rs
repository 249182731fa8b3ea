//! `[[upstream.credentials]]` as written in TOML: one table per credential,
//! its `kind` deciding which keys apply.

use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// One outbound credential of an upstream.
///
/// Where it goes: `header` (HTTP upstreams; most kinds default to
/// `Authorization`) with `template` (`{secret}` is replaced), or `env`
/// (stdio upstreams: the variable set in the child's environment, holding the
/// bare secret).
#[derive(Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum CredentialConfig {
    /// A fixed secret from config, the environment or a file, in any header or
    /// environment variable (`template = "Token {secret}"` for custom schemes).
    Static(FixedConfig),
    /// A fixed bearer token: `Authorization: Bearer <secret>`.
    Bearer(FixedConfig),
    /// HTTP Basic: `Authorization: Basic base64(username:password)` (HTTP upstreams only).
    Basic {
        /// The user name inline.
        #[serde(default)]
        username: Option<String>,
        /// The environment variable holding the user name.
        #[serde(default)]
        username_env: Option<String>,
        /// A file holding the user name.
        #[serde(default)]
        username_file: Option<PathBuf>,
        /// The password inline. Prefer `password_env` or `password_file`.
        #[serde(default)]
        password: Option<SecretString>,
        /// The environment variable holding the password.
        #[serde(default)]
        password_env: Option<String>,
        /// A file holding the password.
        #[serde(default)]
        password_file: Option<PathBuf>,
        /// The header; default `Authorization`.
        #[serde(default)]
        header: Option<String>,
    },
    /// OAuth 2 client credentials grant (RFC 6749 §4.4), cached and renewed
    /// before expiry; sent as `Authorization: Bearer <access token>`.
    ClientCredentials(OAuthClientConfig),
    /// A REST API's username/password login returning (JWT) access and refresh
    /// tokens; refreshed on expiry or a 401, logged in again when refresh fails.
    Login(LoginConfig),
    /// RFC 8693 token exchange at a security token service, per user: the
    /// caller's gateway identity token is the subject token.
    TokenExchange(TokenExchangeConfig),
    /// Per user: the secret each user stored for this upstream in the vault
    /// (the authserver's account page, or its consent page), e.g. their own
    /// API key.
    Vault(VaultConfig),
    /// Per user: the access token of the identity provider the user signed in
    /// with (`[[authserver.federation]]` named `provider`), refreshed when expired.
    Federated(FederatedConfig),
}

/// `kind = "static"` and `kind = "bearer"`: a fixed secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FixedConfig {
    /// The secret inline. Prefer `value_env` or `value_file`.
    #[serde(default)]
    pub value: Option<SecretString>,
    /// The gateway's environment variable holding the secret.
    #[serde(default)]
    pub value_env: Option<String>,
    /// A file holding the secret (trailing newlines are dropped).
    #[serde(default)]
    pub value_file: Option<PathBuf>,
    /// HTTP: the header to send it in (static: required for HTTP upstreams;
    /// bearer: default `Authorization`).
    #[serde(default)]
    pub header: Option<String>,
    /// HTTP: the header value (static: default `{secret}`; bearer: default
    /// `Bearer {secret}`).
    #[serde(default)]
    pub template: Option<String>,
    /// stdio: the child's environment variable (required for stdio upstreams).
    #[serde(default)]
    pub env: Option<String>,
}

/// `kind = "federated"`: the caller's own token from an identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FederatedConfig {
    /// The `name` of the `[[authserver.federation]]` provider.
    pub provider: String,
    /// HTTP: the header; default `Authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// HTTP: the header value; default `Bearer {secret}`.
    #[serde(default)]
    pub template: Option<String>,
}

/// `kind = "vault"`: each user's own secret for this upstream, from the vault.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VaultConfig {
    /// What the secret is, as the account page shows it (e.g. "Weather API key").
    #[serde(default)]
    pub label: Option<String>,
    /// A regular expression the whole secret must match when a user stores it.
    #[serde(default)]
    pub format: Option<String>,
    /// What to tell a user whose secret does not match `format`.
    #[serde(default)]
    pub format_hint: Option<String>,
    /// HTTP: the header; default `Authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// HTTP: the header value; default `Bearer {secret}`.
    #[serde(default)]
    pub template: Option<String>,
    /// stdio (isolation = "session"): the child's environment variable.
    #[serde(default)]
    pub env: Option<String>,
}

/// How a client authenticates at a token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// `Authorization: Basic` with the form-encoded id and secret.
    #[default]
    #[serde(alias = "client_secret_basic")]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    #[serde(alias = "client_secret_post")]
    Post,
}

/// `kind = "client_credentials"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OAuthClientConfig {
    /// The token endpoint.
    pub token_url: url::Url,
    // The client_id and client_secret trios repeat in `TokenExchangeConfig`:
    // these structs are the TOML surface, and serde's `flatten` (one shared
    // struct) cannot be combined with `deny_unknown_fields`, which keeps a
    // misspelt key an error. `build.rs` reads both through one `ClientAuth`.
    /// The client id inline.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The environment variable holding the client id.
    #[serde(default)]
    pub client_id_env: Option<String>,
    /// A file holding the client id.
    #[serde(default)]
    pub client_id_file: Option<PathBuf>,
    /// The client secret inline. Prefer `client_secret_env` or `client_secret_file`.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// `basic` (default) or `post`.
    #[serde(default)]
    pub auth_method: TokenAuthMethod,
    /// `scope` to ask for.
    #[serde(default)]
    pub scope: Option<String>,
    /// `audience` to ask for (Auth0 and others).
    #[serde(default)]
    pub audience: Option<String>,
    /// `resource` to ask for (RFC 8707).
    #[serde(default)]
    pub resource: Option<String>,
    /// The header; default `Authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// The header value; default `Bearer {secret}`.
    #[serde(default)]
    pub template: Option<String>,
    /// How long one token request may take (default 10s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "mcpgate_guard::time::deserialize_duration"
    )]
    pub timeout: Duration,
}

/// The body format of a login or refresh request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// `kind = "login"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LoginConfig {
    /// Where to POST the username and password.
    pub login_url: url::Url,
    /// The environment variable holding the user name.
    #[serde(default)]
    pub username_env: Option<String>,
    /// A file holding the user name.
    #[serde(default)]
    pub username_file: Option<PathBuf>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `json` (default) or `form`, for the login and refresh requests.
    #[serde(default)]
    pub format: BodyFormat,
    /// The login body's user-name field (default `username`).
    #[serde(default = "default_username_field")]
    pub username_field: String,
    /// The login body's password field (default `password`).
    #[serde(default = "default_password_field")]
    pub password_field: String,
    /// Where the access token is in the answer, dotted (default `access_token`).
    #[serde(default = "default_access_token_field")]
    pub access_token_field: String,
    /// Where the refresh token is in the answer, dotted (default `refresh_token`; absent is fine).
    #[serde(default = "default_refresh_token_field")]
    pub refresh_token_field: String,
    /// Where the lifetime in seconds is, dotted (default `expires_in`); else the JWT `exp`.
    #[serde(default = "default_expires_in_field")]
    pub expires_in_field: String,
    /// Where to POST the refresh token; without it, expiry means logging in again.
    #[serde(default)]
    pub refresh_url: Option<url::Url>,
    /// The refresh body's field carrying the refresh token (default `refresh_token`).
    #[serde(default = "default_refresh_token_field")]
    pub refresh_token_param: String,
    /// The header; default `Authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// The header value; default `Bearer {secret}`.
    #[serde(default)]
    pub template: Option<String>,
    /// How long one login or refresh may take (default 10s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "mcpgate_guard::time::deserialize_duration"
    )]
    pub timeout: Duration,
}

/// `kind = "token_exchange"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenExchangeConfig {
    /// The security token service's token endpoint.
    pub token_url: url::Url,
    // The same client_id/client_secret keys as `OAuthClientConfig`, written
    // again for the reason given there (flatten vs deny_unknown_fields).
    /// The gateway's client id at the STS, when it requires client authentication.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The environment variable holding the client id.
    #[serde(default)]
    pub client_id_env: Option<String>,
    /// A file holding the client id.
    #[serde(default)]
    pub client_id_file: Option<PathBuf>,
    /// The client secret inline.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// `basic` (default) or `post`.
    #[serde(default)]
    pub auth_method: TokenAuthMethod,
    /// What the subject token is; only `identity` (the gateway's signed
    /// identity token for the caller) exists: the client's own token is never sent.
    #[serde(default)]
    pub subject_token: SubjectToken,
    /// `audience` to ask for.
    #[serde(default)]
    pub audience: Option<String>,
    /// `resource` to ask for.
    #[serde(default)]
    pub resource: Option<String>,
    /// `scope` to ask for.
    #[serde(default)]
    pub scope: Option<String>,
    /// `requested_token_type` (default `urn:ietf:params:oauth:token-type:access_token`).
    #[serde(default = "default_requested_token_type")]
    pub requested_token_type: String,
    /// The header; default `Authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// The header value; default `Bearer {secret}`.
    #[serde(default)]
    pub template: Option<String>,
    /// How long one exchange may take (default 10s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "mcpgate_guard::time::deserialize_duration"
    )]
    pub timeout: Duration,
}

/// The subject token of a token exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SubjectToken {
    /// The gateway's ES256 identity token for the caller, with the STS's
    /// token URL as its audience.
    #[default]
    Identity,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_username_field() -> String {
    "username".into()
}
fn default_password_field() -> String {
    "password".into()
}
fn default_access_token_field() -> String {
    "access_token".into()
}
fn default_refresh_token_field() -> String {
    "refresh_token".into()
}
fn default_expires_in_field() -> String {
    "expires_in".into()
}
fn default_requested_token_type() -> String {
    "urn:ietf:params:oauth:token-type:access_token".into()
}

impl CredentialConfig {
    /// The `kind` as written.
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialConfig::Static(_) => "static",
            CredentialConfig::Bearer(_) => "bearer",
            CredentialConfig::Basic { .. } => "basic",
            CredentialConfig::ClientCredentials(_) => "client_credentials",
            CredentialConfig::Login(_) => "login",
            CredentialConfig::TokenExchange(_) => "token_exchange",
            CredentialConfig::Vault(_) => "vault",
            CredentialConfig::Federated(_) => "federated",
        }
    }

    /// Whether the credential differs per caller (it then needs a signed-in
    /// caller, and cannot go to a stdio child shared by every user).
    pub fn per_user(&self) -> bool {
        matches!(
            self,
            CredentialConfig::TokenExchange(_)
                | CredentialConfig::Vault(_)
                | CredentialConfig::Federated(_)
        )
    }

    /// Whether the credential expires and is renewed (an environment variable
    /// of a running child cannot be renewed).
    pub fn renewable(&self) -> bool {
        matches!(
            self,
            CredentialConfig::ClientCredentials(_)
                | CredentialConfig::Login(_)
                | CredentialConfig::TokenExchange(_)
        )
    }
}

// Secrets inline in the configuration never reach a log through `Debug`.
impl std::fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("CredentialConfig");
        d.field("kind", &self.kind());
        match self {
            CredentialConfig::Static(f) | CredentialConfig::Bearer(f) => d
                .field("value_env", &f.value_env)
                .field("value_file", &f.value_file)
                .field("header", &f.header)
                .field("env", &f.env),
            CredentialConfig::Basic {
                username_env,
                password_env,
                header,
                ..
            } => d
                .field("username_env", username_env)
                .field("password_env", password_env)
                .field("header", header),
            CredentialConfig::ClientCredentials(c) => d
                .field("token_url", &c.token_url.as_str())
                .field("client_secret_env", &c.client_secret_env),
            CredentialConfig::Login(c) => d
                .field("login_url", &c.login_url.as_str())
                .field("password_env", &c.password_env),
            CredentialConfig::TokenExchange(c) => d.field("token_url", &c.token_url.as_str()),
            CredentialConfig::Vault(c) => d.field("label", &c.label).field("header", &c.header),
            CredentialConfig::Federated(c) => d.field("provider", &c.provider),
        };
        d.finish_non_exhaustive()
    }
}

/// `credentials` may be one table (`[upstream.credentials]`) or an array of
/// tables (`[[upstream.credentials]]`).
pub(crate) fn one_or_many<'de, D>(de: D) -> Result<Vec<CredentialConfig>, D::Error>
where
    D: Deserializer<'de>,
{
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<CredentialConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a credential table or an array of them")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            CredentialConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                .map(|c| vec![c])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }
    }
    de.deserialize_any(V)
}
