//! Why a value was refused: one enum for every type of this crate, each
//! variant naming the rule, its message written for the person who typed the
//! value (it reaches registration answers and the CLI as is).

/// A value that its RFC refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text does not parse as an absolute URI at all.
    #[error("{value:?} is not an absolute URI ({reason})")]
    NotAbsoluteUri {
        /// The text as given.
        value: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A redirect URI with a control character or white space (RFC 3986 has none).
    #[error("{0:?} contains a control character or a space, which redirect URIs must not have")]
    RedirectControl(String),
    /// A redirect URI with a fragment (RFC 6749 §3.1.2).
    #[error("{0:?} has a fragment, which redirect URIs must not have")]
    RedirectFragment(String),
    /// A redirect URI whose scheme a browser would run or fetch as content.
    #[error("{value:?}: the {scheme} scheme is not allowed for redirects")]
    RedirectScheme {
        /// The URI as given.
        value: String,
        /// Its scheme.
        scheme: String,
    },
    /// An https redirect URI without a host.
    #[error("{0:?} has no host")]
    RedirectNoHost(String),
    /// A loopback redirect URI written in a spelling that could hide another
    /// host or path (RFC 8252 §7.3 is matched on the text, so the text must be plain).
    #[error(
        "{0:?}: write a loopback redirect exactly as http://127.0.0.1[:port]/path, http://[::1][:port]/path or http://localhost[:port]/path (lowercase, decimal port, no . or .. path segments)"
    )]
    RedirectLoopbackSpelling(String),
    /// A plain-http redirect URI to a host other than loopback (RFC 8252 §8.3).
    #[error(
        "{0:?}: plain http is allowed only for loopback (127.0.0.1, [::1], localhost); use https"
    )]
    RedirectPlainHttp(String),
    /// The out-of-band URI in a registration a client made itself: it would
    /// let anyone's client show codes on the server's own page.
    #[error(
        "urn:ietf:wg:oauth:2.0:oob (out-of-band) is only for clients an administrator registers (mcpgate clients add)"
    )]
    RedirectOutOfBand,
    /// A resource indicator with a fragment (RFC 8707 §2).
    #[error("{0:?} has a fragment; a resource URI must not")]
    ResourceFragment(String),
    /// A resource indicator that is not an http(s) URL.
    #[error("{0:?}: a resource URI is an http(s) URL")]
    ResourceScheme(String),
    /// An empty client identifier.
    #[error("a client id must not be empty")]
    ClientIdEmpty,
    /// A client identifier with a character outside RFC 6749's VSCHAR (%x20-7E).
    #[error("{0:?}: a client id is printable ASCII (RFC 6749 appendix A.1)")]
    ClientIdChar(String),
}
