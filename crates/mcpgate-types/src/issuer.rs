//! Two kinds of issuer, which look alike but follow different rules:
//!
//! - [`Issuer`] (RFC 8414 §2, RFC 9207): an OAuth authorization server's
//!   identifier, an https URL with no query or fragment, from which its
//!   metadata is found. This server's own `issuer`, the metadata it
//!   publishes, the `authorization_servers` of a resource's metadata (RFC
//!   9728) and the issuer a client discovers are all this.
//! - [`JwtIssuer`] (RFC 7519 §4.1.1): the `iss` claim of a JWT, a
//!   StringOrURI. An identity provider's tokens need not name a URL
//!   (Google's ID tokens say `accounts.google.com`), so `[[auth.jwt]]
//!   issuer` is this, compared exactly with the claim.
//!
//! Both are compared as text: `https://a/` and `https://a` are two issuers.

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

impl Issuer {
    /// This server's own issuer built from `server.public_url`, which may be
    /// plain http on a host that is not loopback: a deployment behind a proxy
    /// that was not told it terminates TLS has always started, with a warning
    /// (its login cookie cannot be `Secure`), and keeps starting. RFC 8414
    /// clients will refuse such an issuer; that is what the warning says.
    /// Anything else [`FromStr`](std::str::FromStr) refuses is refused here too.
    pub fn allowing_plain_http(s: &str) -> Result<Issuer, IssuerError> {
        match check(s) {
            Err(IssuerError::Scheme(_))
                if url::Url::parse(s).is_ok_and(|u| u.scheme() == "http" && u.host().is_some()) =>
            {
                if s.contains('?') || s.contains('#') {
                    return Err(IssuerError::QueryOrFragment(s.to_owned()));
                }
                Ok(Issuer(s.to_owned()))
            }
            Err(e) => Err(e),
            Ok(()) => Ok(Issuer(s.to_owned())),
        }
    }
}

/// Why a JWT `iss` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtIssuerError {
    /// Empty, or with white space around it: no token's `iss` would match it
    /// as meant, since the claim is compared exactly.
    #[error("{0:?}: write the exact iss of the tokens, not empty and without surrounding spaces")]
    Blank(String),
    /// A control character, which no issuer has and which could forge a log line.
    #[error("{0:?}: an issuer has no control characters")]
    Control(String),
}

/// The `iss` claim a trusted token issuer puts in its JWTs, exactly as
/// configured: a URL (`https://idp.example/`) or not (`accounts.google.com`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JwtIssuer(String);

fn check_jwt(s: &str) -> Result<(), JwtIssuerError> {
    if s.trim().is_empty() || s.trim() != s {
        return Err(JwtIssuerError::Blank(s.to_owned()));
    }
    if s.chars().any(char::is_control) {
        return Err(JwtIssuerError::Control(s.to_owned()));
    }
    Ok(())
}

string_newtype!(JwtIssuer, JwtIssuerError, check_jwt);

impl JwtIssuer {
    /// The authorization server this issuer is, if it is one: tokens of an
    /// issuer that is not an https URL can only be got some other way, and
    /// no resource metadata may name it (RFC 9728 §2).
    pub fn as_authorization_server(&self) -> Result<Issuer, IssuerError> {
        self.0.parse()
    }
}

impl From<Issuer> for JwtIssuer {
    /// An authorization server's issuer is what it writes in `iss`.
    fn from(i: Issuer) -> JwtIssuer {
        JwtIssuer(i.0)
    }
}

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

    #[test]
    fn the_servers_own_issuer_may_be_plain_http_elsewhere_but_nothing_else() {
        let i = Issuer::allowing_plain_http("http://gw.internal:8080/t1").unwrap();
        assert_eq!(i, "http://gw.internal:8080/t1");
        assert!(Issuer::allowing_plain_http("https://gw.example").is_ok());
        assert!(matches!(
            Issuer::allowing_plain_http("http://gw.internal/?a"),
            Err(IssuerError::QueryOrFragment(_))
        ));
        assert!(matches!(
            Issuer::allowing_plain_http("ftp://gw.internal"),
            Err(IssuerError::Scheme(_))
        ));
        assert!(matches!(
            Issuer::allowing_plain_http("gw.internal"),
            Err(IssuerError::NotUrl { .. })
        ));
    }

    #[test]
    fn a_jwt_issuer_is_any_exact_text_and_maybe_an_authorization_server() {
        let google: JwtIssuer = "accounts.google.com".parse().unwrap();
        assert_eq!(google, "accounts.google.com");
        assert!(google.as_authorization_server().is_err());
        let auth0: JwtIssuer = "https://t.auth0.com/".parse().unwrap();
        assert_eq!(
            auth0.as_authorization_server().unwrap(),
            "https://t.auth0.com/"
        );
        for bad in ["", " ", " https://a", "https://a\n", "a\u{7}b"] {
            assert!(bad.parse::<JwtIssuer>().is_err(), "{bad:?}");
        }
        assert!(matches!(
            "a\u{7}b".parse::<JwtIssuer>(),
            Err(JwtIssuerError::Control(_))
        ));
        let i: Issuer = "https://a".parse().unwrap();
        assert_eq!(JwtIssuer::from(i), "https://a");
        assert!(serde_json::from_str::<JwtIssuer>("\"\"").is_err());
    }
}
