//! Every way authentication can refuse a request, each with one status.

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::challenge::Challenge;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No credential where one is needed: 401 with the sign-in challenge.
    #[error("Authorization required: send Authorization: Bearer <token>")]
    Missing,
    /// No credential, and the operation needs these scopes: 401 with a sign-in
    /// challenge asking for them (not the defaults).
    #[error("Authorization required: send Authorization: Bearer <token>")]
    MissingFor(Vec<String>),
    /// The credential is unknown, expired, revoked or for another audience: 401.
    #[error("{0}")]
    InvalidToken(String),
    /// A valid credential without the scopes needed: 403 `insufficient_scope`.
    #[error("insufficient scope: this needs {}", .0.join(" "))]
    InsufficientScope(Vec<String>),
    /// The credential is malformed, ambiguous or in the wrong place: 400.
    #[error("{0}")]
    BadRequest(String),
    /// A verifier could not decide (identity provider down): 503, never "allow".
    #[error("{0}")]
    Unavailable(String),
    /// Authenticated, but a rule denies this subject: 403.
    #[error("{0}")]
    Forbidden(String),
    /// A DPoP rule failed (RFC 9449 §7.1): 401 with a `DPoP` challenge, and
    /// the server's nonce when the client must retry with it.
    #[error("{why}")]
    Dpop {
        /// `invalid_dpop_proof`, `use_dpop_nonce` or `invalid_token`.
        code: &'static str,
        /// What was wrong (never the token or the proof).
        why: String,
        /// The `DPoP-Nonce` to send.
        nonce: Option<String>,
    },
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: String,
}

impl AuthRejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::Missing
            | AuthRejection::MissingFor(_)
            | AuthRejection::InvalidToken(_)
            | AuthRejection::Dpop { .. } => StatusCode::UNAUTHORIZED,
            AuthRejection::InsufficientScope(_) | AuthRejection::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            AuthRejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuthRejection::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The OAuth error code (RFC 6750 §3.1).
    pub fn error_code(&self) -> &'static str {
        match self {
            AuthRejection::Missing | AuthRejection::MissingFor(_) => "unauthorized",
            AuthRejection::InvalidToken(_) => "invalid_token",
            AuthRejection::InsufficientScope(_) => "insufficient_scope",
            AuthRejection::BadRequest(_) => "invalid_request",
            AuthRejection::Unavailable(_) => "temporarily_unavailable",
            AuthRejection::Forbidden(_) => "access_denied",
            AuthRejection::Dpop { code, .. } => code,
        }
    }

    /// The complete response: JSON `{error, error_description}` and, for 401 and
    /// 403, the `WWW-Authenticate` challenge that tells the client what to do next.
    pub fn into_response(self, challenge: &Challenge) -> http::Response<String> {
        let body = Body {
            error: self.error_code(),
            error_description: self.to_string(),
        };
        let json = serde_json::to_string(&body).unwrap_or_default();
        let mut resp = http::Response::new(json);
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let www = match &self {
            AuthRejection::Missing => Some(challenge.sign_in(None)),
            AuthRejection::MissingFor(needed) => Some(challenge.sign_in(Some(needed))),
            AuthRejection::InvalidToken(why) => Some(challenge.invalid_token(why)),
            AuthRejection::InsufficientScope(needed) => Some(challenge.insufficient_scope(needed)),
            AuthRejection::BadRequest(why) => Some(challenge.invalid_request(why)),
            AuthRejection::Dpop { code, why, .. } => Some(challenge.dpop_error(code, why)),
            AuthRejection::Unavailable(_) | AuthRejection::Forbidden(_) => None,
        };
        if let Some(v) = www.and_then(|w| HeaderValue::try_from(w).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
            // RFC 9449 §7.1: where DPoP is taken, say so beside the Bearer challenge.
            if self.status() == StatusCode::UNAUTHORIZED
                && !matches!(self, AuthRejection::Dpop { .. })
                && let Some(offer) = challenge.dpop_offer()
                && let Ok(v) = HeaderValue::try_from(offer)
            {
                h.append(header::WWW_AUTHENTICATE, v);
            }
        }
        if let AuthRejection::Dpop { nonce: Some(n), .. } = &self
            && let Ok(v) = HeaderValue::try_from(n.as_str())
        {
            h.insert(mcpgate_dpop::NONCE_HEADER, v);
        }
        if matches!(self, AuthRejection::Unavailable(_)) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}
