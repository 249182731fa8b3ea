//! Why a fetch failed. Every message is safe to show the client that named
//! the URL: none carries what the remote answered (status, headers or body),
//! so the fetcher cannot be used as an oracle for what listens where. The
//! remote's status is kept in [`FetchError::Status`] for the operator's log.

/// A fetch that did not yield a usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL does not parse, is not http(s), has no host, or carries
    /// credentials or a fragment.
    #[error("the URL is not usable: {0}")]
    InvalidUrl(&'static str),
    /// The URL is plain http where only https is fetched.
    #[error("the URL must use https")]
    NotHttps,
    /// The host is, or resolves to (any of its addresses), a loopback,
    /// private, link-local or otherwise non-public address.
    #[error(
        "{host} resolves to a private, loopback or link-local address, which this server does not connect to"
    )]
    Forbidden {
        /// The URL's host.
        host: String,
    },
    /// The host name does not resolve.
    #[error("cannot resolve {host}")]
    Resolve {
        /// The URL's host.
        host: String,
    },
    /// No connection, or the exchange broke off (TLS, reset).
    #[error("the server could not be reached")]
    Unreachable,
    /// The whole fetch (resolution, connection, answer) took longer than allowed.
    #[error("the server did not answer in time")]
    Timeout,
    /// The answer is longer than the fetcher reads; reading stopped at the limit.
    #[error("the answer is larger than {}", size(*limit))]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The server did not answer with a success status (redirects included:
    /// they are never followed). The message never says which status.
    #[error("the server did not answer with success")]
    Status(http::StatusCode),
    /// The answer is not the JSON expected. The message never quotes it.
    #[error("the answer is not the JSON expected")]
    NotJson,
    /// A header value given for the request is not valid in a header.
    #[error("a request header is not valid")]
    InvalidHeader,
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// `64 KiB` rather than `65536 bytes` when it is a whole number of KiB.
fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

impl FetchError {
    /// Whether the refusal is about the URL itself (scheme, address), not
    /// about the remote server: retrying cannot help.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            FetchError::InvalidUrl(_) | FetchError::NotHttps | FetchError::Forbidden { .. }
        )
    }
}
