//! Why an upstream could not take a message, and the [`GatewayError`] each
//! failure answers the client with.

use crate::credentials::CredentialError;
use crate::error::GatewayError;

/// Why an upstream could not take a message; each becomes one [`GatewayError`].
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// Unreachable, crashed, or answered nonsense: 502.
    #[error("{0}")]
    Unavailable(String),
    /// At a configured limit: 503.
    #[error("{0}")]
    Busy(String),
    /// The upstream forgot the session: 404, so the client initializes again.
    #[error("the upstream ended this session; initialize a new one")]
    SessionGone,
    /// The URL refused a Streamable HTTP `initialize`: try the legacy SSE transport.
    #[error("the upstream does not speak Streamable HTTP")]
    NotStreamable,
    /// No outbound credential could be presented (missing secret, token endpoint down): 503.
    #[error("{0}")]
    Credential(String),
    /// The upstream did not answer within `request_timeout`: 504, JSON-RPC -32001.
    #[error("{0}")]
    TimedOut(String),
    /// The caller is at a per-subject limit (`server.max_sessions_per_subject`,
    /// `server.max_children_per_subject`): 429.
    #[error("{0}")]
    SubjectLimit(String),
}

impl From<CredentialError> for UpstreamError {
    fn from(e: CredentialError) -> Self {
        UpstreamError::Credential(e.0)
    }
}

/// The source chain of an error, for messages an operator can act on.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl From<&UpstreamError> for GatewayError {
    fn from(e: &UpstreamError) -> Self {
        match e {
            UpstreamError::Unavailable(why) => GatewayError::UpstreamUnavailable(why.clone()),
            UpstreamError::Busy(why) => GatewayError::UpstreamBusy(why.clone()),
            UpstreamError::TimedOut(why) => GatewayError::UpstreamTimedOut(why.clone()),
            UpstreamError::SubjectLimit(why) => GatewayError::SubjectLimit(why.clone()),
            UpstreamError::Credential(why) => GatewayError::CredentialUnavailable(why.clone()),
            UpstreamError::SessionGone | UpstreamError::NotStreamable => {
                GatewayError::UpstreamSessionEnded(e.to_string())
            }
        }
    }
}
