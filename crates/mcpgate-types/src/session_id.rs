//! `Mcp-Session-Id` (MCP 2025-06-18, Streamable HTTP, session management):
//! the id a server assigns at initialize and the client echoes on every request.

use serde::{Deserialize, Serialize};

/// Why a session id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionIdError {
    /// An empty id.
    #[error("a session id must not be empty")]
    Empty,
    /// A character outside visible ASCII (0x21 to 0x7E), which the spec
    /// requires of session ids.
    #[error("a session id is visible ASCII (0x21 to 0x7E) only")]
    Char,
}

/// A session id. It is not a credential: every request with it is still
/// authenticated, and a session belongs to the subject that opened it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

fn check(s: &str) -> Result<(), SessionIdError> {
    if s.is_empty() {
        return Err(SessionIdError::Empty);
    }
    if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(SessionIdError::Char);
    }
    Ok(())
}

string_newtype!(SessionId, SessionIdError, check);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_is_visible_ascii() {
        assert_eq!("3f0c-1a~x".parse::<SessionId>().unwrap(), "3f0c-1a~x");
        assert_eq!("".parse::<SessionId>(), Err(SessionIdError::Empty));
        assert_eq!("a b".parse::<SessionId>(), Err(SessionIdError::Char));
        assert_eq!("é".parse::<SessionId>(), Err(SessionIdError::Char));
    }
}
