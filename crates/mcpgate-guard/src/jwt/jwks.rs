//! An issuer's JWKS, fetched on first use and kept fresh.
//!
//! - **Cached**, refreshed in the background once the document's
//!   `Cache-Control: max-age` has passed (10 minutes without one), while
//!   requests keep using the keys in hand.
//! - **Refetched when a token names an unknown `kid`** (the issuer rotated its
//!   keys), at most once per [`JwksSettings::min_refetch_interval`]: a flood of
//!   tokens with invented `kid`s costs the identity provider nothing.
//! - **One request at a time**: concurrent verifications that need a fetch wait
//!   for the same one.
//! - **Stale if error**: when a refresh fails the old keys stay in use; only a
//!   cold start with the identity provider down is [`VerifyError::Unavailable`].
//! - **Bounded**: a whole-call timeout, a size cap, no redirects.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::verifier::VerifyError;

use super::keys::KeySet;

/// How a JWKS is fetched and cached. The defaults suit production; tests
/// shorten the intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksSettings {
    /// Whole-call timeout of one fetch (default 5 s).
    pub timeout: Duration,
    /// Largest document accepted (default 256 KiB).
    pub max_bytes: usize,
    /// Least time between two fetches, whatever triggers them: an unknown
    /// `kid`, a short `max-age`, a failed refresh (default 30 s).
    pub min_refetch_interval: Duration,
    /// How long keys are used before a refresh when the document has no
    /// `Cache-Control: max-age` (default 10 min). Longer `max-age`s are capped
    /// at one day.
    pub default_max_age: Duration,
    /// Least time between two attempts while no keys were ever fetched
    /// (default 5 s), so a down identity provider is not asked on every request.
    pub cold_retry_interval: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            min_refetch_interval: Duration::from_secs(30),
            default_max_age: Duration::from_secs(600),
            cold_retry_interval: Duration::from_secs(5),
        }
    }
}

impl JwksSettings {
    /// The same settings with every interval set to `interval` (for tests:
    /// rotation is seen at once, yet floods still share one fetch).
    pub fn with_intervals(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self.cold_retry_interval = interval;
        self
    }
}

const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The fetcher of one issuer's key set.
#[derive(Debug)]
pub(crate) struct Jwks {
    uri: url::Url,
    /// The guarded fetcher (operator policy: `[server] outbound_private`).
    fetcher: mcpgate_fetch::Fetcher,
    settings: JwksSettings,
    state: Mutex<State>,
    /// Held while a fetch is in flight; waiters reuse its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    /// Bumped by every successful fetch.
    generation: u64,
    /// When the keys should be refreshed.
    refresh_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
    refreshing: bool,
}

/// A snapshot of the keys and which fetch produced them.
pub(crate) struct Snapshot {
    pub(crate) keys: Arc<KeySet>,
    pub(crate) generation: u64,
}

impl Jwks {
    /// A fetcher for `uri`; nothing is fetched yet.
    pub(crate) fn new(uri: url::Url, settings: JwksSettings) -> Result<Self, String> {
        let policy = mcpgate_fetch::Policy::operator(mcpgate_fetch::Private::configured())
            .timeout(settings.timeout)
            .max_bytes(settings.max_bytes);
        let fetcher = mcpgate_fetch::Fetcher::new(policy).map_err(|e| e.to_string())?;
        Ok(Jwks {
            uri,
            fetcher,
            settings,
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Where the keys come from.
    pub(crate) fn uri(&self) -> &url::Url {
        &self.uri
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keys in hand, fetching them on a cold start. Due refreshes start
    /// in the background.
    pub(crate) async fn current(self: &Arc<Self>) -> Result<Snapshot, VerifyError> {
        {
            let mut st = self.state();
            if let Some(keys) = st.keys.clone() {
                let now = Instant::now();
                if !st.refreshing && st.refresh_at.is_some_and(|t| now >= t) {
                    st.refreshing = true;
                    let this = Arc::clone(self);
                    tokio::spawn(async move { this.background_refresh().await });
                }
                return Ok(Snapshot {
                    keys,
                    generation: st.generation,
                });
            }
        }
        self.cold_fetch().await
    }

    async fn cold_fetch(&self) -> Result<Snapshot, VerifyError> {
        let _one = self.fetching.lock().await;
        {
            let st = self.state();
            if let Some(keys) = st.keys.clone() {
                return Ok(Snapshot {
                    keys,
                    generation: st.generation,
                });
            }
            if let Some(t) = st.last_attempt
                && t.elapsed() < self.settings.cold_retry_interval
            {
                let why = st.last_error.as_deref().unwrap_or("a fetch just failed");
                return Err(self.unavailable(why));
            }
        }
        self.fetch_locked()
            .await
            .map_err(|why| self.unavailable(&why))
    }

    fn unavailable(&self, why: &str) -> VerifyError {
        VerifyError::Unavailable(format!(
            "cannot fetch the token issuer's signing keys from {}: {why}",
            self.uri
        ))
    }

    /// A fresh key set for a token whose `kid` the snapshot `seen` lacks, or
    /// `None` when a fetch is not allowed yet (or failed: the old keys stay).
    pub(crate) async fn refetch_for_unknown_kid(&self, seen: u64) -> Option<Snapshot> {
        let _one = self.fetching.lock().await;
        {
            let st = self.state();
            if st.generation != seen {
                // Someone fetched while this request waited.
                return st.keys.clone().map(|keys| Snapshot {
                    keys,
                    generation: st.generation,
                });
            }
            if st
                .last_attempt
                .is_some_and(|t| t.elapsed() < self.settings.min_refetch_interval)
            {
                return None;
            }
        }
        self.fetch_locked().await.ok()
    }

    async fn background_refresh(self: Arc<Self>) {
        {
            let _one = self.fetching.lock().await;
            let due = {
                let st = self.state();
                st.refresh_at.is_some_and(|t| Instant::now() >= t)
            };
            if due {
                // Failures are logged and leave the old keys in place.
                let _ = self.fetch_locked().await;
            }
        }
        self.state().refreshing = false;
    }

    /// Fetches now; the caller holds `fetching`.
    async fn fetch_locked(&self) -> Result<Snapshot, String> {
        self.state().last_attempt = Some(Instant::now());
        match self.download().await {
            Ok((set, max_age)) => {
                let keys = Arc::new(set);
                let mut st = self.state();
                st.generation += 1;
                st.keys = Some(Arc::clone(&keys));
                st.refresh_at = Some(Instant::now() + max_age);
                st.last_error = None;
                tracing::debug!(jwks = %self.uri, keys = keys.keys.len(), "fetched signing keys");
                Ok(Snapshot {
                    keys,
                    generation: st.generation,
                })
            }
            Err(why) => {
                let mut st = self.state();
                if st.keys.is_some() {
                    tracing::warn!(jwks = %self.uri, %why, "refreshing signing keys failed; using the cached keys");
                    st.refresh_at = Some(Instant::now() + self.settings.min_refetch_interval);
                } else {
                    tracing::warn!(jwks = %self.uri, %why, "fetching signing keys failed");
                }
                st.last_error = Some(why.clone());
                Err(why)
            }
        }
    }

    async fn download(&self) -> Result<(KeySet, Duration), String> {
        let resp = self
            .fetcher
            .send(mcpgate_fetch::Request::get(self.uri.as_str()).header(
                http::header::ACCEPT,
                http::HeaderValue::from_static("application/json, application/jwk-set+json"),
            ))
            .await
            .map_err(|e| self.describe(&e))?;
        let status = resp.status;
        if status.is_redirection() {
            let to = resp
                .headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("elsewhere");
            return Err(format!(
                "HTTP {status}: redirected to {to}; configure jwks_uri as the final URL"
            ));
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let max_age = resp
            .headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(self.settings.default_max_age)
            .clamp(
                self.settings.min_refetch_interval,
                MAX_MAX_AGE.max(self.settings.min_refetch_interval),
            );
        let body = resp.body;
        let set = KeySet::from_json(&body)?;
        if set.keys.is_empty() {
            return Err("the key set holds no usable signing key".into());
        }
        Ok((set, max_age))
    }
}

impl Jwks {
    /// The operator's words for a failed fetch (the issuer is theirs).
    fn describe(&self, e: &mcpgate_fetch::FetchError) -> String {
        match e {
            mcpgate_fetch::FetchError::Unreachable => "cannot connect".to_owned(),
            mcpgate_fetch::FetchError::Timeout => "timed out".to_owned(),
            mcpgate_fetch::FetchError::TooLarge { .. } => format!(
                "the key set is larger than {} bytes",
                self.settings.max_bytes
            ),
            other => other.to_string(),
        }
    }
}

/// The `max-age` of a `Cache-Control` value; `no-cache`/`no-store` mean zero.
pub(crate) fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            age = value
                .trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}
