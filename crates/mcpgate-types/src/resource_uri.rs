//! Resource indicators (RFC 8707): the URI of the protected resource a token
//! is for, which becomes its `aud`.
//!
//! Kept in one canonical form so that `X`, `X/`, `HTTPS://X` and `https://X:443`
//! are the same resource: the URL as the `url` crate serializes it (scheme and
//! host lowercased, default port dropped), without one trailing slash.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// An absolute http(s) URI without a fragment, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceUri(String);

impl ResourceUri {
    /// The canonical form of an already parsed URL; refuses what
    /// [`FromStr`] refuses.
    pub fn from_url(u: &url::Url) -> Result<ResourceUri, ParseError> {
        if u.fragment().is_some() {
            return Err(ParseError::ResourceFragment(u.to_string()));
        }
        if !matches!(u.scheme(), "https" | "http") {
            return Err(ParseError::ResourceScheme(u.to_string()));
        }
        let s = u.as_str();
        Ok(ResourceUri(s.strip_suffix('/').unwrap_or(s).to_owned()))
    }
}

impl FromStr for ResourceUri {
    type Err = ParseError;

    fn from_str(r: &str) -> Result<ResourceUri, ParseError> {
        let u = url::Url::parse(r).map_err(|e| ParseError::NotAbsoluteUri {
            value: r.to_owned(),
            reason: e.to_string(),
        })?;
        // The messages quote the URI as given, not as parsed.
        ResourceUri::from_url(&u).map_err(|e| match e {
            ParseError::ResourceFragment(_) => ParseError::ResourceFragment(r.to_owned()),
            ParseError::ResourceScheme(_) => ParseError::ResourceScheme(r.to_owned()),
            other => other,
        })
    }
}

impl TryFrom<String> for ResourceUri {
    type Error = ParseError;

    fn try_from(s: String) -> Result<ResourceUri, ParseError> {
        s.parse()
    }
}

text_newtype!(ResourceUri);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn canon(s: &str) -> String {
        s.parse::<ResourceUri>().unwrap().to_string()
    }

    #[test]
    fn spellings_of_one_resource_are_one_value() {
        assert_eq!(canon("https://H.example/mcp"), "https://h.example/mcp");
        assert_eq!(canon("https://h.example/mcp/"), "https://h.example/mcp");
        assert_eq!(canon("HTTPS://h.example:443/mcp"), "https://h.example/mcp");
        assert_eq!(canon("https://h.example"), "https://h.example");
        assert_eq!(
            canon("http://127.0.0.1:8080/mcp"),
            "http://127.0.0.1:8080/mcp"
        );
        assert_ne!(
            canon("https://h.example/mcp"),
            canon("https://h.example/other")
        );
    }

    #[test]
    fn what_rfc_8707_refuses_is_refused_with_the_uri_as_given() {
        assert_eq!(
            "https://h.example/mcp#x".parse::<ResourceUri>(),
            Err(ParseError::ResourceFragment(
                "https://h.example/mcp#x".into()
            ))
        );
        assert_eq!(
            "urn:x:y".parse::<ResourceUri>(),
            Err(ParseError::ResourceScheme("urn:x:y".into()))
        );
        let e = "/mcp".parse::<ResourceUri>().unwrap_err().to_string();
        assert!(e.contains("not an absolute URI"), "{e}");
        assert!(serde_json::from_str::<ResourceUri>("\"ftp://h/x\"").is_err());
        let r: ResourceUri = serde_json::from_str("\"https://H.example/\"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"https://h.example\"");
    }

    proptest! {
        /// The canonical form is a fixed point: parsing it again changes nothing.
        #[test]
        fn canonical_form_is_stable(
            scheme in prop::sample::select(vec!["http", "https", "HTTPS"]),
            host in "[a-zA-Z][a-zA-Z0-9]{0,8}(\\.[a-z]{1,4})?",
            port in prop::option::of(1u16..),
            path in "(/[a-zA-Z0-9_-]{1,6}){0,3}/?",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let once = canon(&format!("{scheme}://{host}{port}{path}"));
            prop_assert_eq!(canon(&once), once.clone());
        }
    }
}
