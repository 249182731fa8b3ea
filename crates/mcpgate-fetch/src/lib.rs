//! The one outbound HTTP fetcher for every URL that a client, a document or
//! an operator can name (client metadata documents, client `jwks_uri`,
//! federation discovery and what it points to, `verify_url`, JWKS,
//! introspection and token endpoints).
//!
//! A [`Fetcher`] applies its [`Policy`] to every request:
//! - https only (unless the policy allows http, or the host is allow-listed loopback);
//! - with private addresses denied, the host is resolved once and refused if
//!   ANY address is loopback, private, link-local, CGNAT, unique-local,
//!   multicast, unspecified, or an IPv6 form embedding one ([`address`]); the
//!   connection goes to exactly the addresses checked (no second lookup, so
//!   no DNS-rebinding window), and no proxy is used;
//! - redirects are never followed (a 3xx is an answer, and not a success);
//! - the body is read up to the size cap and no further, all within one deadline;
//! - errors ([`FetchError`]) never say what the remote answered.
//!
//! This crate must never depend on the database, HTML, or the OAuth layers:
//! the guard uses it.

pub mod address;
mod error;
mod policy;
mod resolver;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};

pub use error::FetchError;
pub use policy::{Policy, Private, host_listed};

/// Fetches URLs under one [`Policy`]. Cheap to clone (shares its connection pools).
#[derive(Debug, Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    policy: Policy,
    /// Resolves through [`resolver::CheckingResolver`]; no proxy.
    checking: reqwest::Client,
    /// For trusted targets (private allowed, or an allow-listed host).
    trusting: reqwest::Client,
}

/// One request to send through a [`Fetcher`].
#[derive(Debug)]
pub struct Request {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    invalid_header: bool,
    timeout: Option<std::time::Duration>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Request {
        Request {
            method: Method::GET,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
            invalid_header: false,
            timeout: None,
        }
    }

    /// A POST of `pairs` as `application/x-www-form-urlencoded` to `url`.
    pub fn post_form<K, V>(
        url: impl Into<String>,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Request
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            form.append_pair(k.as_ref(), v.as_ref());
        }
        Request::post(
            url,
            form.finish().into_bytes(),
            "application/x-www-form-urlencoded",
        )
    }

    /// A POST of `doc` as `application/json` to `url`.
    pub fn post_json(url: impl Into<String>, doc: &serde_json::Value) -> Request {
        Request::post(url, doc.to_string().into_bytes(), "application/json")
    }

    fn post(url: impl Into<String>, body: Vec<u8>, content_type: &'static str) -> Request {
        let mut r = Request::get(url);
        r.method = Method::POST;
        r.body = Some(body);
        r.headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    }

    /// A deadline for this request instead of the policy's.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Request {
        self.headers.append(name, value);
        self
    }

    /// `Accept: application/json`.
    pub fn accept_json(self) -> Request {
        self.header(header::ACCEPT, HeaderValue::from_static("application/json"))
    }

    /// `Authorization: Bearer <token>` (marked sensitive: never logged).
    pub fn bearer(self, token: &str) -> Request {
        self.secret_header(header::AUTHORIZATION, &format!("Bearer {token}"))
    }

    /// A header holding a secret (marked sensitive: never logged). A value
    /// that is not valid in a header makes [`Fetcher::send`] fail.
    pub fn secret_header(mut self, name: HeaderName, value: &str) -> Request {
        match HeaderValue::try_from(value) {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.headers.append(name, v);
            }
            Err(_) => self.invalid_header = true,
        }
        self
    }
}

/// An answer, its body read in full (within the cap).
#[derive(Debug)]
pub struct Response {
    /// The status (any: redirects and errors are answers too).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, at most the policy's `max_bytes`.
    pub body: Bytes,
    /// Scheme, host and path of the request, for the operator's log.
    target: String,
}

impl Response {
    /// This answer if its status is a success; else [`FetchError::Status`]
    /// (logged with the status for the operator).
    pub fn success(self) -> Result<Response, FetchError> {
        if self.status.is_success() {
            return Ok(self);
        }
        tracing::warn!(url = %self.target, status = self.status.as_u16(), "outbound fetch answered without success");
        Err(FetchError::Status(self.status))
    }

    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, FetchError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            tracing::warn!(url = %self.target, error = %e, "outbound fetch answered unexpected JSON");
            FetchError::NotJson
        })
    }
}

impl Fetcher {
    /// A fetcher applying `policy`.
    pub fn new(policy: Policy) -> Result<Fetcher, FetchError> {
        let base = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(policy.timeout)
                .connect_timeout(policy.timeout)
                .user_agent(concat!("mcpgate/", env!("CARGO_PKG_VERSION")))
        };
        let checking = base()
            .dns_resolver(resolver::CheckingResolver)
            // A proxy would resolve the host itself, past the check.
            .no_proxy()
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        let trusting = base()
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Fetcher {
            inner: Arc::new(Inner {
                policy,
                checking,
                trusting,
            }),
        })
    }

    /// The policy this fetcher applies.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// GETs `url` and parses a successful answer as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, FetchError> {
        self.send(Request::get(url).accept_json())
            .await?
            .success()?
            .json()
    }

    /// Sends `req` under the policy (see the crate doc); any status is an answer.
    pub async fn send(&self, req: Request) -> Result<Response, FetchError> {
        let policy = &self.inner.policy;
        let url = url::Url::parse(&req.url).map_err(|_| FetchError::InvalidUrl("not a URL"))?;
        let target = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.path()
        );
        let refuse = |e: FetchError| {
            tracing::warn!(url = %target, reason = %e, "outbound fetch refused");
            e
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(FetchError::InvalidUrl(
                "only http and https are fetched",
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(FetchError::InvalidUrl(
                "credentials in a URL are not sent",
            )));
        }
        let Some(host) = url.host() else {
            return Err(refuse(FetchError::InvalidUrl("no host")));
        };
        let allow_listed = policy.allow_listed(&url);
        let loopback = match &host {
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
            url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        };
        if url.scheme() == "http" && policy.https_only && !(allow_listed && loopback) {
            return Err(refuse(FetchError::NotHttps));
        }
        if req.invalid_header {
            return Err(FetchError::InvalidHeader);
        }
        let trusted = policy.private == Private::Allow || allow_listed;
        // An address literal never reaches the resolver: check it here.
        let literal = match host {
            url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        let host_name = url.host_str().unwrap_or_default().to_owned();
        if !trusted && literal.is_some_and(address::is_forbidden) {
            return Err(refuse(FetchError::Forbidden { host: host_name }));
        }
        let client = if trusted {
            &self.inner.trusting
        } else {
            &self.inner.checking
        };
        let mut builder = client.request(req.method, url).headers(req.headers);
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let limit = policy.max_bytes;
        let deadline = req.timeout.unwrap_or(policy.timeout);
        builder = builder.timeout(deadline);
        let exchange = async {
            let mut resp = builder.send().await.map_err(|e| classify(&e, &host_name))?;
            let status = resp.status();
            let headers = std::mem::take(resp.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e, &host_name))? {
                if body.len() + chunk.len() > limit {
                    return Err(FetchError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, headers, body))
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(Ok((status, headers, body))) => Ok(Response {
                status,
                headers,
                body: Bytes::from(body),
                target,
            }),
            Ok(Err(e)) => {
                tracing::warn!(url = %target, reason = %e, "outbound fetch failed");
                Err(e)
            }
            Err(_) => {
                tracing::warn!(url = %target, timeout = ?deadline, "outbound fetch timed out");
                Err(FetchError::Timeout)
            }
        }
    }
}

/// The fetch error for a client error: a refusal of the resolver is found in
/// the source chain.
fn classify(e: &reqwest::Error, host: &str) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<resolver::Refused>() {
            tracing::warn!(host = %r.host, address = %r.addr, "outbound fetch refused: non-public address");
            return FetchError::Forbidden {
                host: host.to_owned(),
            };
        }
        if s.downcast_ref::<resolver::Unresolved>().is_some() {
            return FetchError::Resolve {
                host: host.to_owned(),
            };
        }
        source = s.source();
    }
    if e.is_timeout() {
        FetchError::Timeout
    } else {
        tracing::debug!(error = %e, "outbound fetch: connection failed");
        FetchError::Unreachable
    }
}

#[cfg(test)]
mod tests;
