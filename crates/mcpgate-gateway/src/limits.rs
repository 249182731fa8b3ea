//! `[[rate_limit]]`: how often a caller may call, checked after
//! authentication and the policy for every MCP POST (request-level rules,
//! those without `tool`: HTTP 429) and every `tools/call` (per-tool rules: a
//! JSON-RPC error). Token buckets live in this process; daily quotas in the
//! store, through [`QuotaCounter`], so they survive restarts and are shared
//! by replicas. Every refusal is logged, counted and audited.
//!
//! A rule applies to every call its selectors match; each selector it names
//! is also a dimension of its counter's key (see `rule.rs`).

mod config;
mod rule;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcpgate_guard::Principal;
use serde_json::value::RawValue;

use config::Window;
pub use config::{RateLimitConfig, rate_limit_problems, rate_limit_upstream_problems};
use rule::{Outcome, Rule, Subject};

use crate::error::GatewayError;
use crate::jsonrpc::{Kind, Message};

/// The `_meta` key under which the upstream is told the caller's standing
/// against each rule that matched a `tools/call`.
pub const USAGE_META_KEY: &str = "io.mcpgate/rateLimit";

/// Why a quota could not be counted.
pub type QuotaError = Box<dyn std::error::Error + Send + Sync>;

/// Where daily quotas are counted: the store, shared by every replica.
pub trait QuotaCounter: std::fmt::Debug + Send + Sync {
    /// Counts one call against `key` for UTC day `day` (days since the Unix
    /// epoch) if fewer than `limit` were counted: the count with this call,
    /// or `None` when the quota is used up (nothing counted then). Atomic:
    /// of N concurrent calls on any number of replicas, exactly `limit` win.
    fn take<'a>(
        &'a self,
        key: &'a str,
        day: i64,
        limit: u64,
    ) -> futures_util::future::BoxFuture<'a, Result<Option<u64>, QuotaError>>;
}

/// One configuration's rules.
#[derive(Debug, Default)]
pub(crate) struct RateLimits {
    rules: Vec<Arc<Rule>>,
    quotas: Option<Arc<dyn QuotaCounter>>,
    any_tool_rule: bool,
}

/// A caller's standing against one rule, after a call was let through.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Standing {
    rule: String,
    limit: u64,
    remaining: u64,
    /// Seconds of the rule's window.
    window: u64,
    quota: bool,
}

impl RateLimits {
    /// The rules of `configs`; a rule whose table did not change keeps the
    /// running one's buckets (`previous`: the configuration before a reload).
    pub(crate) fn new(
        configs: &[RateLimitConfig],
        quotas: Option<Arc<dyn QuotaCounter>>,
        previous: Option<&RateLimits>,
    ) -> Result<RateLimits, Vec<String>> {
        let mut problems = rate_limit_problems(configs);
        let mut rules = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let kept = previous.and_then(|p| {
                p.rules
                    .iter()
                    .find(|r| r.config == *c && r.name == c.name_at(i))
            });
            match kept {
                Some(r) => rules.push(r.clone()),
                None => match Rule::new(c, i) {
                    Ok(r) => rules.push(Arc::new(r)),
                    Err(e) if problems.is_empty() => problems.push(e),
                    Err(_) => {}
                },
            }
        }
        if quotas.is_none()
            && let Some(r) = rules.iter().find(|r| r.window == Window::Daily)
        {
            problems.push(format!(
                "{}: a daily quota needs the store, and the gateway was given none",
                r.name
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(RateLimits {
            any_tool_rule: rules.iter().any(|r| r.per_tool()),
            rules,
            quotas,
        })
    }

    /// Whether no rule is configured (then nothing is checked or told).
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks `msg` from `p` at `upstream` against every rule it falls
    /// under and counts it: the caller's standing for the upstream when it
    /// is a tool call that some rule matched, or the refusal.
    pub(crate) async fn check(
        &self,
        upstream: &str,
        p: &Principal,
        msg: &Message,
    ) -> Result<Vec<Standing>, GatewayError> {
        if self.rules.is_empty() {
            return Ok(Vec::new());
        }
        let tool = if self.any_tool_rule
            && msg.kind() == Some(Kind::Request)
            && msg.method.as_deref() == Some("tools/call")
        {
            tool_name(msg)
        } else {
            None
        };
        let s = Subject {
            subject: p.subject().as_str(),
            client: p.client_id().map(|c| c.as_str()),
            upstream,
            tool: None,
        };
        let mut standing = Vec::new();
        self.check_level(&s, &mut standing).await?;
        if let Some(t) = tool.as_deref() {
            let s = Subject { tool: Some(t), ..s };
            self.check_level(&s, &mut standing).await?;
        } else {
            // Only a tool call's upstream hears of its standing.
            standing.clear();
        }
        Ok(standing)
    }

    async fn check_level(
        &self,
        s: &Subject<'_>,
        standing: &mut Vec<Standing>,
    ) -> Result<(), GatewayError> {
        for r in self.rules.iter().filter(|r| r.matches(s)) {
            let key = r.key(s);
            let outcome = match r.window {
                Window::Bucket(_) => r.take_bucket(&key),
                Window::Daily => Some(self.take_quota(r, &key).await?),
            };
            match outcome {
                Some(Outcome::Allowed { remaining }) => standing.push(Standing {
                    rule: r.name.clone(),
                    limit: r.limit,
                    remaining,
                    window: r.window_secs(),
                    quota: r.window == Window::Daily,
                }),
                Some(Outcome::Refused { retry_after }) => return Err(refuse(r, s, retry_after)),
                None => {}
            }
        }
        Ok(())
    }

    async fn take_quota(&self, r: &Rule, key: &str) -> Result<Outcome, GatewayError> {
        let Some(q) = &self.quotas else {
            // `new` refuses daily rules without a counter.
            return Err(GatewayError::LimitUnavailable(format!(
                "rate limit {} cannot be counted: no store",
                r.name
            )));
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let day = i64::try_from(now / 86_400).unwrap_or(i64::MAX);
        match q.take(key, day, r.limit).await {
            Ok(Some(used)) => Ok(Outcome::Allowed {
                remaining: r.limit.saturating_sub(used),
            }),
            Ok(None) => Ok(Outcome::Refused {
                retry_after: Duration::from_secs(86_400 - now % 86_400),
            }),
            Err(e) => {
                tracing::error!(rule = %r.name, "the quota store failed, the call is refused: {e}");
                Err(GatewayError::LimitUnavailable(format!(
                    "rate limit {} cannot be counted now (the store failed); retry shortly",
                    r.name
                )))
            }
        }
    }
}

/// The refusal of `s` by `r`: logged, counted, noted for the audit trail.
fn refuse(r: &Rule, s: &Subject<'_>, retry_after: Duration) -> GatewayError {
    // Whole seconds, rounded up: retrying at the advertised time succeeds.
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let secs = secs.max(1);
    let what = match s.tool {
        Some(t) => format!("tools/call of {t:?}"),
        None => "request".to_owned(),
    };
    let message = format!(
        "Rate limit {}: {what} refused, {} calls per {} used up; retry in {secs}s",
        r.name,
        r.limit,
        r.config.per.as_deref().unwrap_or("1d"),
    );
    tracing::info!(
        subject = s.subject,
        client = s.client.unwrap_or_default(),
        upstream = s.upstream,
        tool = s.tool.unwrap_or_default(),
        rule = %r.name,
        retry_after = secs,
        "call refused by rate limit"
    );
    mcpgate_telemetry::metrics().rate_limited(s.upstream, &r.name);
    mcpgate_telemetry::note_denied(&format!("rate_limit {}: {what} over the limit", r.name));
    let limited = crate::error::Limited {
        rule: r.name.clone(),
        retry_after: secs,
        limit: r.limit,
        window: r.window_secs(),
        message,
    };
    if s.tool.is_some() {
        GatewayError::ToolRateLimited(limited)
    } else {
        GatewayError::RateLimited(limited)
    }
}

/// The name of a `tools/call`, read without its arguments.
fn tool_name(msg: &Message) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Name<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }
    let raw = msg.params.as_deref()?.get();
    serde_json::from_str::<Name<'_>>(raw)
        .ok()
        .map(|n| n.name.into_owned())
}

/// `msg` with the caller's standing in `params._meta` (for the upstream);
/// with none, a standing the client wrote there itself is removed, so that
/// what the upstream reads under the key is the gateway's word. Unchanged
/// when the params are not an object.
pub(crate) fn tell_upstream(msg: Message, standing: &[Standing]) -> Message {
    let claimed = msg.method.as_deref() == Some("tools/call")
        && msg
            .params
            .as_deref()
            .is_some_and(|p| p.get().contains(USAGE_META_KEY));
    if standing.is_empty() && !claimed {
        return msg;
    }
    let Some(mut params) = msg.params.as_deref().and_then(|p| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(p.get()).ok()
    }) else {
        return msg;
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let serde_json::Value::Object(m) = meta {
        if standing.is_empty() {
            m.remove(USAGE_META_KEY);
        } else {
            m.insert(
                USAGE_META_KEY.to_owned(),
                serde_json::to_value(standing).unwrap_or_default(),
            );
        }
    }
    let params: Option<Box<RawValue>> = Some(crate::jsonrpc::raw(&params));
    Message { params, ..msg }
}
