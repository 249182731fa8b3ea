//! The DNS resolver of the checking client: it resolves a host once, refuses
//! it if ANY of its addresses is forbidden, and hands exactly the checked
//! addresses to the connector. The connection therefore goes to an address
//! that was checked, and no second lookup (DNS rebinding) can steer it.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::address::is_forbidden;

/// Resolves and checks every address (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckingResolver;

/// A host that resolved to a forbidden address; found again in the error's
/// source chain to report [`crate::FetchError::Forbidden`].
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {addr}, a non-public address")]
pub(crate) struct Refused {
    pub(crate) host: String,
    pub(crate) addr: std::net::IpAddr,
}

/// A host that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{host} does not resolve")]
pub(crate) struct Unresolved {
    pub(crate) host: String,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(a) => a.collect(),
                Err(_) => Vec::new(),
            };
            if addrs.is_empty() {
                return Err(Box::new(Unresolved { host }) as _);
            }
            if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
                return Err(Box::new(Refused {
                    host,
                    addr: bad.ip(),
                }) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
