//! Request parameters as OAuth reads them: form or query pairs where a
//! repeated parameter is an error (RFC 6749 §3.1), not "the last one wins".

use std::collections::BTreeMap;

use crate::error::OAuthError;

/// Parameters of one request, each at most once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    map: BTreeMap<String, String>,
    /// In arrival order, to re-post them from a form.
    pub(crate) pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text; a repeated name is `invalid_request`.
    pub(crate) fn parse(text: &str) -> Result<Params, OAuthError> {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(text.as_bytes()) {
            if p.map.contains_key(k.as_ref()) {
                return Err(OAuthError::request(format!(
                    "parameter {k:?} appears more than once"
                )));
            }
            p.map.insert(k.to_string(), v.to_string());
            p.pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(p)
    }

    /// The value of `name`, if present and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub(crate) fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::request(format!("the {name} parameter is required")))
    }

    /// These parameters without `names` (the form's own fields).
    pub(crate) fn without(&self, names: &[&str]) -> Params {
        let mut p = Params::default();
        for (k, v) in &self.pairs {
            if !names.contains(&k.as_str()) {
                p.map.insert(k.clone(), v.clone());
                p.pairs.push((k.clone(), v.clone()));
            }
        }
        p
    }

    /// The first parameter whose name or value holds a control character:
    /// such a value must never reach a header (`Location`), and no OAuth
    /// parameter legitimately has one (RFC 6749 §A: visible ASCII and space).
    pub(crate) fn control_character(&self) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| has_control(k) || has_control(v))
            .map(|(k, _)| k.as_str())
    }

    /// Them as a query string.
    pub(crate) fn to_query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// Whether `s` holds a control character (C0, DEL or C1), e.g. CR/LF.
pub(crate) fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

#[cfg(test)]
mod props;
