//! The one error type of the sign-in side of this crate.

/// Why signing in, refreshing or calling a server failed. Every message says
/// what to do next; none contains a token or a client secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server or authorization server could not be reached or answered garbage.
    #[error("{0}")]
    Http(String),
    /// Discovery found no usable protected-resource or authorization-server metadata.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The authorization server cannot be used safely (no PKCE S256, issuer mismatch, …).
    #[error("refusing this authorization server: {0}")]
    Unsafe(String),
    /// No way to register a client with this authorization server.
    #[error("{0}")]
    Registration(String),
    /// The authorization server no longer knows our client (`invalid_client`).
    #[error("the authorization server does not know this client (invalid_client){0}")]
    InvalidClient(String),
    /// The refresh token was refused (`invalid_grant`): a new sign-in is needed.
    #[error("the authorization server refused the refresh token ({0}); sign in again")]
    RefreshRejected(String),
    /// The authorization server answered with an OAuth error.
    #[error("the authorization server answered {error}{description}")]
    OAuth {
        /// The OAuth `error` code.
        error: String,
        /// `: <error_description>` or empty.
        description: String,
    },
    /// The authorization response was wrong (state, issuer, error from the user's side).
    #[error("sign-in failed: {0}")]
    Authorization(String),
    /// A person must act (sign in, paste a code) and this process may not ask.
    #[error("{0}")]
    NeedsPerson(String),
    /// Reading or writing the token store failed.
    #[error("token store: {0}")]
    Store(String),
    /// A flag or configuration value is wrong.
    #[error("{0}")]
    Config(String),
    /// The MCP server answered a JSON-RPC error or an unexpected status.
    #[error("{0}")]
    Mcp(String),
    /// The server accepts requests without credentials and names no
    /// authorization server: there is nothing to sign in to (not a failure
    /// for `call`, which then goes ahead without a token).
    #[error("no sign-in needed: {0}")]
    NoSignInNeeded(String),
}

impl ClientError {
    pub(crate) fn http(context: &str, err: reqwest::Error) -> Self {
        // reqwest's Display includes the URL, never headers or bodies.
        let mut msg = format!("{context}: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        Self::Http(msg)
    }

    pub(crate) fn store(context: &str, err: impl std::fmt::Display) -> Self {
        Self::Store(format!("{context}: {err}"))
    }
}

impl From<ClientError> for crate::CredentialsError {
    fn from(err: ClientError) -> Self {
        crate::CredentialsError::new(err.to_string())
    }
}

impl From<crate::CredentialsError> for ClientError {
    fn from(err: crate::CredentialsError) -> Self {
        Self::NeedsPerson(err.message)
    }
}

/// `(error, ": description")` from an OAuth error body (empty when absent).
pub(crate) fn oauth_error_fields(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct E {
        error: Option<String>,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(e) => (
            e.error.unwrap_or_else(|| "an error".into()),
            e.error_description
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
        ),
        Err(_) => ("a non-OAuth error".into(), String::new()),
    }
}
