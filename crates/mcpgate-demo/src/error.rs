//! The demo's one error type, and the single place it is mapped onto MCP.
//!
//! Tools report every failure as a tool result with `isError: true` (the
//! caller's model and user get to read it); resources and prompts have no
//! such channel, so there the same errors become JSON-RPC errors.

use rmcp::ErrorData;

/// Everything that can go wrong while starting the server or serving one request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The caller sent arguments we refuse; the message says how to fix them.
    #[error("{0}")]
    InvalidInput(String),
    /// The `x-mcpgate-subject` header cannot name a user.
    #[error("the x-mcpgate-subject header is unusable: {0}")]
    BadSubjectHeader(&'static str),
    /// The thing asked for does not exist for this caller. Another user's note
    /// is reported exactly like a missing one, so ids reveal nothing.
    #[error("{0}")]
    NotFound(String),
    /// The client could not, or would not, answer a question we asked it
    /// (elicitation or sampling).
    #[error("{0}")]
    Client(String),
    /// SQLite failed. The detail goes to the log, not to the caller.
    #[error("the demo server's database failed; the server log has the details")]
    Store(#[from] sqlx::Error),
    /// The server could not start, or its session failed: the data directory,
    /// the database, `MCPGATE_SUBJECT`, the listener or the MCP handshake. The
    /// message says which, then why.
    #[error("{0}")]
    Start(String),
}

impl DemoError {
    /// A [`Start`](Self::Start) error: what failed, then why.
    pub(crate) fn start(what: impl std::fmt::Display, why: impl std::fmt::Display) -> Self {
        Self::Start(format!("{what}: {why}"))
    }

    /// The text a tool result carries for this error.
    pub(crate) fn into_tool_message(self) -> String {
        self.log_if_internal();
        self.to_string()
    }

    fn log_if_internal(&self) {
        if let Self::Store(source) = self {
            tracing::error!(error = %source, "demo database error");
        }
    }
}

impl From<DemoError> for ErrorData {
    fn from(error: DemoError) -> Self {
        error.log_if_internal();
        let message = error.to_string();
        match error {
            DemoError::InvalidInput(_) | DemoError::BadSubjectHeader(_) => {
                ErrorData::invalid_params(message, None)
            }
            DemoError::NotFound(_) => ErrorData::resource_not_found(message, None),
            DemoError::Client(_) | DemoError::Store(_) | DemoError::Start(_) => {
                ErrorData::internal_error(message, None)
            }
        }
    }
}
