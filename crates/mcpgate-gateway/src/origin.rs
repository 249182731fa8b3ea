//! DNS-rebinding defence: the `Origin` and `Host` a request may carry.

use std::net::SocketAddr;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use crate::error::GatewayError;

/// Which origins and hosts may reach the gateway.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    origins: Vec<String>,
    hosts: Vec<String>,
}

impl OriginPolicy {
    /// The public URL's origin and host, the listen address, loopback names when
    /// listening on loopback, and the configured extra origins.
    pub fn new(public_url: &url::Url, listen: SocketAddr, extra_origins: &[String]) -> Self {
        let mut origins = vec![public_url.origin().ascii_serialization()];
        origins.extend(
            extra_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase()),
        );
        let mut hosts = Vec::new();
        if let Some(h) = public_url.host_str() {
            let port = public_url.port_or_known_default().unwrap_or(80);
            hosts.push(format!("{h}:{port}"));
            if public_url.port().is_none() {
                hosts.push(h.to_owned());
            }
        }
        hosts.push(listen.to_string());
        if listen.ip().is_loopback() || listen.ip().is_unspecified() {
            let p = listen.port();
            hosts.extend([
                format!("localhost:{p}"),
                format!("127.0.0.1:{p}"),
                format!("[::1]:{p}"),
            ]);
        }
        for o in extra_origins {
            if let Ok(u) = url::Url::parse(o)
                && let Some(h) = u.host_str()
            {
                hosts.push(format!("{h}:{}", u.port_or_known_default().unwrap_or(80)));
            }
        }
        for h in &mut hosts {
            h.make_ascii_lowercase();
        }
        OriginPolicy { origins, hosts }
    }

    pub(crate) fn allowed_origin_values(&self) -> Vec<HeaderValue> {
        self.origins
            .iter()
            .filter_map(|o| HeaderValue::try_from(o.as_str()).ok())
            .collect()
    }

    /// 403 when a present `Origin` is not allowed, or `Host` names another site.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Response> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let o = origin
                .to_str()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_ascii_lowercase();
            if !self.origins.contains(&o) {
                return Err(GatewayError::ForeignOrigin(format!(
                        "Origin {o} is not allowed; add it to server.allowed_origins if this is your web client"
                    )).answer(None));
            }
        }
        if let Some(host) = headers.get(header::HOST) {
            let h = host.to_str().unwrap_or("").to_ascii_lowercase();
            if !self.hosts.contains(&h) {
                return Err(GatewayError::ForeignOrigin(format!(
                    "Host {h} is not this server; set server.public_url to the address clients use"
                ))
                .answer(None));
            }
        }
        Ok(())
    }
}
