//! `[[rate_limit]]` tables as written, their `per` windows, and the problems
//! `check-config` and the start report, each naming the table and the key.

use std::time::Duration;

use globset::Glob;
use serde::Deserialize;

/// The longest window: quotas count per UTC day.
const DAY: Duration = Duration::from_secs(86_400);

/// One `[[rate_limit]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The rule's name in errors, logs, metrics and the quota's stored key;
    /// default `rate_limit[<index>]`.
    #[serde(default)]
    pub name: Option<String>,
    /// A glob over tool names as the client sees them: the rule is checked
    /// per `tools/call`; unset: per request (every MCP POST).
    #[serde(default)]
    pub tool: Option<String>,
    /// A glob over upstream and virtual server names.
    #[serde(default)]
    pub upstream: Option<String>,
    /// A glob over subjects.
    #[serde(default)]
    pub subject: Option<String>,
    /// A glob over OAuth client ids (callers without one never match).
    #[serde(default)]
    pub client: Option<String>,
    /// Calls allowed per window (at least 1).
    pub limit: u64,
    /// The window: `<n><unit>`, unit `s`, `m`, `h` or `d` (`"1d"` is a quota).
    #[serde(default)]
    pub per: Option<String>,
    /// A daily quota counted in the store (shared by replicas, kept across
    /// restarts) instead of an in-process token bucket.
    #[serde(default)]
    pub quota: bool,
}

/// A rule's window and where it is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// An in-process token bucket refilled over this period.
    Bucket(Duration),
    /// A count per UTC day in the store.
    Daily,
}

impl RateLimitConfig {
    /// The rule's name (`index` is its place among the tables).
    pub(crate) fn name_at(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("rate_limit[{index}]"))
    }

    /// Whether the rule is a daily quota, counted in the store.
    pub fn is_quota(&self) -> bool {
        self.window() == Ok(Window::Daily)
    }

    /// The window, or what is wrong with `per`/`quota`.
    pub(crate) fn window(&self) -> Result<Window, String> {
        let per =
            match (&self.per, self.quota) {
                (None, true) => return Ok(Window::Daily),
                (None, false) => return Err(
                    "per is missing: say how long the window is (\"30s\", \"1m\", \"1h\", \"1d\")"
                        .into(),
                ),
                (Some(p), _) => parse_per(p)?,
            };
        if per == DAY {
            return Ok(Window::Daily);
        }
        if self.quota {
            return Err(format!(
                "quota = true counts per UTC day: per must be \"1d\" or unset, not {:?}",
                self.per.as_deref().unwrap_or_default()
            ));
        }
        if per > DAY {
            return Err(format!(
                "per = {:?} is longer than a day; windows up to \"1d\" are supported (a day is a quota)",
                self.per.as_deref().unwrap_or_default()
            ));
        }
        Ok(Window::Bucket(per))
    }
}

/// `"30s"`, `"1m"`, `"2h"`, `"1d"` (the number defaults to 1: `"m"`).
pub(crate) fn parse_per(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let Some(unit) = t.chars().last() else {
        return Err("per is empty: write a window such as \"1m\"".into());
    };
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => {
            return Err(format!(
                "per = {s:?}: the unit must be s, m, h or d (as in \"30s\", \"1m\", \"1h\", \"1d\")"
            ));
        }
    };
    let digits = &t[..t.len() - 1];
    let n: u64 = if digits.is_empty() {
        1
    } else {
        digits.trim().parse().map_err(|_| {
            format!("per = {s:?}: expected a whole number then s, m, h or d (as in \"30s\")")
        })?
    };
    if n == 0 {
        return Err(format!("per = {s:?}: the window must be longer than zero"));
    }
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("per = {s:?} is too long"))
}

/// Every problem with the `[[rate_limit]]` tables, one line each, naming the
/// table (`rate_limit[i]`) and the key.
pub fn rate_limit_problems(rules: &[RateLimitConfig]) -> Vec<String> {
    let mut out = Vec::new();
    let mut names = std::collections::BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        let at = format!("rate_limit[{i}]");
        if r.limit == 0 {
            out.push(format!(
                "{at}.limit: 0 allows nothing; use at least 1 (or remove the table)"
            ));
        }
        if let Err(e) = r.window() {
            out.push(format!("{at}.{e}"));
        }
        for (key, glob) in [
            ("tool", &r.tool),
            ("upstream", &r.upstream),
            ("subject", &r.subject),
            ("client", &r.client),
        ] {
            if let Some(g) = glob
                && let Err(e) = Glob::new(g)
            {
                out.push(format!("{at}.{key}: {g:?} is not a valid glob: {e}"));
            }
        }
        if let Some(n) = &r.name {
            if n.is_empty() || n.chars().any(|c| c.is_control() || c == '"') {
                out.push(format!(
                    "{at}.name: {n:?} must be non-empty, without control characters or quotes"
                ));
            }
            if let Some(first) = names.insert(n.clone(), i) {
                out.push(format!(
                    "{at}.name: {n:?} is already the name of rate_limit[{first}]; names must be unique"
                ));
            }
        }
    }
    out
}

/// A rule whose `upstream` glob matches none of `names` (the upstreams and
/// virtual servers) would never apply: most likely a misspelt name.
pub fn rate_limit_upstream_problems(rules: &[RateLimitConfig], names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let Some(glob) = &r.upstream else { continue };
        // A bad glob is reported by `rate_limit_problems`.
        let Ok(m) = Glob::new(glob).map(|g| g.compile_matcher()) else {
            continue;
        };
        if !names.iter().any(|n| m.is_match(n)) {
            out.push(format!(
                "rate_limit[{i}].upstream: {glob:?} matches no [[upstream]] or [[virtual_server]] name (configured: {})",
                names.join(", ")
            ));
        }
    }
    out
}
