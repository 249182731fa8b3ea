//! `/authorize` (code flow only) and the consent form it leads to.
//!
//! Errors about the client or the redirect URI are shown on a page and never
//! redirected (an open redirect otherwise); every other error goes back to the
//! validated redirect URI with `state` and `iss` (RFC 9207).

use std::collections::BTreeSet;

use mcpgate_types::{Scope, ScopeSet};
use std::time::SystemTime;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use mcpgate_store::UserRecord;
use mcpgate_store::oauth::{ClientKind, CodeRow, GrantRow, digest_hex};
use std::sync::Arc;

use crate::clients::{self, Client};
use crate::error::{ErrorCode, OAuthError};
use crate::pages::{self, ConsentPage, OobPage};
use crate::params::Params;
use crate::redirect;
use crate::resource_servers::ResourceServer;
use crate::respond::see_other;
use crate::settings::UnknownScopes;
use crate::{Inner, pkce, random_token, session};
use mcpgate_types::{RedirectUri, ResourceUri};

/// A validated authorization request.
#[derive(Debug, Clone)]
pub(crate) struct AuthRequest {
    pub(crate) client: Client,
    pub(crate) redirect_uri: RedirectUri,
    pub(crate) scopes: ScopeSet,
    pub(crate) state: Option<String>,
    pub(crate) challenge: String,
    pub(crate) resource: ResourceUri,
    /// A registered resource server's name, for the consent page.
    pub(crate) resource_name: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) prompt: BTreeSet<String>,
    /// The request's parameters, to carry through login and consent.
    pub(crate) params: Params,
}

/// Why a request failed: shown on a page, or sent back to the client.
#[derive(Debug)]
pub(crate) enum Failure {
    Page(StatusCode, String),
    Redirect {
        redirect_uri: RedirectUri,
        state: Option<String>,
        error: OAuthError,
    },
}

impl Failure {
    pub(crate) fn respond(self, inner: &Inner) -> Response {
        match self {
            Failure::Page(status, msg) => pages::error_page(
                &inner.route("/assets/style.css"),
                status,
                "This sign-in request cannot continue",
                &msg,
            ),
            Failure::Redirect {
                redirect_uri,
                state,
                error,
            } => {
                if redirect_uri.is_out_of_band() {
                    return pages::error_page(
                        &inner.route("/assets/style.css"),
                        StatusCode::BAD_REQUEST,
                        "Sign-in was not completed",
                        &format!("{}: {}", error.code, error.description),
                    );
                }
                let mut p = vec![
                    ("error", error.code.as_str()),
                    ("error_description", error.description.as_str()),
                ];
                if let Some(s) = &state {
                    p.push(("state", s));
                }
                p.push(("iss", inner.issuer.as_str()));
                see_other(&redirect::with_params(redirect_uri.as_str(), &p))
            }
        }
    }
}

/// Validates the parameters of an authorization request.
pub(crate) async fn validate(inner: &Inner, params: Params) -> Result<AuthRequest, Failure> {
    let page = |m: String| Failure::Page(StatusCode::BAD_REQUEST, m);
    if let Some(name) = params.control_character() {
        tracing::warn!(parameter = %name, "authorization request refused: a parameter contains a control character");
        return Err(page(format!(
            "The request's {name} parameter contains a control character (such as a line break), which no sign-in request has."
        )));
    }
    let client_id = params
        .get("client_id")
        .ok_or_else(|| page("The request names no application (client_id is missing).".into()))?;
    let client = clients::find(inner, client_id)
        .await
        .map_err(|e| {
            if e.code == ErrorCode::ServerError {
                Failure::Page(StatusCode::SERVICE_UNAVAILABLE, e.description.clone())
            } else {
                page(format!(
                    "The application could not be identified: {}",
                    e.description
                ))
            }
        })?
        .ok_or_else(|| {
            page(format!(
                "Unknown application {client_id:?}: it must register first."
            ))
        })?;
    let redirect_uri = match params.get("redirect_uri") {
        Some(r) => {
            // What matches a registered URI parses as one (the same text, or a
            // plain loopback URI on another port); it is parsed to carry it typed.
            let parsed = r.parse::<RedirectUri>().ok();
            let Some(parsed) =
                parsed.filter(|_| client.redirect_uris.iter().any(|reg| reg.matches(r)))
            else {
                tracing::info!(client = %client.id, requested = %r.escape_debug(), "authorization redirect_uri refused: not registered for this client (loopback URIs match exactly except for the port)");
                return Err(page(format!(
                    "The redirect address {r:?} is not registered for this application, so you are not sent there."
                )));
            };
            parsed
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(page(
                "The request has no redirect_uri and the application registered several.".into(),
            ));
        }
    };
    if redirect_uri.is_out_of_band() && client.kind != ClientKind::Static {
        tracing::info!(client = %client.id, "authorization redirect_uri refused: out-of-band for a client not registered by an administrator");
        return Err(page(
            "Out-of-band sign-in (a code shown on this page) is only for applications an administrator registered.".into(),
        ));
    }
    let state = params.get("state").map(str::to_owned);
    let fail = |error: OAuthError| Failure::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
    };
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(fail(OAuthError::new(
            ErrorCode::InvalidRequest,
            "request objects are not supported",
        )));
    }
    match params.get("response_type") {
        Some("code") => {}
        None => {
            return Err(fail(OAuthError::request(
                "response_type is required (use \"code\")",
            )));
        }
        Some(other) => {
            return Err(fail(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other:?} is not supported; use \"code\""),
            )));
        }
    }
    if !client.allows_grant("authorization_code") {
        return Err(fail(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the authorization_code grant",
        )));
    }
    let challenge = pkce::check_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )
    .map_err(|m| fail(OAuthError::request(m)))?;
    let (resource, rs) = resource(inner, params.get("resource"))
        .await
        .map_err(fail)?;
    let scopes =
        requested_scopes(inner, &client, params.get("scope"), rs.as_ref()).map_err(fail)?;
    let prompt: BTreeSet<String> = params
        .get("prompt")
        .map(|p| p.split_ascii_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if prompt.contains("none") && prompt.len() > 1 {
        return Err(fail(OAuthError::request(
            "prompt=none cannot be combined with other values",
        )));
    }
    Ok(AuthRequest {
        client,
        redirect_uri,
        scopes,
        state,
        challenge,
        resource,
        resource_name: rs.map(|r| r.name),
        nonce: params.get("nonce").map(str::to_owned),
        prompt,
        params,
    })
}

/// The scopes asked for: unknown ones dropped or refused per configuration;
/// none asked = the client's registered scope, else every configured one.
/// For a registered resource server `rs`, its scopes are the ones known.
pub(crate) fn requested_scopes(
    inner: &Inner,
    client: &Client,
    scope: Option<&str>,
    rs: Option<&ResourceServer>,
) -> Result<ScopeSet, OAuthError> {
    let configured: Vec<&str>;
    // Words, not yet scopes: a word that is no RFC 6749 scope-token is simply
    // unknown below, dropped or refused like any other unknown scope.
    let asked: Vec<&str> = match scope {
        Some(s) => s.split_ascii_whitespace().collect(),
        None => match (&client.scope, rs) {
            (Some(s), _) => s.split_ascii_whitespace().collect(),
            (None, Some(rs)) => rs.scopes.iter().map(|s| s.as_str()).collect(),
            (None, None) => {
                configured = inner
                    .settings
                    .scopes
                    .keys()
                    .map(String::as_str)
                    .filter(|s| !matches!(*s, "openid" | "profile" | "offline_access"))
                    .collect();
                configured.clone()
            }
        },
    };
    let mut out = ScopeSet::new();
    for s in asked {
        // A dynamic or CIMD client's `scope` is what it asked for when it registered, not a
        // ceiling: anyone may register (or host a document) with any scope, and MCP clients
        // register with their first challenge's scope, then step up to more after a 403
        // insufficient_scope. The user's consent decides; only a pre-registered client is
        // held to its list.
        let allowed_for_client = client.kind != ClientKind::Static
            || client
                .scope
                .as_ref()
                .is_none_or(|cs| cs.split_ascii_whitespace().any(|c| c == s));
        let known = match rs {
            Some(rs) => {
                rs.scopes.contains(s) || matches!(s, "openid" | "profile" | "offline_access")
            }
            None => inner.known_scope(s),
        };
        match s.parse::<Scope>() {
            Ok(scope) if known && allowed_for_client => {
                out.insert(scope);
            }
            _ if inner.settings.unknown_scopes == UnknownScopes::Reject => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("scope {s:?} is not offered to this client"),
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The audience: the `resource` asked for (one of the gateway's endpoints or
/// a registered resource server, which comes along), else the default.
pub(crate) async fn resource(
    inner: &Inner,
    asked: Option<&str>,
) -> Result<(ResourceUri, Option<ResourceServer>), OAuthError> {
    let Some(r) = asked else {
        return Ok((inner.default_resource.clone(), None));
    };
    let u = url::Url::parse(r).map_err(|_| {
        OAuthError::new(
            ErrorCode::InvalidTarget,
            format!("resource {r:?} is not an absolute URI"),
        )
    })?;
    if u.fragment().is_some() {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource must not have a fragment",
        ));
    }
    // Not http(s): neither one of this server's resources nor a registered one.
    if let Ok(c) = ResourceUri::from_url(&u) {
        if let Some(own) = inner.resources.iter().find(|known| **known == c) {
            return Ok((own.clone(), None));
        }
        if let Some(rs) = crate::resource_servers::find(inner, c.as_str()).await? {
            return Ok((rs.resource.clone(), Some(rs)));
        }
    }
    tracing::info!(resource = %r, "refused a token request for a resource that is not registered");
    let known: Vec<&str> = inner.resources.iter().map(ResourceUri::as_str).collect();
    Err(OAuthError::new(
        ErrorCode::InvalidTarget,
        format!(
            "this server does not issue tokens for {r:?}; use one of: {} (or register it: mcpgate resources add)",
            known.join(", ")
        ),
    ))
}

/// The scopes of `asked` that `user` holds (`*` holds all; OpenID scopes are free).
pub(crate) fn user_scopes(user: &UserRecord, asked: &ScopeSet) -> ScopeSet {
    asked
        .iter()
        .filter(|s| {
            user.scopes.contains("*")
                || user.scopes.contains(s.as_str())
                || matches!(s.as_str(), "openid" | "profile" | "offline_access")
        })
        .cloned()
        .collect()
}

/// `GET /authorize`.
pub(crate) async fn get(
    State(inner): State<Arc<Inner>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match Params::parse(q.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => return Failure::Page(StatusCode::BAD_REQUEST, e.description).respond(&inner),
    };
    let req = match validate(&inner, params).await {
        Ok(r) => r,
        Err(f) => return f.respond(&inner),
    };
    let session = match session::current(&inner, &headers).await {
        Ok(s) => s.filter(|s| s.subject.is_some()),
        Err(e) => {
            return Failure::Page(StatusCode::SERVICE_UNAVAILABLE, e.description).respond(&inner);
        }
    };
    let fail = |error| Failure::Redirect {
        redirect_uri: req.redirect_uri.clone(),
        state: req.state.clone(),
        error,
    };
    let Some(session) = session.filter(|_| !req.prompt.contains("login")) else {
        if req.prompt.contains("none") {
            return fail(OAuthError::new(
                ErrorCode::LoginRequired,
                "nobody is signed in",
            ))
            .respond(&inner);
        }
        // Back here after signing in, without prompt=login (else it would loop).
        let mut back = req.params.without(&["prompt"]);
        let rest: Vec<&str> = req
            .prompt
            .iter()
            .map(String::as_str)
            .filter(|p| *p != "login")
            .collect();
        if !rest.is_empty() {
            back.pairs.push(("prompt".into(), rest.join(" ")));
        }
        let next = format!("{}?{}", inner.route("/authorize"), back.to_query());
        let login = format!(
            "{}?{}",
            inner.route("/login"),
            form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &next)
                .finish()
        );
        let mut r = see_other(&login);
        if req.prompt.contains("login") {
            // prompt=login: the current session must not satisfy the next step.
            if let Ok(c) = session::end(&inner, &headers).await {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
        }
        return r;
    };
    let subject = session.subject.as_deref().unwrap_or_default().to_owned();
    // The IdP revoked the tokens an upstream needs: through the IdP again first.
    let here = format!("{}?{}", inner.route("/authorize"), req.params.to_query());
    if let Some(url) = crate::federation::reconsent_url(&inner, &subject, &here).await {
        return see_other(&url);
    }
    let user = match inner.store.find_user(&subject).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Failure::Page(
                StatusCode::FORBIDDEN,
                "Your user no longer exists; sign in again.".into(),
            )
            .respond(&inner);
        }
        Err(e) => {
            return Failure::Page(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).respond(&inner);
        }
    };
    let scopes = user_scopes(&user, &req.scopes);
    let vault = crate::vault::consent_field(&inner, &subject, &req.resource, None).await;
    if !req.prompt.contains("consent") && vault.is_none() {
        let remembered = inner
            .store
            .find_consent(&subject, &req.client.id)
            .await
            .ok()
            .flatten();
        if remembered.is_some_and(|r| scopes.is_subset(&r)) {
            return issue_code(&inner, &req, &subject, scopes).await;
        }
    }
    if req.prompt.contains("none") {
        return fail(OAuthError::new(
            ErrorCode::ConsentRequired,
            "the user has not approved this application yet",
        ))
        .respond(&inner);
    }
    consent_page(&inner, &req, &session.csrf, &subject, &scopes, vault).await
}

/// The form's own fields: the user's choices, never part of the request.
const FORM_FIELDS: [&str; 5] = ["csrf", "request", "decision", "remember", "vault_secret"];

/// How long a consent page may stay open before its request record expires.
const PENDING_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Shows the consent page for `req`, kept server-side (`oauth_pending_consents`)
/// under a fresh reference that the form carries instead of the request: what
/// the user approves is what was validated here, whatever the browser posts.
async fn consent_page(
    inner: &Inner,
    req: &AuthRequest,
    csrf: &str,
    user: &str,
    scopes: &ScopeSet,
    vault: Option<crate::vault::ConsentField>,
) -> Response {
    let reference = random_token();
    let request = req.params.without(&FORM_FIELDS).to_query();
    if let Err(e) = inner
        .store
        .put_pending_consent(&digest_hex(&reference), user, &request, PENDING_TTL)
        .await
    {
        tracing::error!("cannot keep an authorization request for its consent page: {e}");
        return Failure::Page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server cannot record this sign-in request right now; try again shortly.".into(),
        )
        .respond(inner);
    }
    let status = if vault.as_ref().is_some_and(|v| v.error.is_some()) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let redirect_host = if req.redirect_uri.is_out_of_band() {
        "this page (you will copy a code)".to_owned()
    } else {
        url::Url::parse(req.redirect_uri.as_str())
            .ok()
            .map(|u| match (u.scheme(), u.host_str()) {
                ("http" | "https", Some(h)) => match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                },
                (s, _) => format!("{s}: (an application on this device)"),
            })
            .unwrap_or_else(|| req.redirect_uri.to_string())
    };
    let page = ConsentPage {
        css: &inner.route("/assets/style.css"),
        action: &inner.route("/consent"),
        logout: &inner.route("/logout"),
        csrf,
        user,
        client_name: &req.client.display_name(),
        client_id: &req.client.id,
        resource_name: req.resource_name.as_deref(),
        resource: &req.resource,
        logo_uri: req.client.logo_uri.as_deref(),
        redirect_host: &redirect_host,
        localhost_only: req.client.kind == ClientKind::Cimd
            && redirect::all_loopback(&req.client.redirect_uris),
        document_client: req.client.kind == ClientKind::Cimd,
        scopes: inner.scope_lines(scopes),
        request: &reference,
        vault,
    };
    pages::render(status, &page)
}

/// `POST /consent`: the user's decision.
pub(crate) async fn consent(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return Failure::Page(StatusCode::BAD_REQUEST, e.description).respond(&inner),
    };
    let session = match session::current(&inner, &headers).await {
        Ok(Some(s)) if s.subject.is_some() => s,
        Ok(_) => {
            return Failure::Page(
                StatusCode::FORBIDDEN,
                "Your sign-in expired; start again from your application.".into(),
            )
            .respond(&inner);
        }
        Err(e) => {
            return Failure::Page(StatusCode::SERVICE_UNAVAILABLE, e.description).respond(&inner);
        }
    };
    if !session::csrf_ok(&session, form.get("csrf")) {
        return Failure::Page(
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this server; start again.".into(),
        )
        .respond(&inner);
    }
    let subject = session.subject.as_deref().unwrap_or_default().to_owned();
    // The request comes from the server's record only (single use); every
    // other field of the form is a choice of the user, read below by name.
    let reference = form.get("request").unwrap_or_default();
    let kept = match inner
        .store
        .take_pending_consent(&digest_hex(reference), &subject)
        .await
    {
        Ok(k) => k,
        Err(e) => {
            tracing::error!("cannot read an authorization request of a consent page: {e}");
            return Failure::Page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server cannot read this sign-in request right now; try again shortly.".into(),
            )
            .respond(&inner);
        }
    };
    let Some(kept) = kept else {
        tracing::info!(user = %subject, "consent refused: the form's request was already decided, has expired, or was never shown to this user");
        return Failure::Page(
            StatusCode::BAD_REQUEST,
            "This consent form was already used or has expired; start again from your application."
                .into(),
        )
        .respond(&inner);
    };
    let params = match Params::parse(&kept) {
        Ok(p) => p,
        Err(e) => return Failure::Page(StatusCode::BAD_REQUEST, e.description).respond(&inner),
    };
    let req = match validate(&inner, params).await {
        Ok(r) => r,
        Err(f) => return f.respond(&inner),
    };
    if form.get("decision") != Some("allow") {
        return Failure::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error: OAuthError::new(ErrorCode::AccessDenied, "the user denied access"),
        }
        .respond(&inner);
    }
    let user = match inner.store.find_user(&subject).await {
        Ok(Some(u)) => u,
        _ => {
            return Failure::Page(StatusCode::FORBIDDEN, "Your user no longer exists.".into())
                .respond(&inner);
        }
    };
    let scopes = user_scopes(&user, &req.scopes);
    mcpgate_telemetry::audit(
        mcpgate_telemetry::AuditEvent::new(mcpgate_telemetry::AuditKind::ConsentGiven)
            .subject(subject.as_str())
            .client(Some(req.client.id.as_str()))
            .with(
                "scope",
                scopes.iter().cloned().collect::<Vec<_>>().join(" "),
            )
            .with("remembered", form.get("remember") == Some("yes")),
    );
    // The secret the requested upstream needs, when the page asked for it.
    if let Some(field) = crate::vault::consent_field(&inner, &subject, &req.resource, None).await
        && let Some(secret) = form
            .get("vault_secret")
            .map(str::trim)
            .filter(|s| !s.is_empty())
        && let Err(why) = crate::vault::store_from_consent(&inner, &subject, &field, secret).await
    {
        let field = crate::vault::consent_field(&inner, &subject, &req.resource, Some(why)).await;
        return consent_page(&inner, &req, &session.csrf, &subject, &scopes, field).await;
    }
    if form.get("remember") == Some("yes")
        && let Err(e) = inner
            .store
            .put_consent(&subject, &req.client.id, &scopes)
            .await
    {
        tracing::warn!("cannot remember a consent: {e}");
    }
    issue_code(&inner, &req, &subject, scopes).await
}

/// Creates the grant and its code, and sends the code to the client.
async fn issue_code(inner: &Inner, req: &AuthRequest, subject: &str, scopes: ScopeSet) -> Response {
    let fail = |error| {
        Failure::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error,
        }
        .respond(inner)
    };
    let subject = match crate::grant_subject(subject) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let now = SystemTime::now();
    let grant = GrantRow::new(
        random_token(),
        req.client.id.clone(),
        subject.clone(),
        scopes.clone(),
        req.resource.clone(),
        now + inner.settings.refresh_max_ttl,
    );
    let code = random_token();
    let row = CodeRow {
        digest: digest_hex(&code),
        grant_id: grant.id.clone(),
        client_id: req.client.id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.challenge.clone(),
        scopes,
        resource: req.resource.clone(),
        subject: subject.clone(),
        nonce: req.nonce.clone(),
        created_at: now,
        expires_at: now + inner.settings.code_ttl,
    };
    if req.client.kind == ClientKind::Cimd {
        // Before the grant exists, so that the purge never sees it without a client.
        clients::used(inner, &req.client).await;
    }
    let stored = async {
        inner.store.insert_grant(&grant).await?;
        inner.store.insert_code(&row).await
    }
    .await;
    if let Err(e) = stored {
        return fail(OAuthError::store(e));
    }
    tracing::info!(client = %req.client.id, %subject, scopes = %row.scopes.to_string(), "authorization code issued");
    if req.redirect_uri.is_out_of_band() {
        return pages::render(
            StatusCode::OK,
            &OobPage {
                css: &inner.route("/assets/style.css"),
                client: &req.client.display_name(),
                code: &code,
                state: req.state.as_deref().unwrap_or_default(),
            },
        );
    }
    let mut p = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        p.push(("state", s));
    }
    p.push(("iss", inner.issuer.as_str()));
    see_other(&redirect::with_params(req.redirect_uri.as_str(), &p))
}
