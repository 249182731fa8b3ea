//! Outbound credentials: what the gateway presents to an upstream on its own
//! behalf (or on one user's behalf), configured per upstream in
//! `[[upstream.credentials]]`.
//!
//! HTTP upstreams receive each credential as a header on every request (the
//! initialize, every POST, the GET stream, the DELETE); stdio upstreams as an
//! environment variable of their child, set when the child starts (a shared
//! child at its start, a per-session child at the start of that session's child).
//!
//! Kinds: `static` and `bearer` secrets and `basic` users from the
//! configuration, the environment or a file (read at start; a missing one makes
//! `/readyz` answer 503 naming it, and calls to that upstream fail with a JSON-RPC
//! error naming it); `client_credentials` and `login` tokens, renewed before they
//! expire and after an upstream 401, one renewal at a time; and per user,
//! `token_exchange` (RFC 8693) with the caller's gateway identity token as the
//! subject token.
//!
//! # Per-user credentials and the extension point
//!
//! Resolution always takes the request's [`Caller`]: shared kinds ignore it,
//! per-user kinds key on its subject, so a per-user credential only ever flows
//! into that user's requests (each session and each stateless subject has its
//! own upstream link) or that user's per-session child. A stdio child shared by
//! every user cannot carry one, so such configurations are refused.
//!
//! A per-user secret kept elsewhere — the authserver's vault, a federated IdP
//! token — plugs in by implementing [`UserSecretSource`] and adding a [`Source`]
//! variant that asks it with `(subject, upstream)`; delivery, readiness, redaction
//! and the 401 retry need nothing new.
//!
//! Values never reach a log, an error message or a `Debug` output.

mod build;
mod config;
mod oauth;
mod secret;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::{HeaderMap, HeaderName};
use serde_json::{Value, json};

pub(crate) use self::config::one_or_many;
pub use self::config::{
    BodyFormat, CredentialConfig, FederatedConfig, LoginConfig, OAuthClientConfig, SubjectToken,
    TokenAuthMethod, TokenExchangeConfig, VaultConfig,
};
use self::oauth::{ClientCredentials, Exchange, Login, TokenExchange};
use self::secret::{Secret, SecretRef, Template};
use self::token::TokenCell;
use crate::auth::IdentityToken;
use crate::config::UpstreamConfig;

/// A secret one user keeps for one upstream, as a [`UserSecretSource`] returns it.
/// `Debug` never shows it.
#[derive(Clone)]
pub struct UserSecret(Secret);

impl UserSecret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        UserSecret(Secret::new(value))
    }
}

impl UserSecret {
    /// The value, for a source comparing what was sent with what it holds.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserSecret(<redacted>)")
    }
}

/// Where per-user secrets come from (the vault implements it): the secret
/// `subject` stored for `upstream`, `Ok(None)` when there is none.
pub trait UserSecretSource: Send + Sync + std::fmt::Debug {
    /// Looks the secret up; an `Err` is shown to the caller and the operator, so it
    /// must name what failed, never a value.
    fn secret_for<'a>(
        &'a self,
        subject: &'a str,
        upstream: &'a str,
    ) -> mcpgate_guard::BoxFuture<'a, Result<Option<UserSecret>, String>>;

    /// The upstream refused `sent` (401) on `subject`'s request: renew it if
    /// the source can (a federated token refreshed, or found revoked and
    /// marked). Returns whether sending the request again is worth it; by
    /// default nothing is renewed.
    fn rejected<'a>(
        &'a self,
        subject: &'a str,
        upstream: &'a str,
        sent: &'a UserSecret,
    ) -> mcpgate_guard::BoxFuture<'a, bool> {
        let _ = (subject, upstream, sent);
        Box::pin(async { false })
    }
}

/// The per-user secret stores the gateway asks (wired by the binary).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UserSources {
    /// The vault, for `kind = "vault"`; without it those credentials fail
    /// with a message saying to enable the authorization server.
    pub vault: Option<Arc<dyn UserSecretSource>>,
    /// Per identity provider name, its users' tokens, for `kind = "federated"`.
    pub federated: HashMap<String, Arc<dyn UserSecretSource>>,
}

impl UserSources {
    /// Sources with `vault` as the vault.
    pub fn with_vault(vault: Arc<dyn UserSecretSource>) -> Self {
        UserSources {
            vault: Some(vault),
            federated: HashMap::new(),
        }
    }
}

/// Who a credential is resolved for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Caller {
    /// The signed-in subject; `None` for anonymous callers and for the gateway
    /// itself (a shared child).
    pub(crate) subject: Option<String>,
    /// Signs identity tokens about the caller (token exchange's subject token).
    pub(crate) identity: Option<Arc<IdentityToken>>,
}

impl Caller {
    /// The gateway acting for nobody in particular (shared children, readiness).
    pub(crate) fn gateway() -> Self {
        Caller::default()
    }

    fn subject_token(&self, audience: &str, upstream: &str) -> Result<Secret, String> {
        let id = self.identity.as_ref().ok_or_else(|| {
            format!("the token exchange for upstream {upstream} needs a signed-in caller and the gateway's identity token (auth.identity_token)")
        })?;
        id.sign_for(audience).map(Secret::new)
    }
}

/// Why no credential could be presented; the request fails with this message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct CredentialError(pub(crate) String);

/// Where one credential's value comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// `static`, `bearer`: one secret.
    Fixed(SecretRef),
    /// `basic`: user name and password.
    Basic(SecretRef, SecretRef),
    /// `client_credentials`.
    ClientCredentials(ClientCredentials, TokenCell),
    /// `login`.
    Login(Login, TokenCell),
    /// `token_exchange`: one token per subject.
    TokenExchange(TokenExchange, Mutex<HashMap<String, Arc<TokenCell>>>),
    /// A per-user secret from a [`UserSecretSource`] (the vault).
    User(Arc<dyn UserSecretSource>),
}

/// Per-user caches beyond this many subjects drop their expired tokens.
const PRUNE_AT: usize = 1024;

/// One configured credential and where it is delivered.
#[derive(Debug)]
pub(crate) struct Item {
    kind: &'static str,
    label: String,
    header: Option<(HeaderName, Template)>,
    env: Option<String>,
    source: Source,
    last_error: Mutex<Option<String>>,
    /// A fixed secret once read.
    loaded: std::sync::OnceLock<Secret>,
}

/// The secret sent for one credential on one request, to tell a 401 about.
#[derive(Debug, Clone)]
pub(crate) struct Used(Vec<(usize, Secret)>);

/// Every credential of one upstream.
#[derive(Debug)]
pub(crate) struct Credentials {
    upstream: Arc<str>,
    items: Vec<Item>,
}

impl Credentials {
    /// Builds the upstream's credentials, or every structural problem (one per line).
    pub(crate) fn new(cfg: &UpstreamConfig) -> Result<Self, String> {
        Credentials::with_sources(cfg, &UserSources::default())
    }

    /// [`Credentials::new`] with per-user secrets from `sources`.
    pub(crate) fn with_sources(
        cfg: &UpstreamConfig,
        sources: &UserSources,
    ) -> Result<Self, String> {
        let mut problems = Vec::new();
        let mut items = Vec::new();
        // Token endpoints are the operator's URLs: private addresses as
        // `[server] outbound_private` says; answers capped at 64 KiB.
        let http = match mcpgate_fetch::Fetcher::new(
            mcpgate_fetch::Policy::operator(mcpgate_fetch::Private::configured())
                .max_bytes(oauth::MAX_ANSWER_BYTES),
        ) {
            Ok(f) => f,
            Err(e) => return Err(format!("upstream {}: {e}", cfg.name)),
        };
        for (i, c) in cfg.credentials.iter().enumerate() {
            match build::item(cfg, c, &http, sources) {
                Ok(it) => items.push(it),
                Err(e) => problems.push(format!(
                    "upstream {}: credentials[{i}] ({}): {e}",
                    cfg.name,
                    c.kind()
                )),
            }
        }
        if problems.is_empty() {
            Ok(Credentials {
                upstream: cfg.name.as_str().into(),
                items,
            })
        } else {
            Err(problems.join("\n"))
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether a credential is renewed when the upstream answers 401.
    pub(crate) fn renewable(&self) -> bool {
        self.items.iter().any(|i| {
            matches!(
                i.source,
                Source::ClientCredentials(..)
                    | Source::Login(..)
                    | Source::TokenExchange(..)
                    | Source::User(..)
            )
        })
    }

    /// The headers for one request to an HTTP upstream, and what was sent.
    pub(crate) async fn headers(
        &self,
        caller: &Caller,
    ) -> Result<(HeaderMap, Used), CredentialError> {
        let mut headers = HeaderMap::new();
        let mut used = Vec::new();
        for (n, it) in self.items.iter().enumerate() {
            let Some((name, template)) = &it.header else {
                continue;
            };
            let secret = self.value(it, caller).await?;
            let v = template.render(&secret).map_err(|e| {
                CredentialError(format!("upstream {}: {}: {e}", self.upstream, it.label))
            })?;
            headers.append(name.clone(), v);
            used.push((n, secret));
        }
        Ok((headers, Used(used)))
    }

    /// The environment of a stdio child started for `caller`.
    pub(crate) async fn env(
        &self,
        caller: &Caller,
    ) -> Result<Vec<(String, String)>, CredentialError> {
        let mut env = Vec::new();
        for it in &self.items {
            if let Some(var) = &it.env {
                let secret = self.value(it, caller).await?;
                env.push((var.clone(), secret.expose().to_owned()));
            }
        }
        Ok(env)
    }

    /// The upstream answered 401 to a request that carried `used`: renew those
    /// renewable credentials (once, whatever the number of requests that saw
    /// the 401). Returns whether sending the request again is worth it.
    pub(crate) async fn rejected(&self, caller: &Caller, used: &Used) -> bool {
        let mut retry = false;
        for (n, sent) in &used.0 {
            let Some(it) = self.items.get(*n) else {
                continue;
            };
            let renewed = match &it.source {
                Source::ClientCredentials(how, cell) => cell.rejected(how, sent).await,
                Source::Login(how, cell) => cell.rejected(how, sent).await,
                Source::TokenExchange(how, cells) => match self.cell_of(cells, caller) {
                    Some(cell) => {
                        let ex = Exchange { cfg: how, caller };
                        cell.rejected(&ex, sent).await
                    }
                    None => false,
                },
                Source::User(src) => match &caller.subject {
                    Some(subject) => {
                        src.rejected(subject, &self.upstream, &UserSecret(sent.clone()))
                            .await
                    }
                    None => false,
                },
                _ => false,
            };
            if renewed {
                tracing::info!(upstream = %self.upstream, credential = %it.label, "the upstream refused its credential (401); renewed it, retrying once");
            }
            retry |= renewed;
        }
        retry
    }

    async fn value(&self, it: &Item, caller: &Caller) -> Result<Secret, CredentialError> {
        let up = &*self.upstream;
        if let Some(s) = it.loaded.get() {
            return Ok(s.clone());
        }
        let result = match &it.source {
            Source::Fixed(r) => r.load(up),
            Source::Basic(user, password) => user.load(up).and_then(|u| {
                password.load(up).map(|p| {
                    let pair = format!("{}:{}", u.expose(), p.expose());
                    Secret::new(base64::engine::general_purpose::STANDARD.encode(pair))
                })
            }),
            Source::ClientCredentials(how, cell) => cell.current(how).await,
            Source::Login(how, cell) => cell.current(how).await,
            Source::TokenExchange(how, cells) => match self.cell_of(cells, caller) {
                Some(cell) => cell.current(&Exchange { cfg: how, caller }).await,
                None => Err(format!(
                    "upstream {up} needs a signed-in caller: its credential is exchanged per user"
                )),
            },
            Source::User(src) => match &caller.subject {
                Some(subject) => match src.secret_for(subject, up).await {
                    Ok(Some(s)) => Ok(s.0),
                    Ok(None) => Err(format!(
                        "upstream {up} needs your own credential, and you have not stored one"
                    )),
                    Err(e) => Err(e),
                },
                None => Err(format!(
                    "upstream {up} needs a signed-in caller: its credential is per user"
                )),
            },
        };
        let mut last = it.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(s) => {
                *last = None;
                // Fixed secrets are read once found (not per request); a missing
                // one is looked for again on every use, so a late file is picked up.
                if matches!(it.source, Source::Fixed(_) | Source::Basic(..)) {
                    let _ = it.loaded.set(s.clone());
                }
                Ok(s)
            }
            Err(e) => {
                tracing::warn!(upstream = %up, credential = %it.label, "{e}");
                *last = Some(e.clone());
                Err(CredentialError(e))
            }
        }
    }

    /// The caller's own token cell; `None` for callers without a subject.
    fn cell_of(
        &self,
        cells: &Mutex<HashMap<String, Arc<TokenCell>>>,
        caller: &Caller,
    ) -> Option<Arc<TokenCell>> {
        let subject = caller.subject.as_ref()?;
        let mut map = cells.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_AT && !map.contains_key(subject) {
            map.retain(|_, c| !c.is_stale());
        }
        Some(map.entry(subject.clone()).or_default().clone())
    }

    /// Each secret that cannot be read now, as the message an operator acts on.
    pub(crate) fn missing(&self) -> Vec<String> {
        self.items
            .iter()
            .flat_map(|it| it.missing(&self.upstream))
            .collect()
    }

    /// The credentials as `/readyz` shows them: configured or missing, never a value.
    pub(crate) fn report(&self) -> Vec<Value> {
        self.items
            .iter()
            .map(|it| {
                let missing = it.missing(&self.upstream);
                let mut doc = json!({
                    "kind": it.kind,
                    "name": it.label,
                    "status": if missing.is_empty() { "configured" } else { "missing" },
                });
                if let Some((h, _)) = &it.header {
                    doc["header"] = h.as_str().into();
                }
                if let Some(e) = &it.env {
                    doc["env"] = e.as_str().into();
                }
                if !missing.is_empty() {
                    doc["message"] = missing.join("; ").into();
                }
                if let Some(e) = it
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                {
                    doc["last_error"] = e.as_str().into();
                }
                doc
            })
            .collect()
    }
}

impl Item {
    fn missing(&self, upstream: &str) -> Vec<String> {
        if self.loaded.get().is_some() {
            return Vec::new();
        }
        missing_of(&self.source, upstream)
    }
}

fn missing_of(source: &Source, upstream: &str) -> Vec<String> {
    let refs: Vec<&SecretRef> = match source {
        Source::Fixed(r) => vec![r],
        Source::Basic(u, p) => vec![u, p],
        Source::ClientCredentials(c, _) => vec![&c.client.id, &c.client.secret],
        Source::Login(l, _) => vec![&l.username, &l.password],
        Source::TokenExchange(t, _) => t.client.iter().flat_map(|c| [&c.id, &c.secret]).collect(),
        Source::User(_) => Vec::new(),
    };
    refs.into_iter()
        .filter_map(|r| r.load(upstream).err())
        .collect()
}

/// Structural problems of an upstream's `credentials`, one per line item.
pub fn credential_problems(cfg: &UpstreamConfig) -> Vec<String> {
    match Credentials::new(cfg) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines().map(str::to_owned).collect(),
    }
}

/// Each secret of an upstream's credentials that cannot be read now, e.g.
/// "Missing credential WEATHER_API_KEY for upstream weather: set the environment
/// variable WEATHER_API_KEY". Empty when all are present (or the configuration
/// has structural problems, which [`credential_problems`] reports).
pub fn missing_credentials(cfg: &UpstreamConfig) -> Vec<String> {
    Credentials::new(cfg)
        .map(|c| c.missing())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
