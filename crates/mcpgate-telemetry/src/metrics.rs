//! The Prometheus registry and its families, with a typed method per event so
//! that label values stay bounded: routes are templates, methods and outcomes
//! come from fixed lists, upstream names from the configuration.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use series::Series;

/// MCP methods that get their own label value; anything else is `other`, so a
/// client inventing method names cannot grow the series count.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/list",
    "tasks/cancel",
    "tasks/result",
];

/// The label value for an MCP method.
pub fn method_label(method: &str) -> &'static str {
    known_or_other(KNOWN_METHODS, method)
}

/// `value` as it stands in `known`, else `other`: a label whose values a
/// caller cannot grow without bound.
fn known_or_other(known: &[&'static str], value: &str) -> &'static str {
    known
        .iter()
        .find(|k| **k == value)
        .copied()
        .unwrap_or("other")
}

/// How an MCP request ended, as the gateway answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum McpOutcome {
    /// Answered (a JSON-RPC error from the upstream included).
    Ok,
    /// Refused by the gateway (4xx: scope, policy, session, malformed).
    Refused,
    /// The upstream failed, timed out or was at a limit (5xx).
    Failed,
}

impl McpOutcome {
    /// From the HTTP status the gateway answered with.
    pub fn from_status(status: u16) -> McpOutcome {
        match status {
            500.. => McpOutcome::Failed,
            400..=499 => McpOutcome::Refused,
            _ => McpOutcome::Ok,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            McpOutcome::Ok => "ok",
            McpOutcome::Refused => "refused",
            McpOutcome::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct McpLabels {
    upstream: String,
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct McpTimeLabels {
    upstream: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    verifier: String,
    outcome: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    decision: &'static str,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLimitLabels {
    upstream: String,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OAuthFailureLabels {
    endpoint: String,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RenewalLabels {
    upstream: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s: a cached tools/list through the gateway up to a slow tool.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// One MCP request answered by the gateway after `total`, of which the
/// upstream took `upstream_wait`: counts it, its duration, and the gateway's
/// own share (`mcpgate_gateway_overhead_seconds`).
pub fn mcp_answered(
    upstream: &str,
    method: &str,
    outcome: McpOutcome,
    total: Duration,
    upstream_wait: Duration,
) {
    let m = metrics();
    if !m.recording() {
        return;
    }
    // One lookup of the request's histograms for both observations.
    let method = m.mcp_count(upstream, method, outcome);
    let own = total.saturating_sub(upstream_wait);
    m.mcp_time(upstream, method, |(all, gateway)| {
        all.observe(total.as_secs_f64());
        gateway.observe(own.as_secs_f64());
    });
}

/// Every family mcpgate exports; one per process ([`metrics`]).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    mcp_requests: Family<McpLabels, Counter>,
    mcp_duration: Histograms<McpTimeLabels>,
    gateway_overhead: Histograms<McpTimeLabels>,
    auth_decisions: Family<AuthLabels, Counter>,
    policy_decisions: Family<PolicyLabels, Counter>,
    rate_limited: Family<RateLimitLabels, Counter>,
    tokens_issued: Family<GrantLabels, Counter>,
    oauth_failures: Family<OAuthFailureLabels, Counter>,
    sessions_active: Family<UpstreamLabels, Gauge>,
    upstream_children: Family<UpstreamLabels, Gauge>,
    upstream_up: Family<UpstreamLabels, Gauge>,
    renewals: Family<RenewalLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    /// The per-request series again, by route and status.
    http_series: Series<u16, Counter>,
    /// By upstream, method label and outcome.
    mcp_series: Series<(&'static str, &'static str), Counter>,
    /// By upstream and method label: the request's duration and the
    /// gateway's share of it.
    mcp_times: Series<&'static str, (Histogram, Histogram)>,
    /// By verifier, whether allowed, and reason.
    auth_series: Series<(bool, &'static str), Counter>,
    /// By upstream: set after every upstream request.
    up_series: Series<(), Gauge>,
    on: AtomicBool,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics. They record only once [`Metrics::record`] switched
/// them on (the `/metrics` listener does): with `[metrics] listen = ""` every
/// method returns at its first line.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mcpgate");
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            mcp_requests: Family::default(),
            mcp_duration: Family::new_with_constructor(latency_histogram),
            gateway_overhead: Family::new_with_constructor(latency_histogram),
            auth_decisions: Family::default(),
            policy_decisions: Family::default(),
            rate_limited: Family::default(),
            tokens_issued: Family::default(),
            oauth_failures: Family::default(),
            sessions_active: Family::default(),
            upstream_children: Family::default(),
            upstream_up: Family::default(),
            renewals: Family::default(),
            reloads: Family::default(),
            http_series: Series::default(),
            mcp_series: Series::default(),
            mcp_times: Series::default(),
            auth_series: Series::default(),
            up_series: Series::default(),
            on: AtomicBool::new(false),
        };
        // One `register` per family, written out: each family has its own
        // label and value types, which a table of them would have to box.
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status",
            m.http_requests.clone(),
        );
        registry.register(
            "mcp_requests",
            "MCP requests forwarded, by upstream, method and outcome",
            m.mcp_requests.clone(),
        );
        registry.register_with_unit(
            "mcp_request_duration",
            "Time from an MCP request's arrival to its answer's first byte",
            Unit::Seconds,
            m.mcp_duration.clone(),
        );
        registry.register_with_unit(
            "gateway_overhead",
            "The gateway's own share of an MCP request's time (total minus the upstream's)",
            Unit::Seconds,
            m.gateway_overhead.clone(),
        );
        registry.register(
            "auth_decisions",
            "Authentication decisions, by verifier, outcome and reason",
            m.auth_decisions.clone(),
        );
        registry.register(
            "policy_decisions",
            "[policy] rule decisions, by decision and the policy (@id) that decided (none: nothing permitted)",
            m.policy_decisions.clone(),
        );
        registry.register(
            "rate_limited",
            "Calls refused by a [[rate_limit]] rule, by upstream (or virtual server) and rule name",
            m.rate_limited.clone(),
        );
        registry.register(
            "oauth_tokens_issued",
            "Access tokens the authorization server issued, by grant type",
            m.tokens_issued.clone(),
        );
        registry.register(
            "oauth_failures",
            "Refused authorization server requests, by endpoint and OAuth error code",
            m.oauth_failures.clone(),
        );
        registry.register(
            "sessions_active",
            "Open MCP sessions, by upstream",
            m.sessions_active.clone(),
        );
        registry.register(
            "upstream_children",
            "Running stdio upstream processes, by upstream",
            m.upstream_children.clone(),
        );
        registry.register(
            "upstream_up",
            "Whether the last attempt to reach an upstream succeeded (1) or not (0)",
            m.upstream_up.clone(),
        );
        registry.register(
            "credential_renewals",
            "Upstream credential renewals, by upstream, kind and outcome",
            m.renewals.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads, by outcome",
            m.reloads.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Whether metrics are being recorded (the registry is exported).
    pub fn recording(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Starts (or stops) recording.
    pub fn record(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// The exposition text (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One HTTP request answered.
    pub fn http_request(&self, route: &str, status: u16) {
        if !self.recording() {
            return;
        }
        self.http_series.with(
            route,
            status,
            || {
                self.http_requests.get_or_create_owned(&HttpLabels {
                    route: route.to_owned(),
                    status,
                })
            },
            |c| {
                c.inc();
            },
        );
    }

    /// One MCP request answered by the gateway.
    pub fn mcp_request(
        &self,
        upstream: &str,
        method: &str,
        outcome: McpOutcome,
        duration: Duration,
    ) {
        if !self.recording() {
            return;
        }
        let method = self.mcp_count(upstream, method, outcome);
        self.mcp_time(upstream, method, |(total, _)| {
            total.observe(duration.as_secs_f64());
        });
    }

    /// Counts one MCP request; the method's label back.
    fn mcp_count(&self, upstream: &str, method: &str, outcome: McpOutcome) -> &'static str {
        let method = method_label(method);
        let outcome = outcome.as_str();
        self.mcp_series.with(
            upstream,
            (method, outcome),
            || {
                self.mcp_requests.get_or_create_owned(&McpLabels {
                    upstream: upstream.to_owned(),
                    method,
                    outcome,
                })
            },
            |c| {
                c.inc();
            },
        );
        method
    }

    /// The gateway's own time in one MCP request (its total minus the upstream's).
    pub fn gateway_overhead(&self, upstream: &str, method: &str, overhead: Duration) {
        if !self.recording() {
            return;
        }
        self.mcp_time(upstream, method_label(method), |(_, own)| {
            own.observe(overhead.as_secs_f64());
        });
    }

    fn mcp_time(
        &self,
        upstream: &str,
        method: &'static str,
        f: impl FnOnce(&(Histogram, Histogram)),
    ) {
        self.mcp_times.with(
            upstream,
            method,
            || {
                let labels = McpTimeLabels {
                    upstream: upstream.to_owned(),
                    method,
                };
                (
                    self.mcp_duration.get_or_create_owned(&labels),
                    self.gateway_overhead.get_or_create_owned(&labels),
                )
            },
            f,
        );
    }

    /// One authentication decision. `verifier` is how the caller
    /// authenticated (`api_key`, `jwt`, …) or `none` when refused before one
    /// matched; `reason` an error code, `ok` when allowed.
    pub fn auth_decision(&self, verifier: &str, allowed: bool, reason: &'static str) {
        if !self.recording() {
            return;
        }
        self.auth_series.with(
            verifier,
            (allowed, reason),
            || {
                self.auth_decisions.get_or_create_owned(&AuthLabels {
                    verifier: verifier.to_owned(),
                    outcome: if allowed { "allowed" } else { "refused" },
                    reason,
                })
            },
            |c| {
                c.inc();
            },
        );
    }

    /// One `[policy]` decision: allowed or denied, and the policy that
    /// decided (its `@id`; `none` when nothing permitted). The policy ids are
    /// the configuration's, so the label set stays bounded.
    pub fn policy_decision(&self, allowed: bool, policy: &str) {
        if !self.recording() {
            return;
        }
        self.policy_decisions
            .get_or_create(&PolicyLabels {
                decision: if allowed { "allow" } else { "deny" },
                policy: policy.to_owned(),
            })
            .inc();
    }

    /// One call refused by `[[rate_limit]]` rule `rule` at `upstream`. Both
    /// names are the configuration's, so the label set stays bounded.
    pub fn rate_limited(&self, upstream: &str, rule: &str) {
        if !self.recording() {
            return;
        }
        self.rate_limited
            .get_or_create(&RateLimitLabels {
                upstream: upstream.to_owned(),
                rule: rule.to_owned(),
            })
            .inc();
    }

    /// One access token issued.
    pub fn token_issued(&self, grant_type: &str) {
        if !self.recording() {
            return;
        }
        const GRANTS: &[&str] = &[
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ];
        let grant_type = known_or_other(GRANTS, grant_type);
        self.tokens_issued
            .get_or_create(&GrantLabels { grant_type })
            .inc();
    }

    /// One refused authorization server request; `endpoint` is a route
    /// template, `error` an OAuth error code (others count as `other`).
    pub fn oauth_failure(&self, endpoint: &str, error: &str) {
        if !self.recording() {
            return;
        }
        const CODES: &[&str] = &[
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "unsupported_response_type",
            "invalid_scope",
            "invalid_target",
            "access_denied",
            "login_required",
            "consent_required",
            "server_error",
            "temporarily_unavailable",
            "too_many_requests",
            "invalid_redirect_uri",
            "invalid_client_metadata",
            "authorization_pending",
            "slow_down",
            "expired_token",
        ];
        let error = known_or_other(CODES, error);
        self.oauth_failures
            .get_or_create(&OAuthFailureLabels {
                endpoint: endpoint.to_owned(),
                error,
            })
            .inc();
    }

    /// Sessions open on `upstream` now.
    pub fn sessions_active(&self, upstream: &str, n: i64) {
        if !self.recording() {
            return;
        }
        self.sessions_active
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .set(n);
    }

    /// Child processes running for `upstream` now.
    pub fn upstream_children(&self, upstream: &str, n: i64) {
        if !self.recording() {
            return;
        }
        self.upstream_children
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .set(n);
    }

    /// A session on `upstream` opened (the gauge goes up by one).
    pub fn session_opened(&self, upstream: &str) {
        self.add(&self.sessions_active, upstream, 1);
    }

    /// A session on `upstream` ended (DELETE, expiry, its upstream gone).
    pub fn session_closed(&self, upstream: &str) {
        self.add(&self.sessions_active, upstream, -1);
    }

    /// A child process of `upstream` started.
    pub fn child_started(&self, upstream: &str) {
        self.add(&self.upstream_children, upstream, 1);
    }

    /// A child process of `upstream` was reaped.
    pub fn child_exited(&self, upstream: &str) {
        self.add(&self.upstream_children, upstream, -1);
    }

    fn add(&self, gauge: &Family<UpstreamLabels, Gauge>, upstream: &str, n: i64) {
        if !self.recording() {
            return;
        }
        gauge
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .inc_by(n);
    }

    /// Whether `upstream` answered its last request or connection attempt.
    pub fn upstream_up(&self, upstream: &str, up: bool) {
        if !self.recording() {
            return;
        }
        self.up_series.with(
            upstream,
            (),
            || {
                self.upstream_up.get_or_create_owned(&UpstreamLabels {
                    upstream: upstream.to_owned(),
                })
            },
            |g| {
                g.set(i64::from(up));
            },
        );
    }

    /// One upstream credential renewal; `kind` is `oauth_refresh`,
    /// `client_credentials`, `token_exchange` or `federation`.
    pub fn credential_renewal(&self, upstream: &str, kind: &'static str, ok: bool) {
        if !self.recording() {
            return;
        }
        self.renewals
            .get_or_create(&RenewalLabels {
                upstream: upstream.to_owned(),
                kind,
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// One configuration reload.
    pub fn config_reload(&self, ok: bool) {
        if !self.recording() {
            return;
        }
        self.reloads
            .get_or_create(&ReloadLabels {
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }
}

mod series;

#[cfg(test)]
mod tests;
