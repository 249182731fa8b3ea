//! Federation: users sign in with an external identity provider — GitHub
//! (OAuth 2.0 and its user API), Google, Entra ID v2, or any OpenID Connect
//! provider found by discovery — configured as `[[authserver.federation]]`.
//!
//! `GET /federation/{name}/start` sends the browser to the IdP with PKCE S256,
//! a single-use `state` (and a `nonce` for OIDC); `GET /federation/{name}/callback`
//! (the one fixed callback URL per provider, under the issuer) exchanges the
//! code, establishes the identity (a validated `id_token`, or GitHub's `/user`,
//! `/user/emails` and `/user/orgs`), applies the allow-lists, maps it to a
//! local user (by verified email or by the IdP's subject, creating the user
//! when configured), keeps the IdP's tokens sealed for upstreams that need
//! them, and signs the browser in.
//!
//! It must never accept an unverified email for mapping, a `state` twice, or an
//! `id_token` whose issuer, audience, expiry, nonce or signature is wrong; a
//! refusal is a page saying why, never a redirect to an unvalidated URL.

mod config;
mod idp;
pub(crate) use idp::Outbound;
mod policy;
mod tokens;

pub use config::{MapBy, ProviderConfig, ProviderKind};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgate_store::federation::{FederationLogin, NewTokens};
use serde::Deserialize;

pub(crate) use idp::Idp;

use crate::error::Error;
use crate::respond::see_other;
use crate::{Inner, pages, random_token, session};

/// How long a sign-in at the IdP may take.
const LOGIN_TTL: Duration = Duration::from_secs(600);

/// The configured providers, ready to use.
#[derive(Debug, Default)]
pub(crate) struct Federation {
    pub(crate) providers: Vec<Idp>,
    /// One lock per (user, provider): IdPs that rotate refresh tokens (GitHub
    /// does) refuse the second of two concurrent refreshes with the same
    /// token, which would otherwise read as a revocation.
    renewals: std::sync::Mutex<HashMap<(String, String), RenewalLock>>,
}

/// Held while one user's token from one provider is read and renewed.
type RenewalLock = Arc<tokio::sync::Mutex<()>>;

impl Federation {
    /// Checks every provider table and reads its client secret.
    pub(crate) fn new(
        configs: &[ProviderConfig],
        outbound: &idp::Outbound,
    ) -> Result<Federation, Error> {
        let mut providers: Vec<Idp> = Vec::new();
        for c in configs {
            let idp = Idp::new(c, outbound.clone())
                .map_err(|e| Error::Config(format!("authserver.federation {:?}: {e}", c.name)))?;
            if providers.iter().any(|p| p.cfg.name == c.name) {
                return Err(Error::Config(format!(
                    "authserver.federation: two providers are named {:?}",
                    c.name
                )));
            }
            providers.push(idp);
        }
        Ok(Federation {
            providers,
            renewals: Default::default(),
        })
    }

    /// The lock that serializes renewing `subject`'s token from provider `name`.
    fn renewal_lock(&self, subject: &str, name: &str) -> RenewalLock {
        let mut locks = self
            .renewals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks
            .entry((subject.to_owned(), name.to_owned()))
            .or_default()
            .clone()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Idp> {
        self.providers.iter().find(|p| p.cfg.name == name)
    }
}

/// Why a sign-in stops: the page the browser gets instead.
struct Refused {
    status: StatusCode,
    title: &'static str,
    why: String,
}

impl Refused {
    fn new(status: StatusCode, title: &'static str, why: impl Into<String>) -> Refused {
        Refused {
            status,
            title,
            why: why.into(),
        }
    }

    /// The store failed to `what` the sign-in (logged; the page says only that).
    fn store(what: &str, e: impl std::fmt::Display) -> Refused {
        tracing::error!("federation: {e}");
        Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in unavailable",
            format!("The server cannot {what} the sign-in; try again later."),
        )
    }

    /// The provider failed at `step` (logged with its name); `why` for the page.
    fn idp(name: &str, step: &str, title: &'static str, why: String) -> Refused {
        tracing::warn!(provider = %name, "federation: {step}");
        Refused::new(StatusCode::BAD_GATEWAY, title, why)
    }

    fn page(self, inner: &Inner) -> Response {
        pages::error_page(
            &inner.route("/assets/style.css"),
            self.status,
            self.title,
            &self.why,
        )
    }
}

/// The provider named in the path.
fn provider<'a>(inner: &'a Inner, name: &str) -> Result<&'a Idp, Refused> {
    inner.federation.get(name).ok_or_else(|| {
        Refused::new(
            StatusCode::NOT_FOUND,
            "Unknown sign-in",
            "No identity provider of that name is configured.",
        )
    })
}

/// Query of `/federation/{name}/start`.
#[derive(Debug, Deserialize)]
pub(crate) struct StartQuery {
    next: Option<String>,
}

/// `GET /federation/{name}/start`: to the IdP.
pub(crate) async fn start(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    start_at(&inner, &name, q)
        .await
        .unwrap_or_else(|r| r.page(&inner))
}

async fn start_at(inner: &Inner, name: &str, q: StartQuery) -> Result<Response, Refused> {
    let idp = provider(inner, name)?;
    let next = crate::pages::login::safe_next(inner, q.next.as_deref());
    let state = random_token();
    let verifier = random_token() + &random_token();
    let nonce = random_token();
    let redirect_uri = callback_url(inner, name);
    let url = idp
        .authorization_url(&redirect_uri, &state, &verifier, &nonce)
        .await
        .map_err(|e| {
            let why = format!("{} cannot be reached right now: {e}", idp.display_name());
            Refused::idp(name, &e.to_string(), "Sign-in unavailable", why)
        })?;
    let login = FederationLogin::new(name, &verifier, &nonce, &next);
    inner
        .store
        .begin_federation_login(&inner.master, &state, &login, LOGIN_TTL)
        .await
        .map_err(|e| Refused::store("record", e))?;
    Ok(see_other(&url))
}

/// Query of the callback.
#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The fixed callback URL of provider `name`.
pub(crate) fn callback_url(inner: &Inner, name: &str) -> String {
    inner.url(&format!("/federation/{name}/callback"))
}

/// `GET /federation/{name}/callback`: back from the IdP.
pub(crate) async fn callback(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    callback_at(&inner, &name, q, &headers)
        .await
        .unwrap_or_else(|r| r.page(&inner))
}

async fn callback_at(
    inner: &Inner,
    name: &str,
    q: CallbackQuery,
    headers: &HeaderMap,
) -> Result<Response, Refused> {
    let idp = provider(inner, name)?;
    let login = match q.state.as_deref() {
        Some(s) => inner.store.take_federation_login(&inner.master, s).await,
        None => Ok(None),
    };
    let login = match login.map_err(|e| Refused::store("read", e))? {
        Some(l) if l.provider == name => l,
        _ => {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in link is unknown, used or expired. Start again from the sign-in page.",
            ));
        }
    };
    if let Some(e) = q.error {
        let why = q.error_description.unwrap_or_default();
        return Err(Refused::new(
            StatusCode::FORBIDDEN,
            "Sign-in cancelled",
            format!("{} answered {e}. {why}", idp.display_name()),
        ));
    }
    let code = q.code.ok_or_else(|| {
        Refused::new(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The identity provider sent no authorization code.",
        )
    })?;
    let redirect_uri = callback_url(inner, name);
    let tokens = idp
        .exchange(&code, &redirect_uri, &login.verifier)
        .await
        .map_err(|e| {
            let why = format!("{} refused the sign-in: {e}", idp.display_name());
            Refused::idp(name, &format!("code exchange: {e}"), "Sign-in failed", why)
        })?;
    let identity = idp.identity(&tokens, &login.nonce).await.map_err(|e| {
        let shown = idp.display_name();
        let why = format!("The identity from {shown} cannot be accepted: {e}");
        Refused::idp(name, &format!("identity: {e}"), "Sign-in failed", why)
    })?;
    if let Err(why) = policy::allowed(&idp.cfg, &identity) {
        tracing::info!(provider = %name, login = ?identity.login, "federation: refused by the allow-list");
        return Err(Refused::new(StatusCode::FORBIDDEN, "Access denied", why));
    }
    let subject = policy::local_user(inner, &idp.cfg, &identity)
        .await
        .map_err(|why| Refused::new(StatusCode::FORBIDDEN, "No account", why))?;
    // The IdP's words: one that is no RFC 6749 scope-token is not kept.
    let granted = mcpgate_types::ScopeSet::from_words_lossy(
        tokens.scope.as_deref().unwrap_or_default().split(','),
    );
    let new = NewTokens {
        access: &tokens.access_token,
        refresh: tokens.refresh_token.as_deref(),
        scopes: &granted,
        expires_at: tokens.expires_at(),
        keep_refresh: false,
    };
    inner
        .store
        .put_federated_tokens(&inner.master, &subject, name, new)
        .await
        .map_err(|e| Refused::store("store", e))?;
    // A fresh session id on every sign-in (no fixation); the old one ends.
    let _ = session::end(inner, headers).await;
    Ok(match session::start(inner, Some(subject.clone())).await {
        Ok((_, cookie)) => {
            tracing::info!(provider = %name, user = %subject, "federated sign-in");
            let mut r = see_other(&login.return_to);
            r.headers_mut().append(header::SET_COOKIE, cookie);
            r
        }
        Err(e) => e.into_response(),
    })
}

/// The providers whose tokens `subject` must renew by signing in again, as
/// the start URL of the first one (for `/authorize`).
pub(crate) async fn reconsent_url(inner: &Inner, subject: &str, next: &str) -> Option<String> {
    let revoked = inner.store.revoked_federations_of(subject).await.ok()?;
    let name = revoked
        .into_iter()
        .find(|n| inner.federation.get(n).is_some())?;
    Some(format!(
        "{}?{}",
        inner.route(&format!("/federation/{name}/start")),
        form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish()
    ))
}

/// An OpenID Connect `id_token` for the user of `grant` (so that another
/// server, e.g. a second mcpgate, can use this one as its IdP).
pub(crate) async fn id_token(
    inner: &Inner,
    grant: &mcpgate_store::oauth::GrantRow,
    nonce: Option<&str>,
) -> Result<String, crate::OAuthError> {
    let now = crate::unix(std::time::SystemTime::now());
    let mut claims = serde_json::json!({
        "iss": inner.issuer,
        "sub": grant.subject,
        "aud": grant.client_id,
        "exp": now + inner.settings.access_token_ttl.as_secs().max(1),
        "iat": now,
        "auth_time": crate::unix(grant.created_at),
        "preferred_username": grant.subject,
    });
    if let Some(n) = nonce {
        claims["nonce"] = n.into();
    }
    if let Some(email) = user_email(inner, grant.subject.as_str()).await {
        claims["email"] = email.into();
        claims["email_verified"] = true.into();
    }
    inner.keys.sign("JWT", &claims).map_err(|e| {
        tracing::error!("cannot sign an id_token: {e}");
        crate::OAuthError::new(crate::ErrorCode::ServerError, "cannot sign the id_token")
    })
}

/// The email recorded for local user `subject` (set when a federated sign-in
/// created the user, or by an operator).
pub(crate) async fn user_email(inner: &Inner, subject: &str) -> Option<String> {
    inner.store.user_email(subject).await.ok().flatten()
}

#[cfg(test)]
mod tests;
