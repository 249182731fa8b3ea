//! What a fetcher may connect to: private addresses or not, https only or
//! not, the test allow-list, the deadline and the size cap.

use std::time::Duration;

use serde::Deserialize;

/// Whether a fetcher may connect to loopback, private and link-local
/// addresses (`[server] outbound_private` for operator-configured URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Private {
    /// Connect to any address (an operator's own IdP on the internal network).
    #[default]
    Allow,
    /// Refuse a host if any of its addresses is not public.
    Deny,
}

/// The process-wide setting for operator-configured URLs, set once at startup.
static CONFIGURED: std::sync::OnceLock<Private> = std::sync::OnceLock::new();

impl Private {
    /// The process's setting for operator-configured URLs (`[server]
    /// outbound_private`): [`Private::Allow`] until [`Private::configure`] ran.
    pub fn configured() -> Private {
        CONFIGURED.get().copied().unwrap_or_default()
    }

    /// Sets [`Private::configured`] once, before any verifier is built (the
    /// binary does, from its configuration). `false` if it was set already.
    pub fn configure(private: Private) -> bool {
        CONFIGURED.set(private).is_ok()
    }
}

/// The rules one [`crate::Fetcher`] applies to every request.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) private: Private,
    pub(crate) https_only: bool,
    pub(crate) allow_hosts: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
}

impl Policy {
    /// For URLs a client or a document names (CIMD documents, client
    /// `jwks_uri`, what a discovery document points to): https only, public
    /// addresses only, 5 seconds, 64 KiB.
    pub fn untrusted() -> Policy {
        Policy {
            private: Private::Deny,
            https_only: true,
            allow_hosts: Vec::new(),
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
        }
    }

    /// For URLs the operator configured: private addresses as `private`
    /// says; the scheme is the caller's to check (some sections allow http
    /// explicitly); 10 seconds, 1 MiB.
    pub fn operator(private: Private) -> Policy {
        Policy {
            private,
            https_only: false,
            allow_hosts: Vec::new(),
            timeout: Duration::from_secs(10),
            max_bytes: 1024 * 1024,
        }
    }

    /// DANGER (tests): hosts (`host` or `host:port`) fetched even on private
    /// addresses, and over plain http when they are loopback.
    pub fn allow_hosts<I, S>(mut self, hosts: I) -> Policy
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allow_hosts = hosts
            .into_iter()
            .map(|h| h.as_ref().to_ascii_lowercase())
            .collect();
        self
    }

    /// DANGER: connect to private, loopback and link-local addresses too.
    pub fn allow_private(mut self) -> Policy {
        self.private = Private::Allow;
        self
    }

    /// The deadline of a whole fetch: resolution, connection and the answer's body.
    pub fn timeout(mut self, timeout: Duration) -> Policy {
        self.timeout = timeout;
        self
    }

    /// The most bytes of an answer read; reading stops past it.
    pub fn max_bytes(mut self, max_bytes: usize) -> Policy {
        self.max_bytes = max_bytes;
        self
    }

    /// Whether `url`'s host (or host:port) is on the allow-list.
    pub(crate) fn allow_listed(&self, url: &url::Url) -> bool {
        host_listed(url, &self.allow_hosts)
    }
}

/// Whether `url`'s host, or its `host:port`, is one of `hosts` (written in
/// lower case, as [`Policy::allow_hosts`] keeps them).
pub fn host_listed(url: &url::Url, hosts: &[String]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let with_port = url.port_or_known_default().map(|p| format!("{host}:{p}"));
    hosts
        .iter()
        .any(|a| *a == host || Some(a) == with_port.as_ref())
}
