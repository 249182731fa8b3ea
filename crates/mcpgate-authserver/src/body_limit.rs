//! The request body limit of every authorization-server endpoint: a body over
//! it is refused by its `Content-Length` before any of it is read (or as soon
//! as a chunked one passes the limit), with OAuth's JSON error shape rather
//! than a plain-text 413.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::OAuthError;

/// Forms, registration documents and vault secrets are small; this is generous.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads the body within [`MAX_BODY_BYTES`] and hands the request on.
pub(crate) async fn limit_body(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared
        && n > MAX_BODY_BYTES as u64
    {
        return too_large(req.uri().path(), Some(n));
    }
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            if e.into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large(&path, None);
            }
            tracing::info!(path, "refused a request whose body could not be read");
            return OAuthError::request("the request body could not be read").into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(path: &str, declared: Option<u64>) -> Response {
    tracing::info!(
        path,
        content_length = declared,
        limit = MAX_BODY_BYTES,
        "refused an oversized request body"
    );
    let mut r = OAuthError::request(format!(
        "the request body is larger than the authorization server accepts ({MAX_BODY_BYTES} bytes)"
    ))
    .into_response();
    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    // The rest of the body is never read, so the connection cannot carry another request:
    // saying so keeps a client from reusing it and losing its next request to the close.
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}
