//! `aud` (RFC 7519 §4.1.3, RFC 9068 §3): whom a token is for. For tokens of an
//! MCP server it is the server's resource URI (RFC 8707); other issuers use
//! any identifier (`api://notes`).

use serde::{Deserialize, Serialize};

/// Why an audience was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudienceError {
    /// An empty audience: a token for "" would be for nobody in particular.
    #[error("an audience must not be empty")]
    Empty,
    /// White space or a control character: an audience is one StringOrURI,
    /// and a space would let one value read as two.
    #[error("{0:?}: an audience is one value without spaces or control characters")]
    Char(String),
}

/// One audience value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Audience(String);

fn check(s: &str) -> Result<(), AudienceError> {
    if s.is_empty() {
        return Err(AudienceError::Empty);
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AudienceError::Char(s.to_owned()));
    }
    Ok(())
}

string_newtype!(Audience, AudienceError, check);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audience_is_one_value() {
        assert_eq!(
            "https://gw.example/mcp/notes".parse::<Audience>().unwrap(),
            "https://gw.example/mcp/notes"
        );
        assert!("api://notes".parse::<Audience>().is_ok());
        assert_eq!("".parse::<Audience>(), Err(AudienceError::Empty));
        assert!(matches!(
            "a b".parse::<Audience>(),
            Err(AudienceError::Char(_))
        ));
    }
}
