//! Response helpers every endpoint may use; a leaf, so that pages, flows and
//! token endpoints can share them without importing each other.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A 303 to `to`; a target that cannot be a header value (control
/// characters slipped through) is a 400, never a panic.
pub(crate) fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => {
            tracing::warn!("redirect refused: its target contains a control character");
            (
                StatusCode::BAD_REQUEST,
                "This request cannot continue: an address in it contains a control character.",
            )
                .into_response()
        }
    }
}

/// Marks a response uncacheable (every token response, RFC 6749 §5.1).
pub(crate) fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}
