//! Opaque bearer tokens checked at the issuer's RFC 7662 introspection endpoint.
//!
//! Each uncached token costs one `POST token=…&token_type_hint=access_token` to
//! the endpoint, authenticated as a confidential client (`client_secret_basic`
//! or `client_secret_post`). Answers are cached under the token's SHA-256
//! digest: an active token until `min(exp, positive_ttl)`, an inactive one for
//! `negative_ttl`. Concurrent verifications of one uncached token share a single
//! HTTP call. When the endpoint is unreachable, slow, or answers 5xx (or anything
//! but a well-formed 200), the result is [`VerifyError::Unavailable`] — which the
//! chain turns into 503 with `Retry-After`, never into "allow" — and nothing is
//! cached.
//!
//! ## Coexisting with JWT verifiers
//!
//! An opaque token has no shape to recognize, so [`Introspection`] accepts every
//! `Authorization: Bearer` credential (never the API-key header: API keys are not
//! OAuth tokens). Order the chain so that cheaper, local verifiers come first —
//! JWT, API keys, static tokens — and introspection after them: a bearer that an
//! earlier verifier accepts never reaches the identity provider, and a JWT that
//! the JWT verifier refused (expired, wrong audience) costs one introspection
//! call whose negative answer is cached, while the JWT verifier's reason is the
//! one the client sees (the chain keeps the first refusal).
//!
//! The endpoint must be `https`, or `http` on a loopback address; `allow_http`
//! lifts that for in-cluster identity providers, at the price of sending the
//! client secret and users' tokens in the clear.

use secrecy::{ExposeSecret as _, SecretString};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use mcpgate_types::{ClientId, ScopeSet, Subject};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::credential::Credential;
use crate::error::GuardError;
use crate::metadata::same_resource;
use crate::principal::{AuthMethod, Principal, audiences_lossy};
use crate::verifier::{BoxFuture, Verified, Verifier, VerifyError};

/// Largest introspection answer read; anything longer is treated as a broken endpoint.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How many token answers are cached at most.
const CACHE_CAPACITY: u64 = 100_000;

/// One `[[auth.introspection]]` entry.
///
/// ```toml
/// endpoint = "https://idp.example/oauth2/introspect"
/// client_id = "mcpgate"
/// client_secret_env = "INTROSPECTION_SECRET"
/// auth_method = "client_secret_basic"      # or "client_secret_post"
/// audience = "https://mcp.example/mcp"     # optional: `aud` must include it
/// positive_ttl = "5m"                      # active answers, never past `exp`
/// negative_ttl = "10s"                     # inactive answers
/// timeout = "5s"
/// ```
// The keys are written out like `[[auth.jwt]]`'s (`JwtConfig`) and the
// gateway's credential tables: each struct is its table's TOML surface, and
// serde's `flatten` cannot be combined with `deny_unknown_fields`, which
// keeps a misspelt key an error.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The RFC 7662 endpoint: `https`, or `http` on loopback (see `allow_http`).
    pub endpoint: url::Url,
    /// mcpgate's client id at the identity provider.
    pub client_id: String,
    /// The client secret, inline. Prefer `client_secret_env`; exactly one of the two.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// How mcpgate authenticates to the endpoint (default `client_secret_basic`).
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
    /// When set, an active token's `aud` must include this resource (compared
    /// with [`same_resource`]: `X`, `X/` and an upper-case host are the same).
    #[serde(default)]
    pub audience: Option<String>,
    /// How long an active answer is reused; never past the token's `exp` (default 5m).
    #[serde(
        default = "default_positive_ttl",
        deserialize_with = "crate::time::deserialize_duration"
    )]
    pub positive_ttl: Duration,
    /// How long an inactive answer is reused (default 10s).
    #[serde(
        default = "default_negative_ttl",
        deserialize_with = "crate::time::deserialize_duration"
    )]
    pub negative_ttl: Duration,
    /// How long one introspection call may take before the token is "unavailable" (default 5s).
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::time::deserialize_duration"
    )]
    pub timeout: Duration,
    /// Allows a plain-`http` endpoint that is not on loopback. Risky: the client
    /// secret and every token cross the network in the clear.
    #[serde(default)]
    pub allow_http: bool,
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("client_secret_env", &self.client_secret_env)
            .field("auth_method", &self.auth_method)
            .field("audience", &self.audience)
            .field("positive_ttl", &self.positive_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("timeout", &self.timeout)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

fn default_positive_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_negative_ttl() -> Duration {
    Duration::from_secs(10)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// How mcpgate proves to the introspection endpoint that it may ask (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// `Authorization: Basic` with the form-encoded client id and secret.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// The introspection verifier. Cheap to share: wrap it in an `Arc`.
pub struct Introspection {
    name: String,
    endpoint: url::Url,
    client_id: String,
    client_secret: SecretString,
    auth_method: ClientAuthMethod,
    audience: Option<String>,
    positive_ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    /// The guarded fetcher (operator policy: `[server] outbound_private`).
    fetcher: mcpgate_fetch::Fetcher,
    cache: moka::future::Cache<[u8; 32], Answer>,
}

impl std::fmt::Debug for Introspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// A cached answer of the endpoint. Unavailability is never cached.
#[derive(Clone)]
enum Answer {
    Active {
        principal: Principal,
        until: Instant,
    },
    Inactive {
        why: String,
        until: Instant,
    },
}

impl Answer {
    fn until(&self) -> Instant {
        match self {
            Answer::Active { until, .. } | Answer::Inactive { until, .. } => *until,
        }
    }
}

/// Each answer lives exactly until its own deadline.
struct AnswerExpiry;

impl moka::Expiry<[u8; 32], Answer> for AnswerExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Answer,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.until().saturating_duration_since(created_at))
    }
}

impl Introspection {
    /// The verifier for `cfg`, reading `client_secret_env` from the process environment.
    pub fn new(cfg: &IntrospectionConfig) -> Result<Self, GuardError> {
        Self::with_env(cfg, |name| std::env::var(name).ok())
    }

    // Each verifier that reads secrets from the environment has this `new` /
    // `with_env` pair: setting process variables in a threaded test is unsound
    // (`set_var` is unsafe), so tests and embedders pass their own lookup.
    /// The verifier for `cfg`, reading environment variables through `env`.
    pub fn with_env(
        cfg: &IntrospectionConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GuardError> {
        Self::build(cfg, &env).map_err(GuardError::Config)
    }

    fn build(
        cfg: &IntrospectionConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let what = format!("introspection endpoint {}", cfg.endpoint);
        check_url(&cfg.endpoint, cfg.allow_http, &what)?;
        if cfg.client_id.trim().is_empty() {
            return Err(format!("{what}: client_id is empty"));
        }
        let client_secret = match (&cfg.client_secret, &cfg.client_secret_env) {
            (Some(s), None) => s.clone(),
            (None, Some(var)) => env(var).map(SecretString::from).ok_or_else(|| {
                format!("{what}: client_secret_env names {var}, which is not set")
            })?,
            (None, None) => {
                return Err(format!(
                    "{what}: set client_secret_env (or client_secret) to mcpgate's client secret"
                ));
            }
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{what}: set client_secret or client_secret_env, not both"
                ));
            }
        };
        if client_secret.expose_secret().is_empty() {
            return Err(format!("{what}: the client secret is empty"));
        }
        if cfg.timeout.is_zero() {
            return Err(format!("{what}: timeout must be greater than 0"));
        }
        Ok(Introspection {
            name: format!("introspection:{}", cfg.endpoint.host_str().unwrap_or("")),
            endpoint: cfg.endpoint.clone(),
            client_id: cfg.client_id.clone(),
            client_secret,
            auth_method: cfg.auth_method,
            audience: cfg.audience.clone(),
            positive_ttl: cfg.positive_ttl,
            negative_ttl: cfg.negative_ttl,
            timeout: cfg.timeout,
            fetcher: mcpgate_fetch::Fetcher::new(
                mcpgate_fetch::Policy::operator(mcpgate_fetch::Private::configured())
                    .timeout(cfg.timeout)
                    .max_bytes(MAX_RESPONSE_BYTES),
            )
            .map_err(|e| format!("{what}: {e}"))?,
            cache: moka::future::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .expire_after(AnswerExpiry)
                .build(),
        })
    }

    /// Forgets every cached answer (e.g. after a revocation was announced).
    pub fn clear_cache(&self) {
        self.cache.invalidate_all();
    }

    async fn check(&self, token: &str) -> Result<Verified, VerifyError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Single flight: concurrent misses for one key wait for one `introspect`.
        let answer = self
            .cache
            .try_get_with(key, self.introspect(token))
            .await
            .map_err(|e: Arc<VerifyError>| (*e).clone())?;
        match answer {
            Answer::Inactive { why, .. } => Err(VerifyError::Invalid(why)),
            Answer::Active { principal, until } => {
                if let Some(exp) = principal.expires_at()
                    && exp <= SystemTime::now()
                {
                    return Err(VerifyError::Invalid(format!(
                        "Token expired at {}",
                        crate::time::rfc3339(exp)
                    )));
                }
                Ok(Verified::new(
                    principal,
                    until.saturating_duration_since(Instant::now()),
                ))
            }
        }
    }

    /// Asks the endpoint. `Err` is always [`VerifyError::Unavailable`]: an
    /// inactive token is a (cacheable) `Ok(Answer::Inactive)`.
    async fn introspect(&self, token: &str) -> Result<Answer, VerifyError> {
        let req = self.request(token)?;
        let sent = Instant::now();
        let resp = self.fetcher.send(req).await.map_err(|e| {
            tracing::warn!(verifier = %self.name, error = %e, "introspection request failed");
            match e {
                mcpgate_fetch::FetchError::Timeout => VerifyError::Unavailable(format!(
                    "the token introspection endpoint did not answer within {:?}",
                    self.timeout
                )),
                mcpgate_fetch::FetchError::TooLarge { .. } => {
                    unavailable("the token introspection endpoint sent an unreadable answer")
                }
                _ => unavailable("the token introspection endpoint is unreachable"),
            }
        })?;
        let status = resp.status;
        if !status.is_success() {
            if status.is_client_error() && status != http::StatusCode::TOO_MANY_REQUESTS {
                tracing::error!(verifier = %self.name, %status,
                    "the introspection endpoint refused mcpgate's request; check client_id, the client secret and auth_method");
            } else {
                tracing::warn!(verifier = %self.name, %status, "introspection endpoint error");
            }
            return Err(VerifyError::Unavailable(format!(
                "the token introspection endpoint answered HTTP {}",
                status.as_u16()
            )));
        }
        let body = resp.body;
        let claims: Map<String, Value> = serde_json::from_slice(&body).map_err(|_| {
            tracing::warn!(verifier = %self.name, "introspection response is not a JSON object");
            unavailable("the token introspection endpoint sent an invalid answer")
        })?;
        tracing::debug!(verifier = %self.name, elapsed = ?sent.elapsed(), "token introspected");
        Ok(self.answer(claims))
    }

    /// The introspection request for `token`, with mcpgate's client authentication.
    fn request(&self, token: &str) -> Result<mcpgate_fetch::Request, VerifyError> {
        let mut form = vec![("token", token), ("token_type_hint", "access_token")];
        let mut basic = None;
        match self.auth_method {
            ClientAuthMethod::ClientSecretBasic => {
                let pair = format!(
                    "{}:{}",
                    form_encode(&self.client_id),
                    form_encode(self.client_secret.expose_secret())
                );
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                let mut value =
                    http::HeaderValue::try_from(format!("Basic {encoded}")).map_err(|_| {
                        unavailable(
                            "the introspection client credentials are not valid in a header",
                        )
                    })?;
                value.set_sensitive(true);
                basic = Some(value);
            }
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose_secret()));
            }
        }
        let mut req = mcpgate_fetch::Request::post_form(self.endpoint.as_str(), form).accept_json();
        if let Some(value) = basic {
            req = req.header(http::header::AUTHORIZATION, value);
        }
        Ok(req)
    }

    /// Turns the endpoint's JSON into a cacheable answer.
    fn answer(&self, mut claims: Map<String, Value>) -> Answer {
        let now = Instant::now();
        let inactive = |why: String| Answer::Inactive {
            why,
            until: now + self.negative_ttl,
        };
        match claims.remove("active") {
            Some(Value::Bool(true)) => {}
            _ => return inactive("Token is not active (revoked or expired)".to_owned()),
        }
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
        let Some(subject) = text("sub")
            .or_else(|| text("username"))
            .or_else(|| text("client_id"))
            .filter(|s| !s.is_empty())
        else {
            return inactive(
                "the token's introspection result names no subject (sub, username or client_id)"
                    .to_owned(),
            );
        };
        let subject = match Subject::try_from(subject) {
            Ok(s) => s,
            Err(e) => {
                return inactive(format!(
                    "the token's introspection result names no usable subject: {e}"
                ));
            }
        };
        let audience = strings(claims.get("aud"));
        if let Some(want) = &self.audience
            && !audience.iter().any(|a| same_resource(a, want))
        {
            return inactive(format!("Token audience does not include {want}"));
        }
        let scopes = match claims.get("scope") {
            Some(Value::String(s)) => ScopeSet::from_words_lossy([s.as_str()]),
            other => ScopeSet::from_words_lossy(strings(other).iter().map(String::as_str)),
        };
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64));
        let mut ttl = self.positive_ttl;
        if let Some(exp) = expires_at {
            ttl = ttl.min(exp.duration_since(SystemTime::now()).unwrap_or_default());
        }
        Answer::Active {
            principal: Principal::new(subject, AuthMethod::Introspection)
                .with_client_id(text("client_id").and_then(|c| ClientId::try_from(c).ok()))
                .with_scopes(scopes)
                .with_audience(audiences_lossy(audience))
                .with_expires_at(expires_at)
                .with_claims(claims),
            until: now + ttl,
        }
    }
}

impl Verifier for Introspection {
    fn name(&self) -> &str {
        &self.name
    }

    /// Every bearer token (opaque tokens have no shape to recognize); never API-key headers.
    fn accepts(&self, credential: &Credential) -> bool {
        matches!(credential, Credential::Bearer(_))
    }

    fn verify<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Verified, VerifyError>> {
        crate::claim(credential.bearer(), |token| self.check(token))
    }
}

/// A string or an array of strings (`aud`, a `scope` list).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn unavailable(why: &str) -> VerifyError {
    VerifyError::Unavailable(why.to_owned())
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Refuses URLs that would carry secrets in the clear: `https`, or `http` on a
/// loopback host, unless `allow_http`.
pub(crate) fn check_url(u: &url::Url, allow_http: bool, what: &str) -> Result<(), String> {
    match u.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(u) => Ok(()),
        "http" => Err(format!(
            "{what}: plain http sends secrets in the clear; use https (http is allowed on loopback, or with allow_http = true)"
        )),
        other => Err(format!("{what}: unsupported scheme {other:?}; use https")),
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests;
