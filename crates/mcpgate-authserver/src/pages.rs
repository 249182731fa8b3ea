//! The HTML pages: askama templates (`templates/*.html`), the shared
//! stylesheet, and the headers every page carries (no framing, no caching,
//! no referrer, a strict CSP — the pages need no JavaScript).

pub(crate) mod login;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet, served at `<issuer path>/assets/style.css`.
pub(crate) const STYLE_CSS: &str = include_str!("../assets/style.css");

/// Renders `t` with `status` and the pages' security headers.
pub(crate) fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = (status, html).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            // A 503 page is a transient failure (storage unavailable): say when to retry.
            if status == StatusCode::SERVICE_UNAVAILABLE {
                h.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::error::RETRY_AFTER_SECS),
                );
            }
            r
        }
        Err(e) => {
            tracing::error!("cannot render a page: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "page rendering failed").into_response()
        }
    }
}

// One struct per template, each repeating the fields its page shows (`css`
// first): askama checks a template against its own struct at compile time,
// so a field a page uses and its struct lacks is a build error.

/// The error page: for errors that must not be redirected (unknown client,
/// unregistered redirect URI).
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage<'a> {
    pub(crate) css: &'a str,
    pub(crate) title: &'a str,
    pub(crate) message: &'a str,
}

/// An error page response.
pub(crate) fn error_page(css: &str, status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            css,
            title,
            message,
        },
    )
}

/// The out-of-band page: the code to paste into a CLI.
#[derive(Template)]
#[template(path = "oob.html")]
pub(crate) struct OobPage<'a> {
    pub(crate) css: &'a str,
    pub(crate) client: &'a str,
    pub(crate) code: &'a str,
    pub(crate) state: &'a str,
}

/// One scope on the consent page.
pub(crate) struct ScopeLine {
    pub(crate) name: String,
    pub(crate) description: String,
}

/// The consent page.
#[derive(Template)]
#[template(path = "consent.html")]
pub(crate) struct ConsentPage<'a> {
    pub(crate) css: &'a str,
    pub(crate) action: &'a str,
    pub(crate) logout: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) user: &'a str,
    pub(crate) client_name: &'a str,
    pub(crate) client_id: &'a str,
    /// A registered resource server the access is for (its name), else the gateway.
    pub(crate) resource_name: Option<&'a str>,
    pub(crate) resource: &'a str,
    pub(crate) logo_uri: Option<&'a str>,
    pub(crate) redirect_host: &'a str,
    pub(crate) localhost_only: bool,
    pub(crate) document_client: bool,
    pub(crate) scopes: Vec<ScopeLine>,
    /// The opaque reference to the server-side record of the request
    /// (`oauth_pending_consents`): the form's only hidden field besides the CSRF token.
    pub(crate) request: &'a str,
    /// The requested upstream needs the user's own secret, not stored yet.
    pub(crate) vault: Option<crate::vault::ConsentField>,
}

/// A short message page.
#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub(crate) css: &'a str,
    pub(crate) title: &'a str,
    pub(crate) message: &'a str,
}
