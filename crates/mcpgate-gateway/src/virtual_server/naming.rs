//! How a member's names are shown through a virtual server and read back:
//! `<upstream><separator><name>` (or the name alone with `prefix = false`),
//! tools filtered by `tools.allow` / `tools.deny` and renamed by
//! `tools.rename`. Calls go through the same rules as lists, so a tool that
//! is not shown cannot be called either.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::config::VirtualServerConfig;
use crate::config::UpstreamConfig;
use crate::error::GatewayError;
use crate::upstream::Upstream;

/// A virtual server of the running configuration.
#[derive(Debug)]
pub(crate) struct VirtualServer {
    pub(crate) name: Arc<str>,
    pub(crate) members: Vec<Member>,
}

/// One member upstream and its naming rules.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) name: Arc<str>,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) timeout: Duration,
    pub(crate) rules: Rules,
}

/// How one member's names are shown.
#[derive(Debug)]
pub(crate) struct Rules {
    /// `<upstream><separator>`, or `None` with `prefix = false`.
    prefix: Option<String>,
    allow: Option<GlobSet>,
    deny: GlobSet,
    rename: BTreeMap<String, String>,
    /// Shown name → upstream name.
    unrename: BTreeMap<String, String>,
    descriptions: BTreeMap<String, String>,
}

impl VirtualServer {
    /// The running form of `cfg`, over the gateway's built upstreams.
    pub(crate) fn new(
        cfg: &VirtualServerConfig,
        configs: &[UpstreamConfig],
        upstreams: &BTreeMap<String, Arc<Upstream>>,
        timeouts: &BTreeMap<String, Duration>,
    ) -> Result<Self, GatewayError> {
        let problem = |p: String| GatewayError::Config {
            upstream: cfg.name.clone(),
            problems: vec![p],
        };
        let mut members = Vec::new();
        for m in &cfg.upstreams {
            let (Some(u), Some(upstream)) = (
                configs.iter().find(|u| &u.name == m),
                upstreams.get(m.as_str()),
            ) else {
                return Err(problem(format!(
                    "virtual_server {:?}: unknown member upstream {m:?}",
                    cfg.name
                )));
            };
            let timeout = cfg
                .request_timeout
                .or_else(|| timeouts.get(m.as_str()).copied())
                .unwrap_or(Duration::from_secs(60));
            members.push(Member {
                name: Arc::from(m.as_str()),
                upstream: upstream.clone(),
                timeout,
                rules: Rules::new(u, &cfg.separator).map_err(problem)?,
            });
        }
        Ok(VirtualServer {
            name: Arc::from(cfg.name.as_str()),
            members,
        })
    }
}

impl Rules {
    /// The rules of member `u` (its `prefix` and `[upstream.tools]`).
    pub(crate) fn new(u: &UpstreamConfig, separator: &str) -> Result<Self, String> {
        let globs = |list: &[String]| -> Result<GlobSet, String> {
            let mut b = GlobSetBuilder::new();
            for g in list {
                b.add(
                    Glob::new(g)
                        .map_err(|e| format!("upstream {}: tools glob {g:?}: {e}", u.name))?,
                );
            }
            b.build()
                .map_err(|e| format!("upstream {}: tools globs: {e}", u.name))
        };
        Ok(Rules {
            prefix: u.prefix.then(|| format!("{}{separator}", u.name)),
            allow: (!u.tools.allow.is_empty())
                .then(|| globs(&u.tools.allow))
                .transpose()?,
            deny: globs(&u.tools.deny)?,
            rename: u.tools.rename.clone(),
            unrename: u
                .tools
                .rename
                .iter()
                .map(|(k, v)| (v.clone(), k.clone()))
                .collect(),
            descriptions: u.tools.descriptions.clone(),
        })
    }

    /// Whether the upstream's tool `original` is shown (and callable).
    fn shows_tool(&self, original: &str) -> bool {
        // `is_match` prepares the name as a path (an allocation) even for an
        // empty set, and most members deny nothing.
        let denied = !self.deny.is_empty() && self.deny.is_match(original);
        !denied && self.allow.as_ref().is_none_or(|a| a.is_match(original))
    }

    /// The name a client sees for the upstream's tool `original`, or `None`
    /// when the rules hide it.
    pub(crate) fn tool_shown(&self, original: &str) -> Option<String> {
        if !self.shows_tool(original) {
            return None;
        }
        let renamed = self.rename.get(original).map_or(original, String::as_str);
        Some(self.prefixed(renamed))
    }

    /// The description shown instead of the upstream's, if one is configured.
    pub(crate) fn description(&self, original: &str) -> Option<&str> {
        self.descriptions.get(original).map(String::as_str)
    }

    /// The upstream's tool behind the shown `name`, if this member shows one by it.
    pub(crate) fn tool_original(&self, name: &str) -> Option<String> {
        let bare = self.unprefixed(name)?;
        let original = match self.unrename.get(bare) {
            Some(o) => o.clone(),
            // A renamed tool is shown only by its new name.
            None if self.rename.contains_key(bare) => return None,
            None => bare.to_owned(),
        };
        self.shows_tool(&original).then_some(original)
    }

    /// A prompt's shown name (prompts are prefixed, never filtered or renamed).
    pub(crate) fn prefixed(&self, name: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}{name}"),
            None => name.to_owned(),
        }
    }

    /// `name` without this member's prefix, or `None` when it lacks it.
    pub(crate) fn unprefixed<'a>(&self, name: &'a str) -> Option<&'a str> {
        match &self.prefix {
            Some(p) => name.strip_prefix(p.as_str()).filter(|n| !n.is_empty()),
            None => Some(name),
        }
    }

    /// Whether names of this member carry its prefix.
    pub(crate) fn is_prefixed(&self) -> bool {
        self.prefix.is_some()
    }
}

#[cfg(test)]
mod tests;
