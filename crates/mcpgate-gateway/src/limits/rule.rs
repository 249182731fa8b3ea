//! One `[[rate_limit]]` rule as the gateway runs it: its selectors (globs
//! that also pick the key dimensions), and its counter — a keyed token
//! bucket in this process, or a daily quota in the store.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::config::{RateLimitConfig, Window};

type Buckets =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Keys above this count are swept of full buckets now and then.
const SWEEP_ABOVE: usize = 10_000;
/// Checks between two sweeps.
const SWEEP_EVERY: u32 = 1_024;

/// The caller and call a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) subject: &'a str,
    pub(crate) client: Option<&'a str>,
    pub(crate) upstream: &'a str,
    /// The tool as the client names it; `None` for a request-level check.
    pub(crate) tool: Option<&'a str>,
}

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) config: RateLimitConfig,
    pub(crate) name: String,
    pub(crate) limit: u64,
    pub(crate) window: Window,
    tool: Option<GlobMatcher>,
    upstream: Option<GlobMatcher>,
    subject: Option<GlobMatcher>,
    client: Option<GlobMatcher>,
    buckets: Option<Buckets>,
    checks: AtomicU32,
}

/// What one check of one rule found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Let through; this many calls are left in the window.
    Allowed { remaining: u64 },
    /// Refused; the caller may retry after this long.
    Refused { retry_after: Duration },
}

fn matcher(glob: &Option<String>) -> Result<Option<GlobMatcher>, String> {
    glob.as_deref()
        .map(|g| {
            Glob::new(g)
                .map(|g| g.compile_matcher())
                .map_err(|e| format!("{g:?} is not a valid glob: {e}"))
        })
        .transpose()
}

impl Rule {
    /// Compiles table `index`; the problems are `rate_limit_problems`'.
    pub(crate) fn new(config: &RateLimitConfig, index: usize) -> Result<Rule, String> {
        let name = config.name_at(index);
        let window = config.window().map_err(|e| format!("{name}: {e}"))?;
        if config.limit == 0 {
            return Err(format!("{name}: limit = 0 allows nothing"));
        }
        let buckets = match window {
            Window::Bucket(per) => Some(buckets(per, config.limit)),
            Window::Daily => None,
        };
        Ok(Rule {
            name,
            limit: config.limit,
            window,
            tool: matcher(&config.tool)?,
            upstream: matcher(&config.upstream)?,
            subject: matcher(&config.subject)?,
            client: matcher(&config.client)?,
            buckets,
            checks: AtomicU32::new(0),
            config: config.clone(),
        })
    }

    /// Whether the rule counts per tool call (it names `tool`).
    pub(crate) fn per_tool(&self) -> bool {
        self.tool.is_some()
    }

    /// Whether `s` falls under the rule. A rule with `tool` matches only
    /// tool calls, one without only request-level checks.
    pub(crate) fn matches(&self, s: &Subject<'_>) -> bool {
        let hit = |m: &Option<GlobMatcher>, v: Option<&str>| match (m, v) {
            (None, _) => true,
            (Some(m), Some(v)) => m.is_match(v),
            (Some(_), None) => false,
        };
        self.tool.is_some() == s.tool.is_some()
            && hit(&self.tool, s.tool)
            && hit(&self.upstream, Some(s.upstream))
            && hit(&self.subject, Some(s.subject))
            && hit(&self.client, s.client)
    }

    /// The counter's key: the rule's name and the value of each dimension
    /// it names, so that a rule naming `subject` counts per subject and one
    /// naming nothing counts everyone together.
    pub(crate) fn key(&self, s: &Subject<'_>) -> String {
        let mut k = self.name.clone();
        let dims = [
            (self.subject.is_some(), "s", Some(s.subject)),
            (self.client.is_some(), "c", s.client),
            (self.upstream.is_some(), "u", Some(s.upstream)),
            (self.tool.is_some(), "t", s.tool),
        ];
        for (named, tag, v) in dims {
            if named {
                k.push('\u{1f}');
                k.push_str(tag);
                k.push('=');
                k.push_str(v.unwrap_or_default());
            }
        }
        k
    }

    /// Takes one call from `key`'s bucket (bucket rules only).
    pub(crate) fn take_bucket(&self, key: &String) -> Option<Outcome> {
        let b = self.buckets.as_ref()?;
        let outcome = match b.check_key(key) {
            Ok(s) => Outcome::Allowed {
                remaining: u64::from(s.remaining_burst_capacity()),
            },
            Err(not_until) => Outcome::Refused {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        };
        // Every distinct key holds a bucket; full ones are forgotten now and
        // then so that many one-off callers do not grow the map for ever.
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
            && b.len() > SWEEP_ABOVE
        {
            b.retain_recent();
            b.shrink_to_fit();
        }
        Some(outcome)
    }

    /// The bucket's refill period (the whole window for a quota).
    pub(crate) fn window_secs(&self) -> u64 {
        match self.window {
            Window::Bucket(per) => per.as_secs(),
            Window::Daily => 86_400,
        }
    }
}

/// `limit` calls at once, refilled one by one over `per`.
fn buckets(per: Duration, limit: u64) -> Buckets {
    let burst = u32::try_from(limit).unwrap_or(u32::MAX);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let period = per / burst.get();
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst);
    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>()
}
