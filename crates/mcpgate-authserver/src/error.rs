//! The crate's two kinds of failure, each in one place:
//!
//! - [`OAuthError`]: what an OAuth client is told. One `ErrorCode` enum,
//!   mapped to the `error` codes of RFC 6749, 7591, 8628 and 9068 and to HTTP
//!   statuses here and nowhere else.
//! - [`Error`]: what the rest of mcpgate is told when the server cannot start
//!   or cannot answer a call made in-process (the CLI, the gateway's
//!   credential sources). Its messages are for the operator or the user
//!   whose request it was; none holds a secret.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcpgate_store::{StoreError, VaultError};

/// Seconds a client should wait after a 503 (`Retry-After`): long enough for
/// an operator to free disk space or for a lock to clear, short enough that
/// a retrying client does not give up.
pub(crate) const RETRY_AFTER_SECS: u32 = 10;

/// Why the authorization server cannot start, or cannot answer an in-process call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is refused at start; the message names the setting and what to write.
    #[error("{0}")]
    Config(String),
    /// A value that its RFC refuses (a redirect URI, a resource URI, a client id).
    #[error(transparent)]
    Parse(#[from] mcpgate_types::ParseError),
    /// A signing key cannot be generated, sealed, stored, read or used.
    #[error("{0}")]
    SigningKey(String),
    /// The store failed; `what` names what was being read or written.
    #[error("{what}: {source}")]
    Store {
        /// What was being read or written ("the credential vault").
        what: &'static str,
        /// The store's error.
        source: StoreError,
    },
    /// Sealed rows (the vault, federated tokens) cannot be opened or read: a
    /// wrong master key, a failing disk. `what` names what was being read.
    #[error("{what}: {source}")]
    Vault {
        /// What was being read ("the credential vault").
        what: &'static str,
        /// The store's error.
        source: VaultError,
    },
    /// A user's token from an identity provider cannot be had; the message
    /// tells the user what to do (usually: sign in again).
    #[error("{0}")]
    Federated(String),
}

impl Error {
    /// A store failure while doing `what`.
    pub(crate) fn store(what: &'static str) -> impl FnOnce(StoreError) -> Error {
        move |source| Error::Store { what, source }
    }

    /// A failure to read sealed rows while doing `what`.
    pub(crate) fn vault(what: &'static str) -> impl FnOnce(VaultError) -> Error {
        move |source| Error::Vault { what, source }
    }
}

/// An OAuth error: its code picks the status; the description says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The `error` code.
    pub code: ErrorCode,
    /// The `error_description` (never holds a secret).
    pub description: String,
}

/// The `error` codes this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest,
    /// Client authentication failed (401).
    InvalidClient,
    /// The code, refresh token or device code is invalid, expired, revoked or another client's.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// `response_type` other than `code`.
    UnsupportedResponseType,
    /// A scope is unknown or wider than granted.
    InvalidScope,
    /// The `resource` is not one this server issues tokens for.
    InvalidTarget,
    /// The user refused.
    AccessDenied,
    /// `prompt=none` but nobody is signed in.
    LoginRequired,
    /// `prompt=none` but consent is needed.
    ConsentRequired,
    /// A server-side failure that retrying will not fix (500).
    ServerError,
    /// The storage cannot take writes or reads right now (disk full, I/O
    /// error, database locked): 503 with `Retry-After` (RFC 6749 §4.1.2.1).
    TemporarilyUnavailable,
    /// Too many requests from this client address (429 with `Retry-After`),
    /// e.g. registrations past `authserver.registration_rate`.
    TooManyRequests,
    /// Registration: a redirect URI is not acceptable.
    InvalidRedirectUri,
    /// Registration: other metadata is not acceptable.
    InvalidClientMetadata,
    /// Device flow: the user has not decided yet.
    AuthorizationPending,
    /// Device flow: polling too fast.
    SlowDown,
    /// Device flow: the code expired.
    ExpiredToken,
    /// A bearer token (registration access token, initial access token) is invalid.
    InvalidToken,
    /// DPoP: the proof is missing, malformed or does not match (RFC 9449 §5).
    InvalidDpopProof,
    /// DPoP: retry with the nonce of the `DPoP-Nonce` header (RFC 9449 §8).
    UseDpopNonce,
}

impl ErrorCode {
    /// The code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InvalidDpopProof => mcpgate_dpop::INVALID_PROOF,
            ErrorCode::UseDpopNonce => mcpgate_dpop::USE_NONCE,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            // access_denied too: a token-endpoint error is 400 (RFC 6749 §5.2, RFC 8628 §3.5),
            // and so is a refused registration (RFC 7591 §3.2.2).
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl OAuthError {
    /// An error with `code` and `description`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`.
    pub fn request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`.
    pub fn grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, description)
    }

    /// A storage failure, as the one place that decides its status: a
    /// transient one (disk full, I/O, locked; see
    /// [`StoreError::Unavailable`]) is `temporarily_unavailable` (503 with
    /// `Retry-After`), anything else `server_error` (500). Nothing was
    /// written either way: the store rolled its transaction back. The cause is
    /// logged, not sent.
    pub fn store(e: impl std::error::Error + 'static) -> OAuthError {
        if is_unavailable(&e) {
            tracing::error!(
                "authorization server storage unavailable, answering 503 (free disk space or check the data directory): {e}"
            );
            OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the authorization server's storage is unavailable (disk full, I/O error or database locked); nothing was changed, try again later",
            )
        } else {
            tracing::error!("authorization server storage error: {e}");
            OAuthError::new(
                ErrorCode::ServerError,
                "the authorization server cannot use its storage; nothing was changed",
            )
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        mcpgate_telemetry::note_oauth_error(self.code.as_str(), &self.description);
        let mut resp = (
            self.code.status(),
            Json(serde_json::json!({
                "error": self.code.as_str(),
                "error_description": self.description,
            })),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.code == ErrorCode::TemporarilyUnavailable {
            h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if self.code == ErrorCode::InvalidClient {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mcpgate\""),
            );
        }
        resp
    }
}

/// Whether `e` is, or wraps, a transient storage failure.
fn is_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(s) = err.downcast_ref::<StoreError>() {
            return s.is_unavailable();
        }
        if let Some(v) = err.downcast_ref::<VaultError>() {
            return v.is_unavailable();
        }
        cur = err.source();
    }
    false
}
