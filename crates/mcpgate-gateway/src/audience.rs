//! Audience binding (RFC 8707, RFC 9068 `aud`): every upstream's endpoint is
//! its own protected resource, so a token is accepted only at the endpoint it
//! was issued for. A verifier proves a token genuine; only the gateway knows
//! which endpoint it was presented at, so the check lives here.
//!
//! - Tokens of an *endpoint issuer* (the built-in authorization server) must
//!   name the endpoint's URL (`<public URL>/mcp/<name>`, or `<public URL>/mcp`
//!   when that alias serves the single upstream).
//! - JWTs of `[[auth.jwt]]` issuers must name the upstream's `audience`
//!   override when it has one, else the issuer's configured audience.
//! - API keys, Basic users, static tokens and users' own keys are not
//!   audience-bound: their scopes and upstream bindings say where they work.

use std::collections::BTreeMap;

use mcpgate_guard::{AuthMethod, AuthRejection, Principal, same_resource};
use mcpgate_types::{Audience, JwtIssuer};

use crate::config::UpstreamConfig;
use crate::error::GatewayError;

/// Which issuers' tokens are bound to which audiences.
#[derive(Debug, Clone, Default)]
pub struct AudienceBinding {
    /// Issuers whose tokens name the endpoint they are for (the built-in
    /// authorization server's issuer).
    pub endpoint_issuers: Vec<JwtIssuer>,
    /// `[[auth.jwt]]` issuer → its configured `audience`, the default for
    /// upstreams without an `audience` override.
    pub issuer_audiences: BTreeMap<JwtIssuer, Vec<Audience>>,
}

/// The binding, resolved per upstream.
#[derive(Debug, Default)]
pub(crate) struct Audiences {
    binding: AudienceBinding,
    /// Upstream → the URLs of its endpoint(s).
    endpoints: BTreeMap<String, Vec<Audience>>,
    /// Upstream → its `audience` override.
    overrides: BTreeMap<String, Vec<Audience>>,
}

impl Audiences {
    /// Refuses an upstream whose endpoint URL or `audience` override is no
    /// audience value (empty, or with white space).
    pub(crate) fn new(
        binding: AudienceBinding,
        public_url: &url::Url,
        upstreams: &[UpstreamConfig],
    ) -> Result<Self, GatewayError> {
        let base = public_url.as_str().trim_end_matches('/');
        let single = upstreams.len() == 1;
        let mut endpoints = BTreeMap::new();
        let mut overrides = BTreeMap::new();
        for u in upstreams {
            let mut urls = vec![format!("{base}/mcp/{}", u.name)];
            // `/mcp` and `/mcp/<name>` are the same endpoint then: one
            // resource with two names, and a token for either works at both.
            if single {
                urls.push(format!("{base}/mcp"));
            }
            endpoints.insert(u.name.clone(), parsed(&u.name, urls)?);
            if let Some(a) = &u.audience {
                overrides.insert(u.name.clone(), a.values().to_vec());
            }
        }
        Ok(Audiences {
            binding,
            endpoints,
            overrides,
        })
    }

    /// Adds endpoints that are not upstreams (virtual servers), each a
    /// resource of its own at `/mcp/<name>`.
    pub(crate) fn with_endpoints<'a>(
        mut self,
        public_url: &url::Url,
        names: impl Iterator<Item = &'a str>,
    ) -> Self {
        let base = public_url.as_str().trim_end_matches('/');
        for n in names {
            // A checked name makes one audience value; one that did not would
            // leave the endpoint none, so every token is refused there.
            let url = Audience::try_from(format!("{base}/mcp/{n}"));
            self.endpoints
                .insert(n.to_owned(), url.into_iter().collect());
        }
        self
    }

    /// The audiences a token must name (one of) at `upstream`, or `None` when
    /// the principal is not audience-bound.
    fn wanted(&self, p: &Principal, upstream: &str) -> Option<&[Audience]> {
        if !matches!(p.method(), AuthMethod::Jwt | AuthMethod::Introspection) {
            return None;
        }
        let iss = p.claims().get("iss").and_then(serde_json::Value::as_str)?;
        if self.binding.endpoint_issuers.iter().any(|e| e == iss) {
            return self.endpoints.get(upstream).map(Vec::as_slice);
        }
        if p.method() != AuthMethod::Jwt {
            return None;
        }
        let configured = self.binding.issuer_audiences.get(iss)?;
        Some(
            self.overrides
                .get(upstream)
                .unwrap_or(configured)
                .as_slice(),
        )
    }

    /// Refuses a token not issued for `upstream`; `presented_at` is the URL of
    /// the endpoint it came to (named in the message when it is one of the
    /// wanted audiences).
    #[cfg(test)]
    pub(crate) fn check(
        &self,
        p: &Principal,
        upstream: &str,
        presented_at: &str,
    ) -> Result<(), AuthRejection> {
        self.check_at(p, upstream, || presented_at.to_owned())
    }

    /// [`Audiences::check`], building the endpoint's URL only for a refusal
    /// (this runs on every authenticated request).
    pub(crate) fn check_at(
        &self,
        p: &Principal,
        upstream: &str,
        presented_at: impl FnOnce() -> String,
    ) -> Result<(), AuthRejection> {
        let Some(wanted) = self.wanted(p, upstream) else {
            return Ok(());
        };
        if p.audience()
            .iter()
            .any(|a| wanted.iter().any(|w| same_resource(a.as_str(), w.as_str())))
        {
            return Ok(());
        }
        let presented_at = presented_at();
        let presented_at = presented_at.as_str();
        let named = wanted
            .iter()
            .find(|w| same_resource(w.as_str(), presented_at))
            .or_else(|| wanted.first())
            .map_or(presented_at, Audience::as_str);
        tracing::warn!(
            upstream,
            subject = p.subject().as_str(),
            client_id = p.client_id().map_or("-", |c| c.as_str()),
            token_audience = ?p.audience(),
            wanted = ?wanted,
            "refused a token issued for another resource"
        );
        Err(AuthRejection::InvalidToken(format!(
            "Token audience does not include {named}"
        )))
    }
}

/// `values` as audiences; a bad one is a configuration error of `upstream`.
fn parsed(upstream: &str, values: Vec<String>) -> Result<Vec<Audience>, GatewayError> {
    values
        .into_iter()
        .map(|v| {
            Audience::try_from(v).map_err(|e| GatewayError::Config {
                upstream: upstream.to_owned(),
                problems: vec![format!("upstream {upstream}: audience: {e}")],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
