//! The `[[virtual_server]]` table and a member's `prefix` / `tools` keys in
//! its `[[upstream]]` table, with the checks `check-config` and start-up run
//! on them (unknown members, names that would collide, bad globs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mcpgate_guard::{PolicyConfig, Scopes};
use serde::Deserialize;

use crate::config::UpstreamConfig;

/// One `[[virtual_server]]` table: several upstreams served as one MCP
/// server at `/mcp/<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VirtualServerConfig {
    /// Served at `/mcp/<name>`; must not be an upstream's name.
    pub name: String,
    /// The member upstreams, by name, in the order their lists are merged
    /// (on a name collision the earlier member's entry is kept).
    pub upstreams: Vec<String>,
    /// Between a member's name and a tool's or prompt's: `<upstream><separator><name>`.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// How long a member may take to answer, instead of each member's own
    /// `request_timeout` (itself defaulting to `server.request_timeout`).
    #[serde(
        default,
        deserialize_with = "mcpgate_guard::time::deserialize_opt_duration"
    )]
    pub request_timeout: Option<Duration>,
    /// DPoP-bound access tokens at this endpoint: `off`, `allowed`, `required`.
    #[serde(default)]
    pub dpop: mcpgate_guard::DpopMode,
    // The policy keys, as in `[[upstream]]` and repeated field by field for the
    // same reason (serde cannot `flatten` into a struct that denies unknown
    // keys); tool, prompt and resource names are the ones the client sees
    // (prefixed and renamed).
    /// Scopes needed for anything on this virtual server.
    #[serde(default)]
    pub required_scopes: Scopes,
    /// Tool-name glob (the prefixed name) → scopes needed to see and call matching tools.
    #[serde(default)]
    pub tool_scopes: BTreeMap<String, Scopes>,
    /// Prompt-name glob → scopes.
    #[serde(default)]
    pub prompt_scopes: BTreeMap<String, Scopes>,
    /// Resource-URI glob → scopes.
    #[serde(default)]
    pub resource_scopes: BTreeMap<String, Scopes>,
    /// Only these subjects (globs) may use the virtual server.
    #[serde(default)]
    pub allow_subjects: Vec<String>,
    /// These subjects (globs) may not.
    #[serde(default)]
    pub deny_subjects: Vec<String>,
    /// Only members of these groups may use it.
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Members of these groups may not.
    #[serde(default)]
    pub deny_groups: Vec<String>,
}

fn default_separator() -> String {
    "_".into()
}

impl VirtualServerConfig {
    /// The policy part of the table.
    pub fn policy_config(&self) -> PolicyConfig {
        PolicyConfig {
            required_scopes: self.required_scopes.clone(),
            tool_scopes: self.tool_scopes.clone(),
            prompt_scopes: self.prompt_scopes.clone(),
            resource_scopes: self.resource_scopes.clone(),
            allow_subjects: self.allow_subjects.clone(),
            deny_subjects: self.deny_subjects.clone(),
            allow_groups: self.allow_groups.clone(),
            deny_groups: self.deny_groups.clone(),
        }
    }
}

/// Everything wrong with the virtual servers of a configuration, each a
/// sentence naming the table and key (empty when they are fine).
pub fn virtual_server_problems(
    virtuals: &[VirtualServerConfig],
    upstreams: &[UpstreamConfig],
) -> Vec<String> {
    let mut out = Vec::new();
    let by_name: BTreeMap<&str, &UpstreamConfig> =
        upstreams.iter().map(|u| (u.name.as_str(), u)).collect();
    let mut seen = BTreeSet::new();
    for v in virtuals {
        let at = format!("virtual_server {:?}", v.name);
        if !valid_name(&v.name) {
            out.push(format!("{at}: the name is served as a URL path segment (/mcp/<name>): use letters, digits, '-', '_' or '.'"));
        }
        if by_name.contains_key(v.name.as_str()) {
            out.push(format!("{at}: an [[upstream]] has this name already (both would be served at /mcp/{}); rename one", v.name));
        }
        if !seen.insert(v.name.as_str()) {
            out.push(format!(
                "{at}: two [[virtual_server]] tables have this name"
            ));
        }
        if v.upstreams.is_empty() {
            out.push(format!(
                "{at}: upstreams is empty; name the [[upstream]] tables to serve as one"
            ));
        }
        if v.separator.is_empty() {
            out.push(format!("{at}: separator is empty; prefixed names would run into each other (the default is \"_\")"));
        }
        let mut members = Vec::new();
        for m in &v.upstreams {
            match by_name.get(m.as_str()) {
                Some(u) if !members.iter().any(|x: &&UpstreamConfig| x.name == *m) => {
                    members.push(*u)
                }
                Some(_) => out.push(format!("{at}: upstream {m:?} is listed twice")),
                None => out.push(format!(
                    "{at}: unknown member upstream {m:?}; configured upstreams: {}",
                    upstreams
                        .iter()
                        .map(|u| u.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        out.extend(collisions(&at, &v.separator, &members));
    }
    for u in upstreams {
        out.extend(rule_problems(u));
    }
    out
}

/// A name usable as one path segment without escaping.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Bad globs and renames that collide within one upstream.
fn rule_problems(u: &UpstreamConfig) -> Vec<String> {
    let mut out = Vec::new();
    for g in u.tools.allow.iter().chain(&u.tools.deny) {
        if let Err(e) = globset::Glob::new(g) {
            out.push(format!("upstream {}: tools glob {g:?}: {e}", u.name));
        }
    }
    let mut targets: BTreeMap<&str, &str> = BTreeMap::new();
    for (old, new) in &u.tools.rename {
        if new.is_empty() {
            out.push(format!(
                "upstream {}: tools.rename gives {old:?} an empty name",
                u.name
            ));
        }
        if let Some(other) = targets.insert(new, old) {
            out.push(format!(
                "upstream {}: tools.rename gives both {other:?} and {old:?} the name {new:?}",
                u.name
            ));
        }
    }
    out
}

/// Names that would collide between members, as far as configuration tells:
/// the renamed tools of unprefixed members, and a prefix that starts another
/// (`a_` and `a_b_`: `a`'s `b_x` and `a_b`'s `x` would both be `a_b_x`).
/// Tool names that only the upstreams know are checked when lists are merged.
fn collisions(at: &str, separator: &str, members: &[&UpstreamConfig]) -> Vec<String> {
    let mut out = Vec::new();
    let prefixes: Vec<(&str, String)> = members
        .iter()
        .filter(|m| m.prefix)
        .map(|m| (m.name.as_str(), format!("{}{separator}", m.name)))
        .collect();
    for (a, pa) in &prefixes {
        for (b, pb) in &prefixes {
            if a != b && pb.starts_with(pa.as_str()) {
                out.push(format!(
                    "{at}: members {a:?} and {b:?}: the prefix {pa:?} is the start of {pb:?}, so a name of {a:?} and one of {b:?} can read the same; choose another separator or rename an upstream"
                ));
            }
        }
    }
    let mut shown: BTreeMap<String, &str> = BTreeMap::new();
    for m in members {
        for new in m.tools.rename.values() {
            let name = if m.prefix {
                format!("{}{separator}{new}", m.name)
            } else {
                new.clone()
            };
            if let Some(first) = shown.insert(name.clone(), m.name.as_str())
                && first != m.name
            {
                out.push(format!(
                    "{at}: tool name {name:?} would come from both members {first:?} and {:?}; change one tools.rename or set prefix = true",
                    m.name
                ));
            }
        }
    }
    out
}
