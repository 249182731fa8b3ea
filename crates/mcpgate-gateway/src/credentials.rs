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
//! Resolution always takes the request's [`OnBehalfOf`]: shared kinds ignore it,
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
mod item;
mod oauth;
mod secret;
mod token;
mod user;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::HeaderMap;
use serde_json::{Value, json};

pub(crate) use self::config::one_or_many;
pub use self::config::{
    BodyFormat, CredentialConfig, FederatedConfig, FixedConfig, LoginConfig, OAuthClientConfig,
    SubjectToken, TokenAuthMethod, TokenExchangeConfig, VaultConfig,
};
pub(crate) use self::item::{CredentialError, Used};
use self::item::{Item, Source};
use self::oauth::Exchange;
use self::secret::Secret;
use self::token::TokenCell;
pub use self::user::{UserSecret, UserSecretError, UserSecretSource, UserSources};
use crate::config::UpstreamConfig;
use crate::error::GatewayError;
use crate::identity::OnBehalfOf;

/// Per-user caches beyond this many subjects drop their expired tokens.
const PRUNE_AT: usize = 1024;

/// Every credential of one upstream.
#[derive(Debug)]
pub(crate) struct Credentials {
    upstream: Arc<str>,
    items: Vec<Item>,
}

impl Credentials {
    /// Builds the upstream's credentials, or every structural problem (one per line).
    pub(crate) fn new(cfg: &UpstreamConfig) -> Result<Self, GatewayError> {
        Credentials::with_sources(cfg, &UserSources::default())
    }

    /// [`Credentials::new`] with per-user secrets from `sources`.
    pub(crate) fn with_sources(
        cfg: &UpstreamConfig,
        sources: &UserSources,
    ) -> Result<Self, GatewayError> {
        let mut problems = Vec::new();
        let mut items = Vec::new();
        // Token endpoints are the operator's URLs: private addresses as
        // `[server] outbound_private` says; answers capped at 64 KiB.
        let http = match mcpgate_fetch::Fetcher::new(
            mcpgate_fetch::Policy::operator(mcpgate_fetch::Private::configured())
                .max_bytes(oauth::MAX_ANSWER_BYTES),
        ) {
            Ok(f) => f,
            Err(e) => {
                return Err(GatewayError::Config {
                    upstream: cfg.name.clone(),
                    problems: vec![format!("upstream {}: {e}", cfg.name)],
                });
            }
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
            Err(GatewayError::Config {
                upstream: cfg.name.clone(),
                problems,
            })
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
        caller: &OnBehalfOf,
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
        caller: &OnBehalfOf,
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
    pub(crate) async fn rejected(&self, caller: &OnBehalfOf, used: &Used) -> bool {
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

    async fn value(&self, it: &Item, caller: &OnBehalfOf) -> Result<Secret, CredentialError> {
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
                    Err(e) => Err(e.to_string()),
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
        caller: &OnBehalfOf,
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

/// Structural problems of an upstream's `credentials`, one per line item.
pub fn credential_problems(cfg: &UpstreamConfig) -> Vec<String> {
    match Credentials::new(cfg) {
        Ok(_) => Vec::new(),
        Err(GatewayError::Config { problems, .. }) => problems,
        Err(e) => vec![e.to_string()],
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
