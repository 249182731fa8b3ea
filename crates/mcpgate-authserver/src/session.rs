//! Browser sessions of the login pages: a random cookie (its digest stored),
//! a CSRF token per session checked on every POST, and the cookie attributes
//! (`__Host-` prefix, Secure, HttpOnly, SameSite=Lax; Secure and the prefix
//! dropped only when the public URL is http on loopback).

use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use mcpgate_store::oauth::{SessionRow, digest_hex};
use subtle::ConstantTimeEq as _;

use crate::error::OAuthError;
use crate::params::Params;
use crate::{Inner, pages, random_token};

const SECURE_NAME: &str = "__Host-mcpgate-session";
const PLAIN_NAME: &str = "mcpgate-session";

fn cookie_name(inner: &Inner) -> &'static str {
    if inner.secure_cookies {
        SECURE_NAME
    } else {
        PLAIN_NAME
    }
}

/// The session cookie's value from the request, if any.
fn cookie_value(inner: &Inner, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(inner);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The request's live session.
pub(crate) async fn current(
    inner: &Inner,
    headers: &HeaderMap,
) -> Result<Option<SessionRow>, OAuthError> {
    let Some(v) = cookie_value(inner, headers) else {
        return Ok(None);
    };
    inner
        .store
        .find_session(&digest_hex(&v), SystemTime::now())
        .await
        .map_err(OAuthError::store)
}

/// A new session (signed in as `subject`, or anonymous) and its `Set-Cookie`.
pub(crate) async fn start(
    inner: &Inner,
    subject: Option<String>,
) -> Result<(SessionRow, HeaderValue), OAuthError> {
    // A user name is checked when the user is created; one that is no subject
    // was written outside mcpgate and signs nobody in.
    let subject = subject
        .map(mcpgate_types::Subject::try_from)
        .transpose()
        .map_err(OAuthError::store)?;
    let token = random_token();
    let ttl = inner.settings.session_ttl;
    let row = SessionRow::new(
        digest_hex(&token),
        subject,
        random_token(),
        SystemTime::now() + ttl,
    );
    inner
        .store
        .insert_session(&row)
        .await
        .map_err(OAuthError::store)?;
    Ok((row, set_cookie(inner, &token, ttl.as_secs())))
}

/// The request's session, or a new anonymous one (with the cookie to set).
pub(crate) async fn current_or_start(
    inner: &Inner,
    headers: &HeaderMap,
) -> Result<(SessionRow, Option<HeaderValue>), OAuthError> {
    if let Some(s) = current(inner, headers).await? {
        return Ok((s, None));
    }
    let (s, c) = start(inner, None).await?;
    Ok((s, Some(c)))
}

/// Ends the request's session; the cookie that clears it.
pub(crate) async fn end(inner: &Inner, headers: &HeaderMap) -> Result<HeaderValue, OAuthError> {
    if let Some(v) = cookie_value(inner, headers) {
        inner
            .store
            .delete_session(&digest_hex(&v))
            .await
            .map_err(OAuthError::store)?;
    }
    Ok(set_cookie(inner, "", 0))
}

fn set_cookie(inner: &Inner, value: &str, max_age: u64) -> HeaderValue {
    let secure = if inner.secure_cookies { "; Secure" } else { "" };
    let text = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(inner)
    );
    // Tokens are base64url: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether `sent` is the session's CSRF token.
pub(crate) fn csrf_ok(session: &SessionRow, sent: Option<&str>) -> bool {
    sent.is_some_and(|s| s.as_bytes().ct_eq(session.csrf.as_bytes()).into())
}

/// A page's form POSTed by a signed-in user, carrying their session's CSRF token.
pub(crate) struct UserForm {
    pub(crate) session: SessionRow,
    pub(crate) subject: String,
    pub(crate) form: Params,
}

/// Why a page's form is not a [`UserForm`].
pub(crate) enum NotUserForm {
    /// Nobody is signed in; the form says where they were.
    SignedOut(Params),
    /// The CSRF token is not the session's: an old page, or another site's form.
    Expired,
    /// The session could not be read.
    Failed(Response),
}

impl NotUserForm {
    /// The answer: `login(form)` for a signed-out user, else a page titled
    /// `title` saying why.
    pub(crate) fn respond(
        self,
        inner: &Inner,
        title: &str,
        login: impl FnOnce(&Params) -> Response,
    ) -> Response {
        match self {
            NotUserForm::SignedOut(form) => login(&form),
            NotUserForm::Expired => pages::error_page(
                &inner.route("/assets/style.css"),
                StatusCode::FORBIDDEN,
                title,
                "The form expired; reload the page.",
            ),
            NotUserForm::Failed(r) => r,
        }
    }
}

/// Reads a page's form: who sent it (signed in), and that it came from a
/// page this server rendered for them (CSRF). A form that does not parse is
/// read as empty, and so fails the CSRF check.
pub(crate) async fn user_form(
    inner: &Inner,
    headers: &HeaderMap,
    body: &str,
) -> Result<UserForm, NotUserForm> {
    let form = Params::parse(body).unwrap_or_default();
    let session = match current(inner, headers).await {
        Ok(Some(s)) if s.subject.is_some() => s,
        Ok(_) => return Err(NotUserForm::SignedOut(form)),
        Err(e) => return Err(NotUserForm::Failed(e.into_response())),
    };
    if !csrf_ok(&session, form.get("csrf")) {
        return Err(NotUserForm::Expired);
    }
    let subject = session.subject.as_deref().unwrap_or_default().to_owned();
    Ok(UserForm {
        session,
        subject,
        form,
    })
}
