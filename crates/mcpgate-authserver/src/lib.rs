//! mcpgate's OAuth 2.1 authorization server, served on the gateway's origin.
//!
//! It issues access tokens (RFC 9068 JWTs) for the gateway's MCP endpoints to
//! any MCP client: metadata (RFC 8414, OpenID discovery), `/authorize` with
//! mandatory PKCE S256, server-rendered login and consent pages, `/token`
//! (authorization code, refresh with rotation and reuse detection, client
//! credentials, device code), dynamic registration (RFC 7591/7592), client ID
//! metadata documents, introspection, revocation, userinfo and the JWKS.
//! [`AuthServer::verifier`] checks its tokens in-process for the guard.
//!
//! It must never store a code, token or secret in the clear (digests only;
//! signing keys sealed), never redirect to an unvalidated URI, never answer a
//! token request without `Cache-Control: no-store`, and never panic on input.
//!
//! # The path of each request
//!
//! Every route is under the issuer path (`routes.rs`); every request first
//! passes the body limit (`body_limit.rs`). Values a client sends are parsed
//! into the types of `mcpgate-types` (`ClientId`, `RedirectUri`,
//! `ResourceUri`) where they arrive. An OAuth failure becomes the wire's
//! `error`/`error_description` in `error.rs` only.
//!
//! - **Metadata**, `GET /.well-known/…`, `GET /jwks.json`: `metadata.rs`
//!   (the public keys from `keys.rs`).
//! - **Registration**, `POST /register`: `registration_rate.rs` (per address)
//!   → `register.rs` (policy, metadata, `RedirectUri::self_registered`) →
//!   the store. `GET|PUT|DELETE /register/{id}`: `register.rs`.
//! - **Authorization**, `GET /authorize`: `authorize.rs` reads the request
//!   (`params.rs`), finds the client (`clients.rs`, or its metadata document
//!   in `cimd.rs`), matches the redirect URI (`RedirectUri::matches`), checks
//!   PKCE (`pkce.rs`), the resource (`resource_servers.rs`) and the scopes;
//!   then the session (`session.rs`): not signed in → `/login`
//!   (`pages/login.rs`, `throttle.rs`) or an IdP (`federation.rs`); signed
//!   in → the consent page (`pages.rs`, with the vault field of
//!   `vault/slots.rs`). `POST /consent` (`authorize.rs`) stores the grant and
//!   the code and redirects (`redirect.rs`, `respond.rs`).
//! - **Federated sign-in**, `GET /federation/{name}/start|callback`:
//!   `federation.rs` → `federation/idp.rs` (the IdP's protocol) →
//!   `federation/policy.rs` (allow-lists, local user) → `session.rs`.
//! - **Tokens**, `POST /token`: `client_auth.rs` (the `ClientForm`
//!   extractor authenticates the client before the handler runs) → `token.rs`
//!   checks the DPoP proof and hands one `Grant` (`token/issue.rs`) to the
//!   handler of its `grant_type`: `token/code.rs`, `token/refresh.rs`,
//!   `token/credentials.rs`, `device.rs` or `token/jwt_bearer.rs` (an
//!   assertion of a `trusted_issuer.rs` issuer: an ID-JAG, its user found by
//!   `token/assertion_user.rs`, or a workload token) → `token/issue.rs`
//!   (signs with `keys.rs`, answers with `no-store`).
//! - **Device flow**, `POST /device_authorization`: `ClientForm` → `device.rs`;
//!   the user's `GET|POST /device`: `device.rs` (signed in via `session.rs`).
//! - **Introspection**, `POST /introspect`: `client_auth::read_form` →
//!   a resource server's credentials (`resource_servers.rs`) or a client's
//!   (`client_auth.rs`) → `introspect.rs` (checks with `verifier.rs`).
//!   `/userinfo`: `introspect.rs`.
//! - **Revocation**, `POST /revoke`: `ClientForm` → `revoke.rs`.
//! - **Account**, `GET /account`, `POST /account/revoke`: `account.rs`;
//!   `POST /account/credentials`: `vault.rs` (slots in `vault/slots.rs`).
//!   Every page form a signed-in user posts (these, and `POST /device`) is
//!   read by `session::user_form`: session, then CSRF token.
//! - **In-process calls**: the guard's token check ([`AuthServer::verifier`],
//!   `verifier.rs`); a user's vault secret (`vault.rs`) and IdP token
//!   (`federation/tokens.rs`) for the gateway's upstream credentials. They
//!   fail with [`Error`].

mod account;
mod authorize;
mod body_limit;
mod cimd;
mod client_auth;
mod clients;
mod device;
mod error;
mod federation;
mod introspect;
mod keys;
mod metadata;
mod pages;
mod params;
mod pkce;
mod redirect;
mod register;
mod registration_rate;
mod resource_servers;
mod respond;
mod revoke;
mod routes;
mod session;
mod settings;
mod throttle;
mod token;
mod trusted_issuer;
mod vault;
mod verifier;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpgate_store::{MasterKey, Store};

pub use body_limit::MAX_BODY_BYTES;
pub use error::{Error, ErrorCode, OAuthError};
pub use federation::{MapBy, ProviderConfig, ProviderKind};
pub use keys::aad as signing_key_aad;
pub use keys::rotate as rotate_signing_key;
pub use mcpgate_types::{ClientId, Issuer, OOB, ParseError, RedirectUri, ResourceUri};
pub use registration_rate::RegistrationRate;
pub use resource_servers::ResourceServerConfig;
pub use settings::{
    CimdSettings, Registration, RegistrationPolicy, Settings, SigningAlg, UnknownScopes,
};
pub use trusted_issuer::{IssuerKind, TrustedIssuerConfig, UserMatch, WorkloadRule};
pub use vault::VaultSlot;
pub use verifier::AccessTokenVerifier;

/// The running authorization server; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuthServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) settings: Settings,
    /// The issuer identifier: the public URL (no trailing slash) plus the issuer path.
    pub(crate) issuer: Issuer,
    /// The issuer path (`""` or `"/tenant1"`): where the endpoints are routed.
    pub(crate) base_path: String,
    /// Audiences tokens may be issued for.
    pub(crate) resources: Vec<ResourceUri>,
    pub(crate) default_resource: ResourceUri,
    pub(crate) store: Store,
    pub(crate) master: Arc<MasterKey>,
    pub(crate) keys: keys::KeyRing,
    pub(crate) throttle: throttle::Throttle,
    /// `POST /register` per client address (`authserver.registration_rate`).
    pub(crate) registrations: registration_rate::RegistrationLimiter,
    pub(crate) cimd: cimd::Documents,
    /// The SSRF-guarded fetcher for every URL a client or a document names
    /// (CIMD documents, client `jwks_uri`, what a federation provider's
    /// discovery points to beyond its own origin).
    pub(crate) outbound: mcpgate_fetch::Fetcher,
    /// `Secure` cookies with the `__Host-` prefix (relaxed only for http on loopback).
    pub(crate) secure_cookies: bool,
    pub(crate) initial_access_tokens: Vec<String>,
    /// DPoP nonces (`authserver.dpop_nonce`), from the master key so that
    /// every replica accepts every other's.
    pub(crate) dpop_nonces: Option<mcpgate_dpop::Nonces>,
    /// `private_key_jwt` assertions already used.
    pub(crate) seen_assertions: client_auth::ReplaySet,
    /// Upstreams whose credential is each user's own secret (the account page's "Credentials").
    pub(crate) vault: std::sync::OnceLock<Vec<vault::VaultSlot>>,
    /// External identity providers (`[[authserver.federation]]`).
    pub(crate) federation: federation::Federation,
    /// `[[authserver.resource]]` (more are in the store).
    pub(crate) resource_servers: resource_servers::Configured,
    /// `[[authserver.trusted_issuer]]`: whose assertions the jwt-bearer grant takes.
    pub(crate) trusted: trusted_issuer::Trusted,
}

impl Inner {
    /// The absolute URL of endpoint `path` (`"/token"`).
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The route of endpoint `path`.
    pub(crate) fn route(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }

    /// The consent pages' lines for `scopes`: each with its description from
    /// `[authserver.scopes]`, else its own name.
    pub(crate) fn scope_lines(&self, scopes: &mcpgate_types::ScopeSet) -> Vec<pages::ScopeLine> {
        scopes
            .iter()
            .map(|s| pages::ScopeLine {
                name: s.to_string(),
                description: self
                    .settings
                    .scopes
                    .get(s.as_str())
                    .cloned()
                    .unwrap_or_else(|| s.to_string()),
            })
            .collect()
    }

    pub(crate) fn known_scope(&self, scope: &str) -> bool {
        self.settings.scopes.contains_key(scope)
    }
}

impl AuthServer {
    /// Starts the authorization server for the gateway at `public_url`,
    /// issuing tokens for `resources` (the MCP endpoints' URLs; the first is
    /// the default unless `settings.default_resource` says otherwise). Loads
    /// (or, on first start, generates) the signing keys.
    pub async fn new(
        settings: Settings,
        public_url: &url::Url,
        resources: Vec<String>,
        store: Store,
        master: MasterKey,
    ) -> Result<AuthServer, Error> {
        let origin = public_url.as_str().trim_end_matches('/').to_owned();
        let base_path = normalize_path(&settings.issuer_path)?;
        // Plain http elsewhere than loopback is warned about below, not refused.
        let issuer = Issuer::allowing_plain_http(&format!("{origin}{base_path}"))
            .map_err(|e| Error::Config(format!("server.public_url: {e}")))?;
        let mut canon: Vec<ResourceUri> = resources
            .iter()
            .filter_map(|r| url::Url::parse(r).ok())
            .filter_map(|u| ResourceUri::from_url(&u).ok())
            .collect();
        let default_resource = match &settings.default_resource {
            Some(r) => {
                let u = url::Url::parse(r).map_err(|e| {
                    Error::Config(format!(
                        "authserver.default_resource: {r:?} is not a URL ({e})"
                    ))
                })?;
                ResourceUri::from_url(&u)
                    .map_err(|e| Error::Config(format!("authserver.default_resource: {e}")))?
            }
            None => match canon.first() {
                Some(r) => r.clone(),
                None => format!("{origin}/mcp")
                    .parse()
                    .map_err(|e| Error::Config(format!("server.public_url: {e}")))?,
            },
        };
        if !canon.contains(&default_resource) {
            canon.push(default_resource.clone());
        }
        let keys = keys::KeyRing::load(&store, &master, settings.signing_alg, settings.key_overlap)
            .await?;
        let secure_cookies =
            !(public_url.scheme() == "http" && mcpgate_types::is_loopback_host(public_url));
        if public_url.scheme() == "http" && secure_cookies {
            tracing::warn!(
                "server.public_url is plain http on a non-loopback host: browsers will not send the login session cookie; serve https"
            );
        }
        let mut initial_access_tokens = settings.registration.initial_access_tokens.clone();
        if let Some(var) = &settings.registration.initial_access_tokens_env {
            match std::env::var(var) {
                Ok(v) => initial_access_tokens.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                ),
                Err(_) => {
                    return Err(Error::Config(format!(
                        "authserver.registration.initial_access_tokens_env: the environment variable {var} is not set"
                    )));
                }
            }
        }
        if settings.registration.policy == RegistrationPolicy::InitialAccessToken
            && initial_access_tokens.is_empty()
        {
            return Err(Error::Config("authserver.registration.policy = \"initial_access_token\" needs initial_access_tokens or initial_access_tokens_env".into()));
        }
        let outbound = untrusted_fetcher(&settings.cimd)?;
        let operator =
            mcpgate_fetch::Fetcher::new(mcpgate_fetch::Policy::operator(settings.outbound_private))
                .map_err(|e| Error::Config(format!("authserver: {e}")))?;
        let federation = federation::Federation::new(
            &settings.federation,
            &federation::Outbound {
                operator,
                untrusted: outbound.clone(),
            },
        )?;
        if !settings.local_login && federation.providers.is_empty() {
            return Err(Error::Config("authserver.local_login = false needs at least one [[authserver.federation]] provider, or nobody can sign in".into()));
        }
        let throttle = throttle::Throttle::new(
            store.clone(),
            settings.login_max_failures,
            settings.login_window,
        );
        let registrations = registration_rate::RegistrationLimiter::new(settings.registration_rate);
        let cimd = cimd::Documents::new(&settings.cimd, outbound.clone());
        let resource_servers = resource_servers::Configured::new(&settings.resource, &canon)?;
        let trusted = trusted_issuer::Trusted::new(&settings.trusted_issuer, &issuer)?;
        let dpop_nonces = settings
            .dpop_nonce
            .then(|| mcpgate_dpop::Nonces::new(&master.derive(mcpgate_dpop::NONCE_KEY_PURPOSE)));
        Ok(AuthServer {
            inner: Arc::new(Inner {
                dpop_nonces,
                settings,
                issuer,
                base_path,
                resources: canon,
                default_resource,
                store,
                master: Arc::new(master),
                keys,
                throttle,
                registrations,
                cimd,
                outbound,
                secure_cookies,
                initial_access_tokens,
                seen_assertions: client_auth::ReplaySet::new(),
                vault: std::sync::OnceLock::new(),
                federation,
                resource_servers,
                trusted,
            }),
        })
    }

    /// The issuer identifier, for the protected-resource metadata's `authorization_servers`.
    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    /// The scopes a client may ask for (configured), for the resource's metadata
    /// (without `offline_access`, which resources must not advertise).
    pub fn resource_scopes(&self) -> Vec<String> {
        self.inner
            .settings
            .scopes
            .keys()
            .filter(|s| !matches!(s.as_str(), "offline_access" | "openid" | "profile"))
            .cloned()
            .collect()
    }

    /// The endpoints, to merge into the gateway's router (same origin).
    pub fn router(&self) -> axum::Router {
        routes::router(self.inner.clone())
    }

    /// Checks this server's access tokens in-process (signature, `iss`, `aud`,
    /// expiry, and that their grant is not revoked).
    pub fn verifier(&self) -> Arc<dyn mcpgate_guard::Verifier> {
        Arc::new(AccessTokenVerifier::new(self.inner.clone()))
    }

    /// Purges expired rows and re-reads the signing keys every `every`.
    pub fn spawn_maintenance(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match inner
                    .store
                    .purge_expired(std::time::SystemTime::now())
                    .await
                {
                    Ok(p) => tracing::debug!(?p, "purged expired authorization server rows"),
                    Err(e) => tracing::warn!("cannot purge expired authorization server rows: {e}"),
                }
                if let Err(e) = inner.keys.reload(&inner.store, &inner.master).await {
                    tracing::warn!("cannot re-read the signing keys: {e}");
                }
            }
        })
    }
}

/// The fetcher for URLs clients and documents name: public https only, except
/// the `[authserver.cimd]` DANGER switches (`allow_private`, `allow_hosts`).
fn untrusted_fetcher(cimd: &settings::CimdSettings) -> Result<mcpgate_fetch::Fetcher, Error> {
    let mut policy = mcpgate_fetch::Policy::untrusted().allow_hosts(&cimd.allow_hosts);
    if cimd.allow_private {
        policy = policy.allow_private();
    }
    mcpgate_fetch::Fetcher::new(policy).map_err(|e| Error::Config(format!("authserver: {e}")))
}

fn normalize_path(p: &str) -> Result<String, Error> {
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    let ok = p.starts_with('/')
        && p[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        && !p.contains("/.well-known");
    if ok {
        Ok(p.to_owned())
    } else {
        Err(Error::Config(format!(
            "authserver.issuer_path: {p:?} is not allowed: write a path like \"/tenant1\" (letters, digits, - _ .)"
        )))
    }
}

/// 32 random bytes, base64url: codes, tokens, ids.
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(mcpgate_store::random::bytes::<32>())
}

/// The subject of a grant for `name` (a signed-in user's name, or a client
/// id): both were checked when they were created, so a refusal here is this
/// server's bug, answered `server_error` and logged.
pub(crate) fn grant_subject(name: &str) -> Result<mcpgate_types::Subject, OAuthError> {
    name.parse().map_err(|e| {
        tracing::error!(%name, "cannot name this subject in a grant: {e}");
        OAuthError::new(
            ErrorCode::ServerError,
            "the signed-in user cannot be named in a token",
        )
    })
}

/// Seconds since the epoch.
pub(crate) fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
