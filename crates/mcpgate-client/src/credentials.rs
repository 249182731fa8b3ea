//! What a connection to a remote MCP server asks for its `Authorization`
//! header: the seam between the token manager (sign-in, refresh, step-up)
//! and the transports that use it (the bridge, `mcpgate call`).

use futures_util::future::BoxFuture;

/// Why no credential could be had; the message is meant for the person at the keyboard.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CredentialsError {
    /// What went wrong and what to do about it.
    pub message: String,
}

impl CredentialsError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A source of `Authorization` header values for one remote MCP server.
///
/// A transport calls [`authorization`](Self::authorization) before each
/// request, and on a 401 or a 403 `insufficient_scope` asks once for a better
/// value and retries once with it.
// Every implementation repeats these boxed-future signatures: the transports
// hold credentials as `Arc<dyn Credentials>`, which an `async fn` cannot be.
pub trait Credentials: Send + Sync {
    /// The header value to send now (for example `Bearer eyJ…`), refreshed
    /// first when it is about to expire; `None` to send no header.
    fn authorization(&self) -> BoxFuture<'_, Result<Option<String>, CredentialsError>>;

    /// The server answered 401 with this `WWW-Authenticate` value (if any):
    /// a new header value to retry once with, or `None` to give up.
    fn unauthorized<'a>(
        &'a self,
        challenge: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>>;

    /// The server answered 403 with `error="insufficient_scope"` and this
    /// challenge: a new header value carrying more scope to retry once with,
    /// or `None` to give up.
    fn insufficient_scope<'a>(
        &'a self,
        challenge: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>>;

    /// The `DPoP` header (RFC 9449) for a request sent with `authorization`
    /// to `method` `url`; `None` (the default) when the token is not bound.
    fn proof<'a>(
        &'a self,
        method: &'a str,
        url: &'a str,
        authorization: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        let _ = (method, url, authorization);
        Box::pin(async { Ok(None) })
    }

    /// The server sent this DPoP nonce (`DPoP-Nonce`, RFC 9449 §8, §9):
    /// later proofs carry it. `true` when this credential makes proofs, so a
    /// request refused with `use_dpop_nonce` is worth one retry.
    fn dpop_nonce(&self, nonce: &str) -> bool {
        let _ = nonce;
        false
    }
}

/// A fixed header value (or none), for servers guarded by an API key or a
/// static token: nothing to refresh, so a 401 or 403 is final.
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials {
    value: Option<String>,
}

impl StaticCredentials {
    /// Sends `value` as the `Authorization` header (`None`: no header).
    pub fn new(value: Option<String>) -> Self {
        Self { value }
    }
}

impl Credentials for StaticCredentials {
    fn authorization(&self) -> BoxFuture<'_, Result<Option<String>, CredentialsError>> {
        let value = self.value.clone();
        Box::pin(async move { Ok(value) })
    }

    fn unauthorized<'a>(
        &'a self,
        _challenge: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        Box::pin(async { Ok(None) })
    }

    fn insufficient_scope<'a>(
        &'a self,
        _challenge: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        Box::pin(async { Ok(None) })
    }
}
