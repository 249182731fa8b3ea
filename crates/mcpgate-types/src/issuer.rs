//! `iss` (RFC 8414 §2, RFC 9207): an authorization server's identifier, a URL
//! with no query or fragment. Compared as text: `https://a/` and `https://a`
//! are two issuers.

use serde::{Deserialize, Serialize};

/// Why an issuer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// Not an absolute URL.
    #[error("{value:?} is not an absolute URL ({reason})")]
    NotUrl {
        /// The text as given.
        value: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A scheme other than https, or http to a loopback host (development).
    #[error("{0:?}: an issuer is an https URL (http only for 127.0.0.1, [::1] or localhost)")]
    Scheme(String),
    /// A query or fragment, which RFC 8414 §2 forbids.
    #[error("{0:?}: an issuer has no query or fragment (RFC 8414 §2)")]
    QueryOrFragment(String),
}

/// An issuer identifier, exactly as written (it must match the `iss` claim
/// and the metadata's `issuer` byte for byte).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Issuer(String);

fn check(s: &str) -> Result<(), IssuerError> {
    let u = url::Url::parse(s).map_err(|e| IssuerError::NotUrl {
        value: s.to_owned(),
        reason: e.to_string(),
    })?;
    let loopback = matches!(u.host(), Some(url::Host::Domain("localhost")))
        || matches!(u.host(), Some(url::Host::Ipv4(a)) if a.is_loopback())
        || matches!(u.host(), Some(url::Host::Ipv6(a)) if a.is_loopback());
    match u.scheme() {
        "https" if u.host().is_some() => {}
        "http" if loopback => {}
        _ => return Err(IssuerError::Scheme(s.to_owned())),
    }
    if s.contains('?') || s.contains('#') {
        return Err(IssuerError::QueryOrFragment(s.to_owned()));
    }
    Ok(())
}

string_newtype!(Issuer, IssuerError, check);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_is_an_https_url_without_query_or_fragment() {
        assert_eq!(
            "https://idp.example/realms/a".parse::<Issuer>().unwrap(),
            "https://idp.example/realms/a"
        );
        // Kept as written: the trailing slash is part of the identifier.
        assert_eq!(
            "https://idp.example/".parse::<Issuer>().unwrap().as_str(),
            "https://idp.example/"
        );
        assert!("http://127.0.0.1:8080".parse::<Issuer>().is_ok());
        assert!("http://localhost:9000/".parse::<Issuer>().is_ok());
        assert!(matches!(
            "http://idp.example".parse::<Issuer>(),
            Err(IssuerError::Scheme(_))
        ));
        assert!(matches!(
            "idp.example".parse::<Issuer>(),
            Err(IssuerError::NotUrl { .. })
        ));
        assert!(matches!(
            "https://idp.example/?a=b".parse::<Issuer>(),
            Err(IssuerError::QueryOrFragment(_))
        ));
        assert!(matches!(
            "https://idp.example/#x".parse::<Issuer>(),
            Err(IssuerError::QueryOrFragment(_))
        ));
    }
}
