//! Requests to the remote server with their `Authorization` header taken from
//! the [`Credentials`], and the one retry a 401 or a 403
//! `insufficient_scope` earns.

use std::sync::Arc;
use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use reqwest::{RequestBuilder, Response};
use url::Url;

use crate::credentials::{Credentials, CredentialsError};

/// How the remote server is reached: one HTTP client, the user's extra
/// headers, and where credentials come from.
pub(crate) struct Remote {
    pub(crate) client: reqwest::Client,
    /// The MCP endpoint the user named.
    pub(crate) url: Url,
    headers: HeaderMap,
    credentials: Arc<dyn Credentials>,
    /// What the person should do when authorization fails (names CLI flags).
    auth_hint: String,
}

/// Why a request got no answer the bridge can use.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 401 after the one retry (or with nothing to retry with).
    Unauthorized {
        sent_credential: bool,
        challenge: Option<String>,
    },
    /// 403 `insufficient_scope` after the one retry (or with nothing to retry with).
    InsufficientScope { challenge: String },
    /// The credential source failed (sign-in needed, refresh refused…).
    Credentials(CredentialsError),
    /// No HTTP answer at all.
    Network(reqwest::Error),
}

impl Remote {
    pub(crate) fn new(
        url: Url,
        headers: HeaderMap,
        credentials: Arc<dyn Credentials>,
        auth_hint: String,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            // The stdio client must never see a redirect's body as an answer,
            // and a token must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Remote {
            client,
            url,
            headers,
            credentials,
            auth_hint,
        })
    }

    /// A POST of one JSON-RPC message (`body`) to `to`, taking the answer as
    /// JSON or as an event stream, as every MCP HTTP transport does.
    pub(crate) fn post_message(&self, to: &Url, body: impl Into<reqwest::Body>) -> RequestBuilder {
        self.client
            .post(to.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    }

    /// Sends the request `make` builds, with the user's headers and the
    /// current credential; on 401, or 403 `insufficient_scope`, asks the
    /// credentials for a better one and sends once more.
    pub(crate) async fn send(
        &self,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Failure> {
        let auth = self
            .credentials
            .authorization()
            .await
            .map_err(Failure::Credentials)?;
        let sent_credential = auth.is_some() || self.headers.contains_key(AUTHORIZATION);
        let mut resp = self.attempt(&make, auth.as_deref()).await?;
        if self.took_nonce(&resp) && crate::dpop_nonce::asked(resp.status(), resp.headers()) {
            // RFC 9449 §9: the same request once more, its proof with the nonce.
            resp = self.attempt(&make, auth.as_deref()).await?;
        }
        match resp.status() {
            StatusCode::UNAUTHORIZED => {
                let challenge = challenge(&resp);
                let retry = self
                    .credentials
                    .unauthorized(challenge.as_deref())
                    .await
                    .map_err(Failure::Credentials)?;
                let Some(value) = retry else {
                    return Err(Failure::Unauthorized {
                        sent_credential,
                        challenge,
                    });
                };
                let again = self.attempt(&make, Some(&value)).await?;
                if again.status() == StatusCode::UNAUTHORIZED {
                    return Err(Failure::Unauthorized {
                        sent_credential: true,
                        challenge: challenge_of(&again).or(challenge),
                    });
                }
                Ok(again)
            }
            StatusCode::FORBIDDEN => {
                let Some(challenge) = challenge(&resp).filter(|c| is_insufficient_scope(c)) else {
                    return Ok(resp);
                };
                let retry = self
                    .credentials
                    .insufficient_scope(&challenge)
                    .await
                    .map_err(Failure::Credentials)?;
                let Some(value) = retry else {
                    return Err(Failure::InsufficientScope { challenge });
                };
                let again = self.attempt(&make, Some(&value)).await?;
                if again.status() == StatusCode::FORBIDDEN
                    && let Some(c) = challenge_of(&again).filter(|c| is_insufficient_scope(c))
                {
                    return Err(Failure::InsufficientScope { challenge: c });
                }
                Ok(again)
            }
            _ => Ok(resp),
        }
    }

    /// Hands a `DPoP-Nonce` the server sent to the credentials; `true`
    /// when they put it in their proofs.
    fn took_nonce(&self, resp: &Response) -> bool {
        crate::dpop_nonce::offered(resp.headers()).is_some_and(|n| self.credentials.dpop_nonce(n))
    }

    async fn attempt(
        &self,
        make: &impl Fn() -> RequestBuilder,
        auth: Option<&str>,
    ) -> Result<Response, Failure> {
        let mut req = make().headers(self.headers.clone());
        if let Some(value) = auth
            && let Ok(probe) = make().build()
        {
            // A proof per request (its jti is single use), retries included.
            let proof = self
                .credentials
                .proof(probe.method().as_str(), probe.url().as_str(), value)
                .await
                .map_err(Failure::Credentials)?;
            if let Some(p) = proof {
                req = req.header(mcpgate_dpop::HEADER, p);
            }
        }
        if let Some(value) = auth {
            let mut v = HeaderValue::try_from(value).map_err(|_| {
                Failure::Credentials(CredentialsError::new(
                    "the credential source produced an Authorization value that is not a valid HTTP header",
                ))
            })?;
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        req.send()
            .await
            .map_err(|e| Failure::Network(e.without_url()))
    }

    /// The message for the person at the keyboard, with what to do.
    pub(crate) fn explain(&self, failure: &Failure) -> String {
        let url = &self.url;
        match failure {
            Failure::Unauthorized {
                sent_credential: false,
                ..
            } => format!(
                "the remote MCP server at {url} requires authorization (HTTP 401) and the bridge has no credential for it; {}",
                self.auth_hint
            ),
            Failure::Unauthorized { challenge, .. } => {
                let why = challenge
                    .as_deref()
                    .and_then(|c| param(c, "error_description").or_else(|| param(c, "error")))
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                format!(
                    "the remote MCP server at {url} refused the credential (HTTP 401){why}; {}",
                    self.auth_hint
                )
            }
            Failure::InsufficientScope { challenge } => {
                let scope = param(challenge, "scope")
                    .map(|s| format!(" (it requires scope \"{s}\")"))
                    .unwrap_or_default();
                format!(
                    "the credential for {url} lacks the scope this request needs (HTTP 403 insufficient_scope){scope}; sign in again with that scope, or use a credential that has it"
                )
            }
            Failure::Credentials(e) => format!("no credential for {url}: {e}"),
            Failure::Network(e) => {
                format!("cannot reach the remote MCP server at {url}: {}", chain(e))
            }
        }
    }
}

fn challenge(resp: &Response) -> Option<String> {
    challenge_of(resp)
}

fn challenge_of(resp: &Response) -> Option<String> {
    let all: Vec<&str> = resp
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!all.is_empty()).then(|| all.join(", "))
}

fn is_insufficient_scope(challenge: &str) -> bool {
    param(challenge, "error").as_deref() == Some("insufficient_scope")
}

/// One auth-param of a `WWW-Authenticate` value (quoted or token form).
pub(crate) fn param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge;
    while let Some(at) = find_param(rest, name) {
        let after = rest[at + name.len()..].trim_start();
        let Some(value) = after.strip_prefix('=') else {
            rest = &rest[at + name.len()..];
            continue;
        };
        let value = value.trim_start();
        if let Some(quoted) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => return Some(out),
                    c => out.push(c),
                }
            }
            return Some(out);
        }
        let end = value
            .find(|c: char| c == ',' || c.is_whitespace())
            .unwrap_or(value.len());
        return Some(value[..end].to_owned());
    }
    None
}

/// Where `name` starts as a whole parameter name (not inside another word).
fn find_param(haystack: &str, name: &str) -> Option<usize> {
    let lower = haystack.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        let before_ok = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b',' | b'\t');
        if before_ok {
            return Some(at);
        }
        from = at + name.len();
    }
    None
}

/// An error with its causes ("error sending request: connection refused").
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests;
