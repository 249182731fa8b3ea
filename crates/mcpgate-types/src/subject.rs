//! `sub` (RFC 7519 §4.1.2): who a token is about, unique at its issuer.

use serde::{Deserialize, Serialize};

/// Why a subject was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// An empty subject: it would name nobody, or everyone.
    #[error("a subject must not be empty")]
    Empty,
    /// A control character: subjects travel in headers, environment variables
    /// and log lines, where one could forge a line or a field.
    #[error("{0:?}: a subject must not contain control characters")]
    Control(String),
}

/// A subject identifier (`alice`, `auth0|123`, `wandb:4f2a…`). Case-sensitive,
/// compared as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(String);

fn check(s: &str) -> Result<(), SubjectError> {
    if s.is_empty() {
        return Err(SubjectError::Empty);
    }
    if s.chars().any(char::is_control) {
        return Err(SubjectError::Control(s.to_owned()));
    }
    Ok(())
}

string_newtype!(Subject, SubjectError, check);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_any_text_without_control_characters() {
        assert_eq!("auth0|123".parse::<Subject>().unwrap(), "auth0|123");
        assert_eq!(
            "Ünïcode user".parse::<Subject>().unwrap().as_str(),
            "Ünïcode user"
        );
        assert_eq!("".parse::<Subject>(), Err(SubjectError::Empty));
        assert!(matches!(
            "a\nb".parse::<Subject>(),
            Err(SubjectError::Control(_))
        ));
        assert!(serde_json::from_str::<Subject>("\"\"").is_err());
    }
}
