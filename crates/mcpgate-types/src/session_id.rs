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

impl SessionId {
    /// An id that carries nothing but 128 random bits, as 32 hex digits:
    /// what a server mints when the id need not say anything (always valid,
    /// so minting one cannot fail).
    pub fn from_random_bits(bits: u128) -> SessionId {
        SessionId(format!("{bits:032x}"))
    }
}

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

    #[test]
    fn a_minted_id_is_32_hex_digits_and_parses_again() {
        let id = SessionId::from_random_bits(0xab);
        assert_eq!(id, "000000000000000000000000000000ab");
        assert_eq!(id.as_str().parse::<SessionId>().unwrap(), id);
        assert_eq!(SessionId::from_random_bits(u128::MAX).as_str().len(), 32);
    }
}
