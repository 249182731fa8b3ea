//! Every error answer of the gateway as HTTP: the status and the JSON-RPC
//! error code of each [`GatewayError`] are chosen here and nowhere else.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;

use crate::error::GatewayError;
use crate::jsonrpc::{Message, code};
use crate::protocol::{HEADER_MISMATCH, SUPPORTED_VERSIONS, UNSUPPORTED_VERSION};
use crate::reply::json;

impl GatewayError {
    /// The HTTP status a request failing this way is answered with.
    pub fn status(&self) -> StatusCode {
        use GatewayError as E;
        match self {
            E::Config { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            E::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            E::ForeignOrigin(_) => StatusCode::FORBIDDEN,
            E::UnknownUpstream(_)
            | E::NoAuthorizationServer
            | E::SessionNotFound
            | E::MethodNotFound(_)
            | E::UpstreamSessionEnded(_) => StatusCode::NOT_FOUND,
            E::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            E::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            E::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            E::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            E::Parse(_)
            | E::InvalidRequest(_)
            | E::UnsupportedVersion(_)
            | E::HeaderMismatch(_)
            | E::InvalidParams(_) => StatusCode::BAD_REQUEST,
            E::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            E::UpstreamBusy(_) | E::CredentialUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            E::UpstreamTimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
            E::SubjectLimit(_) | E::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            E::PolicyDenied(_) | E::ToolRateLimited(_) => StatusCode::OK,
            E::LimitUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The JSON-RPC error code of the answer.
    pub fn rpc_code(&self) -> i64 {
        use GatewayError as E;
        match self {
            E::Config { .. } => code::INTERNAL_ERROR,
            E::HeadersTooLarge { .. }
            | E::ForeignOrigin(_)
            | E::UnknownUpstream(_)
            | E::NoAuthorizationServer
            | E::MethodNotAllowed { .. }
            | E::NotAcceptable(_)
            | E::UnsupportedMediaType(_)
            | E::BodyTooLarge { .. }
            | E::InvalidRequest(_) => code::INVALID_REQUEST,
            E::Parse(_) => code::PARSE_ERROR,
            E::SessionNotFound | E::UpstreamSessionEnded(_) => code::SESSION_NOT_FOUND,
            E::UnsupportedVersion(_) => UNSUPPORTED_VERSION,
            E::HeaderMismatch(_) => HEADER_MISMATCH,
            E::InvalidParams(_) => code::INVALID_PARAMS,
            E::MethodNotFound(_) => code::METHOD_NOT_FOUND,
            E::UpstreamUnavailable(_)
            | E::UpstreamBusy(_)
            | E::SubjectLimit(_)
            | E::LimitUnavailable(_)
            | E::CredentialUnavailable(_) => code::UPSTREAM_ERROR,
            E::UpstreamTimedOut(_) => code::UPSTREAM_TIMEOUT,
            E::PolicyDenied(_) => code::POLICY_DENIED,
            E::RateLimited(_) | E::ToolRateLimited(_) => code::RATE_LIMITED,
        }
    }

    /// The JSON-RPC error answering request `id`, as an SSE stream carries it.
    pub(crate) fn message(&self, id: Option<Box<RawValue>>) -> Message {
        match self {
            GatewayError::RateLimited(l) | GatewayError::ToolRateLimited(l) => {
                Message::error_with_data(id, self.rpc_code(), &self.to_string(), limited_data(l))
            }
            _ => Message::error(id, self.rpc_code(), &self.to_string()),
        }
    }

    /// The HTTP answer to request `id` (`None` before the body is read).
    pub(crate) fn answer(&self, id: Option<Box<RawValue>>) -> Response {
        let mut r = match self {
            GatewayError::UnsupportedVersion(requested) => with_data(
                self.status(),
                id,
                self.rpc_code(),
                &self.to_string(),
                serde_json::json!({ "supported": SUPPORTED_VERSIONS, "requested": requested }),
            ),
            _ => json(self.status(), &self.message(id)),
        };
        if let GatewayError::RateLimited(l) = self {
            rate_limit_headers(r.headers_mut(), l);
        }
        let extra = match self {
            GatewayError::UpstreamBusy(_) | GatewayError::LimitUnavailable(_) => {
                Some((header::RETRY_AFTER, "5"))
            }
            GatewayError::SubjectLimit(_) => Some((header::RETRY_AFTER, "30")),
            GatewayError::MethodNotAllowed { allow, .. } => Some((header::ALLOW, *allow)),
            _ => None,
        };
        if let Some((name, value)) = extra {
            r.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        r
    }
}

/// What a rate-limit error's `data` says: the rule and when to retry.
fn limited_data(l: &crate::error::Limited) -> serde_json::Value {
    serde_json::json!({ "rule": l.rule, "retryAfterSeconds": l.retry_after, "limit": l.limit, "windowSeconds": l.window })
}

/// `Retry-After`, and the rule as the IETF draft's `RateLimit-Policy` and
/// `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers) describe it.
fn rate_limit_headers(h: &mut axum::http::HeaderMap, l: &crate::error::Limited) {
    let put = |h: &mut axum::http::HeaderMap, name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::try_from(v) {
            h.insert(name, v);
        }
    };
    put(h, "retry-after", l.retry_after.to_string());
    put(
        h,
        "ratelimit-policy",
        format!("{:?};q={};w={}", l.rule, l.limit, l.window),
    );
    put(
        h,
        "ratelimit",
        format!("{:?};r=0;t={}", l.rule, l.retry_after),
    );
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.answer(None)
    }
}

/// The HTTP status 2026-07-28 gives an upstream's JSON-RPC error answer
/// (older eras answer every JSON-RPC error with 200).
pub(crate) fn modern_status(rpc_code: i64) -> Option<StatusCode> {
    match rpc_code {
        code::METHOD_NOT_FOUND => Some(StatusCode::NOT_FOUND),
        code::UPSTREAM_TIMEOUT => Some(StatusCode::GATEWAY_TIMEOUT),
        code::PARSE_ERROR | code::INVALID_REQUEST | code::INVALID_PARAMS | -32022..=-32020 => {
            Some(StatusCode::BAD_REQUEST)
        }
        _ => None,
    }
}

/// An error with `data`, for the 2026-07-28 error shapes.
fn with_data(
    status: StatusCode,
    id: Option<Box<RawValue>>,
    code: i64,
    message: &str,
    data: serde_json::Value,
) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.map(|i| serde_json::from_str::<serde_json::Value>(i.get()).unwrap_or_default()),
        "error": { "code": code, "message": message, "data": data },
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
