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

use crate::config::UpstreamConfig;

/// Which issuers' tokens are bound to which audiences.
#[derive(Debug, Clone, Default)]
pub struct AudienceBinding {
    /// Issuers whose tokens name the endpoint they are for (the built-in
    /// authorization server's issuer).
    pub endpoint_issuers: Vec<String>,
    /// `[[auth.jwt]]` issuer → its configured `audience`, the default for
    /// upstreams without an `audience` override.
    pub issuer_audiences: BTreeMap<String, Vec<String>>,
}

/// The binding, resolved per upstream.
#[derive(Debug, Default)]
pub(crate) struct Audiences {
    binding: AudienceBinding,
    /// Upstream → the URLs of its endpoint(s).
    endpoints: BTreeMap<String, Vec<String>>,
    /// Upstream → its `audience` override.
    overrides: BTreeMap<String, Vec<String>>,
}

impl Audiences {
    pub(crate) fn new(
        binding: AudienceBinding,
        public_url: &url::Url,
        upstreams: &[UpstreamConfig],
    ) -> Self {
        let base = public_url.as_str().trim_end_matches('/');
        let single = upstreams.len() == 1;
        let endpoints = upstreams
            .iter()
            .map(|u| {
                let mut urls = vec![format!("{base}/mcp/{}", u.name)];
                // `/mcp` and `/mcp/<name>` are the same endpoint then: one
                // resource with two names, and a token for either works at both.
                if single {
                    urls.push(format!("{base}/mcp"));
                }
                (u.name.clone(), urls)
            })
            .collect();
        let overrides = upstreams
            .iter()
            .filter_map(|u| Some((u.name.clone(), u.audience.clone()?.0)))
            .collect();
        Audiences {
            binding,
            endpoints,
            overrides,
        }
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
            self.endpoints
                .insert(n.to_owned(), vec![format!("{base}/mcp/{n}")]);
        }
        self
    }

    /// The audiences a token must name (one of) at `upstream`, or `None` when
    /// the principal is not audience-bound.
    fn wanted(&self, p: &Principal, upstream: &str) -> Option<&[String]> {
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
            .any(|a| wanted.iter().any(|w| same_resource(a.as_str(), w)))
        {
            return Ok(());
        }
        let presented_at = presented_at();
        let presented_at = presented_at.as_str();
        let named = wanted
            .iter()
            .find(|w| same_resource(w, presented_at))
            .or_else(|| wanted.first())
            .cloned()
            .unwrap_or_else(|| presented_at.to_owned());
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

#[cfg(test)]
mod tests;
