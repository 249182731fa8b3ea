//! Signing in only when the server asks for it.
//!
//! [`TokenManager`]'s own `authorization` signs in as soon as there is no
//! stored sign-in. For a bridge that is too early: the server may need no
//! token at all (an API key in another header, or no authentication), and the
//! MCP authorization flow starts from the server's 401 anyway.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::credentials::{Credentials, CredentialsError};
use crate::manager::TokenManager;

/// [`Credentials`] that send the stored sign-in's token (refreshed when due)
/// and, with none stored, send no `Authorization` header until a 401 asks
/// for one; then they sign in as the [`TokenManager`] is configured to.
pub struct SignInOnChallenge {
    manager: Arc<TokenManager>,
}

impl SignInOnChallenge {
    /// Wraps `manager`.
    pub fn new(manager: Arc<TokenManager>) -> Self {
        SignInOnChallenge { manager }
    }
}

impl Credentials for SignInOnChallenge {
    fn authorization(&self) -> BoxFuture<'_, Result<Option<String>, CredentialsError>> {
        Box::pin(async move {
            let stored = self
                .manager
                .stored()
                .await
                .map_err(|e| CredentialsError::new(e.to_string()))?;
            match stored {
                Some(_) => self.manager.authorization().await,
                None => Ok(None),
            }
        })
    }

    fn unauthorized<'a>(
        &'a self,
        challenge: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        self.manager.unauthorized(challenge)
    }

    fn insufficient_scope<'a>(
        &'a self,
        challenge: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        self.manager.insufficient_scope(challenge)
    }

    // The trait's boxed-future signature, repeated as `dyn Credentials` needs.
    fn proof<'a>(
        &'a self,
        method: &'a str,
        url: &'a str,
        authorization: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CredentialsError>> {
        self.manager.proof(method, url, authorization)
    }

    fn dpop_nonce(&self, nonce: &str) -> bool {
        self.manager.dpop_nonce(nonce)
    }
}
