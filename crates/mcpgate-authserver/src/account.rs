//! `/account`: the signed-in user's grants, each with a revoke button.

use std::sync::Arc;
use std::time::SystemTime;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::respond::see_other;
use crate::{Inner, pages, session};

struct GrantLine {
    id: String,
    client: String,
    scopes: String,
    since: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    css: &'a str,
    user: &'a str,
    csrf: &'a str,
    notice: Option<&'a str>,
    /// The notice reports a refusal: announced at once (`role="alert"`).
    error: bool,
    /// The upstream whose secret field the refusal is about ("" for none):
    /// that field points at the message (`aria-describedby`, `aria-invalid`).
    error_field: &'a str,
    grants: Vec<GrantLine>,
    revoke_action: &'a str,
    logout: &'a str,
    credentials: Vec<crate::vault::CredentialLine>,
    credentials_action: &'a str,
}

pub(crate) fn to_login(inner: &Inner) -> Response {
    let next = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", &inner.route("/account"))
        .finish();
    see_other(&format!("{}?{next}", inner.route("/login")))
}

async fn render(inner: &Inner, subject: &str, csrf: &str, notice: Option<&str>) -> Response {
    render_with(inner, subject, csrf, notice, StatusCode::OK).await
}

/// The account page with `notice`, answered with `status`.
pub(crate) async fn render_with(
    inner: &Inner,
    subject: &str,
    csrf: &str,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    render_for_field(inner, subject, csrf, notice, status, "").await
}

/// The account page with `notice` about the secret field of `field` (an
/// upstream name; "" for none), answered with `status`.
pub(crate) async fn render_for_field(
    inner: &Inner,
    subject: &str,
    csrf: &str,
    notice: Option<&str>,
    status: StatusCode,
    field: &str,
) -> Response {
    let grants = match inner
        .store
        .list_grants_for(subject, SystemTime::now())
        .await
    {
        Ok(g) => g,
        Err(e) => return crate::error::OAuthError::store(e).into_response(),
    };
    let mut lines = Vec::new();
    for g in grants {
        let client = match crate::clients::find(inner, &g.client_id).await {
            Ok(Some(c)) => c.display_name(),
            _ => g.client_id.to_string(),
        };
        lines.push(GrantLine {
            id: g.id.clone(),
            client,
            scopes: if g.scopes.is_empty() {
                "sign-in only".into()
            } else {
                g.scopes.to_string()
            },
            since: mcpgate_store::format_utc(g.created_at),
            last_used: mcpgate_store::format_utc(g.last_used_at),
        });
    }
    let credentials = crate::vault::lines(inner, subject).await;
    pages::render(
        status,
        &AccountPage {
            css: &inner.route("/assets/style.css"),
            user: subject,
            csrf,
            notice,
            error: status.is_client_error() || status.is_server_error(),
            error_field: field,
            grants: lines,
            revoke_action: &inner.route("/account/revoke"),
            logout: &inner.route("/logout"),
            credentials,
            credentials_action: &inner.route("/account/credentials"),
        },
    )
}

/// `GET /account`.
pub(crate) async fn get(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    match session::current(&inner, &headers).await {
        Ok(Some(s)) if s.subject.is_some() => {
            render(
                &inner,
                s.subject.as_deref().unwrap_or_default(),
                &s.csrf,
                None,
            )
            .await
        }
        Ok(_) => to_login(&inner),
        Err(e) => e.into_response(),
    }
}

/// `POST /account/revoke`: ends one of the user's grants.
pub(crate) async fn revoke(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    // Each signed-in form handler starts so (axum's extractors, then
    // `session::user_form`); only the page for a refusal is its own.
    let (s, subject, form) = match session::user_form(&inner, &headers, &body).await {
        Ok(f) => (f.session, f.subject, f.form),
        Err(e) => return e.respond(&inner, "Cannot revoke", |_| to_login(&inner)),
    };
    let gid = form.get("grant").unwrap_or_default();
    let notice = match inner.store.find_grant(gid).await {
        Ok(Some(g)) if g.subject == subject => {
            let _ = inner.store.delete_consent(&subject, &g.client_id).await;
            match inner.store.revoke_grant(gid, "revoked by the user").await {
                Ok(_) => {
                    mcpgate_telemetry::audit(
                        mcpgate_telemetry::AuditEvent::new(
                            mcpgate_telemetry::AuditKind::ConsentRevoked,
                        )
                        .subject(subject.as_str())
                        .client(Some(g.client_id.as_str()))
                        .with("grant", gid),
                    );
                    "Access revoked."
                }
                Err(e) => return crate::error::OAuthError::store(e).into_response(),
            }
        }
        Ok(_) => "Nothing to revoke.",
        Err(e) => return crate::error::OAuthError::store(e).into_response(),
    };
    render(&inner, &subject, &s.csrf, Some(notice)).await
}
