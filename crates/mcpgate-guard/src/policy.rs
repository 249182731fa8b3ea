//! Which scopes a call needs, and who may call at all: per upstream, per tool,
//! prompt and resource (by glob), and by subject or group.

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::error::GuardError;
use crate::principal::Principal;
use crate::proof::{Authenticated, Authorized};
use crate::rejection::AuthRejection;
use mcpgate_types::{Scope, ScopeError, ScopeSet};

/// Scopes written as one space-separated string or as a list.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Scopes {
    /// `"notes:read notes:write"`.
    Text(String),
    /// `["notes:read", "notes:write"]`.
    List(Vec<String>),
    /// None.
    #[default]
    #[serde(skip)]
    None,
}

impl Scopes {
    /// The individual scopes.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Scopes::Text(t) => t.split_ascii_whitespace().map(str::to_owned).collect(),
            Scopes::List(l) => l
                .iter()
                .flat_map(|s| s.split_ascii_whitespace())
                .map(str::to_owned)
                .collect(),
            Scopes::None => Vec::new(),
        }
    }

    /// The scopes as a set, each checked against RFC 6749 §3.3 (configuration
    /// names scopes a token must carry, so one that no token can carry is a mistake).
    pub fn to_set(&self) -> Result<ScopeSet, ScopeError> {
        self.to_vec().into_iter().map(Scope::try_from).collect()
    }
}

/// The policy settings of one upstream, as configured.
// The gateway's `UpstreamConfig` repeats these keys field by field: serde
// cannot `flatten` into a table that denies unknown keys, and a misspelt key
// must stay an error there (`UpstreamConfig::policy_config` maps them here).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Needed for anything on this upstream.
    #[serde(default)]
    pub required_scopes: Scopes,
    /// Tool-name glob → scopes needed to see and call matching tools.
    #[serde(default)]
    pub tool_scopes: BTreeMap<String, Scopes>,
    /// Prompt-name glob → scopes.
    #[serde(default)]
    pub prompt_scopes: BTreeMap<String, Scopes>,
    /// Resource-URI glob → scopes.
    #[serde(default)]
    pub resource_scopes: BTreeMap<String, Scopes>,
    /// Only these subjects (globs) may use the upstream; empty = everyone.
    #[serde(default)]
    pub allow_subjects: Vec<String>,
    /// These subjects (globs) may not.
    #[serde(default)]
    pub deny_subjects: Vec<String>,
    /// Only members of these groups may use the upstream; empty = no group rule.
    #[serde(default)]
    pub allow_groups: Vec<String>,
    /// Members of these groups may not.
    #[serde(default)]
    pub deny_groups: Vec<String>,
}

/// What a request asks for, as policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Anything without a name (initialize, lists, ping…).
    Upstream,
    /// `tools/call` of this tool.
    Tool(&'a str),
    /// `prompts/get` of this prompt.
    Prompt(&'a str),
    /// `resources/read` of this URI.
    Resource(&'a str),
}

/// A compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    required: Vec<String>,
    tools: Vec<(GlobMatcher, Vec<String>)>,
    prompts: Vec<(GlobMatcher, Vec<String>)>,
    resources: Vec<(GlobMatcher, Vec<String>)>,
    allow_subjects: Vec<GlobMatcher>,
    deny_subjects: Vec<GlobMatcher>,
    allow_groups: Vec<String>,
    deny_groups: Vec<String>,
    groups_claim: String,
}

fn compile(pattern: &str, what: &str) -> Result<GlobMatcher, String> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{what}: {pattern:?} is not a valid glob: {e}"))
}

fn compile_map(
    map: &BTreeMap<String, Scopes>,
    what: &str,
) -> Result<Vec<(GlobMatcher, Vec<String>)>, String> {
    map.iter()
        .map(|(k, v)| Ok((compile(k, what)?, v.to_vec())))
        .collect()
}

impl Policy {
    /// Compiles a configuration; `groups_claim` names the claim holding a principal's groups.
    pub fn new(cfg: &PolicyConfig, groups_claim: &str) -> Result<Self, GuardError> {
        Self::compile(cfg, groups_claim).map_err(GuardError::Config)
    }

    fn compile(cfg: &PolicyConfig, groups_claim: &str) -> Result<Self, String> {
        Ok(Policy {
            required: cfg.required_scopes.to_vec(),
            tools: compile_map(&cfg.tool_scopes, "tool_scopes")?,
            prompts: compile_map(&cfg.prompt_scopes, "prompt_scopes")?,
            resources: compile_map(&cfg.resource_scopes, "resource_scopes")?,
            allow_subjects: cfg
                .allow_subjects
                .iter()
                .map(|p| compile(p, "allow_subjects"))
                .collect::<Result<_, _>>()?,
            deny_subjects: cfg
                .deny_subjects
                .iter()
                .map(|p| compile(p, "deny_subjects"))
                .collect::<Result<_, _>>()?,
            allow_groups: cfg.allow_groups.clone(),
            deny_groups: cfg.deny_groups.clone(),
            groups_claim: groups_claim.to_owned(),
        })
    }

    /// Every scope this policy mentions (for `scopes_supported`).
    pub fn scopes(&self) -> Vec<String> {
        let mut all: Vec<String> = self.required.clone();
        for (_, s) in self
            .tools
            .iter()
            .chain(&self.prompts)
            .chain(&self.resources)
        {
            all.extend(s.iter().cloned());
        }
        all.sort();
        all.dedup();
        all
    }

    /// The scopes needed for anything on the upstream.
    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// Whether any list (tools, prompts, resources) needs filtering.
    pub fn filters_lists(&self) -> bool {
        !(self.tools.is_empty() && self.prompts.is_empty() && self.resources.is_empty())
    }

    /// Every scope a target needs: the upstream's plus each matching glob's.
    pub fn needed(&self, target: Target<'_>) -> Vec<String> {
        let (rules, name) = match target {
            Target::Upstream => return self.required.clone(),
            Target::Tool(n) => (&self.tools, n),
            Target::Prompt(n) => (&self.prompts, n),
            Target::Resource(u) => (&self.resources, u),
        };
        let mut needed = self.required.clone();
        for (glob, scopes) in rules {
            if glob.is_match(name) {
                needed.extend(scopes.iter().cloned());
            }
        }
        needed.sort();
        needed.dedup();
        needed
    }

    /// The scopes of `target` the principal lacks (empty = allowed).
    pub fn missing(&self, p: &Principal, target: Target<'_>) -> Vec<String> {
        p.missing(&self.needed(target))
    }

    /// Whether the caller may do `target`: the one decision per operation, and
    /// the proof the upstream call needs. An anonymous caller is told to sign
    /// in asking for the scopes the operation needs (401), a signed-in one
    /// that it lacks them (403 `insufficient_scope`).
    pub fn authorize(
        &self,
        caller: &Authenticated,
        target: Target<'_>,
    ) -> Result<Authorized, AuthRejection> {
        let p = caller.principal();
        if self.missing(p, target).is_empty() {
            return Ok(Authorized::new(caller.clone()));
        }
        let needed = self.needed(target);
        tracing::debug!(
            subject = p.subject().as_str(),
            ?target,
            ?needed,
            "operation refused: scopes missing"
        );
        if p.is_anonymous() {
            Err(AuthRejection::MissingFor(needed))
        } else {
            Err(AuthRejection::InsufficientScope(needed))
        }
    }

    /// Whether subject and group rules let this principal use the upstream at all.
    pub fn admits(&self, p: &Principal) -> Result<(), AuthRejection> {
        self.rule_for(p).map_err(|why| {
            tracing::info!(subject = p.subject().as_str(), %why, "refused by a subject or group rule");
            AuthRejection::Forbidden(why)
        })
    }

    fn rule_for(&self, p: &Principal) -> Result<(), String> {
        let subject = p.subject().as_str();
        let names = |globs: &[GlobMatcher]| globs.iter().any(|g| g.is_match(subject));
        if names(&self.deny_subjects) {
            return Err(format!("subject {subject} is denied on this upstream"));
        }
        if !self.allow_subjects.is_empty() && !names(&self.allow_subjects) {
            return Err(format!("subject {subject} is not allowed on this upstream"));
        }
        if self.allow_groups.is_empty() && self.deny_groups.is_empty() {
            return Ok(());
        }
        let groups = self.groups(p);
        if let Some(g) = groups.iter().find(|g| self.deny_groups.contains(g)) {
            return Err(format!("members of group {g} are denied on this upstream"));
        }
        if !self.allow_groups.is_empty() && !groups.iter().any(|g| self.allow_groups.contains(g)) {
            return Err(format!(
                "only members of {} may use this upstream",
                self.allow_groups.join(", ")
            ));
        }
        Ok(())
    }

    fn groups(&self, p: &Principal) -> Vec<String> {
        p.groups(&self.groups_claim)
    }
}

#[cfg(test)]
mod tests;
