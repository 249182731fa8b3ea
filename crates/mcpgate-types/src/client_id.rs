//! `client_id` (RFC 6749 §2.2, appendix A.1): how a client names itself.
//!
//! Either an identifier the server issued or an administrator chose, or the
//! https URL of a client ID metadata document; this type only holds the
//! grammar (one or more VSCHAR, printable ASCII), which both share. Which of
//! the two it is, and whether such a client exists, the authorization server
//! decides.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A client identifier: non-empty printable ASCII.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl TryFrom<String> for ClientId {
    type Error = ParseError;

    fn try_from(s: String) -> Result<ClientId, ParseError> {
        if s.is_empty() {
            return Err(ParseError::ClientIdEmpty);
        }
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ParseError::ClientIdChar(s));
        }
        Ok(ClientId(s))
    }
}

impl FromStr for ClientId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<ClientId, ParseError> {
        ClientId::try_from(s.to_owned())
    }
}

text_newtype!(ClientId);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn printable_ascii_is_a_client_id_and_nothing_else() {
        for ok in [
            "abc",
            "mcp-cli",
            "https://app.example/client.json",
            "a b",
            "~",
        ] {
            assert_eq!(ok.parse::<ClientId>().unwrap().as_str(), ok);
        }
        assert_eq!("".parse::<ClientId>(), Err(ParseError::ClientIdEmpty));
        for bad in ["a\nb", "tab\there", "é", "nul\0"] {
            assert!(matches!(
                bad.parse::<ClientId>(),
                Err(ParseError::ClientIdChar(_))
            ));
        }
    }

    #[test]
    fn serde_goes_through_the_constructor() {
        let id: ClientId = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"abc\"");
        assert!(serde_json::from_str::<ClientId>("\"\"").is_err());
        assert!(serde_json::from_str::<ClientId>("\"a\\u0001\"").is_err());
    }

    proptest! {
        #[test]
        fn accepted_exactly_when_every_byte_is_vschar(s in "\\PC{0,12}") {
            let ok = !s.is_empty() && s.bytes().all(|b| (0x20..=0x7e).contains(&b));
            prop_assert_eq!(s.parse::<ClientId>().is_ok(), ok);
        }
    }
}
