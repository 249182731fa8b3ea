//! `redirect_uri` (RFC 6749 §3.1.2, RFC 8252 for native apps): where the
//! authorization server sends the browser back.
//!
//! Matched by exact string, except that the port of a loopback `http` URI is
//! ignored (RFC 8252 §7.3): a native app listens on whatever port it gets.
//! Loopback URIs are compared as raw text, never after URL parsing: the `url`
//! crate would turn `127.1`, `2130706433`, `0x7f000001`, `127.0.0.1.` or
//! `LOCALHOST` into a loopback host and `/x/../cb` into `/cb`, so such
//! spellings are refused, not normalized. `localhost` and `127.0.0.1` stay
//! distinct.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// The out-of-band redirect: the code is shown on a page for pasting into a CLI.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

/// The loopback hosts a redirect URI may name, exactly as written.
const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "[::1]", "localhost"];

/// Schemes a browser would run or show as content rather than hand to an app.
const REFUSED_SCHEMES: [&str; 9] = [
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "ftp",
    "ws",
    "wss",
];

/// A redirect URI that may be registered: absolute, no fragment, https, a
/// loopback `http` URI written plainly, a private-use scheme (RFC 8252
/// §7.1: `cursor://…`, `com.example.app:/cb`), or [`OOB`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    /// A URI a client registers itself (dynamic registration, metadata
    /// documents): as [`FromStr`], without [`OOB`], which only an
    /// administrator may register.
    pub fn self_registered(s: &str) -> Result<RedirectUri, ParseError> {
        if s == OOB {
            return Err(ParseError::RedirectOutOfBand);
        }
        s.parse()
    }

    /// Whether it is the out-of-band URI.
    pub fn is_out_of_band(&self) -> bool {
        self.0 == OOB
    }

    /// Whether it is a loopback `http` URI (a native app on the user's machine).
    pub fn is_loopback(&self) -> bool {
        Loopback::split(&self.0).is_some()
    }

    /// Whether `requested` (as sent to `/authorize` or `/token`) names this
    /// URI: byte-equal, or both loopback `http` URIs equal except for their
    /// ports (RFC 8252 §7.3).
    pub fn matches(&self, requested: &str) -> bool {
        if self.0 == requested {
            return true;
        }
        match (Loopback::split(&self.0), Loopback::split(requested)) {
            (Some(r), Some(q)) => r == q,
            _ => false,
        }
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = ParseError;

    fn try_from(uri: String) -> Result<RedirectUri, ParseError> {
        if uri == OOB {
            return Ok(RedirectUri(uri));
        }
        if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ParseError::RedirectControl(uri));
        }
        let u = match url::Url::parse(&uri) {
            Ok(u) => u,
            Err(e) => {
                return Err(ParseError::NotAbsoluteUri {
                    value: uri,
                    reason: e.to_string(),
                });
            }
        };
        if u.fragment().is_some() || uri.contains('#') {
            return Err(ParseError::RedirectFragment(uri));
        }
        match u.scheme() {
            s if REFUSED_SCHEMES.contains(&s) => Err(ParseError::RedirectScheme {
                scheme: s.to_owned(),
                value: uri,
            }),
            "https" if u.host_str().is_none_or(str::is_empty) => {
                Err(ParseError::RedirectNoHost(uri))
            }
            "http" if Loopback::split(&uri).is_none() => {
                if is_loopback_host(&u) {
                    Err(ParseError::RedirectLoopbackSpelling(uri))
                } else {
                    Err(ParseError::RedirectPlainHttp(uri))
                }
            }
            _ => Ok(RedirectUri(uri)),
        }
    }
}

impl FromStr for RedirectUri {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<RedirectUri, ParseError> {
        RedirectUri::try_from(s.to_owned())
    }
}

/// Whether `u`'s host is loopback as the URL parser reads it (`localhost` in
/// any case, 127.0.0.0/8, `::1`): for deciding about URLs already parsed,
/// never for matching redirect URIs, which are compared as written.
pub fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A loopback `http` URI as written: its host, and what follows the port.
#[derive(Debug, PartialEq, Eq)]
struct Loopback<'a> {
    host: &'a str,
    rest: &'a str,
}

impl<'a> Loopback<'a> {
    /// `uri` split by hand, if it is `http://HOST[:PORT]REST` with HOST one of
    /// [`LOOPBACK_HOSTS`] exactly, PORT a decimal port without leading zeros,
    /// and REST free of fragments, backslashes and dot segments.
    fn split(uri: &'a str) -> Option<Loopback<'a>> {
        let after = uri.strip_prefix("http://")?;
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(end);
        let host = LOOPBACK_HOSTS
            .into_iter()
            .find(|h| authority.starts_with(h))?;
        match &authority[host.len()..] {
            "" => {}
            p => {
                let digits = p.strip_prefix(':')?;
                let ok = !digits.is_empty()
                    && digits.len() <= 5
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && !digits.starts_with('0')
                    && digits.parse::<u32>().is_ok_and(|n| n <= 65_535);
                if !ok {
                    return None;
                }
            }
        }
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let dot_segment = path.split('/').any(|seg| {
            let seg = seg.to_ascii_lowercase().replace("%2e", ".");
            seg == "." || seg == ".."
        });
        if rest.contains(['#', '\\']) || dot_segment || rest.chars().any(char::is_control) {
            return None;
        }
        Some(Loopback { host, rest })
    }
}

text_newtype!(RedirectUri);

#[cfg(test)]
mod tests;
