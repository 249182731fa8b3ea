//! The user's own upstream API key, passed through to one upstream (the pattern
//! of services such as W&B, whose users each hold a personal API key).
//!
//! Opt-in per upstream. A bearer token or API-key header whose value matches the
//! configured format (a regular expression the whole key must match) becomes a
//! [`Principal`] with method [`AuthMethod::UpstreamKey`], subject
//! `<subject_prefix><first 16 hex digits of the key's SHA-256>` — never the key —
//! and claims `upstream`, `key_id` (those 16 digits, so two keys sharing a subject is negligible) and `key_verified`. When a
//! `verify_url` is configured, the key is checked once with a `GET` carrying it
//! (2xx = valid, 401/403 = refused; anything else, or no answer, is
//! "unavailable" — 503, never "allow"); answers are cached under the key's
//! digest (valid for `verify_ttl`, default 10 minutes; refused for 30 seconds)
//! and concurrent checks of one key share one call.
//!
//! ## An exception to "never pass the client's token through"
//!
//! MCP forbids forwarding a client's token to an upstream. This verifier is the
//! deliberate, opt-in exception for upstreams whose users already hold their own
//! key and that accept nothing else. The key is retrievable only through
//! [`UpstreamKey::key_for_upstream`], and the gateway must deliver it only to
//! [`UpstreamKey::upstream`] — as [`UpstreamSecret::header`] on HTTP requests, or
//! as [`UpstreamSecret::env_var`] of that user's per-session stdio child — and
//! must not let such a principal reach other upstreams ([`UpstreamKey::upstream_of`]
//! names the one it belongs to). The compliant path is the OAuth façade (the
//! authserver with its per-user vault), where the client holds an mcpgate token
//! and the key never leaves the gateway.
//!
//! ## Where it sits in the chain
//!
//! It [`accepts`](Verifier::accepts) every bearer and API-key credential. A value
//! that does not match the format is [`VerifyError::NotMine`]: it may be a JWT or
//! an mcpgate API key for another verifier, and refusing it here would stop the
//! chain. The gateway shows [`UpstreamKey::format_error`] — `Invalid API key
//! format: expected <format_description>` — when a credential no verifier
//! recognized was sent to this key's own upstream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue};
use mcpgate_types::{ScopeSet, Subject};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::credential::Credential;
use crate::error::GuardError;
use crate::introspection::check_url;
use crate::policy::Scopes;
use crate::principal::{AuthMethod, Principal};
use crate::verifier::{BoxFuture, Verified, Verifier, VerifyError};

/// How long the chain may reuse a format-checked (not URL-verified) key.
const CACHE_FOR_UNVERIFIED: Duration = Duration::from_secs(300);

/// How long a key refused by `verify_url` stays refused without asking again.
const REFUSED_TTL: Duration = Duration::from_secs(30);

/// How many verified keys are remembered.
const CACHE_CAPACITY: u64 = 100_000;

/// One `[[auth.upstream_key]]` entry.
///
/// ```toml
/// upstream = "wandb"
/// format = "[A-Za-z0-9]{40}"
/// format_description = "exactly 40 alphanumeric characters"
/// header = "X-Api-Key"              # or "bearer" (Authorization: Bearer <key>)
/// env = "WANDB_API_KEY"             # stdio upstreams: the child's variable
/// verify_url = "https://api.wandb.ai/api/v1/viewer"   # optional
/// subject_prefix = "wandb:"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamKeyConfig {
    /// The upstream (its configured name) that the keys belong to and are delivered to.
    pub upstream: String,
    /// A regular expression the whole key must match (it is anchored for you).
    pub format: String,
    /// The format in words, completing "Invalid API key format: expected …".
    pub format_description: String,
    /// How the key is sent to the upstream and to `verify_url`: a header name
    /// (default `X-Api-Key`), or `"bearer"` for `Authorization: Bearer <key>`.
    #[serde(default = "default_header")]
    pub header: String,
    /// For a stdio upstream: the environment variable of the user's per-session
    /// child that receives the key.
    #[serde(default)]
    pub env: Option<String>,
    /// When set, each new key is checked with `GET verify_url` carrying it: 2xx
    /// is valid, 401/403 refused, anything else "unavailable".
    #[serde(default)]
    pub verify_url: Option<url::Url>,
    /// How long a key that `verify_url` accepted is trusted (default 10m).
    #[serde(
        default = "default_verify_ttl",
        deserialize_with = "crate::time::deserialize_duration"
    )]
    pub verify_ttl: Duration,
    /// How long one `verify_url` call may take (default 5s).
    #[serde(
        default = "default_verify_timeout",
        deserialize_with = "crate::time::deserialize_duration"
    )]
    pub verify_timeout: Duration,
    /// Put before the key's digest to form the subject (default `"<upstream>:"`).
    #[serde(default)]
    pub subject_prefix: Option<String>,
    /// Scopes the principal holds (default none). It is meant for `upstream` only.
    #[serde(default)]
    pub scopes: Scopes,
    /// Allows a plain-`http` `verify_url` that is not on loopback. Risky: users'
    /// keys cross the network in the clear.
    #[serde(default)]
    pub allow_http: bool,
}

fn default_header() -> String {
    "X-Api-Key".to_owned()
}

fn default_verify_ttl() -> Duration {
    Duration::from_secs(600)
}

fn default_verify_timeout() -> Duration {
    Duration::from_secs(5)
}

/// How a key travels to its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Carrier {
    Bearer,
    Header(HeaderName),
}

/// The verifier for one upstream's user keys.
pub struct UpstreamKey {
    name: String,
    upstream: String,
    format: regex::Regex,
    format_description: String,
    carrier: Carrier,
    env: Option<String>,
    subject_prefix: String,
    scopes: ScopeSet,
    verify: Option<Verify>,
}

/// The optional check against `verify_url`.
struct Verify {
    url: url::Url,
    ttl: Duration,
    /// The guarded fetcher (operator policy: `[server] outbound_private`).
    fetcher: mcpgate_fetch::Fetcher,
    /// Key digest → (accepted?, until when).
    cache: moka::future::Cache<[u8; 32], (bool, Instant)>,
}

impl std::fmt::Debug for UpstreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamKey")
            .field("upstream", &self.upstream)
            .field("format", &self.format.as_str())
            .field("carrier", &self.carrier)
            .field("env", &self.env)
            .field("verify_url", &self.verify.as_ref().map(|v| v.url.as_str()))
            .finish_non_exhaustive()
    }
}

/// Each verification answer lives until its own deadline.
struct UntilExpiry;

impl moka::Expiry<[u8; 32], (bool, Instant)> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &(bool, Instant),
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.1.saturating_duration_since(created_at))
    }
}

/// A user's key, released for delivery to its own upstream only. `Debug` never shows it.
#[derive(Clone, Copy)]
pub struct UpstreamSecret<'a> {
    upstream: &'a str,
    carrier: &'a Carrier,
    env: Option<&'a str>,
    key: &'a str,
}

impl std::fmt::Debug for UpstreamSecret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSecret")
            .field("upstream", &self.upstream)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl<'a> UpstreamSecret<'a> {
    /// The only upstream this key may be sent to.
    pub fn upstream(&self) -> &'a str {
        self.upstream
    }

    /// The header carrying the key on requests to that upstream (marked
    /// sensitive, so HTTP tooling does not log it). `None` only if the key cannot
    /// be a header value, which the format check and extraction rule out.
    pub fn header(&self) -> Option<(HeaderName, HeaderValue)> {
        carrier_header(self.carrier, self.key)
    }

    /// The environment variable (name, key) for that user's per-session stdio child.
    pub fn env_var(&self) -> Option<(&'a str, &'a str)> {
        self.env.map(|name| (name, self.key))
    }

    /// The key itself, for a delivery [`header`](Self::header) and
    /// [`env_var`](Self::env_var) do not cover. Only for `upstream`; never log it.
    pub fn expose_key(&self) -> &'a str {
        self.key
    }
}

fn carrier_header(carrier: &Carrier, key: &str) -> Option<(HeaderName, HeaderValue)> {
    let (name, text) = match carrier {
        Carrier::Bearer => (http::header::AUTHORIZATION, format!("Bearer {key}")),
        Carrier::Header(h) => (h.clone(), key.to_owned()),
    };
    let mut value = HeaderValue::try_from(text).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

impl UpstreamKey {
    /// The verifier for `cfg`; every problem is reported, one per line.
    pub fn new(cfg: &UpstreamKeyConfig) -> Result<Self, GuardError> {
        Self::build(cfg).map_err(GuardError::Config)
    }

    fn build(cfg: &UpstreamKeyConfig) -> Result<Self, String> {
        let what = format!("upstream_key for upstream {:?}", cfg.upstream);
        let mut problems = Vec::new();
        if cfg.upstream.trim().is_empty() {
            problems.push("upstream_key: upstream is empty".to_owned());
        }
        let format = regex::Regex::new(&format!("^(?:{})$", cfg.format))
            .map_err(|e| {
                // The regex crate's message spans lines; its last line names the problem.
                let text = e.to_string();
                let why = text.lines().last().unwrap_or_default().trim();
                let why = why.strip_prefix("error: ").unwrap_or(why);
                problems.push(format!(
                    "{what}: format {:?} is not a valid regular expression: {why}",
                    cfg.format
                ))
            })
            .ok();
        if cfg.format_description.trim().is_empty() {
            problems.push(format!(
                "{what}: format_description is empty; describe the format in words, e.g. \"exactly 40 alphanumeric characters\""
            ));
        }
        let carrier = if cfg.header.eq_ignore_ascii_case("bearer") {
            Some(Carrier::Bearer)
        } else {
            HeaderName::try_from(cfg.header.as_str())
                .map(Carrier::Header)
                .map_err(|_| {
                    problems.push(format!(
                        "{what}: header {:?} is not a valid header name (or \"bearer\")",
                        cfg.header
                    ))
                })
                .ok()
        };
        if let Some(var) = &cfg.env
            && (var.is_empty() || var.contains(['=', '\0']))
        {
            problems.push(format!(
                "{what}: env {var:?} is not a valid environment variable name"
            ));
        }
        let mut verify = None;
        if let Some(url) = &cfg.verify_url {
            let vwhat = format!("{what}: verify_url {url}");
            if cfg.verify_timeout.is_zero() {
                problems.push(format!("{what}: verify_timeout must be greater than 0"));
            } else if let Err(p) = check_url(url, cfg.allow_http, &vwhat) {
                problems.push(p);
            } else {
                let policy = mcpgate_fetch::Policy::operator(mcpgate_fetch::Private::configured())
                    .timeout(cfg.verify_timeout)
                    .max_bytes(64 * 1024);
                match mcpgate_fetch::Fetcher::new(policy) {
                    Ok(fetcher) => {
                        verify = Some(Verify {
                            url: url.clone(),
                            ttl: cfg.verify_ttl,
                            fetcher,
                            cache: moka::future::Cache::builder()
                                .max_capacity(CACHE_CAPACITY)
                                .expire_after(UntilExpiry)
                                .build(),
                        })
                    }
                    Err(e) => problems.push(format!("{vwhat}: {e}")),
                }
            }
        }
        let scopes = cfg
            .scopes
            .to_set()
            .map_err(|e| problems.push(format!("{what}: scopes: {e}")))
            .unwrap_or_default();
        let subject_prefix = cfg
            .subject_prefix
            .clone()
            .unwrap_or_else(|| format!("{}:", cfg.upstream));
        // Every subject is the prefix and hex digits, so the prefix decides whether it parses.
        if let Err(e) = format!("{subject_prefix}0").parse::<Subject>() {
            problems.push(format!("{what}: subject_prefix: {e}"));
        }
        let (Some(format), Some(carrier), true) = (format, carrier, problems.is_empty()) else {
            return Err(problems.join("\n"));
        };
        Ok(UpstreamKey {
            name: format!("upstream_key:{}", cfg.upstream),
            upstream: cfg.upstream.clone(),
            format,
            format_description: cfg.format_description.trim().to_owned(),
            carrier,
            env: cfg.env.clone(),
            subject_prefix,
            scopes,
            verify,
        })
    }

    /// The upstream this verifier's keys belong to.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The user's key, for delivery to [`upstream`](Self::upstream) only — when the
    /// credential is a bearer or API-key value of this upstream's format. Call it
    /// only for a request whose principal came from this verifier
    /// ([`upstream_of`](Self::upstream_of) names this upstream), and send the key
    /// nowhere else.
    pub fn key_for_upstream<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> Option<UpstreamSecret<'a>> {
        let key = credential.token()?;
        self.format.is_match(key).then_some(UpstreamSecret {
            upstream: &self.upstream,
            carrier: &self.carrier,
            env: self.env.as_deref(),
            key,
        })
    }

    /// The upstream a principal's key belongs to, when it was authenticated by an
    /// [`UpstreamKey`] verifier; such a principal must reach no other upstream.
    pub fn upstream_of(principal: &Principal) -> Option<&str> {
        if principal.method() != AuthMethod::UpstreamKey {
            return None;
        }
        principal.claims().get("upstream").and_then(Value::as_str)
    }

    /// The refusal for a credential that is not in this key's format.
    pub fn format_error(&self) -> String {
        format!(
            "Invalid API key format: expected {}",
            self.format_description
        )
    }

    async fn check(&self, key: &str) -> Result<Verified, VerifyError> {
        if !self.format.is_match(key) {
            return Err(VerifyError::NotMine);
        }
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let key_id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let (verified, cache_for) = match &self.verify {
            None => (false, CACHE_FOR_UNVERIFIED),
            Some(v) => {
                let (ok, until) = v
                    .cache
                    .try_get_with(digest, self.ask(v, key))
                    .await
                    .map_err(|e: Arc<VerifyError>| (*e).clone())?;
                if !ok {
                    return Err(VerifyError::Invalid(format!(
                        "Invalid API key: {} refused it",
                        self.upstream
                    )));
                }
                (true, until.saturating_duration_since(Instant::now()))
            }
        };
        let mut claims = serde_json::Map::new();
        claims.insert("upstream".into(), Value::String(self.upstream.clone()));
        claims.insert("key_id".into(), Value::String(key_id.clone()));
        claims.insert("key_verified".into(), Value::Bool(verified));
        let subject = format!("{}{key_id}", self.subject_prefix)
            .parse()
            .map_err(|e| VerifyError::Invalid(format!("Invalid API key subject: {e}")))?;
        Ok(Verified::new(
            Principal::new(subject, AuthMethod::UpstreamKey)
                .with_scopes(self.scopes.clone())
                .with_claims(claims),
            cache_for,
        ))
    }

    /// Asks `verify_url` about a key: `Ok((accepted, until))`, or `Unavailable`.
    async fn ask(&self, v: &Verify, key: &str) -> Result<(bool, Instant), VerifyError> {
        let (name, value) = carrier_header(&self.carrier, key)
            .ok_or_else(|| VerifyError::Invalid("Invalid API key format".to_owned()))?;
        let unavailable = |why: String| {
            tracing::warn!(verifier = %self.name, %why, "API key verification failed");
            VerifyError::Unavailable(format!("cannot check the API key with {}", self.upstream))
        };
        let resp = v
            .fetcher
            .send(mcpgate_fetch::Request::get(v.url.as_str()).header(name, value))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = resp.status;
        if status.is_success() {
            Ok((true, Instant::now() + v.ttl))
        } else if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN
        {
            Ok((false, Instant::now() + REFUSED_TTL))
        } else {
            Err(unavailable(format!(
                "verify_url answered HTTP {}",
                status.as_u16()
            )))
        }
    }
}

impl Verifier for UpstreamKey {
    fn name(&self) -> &str {
        &self.name
    }

    // Written like `StaticTokens`' pair, for the reason given there.
    /// Every bearer and API-key credential: see the module docs for the order.
    fn accepts(&self, credential: &Credential) -> bool {
        credential.token().is_some()
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        crate::claim(credential.token(), |key| self.check(key))
    }
}

#[cfg(test)]
mod tests;
