//! `/login` and `/logout`: local users (`mcpgate users`), argon2id, throttled
//! per account and per client address; a new session id on every sign-in.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::params::Params;
use crate::respond::see_other;
use crate::{Inner, pages, session};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    css: &'a str,
    action: &'a str,
    csrf: &'a str,
    next: &'a str,
    username: &'a str,
    error: Option<&'a str>,
    /// "Sign in with …" buttons of the configured identity providers.
    providers: Vec<Button>,
    /// Whether the password form is shown (`authserver.local_login`).
    local: bool,
}

/// Where to go after signing in: only a path of this server's pages (no open redirect).
pub(crate) fn safe_next(inner: &Inner, next: Option<&str>) -> String {
    let fallback = inner.route("/account");
    let Some(n) = next else {
        return fallback;
    };
    if crate::params::has_control(n) {
        return fallback;
    }
    let allowed = ["/authorize?", "/device", "/account"]
        .iter()
        .any(|p| n.starts_with(&inner.route(p)));
    if allowed && n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') {
        n.to_owned()
    } else {
        fallback
    }
}

fn with_cookie(mut r: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

fn page(
    inner: &Inner,
    status: StatusCode,
    csrf: &str,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    pages::render(
        status,
        &LoginPage {
            css: &inner.route("/assets/style.css"),
            action: &inner.route("/login"),
            csrf,
            next,
            username,
            error,
            providers: buttons(inner, next),
            local: inner.settings.local_login,
        },
    )
}

/// The 400 page for a `next` with a control character (it would end up in `Location`).
fn bad_next(inner: &Inner, next: Option<&str>) -> Option<Response> {
    if !next.is_some_and(crate::params::has_control) {
        return None;
    }
    tracing::warn!("sign-in page refused: its next parameter contains a control character");
    Some(pages::error_page(
        &inner.route("/assets/style.css"),
        StatusCode::BAD_REQUEST,
        "This sign-in link is broken",
        "Its next parameter contains a control character (such as a line break). Start again from your application.",
    ))
}

/// Query of `GET /login`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// `GET /login`.
pub(crate) async fn get(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<LoginQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = bad_next(&inner, q.next.as_deref()) {
        return r;
    }
    let next = safe_next(&inner, q.next.as_deref());
    match session::current_or_start(&inner, &headers).await {
        Ok((s, cookie)) => with_cookie(
            page(&inner, StatusCode::OK, &s.csrf, &next, "", None),
            cookie,
        ),
        Err(e) => e.into_response(),
    }
}

/// What a sign-in says when the throttle or the user table cannot be read.
const UNAVAILABLE: &str = "Sign-in is unavailable right now; try again shortly.";

/// `POST /login`.
pub(crate) async fn post(
    State(inner): State<Arc<Inner>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = Params::parse(&body).unwrap_or_default();
    if let Some(r) = bad_next(&inner, form.get("next")) {
        return r;
    }
    let next = safe_next(&inner, form.get("next"));
    let username = form.get("username").unwrap_or_default().trim().to_owned();
    let password = form.get("password").unwrap_or_default().to_owned();
    let (s, cookie) = match session::current_or_start(&inner, &headers).await {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    // The form again, holding the name as typed and saying what went wrong.
    let again =
        |status: StatusCode, msg: &str| page(&inner, status, &s.csrf, &next, &username, Some(msg));
    if cookie.is_some() || !session::csrf_ok(&s, form.get("csrf")) {
        // No session yet (cookies blocked, or it expired): show the form again with a fresh one.
        return with_cookie(
            again(
                StatusCode::FORBIDDEN,
                "The form expired; please sign in again.",
            ),
            cookie,
        );
    }
    if !inner.settings.local_login {
        return page(
            &inner,
            StatusCode::FORBIDDEN,
            &s.csrf,
            &next,
            "",
            Some("Password sign-in is switched off here; use one of the sign-in buttons."),
        );
    }
    let account_key = format!("user:{}", username.to_lowercase());
    let ip_key = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| format!("ip:{}", a.ip()));
    // Reserved before the password is checked: concurrent guesses cannot all pass a
    // "locked?" test that is only updated after their (slow) argon2 checks.
    let keys: Vec<&str> = std::iter::once(account_key.as_str())
        .chain(ip_key.as_deref())
        .collect();
    let reservation = match inner.throttle.reserve(&keys).await {
        Err(e) => {
            // Unknown whether this would be one attempt too many: refuse, and say why.
            tracing::error!(user = %username, "sign-in refused: the login throttle cannot be read: {e}");
            return again(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        }
        Ok(Ok(r)) => r,
        Ok(Err(wait)) => {
            tracing::warn!(user = %username, client = ?ip_key, retry_after_secs = wait.as_secs().max(1), "sign-in refused: too many attempts in the window");
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let msg = format!(
                "Too many failed sign-ins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            let mut r = again(StatusCode::TOO_MANY_REQUESTS, &msg);
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
    };
    let user = match inner.store.check_password(&username, &password).await {
        Ok(u) => u,
        Err(e) => {
            // Not a guess: nothing was compared.
            inner.throttle.release(reservation).await;
            tracing::error!("cannot check a password: {e}");
            return again(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        }
    };
    let Some(user) = user else {
        // The reservation stays: it is the failure count.
        drop(reservation);
        tracing::info!(user = %username, "failed sign-in");
        mcpgate_telemetry::audit_simple(
            mcpgate_telemetry::AuditKind::SignInFailed,
            Some(&username),
            None,
            Some("unknown user or wrong password"),
        );
        return again(StatusCode::UNAUTHORIZED, "Unknown user or wrong password.");
    };
    inner.throttle.succeeded(reservation, &account_key).await;
    // A new session id on sign-in: a session fixed by an attacker before is worthless.
    if let Err(e) = session::end(&inner, &headers).await {
        return e.into_response();
    }
    match session::start(&inner, Some(user.name.clone().into())).await {
        Ok((_, cookie)) => {
            tracing::info!(user = %user.name, "signed in");
            mcpgate_telemetry::audit_simple(
                mcpgate_telemetry::AuditKind::SignIn,
                Some(&user.name),
                None,
                Some("ok"),
            );
            with_cookie(see_other(&next), Some(cookie))
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let form = Params::parse(&body).unwrap_or_default();
    match session::current(&inner, &headers).await {
        Ok(Some(s)) if session::csrf_ok(&s, form.get("csrf")) => {}
        Ok(_) => {
            return pages::error_page(
                &inner.route("/assets/style.css"),
                StatusCode::FORBIDDEN,
                "Cannot sign out",
                "The form expired; reload the page.",
            );
        }
        Err(e) => return e.into_response(),
    }
    match session::end(&inner, &headers).await {
        Ok(c) => with_cookie(
            pages::render(
                StatusCode::OK,
                &pages::MessagePage {
                    css: &inner.route("/assets/style.css"),
                    title: "Signed out",
                    message: "You are signed out. You can close this window.",
                },
            ),
            Some(c),
        ),
        Err(e) => e.into_response(),
    }
}

/// A button on the login page.
pub(crate) struct Button {
    pub(crate) label: String,
    pub(crate) url: String,
}

/// The login page's "Sign in with …" buttons, each returning to `next`.
pub(crate) fn buttons(inner: &Inner, next: &str) -> Vec<Button> {
    inner
        .federation
        .providers
        .iter()
        .map(|p| Button {
            label: format!("Sign in with {}", p.display_name()),
            url: format!(
                "{}?{}",
                inner.route(&format!("/federation/{}/start", p.cfg.name)),
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", next)
                    .finish()
            ),
        })
        .collect()
}
