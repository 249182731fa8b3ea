//! `scope` (RFC 6749 §3.3): what access a token carries, as a set of
//! space-delimited scope tokens.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// An empty scope token.
    #[error("a scope must not be empty")]
    Empty,
    /// A character outside RFC 6749's scope-token (%x21 / %x23-5B / %x5D-7E):
    /// a space, a quote, a backslash, a control or non-ASCII character.
    #[error("{0:?}: a scope is printable ASCII without space, '\"' or '\\' (RFC 6749 §3.3)")]
    Char(String),
}

/// One scope token (`notes:read`); `*` is an ordinary token here, what it
/// grants is policy's business.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

fn check(s: &str) -> Result<(), ScopeError> {
    if s.is_empty() {
        return Err(ScopeError::Empty);
    }
    let token = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    if !s.bytes().all(token) {
        return Err(ScopeError::Char(s.to_owned()));
    }
    Ok(())
}

string_newtype!(Scope, ScopeError, check);

/// A set of scopes, written as one space-delimited string (`"a b c"`).
/// Repeats collapse; order is not significant and displays sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// No scopes.
    pub fn new() -> Self {
        ScopeSet::default()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// Adds a scope; whether it was new.
    pub fn insert(&mut self, scope: Scope) -> bool {
        self.0.insert(scope)
    }

    /// The scopes, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// How many scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scope tokens of `words` that follow RFC 6749, the others left out.
    ///
    /// For what another party wrote (a token's `scope` or `scp` claim, an
    /// introspection answer): a token that is not a scope-token can never equal
    /// a scope policy asks for, so leaving it out changes no decision, where
    /// refusing the whole credential for it would.
    pub fn from_words_lossy<'a>(words: impl IntoIterator<Item = &'a str>) -> ScopeSet {
        words
            .into_iter()
            .flat_map(str::split_ascii_whitespace)
            .filter_map(|w| w.parse().ok())
            .collect()
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;

    /// Splits on ASCII white space (RFC 6749 delimits with spaces; a tab or a
    /// newline in configuration is taken as one too) and parses each token.
    fn from_str(s: &str) -> Result<ScopeSet, ScopeError> {
        s.split_ascii_whitespace()
            .map(Scope::from_str)
            .collect::<Result<_, _>>()
            .map(ScopeSet)
    }
}

impl TryFrom<String> for ScopeSet {
    type Error = ScopeError;

    fn try_from(s: String) -> Result<ScopeSet, ScopeError> {
        s.parse()
    }
}

impl From<ScopeSet> for String {
    fn from(s: ScopeSet) -> String {
        s.to_string()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        ScopeSet(iter.into_iter().collect())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert_eq!("notes:read".parse::<Scope>().unwrap(), "notes:read");
        assert!("*".parse::<Scope>().is_ok());
        assert_eq!("".parse::<Scope>(), Err(ScopeError::Empty));
        for bad in ["a b", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(
                matches!(bad.parse::<Scope>(), Err(ScopeError::Char(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_set_parses_space_delimited_and_displays_sorted() {
        let s: ScopeSet = " notes:write  notes:read notes:read".parse().unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.contains("notes:read"));
        assert_eq!(s.to_string(), "notes:read notes:write");
        assert!("".parse::<ScopeSet>().unwrap().is_empty());
        assert!("ok bad\"".parse::<ScopeSet>().is_err());
        let json: ScopeSet = serde_json::from_str("\"b a\"").unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"a b\"");
        assert!(serde_json::from_str::<Scope>("\"a b\"").is_err());
    }

    #[test]
    fn a_lossy_set_keeps_only_scope_tokens() {
        let s = ScopeSet::from_words_lossy(["b a", "é", "c\"d", "a"]);
        assert_eq!(s.to_string(), "a b");
    }

    proptest! {
        #[test]
        fn a_displayed_set_parses_back_to_itself(words in proptest::collection::vec("[!#-\\[\\]-~]{1,12}", 0..8)) {
            let set: ScopeSet = words.join(" ").parse().unwrap();
            let again: ScopeSet = set.to_string().parse().unwrap();
            prop_assert_eq!(set, again);
        }

        #[test]
        fn any_text_either_parses_or_names_the_rule(s in "\\PC{0,20}") {
            match s.parse::<Scope>() {
                Ok(scope) => prop_assert!(!scope.as_str().contains(' ')),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
